package jobs_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
)

// checkRunOf returns the one ferry/<project> check run of a commit.
func (h *harness) checkRunOf(sha string) ghfake.CheckRun {
	h.t.Helper()
	runs := h.gh.CheckRuns(owner, repoName, sha)
	if len(runs) != 1 {
		h.t.Fatalf("%d check runs on %s, want one per project and commit: %+v", len(runs), sha, runs)
	}
	return runs[0]
}

func actionIDs(c ghfake.CheckRun) string {
	var ids []string
	for _, a := range c.Actions {
		ids = append(ids, a.Identifier)
	}
	return strings.Join(ids, ",")
}

// TestCheckRunFailure: a failing build's check run completes as failure naming the failing step, with that
// step's last lines in its text, ANSI colours stripped, and a Redeploy button; every call used the installation
// token.
func TestCheckRunFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{})
	p, r := h.newProject("broken", map[string]string{
		"ferry.json": `{"buildCommand": "printf '\\033[31mError: cannot find module vite\\033[0m\\n' >&2; exit 3"}`,
		"index.html": "x",
	})
	sha := r.Commits[0]
	d := h.deploy(p, sha, "fix", 0)
	h.waitStatus(d.ID, store.StatusFailed)
	h.waitJobs()
	c := h.checkRunOf(sha)
	if c.Name != "ferry/broken" || c.ExternalID != d.ID || c.DetailsURL != "https://ferry.test/deployments/"+d.ID ||
		c.Status != "completed" || c.Conclusion == nil || *c.Conclusion != "failure" {
		t.Fatalf("check run = %+v", c)
	}
	if !strings.HasPrefix(c.Output.Title, "Build failed in ") || strings.HasSuffix(c.Output.Title, "ferry") {
		t.Errorf("title %q does not name the failing step", c.Output.Title)
	}
	if !strings.Contains(c.Output.Text, "Error: cannot find module vite") || strings.Contains(c.Output.Text, "\x1b") {
		t.Errorf("text lacks the failing line, or keeps ANSI escapes:\n%q", c.Output.Text)
	}
	if !strings.Contains(c.Output.Summary, "https://ferry.test/deployments/"+d.ID) || !strings.Contains(c.Output.Summary, "exited with code 3") {
		t.Errorf("summary:\n%s", c.Output.Summary)
	}
	if got := actionIDs(c); got != "redeploy" {
		t.Errorf("actions = %q, want redeploy", got)
	}
	var statuses []string
	for _, u := range c.Updates {
		statuses = append(statuses, u.Status+"/"+u.Conclusion)
	}
	wantLines(t, "check run states", statuses, []string{"queued/", "in_progress/", "completed/failure"})
	for _, call := range h.gh.CallsMatching("* /repos/acme/site/check-runs*") {
		if call.Auth != ghfake.AuthInstallation || call.Installation != installationID {
			t.Errorf("%s authenticated as %s (installation %d), want the installation token", call, call.Auth, call.Installation)
		}
	}
}

// TestCheckRunPreviewReadyAndRedeploy: a ready preview's check run has the URLs, the log's tail and both buttons;
// a redeploy of the same commit reports on the same check run.
func TestCheckRunPreviewReadyAndRedeploy(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{})
	p, r := h.newProject("web", static("<h1>hi</h1>"))
	sha := r.Commits[0]
	d := h.deploy(p, sha, "feature", 0)
	d = h.waitStatus(d.ID, store.StatusReady)
	h.waitJobs()
	c := h.checkRunOf(sha)
	if *c.Conclusion != "success" || c.Output.Title != "Deployed" {
		t.Fatalf("check run = %+v", c)
	}
	for _, want := range []string{d.AliasURL, d.URL, "https://ferry.test/deployments/" + d.ID, "`feature`"} {
		if !strings.Contains(c.Output.Summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, c.Output.Summary)
		}
	}
	if !strings.Contains(c.Output.Text, "ready: "+d.AliasURL) {
		t.Errorf("text lacks the log's tail:\n%s", c.Output.Text)
	}
	if got := actionIDs(c); got != "redeploy,promote" {
		t.Errorf("actions = %q, want redeploy,promote", got)
	}

	d2 := h.deploy(p, sha, "feature", 0)
	h.waitStatus(d2.ID, store.StatusReady)
	h.waitJobs()
	c2 := h.checkRunOf(sha)
	if c2.ID != c.ID || c2.ExternalID != d2.ID || *c2.Conclusion != "success" {
		t.Errorf("after the redeploy: run %d (external %s, %v), want run %d for %s", c2.ID, c2.ExternalID, *c2.Conclusion, c.ID, d2.ID)
	}
	if n := len(h.gh.CallsMatching("POST /repos/acme/site/check-runs")); n != 1 {
		t.Errorf("%d check runs created, want 1", n)
	}
}

// TestCheckRunTailWhileBuilding: a production build's check run shows the log's
// newest lines while it runs (CheckRunInterval), and offers Redeploy only once ready.
func TestCheckRunTailWhileBuilding(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{checkRunInterval: 200 * time.Millisecond})
	marker := fmt.Sprintf("tail-marker-%d", time.Now().UnixNano())
	p, r := h.newProject("site", map[string]string{
		"ferry.json": `{"buildCommand": "echo ` + marker + `; sleep 3", "outputDirectory": "."}`,
		"index.html": "ok",
	})
	sha := r.Commits[0]
	d := h.deploy(p, sha, "main", 0)
	waitFor(t, "an in_progress update with the marker", func() bool {
		for _, c := range h.gh.CheckRuns(owner, repoName, sha) {
			for _, u := range c.Updates {
				if u.Status == "in_progress" && strings.Contains(u.Output.Text, marker) {
					return true
				}
			}
		}
		return false
	})
	h.waitStatus(d.ID, store.StatusReady)
	h.waitJobs()
	c := h.checkRunOf(sha)
	if *c.Conclusion != "success" || actionIDs(c) != "redeploy" {
		t.Errorf("production check run: %v, actions %q", *c.Conclusion, actionIDs(c))
	}
}
