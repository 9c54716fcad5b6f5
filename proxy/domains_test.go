package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ferryhq/ferry/internal/site"
)

// TestCustomDomains: a verified domains/<host>.json serves its project's alias; a pending or missing one is
// not a site host (operator endpoints answer); a redirecting one answers 301; removal shows within the TTL.
func TestCustomDomains(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{AliasTTL: 50 * time.Millisecond})
	e.publish(t, "web", map[string]string{"index.html": "prod", "a.html": "A"}, nil, site.ProductionAlias)
	e.publish(t, "web", map[string]string{"index.html": "staging"}, nil, "staging")
	put := func(d site.Domain) {
		d.CreatedAt = time.Now()
		if err := e.store.DomainPut(context.Background(), &d); err != nil {
			t.Fatal(err)
		}
	}
	put(site.Domain{Host: "www.example.com", Project: "web", Status: site.DomainVerified})
	put(site.Domain{Host: "staging.example.com", Project: "web", Alias: "staging", Status: site.DomainVerified})
	put(site.Domain{Host: "pending.example.com", Project: "web", Status: site.DomainPending})
	put(site.Domain{Host: "example.com", Project: "web", Status: site.DomainVerified, RedirectTo: "www.example.com"})

	if r := e.do(t, "GET", "www.example.com", "/"); r.status != 200 || r.body != "prod" {
		t.Fatalf("verified domain = %d %q", r.status, r.body)
	}
	if r := e.do(t, "GET", "WWW.example.com:80", "/a"); r.status != 200 || r.body != "A" {
		t.Fatalf("verified domain with case and port = %d %q", r.status, r.body)
	}
	if r := e.do(t, "GET", "staging.example.com", "/"); r.body != "staging" {
		t.Fatalf("domain on the staging alias = %q", r.body)
	}
	if r := e.do(t, "GET", "example.com", "/path?q=1"); r.status != 301 || r.header.Get("Location") != "https://www.example.com/path?q=1" {
		t.Fatalf("apex redirect = %d %q", r.status, r.header.Get("Location"))
	}
	for _, host := range []string{"pending.example.com", "unknown.example.com"} {
		if r := e.do(t, "GET", host, "/"); r.status != 404 || r.body != string(pageUnknownHost) {
			t.Fatalf("%s = %d, want the unknown-host page", host, r.status)
		}
		if r := e.do(t, "GET", host, "/healthz"); r.status != 200 {
			t.Fatalf("%s/healthz = %d", host, r.status)
		}
	}
	if err := e.store.DomainDelete(context.Background(), "www.example.com"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if r := e.do(t, "GET", "www.example.com", "/"); r.status != 404 {
		t.Fatalf("removed domain still served: %d %q", r.status, r.body)
	}
	// A storage outage keeps a verified domain serving what it served.
	e.do(t, "GET", "staging.example.com", "/")
	e.st.down.Store(true)
	time.Sleep(100 * time.Millisecond)
	if r := e.do(t, "GET", "staging.example.com", "/"); r.status != 200 || r.body != "staging" {
		t.Fatalf("during an outage the domain = %d %q", r.status, r.body)
	}
}

// BenchmarkHandleCustomDomain: a verified custom domain costs what a preview host does once its mapping is
// cached: no allocation.
func BenchmarkHandleCustomDomain(b *testing.B) {
	p := benchProxy(b)
	if err := p.store.DomainPut(context.Background(), &site.Domain{Host: "www.example.com", Project: "web", Status: site.DomainVerified, CreatedAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/")
	ctx.Request.Header.SetHost("www.example.com")
	p.Handle(&ctx)
	if ctx.Response.StatusCode() != 200 {
		b.Fatalf("status %d", ctx.Response.StatusCode())
	}
	ctx.Response.Reset()
	b.ReportAllocs()
	for b.Loop() {
		p.Handle(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("status %d", ctx.Response.StatusCode())
		}
		ctx.Response.Reset()
	}
}
