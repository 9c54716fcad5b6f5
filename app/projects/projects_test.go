package projects_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/build/gitserver"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is the service on a database of its own (a copy of the migrated template), file storage and an
// insert-only River client: jobs are stored, not worked, so each test sees exactly what the service enqueued.
type env struct {
	t    *testing.T
	ctx  context.Context
	pool *pgxpool.Pool
	st   *store.Store
	site *site.Store
	svc  *projects.Service
	repo *gitserver.Repo // a local repository: main at Commits[1], feature at Commits[1]
}

type option func(*projects.Config)

func newEnv(t *testing.T, opts ...option) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), pool: pgtest.New(t)}
	e.st = store.New(e.pool)
	fs, err := storage.Open(e.ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e.site = site.NewStore(fs)
	rc, err := river.NewClient(riverpgxv5.New(e.pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cipher, err := store.NewEnvCipher(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if e.repo, err = gitserver.CreateRepo(t.TempDir(), "acme/site",
		[]map[string]string{{"index.html": "one"}, {"index.html": "two"}}, "feature"); err != nil {
		t.Skipf("git is not installed: apt-get install git (%v)", err)
	}
	cfg := projects.Config{Store: e.st, River: rc, Site: e.site, EnvCipher: cipher, Domain: "example.test",
		PublicURL: "https://ferry.example.test", AllowLocalRepos: true,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	for _, o := range opts {
		o(&cfg)
	}
	if e.svc, err = projects.New(cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

var users atomic.Int64

// user signs up a new user and returns its id.
func (e *env) user() int64 {
	e.t.Helper()
	u, err := e.st.UserCreate(e.ctx, store.UserCreateParams{Email: fmt.Sprintf("u%d@example.com", users.Add(1)), Name: "U"})
	if err != nil {
		e.t.Fatal(err)
	}
	return u.ID
}

// project creates a project from the fixture repository for user.
func (e *env) project(user int64, name string) *projects.Project {
	e.t.Helper()
	p, err := e.svc.ProjectCreate(e.ctx, user, projects.ProjectCreateParams{GitURL: e.repo.Bare, Name: name})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// ready publishes a real folder as deployment id and moves the row through building to ready, as a build does.
func (e *env) ready(project string, id string) {
	e.t.Helper()
	dir := e.t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(id), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.site.Publish(e.ctx, site.PublishParams{Project: project, Dir: dir, DeploymentID: id}); err != nil {
		e.t.Fatal(err)
	}
	for _, s := range []store.DeploymentStatus{store.StatusBuilding, store.StatusReady} {
		if _, err := e.st.DeploymentUpdateStatus(e.ctx, store.DeploymentUpdateStatusParams{ID: id, Status: s}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// jobs lists the River jobs stored so far, as "kind id" where id is the deployment or project they work on.
func (e *env) jobs() []string {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT kind, args FROM river_job ORDER BY id`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var kind string
		var args map[string]any
		if err := rows.Scan(&kind, &args); err != nil {
			e.t.Fatal(err)
		}
		var id any = args["deployment_id"]
		if id == nil {
			id = args["project_id"]
		}
		out = append(out, fmt.Sprintf("%s %v", kind, id))
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// count runs a count(*) query.
func (e *env) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// wantCode fails unless err carries code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if ferry.ErrorCode(err) != code {
		t.Errorf("%s: error %v (code %q), want code %q", what, err, ferry.ErrorCode(err), code)
	}
}

func ptr[T any](v T) *T { return &v }

func TestNewRequiresItsParts(t *testing.T) {
	t.Parallel()
	_, err := projects.New(projects.Config{})
	wantCode(t, "New without Store, River and Site", err, ferry.EINVALID)
}

// TestProjectCreate: defaults come from the repository and DefaultSettings; every bad field is refused with its
// code and creates nothing; a taken name is ECONFLICT and says what to do; nobody but the owner sees it.
func TestProjectCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := e.user(), e.user()

	p, err := e.svc.ProjectCreate(e.ctx, alice, projects.ProjectCreateParams{GitURL: e.repo.Bare})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "site" || p.ProductionBranch != "main" || p.GitURL != e.repo.Bare || p.OwnerID != alice ||
		p.Settings != projects.DefaultSettings() || p.URL != site.DeploymentURL("example.test", "site", site.ProductionAlias) {
		t.Fatalf("created %+v", p)
	}

	long := strings.Repeat("a", 41)
	for _, tc := range []struct {
		name string
		user int64
		p    projects.ProjectCreateParams
		code string
	}{
		{"anonymous", 0, projects.ProjectCreateParams{GitURL: e.repo.Bare, Name: "anon"}, ferry.EUNAUTHORIZED},
		{"no URL", alice, projects.ProjectCreateParams{Name: "x1"}, ferry.EINVALID},
		{"ssh URL", alice, projects.ProjectCreateParams{GitURL: "git@github.com:acme/site.git", Name: "x2"}, ferry.EINVALID},
		{"ftp URL", alice, projects.ProjectCreateParams{GitURL: "ftp://example.com/site.git", Name: "x3"}, ferry.EINVALID},
		{"credentials in URL", alice, projects.ProjectCreateParams{GitURL: "https://me:pw@example.com/site.git", Name: "x4"}, ferry.EINVALID},
		{"option injection", alice, projects.ProjectCreateParams{GitURL: "--upload-pack=touch /tmp/x", Name: "x5"}, ferry.EINVALID},
		{"URL too long", alice, projects.ProjectCreateParams{GitURL: "https://example.com/" + strings.Repeat("a", projects.MaxGitURL), Name: "x6"}, ferry.ETOOLARGE},
		{"missing local repo", alice, projects.ProjectCreateParams{GitURL: filepath.Join(t.TempDir(), "nope"), Name: "x7"}, ferry.EINVALID},
		{"name with --", alice, projects.ProjectCreateParams{GitURL: e.repo.Bare, Name: "a--b"}, ferry.EINVALID},
		{"name too long", alice, projects.ProjectCreateParams{GitURL: e.repo.Bare, Name: long}, ferry.EINVALID},
		{"upper-case name", alice, projects.ProjectCreateParams{GitURL: e.repo.Bare, Name: "Site"}, ferry.EINVALID},
		{"bad branch", alice, projects.ProjectCreateParams{GitURL: e.repo.Bare, Name: "x8", ProductionBranch: "a..b"}, ferry.EINVALID},
		{"output outside the repo", alice, projects.ProjectCreateParams{GitURL: e.repo.Bare, Name: "x9",
			Settings: &projects.Settings{Overrides: projects.Overrides{OutputDirectory: ptr("../../etc")}}}, ferry.EINVALID},
		{"approval without fork builds", alice, projects.ProjectCreateParams{GitURL: e.repo.Bare, Name: "x10",
			Settings: &projects.Settings{RequireForkApproval: true}}, ferry.EINVALID},
		{"taken name", bob, projects.ProjectCreateParams{GitURL: e.repo.Bare, Name: "site"}, ferry.ECONFLICT},
	} {
		got, err := e.svc.ProjectCreate(e.ctx, tc.user, tc.p)
		wantCode(t, tc.name, err, tc.code)
		if got != nil {
			t.Errorf("%s: returned %+v with the error", tc.name, got)
		}
	}
	if n := e.count(`SELECT count(*) FROM projects`); n != 1 {
		t.Fatalf("%d projects after the refused creations, want 1", n)
	}
	if _, err := e.svc.ProjectCreate(e.ctx, bob, projects.ProjectCreateParams{GitURL: e.repo.Bare, Name: "site"}); err == nil ||
		!strings.Contains(err.Error(), "choose another name") {
		t.Errorf("taken name: %v, want a message that says what to do", err)
	}

	// Local repositories are for `ferry dev` only.
	strict := newEnv(t, func(c *projects.Config) { c.AllowLocalRepos = false })
	_, err = strict.svc.ProjectCreate(strict.ctx, strict.user(), projects.ProjectCreateParams{GitURL: strict.repo.Bare})
	wantCode(t, "local path on a shared server", err, ferry.EINVALID)
	if err == nil || !strings.Contains(err.Error(), "ferry dev") {
		t.Errorf("local path refused with %v, want it to name ferry dev", err)
	}

	for user, want := range map[int64]int{alice: 1, bob: 0} {
		ps, err := e.svc.ProjectList(e.ctx, user)
		if err != nil || len(ps) != want {
			t.Errorf("user %d lists %d projects (%v), want %d", user, len(ps), err, want)
		}
	}
}

// TestProjectSettings: the branch and settings change; settings keys the service does not know survive an
// update; the name can change only while there are no deployments; a taken name is refused.
func TestProjectSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.user()
	p := e.project(alice, "web")
	e.project(alice, "taken")
	if _, err := e.pool.Exec(e.ctx, `UPDATE projects SET settings = settings || '{"futureKey": 7}' WHERE id = $1`, p.ID); err != nil {
		t.Fatal(err)
	}

	s := projects.Settings{BuildForks: true, RequireForkApproval: true, Overrides: projects.Overrides{BuildCommand: ptr("npm run build:site"), OutputDirectory: ptr("site/dist")}}
	got, err := e.svc.ProjectUpdateSettings(e.ctx, alice, "web", projects.ProjectUpdateParams{ProductionBranch: ptr("release"), Settings: &s})
	if err != nil {
		t.Fatal(err)
	}
	if got.ProductionBranch != "release" || !got.Settings.RequireForkApproval || *got.Settings.Overrides.BuildCommand != "npm run build:site" {
		t.Fatalf("updated %+v", got)
	}
	var raw map[string]any
	if err := e.pool.QueryRow(e.ctx, `SELECT settings FROM projects WHERE id = $1`, p.ID).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if raw["futureKey"] != float64(7) {
		t.Errorf("stored settings %v lost a key the service does not know", raw)
	}

	for _, tc := range []struct {
		name string
		p    projects.ProjectUpdateParams
		code string
	}{
		{"bad branch", projects.ProjectUpdateParams{ProductionBranch: ptr("-x")}, ferry.EINVALID},
		{"bad name", projects.ProjectUpdateParams{Name: ptr("a--b")}, ferry.EINVALID},
		{"taken name", projects.ProjectUpdateParams{Name: ptr("taken")}, ferry.ECONFLICT},
		{"absolute root", projects.ProjectUpdateParams{Settings: &projects.Settings{BuildForks: true, Overrides: projects.Overrides{RootDirectory: ptr("/etc")}}}, ferry.EINVALID},
		{"command too long", projects.ProjectUpdateParams{Settings: &projects.Settings{BuildForks: true, Overrides: projects.Overrides{BuildCommand: ptr(strings.Repeat("x", projects.MaxCommand+1))}}}, ferry.ETOOLARGE},
	} {
		_, err := e.svc.ProjectUpdateSettings(e.ctx, alice, "web", tc.p)
		wantCode(t, tc.name, err, tc.code)
	}
	if cur, err := e.svc.ProjectGet(e.ctx, alice, "web"); err != nil || cur.ProductionBranch != "release" || *cur.Settings.Overrides.OutputDirectory != "site/dist" {
		t.Fatalf("after refused updates: %+v, %v", cur, err)
	}

	// Renaming works while nothing was deployed, and not after.
	if got, err = e.svc.ProjectUpdateSettings(e.ctx, alice, "web", projects.ProjectUpdateParams{Name: ptr("www")}); err != nil || got.Name != "www" {
		t.Fatalf("rename with no deployments: %+v, %v", got, err)
	}
	if _, err := e.svc.DeployNow(e.ctx, alice, "www", projects.DeployParams{Commit: e.repo.Commits[0]}); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.ProjectUpdateSettings(e.ctx, alice, "www", projects.ProjectUpdateParams{Name: ptr("web2")})
	wantCode(t, "rename with a deployment", err, ferry.ECONFLICT)
	if _, err := e.svc.ProjectGet(e.ctx, alice, "www"); err != nil {
		t.Fatalf("the refused rename changed the name: %v", err)
	}
}

// TestEnvVars: values are sealed in the database and never come back; bad names and values are refused;
// without a secret key nothing can be saved and the error says how to configure one.
func TestEnvVars(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.user()
	p := e.project(alice, "web")

	v, err := e.svc.EnvSet(e.ctx, alice, "web", projects.EnvSetParams{Environment: "production", Key: "API_TOKEN", Value: "s3cret-value"})
	if err != nil || v.Value != projects.Mask {
		t.Fatalf("EnvSet: %+v, %v", v, err)
	}
	if _, err := e.svc.EnvSet(e.ctx, alice, "web", projects.EnvSetParams{Environment: "production", Key: "API_TOKEN", Value: "second-value"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.EnvSet(e.ctx, alice, "web", projects.EnvSetParams{Environment: "preview", Key: "API_TOKEN", Value: "preview-value"}); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM project_env WHERE project_id = $1 AND position($2::bytea IN value_enc) > 0`, p.ID, []byte("value")); n != 0 {
		t.Errorf("%d env rows hold their value in clear", n)
	}
	vars, err := e.svc.EnvList(e.ctx, alice, "web")
	if err != nil || len(vars) != 2 {
		t.Fatalf("EnvList: %+v, %v", vars, err)
	}
	for _, v := range vars {
		if v.Value != projects.Mask || v.Key != "API_TOKEN" {
			t.Errorf("listed %+v", v)
		}
	}
	if b, _ := json.Marshal(vars); bytes.Contains(b, []byte("value\"")) && bytes.Contains(b, []byte("second")) {
		t.Errorf("EnvList leaks a value: %s", b)
	}
	cipher, _ := store.NewEnvCipher(bytes.Repeat([]byte{9}, 32))
	got, err := e.st.EnvValues(e.ctx, store.EnvValuesParams{ProjectID: p.ID, Environment: store.EnvProduction, Cipher: cipher})
	if err != nil || got["API_TOKEN"] != "second-value" {
		t.Fatalf("builds would get %v (%v), want the replaced value", got, err)
	}

	for _, tc := range []struct {
		name string
		p    projects.EnvSetParams
		code string
	}{
		{"unknown environment", projects.EnvSetParams{Environment: "staging", Key: "A", Value: "1"}, ferry.EINVALID},
		{"empty name", projects.EnvSetParams{Environment: "preview", Value: "1"}, ferry.EINVALID},
		{"name with a dash", projects.EnvSetParams{Environment: "preview", Key: "A-B", Value: "1"}, ferry.EINVALID},
		{"name starting with a digit", projects.EnvSetParams{Environment: "preview", Key: "1A", Value: "1"}, ferry.EINVALID},
		{"reserved name", projects.EnvSetParams{Environment: "preview", Key: "ferry_token", Value: "1"}, ferry.EINVALID},
		{"multi-line value", projects.EnvSetParams{Environment: "preview", Key: "A", Value: "1\n2"}, ferry.EINVALID},
		{"huge value", projects.EnvSetParams{Environment: "preview", Key: "A", Value: strings.Repeat("x", projects.MaxEnvValue+1)}, ferry.ETOOLARGE},
	} {
		_, err := e.svc.EnvSet(e.ctx, alice, "web", tc.p)
		wantCode(t, tc.name, err, tc.code)
	}

	wantCode(t, "delete unknown", e.svc.EnvDelete(e.ctx, alice, "web", "preview", "NOPE"), ferry.ENOTFOUND)
	if err := e.svc.EnvDelete(e.ctx, alice, "web", "preview", "API_TOKEN"); err != nil {
		t.Fatal(err)
	}
	if vars, _ := e.svc.EnvList(e.ctx, alice, "web"); len(vars) != 1 || vars[0].Environment != "production" {
		t.Fatalf("after delete: %+v", vars)
	}

	nokey := newEnv(t, func(c *projects.Config) { c.EnvCipher = nil })
	u := nokey.user()
	nokey.project(u, "web")
	_, err = nokey.svc.EnvSet(nokey.ctx, u, "web", projects.EnvSetParams{Environment: "preview", Key: "A", Value: "1"})
	wantCode(t, "no secret key", err, ferry.EUNAVAILABLE)
	if err == nil || !strings.Contains(err.Error(), "--secret-key-file") {
		t.Errorf("no secret key: %v, want it to name --secret-key-file", err)
	}
}

// TestDeployNow: a branch is resolved with real git to its head; the production branch goes to production, another
// branch to git-<slug>, a bare commit to no alias; each stores a queued deployment and exactly one build job; a
// newer build of the same line supersedes the older; redeploy and cancel do what they say.
func TestDeployNow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.user()
	e.project(alice, "web")
	head := e.repo.Commits[len(e.repo.Commits)-1]

	prod, err := e.svc.DeployNow(e.ctx, alice, "web", projects.DeployParams{})
	if err != nil {
		t.Fatal(err)
	}
	if prod.Commit != head || prod.Branch != "main" || prod.Kind != store.KindProduction || prod.Alias != site.ProductionAlias ||
		prod.Status != store.StatusQueued || prod.LogURL != "https://ferry.example.test/deployments/"+prod.ID ||
		prod.URL != site.DeploymentURL("example.test", "web", prod.ID) {
		t.Fatalf("deploy of the production branch: %+v", prod)
	}
	feature, err := e.svc.DeployNow(e.ctx, alice, "web", projects.DeployParams{Branch: "feature"})
	if err != nil {
		t.Fatal(err)
	}
	if feature.Kind != store.KindPreview || feature.Alias != site.BranchAlias("web", "feature") || feature.Commit != head {
		t.Fatalf("deploy of a branch: %+v", feature)
	}
	bare, err := e.svc.DeployNow(e.ctx, alice, "web", projects.DeployParams{Commit: e.repo.Commits[0]})
	if err != nil {
		t.Fatal(err)
	}
	if bare.Alias != "" || bare.Commit != e.repo.Commits[0] {
		t.Fatalf("deploy of a bare commit: %+v", bare)
	}
	var want []string
	for _, id := range []string{prod.ID, feature.ID, bare.ID} {
		want = append(want, "deploy_queued "+id, "deploy "+id) // the GitHub announcement, then the build
	}
	if got := e.jobs(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("jobs %v, want %v", got, want)
	}

	for _, tc := range []struct {
		name string
		p    projects.DeployParams
		code string
	}{
		{"short commit", projects.DeployParams{Commit: head[:7]}, ferry.EINVALID},
		{"bad branch", projects.DeployParams{Branch: "a b"}, ferry.EINVALID},
	} {
		_, err := e.svc.DeployNow(e.ctx, alice, "web", tc.p)
		wantCode(t, tc.name, err, tc.code)
	}
	if _, err := e.svc.DeployNow(e.ctx, alice, "web", projects.DeployParams{Branch: "no-such-branch"}); err == nil {
		t.Error("a branch the repository lacks was deployed")
	}
	if n := len(e.jobs()); n != len(want) {
		t.Fatalf("%d jobs after refused deploys, want %d", n, len(want))
	}

	// A second build of production supersedes the first.
	again, err := e.svc.DeployNow(e.ctx, alice, "web", projects.DeployParams{})
	if err != nil {
		t.Fatal(err)
	}
	if old, _ := e.svc.DeploymentGet(e.ctx, alice, prod.ID); old.Status != store.StatusCanceled || old.SupersededBy != again.ID {
		t.Fatalf("superseded deployment: %+v", old)
	}

	// Redeploy builds the same commit for the same line, as a new deployment.
	re, err := e.svc.Redeploy(e.ctx, alice, feature.ID)
	if err != nil {
		t.Fatal(err)
	}
	if re.ID == feature.ID || re.Commit != feature.Commit || re.Alias != feature.Alias || re.Branch != "feature" || re.Status != store.StatusQueued {
		t.Fatalf("redeploy of %+v: %+v", feature, re)
	}

	// Cancel: a queued deployment stops; a finished one cannot.
	c, err := e.svc.Cancel(e.ctx, alice, re.ID)
	if err != nil || c.Status != store.StatusCanceled {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	_, err = e.svc.Cancel(e.ctx, alice, re.ID)
	wantCode(t, "cancel a canceled deployment", err, ferry.ECONFLICT)
	logs, err := e.svc.DeploymentLogs(e.ctx, alice, re.ID, 0, 0)
	if err != nil || len(logs) != 1 || logs[0].Line != "canceled by a user" {
		t.Errorf("log of the canceled deployment: %+v, %v", logs, err)
	}

	list, err := e.svc.DeploymentList(e.ctx, alice, projects.DeploymentListParams{Project: "web", Branch: "feature"})
	if err != nil || len(list.Deployments) != 2 || list.Deployments[0].ID != re.ID {
		t.Fatalf("feature deployments: %+v, %v", list, err)
	}
	_, err = e.svc.DeploymentList(e.ctx, alice, projects.DeploymentListParams{Project: "web", Status: []string{"done"}})
	wantCode(t, "unknown status filter", err, ferry.EINVALID)
	_, err = e.svc.DeploymentGet(e.ctx, alice, "dpl-nope")
	wantCode(t, "malformed id", err, ferry.ENOTFOUND)
}

// TestPromoteRollback: production is the storage alias; promote and rollback move it in one write, refuse what
// is not ready or already live, and a rollback goes only to an older deployment.
func TestPromoteRollback(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.user()
	e.project(alice, "web")
	first, err := e.svc.DeployNow(e.ctx, alice, "web", projects.DeployParams{Commit: e.repo.Commits[0]})
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.svc.DeployNow(e.ctx, alice, "web", projects.DeployParams{Commit: e.repo.Commits[1]})
	if err != nil {
		t.Fatal(err)
	}
	queued, err := e.svc.DeployNow(e.ctx, alice, "web", projects.DeployParams{Commit: e.repo.Commits[1]})
	if err != nil {
		t.Fatal(err)
	}
	e.ready("web", first.ID)
	e.ready("web", second.ID)
	production := func() string {
		t.Helper()
		p, err := e.svc.ProjectGet(e.ctx, alice, "web")
		if err != nil {
			t.Fatal(err)
		}
		a, err := e.site.AliasGet(e.ctx, "web", site.ProductionAlias)
		if err == nil && a.Deployment != p.ProductionDeploymentID {
			t.Fatalf("ProjectGet says %s is live, the alias says %s", p.ProductionDeploymentID, a.Deployment)
		}
		return p.ProductionDeploymentID
	}

	_, err = e.svc.Rollback(e.ctx, alice, first.ID)
	wantCode(t, "rollback with nothing live", err, ferry.ECONFLICT)
	_, err = e.svc.Promote(e.ctx, alice, queued.ID)
	wantCode(t, "promote a queued deployment", err, ferry.ECONFLICT)
	if got := production(); got != "" {
		t.Fatalf("refused moves put %s live", got)
	}

	if d, err := e.svc.Promote(e.ctx, alice, second.ID); err != nil || !d.Production {
		t.Fatalf("promote: %+v, %v", d, err)
	}
	if got := production(); got != second.ID {
		t.Fatalf("production %s after promote, want %s", got, second.ID)
	}
	_, err = e.svc.Promote(e.ctx, alice, second.ID)
	wantCode(t, "promote what is live", err, ferry.ECONFLICT)

	if d, err := e.svc.Rollback(e.ctx, alice, first.ID); err != nil || !d.Production {
		t.Fatalf("rollback: %+v, %v", d, err)
	}
	if got := production(); got != first.ID {
		t.Fatalf("production %s after rollback, want %s", got, first.ID)
	}
	_, err = e.svc.Rollback(e.ctx, alice, second.ID)
	wantCode(t, "rollback to a newer deployment", err, ferry.ECONFLICT)
	if got := production(); got != first.ID {
		t.Fatalf("a refused rollback moved production to %s", got)
	}
	if d, _ := e.svc.DeploymentGet(e.ctx, alice, first.ID); !d.Production {
		t.Errorf("DeploymentGet of the live deployment: %+v", d)
	}
	logs, _ := e.svc.DeploymentLogs(e.ctx, alice, first.ID, 0, 0)
	if len(logs) != 1 || logs[0].Line != "production rolled back to this deployment (it was serving "+second.ID+")" {
		t.Errorf("log of the rollback: %+v", logs)
	}
}

// TestAnotherUser: every method, called by a user who may not reach the project, is ENOTFOUND worded exactly
// like a project or deployment that does not exist, and changes nothing; a member of the project's
// installation reaches it; anonymous calls are EUNAUTHORIZED.
func TestAnotherUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, mallory, member := e.user(), e.user(), e.user()
	p := e.project(alice, "web")
	d, err := e.svc.DeployNow(e.ctx, alice, "web", projects.DeployParams{Commit: e.repo.Commits[0]})
	if err != nil {
		t.Fatal(err)
	}
	ready, err := e.svc.DeployNow(e.ctx, alice, "web", projects.DeployParams{Commit: e.repo.Commits[1]})
	if err != nil {
		t.Fatal(err)
	}
	e.ready("web", ready.ID)
	if _, err := e.svc.EnvSet(e.ctx, alice, "web", projects.EnvSetParams{Environment: "preview", Key: "A", Value: "1"}); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot()
	missingProject := "ghost"
	missingDeployment := "dpl-0000000000000000"

	calls := map[string]func(user int64, project, id string) error{
		"ProjectGet":     func(u int64, p, _ string) error { _, err := e.svc.ProjectGet(e.ctx, u, p); return err },
		"ProjectAliases": func(u int64, p, _ string) error { _, err := e.svc.ProjectAliases(e.ctx, u, p); return err },
		"ProjectUpdateSettings": func(u int64, p, _ string) error {
			_, err := e.svc.ProjectUpdateSettings(e.ctx, u, p, projects.ProjectUpdateParams{ProductionBranch: ptr("x")})
			return err
		},
		"ProjectDelete": func(u int64, p, _ string) error {
			_, err := e.svc.ProjectDelete(e.ctx, u, p, projects.ProjectDeleteParams{})
			return err
		},
		"EnvSet": func(u int64, p, _ string) error {
			_, err := e.svc.EnvSet(e.ctx, u, p, projects.EnvSetParams{Environment: "preview", Key: "B", Value: "2"})
			return err
		},
		"EnvList":   func(u int64, p, _ string) error { _, err := e.svc.EnvList(e.ctx, u, p); return err },
		"EnvDelete": func(u int64, p, _ string) error { return e.svc.EnvDelete(e.ctx, u, p, "preview", "A") },
		"DeploymentList": func(u int64, p, _ string) error {
			_, err := e.svc.DeploymentList(e.ctx, u, projects.DeploymentListParams{Project: p})
			return err
		},
		"DeployNow": func(u int64, p, _ string) error {
			_, err := e.svc.DeployNow(e.ctx, u, p, projects.DeployParams{})
			return err
		},
		"DeploymentGet":  func(u int64, _, id string) error { _, err := e.svc.DeploymentGet(e.ctx, u, id); return err },
		"DeploymentLogs": func(u int64, _, id string) error { _, err := e.svc.DeploymentLogs(e.ctx, u, id, 0, 0); return err },
		"Redeploy":       func(u int64, _, id string) error { _, err := e.svc.Redeploy(e.ctx, u, id); return err },
		"Cancel":         func(u int64, _, id string) error { _, err := e.svc.Cancel(e.ctx, u, id); return err },
		"Promote":        func(u int64, _, id string) error { _, err := e.svc.Promote(e.ctx, u, id); return err },
		"Rollback":       func(u int64, _, id string) error { _, err := e.svc.Rollback(e.ctx, u, id); return err },
	}
	for name, call := range calls {
		id := d.ID
		if name == "Promote" || name == "Rollback" {
			id = ready.ID
		}
		err := call(mallory, "web", id)
		wantCode(t, name+" by another user", err, ferry.ENOTFOUND)
		missing := call(alice, missingProject, missingDeployment)
		wantCode(t, name+" of something missing", missing, ferry.ENOTFOUND)
		if err != nil && missing != nil {
			if a, b := strings.ReplaceAll(err.Error(), "web", missingProject), strings.ReplaceAll(missing.Error(), missingDeployment, id); a != b {
				t.Errorf("%s: another user reads %q, a missing one %q: they must not differ", name, err, missing)
			}
		}
		wantCode(t, name+" anonymous", call(0, "web", id), ferry.EUNAUTHORIZED)
	}
	if after := e.snapshot(); after != before {
		t.Fatalf("another user's calls changed things:\nbefore %s\nafter  %s", before, after)
	}
	if ps, _ := e.svc.ProjectList(e.ctx, mallory); len(ps) != 0 {
		t.Errorf("another user lists %d projects", len(ps))
	}

	// A member of the installation the project belongs to reaches it.
	if _, err := e.st.InstallationUpsert(e.ctx, store.InstallationUpsertParams{ID: 77, AccountLogin: "acme", AccountType: "Organization", AccountID: 9}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.ProjectSetInstallation(e.ctx, store.ProjectSetInstallationParams{ID: p.ID, InstallationID: 77}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.UserInstallationsReplace(e.ctx, member, []int64{77}); err != nil {
		t.Fatal(err)
	}
	if got, err := e.svc.DeploymentGet(e.ctx, member, d.ID); err != nil || got.ID != d.ID {
		t.Fatalf("installation member: %+v, %v", got, err)
	}
	_, err = e.svc.DeploymentGet(e.ctx, mallory, d.ID)
	wantCode(t, "non-member after the installation was linked", err, ferry.ENOTFOUND)
}

// snapshot sums up what another user's calls could change: projects, deployments, env vars, jobs, aliases.
func (e *env) snapshot() string {
	e.t.Helper()
	var b strings.Builder
	rows, err := e.pool.Query(e.ctx, `
		SELECT 'p ' || name || ' ' || production_branch || ' ' || settings::text || ' ' || coalesce(deleting_at::text, '') FROM projects
		UNION ALL SELECT 'd ' || id || ' ' || status FROM deployments
		UNION ALL SELECT 'e ' || environment || ' ' || key || ' ' || encode(value_enc, 'hex') FROM project_env
		UNION ALL SELECT 'j ' || kind || ' ' || args::text FROM river_job
		ORDER BY 1`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		b.WriteString(s + "\n")
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	as, err := e.site.AliasList(e.ctx, "web")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, a := range as {
		fmt.Fprintf(&b, "a %s %s\n", a.Name, a.Deployment)
	}
	return b.String()
}

// TestProjectDelete: deletion stops unfinished builds at once, enqueues the background job in the same
// transaction, shows its progress, and refuses changes (and a second deletion) until the project is gone.
func TestProjectDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.user()
	p := e.project(alice, "web")
	d, err := e.svc.DeployNow(e.ctx, alice, "web", projects.DeployParams{})
	if err != nil {
		t.Fatal(err)
	}

	v, err := e.svc.ProjectDelete(e.ctx, alice, "web", projects.ProjectDeleteParams{})
	if err != nil || v.Deletion == nil {
		t.Fatalf("delete: %+v, %v", v, err)
	}
	if got, _ := e.svc.DeploymentGet(e.ctx, alice, d.ID); got.Status != store.StatusCanceled {
		t.Errorf("unfinished deployment after delete: %s, want canceled", got.Status)
	}
	want := []string{"deploy_queued " + d.ID, "deploy " + d.ID, fmt.Sprintf("project_delete %d", p.ID)}
	if got := e.jobs(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("jobs %v, want %v", got, want)
	}
	if got, err := e.svc.ProjectGet(e.ctx, alice, "web"); err != nil || got.Deletion == nil {
		t.Fatalf("ProjectGet during deletion: %+v, %v", got, err)
	}

	_, err = e.svc.ProjectDelete(e.ctx, alice, "web", projects.ProjectDeleteParams{})
	wantCode(t, "second delete", err, ferry.ECONFLICT)
	_, err = e.svc.DeployNow(e.ctx, alice, "web", projects.DeployParams{})
	wantCode(t, "deploy during deletion", err, ferry.ECONFLICT)
	_, err = e.svc.EnvSet(e.ctx, alice, "web", projects.EnvSetParams{Environment: "preview", Key: "A", Value: "1"})
	wantCode(t, "env var during deletion", err, ferry.ECONFLICT)
	_, err = e.svc.ProjectUpdateSettings(e.ctx, alice, "web", projects.ProjectUpdateParams{ProductionBranch: ptr("dev")})
	wantCode(t, "settings during deletion", err, ferry.ECONFLICT)
	if n := len(e.jobs()); n != len(want) {
		t.Errorf("%d jobs after refused changes, want %d", n, len(want))
	}
}

// TestEnqueueAllOrNothing: Enqueue runs in the caller's transaction, so a rolled-back caller leaves neither
// the deployment nor its job behind.
func TestEnqueueAllOrNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.user()
	p := e.project(alice, "web")
	rc, err := river.NewClient(riverpgxv5.New(e.pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("the caller fails after Enqueue")
	err = e.st.InTx(e.ctx, func(st *store.Store, tx pgx.Tx) error {
		if _, _, err := projects.Enqueue(e.ctx, st, tx, rc, projects.EnqueueParams{DeploymentCreateParams: store.DeploymentCreateParams{
			ProjectID: p.ID, CommitSHA: e.repo.Commits[0], Ref: "main", Kind: store.KindProduction, Alias: site.ProductionAlias}}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx: %v", err)
	}
	if n := e.count(`SELECT count(*) FROM deployments`); n != 0 {
		t.Errorf("%d deployments after a rolled-back Enqueue", n)
	}
	if j := e.jobs(); len(j) != 0 {
		t.Errorf("jobs after a rolled-back Enqueue: %v", j)
	}
}
