package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/ferryhq/ferry/internal/acmetest"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
	"github.com/ferryhq/ferry/internal/storage/s3test"
)

// acmeSetup is a Pebble whose validations reach plain and secure, the listeners of the first proxy.
type acmeSetup struct {
	pebble        *acmetest.Pebble
	plain, secure net.Listener
}

func newACMESetup(t *testing.T, validity time.Duration) *acmeSetup {
	t.Helper()
	plain, secure := listenLoopback(t), listenLoopback(t)
	pb := acmetest.Start(t, acmetest.Options{HTTPPort: portOf(t, plain.Addr().String()), TLSPort: portOf(t, secure.Addr().String()), Validity: validity})
	return &acmeSetup{pebble: pb, plain: plain, secure: secure}
}

func (s *acmeSetup) opts(http01, tlsalpn bool) TLSOptions {
	return TLSOptions{ACME: ACMEOptions{CA: s.pebble.Directory, Roots: s.pebble.ServerRoots, DisableHTTP01: !http01, DisableTLSALPN01: !tlsalpn, LockTTL: 10 * time.Second, HandshakeTimeout: 5 * time.Second}}
}

// attach publishes a site for project and maps host to it with the given status, as the app does.
func attach(t *testing.T, store *site.Store, host, project, status string) {
	t.Helper()
	if _, err := store.AliasGet(context.Background(), project, site.ProductionAlias); err != nil {
		publishTo(t, store, project, map[string]string{"index.html": "<h1>" + project + "</h1>"}, site.ProductionAlias)
	}
	if err := store.DomainPut(context.Background(), &site.Domain{Host: host, Project: project, Status: status, Token: "t", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// handshake dials addr with SNI host and verifies the chain against roots; it returns the leaf.
func handshake(addr, host string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 60 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: host, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func certMetric(t *testing.T, p *Proxy, kind, result string) float64 {
	t.Helper()
	mfs, err := p.cfg.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ferry_proxy_certificates_total" {
			continue
		}
		for _, m := range mf.Metric {
			if labels(m)["kind"] == kind && labels(m)["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.Label {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// TestACMEIssuance gets a certificate for a verified custom domain over each challenge type, serves the site
// with it, and refuses every other SNI without placing an order.
func TestACMEIssuance(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs Pebble")
	}
	t.Parallel()
	for _, tc := range []struct {
		name            string
		http01, tlsalpn bool
	}{{"http-01", true, false}, {"tls-alpn-01", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newACMESetup(t, 0)
			st, _ := storage.NewFile(t.TempDir())
			e := startTLS(t, st, s.plain, s.secure, s.opts(tc.http01, tc.tlsalpn))
			// Names differ per subtest: certmagic shares in-flight issuance between configs of one process.
			host := tc.name + ".example.test"
			attach(t, e.store, host, "web", site.DomainVerified)
			attach(t, e.store, "pending.example.test", "web", site.DomainPending)
			roots := s.pebble.Roots(t)

			leaf, err := handshake(e.secure, host, roots)
			if err != nil {
				t.Fatalf("handshake for a verified domain: %v\npebble log:\n%s", err, s.pebble.Log())
			}
			if leaf.DNSNames[0] != host {
				t.Fatalf("certificate names %v", leaf.DNSNames)
			}
			resp, body, err := httpsGet(t, e.secure, host, "/", roots)
			if err != nil || resp.StatusCode != 200 || body != "<h1>web</h1>" {
				t.Fatalf("GET https://%s/ = %v, %q, %v", host, resp, body, err)
			}
			if n := s.pebble.Orders(t); n != 1 {
				t.Fatalf("pebble saw %d orders, want 1", n)
			}
			if got := certMetric(t, e.p, "issue", "obtained"); got != 1 {
				t.Fatalf("ferry_proxy_certificates_total{issue,obtained} = %v, want 1", got)
			}
			cs, err := e.store.CertStatusGet(context.Background(), host)
			if err != nil || cs.State != "active" {
				t.Fatalf("certificate status = %+v, %v; want active", cs, err)
			}
			if _, err := st.Stat(context.Background(), "acme/certificates/"); err == nil {
				t.Fatal("unexpected object at acme/certificates/")
			}
			objs, _ := st.List(context.Background(), "acme/certificates/")
			if len(objs) == 0 {
				t.Fatal("no certificate under acme/certificates/ in Ferry's storage")
			}

			// Random and unverified names: handshake failure, and the CA is never asked.
			for _, host := range []string{"random-" + tc.name + ".example.test", "pending.example.test", "nope--web." + testDomain, "127.0.0.1"} {
				if _, err := handshake(e.secure, host, roots); err == nil {
					t.Fatalf("handshake for %s succeeded", host)
				}
			}
			if n := s.pebble.Orders(t); n != 1 {
				t.Fatalf("after unverified SNIs pebble saw %d orders, want still 1", n)
			}
			// Without a wildcard, a preview host that exists gets its own certificate.
			preview := tc.name + "--web." + testDomain
			if err := e.store.AliasSet(context.Background(), "web", tc.name, mustAlias(t, e.store, "web")); err != nil {
				t.Fatal(err)
			}
			if leaf, err := handshake(e.secure, preview, roots); err != nil || leaf.DNSNames[0] != preview {
				t.Fatalf("handshake for the existing preview host %s: %v", preview, err)
			}
			if n := s.pebble.Orders(t); n != 2 {
				t.Fatalf("after the preview host pebble saw %d orders, want 2", n)
			}
		})
	}
}

// TestACMESharedStorage runs two proxies on one S3 storage, the second one as its own `ferry proxy` process (so
// only storage is shared, no memory); a burst of handshakes on both for one new name makes one order, and both
// serve the same certificate. Only the first proxy's listeners are where the CA validates, so a challenge that
// the second one starts is answered by the first from storage.
func TestACMESharedStorage(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs Pebble and versitygw")
	}
	t.Parallel()
	s := newACMESetup(t, 0)
	srv := s3test.StartVersityGW(t)
	a := startTLS(t, srv.Open(t, "shared"), s.plain, s.secure, s.opts(true, true))
	attach(t, a.store, "shop.example.test", "shop", site.DomainVerified)
	bPlain, bSecure := freeLoopbackAddr(t), freeLoopbackAddr(t)
	startProxyProcess(t, srv.Env(), "--storage", srv.URL("shared"), "--domain", testDomain, "--listen", bPlain,
		"--tls-listen", bSecure, "--acme-ca", s.pebble.Directory, "--acme-ca-roots", s.pebble.ServerRootsFile)
	roots := s.pebble.Roots(t)

	var wg sync.WaitGroup
	serials := make([]string, 6)
	errs := make([]error, 6)
	for i := range serials {
		addr := a.secure
		if i%2 == 1 {
			addr = bSecure
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			leaf, err := handshake(addr, "shop.example.test", roots)
			if err == nil {
				serials[i] = leaf.SerialNumber.String()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("handshake %d: %v\npebble log:\n%s", i, err, s.pebble.Log())
		}
		if serials[i] != serials[0] {
			t.Fatalf("proxies serve different certificates: %v", serials)
		}
	}
	if n := s.pebble.Orders(t); n != 1 {
		t.Fatalf("two proxies sharing storage placed %d orders, want 1", n)
	}
}

// TestACMECAUnreachable: with the CA down, a certificate already in storage keeps being served (also by a
// proxy started after the outage began), while a new name fails, is logged and counted.
func TestACMECAUnreachable(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs Pebble")
	}
	t.Parallel()
	s := newACMESetup(t, 0)
	st, _ := storage.NewFile(t.TempDir())
	a := startTLS(t, st, s.plain, s.secure, s.opts(true, true))
	attach(t, a.store, "www.example.test", "web", site.DomainVerified)
	roots := s.pebble.Roots(t)
	first, err := handshake(a.secure, "www.example.test", roots)
	if err != nil {
		t.Fatalf("first handshake: %v", err)
	}
	s.pebble.Stop()

	b := startTLS(t, st, listenLoopback(t), listenLoopback(t), s.opts(true, true))
	for _, e := range []*tlsEnv{a, b} {
		leaf, err := handshake(e.secure, "www.example.test", roots)
		if err != nil || !leaf.Equal(first) {
			t.Fatalf("with the CA down, the stored certificate is not served: %v", err)
		}
	}
	attach(t, a.store, "new.example.test", "web", site.DomainVerified)
	if _, err := handshake(b.secure, "new.example.test", roots); err == nil {
		t.Fatal("a new name got a certificate with the CA down")
	}
	if got := certMetric(t, b.p, "issue", "failed"); got < 1 {
		t.Fatalf("failed issuance not counted: %v", got)
	}
	if !strings.Contains(b.logs.String(), "new.example.test") || !strings.Contains(b.logs.String(), "level=ERROR") {
		t.Fatalf("failed issuance not logged as an error; logs:\n%s", b.logs.String())
	}
	cs, err := b.store.CertStatusGet(context.Background(), "new.example.test")
	if err != nil || cs.State != "error" || cs.Error == "" {
		t.Fatalf("certificate status of the failed name = %+v, %v; want error with a reason", cs, err)
	}
}

// childArgs, when set in the environment, makes the test binary run `ferry proxy` with these arguments (JSON)
// instead of the tests: a second proxy that shares nothing with the test process but storage.
const childArgs = "FERRY_TEST_PROXY_ARGS"

func TestMain(m *testing.M) {
	if raw := os.Getenv(childArgs); raw != "" {
		var args []string
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		if err := Command(ctx, args, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln := listenLoopback(t)
	defer ln.Close()
	return ln.Addr().String()
}

// startProxyProcess runs `ferry proxy args...` as a child process until the test ends and waits until it
// logs that it serves HTTPS.
func startProxyProcess(t *testing.T, env []string, args ...string) {
	t.Helper()
	raw, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), env...), childArgs+"="+string(raw))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = os.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			fmt.Fprintln(logs, sc.Text())
			if !once && strings.Contains(sc.Text(), "serving sites over HTTPS") {
				once = true
				close(ready)
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("child proxy logs:\n%s", logs.String())
		}
	})
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("child proxy did not start; logs:\n%s", logs.String())
	}
}

// TestACMERenewal: with short-lived certificates, the proxy renews in the background and serves the new one.
func TestACMERenewal(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: waits for a renewal")
	}
	t.Parallel()
	s := newACMESetup(t, 12*time.Second)
	st, _ := storage.NewFile(t.TempDir())
	opts := s.opts(true, true)
	opts.ACME.RenewCheck = 500 * time.Millisecond
	e := startTLS(t, st, s.plain, s.secure, opts)
	attach(t, e.store, "renew.example.test", "web", site.DomainVerified)
	roots := s.pebble.Roots(t)
	first, err := handshake(e.secure, "renew.example.test", roots)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		leaf, err := handshake(e.secure, "renew.example.test", roots)
		if err == nil && !leaf.Equal(first) {
			if !leaf.NotAfter.After(first.NotAfter) {
				t.Fatalf("renewed certificate expires %v, not after the first's %v", leaf.NotAfter, first.NotAfter)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewed certificate after 30s (last err %v)", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if got := certMetric(t, e.p, "renew", "obtained"); got < 1 {
		t.Fatalf("renewal not counted: %v", got)
	}
}

// TestACMEWildcardRoute53 gets one certificate for *.D and D over DNS-01 through libdns/route53, talking to a
// Route 53 stand-in whose zone is served by a real DNS server that Pebble validates against; every preview host
// is then served with it, with no further orders. (Not parallel: the AWS SDK reads its endpoint and keys from
// the environment.)
func TestACMEWildcardRoute53(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs Pebble")
	}
	r53 := acmetest.StartRoute53(t, testDomain)
	t.Setenv("AWS_ENDPOINT_URL_ROUTE_53", r53.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_HOSTED_ZONE_ID", "")
	plain, secure := listenLoopback(t), listenLoopback(t)
	pb := acmetest.Start(t, acmetest.Options{HTTPPort: portOf(t, plain.Addr().String()), TLSPort: portOf(t, secure.Addr().String()), DNSServer: r53.DNS})
	provider, err := dnsProvider("route53")
	if err != nil {
		t.Fatal(err)
	}
	st, _ := storage.NewFile(t.TempDir())
	e := startTLS(t, st, plain, secure, TLSOptions{ACME: ACMEOptions{CA: pb.Directory, Roots: pb.ServerRoots, DisableHTTP01: true, DisableTLSALPN01: true,
		DNS01: provider, DNSResolvers: []string{r53.DNS}, DNSPropagationTimeout: -1, Wildcard: true, HandshakeTimeout: 5 * time.Second}})
	publishTo(t, e.store, "web", map[string]string{"index.html": "web"}, site.ProductionAlias, "pr-1")
	roots := pb.Roots(t)

	deadline := time.Now().Add(60 * time.Second)
	var leaf *x509.Certificate
	for {
		if leaf, err = handshake(e.secure, testDomain, roots); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no wildcard certificate after 60s: %v\nproxy logs:\n%s\npebble log:\n%s", err, e.logs.String(), pb.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !slices.Contains(leaf.DNSNames, testDomain) {
		t.Fatalf("certificate for %s names %v", testDomain, leaf.DNSNames)
	}
	var wild *x509.Certificate
	for _, host := range []string{"web." + testDomain, "pr-1--web." + testDomain, "nothing-here." + testDomain} {
		for {
			if wild, err = handshake(e.secure, host, roots); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil || !slices.Contains(wild.DNSNames, "*."+testDomain) {
			t.Fatalf("handshake for %s: %v, want the wildcard certificate", host, err)
		}
	}
	resp, body, err := httpsGet(t, e.secure, "pr-1--web."+testDomain, "/", roots)
	if err != nil || resp.StatusCode != 200 || body != "web" {
		t.Fatalf("GET https://pr-1--web.%s/ = %v, %q, %v", testDomain, resp, body, err)
	}
	// certmagic keeps *.D and D as two certificates: two orders, however many previews there are.
	if n := pb.Orders(t); n != 2 {
		t.Fatalf("pebble saw %d orders, want 2 (*.%s and %s)", n, testDomain, testDomain)
	}
	changes := strings.Join(r53.Changes(), "\n")
	if !strings.Contains(changes, "_acme-challenge."+testDomain+". TXT") || r53.Signed() == 0 {
		t.Fatalf("Route 53 stand-in saw changes %q and %d signed requests", changes, r53.Signed())
	}
}

// mustAlias returns the deployment project's production alias points at.
func mustAlias(t *testing.T, store *site.Store, project string) string {
	t.Helper()
	a, err := store.AliasGet(context.Background(), project, site.ProductionAlias)
	if err != nil {
		t.Fatal(err)
	}
	return a.Deployment
}
