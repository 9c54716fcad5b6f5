package store_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var idCounter atomic.Uint64

// newID makes a deployment id of the real form ("dpl-" + 16 base32hex characters), unique in the test binary.
func newID() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuv"
	var r [8]byte
	_, _ = rand.Read(r[:])
	n := idCounter.Add(1)
	b := []byte("dpl-")
	for i := 0; i < 8; i++ { // 8 characters of counter keep ids in creation order
		b = append(b, alphabet[(n>>(5*(7-i)))&31])
	}
	for i := 0; i < 8; i++ {
		b = append(b, alphabet[r[i]&31])
	}
	return string(b)
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := ferry.ErrorCode(err); got != code {
		t.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

var projectCounter atomic.Int64

func newProject(t *testing.T, st *store.Store) *store.Project {
	t.Helper()
	n := projectCounter.Add(1)
	return must[*store.Project](t)(st.ProjectCreate(context.Background(), store.ProjectCreateParams{
		Name: fmt.Sprintf("site-%d", n), Repository: fmt.Sprintf("octo/site-%d", n),
		CloneURL: fmt.Sprintf("https://github.com/octo/site-%d.git", n), GitHubRepoID: 1000 + n,
	}))
}

func newDeployment(t *testing.T, st *store.Store, projectID int64, pr int, ref string) *store.Deployment {
	t.Helper()
	kind := store.KindPreview
	if ref == "main" && pr == 0 {
		kind = store.KindProduction
	}
	return must[*store.Deployment](t)(st.DeploymentCreate(context.Background(), store.DeploymentCreateParams{
		ID: newID(), ProjectID: projectID, CommitSHA: "0123456789abcdef0123456789abcdef01234567", Ref: ref, PRNumber: pr,
		Kind: kind, Alias: "git-" + ref,
	}))
}

func TestInstallations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))

	in := must[*store.Installation](t)(st.InstallationUpsert(ctx, store.InstallationUpsertParams{
		ID: 42, AccountLogin: "octo", AccountType: "Organization", AccountID: 7,
	}))
	if in.ID != 42 || in.AccountLogin != "octo" || in.Suspended() || in.CreatedAt.IsZero() {
		t.Fatalf("created %+v", in)
	}
	// A redelivered or renamed installation updates in place.
	in = must[*store.Installation](t)(st.InstallationUpsert(ctx, store.InstallationUpsertParams{
		ID: 42, AccountLogin: "octo-renamed", AccountType: "Organization", AccountID: 7,
	}))
	if in.AccountLogin != "octo-renamed" {
		t.Fatalf("upsert did not update: %+v", in)
	}

	in = must[*store.Installation](t)(st.InstallationSetSuspended(ctx, store.InstallationSetSuspendedParams{ID: 42, Suspended: true}))
	if !in.Suspended() {
		t.Fatal("not suspended after suspend")
	}
	got := must[*store.Installation](t)(st.InstallationGetByID(ctx, 42))
	if !got.Suspended() {
		t.Fatal("suspension not stored")
	}
	in = must[*store.Installation](t)(st.InstallationSetSuspended(ctx, store.InstallationSetSuspendedParams{ID: 42}))
	if in.Suspended() {
		t.Fatal("still suspended after unsuspend")
	}

	p := must[*store.Project](t)(st.ProjectCreate(ctx, store.ProjectCreateParams{
		Name: "inst-site", CloneURL: "https://github.com/octo/inst-site.git", GitHubRepoID: 99, InstallationID: 42,
	}))
	list := must[[]*store.Project](t)(st.ProjectListByInstallation(ctx, 42))
	if len(list) != 1 || list[0].ID != p.ID {
		t.Fatalf("ProjectListByInstallation = %v", list)
	}

	if err := st.InstallationDelete(ctx, 42); err != nil {
		t.Fatal(err)
	}
	_, err := st.InstallationGetByID(ctx, 42)
	wantCode(t, err, ferry.ENOTFOUND)
	wantCode(t, st.InstallationDelete(ctx, 42), ferry.ENOTFOUND)
	_, err = st.InstallationSetSuspended(ctx, store.InstallationSetSuspendedParams{ID: 42, Suspended: true})
	wantCode(t, err, ferry.ENOTFOUND)
	// The project outlives its installation, detached.
	if p = must[*store.Project](t)(st.ProjectGetByID(ctx, p.ID)); p.InstallationID != 0 {
		t.Fatalf("project still on deleted installation: %+v", p)
	}
}

func TestProjects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))

	p := must[*store.Project](t)(st.ProjectCreate(ctx, store.ProjectCreateParams{
		Name: "my-site", Repository: "octo/my-site", CloneURL: "https://github.com/octo/my-site.git", GitHubRepoID: 5,
		Settings: json.RawMessage(`{"spa": true}`),
	}))
	if p.ID == 0 || p.ProductionBranch != "main" || p.InstallationID != 0 || p.OwnerID != 0 {
		t.Fatalf("created %+v", p)
	}
	var settings map[string]any
	if err := json.Unmarshal(p.Settings, &settings); err != nil || settings["spa"] != true {
		t.Fatalf("settings = %s (%v)", p.Settings, err)
	}
	for name, get := range map[string]func() (*store.Project, error){
		"by id":      func() (*store.Project, error) { return st.ProjectGetByID(ctx, p.ID) },
		"by name":    func() (*store.Project, error) { return st.ProjectGetByName(ctx, "my-site") },
		"by repo id": func() (*store.Project, error) { return st.ProjectGetByRepoID(ctx, 5) },
	} {
		got, err := get()
		if err != nil || got.ID != p.ID || got.CloneURL != p.CloneURL {
			t.Errorf("get %s = %+v, %v", name, got, err)
		}
	}

	_, err := st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "my-site", CloneURL: "https://x/y.git"})
	wantCode(t, err, ferry.ECONFLICT)
	_, err = st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "other", CloneURL: "https://x/y.git", GitHubRepoID: 5})
	wantCode(t, err, ferry.ECONFLICT)
	for _, bad := range []string{"", "My-Site", "a--b", "-a", "a-", "a_b", "a.b", "x23456789012345678901234567890123456789012"} {
		_, err = st.ProjectCreate(ctx, store.ProjectCreateParams{Name: bad, CloneURL: "https://x/y.git"})
		wantCode(t, err, ferry.EINVALID)
	}
	_, err = st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "no-url"})
	wantCode(t, err, ferry.EINVALID)
	_, err = st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "bad-json", CloneURL: "https://x/y.git", Settings: json.RawMessage(`{`)})
	wantCode(t, err, ferry.EINVALID)
	_, err = st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "no-inst", CloneURL: "https://x/y.git", InstallationID: 12345})
	wantCode(t, err, ferry.ENOTFOUND)

	_, err = st.ProjectGetByName(ctx, "missing")
	wantCode(t, err, ferry.ENOTFOUND)
	_, err = st.ProjectGetByID(ctx, 999999)
	wantCode(t, err, ferry.ENOTFOUND)
	_, err = st.ProjectGetByRepoID(ctx, 999999)
	wantCode(t, err, ferry.ENOTFOUND)

	// Deleting a project takes its deployments and logs with it.
	d := newDeployment(t, st, p.ID, 0, "main")
	must[int64](t)(st.DeploymentLogAppend(ctx, store.DeploymentLogAppendParams{DeploymentID: d.ID, Lines: []store.LogLine{{Line: "x"}}}))
	deleted := must[*store.Project](t)(st.ProjectDeleteByRepoID(ctx, 5))
	if deleted.Name != "my-site" {
		t.Fatalf("deleted %+v", deleted)
	}
	_, err = st.DeploymentGetByID(ctx, d.ID)
	wantCode(t, err, ferry.ENOTFOUND)
	_, err = st.ProjectDeleteByRepoID(ctx, 5)
	wantCode(t, err, ferry.ENOTFOUND)

	p2 := newProject(t, st)
	if got := must[*store.Project](t)(st.ProjectDeleteByID(ctx, p2.ID)); got.ID != p2.ID {
		t.Fatalf("ProjectDeleteByID returned %+v", got)
	}
	_, err = st.ProjectDeleteByID(ctx, p2.ID)
	wantCode(t, err, ferry.ENOTFOUND)
}

func TestDeploymentCreateAndGet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.Tx(t))
	p := newProject(t, st)

	d := newDeployment(t, st, p.ID, 7, "feature")
	if d.Status != store.StatusQueued || d.Kind != store.KindPreview || d.PRNumber != 7 || d.Attempt != 0 ||
		!d.StartedAt.IsZero() || !d.FinishedAt.IsZero() || d.GitHubDeploymentID != 0 || d.SupersededBy != "" {
		t.Fatalf("created %+v", d)
	}
	got := must[*store.Deployment](t)(st.DeploymentGetByID(ctx, d.ID))
	if got.ID != d.ID || got.ProjectID != p.ID || got.Ref != "feature" || got.Alias != "git-feature" {
		t.Fatalf("got %+v", got)
	}
	got = must[*store.Deployment](t)(st.DeploymentSetGitHubID(ctx, store.DeploymentSetGitHubIDParams{ID: d.ID, GitHubDeploymentID: 555}))
	if got.GitHubDeploymentID != 555 {
		t.Fatalf("GitHubDeploymentID = %d", got.GitHubDeploymentID)
	}

	cases := []struct {
		p    store.DeploymentCreateParams
		code string
	}{
		{store.DeploymentCreateParams{ID: d.ID, ProjectID: p.ID, CommitSHA: "abc", Kind: store.KindPreview}, ferry.ECONFLICT},
		{store.DeploymentCreateParams{ID: newID(), ProjectID: 999999, CommitSHA: "abc", Kind: store.KindPreview}, ferry.ENOTFOUND},
		{store.DeploymentCreateParams{ID: "dpl-short", ProjectID: p.ID, CommitSHA: "abc", Kind: store.KindPreview}, ferry.EINVALID},
		{store.DeploymentCreateParams{ID: "", ProjectID: p.ID, CommitSHA: "abc", Kind: store.KindPreview}, ferry.EINVALID},
		{store.DeploymentCreateParams{ID: newID(), ProjectID: p.ID, CommitSHA: "", Kind: store.KindPreview}, ferry.EINVALID},
		{store.DeploymentCreateParams{ID: newID(), ProjectID: p.ID, CommitSHA: "abc", Kind: "staging"}, ferry.EINVALID},
	}
	for _, c := range cases {
		// Each failure aborts a transaction, so each runs in a savepoint of its own.
		err := st.InTx(ctx, func(st *store.Store, _ pgx.Tx) error {
			_, err := st.DeploymentCreate(ctx, c.p)
			return err
		})
		wantCode(t, err, c.code)
	}
	_, err := st.DeploymentGetByID(ctx, "dpl-0000000000000000")
	wantCode(t, err, ferry.ENOTFOUND)
	_, err = st.DeploymentSetGitHubID(ctx, store.DeploymentSetGitHubIDParams{ID: "dpl-0000000000000000", GitHubDeploymentID: 1})
	wantCode(t, err, ferry.ENOTFOUND)
}

// TestDeploymentTransitions tries every status change from every status: exactly the lifecycle's moves succeed.
func TestDeploymentTransitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.Tx(t))
	p := newProject(t, st)

	all := []store.DeploymentStatus{store.StatusQueued, store.StatusBuilding, store.StatusReady, store.StatusFailed,
		store.StatusError, store.StatusCanceled, store.StatusInactive}
	pathTo := map[store.DeploymentStatus][]store.DeploymentStatus{
		store.StatusQueued:   nil,
		store.StatusBuilding: {store.StatusBuilding},
		store.StatusReady:    {store.StatusBuilding, store.StatusReady},
		store.StatusFailed:   {store.StatusBuilding, store.StatusFailed},
		store.StatusError:    {store.StatusError},
		store.StatusCanceled: {store.StatusCanceled},
		store.StatusInactive: {store.StatusBuilding, store.StatusReady, store.StatusInactive},
	}
	allowed := map[[2]store.DeploymentStatus]bool{
		{"queued", "building"}: true, {"queued", "failed"}: true, {"queued", "error"}: true, {"queued", "canceled"}: true,
		{"building", "building"}: true, {"building", "ready"}: true, {"building", "failed"}: true,
		{"building", "error"}: true, {"building", "canceled"}: true,
		{"ready", "inactive"}: true,
	}
	for _, from := range all {
		for _, to := range all {
			d := newDeployment(t, st, p.ID, 0, "b")
			for _, s := range pathTo[from] {
				must[*store.Deployment](t)(st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: d.ID, Status: s}))
			}
			if got := store.CanTransition(from, to); got != allowed[[2]store.DeploymentStatus{from, to}] {
				t.Errorf("CanTransition(%s, %s) = %v", from, to, got)
			}
			got, err := st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: d.ID, Status: to, Error: "why"})
			switch {
			case allowed[[2]store.DeploymentStatus{from, to}]:
				if err != nil || got.Status != to {
					t.Errorf("%s -> %s: %v, %v", from, to, got, err)
				}
			case to == store.StatusQueued:
				wantCode(t, err, ferry.EINVALID) // nothing ever moves back to queued
			default:
				if ferry.ErrorCode(err) != ferry.ECONFLICT {
					t.Errorf("%s -> %s: err %v, want ECONFLICT", from, to, err)
				}
				if cur := must[*store.Deployment](t)(st.DeploymentGetByID(ctx, d.ID)); cur.Status != from {
					t.Errorf("%s -> %s refused but status changed to %s", from, to, cur.Status)
				}
			}
		}
	}
	_, err := st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: "dpl-0000000000000000", Status: store.StatusBuilding})
	wantCode(t, err, ferry.ENOTFOUND)
	_, err = st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: "dpl-0000000000000000", Status: "bogus"})
	wantCode(t, err, ferry.EINVALID)
}

// TestDeploymentLifecycleFields checks what each move records: attempts, times, error text and URLs.
func TestDeploymentLifecycleFields(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))
	p := newProject(t, st)
	d := newDeployment(t, st, p.ID, 0, "main")
	update := func(params store.DeploymentUpdateStatusParams) *store.Deployment {
		t.Helper()
		params.ID = d.ID
		return must[*store.Deployment](t)(st.DeploymentUpdateStatus(ctx, params))
	}

	b1 := update(store.DeploymentUpdateStatusParams{Status: store.StatusBuilding})
	if b1.Attempt != 1 || b1.StartedAt.IsZero() || !b1.FinishedAt.IsZero() {
		t.Fatalf("first attempt: %+v", b1)
	}
	// An infrastructure error mid-build: the retry is attempt 2, clears the old error, keeps the first start.
	update(store.DeploymentUpdateStatusParams{Status: store.StatusBuilding, Error: "storage unavailable"})
	b2 := update(store.DeploymentUpdateStatusParams{Status: store.StatusBuilding})
	if b2.Attempt != 3 || b2.Error != "" || !b2.StartedAt.Equal(b1.StartedAt) {
		t.Fatalf("retry: %+v", b2)
	}
	r := update(store.DeploymentUpdateStatusParams{Status: store.StatusReady, URL: "http://dpl--site.localhost", AliasURL: "http://site.localhost"})
	if r.URL != "http://dpl--site.localhost" || r.AliasURL != "http://site.localhost" || r.FinishedAt.IsZero() {
		t.Fatalf("ready: %+v", r)
	}
	in := update(store.DeploymentUpdateStatusParams{Status: store.StatusInactive})
	if in.URL != r.URL || !in.FinishedAt.Equal(r.FinishedAt) {
		t.Fatalf("inactive changed URL or finish time: %+v", in)
	}

	f := newDeployment(t, st, p.ID, 0, "main")
	failed := must[*store.Deployment](t)(st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: f.ID, Status: store.StatusFailed, Error: "npm run build exited 1"}))
	if failed.Error != "npm run build exited 1" || failed.FinishedAt.IsZero() || failed.Attempt != 0 {
		t.Fatalf("failed: %+v", failed)
	}
}

// TestDeploymentUpdateStatusRace checks that when workers race to finish one build, exactly one wins.
func TestDeploymentUpdateStatusRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))
	p := newProject(t, st)
	d := newDeployment(t, st, p.ID, 0, "main")
	must[*store.Deployment](t)(st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: d.ID, Status: store.StatusBuilding}))

	const workers = 8
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			status := store.StatusReady
			if i%2 == 1 {
				status = store.StatusCanceled
			}
			_, err := st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: d.ID, Status: status})
			switch ferry.ErrorCode(err) {
			case "":
				wins.Add(1)
			case ferry.ECONFLICT:
				conflicts.Add(1)
			default:
				t.Errorf("worker %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != workers-1 {
		t.Fatalf("wins=%d conflicts=%d, want 1 and %d", wins.Load(), conflicts.Load(), workers-1)
	}
}

func TestDeploymentListByProject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// In one transaction now() never moves, so every created_at ties and the id alone must order the pages.
	for name, st := range map[string]*store.Store{"pool": store.New(pgtest.New(t)), "tx": store.New(pgtest.Tx(t))} {
		t.Run(name, func(t *testing.T) {
			p, other := newProject(t, st), newProject(t, st)
			newDeployment(t, st, other.ID, 0, "main")
			var ids []string // newest first
			for i := 0; i < 7; i++ {
				ref, pr := "main", 0
				if i%2 == 1 {
					ref, pr = "feature", 3
				}
				ids = append([]string{newDeployment(t, st, p.ID, pr, ref).ID}, ids...)
			}
			must[*store.Deployment](t)(st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: ids[0], Status: store.StatusCanceled}))

			var got []string
			cursor, pages := "", 0
			for {
				res := must[*store.DeploymentListResult](t)(st.DeploymentListByProject(ctx, store.DeploymentListByProjectParams{ProjectID: p.ID, Limit: 3, Cursor: cursor}))
				pages++
				for _, d := range res.Deployments {
					got = append(got, d.ID)
				}
				if res.NextCursor == "" {
					break
				}
				cursor = res.NextCursor
			}
			if fmt.Sprint(got) != fmt.Sprint(ids) || pages != 3 {
				t.Fatalf("paged %d pages: %v\nwant %v", pages, got, ids)
			}

			count := func(params store.DeploymentListByProjectParams) int {
				t.Helper()
				params.ProjectID = p.ID
				return len(must[*store.DeploymentListResult](t)(st.DeploymentListByProject(ctx, params)).Deployments)
			}
			for name, c := range map[string]struct {
				params store.DeploymentListByProjectParams
				want   int
			}{
				"all":       {store.DeploymentListByProjectParams{}, 7},
				"ref":       {store.DeploymentListByProjectParams{Ref: "feature"}, 3},
				"pr":        {store.DeploymentListByProjectParams{PRNumber: 3}, 3},
				"kind":      {store.DeploymentListByProjectParams{Kind: store.KindProduction}, 4},
				"queued":    {store.DeploymentListByProjectParams{Statuses: []store.DeploymentStatus{store.StatusQueued}}, 6},
				"two":       {store.DeploymentListByProjectParams{Statuses: []store.DeploymentStatus{store.StatusQueued, store.StatusCanceled}}, 7},
				"no match":  {store.DeploymentListByProjectParams{Ref: "feature", Kind: store.KindProduction}, 0},
				"limit 2":   {store.DeploymentListByProjectParams{Limit: 2}, 2},
				"big limit": {store.DeploymentListByProjectParams{Limit: 100000}, 7},
			} {
				if got := count(c.params); got != c.want {
					t.Errorf("%s: %d deployments, want %d", name, got, c.want)
				}
			}
			_, err := st.DeploymentListByProject(ctx, store.DeploymentListByProjectParams{ProjectID: p.ID, Cursor: "not a cursor"})
			wantCode(t, err, ferry.EINVALID)
		})
	}
}

func TestDeploymentSupersede(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))
	p := newProject(t, st)

	pr1 := newDeployment(t, st, p.ID, 5, "feature")
	pr2 := newDeployment(t, st, p.ID, 5, "feature")
	must[*store.Deployment](t)(st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: pr2.ID, Status: store.StatusBuilding}))
	branch := newDeployment(t, st, p.ID, 0, "feature") // same branch, no PR: another line of work
	doneOld := newDeployment(t, st, p.ID, 5, "feature")
	must[*store.Deployment](t)(st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: doneOld.ID, Status: store.StatusFailed}))
	newest := newDeployment(t, st, p.ID, 5, "feature")
	later := newDeployment(t, st, p.ID, 5, "feature") // created after newest: a late redelivery must not cancel it

	active := must[[]*store.Deployment](t)(st.DeploymentListActiveByRef(ctx, store.DeploymentListActiveByRefParams{ProjectID: p.ID, PRNumber: 5}))
	if ids := idsOf(active); fmt.Sprint(ids) != fmt.Sprint([]string{pr1.ID, pr2.ID, newest.ID, later.ID}) {
		t.Fatalf("active by PR = %v", ids)
	}
	active = must[[]*store.Deployment](t)(st.DeploymentListActiveByRef(ctx, store.DeploymentListActiveByRefParams{ProjectID: p.ID, Ref: "feature"}))
	if ids := idsOf(active); fmt.Sprint(ids) != fmt.Sprint([]string{branch.ID}) {
		t.Fatalf("active by branch = %v", ids)
	}

	canceled := must[[]*store.Deployment](t)(st.DeploymentSupersede(ctx, store.DeploymentSupersedeParams{NewID: newest.ID, ProjectID: p.ID, PRNumber: 5}))
	got := map[string]bool{}
	for _, d := range canceled {
		got[d.ID] = true
		if d.Status != store.StatusCanceled || d.SupersededBy != newest.ID || d.FinishedAt.IsZero() {
			t.Errorf("superseded %+v", d)
		}
	}
	if len(got) != 2 || !got[pr1.ID] || !got[pr2.ID] {
		t.Fatalf("superseded %v, want %s and %s", got, pr1.ID, pr2.ID)
	}
	for id, want := range map[string]store.DeploymentStatus{branch.ID: store.StatusQueued, doneOld.ID: store.StatusFailed, newest.ID: store.StatusQueued, later.ID: store.StatusQueued} {
		if d := must[*store.Deployment](t)(st.DeploymentGetByID(ctx, id)); d.Status != want {
			t.Errorf("%s is %s, want %s", id, d.Status, want)
		}
	}
	// Superseding again is a no-op.
	if again := must[[]*store.Deployment](t)(st.DeploymentSupersede(ctx, store.DeploymentSupersedeParams{NewID: newest.ID, ProjectID: p.ID, PRNumber: 5})); len(again) != 0 {
		t.Fatalf("second supersede canceled %v", idsOf(again))
	}
}

func idsOf(ds []*store.Deployment) []string {
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	return ids
}

func TestDeploymentLogs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))
	p := newProject(t, st)
	d := newDeployment(t, st, p.ID, 0, "main")

	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	last := must[int64](t)(st.DeploymentLogAppend(ctx, store.DeploymentLogAppendParams{DeploymentID: d.ID, Lines: []store.LogLine{
		{Step: "install", Line: "npm install", Time: at}, {Step: "install", Line: "added 3 packages"},
	}}))
	if last != 2 {
		t.Fatalf("first batch ends at %d, want 2", last)
	}
	if last = must[int64](t)(st.DeploymentLogAppend(ctx, store.DeploymentLogAppendParams{DeploymentID: d.ID})); last != 2 {
		t.Fatalf("empty batch returned %d, want 2", last)
	}
	last = must[int64](t)(st.DeploymentLogAppend(ctx, store.DeploymentLogAppendParams{DeploymentID: d.ID, Lines: []store.LogLine{
		{Step: "build", Line: "vite build"}, {Step: "build", Line: "done"}, {Step: "upload", Line: "3 files"},
	}}))
	if last != 5 {
		t.Fatalf("second batch ends at %d, want 5", last)
	}

	all := must[[]store.LogLine](t)(st.DeploymentLogList(ctx, store.DeploymentLogListParams{DeploymentID: d.ID}))
	if len(all) != 5 || all[0].Seq != 1 || all[0].Line != "npm install" || !all[0].Time.Equal(at) || all[4].Step != "upload" || all[4].Time.IsZero() {
		t.Fatalf("all lines: %+v", all)
	}
	// A reconnecting tail resumes after the last line it saw.
	resumed := must[[]store.LogLine](t)(st.DeploymentLogList(ctx, store.DeploymentLogListParams{DeploymentID: d.ID, AfterSeq: 3}))
	if len(resumed) != 2 || resumed[0].Seq != 4 || resumed[1].Line != "3 files" {
		t.Fatalf("after 3: %+v", resumed)
	}
	page := must[[]store.LogLine](t)(st.DeploymentLogList(ctx, store.DeploymentLogListParams{DeploymentID: d.ID, AfterSeq: 1, Limit: 2}))
	if len(page) != 2 || page[0].Seq != 2 || page[1].Seq != 3 {
		t.Fatalf("page: %+v", page)
	}
	none := must[[]store.LogLine](t)(st.DeploymentLogList(ctx, store.DeploymentLogListParams{DeploymentID: d.ID, AfterSeq: 5}))
	if none == nil || len(none) != 0 {
		t.Fatalf("after the end: %#v, want an empty list", none)
	}
	empty := newDeployment(t, st, p.ID, 0, "main")
	if lines := must[[]store.LogLine](t)(st.DeploymentLogList(ctx, store.DeploymentLogListParams{DeploymentID: empty.ID})); len(lines) != 0 {
		t.Fatalf("new deployment has lines %v", lines)
	}

	_, err := st.DeploymentLogAppend(ctx, store.DeploymentLogAppendParams{DeploymentID: "dpl-0000000000000000", Lines: []store.LogLine{{Line: "x"}}})
	wantCode(t, err, ferry.ENOTFOUND)
	_, err = st.DeploymentLogList(ctx, store.DeploymentLogListParams{DeploymentID: "dpl-0000000000000000"})
	wantCode(t, err, ferry.ENOTFOUND)
}

// TestDeploymentLogConcurrentAppends checks that concurrent writers get gapless, distinct sequence numbers.
func TestDeploymentLogConcurrentAppends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))
	p := newProject(t, st)
	d := newDeployment(t, st, p.ID, 0, "main")
	const writers, batches, perBatch = 4, 10, 5
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				lines := make([]store.LogLine, perBatch)
				for i := range lines {
					lines[i] = store.LogLine{Step: fmt.Sprint(w), Line: fmt.Sprintf("w%d b%d l%d", w, b, i)}
				}
				if _, err := st.DeploymentLogAppend(ctx, store.DeploymentLogAppendParams{DeploymentID: d.ID, Lines: lines}); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	lines := must[[]store.LogLine](t)(st.DeploymentLogList(ctx, store.DeploymentLogListParams{DeploymentID: d.ID}))
	if len(lines) != writers*batches*perBatch {
		t.Fatalf("%d lines, want %d", len(lines), writers*batches*perBatch)
	}
	for i, l := range lines {
		if l.Seq != int64(i+1) {
			t.Fatalf("line %d has seq %d", i, l.Seq)
		}
	}
	// Each batch stays contiguous.
	for i := 0; i < len(lines); i += perBatch {
		for j := 1; j < perBatch; j++ {
			if lines[i+j].Step != lines[i].Step {
				t.Fatalf("batch at seq %d interleaved: %q then %q", lines[i].Seq, lines[i].Line, lines[i+j].Line)
			}
		}
	}
}

func TestWebhookDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	st := store.New(pool)

	params := store.WebhookDeliveryInsertParams{ID: "72d3162e-cc78-11e3-81ab-4c9367dc0958", Event: "push", InstallationID: 42}
	if ok := must[bool](t)(st.WebhookDeliveryInsert(ctx, params)); !ok {
		t.Fatal("first delivery not inserted")
	}
	if ok := must[bool](t)(st.WebhookDeliveryInsert(ctx, params)); ok {
		t.Fatal("redelivery inserted again")
	}
	_, err := st.WebhookDeliveryInsert(ctx, store.WebhookDeliveryInsertParams{Event: "push"})
	wantCode(t, err, ferry.EINVALID)

	// Intake persists in the caller's transaction: a rollback forgets the delivery, so GitHub's retry is new.
	errBoom := errors.New("enqueue failed")
	err = st.InTx(ctx, func(st *store.Store, tx pgx.Tx) error {
		if ok, err := st.WebhookDeliveryInsert(ctx, store.WebhookDeliveryInsertParams{ID: "rolled-back", Event: "ping"}); err != nil || !ok {
			t.Fatalf("insert in tx: %v %v", ok, err)
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("InTx returned %v", err)
	}
	if ok := must[bool](t)(st.WebhookDeliveryInsert(ctx, store.WebhookDeliveryInsertParams{ID: "rolled-back", Event: "ping"})); !ok {
		t.Fatal("rolled-back delivery was kept")
	}

	// WithTx: the caller's own transaction, committed.
	tx := must[pgx.Tx](t)(pool.Begin(ctx))
	if ok := must[bool](t)(st.WithTx(tx).WebhookDeliveryInsert(ctx, store.WebhookDeliveryInsertParams{ID: "in-tx", Event: "ping"})); !ok {
		t.Fatal("not inserted in tx")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if ok := must[bool](t)(st.WebhookDeliveryInsert(ctx, store.WebhookDeliveryInsertParams{ID: "in-tx", Event: "ping"})); ok {
		t.Fatal("committed delivery forgotten")
	}

	if n := must[int64](t)(st.WebhookDeliveryDeleteBefore(ctx, time.Now().Add(-time.Hour))); n != 0 {
		t.Fatalf("pruned %d recent deliveries", n)
	}
	if n := must[int64](t)(st.WebhookDeliveryDeleteBefore(ctx, time.Now().Add(time.Hour))); n != 3 {
		t.Fatalf("pruned %d deliveries, want 3", n)
	}
}

// TestConcurrentDeliveryInsert checks that of many simultaneous copies of one delivery exactly one is new.
func TestConcurrentDeliveryInsert(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))
	var inserted atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := st.WebhookDeliveryInsert(ctx, store.WebhookDeliveryInsertParams{ID: "same", Event: "push"})
			if err != nil {
				t.Error(err)
			}
			if ok {
				inserted.Add(1)
			}
		}()
	}
	wg.Wait()
	if inserted.Load() != 1 {
		t.Fatalf("%d inserts won, want 1", inserted.Load())
	}
}

// TestUnreachableDatabase checks that an outage is EUNAVAILABLE, which the queue retries.
func TestUnreachableDatabase(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(conn)
	conn.Close(ctx)
	_, err = st.ProjectGetByName(ctx, "x")
	t.Logf("closed connection: %v (code %q)", err, ferry.ErrorCode(err))
	if ferry.ErrorCode(err) != ferry.EUNAVAILABLE {
		t.Fatalf("closed connection gave %v (code %q), want a retryable error", err, ferry.ErrorCode(err))
	}
}
