package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/app/store"
)

// TestBlockedProjectSaysWhy: a project whose GitHub App installation went away says why on its page and in the
// list (its site URL still shown), and "deploy now" and redeploy are refused with that reason.
func TestBlockedProjectSaysWhy(t *testing.T) {
	s := newStack(t)
	owner := s.signup()
	if resp := owner.post("/projects", url.Values{"git_url": {s.repo("<h1>v1</h1>")}, "name": {"gone"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %d %s", resp.StatusCode, resp.Header.Get("X-Test-Body"))
	}
	dep := s.waitStatus(s.latest("gone").ID, store.StatusReady)
	p, err := s.st.ProjectGetByName(s.ctx, "gone")
	if err != nil {
		t.Fatal(err)
	}
	const why = "The GitHub App was uninstalled from acme on 2026-12-02: nothing builds."
	if err := s.st.ProjectSetGitHubBlocked(s.ctx, p.ID, why); err != nil {
		t.Fatal(err)
	}
	if _, body := owner.get("/projects/gone"); !strings.Contains(body, `id="blocked"`) || !strings.Contains(body, why) {
		t.Errorf("project page lacks the reason: %.1500s", body)
	}
	if _, body := owner.get("/projects"); !strings.Contains(body, "Not building") || !strings.Contains(body, "gone.localhost") {
		t.Errorf("project list lacks the badge or the site URL: %.1500s", body)
	}
	for path, form := range map[string]url.Values{
		"/projects/gone/deploy":                {"branch": {"main"}},
		"/deployments/" + dep.ID + "/redeploy": nil,
	} {
		resp := owner.post(path, form)
		if resp.StatusCode != http.StatusConflict || !strings.Contains(resp.Header.Get("X-Test-Body"), "uninstalled") {
			t.Errorf("POST %s on a blocked project: %d %.300s", path, resp.StatusCode, resp.Header.Get("X-Test-Body"))
		}
	}
	if d := s.latest("gone"); d.ID != dep.ID {
		t.Errorf("a blocked project got deployment %s", d.ID)
	}
}
