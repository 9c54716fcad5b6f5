package proxy

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/protect"
	"github.com/ferryhq/ferry/internal/site"
)

// TestProtectedCustomDomain: a custom domain is protected by the mode of the alias its mapping serves. With
// previews protected, a domain on production stays public and a domain on a preview alias is closed; the
// sign-in goes through the custom host, the hand-off token is bound to it and the cookie is host-only there.
func TestProtectedCustomDomain(t *testing.T) {
	t.Parallel()
	e, _ := protectedEnv(t)
	for _, d := range []site.Domain{
		{Host: "www.shop.example", Project: "web", Status: site.DomainVerified},
		{Host: "preview.shop.example", Project: "web", Alias: "pr-1", Status: site.DomainVerified},
		{Host: "review.api.example", Project: "api", Alias: "pr-1", Status: site.DomainVerified},
	} {
		d.CreatedAt = time.Now()
		if err := e.store.DomainPut(context.Background(), &d); err != nil {
			t.Fatal(err)
		}
	}
	if r := e.do(t, "GET", "www.shop.example", "/"); r.status != 200 || r.body != indexHTML || strings.Contains(r.header.Get("Cache-Control"), "private") {
		t.Fatalf("production on a custom domain, previews protected: %d %q %q", r.status, r.header.Get("Cache-Control"), r.body)
	}
	if r := e.do(t, "GET", "preview.shop.example", "/about"); r.status != 401 || strings.Contains(r.body, "about page") ||
		!strings.Contains(r.body, "site=http%3A%2F%2Fpreview.shop.example") {
		t.Fatalf("a preview on a custom domain: %d %s", r.status, r.body)
	}
	host := "review.api.example"
	r := e.do(t, "GET", host+":8081", "/deep?x=1")
	u, err := url.Parse(r.header.Get("Location"))
	if r.status != 302 || err != nil || u.Path != "/protect/start" || u.Query().Get("site") != "http://"+host+":8081" || u.Query().Get("path") != "/deep?x=1" {
		t.Fatalf("members-only preview on a custom domain: %d %q", r.status, r.header.Get("Location"))
	}
	if r := e.do(t, "GET", host, "/__ferry/auth?token="+url.QueryEscape(protect.HandoffToken(testHandoffKey, "pr-1--api."+testDomain, "octocat", time.Now()))); r.status != 403 {
		t.Fatalf("a token for the preview host opened the custom domain: %d", r.status)
	}
	r = e.do(t, "GET", host, "/__ferry/auth?token="+url.QueryEscape(protect.HandoffToken(testHandoffKey, host, "octocat", time.Now()))+"&next=%2F")
	if r.status != 303 {
		t.Fatalf("hand-off on the custom domain: %d %s", r.status, r.body)
	}
	ck := accessCookie(t, r) // host-only: no Domain attribute
	if r := e.do(t, "GET", host, "/", "Cookie", cookiePlain+"="+ck); r.status != 200 || r.body != "<!doctype html>api" {
		t.Fatalf("custom domain with its cookie: %d %s", r.status, r.body)
	}
	if r := e.do(t, "GET", "pr-1--api."+testDomain, "/", "Cookie", cookiePlain+"="+ck); r.status == 200 {
		t.Fatal("the custom domain's cookie opened the preview host")
	}
}

// TestProtectedHandoffOnce: a hand-off token opens a site once, on whichever of the proxies sharing a storage
// sees it first; a replay is refused there and at the other proxy. A storage failure refuses the token without
// spending it.
func TestProtectedHandoffOnce(t *testing.T) {
	t.Parallel()
	a, _ := protectedEnv(t)
	b := newEnvOn(t, Config{HandoffKey: testHandoffKey, SignInURL: "http://app.ferry.test:8080", AliasTTL: 50 * time.Millisecond}, a.st)
	host := "pr-1--api." + testDomain
	auth := func(e *testEnv, tok string) int {
		return e.do(t, "GET", host, "/__ferry/auth?token="+url.QueryEscape(tok)).status
	}
	tok := protect.HandoffToken(testHandoffKey, host, "octocat", time.Now())
	if s := auth(a, tok); s != 303 {
		t.Fatalf("first use: %d", s)
	}
	if s := auth(a, tok); s != 403 {
		t.Fatalf("replay at the same proxy: %d, want 403", s)
	}
	if s := auth(b, tok); s != 403 {
		t.Fatalf("replay at a second proxy sharing the storage: %d, want 403", s)
	}
	tok2 := protect.HandoffToken(testHandoffKey, host, "octocat", time.Now())
	if s := auth(b, tok2); s != 303 {
		t.Fatalf("a new token at the second proxy: %d", s)
	}
	if s := auth(a, tok2); s != 403 {
		t.Fatalf("replay at the first proxy of a token used at the second: %d, want 403", s)
	}
	objs, err := a.st.List(context.Background(), protect.HandoffsPrefix("api"))
	if err != nil || len(objs) != 2 {
		t.Fatalf("hand-off records: %v %v, want 2", objs, err)
	}
	tok3 := protect.HandoffToken(testHandoffKey, host, "octocat", time.Now())
	a.st.down.Store(true)
	if s := auth(a, tok3); s != 503 {
		t.Fatalf("storage down: %d, want 503", s)
	}
	a.st.down.Store(false)
	if s := auth(a, tok3); s != 303 {
		t.Fatalf("the same token once storage is back: %d", s)
	}
}
