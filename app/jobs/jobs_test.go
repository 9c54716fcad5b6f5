package jobs_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ferryhq/ferry/app/builder"
	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/build/buildtest"
	"github.com/ferryhq/ferry/internal/build/gitserver"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// The test binary doubles as the ferry binary of the local builder (buildtest.Command).
func TestMain(m *testing.M) { buildtest.Main(m, pgtest.Main) }

const (
	installationID  = 77
	owner, repoName = "acme", "site"
)

// harness is one test's world: a database, a fake GitHub, a git server, file storage, and a running River
// client with this package's workers and the real local builder.
type harness struct {
	t     *testing.T
	ctx   context.Context
	pool  *pgxpool.Pool
	dbURL string
	st    *store.Store
	gh    *ghfake.Server
	// checkRunInterval is Deps.CheckRunInterval: an hour unless a test watches the tail updates, so that the
	// call sequences stay exact.
	checkRunInterval time.Duration
	opts             opts
	app              *ghreport.App
	git              *gitserver.Server
	gitURL           string
	gitDown          atomic.Bool // every clone fails with 503
	stURL            string
	storage          storage.Storage
	site             *site.Store
	client           *river.Client[pgx.Tx]
	reg              *prometheus.Registry
	domain           string
	wrap             func(builder.Builder) builder.Builder
}

type opts struct {
	concurrency int
	// checkRunInterval is Deps.CheckRunInterval; default an hour (no tail updates while a test builds).
	checkRunInterval time.Duration
	// redeliver turns the webhook redelivery job on (Deps.Deliveries), asking for at most redeliverMax per run.
	redeliver    bool
	redeliverMax int
	noClient     bool
	// wrap, when set, wraps the real local builder (to record what it was asked).
	wrap func(builder.Builder) builder.Builder
	// dbURL is a migrated database of the test's own (a cluster it stops and starts); default pgtest's.
	dbURL string
}

func newHarness(t *testing.T, o opts) *harness {
	t.Helper()
	buildtest.RequireBwrap(t)
	if o.concurrency == 0 {
		o.concurrency = 2
	}
	h := &harness{t: t, ctx: context.Background(), domain: "preview.test", wrap: o.wrap, checkRunInterval: o.checkRunInterval, opts: o}
	if h.checkRunInterval == 0 {
		h.checkRunInterval = time.Hour
	}
	h.dbURL = o.dbURL
	if h.dbURL == "" {
		h.dbURL = pgtest.NewURL(t)
	}
	pool, err := pgxpool.New(h.ctx, h.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	h.pool, h.st = pool, store.New(pool)

	h.gh = ghfake.New(t)
	h.gh.AddInstallation(installationID, owner+"/"+repoName)
	h.app, err = ghreport.NewApp(ghreport.Config{APIURL: h.gh.URL, Backoff: 10 * time.Millisecond}, h.gh.AppID, h.gh.PrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}

	h.git, err = gitserver.New(t.TempDir(), "")
	if err != nil {
		t.Skipf("git is not installed: apt-get install git (%v)", err)
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.gitDown.Load() || strings.HasPrefix(r.URL.Path, "/"+owner+"/down") {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		// git first asks anonymously and sends credentials once challenged, as with GitHub.
		user, pass, ok := r.BasicAuth()
		if !ok || user != "x-access-token" || !strings.HasPrefix(pass, "ghs_") {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		h.git.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	h.gitURL = hs.URL

	dir := t.TempDir()
	h.stURL = "file://" + dir
	h.storage, err = storage.Open(h.ctx, h.stURL)
	if err != nil {
		t.Fatal(err)
	}
	h.site = site.NewStore(h.storage)

	if _, err := h.st.InstallationUpsert(h.ctx, store.InstallationUpsertParams{ID: installationID, AccountLogin: owner, AccountType: "Organization", AccountID: 5}); err != nil {
		t.Fatal(err)
	}
	if !o.noClient {
		h.startClient(o.concurrency)
	}
	return h
}

func (h *harness) deps() jobs.Deps {
	b, err := builder.NewLocal(builder.LocalConfig{
		Command: buildtest.Command(),
		Timeout: 2 * time.Minute, KillGrace: 2 * time.Second,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	var bb builder.Builder = b
	if h.wrap != nil {
		bb = h.wrap(b)
	}
	h.reg = prometheus.NewRegistry()
	var deliveries jobs.HookDeliveries
	if h.opts.redeliver {
		deliveries = h.app
	}
	return jobs.Deps{Deliveries: deliveries, RedeliverMax: h.opts.redeliverMax,
		Store: h.st, Site: h.site, Builder: bb, GitHub: h.app, StorageURL: h.stURL, Domain: h.domain,
		PublicURL: "https://ferry.test", Logger: slog.New(slog.NewTextHandler(testWriter{h.t}, nil)), Metrics: h.reg,
		BuildTimeout: 3 * time.Minute, PollInterval: 100 * time.Millisecond, RetryBackoff: 50 * time.Millisecond,
		SweepInterval: time.Hour, CheckRunInterval: h.checkRunInterval,
	}
}

func (h *harness) startClient(concurrency int) {
	cfg, err := jobs.ClientConfig(h.deps(), concurrency)
	if err != nil {
		h.t.Fatal(err)
	}
	cfg.FetchCooldown = 10 * time.Millisecond
	cfg.FetchPollInterval = 50 * time.Millisecond
	cfg.TestOnly = true
	h.client, err = river.NewClient(riverpgxv5.New(h.pool), cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.client.Start(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = h.client.StopAndCancel(ctx)
	})
}

// testWriter shows logs with -v.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

var repoIDs atomic.Int64

// newProject makes a project reported to GitHub as acme/site, with a repository of its own on the git server
// holding one commit per entry of commits (none: the repository does not exist).
func (h *harness) newProject(name string, commits ...map[string]string) (*store.Project, *gitserver.Repo) {
	h.t.Helper()
	r := &gitserver.Repo{Path: "/" + owner + "/" + name + ".git"}
	if len(commits) > 0 {
		var err error
		if r, err = h.git.CreateRepo(owner+"/"+name, commits); err != nil {
			h.t.Fatal(err)
		}
	}
	p, err := h.st.ProjectCreate(h.ctx, store.ProjectCreateParams{Name: name, Repository: owner + "/" + repoName,
		CloneURL: h.gitURL + r.Path, GitHubRepoID: 900 + repoIDs.Add(1), InstallationID: installationID, ProductionBranch: "main"})
	if err != nil {
		h.t.Fatal(err)
	}
	return p, r
}

// deploy does what webhook intake does: records the deployment, supersedes older ones of its line, and
// enqueues its jobs, in one transaction.
func (h *harness) deploy(p *store.Project, sha, ref string, pr int) *store.Deployment {
	h.t.Helper()
	kind, alias := store.KindPreview, site.BranchAlias(p.Name, ref)
	switch {
	case pr > 0:
		alias = site.PRAlias(pr)
	case ref == p.ProductionBranch:
		kind, alias = store.KindProduction, "production"
	}
	var d *store.Deployment
	err := h.st.InTx(h.ctx, func(st *store.Store, tx pgx.Tx) error {
		var err error
		d, err = st.DeploymentCreate(h.ctx, store.DeploymentCreateParams{ID: site.NewDeploymentID(), ProjectID: p.ID,
			CommitSHA: sha, Ref: ref, PRNumber: pr, Kind: kind, Alias: alias})
		if err != nil {
			return err
		}
		if _, err := st.DeploymentSupersede(h.ctx, store.DeploymentSupersedeParams{NewID: d.ID, ProjectID: p.ID, PRNumber: pr, Ref: ref}); err != nil {
			return err
		}
		return jobs.InsertDeploy(h.ctx, h.client, tx, d.ID)
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// wait polls the deployment until cond holds.
func (h *harness) wait(id string, what string, cond func(*store.Deployment) bool) *store.Deployment {
	h.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		d, err := h.st.DeploymentGetByID(h.ctx, id)
		if err != nil {
			h.t.Fatal(err)
		}
		if cond(d) {
			return d
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("deployment %s never became %s; it is %s (error %q)\nlog:\n%s", id, what, d.Status, d.Error, h.logText(id))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *harness) waitStatus(id string, s store.DeploymentStatus) *store.Deployment {
	h.t.Helper()
	return h.wait(id, string(s), func(d *store.Deployment) bool { return d.Status == s })
}

func (h *harness) logText(id string) string {
	lines, err := h.st.DeploymentLogList(h.ctx, store.DeploymentLogListParams{DeploymentID: id})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%s %s\n", l.Step, l.Line)
	}
	return b.String()
}

// waitJobs waits until River has no job left to run (available, running, retryable, scheduled).
func (h *harness) waitJobs() {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM river_job WHERE state IN ('available', 'running', 'retryable', 'scheduled', 'pending') AND kind <> 'deployment_sweep'`).Scan(&n); err != nil {
			h.t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d jobs still pending", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// calls renders the repository calls to GitHub (token fetches left out) as "METHOD path state" lines, with
// GitHub deployment ids and the commit named by ids and shas.
func (h *harness) calls(names map[string]string) []string {
	var out []string
	for _, c := range h.gh.Calls() {
		if !strings.HasPrefix(c.Path, "/repos/") {
			continue
		}
		line := c.Method + " " + strings.TrimPrefix(c.Path, "/repos/"+owner+"/"+repoName)
		if s, ok := c.Field("state").(string); ok {
			line += " " + s
		}
		if strings.Contains(c.Path, "/check-runs") {
			line = checkRunPath.ReplaceAllString(line, "/check-runs/{run}")
			if s, ok := c.Field("status").(string); ok {
				line += " " + s
			}
			if s, ok := c.Field("conclusion").(string); ok {
				line += "/" + s
			}
		}
		for from, to := range names {
			line = strings.ReplaceAll(line, from, to)
		}
		out = append(out, line)
	}
	return out
}

var checkRunPath = regexp.MustCompile(`/check-runs/[0-9]+`)

func ghID(d *store.Deployment) string { return fmt.Sprint(d.GitHubDeploymentID) }

func wantLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// aliasTarget returns the deployment an alias points at, or "".
func (h *harness) aliasTarget(p *store.Project, alias string) string {
	a, err := h.site.AliasGet(h.ctx, p.Name, alias)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return ""
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return a.Deployment
}

func static(body string) map[string]string { return map[string]string{"index.html": body} }

// slowBuild is a commit whose build runs long enough to be superseded or killed.
func slowBuild(marker string) map[string]string {
	return map[string]string{
		"ferry.json": `{"buildCommand": "sleep 60 # ` + marker + `", "outputDirectory": "."}`,
		"index.html": "slow",
	}
}

func TestPushToDefaultBranchDeploysProduction(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{})
	p, r := h.newProject("site", static("<h1>v1</h1>"))
	sha := r.Commits[0]
	d := h.deploy(p, sha, "main", 0)
	d = h.waitStatus(d.ID, store.StatusReady)
	h.waitJobs()

	if got := h.aliasTarget(p, "production"); got != d.ID {
		t.Errorf("production alias -> %q, want %s", got, d.ID)
	}
	if d.AliasURL != "https://site.preview.test" || d.URL != "https://"+d.ID+"--site.preview.test" || d.Attempt != 1 {
		t.Errorf("deployment = %+v", d)
	}
	wantLines(t, "GitHub calls", h.calls(map[string]string{ghID(d): "{dep}", sha: "{sha}"}), []string{
		"POST /deployments",
		"POST /deployments/{dep}/statuses queued",
		"POST /check-runs queued",
		"POST /deployments/{dep}/statuses in_progress",
		"POST /statuses/{sha} pending",
		"PATCH /check-runs/{run} in_progress",
		"POST /deployments/{dep}/statuses success",
		"POST /statuses/{sha} success",
		"PATCH /check-runs/{run} completed/success",
	})
	gd := h.gh.Deployments(owner, repoName)
	if len(gd) != 1 || gd[0].Environment != "production" || !gd[0].ProductionEnvironment || gd[0].TransientEnvironment || gd[0].SHA != sha {
		t.Errorf("GitHub deployments = %+v", gd)
	}
	sts := h.gh.DeploymentStatuses(d.GitHubDeploymentID)
	last := sts[len(sts)-1]
	if last.EnvironmentURL != "https://site.preview.test" || last.LogURL != "https://ferry.test/deployments/"+d.ID {
		t.Errorf("success status = %+v", last)
	}
	cs := h.gh.CommitStatuses(owner, repoName, sha)
	if len(cs) != 2 || cs[1].Context != "ferry/site" || cs[1].TargetURL != "https://site.preview.test" {
		t.Errorf("commit statuses = %+v", cs)
	}
	if log := h.logText(d.ID); !strings.Contains(log, "clone ") || !strings.Contains(log, "ready: https://site.preview.test") {
		t.Errorf("stored log lacks the build's lines:\n%s", log)
	}
	if n := counter(t, h.reg, "ferry_jobs_total", "deploy", "ok"); n != 1 {
		t.Errorf("ferry_jobs_total{deploy,ok} = %v", n)
	}
}

// TestProjectOverridesReachTheBuild: the project's settings.overrides (the dashboard's build settings) win over
// the repository's ferry.json in the real build: here ferry.json's commands would fail.
func TestProjectOverridesReachTheBuild(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{})
	p, r := h.newProject("over", map[string]string{
		"ferry.json":     `{"installCommand": "exit 7", "buildCommand": "exit 8"}`,
		"app/page.txt":   "built with the project's overrides",
		"app/ferry.json": `{"buildCommand": "exit 9"}`,
	})
	if _, err := h.pool.Exec(h.ctx, `UPDATE projects SET settings = $1 WHERE id = $2`, `{"buildForks": true, "overrides": {
		"rootDirectory": "app", "installCommand": "", "buildCommand": "mkdir -p site && cp page.txt site/index.html",
		"outputDirectory": "site"}}`, p.ID); err != nil {
		t.Fatal(err)
	}
	d := h.waitStatus(h.deploy(p, r.Commits[0], "main", 0).ID, store.StatusReady)
	m, err := h.site.ManifestGet(h.ctx, p.Name, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := m.Files["/index.html"]
	if !ok {
		t.Fatalf("published %v\nlog:\n%s", m.Files, h.logText(d.ID))
	}
	rc, err := h.storage.Get(h.ctx, site.BlobKey(p.Name, f.Blob))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "built with the project's overrides" {
		t.Fatalf("index.html = %q", b)
	}
}

func TestPullRequestOpenSynchronizeClose(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{})
	marker := fmt.Sprintf("ferry-supersede-%d", time.Now().UnixNano())
	p, r := h.newProject("web", slowBuild(marker), map[string]string{"ferry.json": `{"outputDirectory": "."}`, "index.html": "<h1>v2</h1>"})
	sha1, sha2 := r.Commits[0], r.Commits[1]
	const pr = 7

	// Opened: the first commit's build runs (slowly).
	d1 := h.deploy(p, sha1, "feature", pr)
	h.wait(d1.ID, "building with in_progress reported", func(d *store.Deployment) bool {
		return d.Status == store.StatusBuilding && len(h.gh.CallsMatching("POST /repos/acme/site/statuses/*")) == 1
	})
	waitFor(t, "the build command to start", func() bool { return len(leftovers(marker)) > 0 })

	// Synchronized: a newer commit supersedes it; the old build is killed and reported inactive.
	d2 := h.deploy(p, sha2, "feature", pr)
	d1 = h.waitStatus(d1.ID, store.StatusCanceled)
	d2 = h.waitStatus(d2.ID, store.StatusReady)
	h.waitJobs()
	waitFor(t, "the superseded build's processes to end", func() bool { return len(leftovers(marker)) == 0 })
	if d1.SupersededBy != d2.ID {
		t.Errorf("d1 superseded by %q, want %s", d1.SupersededBy, d2.ID)
	}
	if !strings.Contains(h.logText(d1.ID), "build stopped: superseded by "+d2.ID) {
		t.Errorf("d1's log does not say why it stopped:\n%s", h.logText(d1.ID))
	}
	if got := h.aliasTarget(p, "pr-7"); got != d2.ID {
		t.Errorf("pr-7 -> %q, want %s", got, d2.ID)
	}
	names := map[string]string{ghID(d1): "{dep1}", ghID(d2): "{dep2}", sha1: "{sha1}", sha2: "{sha2}"}
	comments := h.gh.Comments(owner, repoName, pr)
	if len(comments) != 1 {
		t.Fatalf("%d PR comments, want one sticky comment", len(comments))
	}
	names[fmt.Sprint(comments[0].ID)] = "{comment}"
	wantLines(t, "GitHub calls through synchronize", h.calls(names), []string{
		"POST /deployments",
		"POST /deployments/{dep1}/statuses queued",
		"POST /check-runs queued",
		"GET /issues/7/comments",
		"POST /issues/7/comments",
		"POST /deployments/{dep1}/statuses in_progress",
		"POST /statuses/{sha1} pending",
		"PATCH /check-runs/{run} in_progress",
		"GET /issues/7/comments",
		"PATCH /issues/comments/{comment}",
		// synchronize
		"POST /deployments/{dep1}/statuses inactive",
		"PATCH /check-runs/{run} completed/cancelled",
		"POST /statuses/{sha1} error",
		"POST /deployments",
		"POST /deployments/{dep2}/statuses queued",
		"POST /check-runs queued",
		"GET /issues/7/comments",
		"PATCH /issues/comments/{comment}",
		"POST /deployments/{dep2}/statuses in_progress",
		"POST /statuses/{sha2} pending",
		"PATCH /check-runs/{run} in_progress",
		"GET /issues/7/comments",
		"PATCH /issues/comments/{comment}",
		"POST /deployments/{dep2}/statuses success",
		"POST /statuses/{sha2} success",
		"PATCH /check-runs/{run} completed/success",
		"GET /issues/7/comments",
		"PATCH /issues/comments/{comment}",
	})
	sts := h.gh.DeploymentStatuses(d1.GitHubDeploymentID)
	if last := sts[len(sts)-1]; last.State != "inactive" || last.Description != "Superseded by "+sha2[:7] {
		t.Errorf("d1's last status = %+v", last)
	}
	gd := h.gh.Deployments(owner, repoName)
	if gd[1].Environment != "preview/pr-7" || !gd[1].TransientEnvironment || gd[1].ProductionEnvironment {
		t.Errorf("PR deployment = %+v", gd[1])
	}
	body := h.gh.Comments(owner, repoName, pr)[0].Body
	for _, want := range []string{"Ready", "https://pr-7--web.preview.test", sha2[:7], "https://" + d2.ID + "--web.preview.test"} {
		if !strings.Contains(body, want) {
			t.Errorf("comment lacks %q:\n%s", want, body)
		}
	}

	// Closed.
	h.gh.Reset()
	err := h.st.InTx(h.ctx, func(st *store.Store, tx pgx.Tx) error {
		return jobs.InsertPRClose(h.ctx, h.client, tx, p.ID, pr)
	})
	if err != nil {
		t.Fatal(err)
	}
	h.waitStatus(d2.ID, store.StatusInactive)
	h.waitJobs()
	if got := h.aliasTarget(p, "pr-7"); got != "" {
		t.Errorf("pr-7 still points at %s", got)
	}
	wantLines(t, "GitHub calls on close", h.calls(names), []string{
		"GET /deployments",
		"GET /deployments/{dep2}/statuses",
		"POST /deployments/{dep2}/statuses inactive",
		"GET /deployments/{dep1}/statuses",
		"GET /issues/7/comments",
		"PATCH /issues/comments/{comment}",
	})
	if body := h.gh.Comments(owner, repoName, pr)[0].Body; !strings.Contains(body, "Removed") {
		t.Errorf("comment after close:\n%s", body)
	}
}

func TestFailingBuildIsFinal(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{})
	p, r := h.newProject("broken", map[string]string{
		"ferry.json": `{"buildCommand": "echo 'Error: cannot find module vite' >&2; exit 3"}`,
		"index.html": "x",
	})
	sha := r.Commits[0]
	d := h.deploy(p, sha, "fix", 0)
	d = h.waitStatus(d.ID, store.StatusFailed)
	h.waitJobs()
	if d.Attempt != 1 || !strings.Contains(d.Error, "exit") {
		t.Errorf("deployment = attempt %d, error %q; want one attempt and the command's failure", d.Attempt, d.Error)
	}
	if h.aliasTarget(p, site.BranchAlias("broken", "fix")) != "" {
		t.Error("a failed build moved its alias")
	}
	wantLines(t, "GitHub calls", h.calls(map[string]string{ghID(d): "{dep}", sha: "{sha}"}), []string{
		"POST /deployments",
		"POST /deployments/{dep}/statuses queued",
		"POST /check-runs queued",
		"POST /deployments/{dep}/statuses in_progress",
		"POST /statuses/{sha} pending",
		"PATCH /check-runs/{run} in_progress",
		"POST /deployments/{dep}/statuses failure",
		"POST /statuses/{sha} failure",
		"PATCH /check-runs/{run} completed/failure",
	})
	sts := h.gh.DeploymentStatuses(d.GitHubDeploymentID)
	last := sts[len(sts)-1]
	if utf8.RuneCountInString(last.Description) > 140 || !strings.Contains(last.Description, "exited with code 3") {
		t.Errorf("failure description %q (%d chars)", last.Description, len(last.Description))
	}
	if gd := h.gh.Deployments(owner, repoName); gd[0].Environment != "preview/fix" {
		t.Errorf("environment = %q", gd[0].Environment)
	}
	if !strings.Contains(h.logText(d.ID), "cannot find module vite") {
		t.Errorf("log lacks the command's output:\n%s", h.logText(d.ID))
	}
	var state string
	if err := h.pool.QueryRow(h.ctx, `SELECT state FROM river_job WHERE kind = 'deploy'`).Scan(&state); err != nil || state != "cancelled" {
		t.Errorf("deploy job state = %q (%v), want cancelled (final)", state, err)
	}
	if n := counter(t, h.reg, "ferry_build_failures_total", "user"); n != 1 {
		t.Errorf("user failures = %v", n)
	}
}

// TestInfrastructureErrorRetriesThenErrors also makes the failing job a poison pill among good ones: with one
// build slot, the others still finish.
func TestInfrastructureErrorRetriesThenErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{concurrency: 1})
	down, _ := h.newProject("down") // its git repository answers 503
	good, r := h.newProject("good", static("ok"))
	badSHA := strings.Repeat("d", 40)
	poison := h.deploy(down, badSHA, "main", 0)
	others := []*store.Deployment{h.deploy(good, r.Commits[0], "a", 0), h.deploy(good, r.Commits[0], "b", 0)}
	for _, o := range others {
		h.waitStatus(o.ID, store.StatusReady)
	}
	d := h.waitStatus(poison.ID, store.StatusError)
	h.waitJobs()
	if d.Attempt != 3 || !strings.Contains(d.Error, "after 3 attempts") || !strings.Contains(d.Error, "503") {
		t.Errorf("deployment: attempt %d, error %q", d.Attempt, d.Error)
	}
	var state string
	var nerr int
	if err := h.pool.QueryRow(h.ctx, `SELECT state, cardinality(errors) FROM river_job WHERE kind = 'deploy' AND args->>'deployment_id' = $1`, d.ID).Scan(&state, &nerr); err != nil {
		t.Fatal(err)
	}
	if state != "discarded" || nerr != 3 {
		t.Errorf("poison job: state %s with %d errors, want discarded with 3", state, nerr)
	}
	var states []string
	for _, st := range h.gh.DeploymentStatuses(d.GitHubDeploymentID) {
		states = append(states, st.State)
	}
	wantLines(t, "GitHub statuses of the failing deployment", states, []string{"queued", "in_progress", "in_progress", "in_progress", "error"})
	var commit []string
	for _, cs := range h.gh.CommitStatuses(owner, repoName, badSHA) {
		commit = append(commit, cs.Context+" "+cs.State)
	}
	wantLines(t, "commit statuses of the failing deployment", commit, []string{"ferry/down pending", "ferry/down pending", "ferry/down pending", "ferry/down error"})
	sts := h.gh.DeploymentStatuses(d.GitHubDeploymentID)
	if last := sts[len(sts)-1]; utf8.RuneCountInString(last.Description) > 140 || !strings.Contains(last.Description, "after 3 attempts") {
		t.Errorf("error description %q", last.Description)
	}
	if n := counter(t, h.reg, "ferry_build_failures_total", "infrastructure"); n != 3 {
		t.Errorf("infrastructure failures = %v, want 3", n)
	}
}

func TestSweepMarksOrphanedDeploymentsError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{noClient: true})
	p, _ := h.newProject("lost", static("x"))
	// A deployment whose job River discarded (its last attempt died with its worker): building, no job.
	d, err := h.st.DeploymentCreate(h.ctx, store.DeploymentCreateParams{ID: site.NewDeploymentID(), ProjectID: p.ID,
		CommitSHA: strings.Repeat("a", 40), Ref: "main", Kind: store.KindProduction, Alias: "production"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.DeploymentUpdateStatus(h.ctx, store.DeploymentUpdateStatusParams{ID: d.ID, Status: store.StatusBuilding}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.pool.Exec(h.ctx, `UPDATE deployments SET updated_at = now() - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	h.startClient(1) // the sweep runs on start
	d = h.waitStatus(d.ID, store.StatusError)
	if !strings.Contains(d.Error, "worker stopped") {
		t.Errorf("error = %q", d.Error)
	}
	waitFor(t, "the error report", func() bool { return len(h.gh.CallsMatching("POST /repos/acme/site/check-runs")) == 1 })
	wantLines(t, "GitHub calls", h.calls(map[string]string{strings.Repeat("a", 40): "{sha}"}), []string{
		"POST /deployments",
		"POST /deployments/" + ghID(h.waitStatus(d.ID, store.StatusError)) + "/statuses error",
		"POST /statuses/{sha} error",
		"POST /check-runs completed/failure",
	})
}

func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i, lp := range m.GetLabel() {
				if i >= len(labels) || lp.GetValue() != labels[i] {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leftovers lists processes whose command line contains marker.
func leftovers(marker string) []string {
	var found []string
	var mu sync.Mutex
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), marker) {
			mu.Lock()
			found = append(found, d.Name())
			mu.Unlock()
		}
	}
	return found
}
