package jobs_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/app/webhook"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
	"github.com/ferryhq/ferry/internal/ghwebhooks"
)

const webhookSecret = "redelivery-test-secret"

// realPayload reads a real delivery (octokit/webhooks examples) and changes it through a JSON map.
func realPayload(t *testing.T, name string, f func(m map[string]any)) []byte {
	t.Helper()
	b := ghwebhooks.Payload(t, name)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if f != nil {
		f(m)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// closedURL is a loopback URL nothing listens on: what GitHub meets while Ferry is down.
func closedURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String() + "/webhooks/github"
	ln.Close()
	return u
}

// intake starts the real webhook intake on loopback and returns its URL.
func (h *harness) intake() string {
	h.t.Helper()
	rc, err := river.NewClient(riverpgxv5.New(h.pool), &river.Config{})
	if err != nil {
		h.t.Fatal(err)
	}
	in, err := webhook.New(webhook.Config{Secret: []byte(webhookSecret), Pool: h.pool, River: rc, Site: h.site})
	if err != nil {
		h.t.Fatal(err)
	}
	srv := httptest.NewServer(in)
	h.t.Cleanup(srv.Close)
	return srv.URL + "/webhooks/github"
}

func (h *harness) push(p *store.Project, branch, sha string) []byte {
	return realPayload(h.t, "push/with-new-branch.payload.json", func(m map[string]any) {
		m["ref"], m["after"] = "refs/heads/"+branch, sha
		repo := m["repository"].(map[string]any)
		// The payload's clone URL is the project's (intake follows it): the test's git server, not github.com.
		repo["id"], repo["full_name"], repo["name"], repo["clone_url"] = float64(p.GitHubRepoID), owner+"/"+repoName, repoName, p.CloneURL
		m["installation"] = map[string]any{"id": float64(installationID)}
	})
}

func attemptsByGUID(gh *ghfake.Server) map[string][]ghfake.HookDelivery {
	out := map[string][]ghfake.HookDelivery{}
	for _, d := range gh.HookDeliveries() {
		out[d.GUID] = append(out[d.GUID], d)
	}
	return out
}

// TestMissedWebhooksRedelivered: pushes delivered while Ferry is down (a closed port; the fake GitHub records
// them failed) are asked for again when it starts, and every push is built exactly once. Deliveries Ferry
// accepted, or answered (an event it does not handle: 204), are not asked for; a second run asks for nothing.
func TestMissedWebhooksRedelivered(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{noClient: true, redeliver: true})
	p, r := h.newProject("site", static("<h1>v1</h1>"), static("<h1>v2</h1>"))

	// Ferry is down. GitHub's branches point where the pushes put them (the build asks before moving an alias).
	h.gh.SetRef(owner, repoName, "main", r.Commits[0])
	h.gh.SetRef(owner, repoName, "feature", r.Commits[1])
	h.gh.SetRef(owner, repoName, "other", r.Commits[0])
	h.gh.SetWebhook(closedURL(t), []byte(webhookSecret))
	missed := []string{
		h.gh.Deliver("push", h.push(p, "main", r.Commits[0])),
		h.gh.Deliver("push", h.push(p, "feature", r.Commits[1])),
	}
	// Intake is up again (the workers not yet): one push is accepted, and an event Ferry does not handle gets 204.
	h.gh.SetWebhook(h.intake(), []byte(webhookSecret))
	accepted := h.gh.Deliver("push", h.push(p, "other", r.Commits[0]))
	unhandled := h.gh.Deliver("star", realPayload(t, "ping/payload.json", nil))
	before := attemptsByGUID(h.gh)
	for _, g := range missed {
		if a := before[g]; len(a) != 1 || a[0].StatusCode != 0 {
			t.Fatalf("delivery while down: %+v, want one failed attempt", a)
		}
	}
	if a := before[accepted]; len(a) != 1 || a[0].StatusCode != http.StatusAccepted {
		t.Fatalf("delivery while up: %+v", a)
	}
	if a := before[unhandled]; len(a) != 1 || a[0].StatusCode != http.StatusNoContent {
		t.Fatalf("unhandled event: %+v", a)
	}

	// The app starts: the redelivery job runs at once.
	h.startClient(2)
	waitFor(t, "three deployments", func() bool { return len(h.projectDeployments(p)) == 3 })
	for _, d := range h.projectDeployments(p) {
		h.waitStatus(d.ID, store.StatusReady)
	}
	h.waitJobs()
	h.gh.WaitDeliveries()

	refs := map[string]int{}
	for _, d := range h.projectDeployments(p) {
		refs[d.Ref+" "+d.CommitSHA]++
	}
	for _, want := range []string{"main " + r.Commits[0], "feature " + r.Commits[1], "other " + r.Commits[0]} {
		if refs[want] != 1 {
			t.Errorf("deployments by ref and commit = %v, want one of %q", refs, want)
		}
	}
	after := attemptsByGUID(h.gh)
	for _, g := range missed {
		a := after[g]
		if len(a) != 2 || !a[1].Redelivery || a[1].StatusCode != http.StatusAccepted {
			t.Errorf("missed delivery %s attempts: %+v, want the failure and one accepted redelivery", g, a)
		}
	}
	if len(after[accepted]) != 1 || len(after[unhandled]) != 1 {
		t.Errorf("answered deliveries were redelivered: %+v %+v", after[accepted], after[unhandled])
	}
	for _, c := range h.gh.CallsMatching("* /app/hook/deliveries*") {
		if c.Auth != ghfake.AuthJWT || c.Status >= 300 {
			t.Errorf("%s: auth %s, status %d; want the App JWT", c, c.Auth, c.Status)
		}
	}
	if n := len(h.gh.CallsMatching("POST /app/hook/deliveries/*/attempts")); n != 2 {
		t.Errorf("%d redelivery requests, want 2", n)
	}

	// Another run (the next period, or another replica's): nothing is missing, nothing is asked for.
	h.gh.Reset()
	if _, err := h.client.Insert(h.ctx, jobs.RedeliverArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second run's listing", func() bool { return len(h.gh.CallsMatching("GET /app/hook/deliveries")) > 0 })
	h.waitJobs()
	if c := h.gh.CallsMatching("POST /app/hook/deliveries/*/attempts"); len(c) != 0 {
		t.Errorf("second run asked again: %v", ghfake.Lines(c))
	}
	if n := len(h.projectDeployments(p)); n != 3 {
		t.Errorf("%d deployments after the second run, want 3", n)
	}
	if n := counter(t, h.reg, "ferry_webhook_redeliveries_total", "requested"); n != 2 {
		t.Errorf("ferry_webhook_redeliveries_total{requested} = %v, want 2", n)
	}
}

// TestRedeliveryBoundOldestFirst: one run asks for at most RedeliverMax deliveries, the oldest first; the
// listing follows the cursor across pages; the next run takes the rest.
func TestRedeliveryBoundOldestFirst(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{noClient: true, redeliver: true, redeliverMax: 2})
	h.gh.SetWebhook(closedURL(t), []byte(webhookSecret))
	var guids []string
	for range 3 {
		guids = append(guids, h.gh.Deliver("ping", realPayload(t, "ping/payload.json", nil)))
	}
	// Enough answered deliveries after them that the failed ones sit past the first page of 100.
	h.gh.SetWebhook(h.intake(), []byte(webhookSecret))
	for range 120 {
		h.gh.Deliver("star", realPayload(t, "ping/payload.json", nil))
	}
	h.startClient(1)
	waitFor(t, "two redeliveries", func() bool { return len(h.gh.CallsMatching("POST /app/hook/deliveries/*/attempts")) == 2 })
	h.waitJobs()
	h.gh.WaitDeliveries()
	a := attemptsByGUID(h.gh)
	if len(a[guids[0]]) != 2 || len(a[guids[1]]) != 2 || len(a[guids[2]]) != 1 {
		t.Fatalf("attempts after the first run: %d %d %d, want the two oldest redelivered", len(a[guids[0]]), len(a[guids[1]]), len(a[guids[2]]))
	}
	if n := len(h.gh.CallsMatching("GET /app/hook/deliveries")); n < 2 {
		t.Errorf("%d listing calls, want the cursor followed to the second page", n)
	}
	if _, err := h.client.Insert(h.ctx, jobs.RedeliverArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the third redelivery", func() bool { return len(h.gh.CallsMatching("POST /app/hook/deliveries/*/attempts")) == 3 })
	h.waitJobs()
	h.gh.WaitDeliveries()
	if a := attemptsByGUID(h.gh); len(a[guids[2]]) != 2 {
		t.Errorf("the newest missed delivery: %d attempts after the second run, want 2", len(a[guids[2]]))
	}
	var n int
	if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM webhook_deliveries WHERE event = 'ping'`).Scan(&n); err != nil || n != 3 {
		t.Errorf("recorded pings = %d (%v), want 3", n, err)
	}
}

func (h *harness) projectDeployments(p *store.Project) []*store.Deployment {
	h.t.Helper()
	res, err := h.st.DeploymentListByProject(h.ctx, store.DeploymentListByProjectParams{ProjectID: p.ID})
	if err != nil {
		h.t.Fatal(err)
	}
	return res.Deployments
}
