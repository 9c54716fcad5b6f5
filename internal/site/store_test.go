package site

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/siteconfig"
	"github.com/ferryhq/ferry/internal/storage"
)

// writeTree creates files (slash paths) under a new temporary folder.
func writeTree(t *testing.T, files map[string]string) string {
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

func newFileStore(t *testing.T) (*Store, *storage.File) {
	t.Helper()
	st, err := storage.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return NewStore(st), st
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func wantCode(t *testing.T, err error, code string, contains ...string) {
	t.Helper()
	if ferry.ErrorCode(err) != code {
		t.Fatalf("error = %v (code %q), want code %q", err, ferry.ErrorCode(err), code)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Errorf("error %q does not mention %q", err, c)
		}
	}
}

func readObject(t *testing.T, st storage.Storage, key string) string {
	t.Helper()
	rc, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var siteFiles = map[string]string{
	"index.html":                  "<!doctype html><title>home</title>",
	"about.html":                  "<!doctype html><title>about</title>",
	"assets/app.3f2a1b.js":        "console.log('hi')",
	"assets/style.css":            "body{}",
	"assets/copy.css":             "body{}", // same content as style.css: one blob
	"docs/guide/index.html":       "<p>guide</p>",
	"manifest.webmanifest":        "{}",
	"README":                      "<html><body>sniffed</body></html>",
	".well-known/security.txt":    "Contact: mailto:a@example.com",
	".well-known/.hidden":         "no",
	".git/config":                 "[core]",
	".env":                        "SECRET=1",
	"assets/.DS_Store":            "junk",
	"ferry.json":                  `{"spa": false}`,
	"nested/.cache/big/thing.txt": "no",
}

func TestPublishAndRepublish(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, st := newFileStore(t)
	dir := writeTree(t, siteFiles)

	res, err := s.Publish(ctx, PublishParams{Project: "web", Dir: dir, Aliases: []string{"production", "pr-7"}, Domain: "example.com", Meta: map[string]string{"commit": "abc"}})
	if err != nil {
		t.Fatal(err)
	}
	if !IsDeploymentID(res.Deployment) || res.Project != "web" {
		t.Errorf("result = %+v", res)
	}
	if res.Files != 9 || res.Uploaded != 8 || res.Skipped != 0 {
		t.Errorf("files, uploaded, skipped = %d, %d, %d; want 9, 8, 0", res.Files, res.Uploaded, res.Skipped)
	}
	var wantBytes int64
	for name, body := range siteFiles {
		if !strings.Contains(name, "/.") && !strings.HasPrefix(name, ".") || strings.HasPrefix(name, ".well-known/s") {
			if name != "ferry.json" {
				wantBytes += int64(len(body))
			}
		}
	}
	if res.Bytes != wantBytes {
		t.Errorf("bytes = %d, want %d", res.Bytes, wantBytes)
	}
	wantURLs := []string{"https://" + res.Deployment + "--web.example.com", "https://web.example.com", "https://pr-7--web.example.com"}
	if strings.Join(res.URLs, " ") != strings.Join(wantURLs, " ") {
		t.Errorf("urls = %q, want %q", res.URLs, wantURLs)
	}

	m, err := s.ManifestGet(ctx, "web", res.Deployment)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for p := range m.Files {
		paths = append(paths, p)
	}
	for _, want := range []string{"/index.html", "/about.html", "/assets/app.3f2a1b.js", "/assets/style.css", "/assets/copy.css", "/docs/guide/index.html", "/manifest.webmanifest", "/README", "/.well-known/security.txt"} {
		if _, ok := m.Files[want]; !ok {
			t.Errorf("manifest lacks %s (has %q)", want, paths)
		}
	}
	if len(m.Files) != 9 {
		t.Errorf("manifest has %d files, want 9: %q", len(m.Files), paths)
	}
	types := map[string]string{
		"/index.html":           "text/html; charset=utf-8",
		"/assets/app.3f2a1b.js": "text/javascript; charset=utf-8",
		"/assets/style.css":     "text/css; charset=utf-8",
		"/manifest.webmanifest": "application/manifest+json",
		"/README":               "text/html; charset=utf-8",
	}
	for p, want := range types {
		if got := m.Files[p].ContentType; got != want {
			t.Errorf("%s content type = %q, want %q", p, got, want)
		}
	}
	if f := m.Files["/index.html"]; f.Blob != sha(siteFiles["index.html"]) || f.Size != int64(len(siteFiles["index.html"])) {
		t.Errorf("index.html = %+v", f)
	}
	if got := readObject(t, st, BlobKey("web", m.Files["/assets/app.3f2a1b.js"].Blob)); got != siteFiles["assets/app.3f2a1b.js"] {
		t.Errorf("blob holds %q", got)
	}
	if m.Meta["commit"] != "abc" || m.Version != ManifestVersion || m.CreatedAt.IsZero() {
		t.Errorf("manifest header = %+v", m)
	}
	// ferry.json in the folder is not published, and Publish does not read it (the command does).
	// Three HTML files and no 404.html: a multi-page site, so no SPA fallback (unknown paths are 404s).
	if m.Config.SPA || !m.Config.CleanURLs || m.Config.NotFound != "" {
		t.Errorf("config = %+v, want the defaults for a multi-page site (no SPA, clean URLs)", m.Config)
	}
	for _, alias := range []string{"production", "pr-7"} {
		a, err := s.AliasGet(ctx, "web", alias)
		if err != nil || a.Deployment != res.Deployment {
			t.Errorf("alias %s = %+v, %v", alias, a, err)
		}
	}

	again, err := s.Publish(ctx, PublishParams{Project: "web", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if again.Uploaded != 0 || again.Skipped != 8 || again.Files != 9 || again.Deployment == res.Deployment {
		t.Errorf("republish = %+v, want 0 uploaded, 8 skipped, a new id", again)
	}
	if len(again.URLs) != 0 || again.URLs == nil {
		t.Errorf("urls without a domain = %#v, want []", again.URLs)
	}
	list, err := s.DeploymentList(ctx, "web")
	if err != nil || len(list) != 2 || list[0].ID != res.Deployment || list[1].ID != again.Deployment {
		t.Errorf("DeploymentList = %+v, %v", list, err)
	}
}

func TestPublishServingSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newFileStore(t)
	dir := writeTree(t, map[string]string{"index.html": "i", "404.html": "nf"})
	yes, no := true, false
	res, err := s.Publish(ctx, PublishParams{Project: "web", Dir: dir, Settings: &siteconfig.File{CleanURLs: &no, TrailingSlash: &yes}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.ManifestGet(ctx, "web", res.Deployment)
	if err != nil {
		t.Fatal(err)
	}
	want := siteconfig.Serving{SPA: false, NotFound: "/404.html", CleanURLs: false, TrailingSlash: "add"}
	if got, _ := json.Marshal(m.Config); string(got) != mustJSON(want) {
		t.Errorf("config = %s, want %s", got, mustJSON(want))
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// parsersReady reports whether siteconfig's parsers exist yet (they are written in parallel).
func parsersReady() bool {
	_, err1 := siteconfig.ParseRedirects(strings.NewReader("/a /b 301\n"))
	_, err2 := siteconfig.ParseHeaders(strings.NewReader("/*\n  X-A: b\n"))
	return err1 == nil && err2 == nil
}

func TestPublishRedirectsAndHeaders(t *testing.T) {
	t.Parallel()
	if !parsersReady() {
		t.Skip("siteconfig.ParseRedirects/ParseHeaders are not implemented yet")
	}
	ctx := context.Background()
	s, _ := newFileStore(t)
	dir := writeTree(t, map[string]string{
		"index.html": "i",
		"_redirects": "/old /new 301\n/app/* /index.html 200\n",
		"_headers":   "/assets/*\n  Cache-Control: public, max-age=60\n",
	})
	res, err := s.Publish(ctx, PublishParams{Project: "web", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.ManifestGet(ctx, "web", res.Deployment)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 1 || len(m.Config.Redirects) != 2 || len(m.Config.Headers) != 1 {
		t.Errorf("files %v, config %+v; want only index.html, 2 redirects and 1 header rule", m.Files, m.Config)
	}
	if m.Config.Redirects[0].From != "/old" || m.Config.Redirects[1].Status != 200 {
		t.Errorf("redirects = %+v", m.Config.Redirects)
	}

	bad := writeTree(t, map[string]string{"index.html": "i", "_redirects": "/a /b 301\n/c\n"})
	_, err = s.Publish(ctx, PublishParams{Project: "web", Dir: bad})
	wantCode(t, err, ferry.EINVALID, "2")
}

// recorder is a Storage that records the order of Put keys and can fail chosen Puts.
type recorder struct {
	storage.Storage
	mu   sync.Mutex
	puts []string
	fail func(key string) error
}

func (r *recorder) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts storage.PutOptions) error {
	if r.fail != nil {
		if err := r.fail(key); err != nil {
			return err
		}
	}
	if strings.Contains(key, "/blobs/") && opts.SHA256 == "" {
		return errors.New("blob put without a checksum")
	}
	if err := r.Storage.Put(ctx, key, body, size, opts); err != nil {
		return err
	}
	r.mu.Lock()
	r.puts = append(r.puts, key)
	r.mu.Unlock()
	return nil
}

func TestPublishWritesManifestLast(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, st := newFileStore(t)
	rec := &recorder{Storage: st}
	s := NewStore(rec)
	res, err := s.Publish(ctx, PublishParams{Project: "web", Dir: writeTree(t, siteFiles), Aliases: []string{"pr-1"}})
	if err != nil {
		t.Fatal(err)
	}
	n := len(rec.puts)
	if n != res.Uploaded+4 || rec.puts[n-1] != SignalKey {
		t.Fatalf("puts = %q, want the publish marker, the blobs, the manifest, the alias, then the alias change signal", rec.puts)
	}
	// The writer's marker comes first, before any listing or blob (writer.go), and is gone afterwards.
	if !strings.HasPrefix(rec.puts[0], WriterPrefix("web")) {
		t.Errorf("first put %s, want the publish marker", rec.puts[0])
	}
	if objs, err := st.List(ctx, WriterPrefix("web")); err != nil || len(objs) != 0 {
		t.Errorf("after the publish its marker is still there: %v (%v)", objs, err)
	}
	n-- // the signal, after the alias
	for _, k := range rec.puts[1 : n-2] {
		if !strings.HasPrefix(k, "projects/web/blobs/") {
			t.Errorf("put %s before the manifest", k)
		}
	}
	if rec.puts[n-2] != ManifestKey("web", res.Deployment) || rec.puts[n-1] != AliasKey("web", "pr-1") {
		t.Errorf("last puts = %q, want the manifest then the alias", rec.puts[n-2:])
	}
}

func TestPublishFailedUploadLeavesNoManifest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, st := newFileStore(t)
	badKey := BlobKey("web", sha(siteFiles["about.html"]))
	rec := &recorder{Storage: st, fail: func(key string) error {
		if key == badKey {
			return ferry.Errorf(ferry.EUNAVAILABLE, "put %s: connection reset", key)
		}
		return nil
	}}
	s := NewStore(rec)
	_, err := s.Publish(ctx, PublishParams{Project: "web", Dir: writeTree(t, siteFiles), Aliases: []string{"production"}})
	wantCode(t, err, ferry.EUNAVAILABLE, "about.html")
	for _, prefix := range []string{"projects/web/deployments/", "projects/web/aliases/"} {
		if objs, err := st.List(ctx, prefix); err != nil || len(objs) != 0 {
			t.Errorf("after a failed upload %s holds %v (%v)", prefix, objs, err)
		}
	}
}

func TestPublishSymlinks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newFileStore(t)

	in := writeTree(t, map[string]string{"real/page.html": "target content", "index.html": "i"})
	mustSymlink(t, "real/page.html", filepath.Join(in, "link.html"))
	mustSymlink(t, "real", filepath.Join(in, "alias-dir"))
	res, err := s.Publish(ctx, PublishParams{Project: "web", Dir: in})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.ManifestGet(ctx, "web", res.Deployment)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/link.html", "/alias-dir/page.html", "/real/page.html"} {
		if m.Files[p].Blob != sha("target content") {
			t.Errorf("%s = %+v, want the target's content", p, m.Files[p])
		}
	}

	out := writeTree(t, map[string]string{"index.html": "i"})
	mustSymlink(t, "/etc/passwd", filepath.Join(out, "passwd.txt"))
	_, err = s.Publish(ctx, PublishParams{Project: "web", Dir: out})
	wantCode(t, err, ferry.EINVALID, "passwd.txt", "outside")

	up := writeTree(t, map[string]string{"site/index.html": "i", "secret.txt": "s"})
	mustSymlink(t, "../secret.txt", filepath.Join(up, "site", "s.txt"))
	_, err = s.Publish(ctx, PublishParams{Project: "web", Dir: filepath.Join(up, "site")})
	wantCode(t, err, ferry.EINVALID, "s.txt", "outside")

	hidden := writeTree(t, map[string]string{"index.html": "i", ".env": "SECRET=1"})
	mustSymlink(t, ".env", filepath.Join(hidden, "env.txt"))
	_, err = s.Publish(ctx, PublishParams{Project: "web", Dir: hidden})
	wantCode(t, err, ferry.EINVALID, "env.txt", "hidden")

	loop := writeTree(t, map[string]string{"a/index.html": "i"})
	mustSymlink(t, "..", filepath.Join(loop, "a", "up"))
	_, err = s.Publish(ctx, PublishParams{Project: "web", Dir: loop})
	wantCode(t, err, ferry.EINVALID, "loop")

	broken := writeTree(t, map[string]string{"index.html": "i"})
	mustSymlink(t, "nowhere", filepath.Join(broken, "gone.html"))
	_, err = s.Publish(ctx, PublishParams{Project: "web", Dir: broken})
	wantCode(t, err, ferry.EINVALID, "gone.html", "broken")

	// The folder itself may be a symlink (build tools do that).
	linked := filepath.Join(t.TempDir(), "out")
	mustSymlink(t, in, linked)
	if _, err := s.Publish(ctx, PublishParams{Project: "web", Dir: linked}); err != nil {
		t.Errorf("publish through a symlinked folder: %v", err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestPublishLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, st := newFileStore(t)
	dir := writeTree(t, map[string]string{"a.html": "12345", "b.html": "12345", "c.html": "12345"})
	for _, tt := range []struct {
		limits Limits
		want   []string
	}{
		{Limits{MaxFiles: 2}, []string{"2 files", "c.html"}},
		{Limits{MaxFileBytes: 4}, []string{"a.html", "4 bytes"}},
		{Limits{MaxTotalBytes: 12}, []string{"c.html", "12 bytes"}},
	} {
		_, err := s.Publish(ctx, PublishParams{Project: "web", Dir: dir, Limits: tt.limits})
		wantCode(t, err, ferry.ETOOLARGE, tt.want...)
	}
	if objs, _ := st.List(ctx, ""); len(objs) != 0 {
		t.Errorf("a refused publish stored %v", objs)
	}
	if _, err := s.Publish(ctx, PublishParams{Project: "web", Dir: dir, Limits: Limits{MaxFiles: 3, MaxFileBytes: 5, MaxTotalBytes: 15}}); err != nil {
		t.Errorf("publish at the limits: %v", err)
	}
}

func TestPublishBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, st := newFileStore(t)
	good := writeTree(t, map[string]string{"index.html": "i"})
	for _, p := range []PublishParams{
		{Project: "../etc", Dir: good},
		{Project: "Web", Dir: good},
		{Project: "we--b", Dir: good},
		{Project: "", Dir: good},
		{Project: "web", Dir: good, Aliases: []string{"../../x"}},
		{Project: "web", Dir: good, Aliases: []string{"dpl-0123456789abcdef"}},
		{Project: "web", Dir: good, DeploymentID: "../x"},
		{Project: "web", Dir: filepath.Join(good, "missing")},
		{Project: "web", Dir: filepath.Join(good, "index.html")},
	} {
		_, err := s.Publish(ctx, p)
		wantCode(t, err, ferry.EINVALID)
	}
	if objs, _ := st.List(ctx, ""); len(objs) != 0 {
		t.Errorf("refused publishes stored %v", objs)
	}
	for name, want := range map[string]string{"a\\b.html": "backslash", "\xff.html": "UTF-8", "a\nb.html": "control"} {
		dir := writeTree(t, map[string]string{"index.html": "i"})
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := s.Publish(ctx, PublishParams{Project: "web", Dir: dir})
		wantCode(t, err, ferry.EINVALID, want)
	}
}

func TestPublishSameDeploymentID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newFileStore(t)
	id := NewDeploymentID()
	dir := writeTree(t, map[string]string{"index.html": "one"})
	for range 2 { // a retried job publishes again under the same id
		res, err := s.Publish(ctx, PublishParams{Project: "web", Dir: dir, DeploymentID: id})
		if err != nil || res.Deployment != id {
			t.Fatalf("publish with id: %+v, %v", res, err)
		}
	}
	other := writeTree(t, map[string]string{"index.html": "two"})
	_, err := s.Publish(ctx, PublishParams{Project: "web", Dir: other, DeploymentID: id})
	wantCode(t, err, ferry.ECONFLICT, id)
}

func TestAliases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, st := newFileStore(t)
	dir := writeTree(t, map[string]string{"index.html": "i"})
	one, err := s.Publish(ctx, PublishParams{Project: "web", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	two, err := s.Publish(ctx, PublishParams{Project: "web", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}

	_, err = s.AliasGet(ctx, "web", "production")
	wantCode(t, err, ferry.ENOTFOUND)
	wantCode(t, s.AliasSet(ctx, "web", "production", NewDeploymentID()), ferry.ENOTFOUND, "publish it first")
	wantCode(t, s.AliasSet(ctx, "web", "production", "nope"), ferry.EINVALID)
	wantCode(t, s.AliasSet(ctx, "web", "dpl-x", one.Deployment), ferry.EINVALID)
	wantCode(t, s.AliasSet(ctx, "other", "production", one.Deployment), ferry.ENOTFOUND)

	if err := s.AliasSet(ctx, "web", "production", one.Deployment); err != nil {
		t.Fatal(err)
	}
	if err := s.AliasSet(ctx, "web", "pr-3", two.Deployment); err != nil {
		t.Fatal(err)
	}
	// Promote, then roll back: one object write each.
	for _, id := range []string{two.Deployment, one.Deployment} {
		if err := s.AliasSet(ctx, "web", "production", id); err != nil {
			t.Fatal(err)
		}
		a, err := s.AliasGet(ctx, "web", "production")
		if err != nil || a.Deployment != id || a.UpdatedAt.IsZero() {
			t.Fatalf("after set to %s: %+v, %v", id, a, err)
		}
	}
	// Junk under aliases/ is ignored by the listing.
	if err := st.Put(ctx, "projects/web/aliases/Bad Name.json", strings.NewReader("{}"), 2, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := s.AliasList(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "pr-3" || list[0].Deployment != two.Deployment || list[1].Name != "production" || list[1].Deployment != one.Deployment {
		t.Errorf("AliasList = %+v", list)
	}
	if err := s.AliasDelete(ctx, "web", "pr-3"); err != nil {
		t.Fatal(err)
	}
	if err := s.AliasDelete(ctx, "web", "pr-3"); err != nil {
		t.Errorf("deleting a missing alias: %v", err)
	}
	_, err = s.AliasGet(ctx, "web", "pr-3")
	wantCode(t, err, ferry.ENOTFOUND)
	if list, _ := s.AliasList(ctx, "web"); len(list) != 1 {
		t.Errorf("after delete AliasList = %+v", list)
	}
	if list, err := s.AliasList(ctx, "empty"); err != nil || len(list) != 0 {
		t.Errorf("AliasList of an empty project = %+v, %v", list, err)
	}
	wantCode(t, s.AliasDelete(ctx, "web", "../../x"), ferry.EINVALID)
}

func TestManifestGetChecks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, st := newFileStore(t)
	_, err := s.ManifestGet(ctx, "web", NewDeploymentID())
	wantCode(t, err, ferry.ENOTFOUND)
	_, err = s.ManifestGet(ctx, "web", "../../etc")
	wantCode(t, err, ferry.EINVALID)

	res, err := s.Publish(ctx, PublishParams{Project: "web", Dir: writeTree(t, map[string]string{"index.html": "i"})})
	if err != nil {
		t.Fatal(err)
	}
	data := readObject(t, st, ManifestKey("web", res.Deployment))
	put := func(key, body string) {
		if err := st.Put(ctx, key, strings.NewReader(body), int64(len(body)), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A manifest copied to another project or id is refused.
	other := NewDeploymentID()
	put(ManifestKey("web", other), data)
	_, err = s.ManifestGet(ctx, "web", other)
	wantCode(t, err, ferry.EINTERNAL, res.Deployment)
	put(ManifestKey("app", res.Deployment), data)
	_, err = s.ManifestGet(ctx, "app", res.Deployment)
	wantCode(t, err, ferry.EINTERNAL)
	// A newer format is refused with advice.
	put(ManifestKey("web", res.Deployment), strings.Replace(data, `"version":1`, `"version":2`, 1))
	_, err = s.ManifestGet(ctx, "web", res.Deployment)
	wantCode(t, err, ferry.EINTERNAL, "upgrade")
}

func TestContentType(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"/a.JS":        "text/javascript; charset=utf-8",
		"/a.mjs":       "text/javascript; charset=utf-8",
		"/a.svg":       "image/svg+xml",
		"/a.wasm":      "application/wasm",
		"/a.json":      "application/json",
		"/a.txt":       "text/plain; charset=utf-8",
		"/noext":       "text/plain; charset=utf-8",
		"/a.unknown-x": "text/plain; charset=utf-8",
	} {
		if got := ContentType(name, []byte("hello")); got != want {
			t.Errorf("ContentType(%q) = %q, want %q", name, got, want)
		}
	}
	if got := ContentType("/bin", []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}); got != "image/png" {
		t.Errorf("sniffed PNG = %q", got)
	}
}

func TestOpenRefusesSwappedSymlink(t *testing.T) {
	t.Parallel()
	if noFollow == 0 {
		t.Skip("no O_NOFOLLOW on this system")
	}
	dir := t.TempDir()
	link := filepath.Join(dir, "index.html")
	mustSymlink(t, "/etc/passwd", link) // as if swapped in after the walk saw a regular file
	f := localFile{urlPath: "/index.html", real: link}
	_, err := f.open()
	wantCode(t, err, ferry.EINVALID, "index.html")
}

// TestPublishSPADefault: the SPA fallback is on by default only for output whose one HTML file is
// /index.html, and a build that knows its framework is an SPA says so through Settings.SPA.
func TestPublishSPADefault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newFileStore(t)
	cases := []struct {
		name     string
		files    map[string]string
		settings *siteconfig.File
		want     bool
	}{
		{"vite spa", map[string]string{"index.html": "i", "assets/index-CLDdwZDr.js": "j"}, nil, true},
		{"multi-page", map[string]string{"index.html": "i", "about/index.html": "a", "blog.html": "b"}, nil, false},
		{"multi-page, build says spa", map[string]string{"index.html": "i", "silent.html": "s"}, &siteconfig.File{SPA: ptrBool(true)}, true},
		{"spa with 404", map[string]string{"index.html": "i", "404.html": "n"}, nil, false},
	}
	for i, c := range cases {
		res, err := s.Publish(ctx, PublishParams{Project: fmt.Sprintf("spa%d", i), Dir: writeTree(t, c.files), Settings: c.settings})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		m, err := s.ManifestGet(ctx, res.Project, res.Deployment)
		if err != nil {
			t.Fatal(err)
		}
		if m.Config.SPA != c.want {
			t.Errorf("%s: SPA = %v, want %v", c.name, m.Config.SPA, c.want)
		}
	}
}

func ptrBool(b bool) *bool { return &b }
