package auth_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/auth"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/protect"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

var protectKey = []byte("protection-key-for-tests-0123456789abcdef")

// protectEnv is the dashboard with the members' sign-in for protected sites of domain ferry.test, and project
// web, linked to the repository org/web.
func protectEnv(t *testing.T, gh *fakeGitHub) *env {
	t.Helper()
	e := newEnv(t, func(c *auth.Config) {
		c.GitHubClientID, c.GitHubClientSecret = "Iv1.client", "client-secret"
		c.GitHubURL, c.GitHubAPIURL = gh.srv.URL, gh.srv.URL
		c.Domain, c.ProtectionKey = "ferry.test", protectKey
	})
	if _, err := e.st.ProjectCreate(context.Background(), store.ProjectCreateParams{Name: "web", Repository: "org/web",
		CloneURL: "https://github.com/org/web.git", GitHubRepoID: 7}); err != nil {
		t.Fatal(err)
	}
	return e
}

// protectSignIn walks start → GitHub → callback, as a browser would, and returns the callback's answer.
func protectSignIn(t *testing.T, b *browser, site, path string) answer {
	t.Helper()
	a := b.get("/protect/start?" + url.Values{"site": {site}, "path": {path}}.Encode())
	wantStatus(t, a, http.StatusFound)
	// GitHub's authorize page sends the browser straight back (the App is already authorized).
	req, _ := http.NewRequest(http.MethodGet, a.header.Get("Location"), nil)
	a = b.do(req)
	wantStatus(t, a, http.StatusFound)
	cb, err := url.Parse(a.header.Get("Location"))
	if err != nil || cb.Path != "/protect/callback" {
		t.Fatalf("GitHub sent the browser to %q", a.header.Get("Location"))
	}
	return b.get(cb.RequestURI())
}

func TestProtectMemberSignIn(t *testing.T) {
	t.Parallel()
	gh := newFakeGitHub(t, 1, "octocat")
	gh.repos = []string{"org/web"}
	e := protectEnv(t, gh)
	site := "http://pr-1--web.ferry.test:8081"
	a := protectSignIn(t, e.browser(), site, "/deep/page?x=1")
	wantStatus(t, a, http.StatusSeeOther)
	loc, err := url.Parse(a.header.Get("Location"))
	if err != nil || loc.Scheme+"://"+loc.Host != site || loc.Path != "/__ferry/auth" || loc.Query().Get("next") != "/deep/page?x=1" {
		t.Fatalf("hand-off to %q", a.header.Get("Location"))
	}
	ho, ok := protect.CheckHandoff(protectKey, "pr-1--web.ferry.test", loc.Query().Get("token"), time.Now())
	if !ok || ho.Login != "octocat" {
		t.Fatalf("hand-off token: %+v %v", ho, ok)
	}
	// An off-site path comes back as "/".
	a = protectSignIn(t, e.browser(), site, "//evil.example/")
	if loc, _ := url.Parse(a.header.Get("Location")); loc.Query().Get("next") != "/" {
		t.Fatalf("next //evil.example/ became %q", loc.Query().Get("next"))
	}
}

func TestProtectNonMember(t *testing.T) {
	t.Parallel()
	gh := newFakeGitHub(t, 2, "stranger")
	gh.repos = []string{"org/other"}
	e := protectEnv(t, gh)
	a := protectSignIn(t, e.browser(), "http://pr-1--web.ferry.test:8081", "/")
	wantStatus(t, a, http.StatusForbidden)
	if !strings.Contains(a.body, "stranger") || !strings.Contains(a.body, "cannot read org/web") || a.header.Get("Location") != "" {
		t.Fatalf("non-member page:\n%s", a.body)
	}
}

func TestProtectStartRefusesOtherSites(t *testing.T) {
	t.Parallel()
	gh := newFakeGitHub(t, 1, "octocat")
	e := protectEnv(t, gh)
	b := e.browser()
	for _, site := range []string{"https://evil.example", "http://pr-1--web.ferry.test.evil.example", "javascript:alert(1)",
		"http://pr-1--web.ferry.test/x", "http://user@pr-1--web.ferry.test", ""} {
		if a := b.get("/protect/start?" + url.Values{"site": {site}}.Encode()); a.status != http.StatusBadRequest {
			t.Errorf("site %q: %d, want 400", site, a.status)
		}
	}
	if a := b.get("/protect/start?site=http://pr-1--nope.ferry.test"); a.status != http.StatusNotFound {
		t.Errorf("unknown project: %d, want 404", a.status)
	}
	// A callback without the state cookie of its start is refused.
	if a := b.get("/protect/callback?code=the-code&state=forged"); a.status != http.StatusForbidden {
		t.Errorf("forged callback: %d, want 403", a.status)
	}
}

// TestProtectCustomDomainSignIn: a verified custom domain of the project gets its members back with a token
// bound to that host; pending, redirecting and unknown domains are refused before GitHub is asked.
func TestProtectCustomDomainSignIn(t *testing.T) {
	t.Parallel()
	gh := newFakeGitHub(t, 1, "octocat")
	gh.repos = []string{"org/web"}
	fst, err := storage.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sites := site.NewStore(fst)
	for _, d := range []site.Domain{
		{Host: "review.shop.example", Project: "web", Alias: "pr-1", Status: site.DomainVerified},
		{Host: "pending.shop.example", Project: "web", Status: site.DomainPending},
		{Host: "shop.example", Project: "web", Status: site.DomainVerified, RedirectTo: "review.shop.example"},
	} {
		d.CreatedAt = time.Now()
		if err := sites.DomainPut(context.Background(), &d); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, func(c *auth.Config) {
		c.GitHubClientID, c.GitHubClientSecret = "Iv1.client", "client-secret"
		c.GitHubURL, c.GitHubAPIURL = gh.srv.URL, gh.srv.URL
		c.Domain, c.ProtectionKey, c.Domains = "ferry.test", protectKey, sites
	})
	if _, err := e.st.ProjectCreate(context.Background(), store.ProjectCreateParams{Name: "web", Repository: "org/web",
		CloneURL: "https://github.com/org/web.git", GitHubRepoID: 7}); err != nil {
		t.Fatal(err)
	}
	origin := "https://review.shop.example"
	a := protectSignIn(t, e.browser(), origin, "/deep")
	wantStatus(t, a, http.StatusSeeOther)
	loc, err := url.Parse(a.header.Get("Location"))
	if err != nil || loc.Scheme+"://"+loc.Host != origin || loc.Path != "/__ferry/auth" {
		t.Fatalf("hand-off to %q", a.header.Get("Location"))
	}
	if ho, ok := protect.CheckHandoff(protectKey, "review.shop.example", loc.Query().Get("token"), time.Now()); !ok || ho.Login != "octocat" {
		t.Fatalf("the token is not bound to the custom host: %+v %v", ho, ok)
	}
	b := e.browser()
	for _, s := range []string{"https://pending.shop.example", "https://shop.example", "https://unknown.example"} {
		if a := b.get("/protect/start?" + url.Values{"site": {s}}.Encode()); a.status != http.StatusBadRequest {
			t.Errorf("site %q: %d, want 400", s, a.status)
		}
	}
	if n := gh.exchanges.Load(); n != 1 {
		t.Errorf("GitHub exchanged %d codes, want 1 (refused sites never reach it)", n)
	}
}
