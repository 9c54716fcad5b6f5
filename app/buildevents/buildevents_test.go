package buildevents_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/buildevents"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/build"
	"github.com/ferryhq/ferry/internal/build/buildtest"
	"github.com/ferryhq/ferry/internal/buildcontract"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/internal/site"
)

// The test binary doubles as the ferry binary of the fake ECS tasks (e2e_test.go).
func TestMain(m *testing.M) { buildtest.Main(m, pgtest.Main) }

var projects atomic.Int64

type world struct {
	t   *testing.T
	ctx context.Context
	st  *store.Store
	svc *buildevents.Service
	url string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	pool := pgtest.New(t)
	svc, err := buildevents.New(buildevents.Config{DB: pool})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return &world{t: t, ctx: context.Background(), st: store.New(pool), svc: svc, url: srv.URL}
}

// building makes a deployment that is building (attempt 1).
func (w *world) building() *store.Deployment {
	w.t.Helper()
	n := projects.Add(1)
	p, err := w.st.ProjectCreate(w.ctx, store.ProjectCreateParams{Name: fmt.Sprintf("web-%d", n), CloneURL: "https://example.com/x.git"})
	if err != nil {
		w.t.Fatal(err)
	}
	d, err := w.st.DeploymentCreate(w.ctx, store.DeploymentCreateParams{ID: site.NewDeploymentID(), ProjectID: p.ID,
		CommitSHA: "0123456789abcdef0123456789abcdef01234567", Ref: "main", Kind: store.KindProduction, Alias: "production"})
	if err != nil {
		w.t.Fatal(err)
	}
	if d, err = w.st.DeploymentUpdateStatus(w.ctx, store.DeploymentUpdateStatusParams{ID: d.ID, Status: store.StatusBuilding}); err != nil {
		w.t.Fatal(err)
	}
	return d
}

func (w *world) post(id, kind, token string, batch int, body string) (int, string) {
	w.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.url+"/internal/builds/"+id+"/"+kind, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if batch > 0 {
		req.Header.Set(buildcontract.BatchHeader, fmt.Sprint(batch))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (w *world) lines(id string) []string {
	w.t.Helper()
	ls, err := w.st.DeploymentLogList(w.ctx, store.DeploymentLogListParams{DeploymentID: id})
	if err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		out = append(out, l.Step+"|"+l.Line)
	}
	return out
}

// TestClaimOnceThenEventsInOrder: the claim token fetches the secrets once, the events token it hands over
// stores lines in order across batches, a repeated batch is stored once, and the outcome is kept.
func TestClaimOnceThenEventsInOrder(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	d := w.building()
	g, err := w.svc.Issue(w.ctx, buildevents.IssueParams{DeploymentID: d.ID, Secrets: buildcontract.Secrets{
		GitHubToken: "ghs_clone", Env: map[string]string{"API_KEY": "v"},
		AWS: &buildcontract.AWSCredentials{AccessKeyID: "ASIA1", SecretAccessKey: "s", SessionToken: "st"}}})
	if err != nil {
		t.Fatal(err)
	}
	if g.Attempt != 1 || !strings.HasPrefix(g.ClaimToken, "fbc_") || len(g.ClaimToken) < 40 {
		t.Errorf("grant %+v", g)
	}
	if status, _ := w.post(d.ID, "events", g.ClaimToken, 1, `{"type":"log","msg":"x"}`); status != http.StatusUnauthorized {
		t.Errorf("claim token used for events: %d, want 401", status)
	}
	sec, err := build.ClaimSecrets(w.ctx, http.DefaultClient, w.url+"/internal/builds/"+d.ID+"/secrets", g.ClaimToken)
	if err != nil {
		t.Fatal(err)
	}
	if sec.GitHubToken != "ghs_clone" || sec.Env["API_KEY"] != "v" || sec.AWS == nil || sec.AWS.SessionToken != "st" || !strings.HasPrefix(sec.EventsToken, "fbe_") {
		t.Errorf("secrets %+v", sec)
	}
	if status, body := w.post(d.ID, "secrets", g.ClaimToken, 0, ""); status != http.StatusGone || strings.Contains(body, "ghs_") {
		t.Errorf("second claim: %d %q, want 410 without secrets", status, body)
	}
	if o, _ := w.svc.Outcome(w.ctx, d.ID); !o.Claimed {
		t.Error("outcome does not say claimed")
	}

	tok := sec.EventsToken
	b1 := `{"type":"progress","step":"clone","msg":"clone started"}
{"type":"log","step":"clone","level":"INFO","msg":"line 1"}
{"type":"log","step":"clone","level":"WARN","msg":"line 2"}
`
	b2 := "\n" + `{"type":"log","step":"build","msg":"line 3"}` + "\n" + `{"type":"result","result":{"deployment":"` + d.ID + `","files":2}}`
	for i, c := range []struct {
		batch int
		body  string
	}{{1, b1}, {2, b2}, {1, b1}, {2, b2}} {
		if status, body := w.post(d.ID, "events", tok, c.batch, c.body); status != http.StatusOK {
			t.Fatalf("post %d: %d %s", i, status, body)
		}
	}
	want := []string{"clone|» clone started", "clone|line 1", "clone|WARN: line 2", "build|line 3"}
	if got := w.lines(d.ID); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	o, err := w.svc.Outcome(w.ctx, d.ID)
	if err != nil || !strings.Contains(string(o.Result), `"files": 2`) && !strings.Contains(string(o.Result), `"files":2`) {
		t.Errorf("outcome %+v %v", o, err)
	}
}

// TestTokensRefused: a wrong or missing token is 401, a finished deployment or a newer attempt 410, and a
// revoked grant 401; malformed bodies are 400.
func TestTokensRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	d := w.building()
	g, err := w.svc.Issue(w.ctx, buildevents.IssueParams{DeploymentID: d.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"", "fbc_wrong", g.ClaimToken + "x"} {
		if status, _ := w.post(d.ID, "secrets", tok, 0, ""); status != http.StatusUnauthorized {
			t.Errorf("claim with %q: %d, want 401", tok, status)
		}
	}
	if status, _ := w.post("dpl-0000000000000000", "secrets", g.ClaimToken, 0, ""); status != http.StatusUnauthorized {
		t.Errorf("claim for another deployment: %d, want 401", status)
	}
	sec, err := build.ClaimSecrets(w.ctx, http.DefaultClient, w.url+"/internal/builds/"+d.ID+"/secrets", g.ClaimToken)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ body, why string }{
		{`{"type":"log"`, "not JSON"},
		{`{"type":"shell","msg":"rm -rf"}`, "unknown type"},
		{`{"type":"result","result":"yes"}`, "result not an object"},
	} {
		if status, _ := w.post(d.ID, "events", sec.EventsToken, 0, c.body); status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", c.why, status)
		}
	}
	if status, _ := w.post(d.ID, "events", sec.EventsToken, 0, `{"type":"log","msg":"ok"}`); status != http.StatusOK {
		t.Errorf("valid token: %d", status)
	}

	// A new attempt (an infrastructure retry) makes the old tokens 410.
	if _, err := w.st.DeploymentUpdateStatus(w.ctx, store.DeploymentUpdateStatusParams{ID: d.ID, Status: store.StatusBuilding}); err != nil {
		t.Fatal(err)
	}
	if status, _ := w.post(d.ID, "events", sec.EventsToken, 0, `{"type":"log","msg":"late"}`); status != http.StatusGone {
		t.Errorf("token of an earlier attempt: %d, want 410", status)
	}

	// A finished deployment's tokens are 410.
	d2 := w.building()
	g2, _ := w.svc.Issue(w.ctx, buildevents.IssueParams{DeploymentID: d2.ID})
	sec2, err := build.ClaimSecrets(w.ctx, http.DefaultClient, w.url+"/internal/builds/"+d2.ID+"/secrets", g2.ClaimToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.DeploymentUpdateStatus(w.ctx, store.DeploymentUpdateStatusParams{ID: d2.ID, Status: store.StatusReady}); err != nil {
		t.Fatal(err)
	}
	if status, _ := w.post(d2.ID, "events", sec2.EventsToken, 0, `{"type":"log","msg":"after"}`); status != http.StatusGone {
		t.Errorf("after finish: %d, want 410", status)
	}
	if got := w.lines(d2.ID); len(got) != 0 {
		t.Errorf("lines stored after finish: %v", got)
	}
	// A revoked grant is unknown: 401.
	if err := w.svc.Revoke(w.ctx, d2.ID); err != nil {
		t.Fatal(err)
	}
	if status, _ := w.post(d2.ID, "events", sec2.EventsToken, 0, `{"type":"log","msg":"after"}`); status != http.StatusUnauthorized {
		t.Errorf("after revoke: %d, want 401", status)
	}
	if _, err := w.svc.Outcome(w.ctx, d2.ID); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("outcome after revoke: %v", err)
	}

	// Issue refuses deployments that are not building.
	if _, err := w.svc.Issue(w.ctx, buildevents.IssueParams{DeploymentID: d2.ID}); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("issue for a finished deployment: %v, want ECONFLICT", err)
	}
	if _, err := w.svc.Issue(w.ctx, buildevents.IssueParams{DeploymentID: "dpl-0000000000000000"}); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("issue for an unknown deployment: %v, want ENOTFOUND", err)
	}
}

// TestExpiredGrant: a grant past its TTL is 410 even while its deployment builds.
func TestExpiredGrant(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	d := w.building()
	g, err := w.svc.Issue(w.ctx, buildevents.IssueParams{DeploymentID: d.ID, TTL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if status, _ := w.post(d.ID, "secrets", g.ClaimToken, 0, ""); status != http.StatusGone {
		t.Errorf("expired claim: %d, want 410", status)
	}
}

// TestDatabaseHoldsNoUsableSecret: the row holds hashes and ciphertext only.
func TestDatabaseHoldsNoUsableSecret(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	svc, _ := buildevents.New(buildevents.Config{DB: pool})
	w := &world{t: t, ctx: context.Background(), st: store.New(pool), svc: svc}
	d := w.building()
	g, err := svc.Issue(w.ctx, buildevents.IssueParams{DeploymentID: d.ID, Secrets: buildcontract.Secrets{GitHubToken: "ghs_plainsecret"}})
	if err != nil {
		t.Fatal(err)
	}
	var row string
	if err := pool.QueryRow(w.ctx, `SELECT row_to_json(t)::text FROM build_tokens t WHERE deployment_id = $1`, d.ID).Scan(&row); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"ghs_plainsecret", hex.EncodeToString([]byte("ghs_plainsecret")), g.ClaimToken,
		strings.TrimPrefix(g.ClaimToken, "fbc_"), hex.EncodeToString([]byte(g.ClaimToken))} {
		if strings.Contains(row, s) {
			t.Errorf("build_tokens row holds %q", s)
		}
	}
}
