// Package acmetest runs Let's Encrypt's test CA, Pebble, and its DNS server pebble-challtestsrv as separate
// processes for tests, on loopback ports of their own. challtestsrv answers every A query with 127.0.0.1 (so the
// CA's validation of any test name reaches the proxy under test) and takes TXT and CNAME records over its
// management API, for DNS-01 and for the app's ownership checks. Without the binaries the test is skipped, or
// fails when CI is set.
package acmetest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"go/build"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Install is the command that installs the binaries the tests expect.
const Install = "go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3 github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@v2.10.3"

// Options configures a Pebble.
type Options struct {
	// HTTPPort and TLSPort are the loopback ports Pebble validates HTTP-01 and TLS-ALPN-01 challenges on: the
	// proxy's plain and HTTPS listeners.
	HTTPPort, TLSPort int
	// Validity is the lifetime of issued certificates; default 90 days. Short ones test renewal.
	Validity time.Duration
	// DNSServer, when set, is the DNS server Pebble resolves and validates DNS-01 with (a Route53 stand-in's),
	// instead of a pebble-challtestsrv that Start runs.
	DNSServer string
}

// Pebble is a running CA and its DNS server.
type Pebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// ServerRoots verify the CA's own HTTPS certificate (made by this package).
	ServerRoots *x509.CertPool
	// ServerRootsFile holds ServerRoots as PEM, for --acme-ca-roots.
	ServerRootsFile string
	// DNS is challtestsrv's DNS server (host:port).
	DNS string

	opts     Options
	dir      string
	mgmt     string // Pebble's management API
	dnsMgmt  string // challtestsrv's management API
	logPath  string
	pebble   *proc
	client   *http.Client
	bin      string
	cfgPath  string
	pebAddrs [2]string
}

// Start runs challtestsrv and Pebble, stopping both at test cleanup.
func Start(t testing.TB, opts Options) *Pebble {
	t.Helper()
	pebbleBin, challBin := binPath("pebble"), binPath("pebble-challtestsrv")
	if pebbleBin == "" || challBin == "" {
		msg := "pebble or pebble-challtestsrv not found on PATH or in GOPATH/bin; install them with: " + Install
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	p := &Pebble{opts: opts, dir: dir, logPath: filepath.Join(dir, "pebble.log"), bin: pebbleBin}
	if opts.DNSServer != "" {
		p.DNS = opts.DNSServer
	} else {
		p.DNS = freeAddr(t)
		p.dnsMgmt = "http://" + freeAddr(t)
		chall, err := startProc(challBin, []string{
			"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "",
			"-dnsserver", p.DNS, "-management", strings.TrimPrefix(p.dnsMgmt, "http://"),
			"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		}, nil, filepath.Join(dir, "challtestsrv.log"))
		if err != nil {
			t.Fatalf("start pebble-challtestsrv: %v", err)
		}
		t.Cleanup(chall.stop)
		waitTCP(t, p.DNS, chall, filepath.Join(dir, "challtestsrv.log"))
	}

	certPath, keyPath, roots, rootsPEM := serverCert(t, dir)
	p.ServerRoots = roots
	p.ServerRootsFile = filepath.Join(dir, "server-roots.pem")
	if err := os.WriteFile(p.ServerRootsFile, rootsPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	p.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	listen, mgmt := freeAddr(t), freeAddr(t)
	p.pebAddrs = [2]string{listen, mgmt}
	p.Directory = "https://" + listen + "/dir"
	p.mgmt = "https://" + mgmt
	validity := opts.Validity
	if validity == 0 {
		validity = 90 * 24 * time.Hour
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt,
		"certificate": certPath, "privateKey": keyPath,
		"httpPort": opts.HTTPPort, "tlsPort": opts.TLSPort,
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
		"retryAfter":   map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm": "ecdsa",
		"profiles":     map[string]any{"default": map[string]any{"description": "test", "validityPeriod": int(validity.Seconds())}},
	}}
	b, _ := json.Marshal(cfg)
	p.cfgPath = filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(p.cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	p.Start(t)
	t.Cleanup(p.Stop)
	return p
}

// Start (re)starts the CA on its addresses. A restarted Pebble has a new root and forgets accounts and orders.
func (p *Pebble) Start(t testing.TB) {
	t.Helper()
	pb, err := startProc(p.bin, []string{"-config", p.cfgPath, "-dnsserver", p.DNS}, []string{
		"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0",
	}, p.logPath)
	if err != nil {
		t.Fatalf("start pebble: %v", err)
	}
	p.pebble = pb
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := p.client.Get(p.Directory); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("pebble did not answer on %s; log:\n%s", p.Directory, tail(p.logPath))
}

// Stop stops the CA (challtestsrv keeps running), as an outage would.
func (p *Pebble) Stop() {
	p.pebble.stop()
}

// Orders is how many orders the CA has been asked for, from its own log.
func (p *Pebble) Orders(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("Added order"))
}

// Log is the CA's log so far, for failure messages.
func (p *Pebble) Log() string { return tail(p.logPath) }

// Roots returns the CA's current root, which the certificates it issues chain to.
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	resp, err := p.client.Get(p.mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("get pebble root: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble root is not PEM: %q", b)
	}
	return pool
}

// RootPEM returns the CA's current root as PEM.
func (p *Pebble) RootPEM(t testing.TB) []byte {
	t.Helper()
	resp, err := p.client.Get(p.mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("get pebble root: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// SetTXT makes challtestsrv answer TXT queries for host (a FQDN, with or without the final dot) with value.
func (p *Pebble) SetTXT(t testing.TB, host, value string) {
	t.Helper()
	p.dnsPost(t, "/set-txt", map[string]string{"host": fqdn(host), "value": value})
}

// ClearTXT removes host's TXT records.
func (p *Pebble) ClearTXT(t testing.TB, host string) {
	t.Helper()
	p.dnsPost(t, "/clear-txt", map[string]string{"host": fqdn(host)})
}

// SetCNAME makes host a CNAME of target.
func (p *Pebble) SetCNAME(t testing.TB, host, target string) {
	t.Helper()
	p.dnsPost(t, "/set-cname", map[string]string{"host": fqdn(host), "target": fqdn(target)})
}

// DNSManagement is challtestsrv's management URL, for a DNS-01 provider that writes TXT records there.
func (p *Pebble) DNSManagement() string { return p.dnsMgmt }

func (p *Pebble) dnsPost(t testing.TB, path string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(p.dnsMgmt+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("challtestsrv %s: %v", path, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("challtestsrv %s: %s", path, resp.Status)
	}
}

func fqdn(h string) string { return strings.TrimSuffix(h, ".") + "." }

// serverCert makes a self-signed certificate for Pebble's own HTTPS listeners (127.0.0.1, localhost).
func serverCert(t testing.TB, dir string) (certPath, keyPath string, roots *x509.CertPool, rootsPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebble test server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	rootsPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certPath, keyPath = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	if err := os.WriteFile(certPath, rootsPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AppendCertsFromPEM(rootsPEM)
	return certPath, keyPath, roots, rootsPEM
}

func binPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, gopath := range filepath.SplitList(build.Default.GOPATH) {
		p := filepath.Join(gopath, "bin", name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

type proc struct {
	cmd    *exec.Cmd
	exited chan error
}

func startProc(bin string, args, env []string, logPath string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	return p, nil
}

func (p *proc) stop() {
	if p == nil || p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return
	case <-time.After(3 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// waitTCP waits until something listens on addr (UDP and TCP DNS start together).
func waitTCP(t testing.TB, addr string, p *proc, logPath string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.exited:
			t.Fatalf("process exited (%v); log:\n%s", err, tail(logPath))
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(30 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s; log:\n%s", addr, tail(logPath))
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}
