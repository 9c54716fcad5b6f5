package auth_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/ferryhq/ferry/app/auth"
)

func TestSignupClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *auth.Config) { c.Signup = "" }) // the default
	if e.auth.Signup() != auth.SignupClosed {
		t.Fatalf("default sign-up mode %q", e.auth.Signup())
	}
	b := e.browser()
	page := b.get("/signup")
	wantStatus(t, page, http.StatusForbidden)
	if !strings.Contains(page.body, "Sign-up is closed on this server") || strings.Contains(page.body, `action="/signup"`) {
		t.Fatalf("the closed sign-up page:\n%s", page.body)
	}
	// A form posted anyway (the token from the log-in page) is refused with the same message, and no user made.
	a := b.post("/signup", url.Values{"email": {"mallory@example.com"}, "password": {"mallory-password"}}, "/login")
	wantStatus(t, a, http.StatusForbidden)
	if !strings.Contains(a.body, "Sign-up is closed on this server") || e.count(`SELECT count(*) FROM users`) != 0 {
		t.Fatalf("closed sign-up posted: %d users\n%s", e.count(`SELECT count(*) FROM users`), a.body)
	}
	if !strings.Contains(e.logs.String(), "sign-up refused") {
		t.Fatal("the refusal was not logged")
	}

	// An empty server's first account comes through the operator's invite, which works once.
	link, err := e.auth.FirstAccountInvite(context.Background())
	if err != nil || !strings.Contains(link, "/signup?invite=") {
		t.Fatalf("first-account invite %q, %v", link, err)
	}
	u, _ := url.Parse(link)
	invite := u.Query().Get("invite")
	b1 := e.browser()
	wantStatus(t, b1.get("/signup?invite="+url.QueryEscape(invite)), http.StatusOK)
	wantStatus(t, b1.post("/signup", url.Values{"email": {"op@example.com"}, "password": {"operator-password"}, "invite": {invite}}, "/signup?invite="+url.QueryEscape(invite)), http.StatusSeeOther)
	if !strings.Contains(b1.whoami(), "op@example.com") {
		t.Fatal("the invited operator is not signed in")
	}
	a = e.browser().post("/signup", url.Values{"email": {"second@example.com"}, "password": {"second-password"}, "invite": {invite}}, "/login")
	wantStatus(t, a, http.StatusNotFound)
	if !strings.Contains(a.body, "used already") {
		t.Fatalf("second use of an invite:\n%s", a.body)
	}
	if link, err := e.auth.FirstAccountInvite(context.Background()); link != "" || err != nil {
		t.Fatalf("a first-account invite with an account already there: %q %v", link, err)
	}
	// In closed mode users cannot make invites.
	if a := b1.post("/account/invites", nil, "/account"); a.status != http.StatusForbidden {
		t.Fatalf("invite in closed mode: %d", a.status)
	}
}

var inviteRe = regexp.MustCompile(`<code class="token" id="invite-link">([^<]+)</code>`)

func TestSignupInvite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *auth.Config) { c.Signup = auth.SignupInvite; c.SignupEmailDomains = []string{"example.com"} })
	// Without an invite: the page says how to get in.
	a := e.browser().get("/signup")
	wantStatus(t, a, http.StatusForbidden)
	if !strings.Contains(a.body, "open the invite link you were sent") {
		t.Fatalf("invite-only sign-up page:\n%s", a.body)
	}
	// A user makes an invite on the account page.
	link, err := e.auth.FirstAccountInvite(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	inviter := e.browser()
	inv, _ := url.Parse(link)
	tok := inv.Query().Get("invite")
	wantStatus(t, inviter.post("/signup", url.Values{"email": {"inviter@example.com"}, "password": {"inviter-password"}, "invite": {tok}}, "/signup?invite="+url.QueryEscape(tok)), http.StatusSeeOther)
	page := inviter.post("/account/invites", nil, "/account")
	wantStatus(t, page, http.StatusCreated)
	m := inviteRe.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no invite link on the account page:\n%s", page.body)
	}
	iu, _ := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
	tok = iu.Query().Get("invite")
	if !strings.HasPrefix(m[1], e.srv.URL+"/signup?invite=") || tok == "" {
		t.Fatalf("invite link %q", m[1])
	}
	// The invitee signs up with it, even outside the email domains (the inviter vouches); it works once, even
	// when two browsers race for it.
	var wg sync.WaitGroup
	results := make([]answer, 2)
	guests := []*browser{e.browser(), e.browser()}
	tokens := []string{guests[0].csrf("/signup?invite=" + url.QueryEscape(tok)), guests[1].csrf("/signup?invite=" + url.QueryEscape(tok))}
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = guests[i].post("/signup", url.Values{"email": {[]string{"guest1@elsewhere.org", "guest2@elsewhere.org"}[i]}, "password": {"guest-password"}, "invite": {tok}, "csrf_token": {tokens[i]}}, "")
		}()
	}
	wg.Wait()
	if ok := (results[0].status == http.StatusSeeOther) != (results[1].status == http.StatusSeeOther); !ok {
		t.Fatalf("two uses of one invite: %d and %d", results[0].status, results[1].status)
	}
	if n := e.count(`SELECT count(*) FROM users`); n != 2 {
		t.Fatalf("%d users, want the inviter and one guest", n)
	}
	// A made-up invite is refused.
	a = e.browser().get("/signup?invite=made-up")
	wantStatus(t, a, http.StatusNotFound)
}

func TestSignupEmailDomains(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *auth.Config) { c.SignupEmailDomains = []string{"@Example.com", "corp.example"} })
	page := e.browser().get("/signup")
	if !strings.Contains(page.body, "open to email addresses at example.com, corp.example") {
		t.Fatalf("the sign-up page does not name the domains:\n%s", page.body)
	}
	for email, want := range map[string]int{
		"ada@example.com":           http.StatusSeeOther,
		"bob@corp.example":          http.StatusSeeOther,
		"eve@evil.example":          http.StatusForbidden,
		"eve@sub.example.com":       http.StatusForbidden,
		"eve@example.com.evil.test": http.StatusForbidden,
	} {
		a := e.browser().signup(email, "a-long-password")
		if a.status != want {
			t.Errorf("%s: %d, want %d\n%s", email, a.status, want, a.body)
		}
		if want == http.StatusForbidden && !strings.Contains(a.body, "open to email addresses at example.com, corp.example only") {
			t.Errorf("%s: no clear refusal:\n%s", email, a.body)
		}
	}
}

func TestSignupGitHubOrgs(t *testing.T) {
	t.Parallel()
	gh := newFakeGitHub(t, 4242, "outsider")
	e := newEnv(t, func(c *auth.Config) {
		c.GitHubClientID, c.GitHubClientSecret = "Iv1.client", "client-secret"
		c.GitHubURL, c.GitHubAPIURL = gh.srv.URL, gh.srv.URL
		c.SignupGitHubOrgs = []string{"acme"}
	})
	// With only an organization list, email sign-up is refused and the page offers GitHub.
	page := e.browser().get("/signup")
	if strings.Contains(page.body, `action="/signup"`) || !strings.Contains(page.body, "Sign up with GitHub") || !strings.Contains(page.body, "acme") {
		t.Fatalf("org-only sign-up page:\n%s", page.body)
	}
	a := e.browser().post("/signup", url.Values{"email": {"x@example.com"}, "password": {"a-long-password"}}, "/login")
	wantStatus(t, a, http.StatusForbidden)

	// A GitHub user outside the organization is refused, asked of GitHub with their token.
	b := e.browser()
	a = b.follow("/auth/github")
	wantStatus(t, a, http.StatusForbidden)
	if !strings.Contains(a.body, "not an active member") || b.whoami() != "anonymous" || gh.memberChecks.Load() != 1 {
		t.Fatalf("outsider (%d membership checks):\n%s", gh.memberChecks.Load(), a.body)
	}
	if n := e.count(`SELECT count(*) FROM users`); n != 0 {
		t.Fatalf("%d users after a refused GitHub sign-up", n)
	}
	// A member gets in; later sign-ins of that account need no membership check.
	gh.orgs = []string{"ACME"}
	wantStatus(t, b.follow("/auth/github"), http.StatusSeeOther)
	if !strings.HasPrefix(b.whoami(), "user ") {
		t.Fatal("the member is not signed in")
	}
	gh.orgs = nil
	checks := gh.memberChecks.Load()
	b2 := e.browser()
	wantStatus(t, b2.follow("/auth/github"), http.StatusSeeOther)
	if !strings.HasPrefix(b2.whoami(), "user ") || gh.memberChecks.Load() != checks {
		t.Fatal("an existing GitHub user was checked again or refused")
	}
}

func TestSignupClosedGitHub(t *testing.T) {
	t.Parallel()
	gh := newFakeGitHub(t, 77, "newcomer")
	e := newEnv(t, func(c *auth.Config) {
		c.Signup = auth.SignupClosed
		c.GitHubClientID, c.GitHubClientSecret = "Iv1.client", "client-secret"
		c.GitHubURL, c.GitHubAPIURL = gh.srv.URL, gh.srv.URL
	})
	b := e.browser()
	a := b.follow("/auth/github")
	wantStatus(t, a, http.StatusForbidden)
	if !strings.Contains(a.body, "Sign-up is closed on this server") || b.whoami() != "anonymous" {
		t.Fatalf("new GitHub user with closed sign-up:\n%s", a.body)
	}
	// With the operator's invite, the same GitHub sign-in makes the account.
	link, err := e.auth.FirstAccountInvite(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(link)
	wantStatus(t, b.follow("/auth/github?invite="+url.QueryEscape(u.Query().Get("invite"))), http.StatusSeeOther)
	if !strings.HasPrefix(b.whoami(), "user ") || e.count(`SELECT count(*) FROM invites`) != 0 {
		t.Fatal("the invited GitHub user is not signed in, or the invite survived")
	}
}
