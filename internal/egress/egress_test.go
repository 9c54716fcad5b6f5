package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/netpolicy"
)

// errNoNetwork is what the test dialer returns for an address the policy let through but that the test must
// not reach: nothing in these tests leaves loopback.
var errNoNetwork = errors.New("test: no traffic beyond loopback")

// start serves a proxy on 127.0.0.1 and returns its address. Its dialer enforces the policy first (Control,
// before connect) and then connects only to loopback; it counts the connects that reached the kernel.
func start(t *testing.T, cfg Config) (string, *Proxy, *atomic.Int64) {
	t.Helper()
	addr, p, connects, err := startProxy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return addr, p, connects
}

func startProxy(cfg Config) (string, *Proxy, *atomic.Int64, error) {
	p := New(cfg)
	var connects atomic.Int64
	d := &net.Dialer{Timeout: time.Second, Control: func(network, address string, c syscall.RawConn) error {
		if err := cfg.Policy.Control(network, address, nil); err != nil {
			return err
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !ap.Addr().IsLoopback() {
			return errNoNetwork
		}
		connects.Add(1)
		return nil
	}}
	d.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		return nil, errNoNetwork // no DNS either: names other than localhost (from /etc/hosts) do not resolve
	}}
	p.dialFunc = d.DialContext
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	go p.Serve(ln)
	return ln.Addr().String(), p, &connects, nil
}

// raw sends req on a new connection and returns the status line and the connection.
func raw(t *testing.T, addr, req string) (string, *bufio.Reader, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return "ERR " + err.Error(), br, c
	}
	return strings.TrimSpace(line), br, c
}

func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func TestConnectAllowedLoopback(t *testing.T) {
	t.Parallel()
	echo := echoServer(t)
	addr, _, connects := start(t, Config{Policy: netpolicy.Policy{AllowLoopback: true}})
	// The first bytes of the tunnel travel in the same write as the CONNECT, as TLS clients often do.
	line, br, c := raw(t, addr, "CONNECT "+echo+" HTTP/1.1\r\nHost: "+echo+"\r\n\r\nhello through the tunnel\n")
	if line != "HTTP/1.1 200 Connection established" {
		t.Fatalf("CONNECT to allowed loopback: %q", line)
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("after the status line: %q", blank)
	}
	got, err := br.ReadString('\n')
	if err != nil || got != "hello through the tunnel\n" {
		t.Fatalf("echo through the tunnel = %q, %v", got, err)
	}
	fmt.Fprintf(c, "second line\n")
	if got, _ := br.ReadString('\n'); got != "second line\n" {
		t.Fatalf("second echo = %q", got)
	}
	if connects.Load() != 1 {
		t.Errorf("connects = %d, want 1", connects.Load())
	}
}

// Every refused range is refused before connect: the policy's Control runs first, the test dialer counts the
// connects that got past it, and none may. These addresses are never contacted.
func TestConnectRefusesNonPublicRanges(t *testing.T) {
	t.Parallel()
	addr, p, connects := start(t, Config{})
	for _, target := range []string{
		"127.0.0.1:5432", "127.0.0.2:8080", "[::1]:443", "localhost:8080",
		"169.254.169.254:80", "[fe80::1]:80", "10.0.0.1:443", "172.16.0.1:443", "192.168.1.1:443",
		"[fd00::1]:443", "100.64.0.1:443", "0.0.0.0:80", "[::ffff:127.0.0.1]:80", "[64:ff9b::a9fe:a9fe]:80",
		"2130706433:80", "0x7f.1:80", "0177.0.0.1:80", "169.254.43518:80", "240.0.0.1:443", "192.0.2.1:443",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
		if err != nil {
			t.Fatalf("CONNECT %s: %v", target, err)
		}
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(body), "refused") {
			t.Errorf("CONNECT %s: %d %q, want 403 saying why", target, resp.StatusCode, body)
		}
	}
	if n := connects.Load(); n != 0 {
		t.Errorf("%d connects reached the kernel, want 0", n)
	}
	if p.Refused() != 20 {
		t.Errorf("Refused() = %d, want 20", p.Refused())
	}
}

func TestOperatorAllowedRange(t *testing.T) {
	t.Parallel()
	allow, _ := netpolicy.ParsePrefixes([]string{"10.1.0.0/16"})
	addr, _, _ := start(t, Config{Policy: netpolicy.Policy{Allow: allow}})
	// Allowed by policy, then stopped by the test dialer (no traffic to private ranges): 502, not 403.
	if line, _, _ := raw(t, addr, "CONNECT 10.1.2.3:443 HTTP/1.1\r\nHost: x\r\n\r\n"); line != "HTTP/1.1 502 Bad Gateway" {
		t.Errorf("allowed range: %q, want the policy to pass it (502 from the test dialer)", line)
	}
	if line, _, _ := raw(t, addr, "CONNECT 10.2.0.1:443 HTTP/1.1\r\nHost: x\r\n\r\n"); line != "HTTP/1.1 403 Forbidden" {
		t.Errorf("range outside the allowed one: %q", line)
	}
}

func TestForwardPlainHTTP(t *testing.T) {
	t.Parallel()
	var gotHeader http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHeader = r.Header.Clone()
		w.Header().Set("X-Upstream", "yes")
		fmt.Fprintf(w, "path=%s", r.URL.Path)
	}))
	t.Cleanup(up.Close)
	addr, _, _ := start(t, Config{Policy: netpolicy.Policy{AllowLoopback: true}})
	pu, _ := url.Parse("http://" + addr)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	req, _ := http.NewRequest("GET", up.URL+"/pkg/left-pad", nil)
	req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "must not pass")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "path=/pkg/left-pad" || resp.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("forwarded: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if gotHeader.Get("Proxy-Authorization") != "" || gotHeader.Get("X-Hop") != "" {
		t.Errorf("hop-by-hop headers reached the upstream: %v", gotHeader)
	}

	// Refused: a plain request to the metadata endpoint or to loopback without the allowance.
	addr2, _, connects := start(t, Config{})
	for _, target := range []string{"http://169.254.169.254/latest/meta-data/", up.URL + "/", "http://2130706433/"} {
		line, br, _ := raw(t, addr2, "GET "+target+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if line != "HTTP/1.1 403 Forbidden" {
			rest := make([]byte, 300)
			n, _ := br.Read(rest)
			t.Errorf("GET %s: %q, want 403 (%s)", target, line, rest[:n])
		}
	}
	if connects.Load() != 0 {
		t.Errorf("refused requests connected %d times", connects.Load())
	}
}

func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	addr, _, connects := start(t, Config{Policy: netpolicy.Policy{AllowLoopback: true}, MaxHeaderBytes: 4096})
	for name, tc := range map[string]struct{ req, want string }{
		"origin-form GET":    {"GET /etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		"CONNECT no port":    {"CONNECT 127.0.0.1 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		"CONNECT port 0":     {"CONNECT 127.0.0.1:0 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		"CONNECT port 70000": {"CONNECT 127.0.0.1:70000 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		"CONNECT empty host": {"CONNECT :443 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		"CONNECT a URL":      {"CONNECT http://127.0.0.1:80/ HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		"ftp scheme":         {"GET ftp://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		"garbage":            {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		"oversized header":   {"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8192) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
		"no HTTP version":    {"CONNECT 127.0.0.1:1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		"bad method":         {"G\x00T http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
	} {
		if line, _, _ := raw(t, addr, tc.req); line != tc.want {
			t.Errorf("%s: %q, want %q", name, line, tc.want)
		}
	}
	if connects.Load() != 0 {
		t.Errorf("malformed requests connected %d times", connects.Load())
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	echo := echoServer(t)
	addr, _, _ := start(t, Config{Policy: netpolicy.Policy{AllowLoopback: true}, Token: "s3cret"})
	req := "CONNECT " + echo + " HTTP/1.1\r\nHost: x\r\n"
	if line, _, _ := raw(t, addr, req+"\r\n"); line != "HTTP/1.1 407 Proxy Authentication Required" {
		t.Errorf("no credentials: %q", line)
	}
	if line, _, _ := raw(t, addr, req+"Proxy-Authorization: Basic ZmVycnk6d3Jvbmc=\r\n\r\n"); line != "HTTP/1.1 407 Proxy Authentication Required" {
		t.Errorf("wrong password: %q", line)
	}
	if line, _, _ := raw(t, addr, req+"Proxy-Authorization: Basic ZmVycnk6czNjcmV0\r\n\r\n"); line != "HTTP/1.1 200 Connection established" {
		t.Errorf("right password: %q", line)
	}
}

// Slow or idle clients are cut off, and connections beyond MaxConns wait for a slot.
func TestBounds(t *testing.T) {
	t.Parallel()
	addr, _, _ := start(t, Config{HeaderTimeout: 200 * time.Millisecond, MaxConns: 1})
	c1, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	io.WriteString(c1, "CONNECT 127.0.0.1:1 HTTP/1.1\r\n") // never finishes its header
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	start := time.Now()
	io.WriteString(c2, "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n")
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c2).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 403") {
		t.Fatalf("second connection: %q %v", line, err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("the second connection was served after %s, while the only slot was held", d)
	}
	c1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c1); err != nil {
		t.Errorf("the slow client was not cut off: %v", err)
	}
}
