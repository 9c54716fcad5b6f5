package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestDomainsPage attaches, checks and removes a domain from the dashboard; bad input is shown next to the form
// and another user gets 404.
func TestDomainsPage(t *testing.T) {
	s := newStack(t)
	owner, other := s.signup(), s.signup()
	if resp := owner.post("/projects", url.Values{"git_url": {s.repo("<h1>v1</h1>")}, "name": {"dom"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %d %s", resp.StatusCode, resp.Header.Get("X-Test-Body"))
	}
	if _, body := owner.get("/projects/dom"); !strings.Contains(body, `href="/projects/dom/domains"`) {
		t.Fatal("project page has no link to its domains")
	}
	resp := owner.post("/projects/dom/domains", url.Values{"host": {"*.example.com"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(resp.Header.Get("X-Test-Body"), "wildcard") {
		t.Fatalf("wildcard: %d %.500s", resp.StatusCode, resp.Header.Get("X-Test-Body"))
	}
	resp = owner.post("/projects/dom/domains", url.Values{"host": {"www.ferry-test.invalid"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("attach: %d %.500s", resp.StatusCode, resp.Header.Get("X-Test-Body"))
	}
	_, body := owner.get("/projects/dom/domains")
	for _, want := range []string{"www.ferry-test.invalid", `data-state="pending_dns"`, "Pending DNS", "_ferry-challenge.www.ferry-test.invalid", "ferry-", "dom.localhost", "Check now"} {
		if !strings.Contains(body, want) {
			t.Errorf("domains page lacks %q: %.3000s", want, body)
		}
	}
	if resp := owner.post("/projects/dom/domains/verify", url.Values{"host": {"www.ferry-test.invalid"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("check now: %d %.500s", resp.StatusCode, resp.Header.Get("X-Test-Body"))
	}
	if resp, _ := other.get("/projects/dom/domains"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("another user's domains page: %d", resp.StatusCode)
	}
	if resp := other.post("/projects/dom/domains/delete", url.Values{"host": {"www.ferry-test.invalid"}}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("another user removes the domain: %d", resp.StatusCode)
	}
	if resp := owner.post("/projects/dom/domains/delete", url.Values{"host": {"www.ferry-test.invalid"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove: %d %.500s", resp.StatusCode, resp.Header.Get("X-Test-Body"))
	}
	if _, body := owner.get("/projects/dom/domains"); strings.Contains(body, `id="domain-www.ferry-test.invalid"`) || !strings.Contains(body, "No custom domains yet") {
		t.Fatalf("removed domain still listed: %.2000s", body)
	}
}
