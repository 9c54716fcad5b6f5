package proxy

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ferryhq/ferry/internal/protect"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/siteconfig"
	"github.com/ferryhq/ferry/internal/storage"
)

var testHandoffKey = []byte("handoff-key-for-tests-0123456789abcdef")

// protectedEnv serves project web (production, pr-1) and project api (pr-1); web's previews are protected with
// a password and members, api's with members only.
func protectedEnv(t *testing.T) (*testEnv, *protect.Settings) {
	t.Helper()
	e := newEnv(t, Config{HandoffKey: testHandoffKey, SignInURL: "http://app.ferry.test:8080", AliasTTL: 50 * time.Millisecond})
	e.publish(t, "web", webSite(), nil, "production", "pr-1")
	e.publish(t, "api", map[string]string{"index.html": "<!doctype html>api"}, nil, "pr-1")
	hash, err := protect.HashPassword("open sesame")
	if err != nil {
		t.Fatal(err)
	}
	s := &protect.Settings{Mode: protect.Previews, PasswordHash: hash, Members: true}
	s.Rotate()
	if err := protect.Put(context.Background(), e.st, "web", s); err != nil {
		t.Fatal(err)
	}
	a := &protect.Settings{Mode: protect.Previews, Members: true}
	a.Rotate()
	if err := protect.Put(context.Background(), e.st, "api", a); err != nil {
		t.Fatal(err)
	}
	return e, s
}

func accessCookie(t *testing.T, r resp) string {
	t.Helper()
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == cookiePlain {
			if !c.HttpOnly || c.Domain != "" || c.Path != "/" || c.SameSite != http.SameSiteLaxMode {
				t.Fatalf("access cookie %+v: want host-only, HttpOnly, Path=/, SameSite=Lax", c)
			}
			return c.Value
		}
	}
	t.Fatalf("no access cookie in %v", r.header)
	return ""
}

func TestProtectedPreviewProductionStaysPublic(t *testing.T) {
	t.Parallel()
	e, _ := protectedEnv(t)
	if r := e.do(t, "GET", "web."+testDomain, "/"); r.status != 200 || r.body != indexHTML || strings.Contains(r.header.Get("Cache-Control"), "private") {
		t.Fatalf("production: %d %q", r.status, r.header.Get("Cache-Control"))
	}
	r := e.do(t, "GET", "pr-1--web."+testDomain, "/about")
	if r.status != 401 || !strings.Contains(r.body, `action="/__ferry/password"`) || strings.Contains(r.body, "about page") {
		t.Fatalf("anonymous preview: %d %s", r.status, r.body)
	}
	if !strings.Contains(r.body, "/protect/start?") || !strings.Contains(r.body, `value="/about"`) {
		t.Fatalf("the password page offers no sign-in or loses the path: %s", r.body)
	}
}

func TestProtectedMembersOnlyRedirectsToSignIn(t *testing.T) {
	t.Parallel()
	e, _ := protectedEnv(t)
	r := e.do(t, "GET", "pr-1--api."+testDomain+":8081", "/deep/page?x=1")
	if r.status != 302 {
		t.Fatalf("members-only preview: %d, want 302", r.status)
	}
	u, err := url.Parse(r.header.Get("Location"))
	if err != nil || u.Host != "app.ferry.test:8080" || u.Path != "/protect/start" ||
		u.Query().Get("site") != "http://pr-1--api."+testDomain+":8081" || u.Query().Get("path") != "/deep/page?x=1" {
		t.Fatalf("Location %q", r.header.Get("Location"))
	}
}

func TestProtectedHandoff(t *testing.T) {
	t.Parallel()
	e, _ := protectedEnv(t)
	host := "pr-1--api." + testDomain
	now := time.Now()
	tok := protect.HandoffToken(testHandoffKey, host, "octocat", now)
	r := e.do(t, "GET", host, "/__ferry/auth?token="+url.QueryEscape(tok)+"&next="+url.QueryEscape("/deep/page?x=1"))
	if r.status != 303 || r.header.Get("Location") != "/deep/page?x=1" {
		t.Fatalf("hand-off: %d %q", r.status, r.header.Get("Location"))
	}
	ck := accessCookie(t, r)
	if r := e.do(t, "GET", host, "/", "Cookie", cookiePlain+"="+ck); r.status != 200 || r.body != "<!doctype html>api" {
		t.Fatalf("with the cookie: %d %s", r.status, r.body)
	}
	// An off-site next is not followed.
	r = e.do(t, "GET", host, "/__ferry/auth?token="+url.QueryEscape(protect.HandoffToken(testHandoffKey, host, "octocat", now))+"&next="+url.QueryEscape("//evil.example/"))
	if r.header.Get("Location") != "/" {
		t.Fatalf("next //evil.example/ went to %q", r.header.Get("Location"))
	}
	for name, bad := range map[string]string{
		"expired":   protect.HandoffToken(testHandoffKey, host, "octocat", now.Add(-2*time.Minute)),
		"tampered":  strings.Replace(tok, "octocat", "hubot", 1),
		"otherhost": protect.HandoffToken(testHandoffKey, "pr-1--web."+testDomain, "octocat", now),
		"otherkey":  protect.HandoffToken([]byte("not the key, but long enough....."), host, "octocat", now),
		"empty":     "",
	} {
		if r := e.do(t, "GET", host, "/__ferry/auth?token="+url.QueryEscape(bad)); r.status != 403 || len(r.header.Values("Set-Cookie")) != 0 {
			t.Errorf("%s token: %d %v", name, r.status, r.header.Values("Set-Cookie"))
		}
	}
}

func TestProtectedCookieStaysOnItsHost(t *testing.T) {
	t.Parallel()
	e, _ := protectedEnv(t)
	web := "pr-1--web." + testDomain
	r := e.do(t, "GET", web, "/__ferry/auth?token="+url.QueryEscape(protect.HandoffToken(testHandoffKey, web, "octocat", time.Now())))
	ck := accessCookie(t, r)
	// The same cookie value sent to another project's preview (a site on *.D could plant it there) opens
	// nothing.
	if r := e.do(t, "GET", "pr-1--api."+testDomain, "/", "Cookie", cookiePlain+"="+ck); r.status != 302 {
		t.Fatalf("web's cookie on api's preview: %d", r.status)
	}
	// Nor another preview of the same project.
	e.publish(t, "web", webSite(), nil, "pr-2")
	if r := e.do(t, "GET", "pr-2--web."+testDomain, "/", "Cookie", cookiePlain+"="+ck); r.status != 401 {
		t.Fatalf("pr-1's cookie on pr-2: %d", r.status)
	}
}

func TestProtectedPassword(t *testing.T) {
	t.Parallel()
	e, _ := protectedEnv(t)
	host := "pr-1--web." + testDomain
	post := func(pw string) resp {
		body := url.Values{"password": {pw}, "next": {"/about"}}.Encode()
		return e.doBody(t, "POST", host, "/__ferry/password", body, "Content-Type", "application/x-www-form-urlencoded")
	}
	r := post("open sesame")
	if r.status != 303 || r.header.Get("Location") != "/about" {
		t.Fatalf("right password: %d %q", r.status, r.header.Get("Location"))
	}
	ck := accessCookie(t, r)
	r = e.do(t, "GET", host, "/about", "Cookie", cookiePlain+"="+ck)
	if r.status != 200 || r.body != aboutHTML {
		t.Fatalf("after the password: %d %s", r.status, r.body)
	}
	if cc := r.header.Get("Cache-Control"); !strings.HasPrefix(cc, "private") || !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Cookie") {
		t.Fatalf("protected page Cache-Control %q Vary %v", cc, r.header.Values("Vary"))
	}
	// A 304 and a compressed variant stay private too.
	etag := r.header.Get("ETag")
	if r := e.do(t, "GET", host, "/about", "Cookie", cookiePlain+"="+ck, "If-None-Match", etag); r.status != 304 || !strings.HasPrefix(r.header.Get("Cache-Control"), "private") {
		t.Fatalf("304: %d %q", r.status, r.header.Get("Cache-Control"))
	}
	if r := e.do(t, "GET", host, "/", "Cookie", cookiePlain+"="+ck, "Accept-Encoding", "br"); r.header.Get("Content-Encoding") != "br" || !strings.HasPrefix(r.header.Get("Cache-Control"), "private") {
		t.Fatalf("brotli: %q %q", r.header.Get("Content-Encoding"), r.header.Get("Cache-Control"))
	}
	if r := e.do(t, "GET", host, "/assets/app.3f2a1b9c.js", "Cookie", cookiePlain+"="+ck); r.header.Get("Cache-Control") != "private, max-age=31536000, immutable" {
		t.Fatalf("immutable asset: %q", r.header.Get("Cache-Control"))
	}
	// Wrong guesses: 5 a minute per address and host, then 429 even for the right password.
	for i := 0; i < 5; i++ {
		if r := post("wrong guess"); r.status != 401 || !strings.Contains(r.body, "Wrong password") {
			t.Fatalf("guess %d: %d", i, r.status)
		}
	}
	if r := post("wrong guess"); r.status != 429 {
		t.Fatalf("6th wrong guess: %d, want 429", r.status)
	}
	if r := post("open sesame"); r.status != 429 {
		t.Fatalf("right password while limited: %d, want 429", r.status)
	}
	// Logging out ends access.
	r = e.do(t, "GET", host, "/__ferry/logout", "Cookie", cookiePlain+"="+ck)
	if r.status != 200 || !strings.Contains(strings.Join(r.header.Values("Set-Cookie"), ";"), cookiePlain+"=;") {
		t.Fatalf("logout: %d %v", r.status, r.header.Values("Set-Cookie"))
	}
}

func TestProtectedShareLink(t *testing.T) {
	t.Parallel()
	e, s := protectedEnv(t)
	host := "pr-1--web." + testDomain
	tok := protect.ShareToken(s.Key, host, time.Now().Add(time.Hour))
	r := e.do(t, "GET", host, "/about?ferry_share="+url.QueryEscape(tok)+"&a=b")
	if r.status != 303 || r.header.Get("Location") != "/about?a=b" {
		t.Fatalf("share link: %d %q", r.status, r.header.Get("Location"))
	}
	ck := accessCookie(t, r)
	if r := e.do(t, "GET", host, "/about", "Cookie", cookiePlain+"="+ck); r.status != 200 {
		t.Fatalf("with the share cookie: %d", r.status)
	}
	for name, bad := range map[string]string{
		"expired":  protect.ShareToken(s.Key, host, time.Now().Add(-time.Second)),
		"tampered": tok[:len(tok)-2] + "xx",
		"other":    protect.ShareToken(s.Key, "pr-1--api."+testDomain, time.Now().Add(time.Hour)),
	} {
		if r := e.do(t, "GET", host, "/about?ferry_share="+url.QueryEscape(bad)); r.status != 403 {
			t.Errorf("%s share link: %d", name, r.status)
		}
	}
	// Rotating the key revokes the link and the cookie it gave.
	s.Rotate()
	if err := protect.Put(context.Background(), e.st, "web", s); err != nil {
		t.Fatal(err)
	}
	time.Sleep(120 * time.Millisecond) // two alias TTLs
	e.do(t, "GET", host, "/")          // the first request after the TTL refreshes; later ones see the new key
	if r := e.do(t, "GET", host, "/about", "Cookie", cookiePlain+"="+ck); r.status != 401 {
		t.Fatalf("cookie after rotation: %d", r.status)
	}
	if r := e.do(t, "GET", host, "/about?ferry_share="+url.QueryEscape(tok)); r.status != 403 {
		t.Fatalf("link after rotation: %d", r.status)
	}
}

func TestProtectedModeAll(t *testing.T) {
	t.Parallel()
	e, s := protectedEnv(t)
	s.Mode = protect.All
	if err := protect.Put(context.Background(), e.st, "web", s); err != nil {
		t.Fatal(err)
	}
	if r := e.do(t, "GET", "web."+testDomain, "/"); r.status != 401 {
		t.Fatalf("production under mode all: %d", r.status)
	}
	s.Mode = protect.Public
	if err := protect.Put(context.Background(), e.st, "web", s); err != nil {
		t.Fatal(err)
	}
	time.Sleep(120 * time.Millisecond)
	e.do(t, "GET", "pr-1--web."+testDomain, "/")
	if r := e.do(t, "GET", "pr-1--web."+testDomain, "/"); r.status != 200 {
		t.Fatalf("preview after going public: %d", r.status)
	}
}

// doBody sends one request with a body over a real connection.
func (e *testEnv) doBody(t *testing.T, method, host, path, body string, headers ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+e.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: string(b)}
}

// TestProtectedByFerryJSON: a deployment whose ferry.json says "protection": "previews" is protected even when
// the project's settings say public (a deployment may ask for more, never less), and closed while the project
// has no protection.json to sign access with.
func TestProtectedByFerryJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{AliasTTL: 50 * time.Millisecond})
	e.publish(t, "docs", webSite(), &siteconfig.File{Protection: "previews"}, "production", "pr-1")
	if r := e.do(t, "GET", "pr-1--docs."+testDomain, "/about"); r.status != 403 || strings.Contains(r.body, "about page") {
		t.Fatalf("protected by ferry.json, no protection.json: %d", r.status)
	}
	if r := e.do(t, "GET", "docs."+testDomain, "/about"); r.status != 200 {
		t.Fatalf("production: %d", r.status)
	}
	hash, _ := protect.HashPassword("open sesame")
	s := &protect.Settings{Mode: protect.Public, PasswordHash: hash}
	s.Rotate()
	if err := protect.Put(context.Background(), e.st, "docs", s); err != nil {
		t.Fatal(err)
	}
	time.Sleep(120 * time.Millisecond)
	e.do(t, "GET", "pr-1--docs."+testDomain, "/")
	if r := e.do(t, "GET", "pr-1--docs."+testDomain, "/about"); r.status != 401 || !strings.Contains(r.body, "password") {
		t.Fatalf("ferry.json previews, project public with a password: %d", r.status)
	}
}

// TestProtectedInvalidSettingsClose: a protection.json that does not parse closes the project's sites.
func TestProtectedInvalidSettingsClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.publish(t, "web", webSite(), nil, "production")
	if err := e.st.Put(context.Background(), protect.Key("web"), strings.NewReader(`{"version":1,"mode":"all"}`), 26, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := e.do(t, "GET", "web."+testDomain, "/"); r.status != 403 {
		t.Fatalf("broken protection.json: %d, want 403", r.status)
	}
}

// BenchmarkHandleProtected serves the small page of a protected preview to a visitor with a valid access
// cookie; BenchmarkHandleSmall is the same page unprotected.
func BenchmarkHandleProtected(b *testing.B) {
	p := benchProxy(b)
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(indexHTML), 0o644); err != nil {
		b.Fatal(err)
	}
	if _, err := site.NewStore(p.cfg.Storage).Publish(context.Background(), site.PublishParams{Project: "web", Dir: dir, Aliases: []string{"pr-1"}}); err != nil {
		b.Fatal(err)
	}
	s := &protect.Settings{Mode: protect.Previews, Members: true}
	s.Rotate()
	if err := protect.Put(context.Background(), p.cfg.Storage, "web", s); err != nil {
		b.Fatal(err)
	}
	host := "pr-1--web." + testDomain
	cookie := protect.Cookie(s.Key, s.KeyID, host, protect.KindMember, time.Now().Add(time.Hour))
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/")
	ctx.Request.Header.SetHost(host)
	ctx.Request.Header.SetCookie(cookiePlain, cookie)
	p.Handle(&ctx)
	if ctx.Response.StatusCode() != 200 {
		b.Fatalf("status %d", ctx.Response.StatusCode())
	}
	ctx.Response.Reset()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p.Handle(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("status %d", ctx.Response.StatusCode())
		}
		ctx.Response.Reset()
	}
}

// TestProtectedPasswordParallelGuesses: guesses sent at once cannot all pass the limit before the first failure
// is counted.
func TestProtectedPasswordParallelGuesses(t *testing.T) {
	t.Parallel()
	e, _ := protectedEnv(t)
	host := "pr-1--web." + testDomain
	body := url.Values{"password": {"wrong guess"}}.Encode()
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.doBody(t, "POST", host, "/__ferry/password", body, "Content-Type", "application/x-www-form-urlencoded")
			mu.Lock()
			counts[r.status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counts[401] != passwordTries || counts[429] != 20-passwordTries {
		t.Fatalf("20 parallel wrong guesses: %v, want %d checked and the rest 429", counts, passwordTries)
	}
}

// TestProtectedSecureCookie: behind TLS (or --secure-cookies) the access cookie is __Host-ferry_access, Secure,
// and the plain-http name opens nothing.
func TestProtectedSecureCookie(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{HandoffKey: testHandoffKey, SignInURL: "https://app.ferry.test", SecureCookies: true})
	e.publish(t, "api", map[string]string{"index.html": "<!doctype html>api"}, nil, "pr-1")
	a := &protect.Settings{Mode: protect.Previews, Members: true}
	a.Rotate()
	if err := protect.Put(context.Background(), e.st, "api", a); err != nil {
		t.Fatal(err)
	}
	host := "pr-1--api." + testDomain
	r := e.do(t, "GET", host, "/")
	if u, _ := url.Parse(r.header.Get("Location")); r.status != 302 || u.Query().Get("site") != "https://"+host {
		t.Fatalf("sign-in redirect %d %q", r.status, r.header.Get("Location"))
	}
	r = e.do(t, "GET", host, "/__ferry/auth?token="+url.QueryEscape(protect.HandoffToken(testHandoffKey, host, "octocat", time.Now())))
	var ck *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		ck = c
	}
	if ck == nil || ck.Name != cookieSecure || !ck.Secure || !ck.HttpOnly || ck.Domain != "" || ck.Path != "/" {
		t.Fatalf("access cookie %+v", ck)
	}
	if r := e.do(t, "GET", host, "/", "Cookie", cookiePlain+"="+ck.Value); r.status != 302 {
		t.Fatalf("the value under the plain name: %d", r.status)
	}
	if r := e.do(t, "GET", host, "/", "Cookie", cookieSecure+"="+ck.Value); r.status != 200 {
		t.Fatalf("with the __Host- cookie: %d", r.status)
	}
}
