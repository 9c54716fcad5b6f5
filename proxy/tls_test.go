package proxy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// tlsEnv is a proxy with a plain and an HTTPS listener on loopback, over real storage.
type tlsEnv struct {
	p             *Proxy
	tls           *TLS
	store         *site.Store
	plain, secure string
	logs          *syncBuffer
}

// syncBuffer collects logs from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	n := 0
	for _, c := range port {
		n = n*10 + int(c-'0')
	}
	return n
}

// startTLS runs a proxy over st on the given listeners until the test ends.
func startTLS(t *testing.T, st storage.Storage, plain, secure net.Listener, opts TLSOptions) *tlsEnv {
	t.Helper()
	logs := &syncBuffer{}
	p, err := New(Config{Storage: st, Domain: testDomain, CacheDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	opts.HTTPSPort = portOf(t, secure.Addr().String())
	if opts.ACME.CA != "" {
		opts.ACME.HTTPAddr, opts.ACME.TLSAddr = plain.Addr().String(), secure.Addr().String()
	}
	tt, err := NewTLS(context.Background(), p, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeTLS(ctx, plain, secure, p, tt, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		tt.Close()
		p.Close()
		if t.Failed() {
			t.Logf("proxy logs:\n%s", logs.String())
		}
	})
	return &tlsEnv{p: p, tls: tt, store: site.NewStore(st), plain: plain.Addr().String(), secure: secure.Addr().String(), logs: logs}
}

// get makes an HTTPS request for https://host/path through addr, verifying the certificate against roots.
func httpsGet(t *testing.T, addr, host, path string, roots *x509.CertPool) (*http.Response, string, error) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: host},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
	}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get("https://" + host + path)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

// plainGet makes a plain HTTP request with the given Host, not following redirects.
func plainGet(t *testing.T, addr, host, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = host
	resp, err := (&http.Transport{}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// selfSigned writes a certificate for names to dir and returns its paths and a pool that trusts it.
func selfSigned(t *testing.T, dir string, serial int64, names ...string) (string, string, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: names,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cp, kp := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	// Write to temporary names and rename, as cert tools do, so the proxy never reads half a pair on purpose.
	if err := os.WriteFile(cp+".tmp", certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kp+".tmp", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(kp+".tmp", kp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(cp+".tmp", cp); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return cp, kp, pool
}

func publishTo(t *testing.T, store *site.Store, project string, files map[string]string, aliases ...string) string {
	t.Helper()
	e := &testEnv{store: store}
	return e.publish(t, project, files, nil, aliases...)
}

func TestTLSCertFiles(t *testing.T) {
	t.Parallel()
	st, _ := storage.NewFile(t.TempDir())
	dir := t.TempDir()
	cp, kp, pool1 := selfSigned(t, dir, 1, "*."+testDomain, "www.example.com")
	e := startTLS(t, st, listenLoopback(t), listenLoopback(t), TLSOptions{CertFile: cp, KeyFile: kp, CertReload: 50 * time.Millisecond})
	publishTo(t, e.store, "web", map[string]string{"index.html": "<h1>web over tls</h1>"}, site.ProductionAlias)

	resp, body, err := httpsGet(t, e.secure, "web."+testDomain, "/", pool1)
	if err != nil || resp.StatusCode != 200 || body != "<h1>web over tls</h1>" {
		t.Fatalf("HTTPS GET = %v, %q, %v", resp, body, err)
	}
	if resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("negotiated TLS version %x", resp.TLS.Version)
	}

	// TLS 1.1 and older are refused.
	c, err := tls.Dial("tcp", e.secure, &tls.Config{RootCAs: pool1, ServerName: "web." + testDomain, MaxVersion: tls.VersionTLS11})
	if err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}

	// Plain HTTP: site hosts are redirected to HTTPS with path and query kept; operator endpoints still answer.
	r := plainGet(t, e.plain, "web."+testDomain, "/a/b?x=1")
	want := "https://web." + testDomain + ":" + e.secure[strings.LastIndexByte(e.secure, ':')+1:] + "/a/b?x=1"
	if r.StatusCode != http.StatusMovedPermanently || r.Header.Get("Location") != want {
		t.Fatalf("plain GET = %d Location %q; want 301 %q", r.StatusCode, r.Header.Get("Location"), want)
	}
	if r := plainGet(t, e.plain, "127.0.0.1", "/healthz"); r.StatusCode != 200 {
		t.Fatalf("plain /healthz on an IP = %d, want 200", r.StatusCode)
	}

	// Replacing the files swaps the certificate without a restart.
	_, _, pool2 := selfSigned(t, dir, 2, "*."+testDomain)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _, err := httpsGet(t, e.secure, "web."+testDomain, "/", pool2)
		if err == nil && resp.TLS.PeerCertificates[0].SerialNumber.Int64() == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replaced certificate is not served after 5s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A broken pair keeps the current certificate.
	if err := os.WriteFile(cp, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, _, err := httpsGet(t, e.secure, "web."+testDomain, "/", pool2); err != nil {
		t.Fatalf("after a broken certificate file was written: %v", err)
	}
	if !strings.Contains(e.logs.String(), "keeping the current one") {
		t.Fatalf("no warning about the broken certificate file; logs:\n%s", e.logs.String())
	}
}

func TestTLSOptionErrors(t *testing.T) {
	t.Parallel()
	st, _ := storage.NewFile(t.TempDir())
	p, err := New(Config{Storage: st, Domain: testDomain, CacheDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for name, opts := range map[string]TLSOptions{
		"cert without key": {CertFile: "/nonexistent/cert.pem"},
		"missing files":    {CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem"},
		"nothing":          {},
	} {
		if _, err := NewTLS(context.Background(), p, opts); err == nil || !strings.Contains(err.Error(), "tls-") && !strings.Contains(err.Error(), "acme-ca") {
			t.Errorf("%s: err = %v, want one naming the flags", name, err)
		}
	}
}

// TestTLSCertFileReportsDomains: with a certificate file and no ACME, each verified custom domain's status says
// what the file covers (active, or an error naming the fix), so the dashboard does not say "issuing" forever;
// pending domains get nothing.
func TestTLSCertFileReportsDomains(t *testing.T) {
	t.Parallel()
	st, _ := storage.NewFile(t.TempDir())
	ss := site.NewStore(st)
	for _, d := range []site.Domain{
		{Host: "www.example.com", Project: "web", Status: site.DomainVerified},
		{Host: "shop.example.org", Project: "web", Status: site.DomainVerified},
		{Host: "later.example.com", Project: "web", Status: site.DomainPending},
	} {
		d.CreatedAt = time.Now()
		if err := ss.DomainPut(context.Background(), &d); err != nil {
			t.Fatal(err)
		}
	}
	cp, kp, _ := selfSigned(t, t.TempDir(), 1, "*."+testDomain, "www.example.com")
	startTLS(t, st, listenLoopback(t), listenLoopback(t), TLSOptions{CertFile: cp, KeyFile: kp, CertReload: 50 * time.Millisecond})
	status := func(host string) *site.CertStatus {
		cs, err := ss.CertStatusGet(context.Background(), host)
		if err != nil {
			return nil
		}
		return cs
	}
	deadline := time.Now().Add(10 * time.Second)
	for status("www.example.com") == nil || status("shop.example.org") == nil {
		if time.Now().After(deadline) {
			t.Fatal("no certificate status written for the verified domains")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cs := status("www.example.com"); cs.State != "active" {
		t.Errorf("covered domain: %+v", cs)
	}
	if cs := status("shop.example.org"); cs.State != "error" || !strings.Contains(cs.Error, "does not cover shop.example.org") {
		t.Errorf("uncovered domain: %+v", cs)
	}
	if cs := status("later.example.com"); cs != nil {
		t.Errorf("pending domain got a status: %+v", cs)
	}
}
