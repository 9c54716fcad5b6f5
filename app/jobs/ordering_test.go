package jobs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
)

// deploymentOf waits for the deployment of sha that intake stored for p, and returns it.
func (h *harness) deploymentOf(p *store.Project, sha string) *store.Deployment {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, d := range h.projectDeployments(p) {
			if d.CommitSHA == sha {
				return d
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no deployment of %s", sha)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func conclusion(c ghfake.CheckRun) string {
	if c.Conclusion == nil {
		return ""
	}
	return *c.Conclusion
}

// timedBuild is a commit whose build takes about secs seconds and then serves body.
func timedBuild(secs, body string) map[string]string {
	return map[string]string{
		"ferry.json": `{"buildCommand": "sleep ` + secs + `", "outputDirectory": "."}`,
		"index.html": body,
	}
}

// TestPushesOutOfOrder (issue 15, ordering): the newer push's webhook arrives first and builds; the older one
// arrives while it builds. GitHub says main points at the newer commit, so the older push must not cancel the
// newer build (before the fix it did, and then ended stale itself: production on neither commit), and
// production ends on the newer commit.
func TestPushesOutOfOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{concurrency: 2})
	p, r := h.newProject("order", static("<h1>old</h1>"), timedBuild("3", "<h1>new</h1>"))
	older, newer := r.Commits[0], r.Commits[1]
	h.gh.SetRef(owner, repoName, "main", newer)
	h.gh.SetWebhook(h.intake(), []byte(webhookSecret))

	h.gh.Deliver("push", h.push(p, "main", newer))
	dNew := h.waitStatus(h.deploymentOf(p, newer).ID, store.StatusBuilding)
	h.gh.Deliver("push", h.push(p, "main", older))
	dOld := h.deploymentOf(p, older)

	dOld = h.waitStatus(dOld.ID, store.StatusCanceled)
	if dOld.SupersededBy != "" || !strings.Contains(dOld.Error, "now points at "+newer[:7]) {
		t.Errorf("older push's deployment: superseded by %q, error %q; want it stale, naming %s", dOld.SupersededBy, dOld.Error, newer[:7])
	}
	dNew = h.waitStatus(dNew.ID, store.StatusReady)
	h.waitJobs()
	if dNew.SupersededBy != "" {
		t.Errorf("the newer build was superseded by %s", dNew.SupersededBy)
	}
	if got := h.aliasTarget(p, "production"); got != dNew.ID {
		t.Fatalf("production -> %q, want the newer commit's %s", got, dNew.ID)
	}
	// GitHub was asked where main points when the older push was queued (the newer one was unfinished then),
	// and at the end of each build.
	if asked := h.gh.CallsMatching("GET /repos/" + owner + "/" + repoName + "/git/ref/heads/main"); len(asked) < 3 {
		t.Errorf("GitHub was asked for main %d times, want at least 3", len(asked))
	}
	if c := h.checkRunOf(newer); conclusion(c) != "success" {
		t.Errorf("newer commit's check run: %s/%s", c.Status, conclusion(c))
	}
	if c := h.checkRunOf(older); conclusion(c) != "neutral" {
		t.Errorf("older commit's check run: %s/%s, want neutral (built, not deployed)", c.Status, conclusion(c))
	}
}

// TestPushesInOrderSupersede: the newer push arrives while the older one builds. GitHub says main points at the
// newer commit, so the older build is canceled at once (superseded), and production ends on the newer commit.
func TestPushesInOrderSupersede(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{concurrency: 2})
	p, r := h.newProject("inorder", slowBuild("old"), static("<h1>new</h1>"))
	older, newer := r.Commits[0], r.Commits[1]
	h.gh.SetRef(owner, repoName, "main", older)
	h.gh.SetWebhook(h.intake(), []byte(webhookSecret))

	h.gh.Deliver("push", h.push(p, "main", older))
	dOld := h.waitStatus(h.deploymentOf(p, older).ID, store.StatusBuilding)
	h.gh.SetRef(owner, repoName, "main", newer)
	h.gh.Deliver("push", h.push(p, "main", newer))
	dNew := h.deploymentOf(p, newer)

	dOld = h.waitStatus(dOld.ID, store.StatusCanceled)
	if dOld.SupersededBy != dNew.ID {
		t.Errorf("older build: superseded by %q (%q), want %s", dOld.SupersededBy, dOld.Error, dNew.ID)
	}
	h.waitStatus(dNew.ID, store.StatusReady)
	h.waitJobs()
	if got := h.aliasTarget(p, "production"); got != dNew.ID {
		t.Fatalf("production -> %q, want %s", got, dNew.ID)
	}
	if !strings.Contains(h.logText(dOld.ID), "superseded by "+dNew.ID) {
		t.Errorf("older build's log:\n%s", h.logText(dOld.ID))
	}
}

// pullRequest is a real pull_request delivery (synchronize) of PR n at sha for p's repository, from a branch of
// the same repository.
func (h *harness) pullRequest(p *store.Project, action string, n int, sha string) []byte {
	return realPayload(h.t, "pull_request/synchronize.payload.json", func(m map[string]any) {
		m["action"], m["number"], m["after"] = action, float64(n), sha
		repo := m["repository"].(map[string]any)
		repo["id"], repo["full_name"], repo["name"], repo["clone_url"] = float64(p.GitHubRepoID), owner+"/"+repoName, repoName, p.CloneURL
		pr := m["pull_request"].(map[string]any)
		pr["number"] = float64(n)
		for _, side := range []string{"head", "base"} {
			s := pr[side].(map[string]any)
			s["repo"].(map[string]any)["id"] = float64(p.GitHubRepoID)
			s["repo"].(map[string]any)["full_name"] = owner + "/" + repoName
		}
		pr["head"].(map[string]any)["sha"] = sha
		m["installation"] = map[string]any{"id": float64(installationID)}
	})
}

// TestPullRequestBuildNeverRollsBack (issue 15, item 2): a pull request's build whose commit is no longer the
// pull request's head when it ends (GET /pulls/{n} says so) does not move pr-<n>; its check run ends neutral,
// its commit status success ("not deployed"), its GitHub deployment inactive, and the sticky comment's row
// shows the pull request's current preview again, not the stale commit's "Building".
func TestPullRequestBuildNeverRollsBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{})
	p, r := h.newProject("prstale", static("<h1>old</h1>"), static("<h1>new</h1>"))
	older, newer := r.Commits[0], r.Commits[1]
	h.gh.SetPull(owner, repoName, 5, newer)
	h.gh.SetWebhook(h.intake(), []byte(webhookSecret))

	h.gh.Deliver("pull_request", h.pullRequest(p, "synchronize", 5, newer))
	dNew := h.waitStatus(h.deploymentOf(p, newer).ID, store.StatusReady)
	h.waitJobs()
	if got := h.aliasTarget(p, "pr-5"); got != dNew.ID {
		t.Fatalf("pr-5 -> %q, want %s", got, dNew.ID)
	}
	// The older commit's delivery arrives late (a retry, or out of order): intake never saw it, so it builds.
	h.gh.Deliver("pull_request", h.pullRequest(p, "synchronize", 5, older))
	dOld := h.waitStatus(h.deploymentOf(p, older).ID, store.StatusCanceled)
	h.waitJobs()
	if got := h.aliasTarget(p, "pr-5"); got != dNew.ID {
		t.Fatalf("pr-5 -> %q after the stale build, want it to stay on %s", got, dNew.ID)
	}
	if !strings.Contains(dOld.Error, "head of pull request #5 is now "+newer[:7]) {
		t.Errorf("stale deployment's reason %q", dOld.Error)
	}
	if _, err := h.site.ManifestGet(h.ctx, p.Name, dOld.ID); err != nil {
		t.Errorf("the stale build is not reachable by id: %v", err)
	}
	asked := h.gh.CallsMatching("GET /repos/" + owner + "/" + repoName + "/pulls/5")
	if len(asked) != 2 {
		t.Errorf("GitHub was asked for PR #5 %d times, want once per build", len(asked))
	}
	for _, c := range asked {
		if c.Auth != ghfake.AuthInstallation {
			t.Errorf("%s with %v credentials, want the installation token", c, c.Auth)
		}
	}
	if c := h.checkRunOf(older); conclusion(c) != "neutral" || !strings.Contains(c.Output.Title, "pull request moved on") {
		t.Errorf("stale commit's check run: %s/%s %q", c.Status, conclusion(c), c.Output.Title)
	}
	st := h.gh.CommitStatuses(owner, repoName, older)
	if len(st) == 0 || st[len(st)-1].State != "success" || !strings.Contains(st[len(st)-1].Description, "not deployed") {
		t.Errorf("stale commit's statuses: %+v", st)
	}
	ss := h.gh.DeploymentStatuses(dOld.GitHubDeploymentID)
	if len(ss) == 0 || ss[len(ss)-1].State != "inactive" {
		t.Errorf("stale GitHub deployment's statuses: %+v", ss)
	}
	cs := h.gh.Comments(owner, repoName, 5)
	if len(cs) != 1 {
		t.Fatalf("%d comments on PR #5, want one sticky comment", len(cs))
	}
	if body := cs[0].Body; !strings.Contains(body, "Ready") || !strings.Contains(body, newer[:7]) || strings.Contains(body, older[:7]) {
		t.Errorf("sticky comment after the stale build:\n%s", body)
	}
}
