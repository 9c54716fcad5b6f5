package api_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/api"
	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/internal/acmetest"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/proxy"
)

// withDNS rebuilds h's service and API so that ownership checks ask dns.
func (h *harness) withDNS(dns projects.Resolver) {
	h.t.Helper()
	logger := slog.New(slog.NewTextHandler(testWriter{h.t}, nil))
	svc, err := projects.New(projects.Config{Store: h.st, River: h.river, Site: h.site, EnvCipher: h.cipher,
		Domain: "localhost:8081", AllowLocalRepos: true, Logger: logger, DNS: dns})
	if err != nil {
		h.t.Fatal(err)
	}
	a, err := api.New(api.Config{Service: svc, Logger: logger})
	if err != nil {
		h.t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.Routes(mux)
	h.svc = svc
	h.srv.Close()
	h.srv = httptest.NewServer(h.auth.Middleware(mux))
	h.t.Cleanup(h.srv.Close)
}

// noDNS answers every query with "no such name", so domains stay pending.
type noDNS struct{}

func (noDNS) LookupTXT(context.Context, string) ([]string, error) {
	return nil, &net.DNSError{Err: "no such host", IsNotFound: true}
}

func (noDNS) LookupCNAME(context.Context, string) (string, error) {
	return "", &net.DNSError{Err: "no such host", IsNotFound: true}
}

func TestDomainBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.withDNS(noDNS{})
	alice, bob := h.newUser(), h.newUser()
	h.must(alice, 201, "POST", "/api/v1/projects", map[string]any{"gitUrl": h.repo.Bare, "name": "site"}, nil)
	h.must(bob, 201, "POST", "/api/v1/projects", map[string]any{"gitUrl": h.repo.Bare, "name": "other"}, nil)

	var d projects.Domain
	h.must(alice, 201, "POST", "/api/v1/projects/site/domains", map[string]any{"host": "WWW.Example.com."}, &d)
	if d.Host != "www.example.com" || d.State != projects.DomainStatePendingDNS || len(d.Records) != 2 || d.Records[0].Name != "_ferry-challenge.www.example.com" || !strings.HasPrefix(d.Records[0].Value, "ferry-") || d.Records[1].Value != "site.localhost" {
		t.Fatalf("attached domain = %+v", d)
	}
	if !strings.Contains(d.Reason, "no TXT record") {
		t.Fatalf("pending reason %q does not say what is missing", d.Reason)
	}

	for _, tc := range []struct {
		host   string
		status int
		msg    string
	}{
		{"203.0.113.7", 400, "IP address"},
		{"[2001:db8::1]", 400, "IP address"},
		{"*.example.com", 400, "wildcard"},
		{strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + "." + strings.Repeat("e", 60) + ".com", 400, "longer than"},
		{strings.Repeat("a", 64) + ".com", 400, "invalid label"},
		{"localhost", 400, "preview domain"},
		{"site.localhost", 400, "preview domain"},
		{"https://www.example.org/", 400, "bare host name"},
		{"example", 400, "single label"},
		{"", 400, "empty"},
		{"bad_char.example.com", 400, "invalid label"},
	} {
		r := h.do(alice, "POST", "/api/v1/projects/site/domains", map[string]any{"host": tc.host})
		code, msg := r.errorCode()
		if r.status != tc.status || !strings.Contains(msg, tc.msg) {
			t.Errorf("attach %q = %d %s %q; want %d with %q", tc.host, r.status, code, msg, tc.status, tc.msg)
		}
	}
	// Another user's claim, and another user's project.
	r := h.do(bob, "POST", "/api/v1/projects/other/domains", map[string]any{"host": "www.example.com"})
	if _, msg := r.errorCode(); r.status != 409 || !strings.Contains(msg, "another Ferry project") {
		t.Fatalf("bob claims alice's domain = %d %s", r.status, r.body)
	}
	for _, req := range [][2]string{
		{"GET", "/api/v1/projects/site/domains"},
		{"GET", "/api/v1/projects/site/domains/www.example.com"},
		{"POST", "/api/v1/projects/site/domains/www.example.com/verify"},
		{"DELETE", "/api/v1/projects/site/domains/www.example.com"},
	} {
		if r := h.do(bob, req[0], req[1], nil); r.status != 404 {
			t.Fatalf("bob %s %s = %d, want 404", req[0], req[1], r.status)
		}
	}
	if r := h.do(alice, "POST", "/api/v1/projects/site/domains", map[string]any{"host": "example.net", "alias": "dpl-x"}); r.status != 400 {
		t.Fatalf("attach with a bad alias = %d", r.status)
	}
	if r := h.do(alice, "POST", "/api/v1/projects/site/domains", map[string]any{"host": "example.net", "redirectTo": "example.net"}); r.status != 400 {
		t.Fatalf("attach redirecting to itself = %d", r.status)
	}
	var list struct{ Domains []projects.Domain }
	h.must(alice, 200, "GET", "/api/v1/projects/site/domains", nil, &list)
	if len(list.Domains) != 1 {
		t.Fatalf("after refused attaches alice has %d domains, want 1: %+v", len(list.Domains), list.Domains)
	}
	h.must(alice, 204, "DELETE", "/api/v1/projects/site/domains/www.example.com", nil, nil)
	if _, err := h.site.DomainGet(h.ctx, "www.example.com"); err == nil {
		t.Fatal("domains/www.example.com.json is still in storage after DELETE")
	}
	// Once removed, the name is free for bob.
	h.must(bob, 201, "POST", "/api/v1/projects/other/domains", map[string]any{"host": "www.example.com"}, nil)
}

// TestCustomDomainEndToEnd: a domain attached through the API stays pending (and gets no certificate) until its
// TXT record appears in DNS, then goes active and is served over HTTPS by the proxy with a certificate from
// Pebble, checked against Pebble's root.
func TestCustomDomainEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs Pebble, PostgreSQL and the proxy")
	}
	t.Parallel()
	plain, _ := net.Listen("tcp", "127.0.0.1:0")
	secure, _ := net.Listen("tcp", "127.0.0.1:0")
	port := func(l net.Listener) int {
		n, _ := strconv.Atoi(l.Addr().String()[strings.LastIndexByte(l.Addr().String(), ':')+1:])
		return n
	}
	pb := acmetest.Start(t, acmetest.Options{HTTPPort: port(plain), TLSPort: port(secure)})
	h := newHarness(t)
	h.withDNS(projects.ResolverAt(pb.DNS))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.svc.DomainWatch(ctx, 100*time.Millisecond)

	p, err := proxy.New(proxy.Config{Storage: h.storage, Domain: "localhost", CacheDir: t.TempDir(), AliasTTL: 100 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tt, err := proxy.NewTLS(ctx, p, proxy.TLSOptions{HTTPSPort: port(secure), ACME: proxy.ACMEOptions{CA: pb.Directory, Roots: pb.ServerRoots,
		HTTPAddr: plain.Addr().String(), TLSAddr: secure.Addr().String(), HandshakeTimeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	done := make(chan error, 1)
	go func() { done <- proxy.ServeTLS(ctx, plain, secure, p, tt, time.Second) }()
	defer func() { cancel(); <-done }()

	alice := h.newUser()
	h.must(alice, 201, "POST", "/api/v1/projects", map[string]any{"gitUrl": h.repo.Bare, "name": "site"}, nil)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>custom domain</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.site.Publish(h.ctx, site.PublishParams{Project: "site", Dir: dir, Aliases: []string{site.ProductionAlias}}); err != nil {
		t.Fatal(err)
	}
	var d projects.Domain
	h.must(alice, 201, "POST", "/api/v1/projects/site/domains", map[string]any{"host": "www.example.test"}, &d)
	if d.State != projects.DomainStatePendingDNS {
		t.Fatalf("state before the record exists = %s", d.State)
	}
	roots := pb.Roots(t)
	dial := func() (*tls.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", secure.Addr().String(), &tls.Config{ServerName: "www.example.test", RootCAs: roots})
	}
	if c, err := dial(); err == nil {
		c.Close()
		t.Fatal("a pending domain got a certificate")
	}
	if n := pb.Orders(t); n != 0 {
		t.Fatalf("pebble saw %d orders for a pending domain", n)
	}

	pb.SetTXT(t, d.Records[0].Name, d.Records[0].Value)
	deadline := time.Now().Add(20 * time.Second)
	for d.State == projects.DomainStatePendingDNS {
		if time.Now().After(deadline) {
			t.Fatalf("domain still pending 20s after its TXT record appeared: %+v", d)
		}
		time.Sleep(100 * time.Millisecond)
		h.must(alice, 200, "GET", "/api/v1/projects/site/domains/www.example.test", nil, &d)
	}
	if d.State != projects.DomainStateIssuing {
		t.Fatalf("state after verification = %s (%s), want issuing", d.State, d.Reason)
	}
	time.Sleep(200 * time.Millisecond) // the proxy's cached "no domain" answer expires (AliasTTL)

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", secure.Addr().String())
		},
	}}
	resp, err := client.Get("https://www.example.test/")
	if err != nil {
		t.Fatalf("GET https://www.example.test/: %v\npebble log:\n%s", err, pb.Log())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "<h1>custom domain</h1>" {
		t.Fatalf("GET https://www.example.test/ = %d %q", resp.StatusCode, body)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "www.example.test", Roots: roots, Intermediates: pool(resp.TLS.PeerCertificates[1:])}); err != nil {
		t.Fatalf("served certificate does not verify for www.example.test against Pebble's root: %v", err)
	}
	h.must(alice, 200, "GET", "/api/v1/projects/site/domains/www.example.test", nil, &d)
	if d.State != projects.DomainStateActive {
		t.Fatalf("state after issuance = %s (%s), want active", d.State, d.Reason)
	}

	// A CNAME to <project>.D proves ownership too.
	h.must(alice, 201, "POST", "/api/v1/projects/site/domains", map[string]any{"host": "cname.example.test"}, &d)
	pb.SetCNAME(t, "cname.example.test", "site.localhost")
	h.must(alice, 200, "POST", "/api/v1/projects/site/domains/cname.example.test/verify", nil, &d)
	if d.State != projects.DomainStateIssuing {
		t.Fatalf("CNAME-proved domain state = %s (%s), want issuing", d.State, d.Reason)
	}
}

func pool(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestDomainsCommand(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.withDNS(noDNS{})
	u := h.newUser()
	h.must(u, 201, "POST", "/api/v1/projects", map[string]any{"gitUrl": h.repo.Bare, "name": "site"}, nil)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := api.DomainsCommand(context.Background(), append([]string{"--server", h.srv.URL, "--token", u.token, "--project", "site"}, args...), &out, io.Discard)
		return out.String(), err
	}
	out, err := run("add", "www.example.org")
	if err != nil || !strings.Contains(out, "pending_dns") || !strings.Contains(out, "TXT   _ferry-challenge.www.example.org  ferry-") || !strings.Contains(out, "CNAME www.example.org  site.localhost") {
		t.Fatalf("ferry domains add = %q, %v", out, err)
	}
	if out, err = run("list"); err != nil || !strings.Contains(out, "www.example.org  pending_dns") {
		t.Fatalf("ferry domains list = %q, %v", out, err)
	}
	if out, err = run("verify", "www.example.org"); err != nil || !strings.Contains(out, "no TXT record") {
		t.Fatalf("ferry domains verify = %q, %v", out, err)
	}
	if _, err = run("add", "1.2.3.4"); err == nil || !strings.Contains(err.Error(), "IP address") {
		t.Fatalf("ferry domains add 1.2.3.4: %v", err)
	}
	if out, err = run("remove", "www.example.org"); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("ferry domains remove = %q, %v", out, err)
	}
	if out, _ = run("list"); strings.Contains(out, "www.example.org") {
		t.Fatalf("removed domain still listed: %q", out)
	}
}
