package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/app/web"
)

func TestTemplatesParse(t *testing.T) {
	pages, err := web.Templates()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"projects", "project_new", "project", "deployment", "project_settings"} {
		if pages[p] == nil {
			t.Errorf("no page %q", p)
		}
	}
}

// TestDashboard walks the pages as a user, checks bad input, and then tries every page and action as another
// user (IDOR): all 404, and nothing changes.
func TestDashboard(t *testing.T) {
	s := newStack(t)
	owner := s.signup()
	gitURL := s.repo("<h1>v1</h1>")

	// Bad input: clear messages, nothing created.
	for _, tc := range []struct {
		form   url.Values
		status int
		msg    string
	}{
		{url.Values{"git_url": {""}}, http.StatusBadRequest, "no git URL given"},
		{url.Values{"git_url": {"ftp://example.com/x.git"}}, http.StatusBadRequest, "must start with https://"},
		{url.Values{"git_url": {gitURL}, "name": {"Bad Name"}}, http.StatusBadRequest, "project name"},
		{url.Values{"git_url": {strings.Repeat("a", 70000)}}, http.StatusRequestEntityTooLarge, "longer than"},
	} {
		resp := owner.post("/projects", tc.form)
		body := resp.Header.Get("X-Test-Body")
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.msg) {
			t.Errorf("create %v: %d, want %d with %q in: %.400s", tc.form, resp.StatusCode, tc.status, tc.msg, body)
		}
	}
	if _, body := owner.get("/projects"); !strings.Contains(body, "no projects yet") {
		t.Errorf("a refused form left a project behind: %.400s", body)
	}

	resp := owner.post("/projects", url.Values{"git_url": {gitURL}, "name": {"mine"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/projects/mine" {
		t.Fatalf("create: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("X-Test-Body"))
	}
	dep := s.latest("mine")
	s.waitStatus(dep.ID, store.StatusReady)
	if resp := owner.post("/projects", url.Values{"git_url": {gitURL}, "name": {"mine"}}); resp.StatusCode != http.StatusConflict ||
		!strings.Contains(resp.Header.Get("X-Test-Body"), "already exists") {
		t.Errorf("duplicate name: %d %.300s", resp.StatusCode, resp.Header.Get("X-Test-Body"))
	}

	for path, want := range map[string]string{
		"/projects":               "mine",
		"/projects/mine":          dep.ID,
		"/deployments/" + dep.ID:  "Build log",
		"/projects/mine/settings": "Environment variables",
	} {
		resp, body := owner.get(path)
		if resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, want %q in the page", path, resp.StatusCode, want)
		}
	}
	if _, body := owner.get("/deployments/" + dep.ID); !strings.Contains(body, `badge-ready`) || !strings.Contains(body, "clone") {
		t.Errorf("deployment page lacks the ready badge or the log: %.2000s", body)
	}
	// Settings round trip, and a refused change says why.
	resp = owner.post("/projects/mine/settings", url.Values{"name": {"mine"}, "branch": {"trunk"}, "build_command": {"make site"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save settings: %d %.300s", resp.StatusCode, resp.Header.Get("X-Test-Body"))
	}
	if _, body := owner.get("/projects/mine/settings"); !strings.Contains(body, `value="trunk"`) || !strings.Contains(body, `value="make site"`) {
		t.Error("settings did not stick")
	}
	// Retention fields: saved, shown, and a bad one refused with the field's rule.
	resp = owner.post("/projects/mine/settings", url.Values{"name": {"mine"}, "branch": {"trunk"}, "build_command": {"make site"},
		"retention_rollback_window": {"4"}, "retention_preview_grace_days": {""}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save retention: %d %.300s", resp.StatusCode, resp.Header.Get("X-Test-Body"))
	}
	if _, body := owner.get("/projects/mine/settings"); !strings.Contains(body, `name="retention_rollback_window" type="number" min="1" max="1000" value="4"`) ||
		!strings.Contains(body, `name="retention_preview_grace_days" type="number" min="1" value="" placeholder="7"`) ||
		!strings.Contains(body, "Not collected yet") || !strings.Contains(body, `value="make site"`) {
		t.Error("retention settings did not stick, or the storage section is missing")
	}
	for _, bad := range []string{"abc", "-3"} {
		resp = owner.post("/projects/mine/settings", url.Values{"name": {"mine"}, "branch": {"trunk"}, "retention_min_age_hours": {bad}})
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(resp.Header.Get("X-Test-Body"), "retention") {
			t.Errorf("min age %q: %d %.300s", bad, resp.StatusCode, resp.Header.Get("X-Test-Body"))
		}
	}
	resp = owner.post("/projects/mine/settings", url.Values{"name": {"renamed"}, "branch": {"main"}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(resp.Header.Get("X-Test-Body"), "cannot be renamed") {
		t.Errorf("rename with deployments: %d %.300s", resp.StatusCode, resp.Header.Get("X-Test-Body"))
	}
	if resp := owner.post("/projects/mine/env", url.Values{"environment": {"production"}, "key": {"1BAD"}, "value": {"x"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad env name: %d", resp.StatusCode)
	}
	if resp := owner.post("/projects/mine/delete", url.Values{"confirm": {"wrong"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("delete without confirmation: %d", resp.StatusCode)
	}
	// Promote of what is already production is refused with a reason, on the page.
	if resp := owner.post("/deployments/"+dep.ID+"/promote", nil); resp.StatusCode != http.StatusConflict ||
		!strings.Contains(resp.Header.Get("X-Test-Body"), "already in production") {
		t.Errorf("promote production: %d %.300s", resp.StatusCode, resp.Header.Get("X-Test-Body"))
	}

	// The fragments that live updates swap in: the project's production line, aliases and rows; a ready
	// deployment in production offers Redeploy only.
	if resp, body := owner.get("/projects/mine/live"); resp.StatusCode != 200 || !strings.Contains(body, `id="production"`) ||
		!strings.Contains(body, `id="aliases"`) || !strings.Contains(body, `data-id="`+dep.ID+`"`) || strings.Contains(body, "<html") {
		t.Errorf("GET /projects/mine/live: %d %.1000s", resp.StatusCode, body)
	}
	if resp, body := owner.get("/deployments/" + dep.ID + "/actions"); resp.StatusCode != 200 || !strings.Contains(body, "/redeploy") ||
		strings.Contains(body, "/cancel") || strings.Contains(body, "/promote") || !strings.Contains(body, `class="tag">production`) {
		t.Errorf("GET actions of the production deployment: %d %.1000s", resp.StatusCode, body)
	}

	// Another user: every page and action is 404, exactly like a project that does not exist.
	other := s.signup()
	gets := []string{"/projects/mine", "/projects/mine/settings", "/projects/mine/events", "/deployments/" + dep.ID,
		"/deployments/" + dep.ID + "/events", "/projects/mine/live", "/deployments/" + dep.ID + "/actions", "/projects/nope", "/deployments/dpl-0000000000000000"}
	for _, path := range gets {
		if resp, _ := other.get(path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s as another user: %d, want 404", path, resp.StatusCode)
		}
	}
	posts := map[string]url.Values{
		"/projects/mine/deploy":                {"branch": {"main"}},
		"/projects/mine/settings":              {"name": {"mine"}, "branch": {"evil"}},
		"/projects/mine/env":                   {"environment": {"production"}, "key": {"EVIL"}, "value": {"x"}},
		"/projects/mine/env/delete":            {"environment": {"production"}, "key": {"X"}},
		"/projects/mine/delete":                {"confirm": {"mine"}},
		"/deployments/" + dep.ID + "/redeploy": nil,
		"/deployments/" + dep.ID + "/cancel":   nil,
		"/deployments/" + dep.ID + "/promote":  nil,
		"/deployments/" + dep.ID + "/rollback": nil,
	}
	for path, form := range posts {
		if resp := other.post(path, form); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s as another user: %d, want 404", path, resp.StatusCode)
		}
	}
	if _, body := other.get("/projects"); strings.Contains(body, "mine") {
		t.Error("another user's project list shows the project")
	}
	p, err := s.st.ProjectGetByName(s.ctx, "mine")
	if err != nil || p.ProductionBranch != "trunk" {
		t.Fatalf("after the other user's tries: %+v, %v", p, err)
	}
	if d := s.latest("mine"); d.ID != dep.ID {
		t.Errorf("the other user started deployment %s", d.ID)
	}

	// Anonymous: pages send to log-in; streams and actions are refused.
	anon := &client{s: s, http: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if resp, _ := anon.get("/projects/mine"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("anonymous project page: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, path := range []string{"/deployments/" + dep.ID + "/events", "/projects/mine/live", "/deployments/" + dep.ID + "/actions"} {
		if resp, _ := anon.get(path); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s: %d, want 401", path, resp.StatusCode)
		}
	}
	// A post without the CSRF token is refused before it reaches the dashboard.
	r, err := owner.http.PostForm(s.appURL+"/deployments/"+dep.ID+"/redeploy", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusForbidden {
		t.Errorf("post without CSRF token: %d, want 403", r.StatusCode)
	}
}
