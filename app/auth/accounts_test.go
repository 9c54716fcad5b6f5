package auth_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/auth"
)

func TestSignupLoginLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	b := e.browser()
	if got := b.whoami(); got != "anonymous" {
		t.Fatalf("before sign-up: %q", got)
	}
	a := b.signup("Ada@Example.com", "correct horse battery")
	wantStatus(t, a, http.StatusSeeOther)
	if loc := a.header.Get("Location"); loc != "/" {
		t.Fatalf("sign-up redirects to %q", loc)
	}
	ck := setCookie(a, auth.SessionCookie)
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure || ck.MaxAge <= 0 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, not Secure on http://localhost", ck)
	}
	if got := b.whoami(); !strings.HasSuffix(got, " ada@example.com") {
		t.Fatalf("after sign-up: %q", got)
	}
	// The stored session is the cookie's hash, not the cookie.
	if n := e.count(`SELECT count(*) FROM sessions WHERE position(convert_to($1, 'UTF8') in token_hash) > 0 OR csrf_token = $1`, ck.Value); n != 0 {
		t.Fatal("the database holds the session cookie in plain text")
	}
	if n := e.count(`SELECT count(*) FROM sessions`); n != 1 {
		t.Fatalf("%d sessions after sign-up", n)
	}

	a = b.post("/logout", nil, "/account")
	wantStatus(t, a, http.StatusSeeOther)
	if n := e.count(`SELECT count(*) FROM sessions`); n != 0 {
		t.Fatalf("%d sessions after logging out, want 0", n)
	}
	if got := b.whoami(); got != "anonymous" {
		t.Fatalf("after log-out: %q", got)
	}
	// The old cookie, replayed by someone who copied it, signs no one in.
	replay := e.browser()
	u, _ := url.Parse(e.srv.URL)
	replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: auth.SessionCookie, Value: ck.Value}})
	if got := replay.whoami(); got != "anonymous" {
		t.Fatalf("replayed cookie after log-out: %q", got)
	}
	// The log-in page shows the flash once.
	if a := b.get("/login"); !strings.Contains(a.body, "You are logged out.") {
		t.Fatalf("no flash after log-out:\n%s", a.body)
	}

	a = b.login("ADA@example.com ", "correct horse battery")
	wantStatus(t, a, http.StatusSeeOther)
	if got := b.whoami(); !strings.HasSuffix(got, "ada@example.com") {
		t.Fatalf("after log-in: %q", got)
	}
	// next= sends the user back, but only within the site.
	b2 := e.browser()
	a = b2.post("/login", url.Values{"email": {"ada@example.com"}, "password": {"correct horse battery"}, "next": {"/account/tokens"}}, "/login")
	if loc := a.header.Get("Location"); loc != "/account/tokens" {
		t.Fatalf("next: redirected to %q", loc)
	}
	b3 := e.browser()
	a = b3.post("/login", url.Values{"email": {"ada@example.com"}, "password": {"correct horse battery"}, "next": {"//evil.example/"}}, "/login")
	if loc := a.header.Get("Location"); loc != "/" {
		t.Fatalf("next to another site: redirected to %q", loc)
	}
	// Account pages send visitors to log in.
	if a := e.browser().get("/account"); a.status != http.StatusSeeOther || a.header.Get("Location") != "/login?next=%2Faccount" {
		t.Fatalf("anonymous /account: %d %s", a.status, a.header.Get("Location"))
	}
}

func TestWrongPasswordIsRateLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *auth.Config) { c.MaxFailuresPerAccount = 3; c.MaxFailuresPerIP = 5 })
	b := e.browser()
	wantStatus(t, b.signup("alice@example.com", "alice-password"), http.StatusSeeOther)
	wantStatus(t, b.signup("bob@example.com", "bob-password-1"), http.StatusSeeOther)
	const wrong = "hunter2-SECRET-guess"

	for i := 0; i < 3; i++ {
		a := e.browser().login("alice@example.com", wrong)
		wantStatus(t, a, http.StatusUnauthorized)
		if !strings.Contains(a.body, "Wrong email or password") {
			t.Fatalf("attempt %d: no clear message:\n%s", i, a.body)
		}
	}
	// Alice's account is locked for the window, even with the right password.
	a := e.browser().login("alice@example.com", "alice-password")
	wantStatus(t, a, http.StatusTooManyRequests)
	if !strings.Contains(a.body, "Too many failed log-ins") || a.header.Get("Retry-After") == "" {
		t.Fatalf("429 without explanation:\n%s", a.body)
	}
	// Bob is not, until the IP has used up its failures too (3 for alice + 2 for a missing account).
	wantStatus(t, e.browser().login("bob@example.com", "bob-password-1"), http.StatusSeeOther)
	wantStatus(t, e.browser().login("nobody@example.com", wrong), http.StatusUnauthorized)
	wantStatus(t, e.browser().login("nobody@example.com", wrong), http.StatusUnauthorized)
	wantStatus(t, e.browser().login("bob@example.com", "bob-password-1"), http.StatusTooManyRequests)

	logs := e.logs.String()
	if !strings.Contains(logs, "log-in failed") || !strings.Contains(logs, "alice@example.com") || !strings.Contains(logs, "no such account") {
		t.Fatalf("failed log-ins not logged:\n%s", logs)
	}
	for _, secret := range []string{wrong, "alice-password", "bob-password-1"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("the log holds a password %q:\n%s", secret, logs)
		}
	}
	// The counts live in the database, so every replica sees them.
	if n := e.count(`SELECT count(*) FROM login_attempts WHERE key = 'account:alice@example.com'`); n != 3 {
		t.Fatalf("%d recorded failures for alice", n)
	}
}

func TestPasswordChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	b1, b2 := e.browser(), e.browser()
	wantStatus(t, b1.signup("pw@example.com", "first-password"), http.StatusSeeOther)
	wantStatus(t, b2.login("pw@example.com", "first-password"), http.StatusSeeOther)

	a := b1.post("/account/password", url.Values{"current_password": {"not-the-password"}, "new_password": {"second-password"}}, "/account")
	wantStatus(t, a, http.StatusBadRequest)
	if !strings.Contains(a.body, "The current password is wrong") {
		t.Fatalf("no message:\n%s", a.body)
	}
	a = b1.post("/account/password", url.Values{"current_password": {"first-password"}, "new_password": {"short"}}, "/account")
	wantStatus(t, a, http.StatusBadRequest)
	if !strings.Contains(a.body, "at least 8 characters") {
		t.Fatalf("no message:\n%s", a.body)
	}
	a = b1.post("/account/password", url.Values{"current_password": {"first-password"}, "new_password": {"second-password"}}, "/account")
	wantStatus(t, a, http.StatusSeeOther)
	if got := b1.whoami(); !strings.Contains(got, "pw@example.com") {
		t.Fatalf("the changing browser was signed out: %q", got)
	}
	if got := b2.whoami(); got != "anonymous" {
		t.Fatalf("the other session survived the change: %q", got)
	}
	wantStatus(t, e.browser().login("pw@example.com", "first-password"), http.StatusUnauthorized)
	wantStatus(t, e.browser().login("pw@example.com", "second-password"), http.StatusSeeOther)
	if a := b1.get("/account"); !strings.Contains(a.body, "Password changed") {
		t.Fatalf("no flash:\n%s", a.body)
	}
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	b := e.browser()
	wantStatus(t, b.signup("csrf@example.com", "csrf-password"), http.StatusSeeOther)

	// A signed-in form post without the token, or with another's, is refused.
	wantStatus(t, b.post("/account/tokens", url.Values{"name": {"x"}, "csrf_token": {""}}, ""), http.StatusForbidden)
	wantStatus(t, b.post("/account/tokens", url.Values{"name": {"x"}, "csrf_token": {strings.Repeat("A", 43)}}, ""), http.StatusForbidden)
	wantStatus(t, b.post("/logout", url.Values{"csrf_token": {""}}, ""), http.StatusForbidden)
	// Whatever the content type: a JSON post with the session cookie needs the header.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/api/echo", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	wantStatus(t, b.do(req), http.StatusForbidden)
	req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/api/echo", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", b.csrf("/account"))
	if a := b.do(req); a.status != http.StatusOK || !strings.Contains(a.body, "csrf@example.com") {
		t.Fatalf("with X-CSRF-Token: %d %s", a.status, a.body)
	}
	if n := e.count(`SELECT count(*) FROM api_tokens`); n != 0 {
		t.Fatalf("a refused post created %d tokens", n)
	}
	wantStatus(t, b.post("/account/tokens", url.Values{"name": {"x"}}, "/account/tokens"), http.StatusCreated)

	// Anonymous form posts are protected too (no log-in CSRF).
	anon := e.browser()
	wantStatus(t, anon.post("/login", url.Values{"email": {"csrf@example.com"}, "password": {"csrf-password"}}, ""), http.StatusForbidden)
	// GET never needs a token.
	wantStatus(t, b.get("/account"), http.StatusOK)
}

func TestAPITokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	b := e.browser()
	wantStatus(t, b.signup("tok@example.com", "token-password"), http.StatusSeeOther)

	a := b.post("/account/tokens", url.Values{"name": {"CI deploys"}}, "/account/tokens")
	wantStatus(t, a, http.StatusCreated)
	tok := regexp1(`id="new-token">(ferry_[A-Za-z0-9_-]+)<`, a.body)
	if tok == "" || !strings.Contains(a.body, "not shown again") {
		t.Fatalf("the new token is not shown:\n%s", a.body)
	}
	if cc := a.header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("the token page may be cached: %q", cc)
	}
	// Stored hashed: no column of any row holds the token or its secret part.
	if n := e.count(`SELECT count(*) FROM api_tokens t WHERE position($1 in t::text) > 0 OR position($2 in t::text) > 0`, tok, tok[12:]); n != 0 {
		t.Fatal("the database holds the token in plain text")
	}
	// Shown once: the list shows its name and prefix only.
	list := b.get("/account/tokens")
	if strings.Contains(list.body, tok) || !strings.Contains(list.body, "CI deploys") || !strings.Contains(list.body, tok[:12]) {
		t.Fatalf("token list:\n%s", list.body)
	}

	bearer := func(method, value string) answer {
		req, _ := http.NewRequest(method, e.srv.URL+"/api/echo", strings.NewReader(`{}`))
		if method == http.MethodGet {
			req, _ = http.NewRequest(method, e.srv.URL+"/whoami", nil)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", value)
		return e.browser().do(req)
	}
	if a := bearer(http.MethodPost, "Bearer "+tok); a.status != http.StatusOK || !strings.Contains(a.body, "tok@example.com") {
		t.Fatalf("bearer POST (no CSRF token needed): %d %s", a.status, a.body)
	}
	if n := e.count(`SELECT count(*) FROM api_tokens WHERE last_used_at IS NOT NULL`); n != 1 {
		t.Fatal("last use not recorded")
	}
	if a := bearer(http.MethodGet, "Bearer ferry_wrong"); a.status != http.StatusUnauthorized || !strings.Contains(a.body, `"code":"unauthorized"`) {
		t.Fatalf("bad token: %d %s", a.status, a.body)
	}
	if a := bearer(http.MethodGet, "Basic dXNlcjpwYXNz"); a.status != http.StatusUnauthorized {
		t.Fatalf("basic auth: %d %s", a.status, a.body)
	}

	// Another user cannot revoke it.
	other := e.browser()
	wantStatus(t, other.signup("other@example.com", "other-password"), http.StatusSeeOther)
	id := regexp1(`action="/account/tokens/(\d+)/delete"`, list.body)
	wantStatus(t, other.post("/account/tokens/"+id+"/delete", nil, "/account/tokens"), http.StatusNotFound)
	wantStatus(t, bearer(http.MethodGet, "Bearer "+tok), http.StatusOK)

	wantStatus(t, b.post("/account/tokens/"+id+"/delete", nil, "/account/tokens"), http.StatusSeeOther)
	if a := bearer(http.MethodGet, "Bearer "+tok); a.status != http.StatusUnauthorized || !strings.Contains(a.body, "revoked") {
		t.Fatalf("revoked token: %d %s", a.status, a.body)
	}
	if a := b.get("/account/tokens"); strings.Contains(a.body, "<td>CI deploys</td>") || !strings.Contains(a.body, "Token revoked") {
		t.Fatalf("after revoking:\n%s", a.body)
	}

	// Bad names.
	for name, want := range map[string]string{"": "Give the token a name", strings.Repeat("n", 101): "at most 100"} {
		a := b.post("/account/tokens", url.Values{"name": {name}}, "/account/tokens")
		wantStatus(t, a, http.StatusBadRequest)
		if !strings.Contains(a.body, want) {
			t.Fatalf("name %q: no %q in\n%s", name, want, a.body)
		}
	}
}

func regexp1(expr, s string) string {
	m := regexpMust(expr).FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

func TestCookieFlags(t *testing.T) {
	t.Parallel()
	for publicURL, secure := range map[string]bool{
		"http://localhost":          false,
		"http://127.0.0.1:8080":     false,
		"http://ferry.localhost":    false,
		"https://ferry.example.com": true,
		"http://ferry.example.com":  true,
		"":                          true,
	} {
		a, err := auth.New(auth.Config{Store: newEnvStore(t), PublicURL: publicURL})
		if err != nil {
			t.Fatal(err)
		}
		if a.SecureCookies() != secure {
			t.Errorf("public URL %q: Secure = %v, want %v", publicURL, a.SecureCookies(), secure)
		}
	}
	// And on the wire, through a real sign-up.
	e := newEnv(t, func(c *auth.Config) { c.PublicURL = "https://ferry.example.com" })
	b := e.browser()
	// Behind HTTPS every cookie is __Host- prefixed: host-only, Path=/, Secure, so no sibling host can set or
	// shadow it.
	csrf := setCookie(b.get("/signup"), "__Host-ferry_csrf")
	if csrf == nil || !csrf.Secure || !csrf.HttpOnly || csrf.SameSite != http.SameSiteLaxMode || csrf.Path != "/" || csrf.Domain != "" {
		t.Fatalf("csrf cookie %+v", csrf)
	}
	// The jar will not send a Secure cookie over http; send the token by hand.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/signup", strings.NewReader(url.Values{"email": {"s@example.com"}, "password": {"secure-password"}, "csrf_token": {csrf.Value}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "__Host-ferry_csrf", Value: csrf.Value})
	a := b.do(req)
	wantStatus(t, a, http.StatusSeeOther)
	if e.auth.SessionCookieName() != "__Host-ferry_session" {
		t.Fatalf("session cookie name %q behind HTTPS", e.auth.SessionCookieName())
	}
	ck := setCookie(a, e.auth.SessionCookieName())
	if ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" {
		t.Fatalf("session cookie %+v: want Secure, HttpOnly, SameSite=Lax", ck)
	}
	if ck.MaxAge < int((29 * 24 * time.Hour).Seconds()) {
		t.Fatalf("session cookie lasts %ds", ck.MaxAge)
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	b := e.browser()
	long := strings.Repeat("a", 250) + "@example.com"
	for _, tc := range []struct {
		email, name, password string
		status                int
		want                  string
	}{
		{"", "", "long-enough", 400, "Enter your email address"},
		{"   ", "", "long-enough", 400, "Enter your email address"},
		{long, "", "long-enough", 400, "at most 254"},
		{"not-an-email", "", "long-enough", 400, "is not an email address"},
		{"a@b", "", "long-enough", 400, "is not an email address"},
		{"Ada <ada@example.com>", "", "long-enough", 400, "is not an email address"},
		{"v@example.com", "", "", 400, "Enter a password"},
		{"v@example.com", "", "short", 400, "at least 8 characters"},
		{"v@example.com", "", strings.Repeat("p", 257), 400, "at most 256 characters"},
		{"v@example.com", strings.Repeat("n", 101), "long-enough", 400, "at most 100"},
	} {
		a := b.post("/signup", url.Values{"email": {tc.email}, "name": {tc.name}, "password": {tc.password}}, "/signup")
		if a.status != tc.status || !strings.Contains(a.body, tc.want) {
			t.Errorf("sign-up %q/%q/%d chars: %d, want %d with %q:\n%s", tc.email, tc.name, len(tc.password), a.status, tc.status, tc.want, a.body)
		}
	}
	if n := e.count(`SELECT count(*) FROM users`); n != 0 {
		t.Fatalf("rejected sign-ups left %d users", n)
	}
	wantStatus(t, b.signup("dup@example.com", "long-enough"), http.StatusSeeOther)
	a := e.browser().signup("DUP@example.com", "long-enough")
	wantStatus(t, a, http.StatusConflict)
	if !strings.Contains(a.body, "already exists; log in instead") || !strings.Contains(a.body, `value="DUP@example.com"`) {
		t.Fatalf("duplicate sign-up:\n%s", a.body)
	}
	a = e.browser().post("/login", url.Values{"email": {""}, "password": {""}}, "/login")
	wantStatus(t, a, http.StatusBadRequest)
	if !strings.Contains(a.body, "Enter your email address and your password") {
		t.Fatalf("empty log-in:\n%s", a.body)
	}
	// What the user typed comes back escaped, never as markup.
	a = e.browser().post("/signup", url.Values{"email": {`"><script>alert(1)</script>`}, "password": {"long-enough"}}, "/signup")
	if strings.Contains(a.body, "<script>alert") {
		t.Fatalf("unescaped input:\n%s", a.body)
	}
}

func TestOneTimeLink(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	link, err := e.auth.OneTimeLink(t.Context(), "Dev@Localhost")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, e.srv.URL+"/auth/link?token=") {
		t.Fatalf("link %q", link)
	}
	path := strings.TrimPrefix(link, e.srv.URL)
	b := e.browser()
	a := b.get(path)
	wantStatus(t, a, http.StatusSeeOther)
	if got := b.whoami(); !strings.Contains(got, "dev@localhost") {
		t.Fatalf("after the link: %q", got)
	}
	a = e.browser().get(path)
	wantStatus(t, a, http.StatusNotFound)
	if !strings.Contains(a.body, "used already") {
		t.Fatalf("second use:\n%s", a.body)
	}
	// A second link reuses the user.
	if _, err := e.auth.OneTimeLink(t.Context(), "dev@localhost"); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM users`); n != 1 {
		t.Fatalf("%d users", n)
	}
	if _, err := e.auth.OneTimeLink(t.Context(), "nope"); err == nil {
		t.Fatal("a bad email made a link")
	}
}

func TestSweep(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *auth.Config) { c.SessionTTL = time.Second })
	b := e.browser()
	wantStatus(t, b.signup("sweep@example.com", "sweep-password"), http.StatusSeeOther)
	wantStatus(t, e.browser().login("sweep@example.com", "wrong-password"), http.StatusUnauthorized)
	if _, err := e.auth.CreateInvite(t.Context(), nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(t.Context(), `UPDATE sessions SET expires_at = now() - interval '1 second'; UPDATE login_attempts SET at = now() - interval '1 hour';
		UPDATE invites SET expires_at = now() - interval '1 second'; UPDATE known_devices SET last_used_at = now() - interval '401 days'`); err != nil {
		t.Fatal(err)
	}
	if err := e.auth.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT (SELECT count(*) FROM sessions) + (SELECT count(*) FROM login_attempts) + (SELECT count(*) FROM invites) + (SELECT count(*) FROM known_devices)`); n != 0 {
		t.Fatalf("%d rows left after the sweep", n)
	}
	if got := b.whoami(); got != "anonymous" {
		t.Fatalf("expired session still signs in: %q", got)
	}
}
