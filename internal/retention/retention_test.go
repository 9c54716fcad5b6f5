package retention_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/retention"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
	"github.com/ferryhq/ferry/internal/storage/s3test"
)

// backends are the stores every retention test runs on: the file backend and versitygw (real S3 wire protocol,
// paged listings, DeleteObjects).
func backends(t *testing.T) map[string]func(t *testing.T) storage.Storage {
	return map[string]func(t *testing.T) storage.Storage{
		"file": func(t *testing.T) storage.Storage {
			st, err := storage.NewFile(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		"versitygw": func(t *testing.T) storage.Storage {
			if testing.Short() {
				t.Skip("slow: versitygw")
			}
			return s3test.StartVersityGW(t).Open(t, "ferry")
		},
	}
}

func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// site builds a small site: a shared stylesheet (one blob for every deployment), a shared logo for some, and a
// page of its own.
func siteFiles(name string, logo bool) map[string]string {
	f := map[string]string{
		"index.html":  "<h1>" + name + "</h1>",
		"style.css":   "body{color:teal}",
		name + ".txt": "only in " + name,
	}
	if logo {
		f["logo.svg"] = "<svg/>"
	}
	return f
}

func publish(t testing.TB, ss *site.Store, project, name string, logo bool, aliases ...string) string {
	t.Helper()
	res, err := ss.Publish(context.Background(), site.PublishParams{Project: project, Dir: writeTree(t, siteFiles(name, logo)), Aliases: aliases})
	if err != nil {
		t.Fatalf("publish %s: %v", name, err)
	}
	return res.Deployment
}

func keys(t testing.TB, st storage.Storage, prefix string) []string {
	t.Helper()
	objs, err := st.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, o.Key)
	}
	return out
}

// complete fails unless deployment id's manifest exists and every blob it names is stored.
func complete(t testing.TB, st storage.Storage, project, id string) {
	t.Helper()
	if err := completeErr(st, project, id); err != nil {
		t.Fatal(err)
	}
}

func completeErr(st storage.Storage, project, id string) error {
	ctx := context.Background()
	m, err := site.NewStore(st).ManifestGet(ctx, project, id)
	if err != nil {
		return fmt.Errorf("deployment %s: %w", id, err)
	}
	for path, f := range m.Files {
		if _, err := st.Stat(ctx, site.BlobKey(project, f.Blob)); err != nil {
			return fmt.Errorf("deployment %s serves %s from blob %s: %w", id, path, f.Blob, err)
		}
	}
	return nil
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func deletedOf(rep *retention.Report, kind string) []string {
	var out []string
	for _, d := range rep.Deleted {
		if d.Kind == kind {
			if d.Name != "" {
				out = append(out, d.Name)
			} else {
				out = append(out, d.Key)
			}
		}
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// TestPolicyRun builds a project with production history, a rollback, open and closed pull requests, a branch a
// custom domain serves and shared blobs, and checks that two runs of the policy, 8 days apart, remove exactly
// what it says and nothing else: a dry run first, which must delete nothing and plan what the real run does.
func TestPolicyRun(t *testing.T) {
	t.Parallel()
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testPolicyRun(t, open(t))
		})
	}
}

func testPolicyRun(t *testing.T, st storage.Storage) {
	ctx := context.Background()
	ss := site.NewStore(st)
	const p = "web"
	var prod []string
	for i := range 15 {
		prod = append(prod, publish(t, ss, p, fmt.Sprintf("prod%02d", i), i%2 == 0, "production"))
	}
	// Roll production back to the 12th: the window then covers the 3 newest and the 3 before the current.
	if err := ss.AliasSet(ctx, p, "production", prod[11]); err != nil {
		t.Fatal(err)
	}
	pr1a := publish(t, ss, p, "pr1a", false, "pr-1")
	pr1b := publish(t, ss, p, "pr1b", true, "pr-1")
	pr2 := publish(t, ss, p, "pr2", false, "pr-2")
	if err := ss.AliasDelete(ctx, p, "pr-2"); err != nil { // the pull request closed
		t.Fatal(err)
	}
	staging := publish(t, ss, p, "staging", false, "git-staging")
	old := publish(t, ss, p, "oldbranch", false, "git-old")
	// A second project whose blobs equal web's: projects never share blobs, so nothing here is touched.
	other := publish(t, ss, "blog", "prod00", true, "production")
	if err := st.Put(ctx, "domains/www.example.com.json", strings.NewReader(`{"host":"www.example.com","project":"web","alias":"git-staging","status":"verified"}`), -1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// Caches in both layouts (with and without a trust scope).
	cache := func(key string, size int) {
		if err := st.Put(ctx, key, bytes.NewReader(make([]byte, size)), int64(size), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cache("projects/web/cache/aaaa.tar.gz", 10)
	cache("projects/web/cache/trust/bbbb.tar.gz", 10)
	all := func() []string { return keys(t, st, "") }

	pol := retention.Policy{RollbackWindow: 3, CacheMaxAgeDays: 35}.Over(retention.Defaults)
	now := time.Now()
	run := func(at time.Time, dry bool) *retention.Report {
		t.Helper()
		c := &retention.Collector{Storage: st, Log: quiet(), DryRun: dry, Now: func() time.Time { return at }}
		domains, ok := c.DomainAliases(ctx)
		if !ok {
			t.Fatal("domains not listed")
		}
		rep, err := c.Project(ctx, p, pol, domains[p], true)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}

	at1 := now.Add(40 * 24 * time.Hour)
	before := all()
	plan := run(at1, true)
	if got := all(); !slices.Equal(got, before) {
		t.Fatalf("a dry run changed storage:\nbefore %d keys, after %d", len(before), len(got))
	}
	rep := run(at1, false)
	if !slices.Equal(deletedOf(plan, retention.KindBlob), deletedOf(rep, retention.KindBlob)) ||
		!slices.Equal(deletedOf(plan, retention.KindDeployment), deletedOf(rep, retention.KindDeployment)) ||
		!slices.Equal(deletedOf(plan, retention.KindAlias), deletedOf(rep, retention.KindAlias)) {
		t.Errorf("the dry run planned %v\nthe run deleted %v", plan.Deleted, rep.Deleted)
	}

	// Run 1: production outside the window goes (prod[0..7]); previews just lost their alias (or had it
	// retired now) and enter their grace period; pr-1 and git-old are retired as stale (40 days without a push),
	// git-staging is not (a domain serves it), production never is.
	if got, want := deletedOf(rep, retention.KindDeployment), sorted(prod[:8]); !slices.Equal(got, want) {
		t.Errorf("run 1 deleted deployments %v, want %v", got, want)
	}
	if got, want := deletedOf(rep, retention.KindAlias), []string{"git-old", "pr-1"}; !slices.Equal(got, want) {
		t.Errorf("run 1 retired aliases %v, want %v", got, want)
	}
	var wantBlobs []string
	for i := range 8 {
		n := fmt.Sprintf("prod%02d", i)
		wantBlobs = append(wantBlobs, site.BlobKey(p, sha("only in "+n)), site.BlobKey(p, sha("<h1>"+n+"</h1>")))
	}
	if got, want := deletedOf(rep, retention.KindBlob), sorted(wantBlobs); !slices.Equal(got, want) {
		t.Errorf("run 1 deleted blobs %v, want %v (shared ones stay)", got, want)
	}
	if got, want := deletedOf(rep, retention.KindCache), []string{"projects/web/cache/aaaa.tar.gz", "projects/web/cache/trust/bbbb.tar.gz"}; !slices.Equal(got, want) {
		t.Errorf("run 1 evicted caches %v, want %v (older than 35 days)", got, want)
	}
	var up []string
	for _, u := range rep.Upcoming {
		up = append(up, u.Deployment)
		if !u.At.Equal(at1.Add(7 * 24 * time.Hour)) {
			t.Errorf("upcoming %s at %v, want the end of its grace %v", u.Deployment, u.At, at1.Add(7*24*time.Hour))
		}
	}
	if want := sorted([]string{pr1a, pr1b, pr2, old}); !slices.Equal(sorted(up), want) {
		t.Errorf("upcoming %v, want the previews without alias %v", up, want)
	}
	saved := must(retention.ReportGet(ctx, st, p))
	if saved.DeletedObjects != len(rep.Deleted) || len(deletedOf(saved, retention.KindBlob)) != 0 || len(saved.Upcoming) != 4 {
		t.Errorf("stored report: %d deleted objects (want %d), %d blobs listed (want 0), %d upcoming", saved.DeletedObjects, len(rep.Deleted), len(deletedOf(saved, retention.KindBlob)), len(saved.Upcoming))
	}
	for _, id := range append(slices.Clone(prod[8:]), pr1a, pr1b, pr2, staging, old) {
		complete(t, st, p, id)
	}
	complete(t, st, "blog", other)
	for _, a := range []string{"production", "git-staging"} {
		if _, err := ss.AliasGet(ctx, p, a); err != nil {
			t.Errorf("alias %s: %v", a, err)
		}
	}

	// Run 2, 8 days later: the previews have been without an alias for longer than the 7-day grace.
	rep = run(at1.Add(8*24*time.Hour), false)
	if got, want := deletedOf(rep, retention.KindDeployment), sorted([]string{pr1a, pr1b, pr2, old}); !slices.Equal(got, want) {
		t.Errorf("run 2 deleted deployments %v, want %v", got, want)
	}
	wantBlobs = nil
	for _, n := range []string{"pr1a", "pr1b", "pr2", "oldbranch"} {
		wantBlobs = append(wantBlobs, site.BlobKey(p, sha("only in "+n)), site.BlobKey(p, sha("<h1>"+n+"</h1>")))
	}
	if got, want := deletedOf(rep, retention.KindBlob), sorted(wantBlobs); !slices.Equal(got, want) {
		t.Errorf("run 2 deleted blobs %v, want the previews' own %v (the logo and stylesheet stay)", got, want)
	}

	// What is left: exactly the window, the current production, the domain's branch; every one complete, and a
	// rollback to each deployment inside the window serves.
	var left []string
	for _, d := range must(ss.DeploymentList(ctx, p)) {
		left = append(left, d.ID)
	}
	if want := sorted(append(slices.Clone(prod[8:]), staging)); !slices.Equal(sorted(left), want) {
		t.Errorf("deployments left %v, want %v", left, want)
	}
	for _, id := range prod[8:] {
		if err := ss.AliasSet(ctx, p, "production", id); err != nil {
			t.Fatalf("rollback to %s inside the window: %v", id, err)
		}
		complete(t, st, p, id)
	}
	// Every stored blob is named by a remaining manifest: nothing leaked.
	named := map[string]bool{}
	for _, id := range left {
		m := must(ss.ManifestGet(ctx, p, id))
		for _, f := range m.Files {
			named[site.BlobKey(p, f.Blob)] = true
		}
	}
	if got, want := keys(t, st, "projects/web/blobs/"), sorted(slices.Collect(maps.Keys(named))); !slices.Equal(got, want) {
		t.Errorf("blobs left %d, want the %d the remaining deployments name", len(got), len(want))
	}
	if got := keys(t, st, "projects/web/publishing/"); len(got) != 0 {
		t.Errorf("publish markers left: %v", got)
	}
	if got := keys(t, st, "projects/web/gc/leases/"); len(got) != 0 {
		t.Errorf("collector leases left: %v", got)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestCacheEviction: caches over the size bound go oldest first, in both key layouts, and nothing else does.
func TestCacheEviction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	st := must(storage.NewFile(root))
	now := time.Now()
	for i, k := range []string{"cache/trust/new.tar.gz", "cache/mid.tar.gz", "cache/trust/old.tar.gz", "cache/.put-123"} {
		key := "projects/web/" + k
		if err := st.Put(ctx, key, bytes.NewReader(make([]byte, 1<<20)), 1<<20, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		at := now.Add(-time.Duration(i) * time.Hour)
		if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(key)), at, at); err != nil {
			t.Fatal(err)
		}
	}
	c := &retention.Collector{Storage: st, Log: quiet()}
	rep, err := c.Project(ctx, "web", retention.Policy{CacheMaxMB: 1}.Over(retention.Defaults), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := deletedOf(rep, retention.KindCache), []string{"projects/web/cache/mid.tar.gz", "projects/web/cache/trust/old.tar.gz"}; !slices.Equal(got, want) {
		t.Errorf("evicted %v, want %v", got, want)
	}
	if got := keys(t, st, "projects/web/cache/"); !slices.Equal(got, []string{"projects/web/cache/trust/new.tar.gz"}) {
		t.Errorf("caches left %v", got)
	}
}
