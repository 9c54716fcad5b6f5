package webhook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-github/v66/github"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/app/webhook"
	"github.com/ferryhq/ferry/internal/ghwebhooks"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const secret = "test-webhook-secret"

// Repository and installation ids of the real payloads.
const (
	helloWorldRepo = 186853002 // Codertocat/Hello-World: push and pull_request payloads
	spaceRepo      = 186853007 // Codertocat/Space: installation_repositories added
	createdInst    = 957387    // installation created
	eventInst      = 1         // push and pull_request payloads
	prHeadSHA      = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
)

type env struct {
	t    testing.TB
	pool *pgxpool.Pool
	st   *store.Store
	h    *webhook.Handler
	reg  *prometheus.Registry
	site *site.Store
}

// deliveryCounter makes delivery ids unique in the test binary.
var deliveryCounter atomic.Int64

func newEnv(t testing.TB, mod ...func(*webhook.Config)) *env {
	t.Helper()
	pool := pgtest.New(t)
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := storage.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, pool: pool, st: store.New(pool), reg: prometheus.NewRegistry(), site: site.NewStore(blobs)}
	cfg := webhook.Config{Secret: []byte(secret), Pool: pool, River: rc, Registerer: e.reg, Site: e.site,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	for _, m := range mod {
		m(&cfg)
	}
	if e.h, err = webhook.New(cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

func sign(body []byte, key string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func payload(t *testing.T, name string) []byte {
	t.Helper()
	return ghwebhooks.Payload(t, name)
}

// edit changes a real payload through a generic JSON map.
func edit(t *testing.T, body []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func obj(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m = m[p].(map[string]any)
	}
	return m
}

type delivery struct {
	event, id, signature, contentType string
	body                              []byte
	chunked                           bool
}

// send delivers d and returns the response status; an empty id gets a fresh one, an empty signature a valid one.
func (e *env) send(d delivery) *httptest.ResponseRecorder {
	e.t.Helper()
	if d.id == "" {
		d.id = fmt.Sprintf("delivery-%d", deliveryCounter.Add(1))
	}
	if d.signature == "" {
		d.signature = sign(d.body, secret)
	}
	if d.contentType == "" {
		d.contentType = "application/json"
	}
	var body io.Reader = bytes.NewReader(d.body)
	if d.chunked {
		body = io.MultiReader(body) // hides the length: the request is chunked
	}
	r := httptest.NewRequest(http.MethodPost, "/webhooks/github", body)
	if d.chunked {
		r.ContentLength = -1
	}
	r.Header.Set("Content-Type", d.contentType)
	r.Header.Set("X-GitHub-Event", d.event)
	r.Header.Set("X-GitHub-Delivery", d.id)
	if d.signature != "-" {
		r.Header.Set("X-Hub-Signature-256", d.signature)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func (e *env) deliver(event string, body []byte, want int) {
	e.t.Helper()
	if w := e.send(delivery{event: event, body: body}); w.Code != want {
		e.t.Fatalf("%s delivery: status %d (%s), want %d", event, w.Code, strings.TrimSpace(w.Body.String()), want)
	}
}

// counts is a snapshot of every table intake may touch.
type counts struct{ installations, projects, deployments, deliveries, jobs, deploys int }

func (e *env) counts() counts {
	e.t.Helper()
	var c counts
	err := e.pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM installations), (SELECT count(*) FROM projects), (SELECT count(*) FROM deployments),
		(SELECT count(*) FROM webhook_deliveries), (SELECT count(*) FROM river_job),
		(SELECT count(*) FROM river_job WHERE kind = 'deploy')`).
		Scan(&c.installations, &c.projects, &c.deployments, &c.deliveries, &c.jobs, &c.deploys)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

type job struct {
	Kind string
	Args map[string]any
}

func (e *env) jobs() []job {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT kind, args FROM river_job ORDER BY id`)
	if err != nil {
		e.t.Fatal(err)
	}
	js, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (job, error) {
		var j job
		err := r.Scan(&j.Kind, &j.Args)
		return j, err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return js
}

// seed records the installation and project that the real push and pull_request payloads refer to.
func (e *env) seed(settings string) *store.Project {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.st.InstallationUpsert(ctx, store.InstallationUpsertParams{ID: eventInst, AccountLogin: "Codertocat", AccountType: "User", AccountID: 21031067}); err != nil {
		e.t.Fatal(err)
	}
	p, err := e.st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "hello-world", Repository: "Codertocat/Hello-World",
		CloneURL: "https://github.com/Codertocat/Hello-World.git", GitHubRepoID: helloWorldRepo, InstallationID: eventInst,
		ProductionBranch: "master", Settings: json.RawMessage(settings)})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) deployments(projectID int64) []*store.Deployment {
	e.t.Helper()
	res, err := e.st.DeploymentListByProject(context.Background(), store.DeploymentListByProjectParams{ProjectID: projectID})
	if err != nil {
		e.t.Fatal(err)
	}
	// Oldest first reads better in tests.
	ds := res.Deployments
	for i, j := 0, len(ds)-1; i < j; i, j = i+1, j-1 {
		ds[i], ds[j] = ds[j], ds[i]
	}
	return ds
}

// wantDeployJobs checks that js holds exactly one deploy job per id, in that order, with the given fork flag,
// and nothing else but what jobs.InsertDeploy adds per deployment (a deploy_queued report) and pr_close jobs.
func wantDeployJobs(t testing.TB, js []job, fork bool, ids ...string) {
	t.Helper()
	var deploys []job
	queued := map[string]int{}
	for _, j := range js {
		switch j.Kind {
		case "deploy":
			deploys = append(deploys, j)
		case "deploy_queued":
			queued[j.Args["deployment_id"].(string)]++
		case "pr_close":
		default:
			t.Fatalf("unexpected job %+v", j)
		}
	}
	if len(deploys) != len(ids) {
		t.Fatalf("jobs = %+v, want %d deploy jobs", js, len(ids))
	}
	for i, id := range ids {
		if deploys[i].Args["deployment_id"] != id || (deploys[i].Args["fork"] == true) != fork {
			t.Fatalf("deploy job %d = %+v, want deployment %s with fork=%v", i, deploys[i], id, fork)
		}
		if queued[id] > 1 {
			t.Fatalf("deployment %s has %d deploy_queued jobs", id, queued[id])
		}
		delete(queued, id)
	}
	if len(queued) != 0 {
		t.Fatalf("deploy_queued jobs for deployments without a deploy job: %v", queued)
	}
}

// TestSignatureVector checks GitHub's documented example against go-github and through the handler: the vector
// passes the signature check (and then fails as JSON), one changed digit fails it.
func TestSignatureVector(t *testing.T) {
	const (
		vecSecret = "It's a Secret to Everybody"
		vecBody   = "Hello, World!"
		vecSig    = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	)
	if err := github.ValidateSignature(vecSig, []byte(vecBody), []byte(vecSecret)); err != nil {
		t.Fatalf("documented vector rejected: %v", err)
	}
	if got := sign([]byte(vecBody), vecSecret); got != vecSig {
		t.Fatalf("test signer gives %s", got)
	}
	t.Parallel()
	e := newEnv(t, func(c *webhook.Config) { c.Secret = []byte(vecSecret) })
	if w := e.send(delivery{event: "push", body: []byte(vecBody), signature: vecSig}); w.Code != http.StatusBadRequest {
		t.Fatalf("vector: status %d, want 400 (signature accepted, body not JSON)", w.Code)
	}
	bad := vecSig[:len(vecSig)-1] + "f"
	if w := e.send(delivery{event: "push", body: []byte(vecBody), signature: bad}); w.Code != http.StatusUnauthorized {
		t.Fatalf("altered vector: status %d, want 401", w.Code)
	}
}

// TestRefusedWithoutSideEffects sends deliveries that must be refused, each after a valid one that stored state,
// and checks that no table and no River job changed.
func TestRefusedWithoutSideEffects(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *webhook.Config) { c.MaxBodyBytes = 64 << 10 })
	e.seed("{}")
	opened := payload(t, "pull_request/opened.payload.json")
	e.deliver("pull_request", opened, http.StatusAccepted)
	before := e.counts()
	if before.deployments != 1 || before.deploys != 1 || before.deliveries != 1 {
		t.Fatalf("after one delivery: %+v", before)
	}
	huge := append(bytes.Repeat([]byte(" "), 64<<10), opened...)
	for _, c := range []struct {
		name string
		d    delivery
		want int
	}{
		{"unsigned", delivery{event: "pull_request", body: opened, signature: "-"}, 401},
		{"wrong secret", delivery{event: "pull_request", body: opened, signature: sign(opened, "other")}, 401},
		{"signature of other body", delivery{event: "pull_request", body: opened, signature: sign(append(opened, ' '), secret)}, 401},
		{"sha1 only", delivery{event: "pull_request", body: opened, signature: "sha1=0123456789abcdef0123456789abcdef01234567"}, 401},
		{"garbage signature", delivery{event: "pull_request", body: opened, signature: "sha256=zz"}, 401},
		{"unsigned unknown event", delivery{event: "star", body: []byte(`{}`), signature: "-"}, 401},
		{"huge", delivery{event: "pull_request", body: huge, signature: sign(huge, secret)}, 413},
		{"huge chunked", delivery{event: "pull_request", body: huge, signature: sign(huge, secret), chunked: true}, 413},
		{"malformed JSON", delivery{event: "pull_request", body: []byte(`{"action": "opened", `)}, 400},
		{"wrong JSON types", delivery{event: "pull_request", body: []byte(`{"action": 5}`)}, 400},
		{"form encoded", delivery{event: "pull_request", body: []byte(`payload=%7B%7D`), contentType: "text/plain"}, 400},
		{"unknown event", delivery{event: "star", body: []byte(`{"action":"created"}`)}, 204},
	} {
		w := e.send(c.d)
		if w.Code != c.want {
			t.Errorf("%s: status %d (%s), want %d", c.name, w.Code, strings.TrimSpace(w.Body.String()), c.want)
		}
		if after := e.counts(); after != before {
			t.Errorf("%s changed the database: %+v -> %+v", c.name, before, after)
		}
	}
	// Headers missing after a valid signature.
	r := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(opened))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-GitHub-Event", "pull_request")
	r.Header.Set("X-Hub-Signature-256", sign(opened, secret))
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Code != http.StatusBadRequest {
		t.Errorf("no X-GitHub-Delivery: status %d, want 400", w.Code)
	}
	w = httptest.NewRecorder()
	e.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/webhooks/github", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d, want 405", w.Code)
	}
	if after := e.counts(); after != before {
		t.Errorf("refused deliveries changed the database: %+v -> %+v", before, after)
	}
	if got := counterValue(t, e.reg, "pull_request", webhook.OutcomeUnauthorized); got != 5 {
		t.Errorf("ferry_webhooks_total{pull_request,unauthorized} = %v, want 5", got)
	}
}

// counterValue reads one ferry_webhooks_total series from the registry.
func counterValue(t *testing.T, reg *prometheus.Registry, event, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ferry_webhooks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["event"] == event && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestNewRequiresSecret(t *testing.T) {
	t.Parallel()
	_, err := webhook.New(webhook.Config{})
	if err == nil || !strings.Contains(err.Error(), "FERRY_WEBHOOK_SECRET") {
		t.Fatalf("no secret: %v", err)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, name := range []string{"ping/payload.json", "ping/with-app_id.payload.json", "ping/with-organization.payload.json"} {
		e.deliver("ping", payload(t, name), http.StatusAccepted)
	}
	if c := e.counts(); c.deliveries != 3 || c.jobs != 0 || c.projects != 0 {
		t.Fatalf("after pings: %+v", c)
	}
}

// TestRedelivery sends the same delivery twice: the second is acknowledged and changes nothing.
func TestRedelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.seed("{}")
	opened := payload(t, "pull_request/opened.payload.json")
	if w := e.send(delivery{event: "pull_request", body: opened, id: "same-id"}); w.Code != http.StatusAccepted {
		t.Fatalf("first delivery: %d", w.Code)
	}
	before := e.counts()
	if w := e.send(delivery{event: "pull_request", body: opened, id: "same-id"}); w.Code != http.StatusOK {
		t.Fatalf("redelivery: %d, want 200", w.Code)
	}
	if after := e.counts(); after != before || after.deploys != 1 {
		t.Fatalf("redelivery changed the database: %+v -> %+v", before, after)
	}
	ds := e.deployments(p.ID)
	if len(ds) != 1 || ds[0].Status != store.StatusQueued {
		t.Fatalf("deployments after redelivery: %+v", ds)
	}
	wantDeployJobs(t, e.jobs(), false, ds[0].ID)
}

func TestInstallationLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	// A project already named hello-world (another repository) makes the new one hello-world-2.
	if _, err := e.st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "hello-world", CloneURL: "https://example.com/x.git"}); err != nil {
		t.Fatal(err)
	}
	e.deliver("installation", payload(t, "installation/created.payload.json"), http.StatusAccepted)
	inst, err := e.st.InstallationGetByID(ctx, createdInst)
	if err != nil || inst.AccountLogin != "Codertocat" || inst.AccountType != "User" || inst.Suspended() {
		t.Fatalf("installation: %+v, %v", inst, err)
	}
	p, err := e.st.ProjectGetByRepoID(ctx, helloWorldRepo)
	if err != nil {
		t.Fatal(err)
	}
	// The clone URL is not made up from a host name: a repo_sync job reads it (and the default branch) from the
	// API.
	if p.Name != "hello-world-2" || p.Repository != "Codertocat/Hello-World" || p.InstallationID != createdInst ||
		p.CloneURL != "" {
		t.Fatalf("project: %+v", p)
	}
	if js := e.jobs(); len(js) != 1 || js[0].Kind != "repo_sync" || js[0].Args["project_id"] != float64(p.ID) || js[0].Args["set_production_branch"] != true {
		t.Fatalf("jobs after created: %+v", js)
	}
	// A second "created" (GitHub retries, a reinstall) changes nothing.
	e.deliver("installation", payload(t, "installation/created.with-requester.payload.json"), http.StatusAccepted)
	if c := e.counts(); c.projects != 2 || c.installations != 1 || c.jobs != 1 {
		t.Fatalf("after second created: %+v", c)
	}

	e.deliver("installation_repositories", payload(t, "installation_repositories/added.payload.json"), http.StatusAccepted)
	space, err := e.st.ProjectGetByRepoID(ctx, spaceRepo)
	if err != nil || space.Name != "space" || space.InstallationID != createdInst {
		t.Fatalf("added project: %+v, %v", space, err)
	}
	removed := edit(t, payload(t, "installation_repositories/removed.payload.json"), func(m map[string]any) {
		obj(m, "installation")["id"] = createdInst
		m["repositories_removed"].([]any)[0].(map[string]any)["id"] = spaceRepo
	})
	e.deliver("installation_repositories", removed, http.StatusAccepted)
	if space, err := e.st.ProjectGetByRepoID(ctx, spaceRepo); err != nil || !strings.Contains(space.GitHubBlocked, "removed from the GitHub App's installation") {
		t.Fatalf("removed repository's project: %+v, %v; want it kept and blocked", space, err)
	}

	// Suspended: pushes build nothing (the push payload names installation 1; the project's own counts).
	setInst := func(name string) []byte {
		return edit(t, payload(t, name), func(m map[string]any) { obj(m, "installation")["id"] = createdInst })
	}
	e.deliver("installation", setInst("installation/suspend.payload.json"), http.StatusAccepted)
	if inst, _ := e.st.InstallationGetByID(ctx, createdInst); !inst.Suspended() {
		t.Fatal("installation not suspended")
	}
	push := payload(t, "push/with-new-branch.payload.json")
	e.deliver("push", push, http.StatusAccepted)
	if c := e.counts(); c.deployments != 0 || c.deploys != 0 {
		t.Fatalf("suspended installation deployed: %+v", c)
	}
	e.deliver("installation", setInst("installation/unsuspend.payload.json"), http.StatusAccepted)
	e.deliver("push", push, http.StatusAccepted)
	if c := e.counts(); c.deployments != 1 || c.deploys != 1 {
		t.Fatalf("unsuspended installation: %+v", c)
	}
	e.deliver("installation", setInst("installation/new_permissions_accepted.payload.json"), http.StatusAccepted)

	// Uninstalled: the projects stay (their sites serve on) but say why nothing builds, and pushes build nothing.
	e.deliver("installation", setInst("installation/deleted.payload.json"), http.StatusAccepted)
	if inst, err := e.st.InstallationGetByID(ctx, createdInst); err != nil || !inst.Suspended() {
		t.Fatalf("deleted installation: %+v, %v; want it kept, suspended, for its members' dashboard", inst, err)
	}
	p, err = e.st.ProjectGetByRepoID(ctx, helloWorldRepo)
	if err != nil || !strings.Contains(p.GitHubBlocked, "GitHub App was uninstalled from") {
		t.Fatalf("project after uninstall: %+v, %v", p, err)
	}
	before := e.counts()
	e.deliver("push", push, http.StatusAccepted)
	if c := e.counts(); c.projects != 3 || c.deployments != before.deployments || c.deploys != before.deploys {
		t.Fatalf("after uninstall: %+v, before the push %+v", c, before)
	}
	// Installed again (a new installation id): the project is re-linked and builds.
	e.deliver("installation", edit(t, payload(t, "installation/created.payload.json"), func(m map[string]any) {
		obj(m, "installation")["id"] = float64(createdInst + 1)
	}), http.StatusAccepted)
	if p, err = e.st.ProjectGetByRepoID(ctx, helloWorldRepo); err != nil || p.GitHubBlocked != "" || p.InstallationID != createdInst+1 {
		t.Fatalf("after reinstall: %+v, %v", p, err)
	}
}

func TestPushProduction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.seed("{}")
	e.deliver("push", payload(t, "push/with-new-branch.payload.json"), http.StatusAccepted)
	ds := e.deployments(p.ID)
	if len(ds) != 1 {
		t.Fatalf("deployments: %+v", ds)
	}
	d := ds[0]
	if d.Kind != store.KindProduction || d.Alias != "production" || d.Ref != "master" || d.PRNumber != 0 ||
		d.CommitSHA != "6113728f27ae82c7b1a177c8d03f9e96e0adf246" || d.Status != store.StatusQueued {
		t.Fatalf("deployment: %+v", d)
	}
	wantDeployJobs(t, e.jobs(), false, d.ID)

	// The next push to the branch is queued too, superseding nothing yet: intake cannot tell which commit is
	// newer (deliveries come out of order), so its deploy_queued job supersedes once GitHub says where the
	// branch points (app/jobs TestPushesOutOfOrder).
	next := edit(t, payload(t, "push/with-new-branch.payload.json"), func(m map[string]any) {
		m["after"] = "1111111111111111111111111111111111111111"
	})
	e.deliver("push", next, http.StatusAccepted)
	ds = e.deployments(p.ID)
	if len(ds) != 2 || ds[0].Status != store.StatusQueued || ds[0].SupersededBy != "" || ds[1].Status != store.StatusQueued {
		t.Fatalf("after second push: %+v", ds)
	}
	wantDeployJobs(t, e.jobs(), false, ds[0].ID, ds[1].ID)
}

// TestPushProductionBranchSetting: the project's production_branch decides, not the payload's default_branch.
// The real payload pushes master, the repository's default; with production_branch "release" master is a
// preview and a push to release is production.
func TestPushProductionBranchSetting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	p := e.seed("{}")
	branch := "release"
	if _, err := e.st.ProjectUpdate(ctx, store.ProjectUpdateParams{ID: p.ID, ProductionBranch: &branch}); err != nil {
		t.Fatal(err)
	}
	master := payload(t, "push/with-new-branch.payload.json")
	var m map[string]any
	if err := json.Unmarshal(master, &m); err != nil || obj(m, "repository")["default_branch"] != "master" {
		t.Fatalf("the real payload should name master as its default branch (%v)", err)
	}
	e.deliver("push", master, http.StatusAccepted)
	e.deliver("push", edit(t, master, func(m map[string]any) {
		m["ref"], m["after"] = "refs/heads/release", "2222222222222222222222222222222222222222"
	}), http.StatusAccepted)
	ds := e.deployments(p.ID)
	if len(ds) != 2 {
		t.Fatalf("deployments: %+v", ds)
	}
	if ds[0].Ref != "master" || ds[0].Kind != store.KindPreview || ds[0].Alias != "git-master" {
		t.Fatalf("push to the default branch that is not the production branch: %+v", ds[0])
	}
	if ds[1].Ref != "release" || ds[1].Kind != store.KindProduction || ds[1].Alias != "production" {
		t.Fatalf("push to the production branch: %+v", ds[1])
	}
}

func TestPushBranchPreview(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.seed("{}")
	body := edit(t, payload(t, "push/with-new-branch.payload.json"), func(m map[string]any) { m["ref"] = "refs/heads/Feature/Login_Page" })
	e.deliver("push", body, http.StatusAccepted)
	ds := e.deployments(p.ID)
	if len(ds) != 1 || ds[0].Kind != store.KindPreview || ds[0].Alias != "git-feature-login-page" || ds[0].Ref != "Feature/Login_Page" {
		t.Fatalf("deployments: %+v", ds)
	}
	wantDeployJobs(t, e.jobs(), false, ds[0].ID)
}

// TestBranchDeletion: deleting a branch retires its preview (one job, the closed pull request's), while the
// production branch's deletion and a repository without a project enqueue nothing.
func TestBranchDeletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	branch := payload(t, "push/with-new-branch.payload.json")
	deleted := func(ref string) []byte {
		return edit(t, branch, func(m map[string]any) {
			m["ref"], m["deleted"], m["after"] = ref, true, "0000000000000000000000000000000000000000"
		})
	}
	if w := e.send(delivery{event: "push", body: deleted("refs/heads/feature")}); w.Code != http.StatusAccepted {
		t.Fatalf("no project: status %d", w.Code)
	}
	if c := e.counts(); c.jobs != 0 || c.projects != 0 {
		t.Fatalf("a branch deleted in a repository with no project: %+v", c)
	}
	p := e.seed("{}")
	if w := e.send(delivery{event: "push", body: deleted("refs/heads/" + p.ProductionBranch)}); w.Code != http.StatusAccepted {
		t.Fatalf("production branch: status %d", w.Code)
	}
	if c := e.counts(); c.jobs != 0 {
		t.Fatalf("the production branch's deletion enqueued %d jobs", c.jobs)
	}
	if w := e.send(delivery{event: "push", body: deleted("refs/heads/feature")}); w.Code != http.StatusAccepted {
		t.Fatalf("feature branch: status %d", w.Code)
	}
	js := e.jobs()
	if len(js) != 1 || js[0].Kind != "pr_close" {
		t.Fatalf("jobs after a branch deletion: %+v", js)
	}
	if a := js[0].Args; a["project_id"] != float64(p.ID) || a["branch"] != "feature" || a["pr_number"] != float64(0) {
		t.Fatalf("job args = %+v", a)
	}
	if c := e.counts(); c.deployments != 0 {
		t.Fatalf("a branch deletion created %d deployments", c.deployments)
	}
}

func TestPushIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed("{}")
	branch := payload(t, "push/with-new-branch.payload.json")
	for name, body := range map[string][]byte{
		"tag deletion": payload(t, "push/payload.json"),
		"tag push":     edit(t, branch, func(m map[string]any) { m["ref"] = "refs/tags/v1.0.0" }),
		"zero after":   edit(t, branch, func(m map[string]any) { m["after"] = "0000000000000000000000000000000000000000" }),
		"note ref":     edit(t, branch, func(m map[string]any) { m["ref"] = "refs/notes/commits" }),
	} {
		if w := e.send(delivery{event: "push", body: body}); w.Code != http.StatusAccepted {
			t.Errorf("%s: status %d", name, w.Code)
		}
	}
	if c := e.counts(); c.deployments != 0 || c.jobs != 0 || c.deliveries != 4 {
		t.Fatalf("ignored pushes: %+v", c)
	}
	if got := counterValue(t, e.reg, "push", webhook.OutcomeIgnored); got != 4 {
		t.Fatalf("ignored counter = %v", got)
	}
}

// TestPushUnknownRepository: a known installation gets a project on the fly; an unknown one builds nothing.
func TestPushUnknownRepository(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	push := payload(t, "push/with-new-branch.payload.json")
	e.deliver("push", push, http.StatusAccepted)
	if c := e.counts(); c.projects != 0 || c.deployments != 0 || c.jobs != 0 {
		t.Fatalf("unknown installation: %+v", c)
	}
	if _, err := e.st.InstallationUpsert(ctx, store.InstallationUpsertParams{ID: eventInst, AccountLogin: "Codertocat", AccountType: "User", AccountID: 1}); err != nil {
		t.Fatal(err)
	}
	e.deliver("push", push, http.StatusAccepted)
	p, err := e.st.ProjectGetByRepoID(ctx, helloWorldRepo)
	if err != nil || p.Name != "hello-world" || p.ProductionBranch != "master" || p.InstallationID != eventInst {
		t.Fatalf("auto-created project: %+v, %v", p, err)
	}
	ds := e.deployments(p.ID)
	if len(ds) != 1 || ds[0].Kind != store.KindProduction {
		t.Fatalf("deployments: %+v", ds)
	}
	wantDeployJobs(t, e.jobs(), false, ds[0].ID)
}

func TestPullRequestLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	p := e.seed("{}")
	e.deliver("pull_request", payload(t, "pull_request/opened.payload.json"), http.StatusAccepted)
	ds := e.deployments(p.ID)
	if len(ds) != 1 {
		t.Fatalf("deployments: %+v", ds)
	}
	first := ds[0]
	if first.Kind != store.KindPreview || first.Alias != "pr-2" || first.PRNumber != 2 || first.CommitSHA != prHeadSHA ||
		first.Ref != "changes" || first.Status != store.StatusQueued {
		t.Fatalf("deployment: %+v", first)
	}
	if f, _ := e.st.DeploymentForkGet(ctx, first.ID); f.Fork || f.AwaitingApproval {
		t.Fatalf("same-repository pull request flagged: %+v", f)
	}

	sync := edit(t, payload(t, "pull_request/synchronize.payload.json"), func(m map[string]any) {
		obj(m, "pull_request", "head")["sha"] = "2222222222222222222222222222222222222222"
	})
	e.deliver("pull_request", sync, http.StatusAccepted)
	ds = e.deployments(p.ID)
	// As for pushes, superseding waits for GitHub's answer about the head (the deploy_queued job).
	if len(ds) != 2 || ds[0].Status != store.StatusQueued || ds[0].SupersededBy != "" ||
		ds[1].CommitSHA != "2222222222222222222222222222222222222222" || ds[1].Alias != "pr-2" {
		t.Fatalf("after synchronize: %+v", ds)
	}
	// Ignored actions.
	for _, name := range []string{"assigned", "labeled", "unlabeled", "review_requested", "ready_for_review.with-installation", "locked", "converted_to_draft.with-installation"} {
		e.deliver("pull_request", payload(t, "pull_request/"+name+".payload.json"), http.StatusAccepted)
	}
	if c := e.counts(); c.deployments != 2 || c.deploys != 2 {
		t.Fatalf("ignored actions changed state: %+v", c)
	}
	// A real reopen after that synchronize carries its head (the payload's own is the opened commit, which is
	// older than the preview's now and judged a replay: TestOpenedReplayIsStale).
	reopened := edit(t, payload(t, "pull_request/reopened.payload.json"), func(m map[string]any) {
		obj(m, "pull_request", "head")["sha"] = "2222222222222222222222222222222222222222"
	})
	e.deliver("pull_request", reopened, http.StatusAccepted)
	e.deliver("pull_request", payload(t, "pull_request/closed.payload.json"), http.StatusAccepted)
	ds = e.deployments(p.ID)
	if len(ds) != 3 {
		t.Fatalf("after reopen: %+v", ds)
	}
	js := e.jobs()
	wantDeployJobs(t, js, false, ds[0].ID, ds[1].ID, ds[2].ID)
	last := js[len(js)-1]
	if last.Kind != "pr_close" || last.Args["project_id"] != float64(p.ID) || last.Args["pr_number"] != float64(2) || len(last.Args) != 2 {
		t.Fatalf("jobs: %+v, want a pr_close job last", js)
	}
	var closes int
	for _, j := range js {
		if j.Kind == "pr_close" {
			closes++
		}
	}
	if closes != 1 {
		t.Fatalf("%d pr_close jobs, want 1", closes)
	}
}

func forkPR(t *testing.T, name string) []byte {
	return edit(t, payload(t, "pull_request/"+name), func(m map[string]any) {
		r := obj(m, "pull_request", "head", "repo")
		r["id"], r["full_name"], r["name"] = 999, "mallory/Hello-World", "Hello-World"
	})
}

func TestForkPullRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	// Fork approval is on by default (TestForkPullRequestApproval); a project may turn it off.
	p := e.seed(`{"requireForkApproval": false}`)
	e.deliver("pull_request", forkPR(t, "opened.payload.json"), http.StatusAccepted)
	ds := e.deployments(p.ID)
	if len(ds) != 1 {
		t.Fatalf("deployments: %+v", ds)
	}
	if f, err := e.st.DeploymentForkGet(ctx, ds[0].ID); err != nil || !f.Fork || f.AwaitingApproval {
		t.Fatalf("fork flags = %+v, %v; want fork, not waiting", f, err)
	}
	wantDeployJobs(t, e.jobs(), true, ds[0].ID)

	// A deleted fork (head.repo null) counts as a fork.
	gone := edit(t, payload(t, "pull_request/synchronize.payload.json"), func(m map[string]any) {
		// A synchronize brings a new head commit (the real payloads share one).
		obj(m, "pull_request", "head")["repo"], obj(m, "pull_request", "head")["sha"] = nil, "4444444444444444444444444444444444444444"
	})
	e.deliver("pull_request", gone, http.StatusAccepted)
	ds = e.deployments(p.ID)
	if f, _ := e.st.DeploymentForkGet(ctx, ds[1].ID); !f.Fork {
		t.Fatal("pull request from a deleted fork not flagged")
	}
}

// TestForkPullRequestBuildForksOff checks that {"buildForks": false} keeps fork pull requests from building at
// all (202, logged, nothing stored or queued), while the project's own pull requests still build.
func TestForkPullRequestBuildForksOff(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	e := newEnv(t, func(c *webhook.Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	p := e.seed(`{"buildForks": false, "overrides": {"buildCommand": "make"}}`)
	before := e.counts()
	e.deliver("pull_request", forkPR(t, "opened.payload.json"), http.StatusAccepted)
	approve := edit(t, forkPR(t, "labeled.payload.json"), func(m map[string]any) { obj(m, "label")["name"] = webhook.ApproveLabel })
	e.deliver("pull_request", approve, http.StatusAccepted)
	after := e.counts()
	if after.deployments != before.deployments || after.jobs != before.jobs {
		t.Fatalf("a fork pull request was built with buildForks off: before %+v, after %+v", before, after)
	}
	if !strings.Contains(logs.String(), "pull request from a fork not built") || !strings.Contains(logs.String(), "buildForks") {
		t.Fatalf("no log line says why the fork was skipped:\n%s", logs.String())
	}
	e.deliver("pull_request", payload(t, "pull_request/opened.payload.json"), http.StatusAccepted)
	ds := e.deployments(p.ID)
	if len(ds) != 1 {
		t.Fatalf("the project's own pull request under buildForks false: %+v", ds)
	}
	wantDeployJobs(t, e.jobs(), false, ds[0].ID)
}

// syncBuffer is a bytes.Buffer that a logger and the test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestForkPullRequestApproval: by default (settings that do not say), a fork's pull request waits for a
// maintainer's ferry:approve label, as GitHub Actions holds a first-time contributor's workflows.
func TestForkPullRequestApproval(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	p := e.seed(`{}`)
	e.deliver("pull_request", forkPR(t, "opened.payload.json"), http.StatusAccepted)
	ds := e.deployments(p.ID)
	if len(ds) != 1 || ds[0].Status != store.StatusQueued {
		t.Fatalf("deployments: %+v", ds)
	}
	if f, _ := e.st.DeploymentForkGet(ctx, ds[0].ID); !f.Fork || !f.AwaitingApproval {
		t.Fatalf("fork flags = %+v, want waiting", f)
	}
	if js := e.jobs(); len(js) != 0 {
		t.Fatalf("a fork awaiting approval got jobs: %+v", js)
	}
	// Another label releases nothing; ferry:approve releases the waiting deployment, once.
	e.deliver("pull_request", forkPR(t, "labeled.payload.json"), http.StatusAccepted)
	if js := e.jobs(); len(js) != 0 {
		t.Fatalf("label bug released the build: %+v", js)
	}
	approve := edit(t, forkPR(t, "labeled.payload.json"), func(m map[string]any) { obj(m, "label")["name"] = webhook.ApproveLabel })
	e.deliver("pull_request", approve, http.StatusAccepted)
	wantDeployJobs(t, e.jobs(), true, ds[0].ID)
	if f, _ := e.st.DeploymentForkGet(ctx, ds[0].ID); !f.Fork || f.AwaitingApproval {
		t.Fatalf("approved fork flags = %+v", f)
	}
	e.deliver("pull_request", approve, http.StatusAccepted)
	wantDeployJobs(t, e.jobs(), true, ds[0].ID)

	// With the label on the pull request, the next push builds at once, still as a fork.
	labeledSync := edit(t, forkPR(t, "synchronize.payload.json"), func(m map[string]any) {
		pr := obj(m, "pull_request")
		pr["labels"] = append(pr["labels"].([]any), map[string]any{"name": webhook.ApproveLabel})
		obj(pr, "head")["sha"] = "3333333333333333333333333333333333333333"
	})
	e.deliver("pull_request", labeledSync, http.StatusAccepted)
	ds = e.deployments(p.ID)
	if len(ds) != 2 {
		t.Fatalf("deployments: %+v", ds)
	}
	if f, _ := e.st.DeploymentForkGet(ctx, ds[1].ID); !f.Fork || f.AwaitingApproval {
		t.Fatalf("labeled fork push flags = %+v", f)
	}
	wantDeployJobs(t, e.jobs(), true, ds[0].ID, ds[1].ID)

	// The project's own pull requests never wait.
	e.deliver("pull_request", edit(t, payload(t, "pull_request/opened.payload.json"), func(m map[string]any) { m["number"] = 3 }), http.StatusAccepted)
	if c := e.counts(); c.deploys != 3 {
		t.Fatalf("same-repository PR under requireForkApproval: %+v", c)
	}
}

// TestOtherUnauthorizedEventsStoreNothing double-checks that an unknown event is answered 204 before any write.
func TestUnknownEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := e.counts()
	e.deliver("workflow_run", []byte(`{"action":"completed"}`), http.StatusNoContent)
	if after := e.counts(); after != before {
		t.Fatalf("unknown event stored something: %+v", after)
	}
	if got := counterValue(t, e.reg, "other", webhook.OutcomeUnknown); got != 1 {
		t.Fatalf("unknown counter = %v", got)
	}
}

// FuzzIntake throws random bodies, events and signatures at the handler: it never answers 5xx, and nothing is
// stored unless the signature is valid.
func FuzzIntake(f *testing.F) {
	f.Add("pull_request", []byte(`{"action":"opened","number":1}`), true, "")
	f.Add("push", []byte(`{"ref":"refs/heads/main","after":"abc","repository":{"id":1}}`), true, "")
	f.Add("push", []byte(`{"ref":"refs/heads/main"}`), false, "sha256=00")
	f.Add("installation", []byte(`{"action":"created","installation":{"id":5,"account":{"login":"\u0000"}}}`), true, "")
	f.Add("pull_request", []byte(`{"action":"\u0000","number":1}`), true, "")
	f.Add("ping", []byte(`{}`), false, "")
	f.Add("installation_repositories", []byte(`{"action":"added","installation":{"id":5},"repositories_added":[{"id":3,"name":"--","full_name":"a/--"}]}`), true, "")
	for _, name := range []string{"pull_request/opened.payload.json", "push/with-new-branch.payload.json", "installation/created.payload.json"} {
		f.Add(strings.Split(name, "/")[0], ghwebhooks.Payload(f, name), true, "")
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, event string, body []byte, valid bool, sig string) {
		e := &env{t: t, pool: e.pool, st: e.st, h: e.h, reg: e.reg}
		if valid {
			sig = sign(body, secret)
		} else if sig == "" {
			sig = "-"
		}
		signed := hmac.Equal([]byte(sig), []byte(sign(body, secret)))
		before := e.counts()
		w := e.send(delivery{event: event, body: body, signature: sig})
		if w.Code >= 500 {
			t.Fatalf("status %d (%s) for event %q body %q", w.Code, w.Body.String(), event, body)
		}
		if signed {
			return // a valid delivery may store whatever it means
		}
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("invalid signature %q: status %d, want 401", sig, w.Code)
		}
		if after := e.counts(); after != before {
			t.Fatalf("invalid signature changed the database: %+v -> %+v", before, after)
		}
	})
}

// readCounter is a request body that counts what is read of it and can hold the reader until released.
type readCounter struct {
	r     io.Reader
	n     atomic.Int64
	block chan struct{} // closed to let reads go on; nil never blocks
	ready chan struct{} // closed on the first read
	once  sync.Once
}

func (c *readCounter) Read(p []byte) (int, error) {
	if c.ready != nil {
		c.once.Do(func() { close(c.ready) })
	}
	if c.block != nil {
		<-c.block
	}
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestUnsignedBodiesAreNotRead: without a well-formed signature header, or with a Content-Length over the cap,
// the intake answers before it reads a byte of the body.
func TestUnsignedBodiesAreNotRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *webhook.Config) { c.MaxBodyBytes = 64 << 10 })
	for _, c := range []struct {
		name, sig string
		size      int
		want      int
	}{
		{"no signature", "", 1000, 401},
		{"sha1 signature", "sha1=0123456789abcdef0123456789abcdef01234567", 1000, 401},
		{"short signature", "sha256=abcd", 1000, 401},
		{"declared too large", "sha256=" + strings.Repeat("ab", 32), 65<<10 + 1, 413},
	} {
		body := &readCounter{r: bytes.NewReader(make([]byte, c.size))}
		r := httptest.NewRequest(http.MethodPost, "/webhooks/github", body)
		r.ContentLength = int64(c.size)
		r.Header.Set("X-GitHub-Event", "push")
		r.Header.Set("X-GitHub-Delivery", "d-"+c.name)
		if c.sig != "" {
			r.Header.Set("X-Hub-Signature-256", c.sig)
		}
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		if w.Code != c.want || body.n.Load() != 0 {
			t.Errorf("%s: status %d, %d bytes read; want %d and none read", c.name, w.Code, body.n.Load(), c.want)
		}
	}
}

// TestPendingBudgetSpent: while other bodies hold the whole budget for unverified bodies, a delivery gets 503
// with Retry-After at once instead of memory; once they are gone it is taken.
func TestPendingBudgetSpent(t *testing.T) {
	t.Parallel()
	// 4 chunks of 32 KiB: one for small bodies, three for the rest of a large one.
	e := newEnv(t, func(c *webhook.Config) { c.MaxBodyBytes = 96 << 10; c.PendingBytes = 128 << 10 })
	ping := payload(t, "ping/payload.json")
	slow := &readCounter{r: bytes.NewReader(make([]byte, 1000)), block: make(chan struct{}), ready: make(chan struct{})}
	r := httptest.NewRequest(http.MethodPost, "/webhooks/github", slow)
	r.Header.Set("X-GitHub-Event", "ping")
	r.Header.Set("X-GitHub-Delivery", "slow")
	r.Header.Set("X-Hub-Signature-256", "sha256="+strings.Repeat("ab", 32))
	held := make(chan int)
	go func() {
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		held <- w.Code
	}()
	<-slow.ready
	start := time.Now()
	w := e.send(delivery{event: "ping", body: ping})
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("with the budget spent: status %d, Retry-After %q; want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the 503 took %s", took)
	}
	close(slow.block)
	if code := <-held; code != http.StatusUnauthorized {
		t.Errorf("the slow unsigned body: status %d, want 401", code)
	}
	e.deliver("ping", ping, http.StatusAccepted)
	if got := counterValue(t, e.reg, "ping", webhook.OutcomeBusy); got != 1 {
		t.Errorf("ferry_webhooks_total{ping,busy} = %v, want 1", got)
	}
}

// TestPushReplayUnderNewDeliveryID is issue 11's item 7 at intake: X-GitHub-Delivery is not signed, so a signed
// push body is sent again under a fresh id. The commit its alias has is "already deployed", one older than the
// alias has had since is "stale": 200, no deployment, no job. Real payloads.
func TestPushReplayUnderNewDeliveryID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.seed("{}")
	first := payload(t, "push/with-new-branch.payload.json")
	second := edit(t, first, func(m map[string]any) {
		m["before"], m["after"] = m["after"], "2222222222222222222222222222222222222222"
	})
	e.deliver("push", first, http.StatusAccepted)
	// The same signed body, a new delivery id: the commit is what production is getting already.
	w := e.send(delivery{event: "push", body: first, id: "replay-1"})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "already deployed") {
		t.Fatalf("replay of the current push: %d %q, want 200 already deployed", w.Code, w.Body.String())
	}
	e.deliver("push", second, http.StatusAccepted)
	before := e.counts()
	// Last week's push, replayed after a newer one: production must not go back.
	w = e.send(delivery{event: "push", body: first, id: "replay-2"})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "stale") {
		t.Fatalf("replay of the older push: %d %q, want 200 stale", w.Code, w.Body.String())
	}
	after := e.counts()
	if after.deployments != before.deployments || after.jobs != before.jobs {
		t.Fatalf("the replay built something: %+v -> %+v", before, after)
	}
	ds := e.deployments(p.ID)
	if len(ds) != 2 || ds[1].CommitSHA != "2222222222222222222222222222222222222222" {
		t.Fatalf("deployments: %+v", ds)
	}
	if got := counterValue(t, e.reg, "push", webhook.OutcomeStale); got != 1 {
		t.Errorf("ferry_webhooks_total{push,stale} = %v, want 1", got)
	}
	if got := counterValue(t, e.reg, "push", webhook.OutcomeAlreadyDeployed); got != 1 {
		t.Errorf("ferry_webhooks_total{push,already_deployed} = %v, want 1", got)
	}
	// Intake asks the build to check the branch's head before it moves the alias.
	js := e.jobs()
	if last := js[len(js)-1]; last.Kind != "deploy" || last.Args["follow_ref"] != true {
		t.Errorf("last job %+v, want a deploy with follow_ref", last)
	}
	// A preview branch's alias is judged on its own: the same commit on another branch builds.
	other := edit(t, first, func(m map[string]any) { m["ref"] = "refs/heads/feature" })
	e.deliver("push", other, http.StatusAccepted)
}

// publishAsAction stores a one-page site under project the way the GitHub Action does (site.Store.Publish with
// the Action's meta), unknown to the database.
func (e *env) publishAsAction(project, repository string) {
	e.t.Helper()
	dir := e.t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("published by the Action"), 0o644); err != nil {
		e.t.Fatal(err)
	}
	meta := map[string]string{"builder": "github-action"}
	if repository != "" {
		meta["repository"] = repository
	}
	if _, err := e.site.Publish(context.Background(), site.PublishParams{Project: project, Dir: dir,
		Aliases: []string{site.ProductionAlias}, Meta: meta}); err != nil {
		e.t.Fatal(err)
	}
}

// TestNewProjectSkipsNamesTakenInStorage is issue 11's item 3 at intake: a repository's new project does not take
// a name that storage holds for another repository (or for none); it takes it when the stored deployments are of
// that very repository, which the signed event proves the installation reaches.
func TestNewProjectSkipsNamesTakenInStorage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct {
		stored, want string
	}{
		{"someone/else", "hello-world-2"},
		{"", "hello-world-2"},
		{"codertocat/hello-world", "hello-world"},
	} {
		e := newEnv(t)
		if _, err := e.st.InstallationUpsert(ctx, store.InstallationUpsertParams{ID: eventInst, AccountLogin: "Codertocat", AccountType: "User", AccountID: 1}); err != nil {
			t.Fatal(err)
		}
		e.publishAsAction("hello-world", c.stored)
		e.deliver("push", payload(t, "push/with-new-branch.payload.json"), http.StatusAccepted)
		p, err := e.st.ProjectGetByRepoID(ctx, helloWorldRepo)
		if err != nil || p.Name != c.want {
			t.Errorf("storage holding hello-world for %q: project %+v (%v), want name %s", c.stored, p, err, c.want)
		}
	}
}

// TestSynchronizeReplay: a pull request's synchronize body replayed under a new delivery id builds nothing when
// the preview has (or had before newer ones) its head commit; a reopened pull request still builds.
func TestSynchronizeReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.seed("{}")
	syncBody := payload(t, "pull_request/synchronize.payload.json")
	newer := edit(t, syncBody, func(m map[string]any) {
		obj(m, "pull_request", "head")["sha"] = "3333333333333333333333333333333333333333"
	})
	e.deliver("pull_request", syncBody, http.StatusAccepted)
	if w := e.send(delivery{event: "pull_request", body: syncBody}); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "already deployed") {
		t.Fatalf("replayed synchronize: %d %q", w.Code, w.Body.String())
	}
	e.deliver("pull_request", newer, http.StatusAccepted)
	if w := e.send(delivery{event: "pull_request", body: syncBody}); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "stale") {
		t.Fatalf("replayed older synchronize: %d %q", w.Code, w.Body.String())
	}
	if ds := e.deployments(p.ID); len(ds) != 2 {
		t.Fatalf("deployments: %+v", ds)
	}
	reopened := edit(t, newer, func(m map[string]any) { m["action"] = "reopened" })
	e.deliver("pull_request", reopened, http.StatusAccepted)
	if ds := e.deployments(p.ID); len(ds) != 3 {
		t.Fatalf("reopened did not build: %+v", ds)
	}
}

// TestOpenedReplayIsStale replays a pull request's signed opened (and reopened) body under a new delivery id
// after a synchronize moved its preview on: the older head commit must not take the preview back.
func TestOpenedReplayIsStale(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.seed("{}")
	syncBody := payload(t, "pull_request/synchronize.payload.json")
	opened := edit(t, syncBody, func(m map[string]any) { m["action"] = "opened" })
	newer := edit(t, syncBody, func(m map[string]any) {
		obj(m, "pull_request", "head")["sha"] = "3333333333333333333333333333333333333333"
	})
	e.deliver("pull_request", opened, http.StatusAccepted)
	e.deliver("pull_request", newer, http.StatusAccepted)
	for _, action := range []string{"opened", "reopened"} {
		old := edit(t, opened, func(m map[string]any) { m["action"] = action })
		if w := e.send(delivery{event: "pull_request", body: old}); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "stale") {
			t.Errorf("replayed %s of the older head: %d %q, want 200 stale", action, w.Code, w.Body.String())
		}
	}
	if ds := e.deployments(p.ID); len(ds) != 2 {
		t.Fatalf("deployments after the replays: %d, want 2: %+v", len(ds), ds)
	}
}

// TestApprovalReplayReleasesOnlyItsCommit: a signed ferry:approve labeled body sent again under a new delivery id,
// after the fork pushed another commit, must not release that commit's build: the maintainer approved the head
// the label event names, not whatever the fork pushed later.
func TestApprovalReplayReleasesOnlyItsCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	p := e.seed(`{}`)
	e.deliver("pull_request", forkPR(t, "opened.payload.json"), http.StatusAccepted)
	later := edit(t, forkPR(t, "synchronize.payload.json"), func(m map[string]any) {
		obj(m, "pull_request", "head")["sha"] = "4444444444444444444444444444444444444444"
	})
	e.deliver("pull_request", later, http.StatusAccepted)
	ds := e.deployments(p.ID)
	if len(ds) != 2 {
		t.Fatalf("deployments: %+v", ds)
	}
	approveOld := edit(t, forkPR(t, "labeled.payload.json"), func(m map[string]any) { obj(m, "label")["name"] = webhook.ApproveLabel })
	if w := e.send(delivery{event: "pull_request", body: approveOld}); w.Code >= 300 {
		t.Fatalf("approval of the older head: %d %q", w.Code, w.Body.String())
	}
	if js := e.jobs(); len(js) != 0 {
		t.Fatalf("an approval of commit %s released the build of a later one: %+v", ds[0].CommitSHA, js)
	}
	if f, _ := e.st.DeploymentForkGet(ctx, ds[1].ID); !f.AwaitingApproval {
		t.Fatalf("later commit's flags = %+v, want still waiting", f)
	}
	approveNew := edit(t, approveOld, func(m map[string]any) {
		obj(m, "pull_request", "head")["sha"] = "4444444444444444444444444444444444444444"
	})
	e.deliver("pull_request", approveNew, http.StatusAccepted)
	wantDeployJobs(t, e.jobs(), true, ds[1].ID)
}

// TestFormEncodedDelivery: GitHub's other content type carries the JSON in a "payload" form field, signed over
// the form body; it is accepted like a JSON delivery, and a form body signed with another secret is not.
func TestFormEncodedDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed("{}")
	form := []byte("payload=" + url.QueryEscape(string(payload(t, "pull_request/opened.payload.json"))))
	const ct = "application/x-www-form-urlencoded"
	if w := e.send(delivery{event: "pull_request", body: form, signature: sign(form, "other"), contentType: ct}); w.Code != http.StatusUnauthorized {
		t.Fatalf("form body with a wrong signature: %d", w.Code)
	}
	if w := e.send(delivery{event: "pull_request", body: form, contentType: ct}); w.Code != http.StatusAccepted {
		t.Fatalf("form-encoded delivery: %d (%s)", w.Code, strings.TrimSpace(w.Body.String()))
	}
	if c := e.counts(); c.deployments != 1 || c.deploys != 1 {
		t.Errorf("after a form-encoded delivery: %+v", c)
	}
	if w := e.send(delivery{event: "pull_request", body: []byte("payload=%zz"), contentType: ct}); w.Code != http.StatusBadRequest {
		t.Errorf("malformed form: %d", w.Code)
	}
}
