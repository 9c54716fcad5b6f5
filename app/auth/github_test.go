package auth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferryhq/ferry/app/auth"
	"github.com/ferryhq/ferry/app/store"
)

// fakeGitHub speaks GitHub's OAuth web flow and the two REST calls sign-in makes, for one user.
type fakeGitHub struct {
	srv           *httptest.Server
	userID        int64
	login         string
	installations []int64
	orgs          []string // organizations the user is an active member of
	repos         []string // repositories ("owner/name") the user can read
	exchanges     atomic.Int32
	memberChecks  atomic.Int32
}

func newFakeGitHub(t *testing.T, userID int64, login string, installations ...int64) *fakeGitHub {
	f := &fakeGitHub{userID: userID, login: login, installations: installations}
	const code, token = "the-code", "ghu_usertoken"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != "Iv1.client" || q.Get("state") == "" {
			http.Error(w, "bad authorize request", http.StatusBadRequest)
			return
		}
		// The user clicks "Authorize": GitHub sends the browser back with a code.
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		f.exchanges.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Accept") != "application/json" {
			http.Error(w, "want Accept: application/json", http.StatusNotAcceptable)
			return
		}
		if r.PostFormValue("client_id") != "Iv1.client" || r.PostFormValue("client_secret") != "client-secret" {
			fmt.Fprint(w, `{"error":"incorrect_client_credentials","error_description":"The client_id and/or client_secret passed are incorrect."}`)
			return
		}
		if r.PostFormValue("code") != code {
			fmt.Fprint(w, `{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired."}`)
			return
		}
		fmt.Fprintf(w, `{"access_token":%q,"expires_in":28800,"refresh_token":"ghr_x","token_type":"bearer","scope":""}`, token)
	})
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}`)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			h(w, r)
		}
	}
	mux.HandleFunc("GET /user", authed(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"login":%q,"id":%d,"type":"User","name":"The Octocat","email":null}`, f.login, f.userID)
	}))
	mux.HandleFunc("GET /user/installations", authed(func(w http.ResponseWriter, r *http.Request) {
		type inst struct {
			ID      int64          `json:"id"`
			Account map[string]any `json:"account"`
		}
		out := struct {
			TotalCount    int    `json:"total_count"`
			Installations []inst `json:"installations"`
		}{TotalCount: len(f.installations), Installations: []inst{}}
		for _, id := range f.installations {
			out.Installations = append(out.Installations, inst{ID: id, Account: map[string]any{"login": "org", "type": "Organization"}})
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
	mux.HandleFunc("GET /user/memberships/orgs/{org}", authed(func(w http.ResponseWriter, r *http.Request) {
		f.memberChecks.Add(1)
		for _, o := range f.orgs {
			if strings.EqualFold(o, r.PathValue("org")) {
				fmt.Fprintf(w, `{"url":"x","state":"active","role":"member","organization":{"login":%q},"user":{"login":%q}}`, o, f.login)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest/orgs/members"}`)
	}))
	mux.HandleFunc("GET /repos/{owner}/{repo}", authed(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("owner") + "/" + r.PathValue("repo")
		for _, rp := range f.repos {
			if strings.EqualFold(rp, name) {
				fmt.Fprintf(w, `{"id":1,"full_name":%q,"private":true}`, rp)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest/repos/repos#get-a-repository"}`)
	}))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// follow makes GET requests along redirects (across the two servers, as a browser would) until one is not a
// redirect, or it reaches the app's own pages again.
func (b *browser) follow(path string) answer {
	b.e.t.Helper()
	target := b.e.srv.URL + path
	for i := 0; i < 10; i++ {
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		a := b.do(req)
		loc := a.header.Get("Location")
		if a.status/100 != 3 || strings.HasPrefix(loc, "/") {
			return a
		}
		target = loc
	}
	b.e.t.Fatal("too many redirects")
	return answer{}
}

func TestGitHubSignIn(t *testing.T) {
	t.Parallel()
	gh := newFakeGitHub(t, 583231, "octocat", 100)
	e := newEnv(t, func(c *auth.Config) {
		c.GitHubClientID, c.GitHubClientSecret = "Iv1.client", "client-secret"
		c.GitHubURL, c.GitHubAPIURL = gh.srv.URL, gh.srv.URL
	})
	ctx := context.Background()
	for _, id := range []int64{100, 200} {
		if _, err := e.st.InstallationUpsert(ctx, store.InstallationUpsertParams{ID: id, AccountLogin: fmt.Sprint("org", id), AccountType: "Organization", AccountID: id}); err != nil {
			t.Fatal(err)
		}
	}
	for i, inst := range []int64{100, 100, 200} {
		if _, err := e.st.ProjectCreate(ctx, store.ProjectCreateParams{Name: fmt.Sprintf("site-%d-%d", inst, i), CloneURL: "https://github.com/org/x.git",
			GitHubRepoID: int64(i + 1), InstallationID: inst}); err != nil {
			t.Fatal(err)
		}
	}

	b := e.browser()
	if a := b.get("/login"); !strings.Contains(a.body, `href="/auth/github"`) {
		t.Fatalf("no GitHub button:\n%s", a.body)
	}
	a := b.follow("/auth/github?next=/account")
	wantStatus(t, a, http.StatusSeeOther)
	if loc := a.header.Get("Location"); loc != "/account" {
		t.Fatalf("after the callback: redirect to %q", loc)
	}
	who := b.whoami()
	if !strings.HasPrefix(who, "user ") {
		t.Fatalf("not signed in: %q", who)
	}
	u, err := e.st.UserUpsertGitHub(ctx, store.UserUpsertGitHubParams{GitHubID: 583231, GitHubLogin: "octocat"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("user %d ", u.ID) != who || u.Name != "The Octocat" {
		t.Fatalf("signed in as %q, GitHub user is %+v", who, u)
	}
	ps, err := e.st.ProjectListForUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].InstallationID != 100 || ps[1].InstallationID != 100 {
		t.Fatalf("the GitHub user sees %d projects, want installation 100's two: %+v", len(ps), ps)
	}
	if _, err := e.st.ProjectGetByNameForUser(ctx, u.ID, "site-200-2"); err == nil {
		t.Fatal("the GitHub user reaches another installation's project")
	}

	// Signing in again refreshes the installations GitHub reports.
	gh.installations = []int64{200}
	b2 := e.browser()
	wantStatus(t, b2.follow("/auth/github"), http.StatusSeeOther)
	ps, _ = e.st.ProjectListForUser(ctx, u.ID)
	if len(ps) != 1 || ps[0].InstallationID != 200 {
		t.Fatalf("after a second sign-in: %+v", ps)
	}
	if n := e.count(`SELECT count(*) FROM users`); n != 1 {
		t.Fatalf("%d users after two GitHub sign-ins", n)
	}

	// A signed-in password user links their GitHub account instead of getting a second user.
	gh2 := newFakeGitHub(t, 999, "ada", 100)
	e2 := newEnv(t, func(c *auth.Config) {
		c.GitHubClientID, c.GitHubClientSecret = "Iv1.client", "client-secret"
		c.GitHubURL, c.GitHubAPIURL = gh2.srv.URL, gh2.srv.URL
	})
	pb := e2.browser()
	wantStatus(t, pb.signup("ada@example.com", "ada-password"), http.StatusSeeOther)
	wantStatus(t, pb.follow("/auth/github?next=/account"), http.StatusSeeOther)
	if a := pb.get("/account"); !strings.Contains(a.body, "<dd>ada</dd>") {
		t.Fatalf("GitHub login not shown on the account page:\n%s", a.body)
	}
	if n := e2.count(`SELECT count(*) FROM users`); n != 1 {
		t.Fatalf("linking made %d users", n)
	}
}

func TestGitHubSignInRefusals(t *testing.T) {
	t.Parallel()
	gh := newFakeGitHub(t, 1, "octocat")
	e := newEnv(t, func(c *auth.Config) {
		c.GitHubClientID, c.GitHubClientSecret = "Iv1.client", "client-secret"
		c.GitHubURL, c.GitHubAPIURL = gh.srv.URL, gh.srv.URL
	})
	b := e.browser()
	// A callback that this browser did not start (login CSRF) is refused before any code exchange.
	a := b.get("/auth/github/callback?code=the-code&state=forged")
	wantStatus(t, a, http.StatusForbidden)
	if !strings.Contains(a.body, "did not start here") || gh.exchanges.Load() != 0 {
		t.Fatalf("forged state: %d exchanges\n%s", gh.exchanges.Load(), a.body)
	}
	// GitHub's error= is shown.
	b.get("/auth/github")
	a = b.get("/auth/github/callback?error=access_denied")
	wantStatus(t, a, http.StatusUnauthorized)
	if !strings.Contains(a.body, "access_denied") {
		t.Fatalf("error=:\n%s", a.body)
	}
	// A wrong code is refused by GitHub and by us.
	start := b.get("/auth/github")
	loc, _ := url.Parse(start.header.Get("Location"))
	a = b.get("/auth/github/callback?code=wrong&state=" + url.QueryEscape(loc.Query().Get("state")))
	wantStatus(t, a, http.StatusUnauthorized)
	if !strings.Contains(a.body, "bad_verification_code") || b.whoami() != "anonymous" {
		t.Fatalf("wrong code:\n%s", a.body)
	}

	// Without client credentials the button is hidden and the route explains.
	plain := newEnv(t, nil)
	pb := plain.browser()
	if a := pb.get("/login"); strings.Contains(a.body, "/auth/github") {
		t.Fatal("GitHub button shown without client credentials")
	}
	if a := pb.get("/auth/github"); a.status != http.StatusNotFound || !strings.Contains(a.body, "--github-client-id") {
		t.Fatalf("unconfigured: %d\n%s", a.status, a.body)
	}
	if _, err := auth.New(auth.Config{Store: e.st, GitHubClientID: "only-id"}); err == nil {
		t.Fatal("a client id without a secret was accepted")
	}
}
