package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/netpolicy"
)

// origin is a loopback API that records what reaches it.
type origin struct {
	srv  *httptest.Server
	hits atomic.Int64
	last atomic.Pointer[http.Request]
	body atomic.Pointer[string]
}

func newOrigin(t *testing.T) *origin {
	o := &origin{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		s := string(b)
		o.body.Store(&s)
		o.last.Store(r)
		switch r.URL.Path {
		case "/v1/slow":
			time.Sleep(time.Second)
		case "/v1/big":
			w.Write([]byte(strings.Repeat("x", 5000)))
			return
		case "/v1/moved":
			http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "session=stolen; Domain=ferry.test")
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "secret")
		w.Header().Set("X-Up", "yes")
		w.WriteHeader(201)
		io.WriteString(w, `{"path":"`+r.URL.RequestURI()+`","body":"`+s+`"}`)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (e *testEnv) send(t *testing.T, method, host, path, body string, headers ...string) resp {
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
	r, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{status: r.StatusCode, header: r.Header, body: string(b)}
}

func upstreamCount(t *testing.T, e *testEnv, result string) float64 {
	t.Helper()
	var m dto.Metric
	if err := e.p.upstream.results.WithLabelValues(result).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestProxyRule proxies to a loopback origin (allowed only by the test's policy) and checks what crosses in
// each direction.
func TestProxyRule(t *testing.T) {
	o := newOrigin(t)
	other := newOrigin(t)
	e := newEnv(t, Config{
		ProxyOrigins:          []string{o.srv.URL},
		ProxyNetPolicy:        netpolicy.Policy{AllowLoopback: true},
		ProxyTimeout:          500 * time.Millisecond,
		ProxyMaxResponseBytes: 1000,
	})
	e.publish(t, "web", map[string]string{
		"index.html": indexHTML,
		"_redirects": "/api/* " + o.srv.URL + "/v1/:splat 200\n/search q=:q " + o.srv.URL + "/v1/find?term=:q 200\n/other/* " + other.srv.URL + "/:splat 200\n",
		"_headers":   "/api/*\n  X-From-Rules: yes\n",
	}, nil, "production")
	host := "web." + testDomain

	r := e.send(t, "GET", host, "/api/items?x=1", "", "Cookie", "preview=1", "Connection", "X-Drop", "X-Drop", "1", "X-Keep", "2")
	if r.status != 201 || r.body != `{"path":"/v1/items?x=1","body":""}` {
		t.Fatalf("GET: %d %q", r.status, r.body)
	}
	got := o.last.Load()
	if got.Header.Get("Cookie") != "" || got.Header.Get("X-Drop") != "" || got.Header.Get("X-Keep") != "2" {
		t.Errorf("origin got headers %v: want no Cookie, no Connection-listed header, X-Keep kept", got.Header)
	}
	if got.Header.Get("X-Forwarded-Host") != host || got.Header.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Errorf("forwarded headers %v", got.Header)
	}
	if r.header.Get("Set-Cookie") != "" || r.header.Get("X-Hop") != "" || r.header.Get("X-Up") != "yes" ||
		r.header.Get("Content-Type") != "application/json" || r.header.Get("X-From-Rules") != "yes" {
		t.Errorf("response headers %v", r.header)
	}

	// A visitor cannot steer the request to another host through the splat.
	for _, path := range []string{"/api/@127.0.0.1:1/x", "/api/..;@127.0.0.1:1", "/api/%40other.example"} {
		if r := e.send(t, "GET", host, path, ""); r.status != 201 || !strings.Contains(r.body, `"path":"/v1/`) {
			t.Errorf("GET %s: %d %q, want the allowed origin's answer", path, r.status, r.body)
		}
	}
	if r := e.send(t, "POST", host, "/api/echo", "hello"); r.status != 201 || r.body != `{"path":"/v1/echo","body":"hello"}` {
		t.Errorf("POST: %d %q", r.status, r.body)
	}
	// A query condition's rule consumes the query: only the target's goes on.
	if r := e.send(t, "GET", host, "/search?q=shoes&page=2", ""); r.status != 201 || r.body != `{"path":"/v1/find?term=shoes","body":""}` {
		t.Errorf("query rule: %d %q", r.status, r.body)
	}
	// Redirects are passed on, not followed.
	before := o.hits.Load()
	if r := e.send(t, "GET", host, "/api/moved", ""); r.status != 302 || r.header.Get("Location") != "http://127.0.0.1:1/elsewhere" || o.hits.Load() != before+1 {
		t.Errorf("redirect: %d %v", r.status, r.header)
	}
	if r := e.send(t, "GET", host, "/api/slow", ""); r.status != 504 {
		t.Errorf("slow origin: %d, want 504", r.status)
	}
	if r := e.send(t, "GET", host, "/api/big", ""); r.status != 502 {
		t.Errorf("oversized answer: %d, want 502", r.status)
	}
	// An origin that the operator did not list is never contacted.
	if r := e.send(t, "GET", host, "/other/x", ""); r.status != 502 || !strings.Contains(r.body, "--proxy-origins") || other.hits.Load() != 0 {
		t.Errorf("unlisted origin: %d %q, %d hits", r.status, r.body, other.hits.Load())
	}
	// Other methods on non-proxied paths are still refused.
	if r := e.send(t, "POST", host, "/", "x"); r.status != 405 {
		t.Errorf("POST /: %d", r.status)
	}
	for result, want := range map[string]float64{"ok": 7, "timeout": 1, "error": 1, "refused": 1} {
		if got := upstreamCount(t, e, result); got != want {
			t.Errorf("ferry_proxy_upstream_requests_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}

// TestProxyRuleLoopbackRefused: with the default policy, an allowed origin on a loopback address is refused
// before connecting.
func TestProxyRuleLoopbackRefused(t *testing.T) {
	o := newOrigin(t)
	e := newEnv(t, Config{ProxyOrigins: []string{o.srv.URL}})
	e.publish(t, "web", map[string]string{"index.html": indexHTML, "_redirects": "/api/* " + o.srv.URL + "/:splat 200\n"}, nil, "production")
	if r := e.send(t, "GET", "web."+testDomain, "/api/x", ""); r.status != 502 || o.hits.Load() != 0 {
		t.Errorf("loopback origin: %d, %d hits; want 502 and none", r.status, o.hits.Load())
	}
	if got := upstreamCount(t, e, "refused"); got != 1 {
		t.Errorf("refused = %v", got)
	}
}

// TestProxyDialRefusesPrivate checks the proxy rules' dialer on addresses only: it refuses private, link-local
// and loopback addresses before any connect system call, so nothing is sent to them.
func TestProxyDialRefusesPrivate(t *testing.T) {
	cfg := Config{ProxyTimeout: time.Second}
	u, err := newUpstream(&cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"10.0.0.1:80", "172.16.0.1:443", "192.168.1.1:80", "169.254.169.254:80", "127.0.0.1:80", "[::1]:80", "[fe80::1]:80", "0.0.0.0:80"} {
		conn, err := u.dial(addr)
		if err == nil {
			conn.Close()
			t.Fatalf("dial %s succeeded", addr)
		}
		if ferry.ErrorCode(err) != ferry.EFORBIDDEN {
			t.Errorf("dial %s: %v, want a policy refusal", addr, err)
		}
	}
}

func TestNormalizeOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://API.example.com":      "https://api.example.com",
		"https://api.example.com:443/": "https://api.example.com",
		"http://api.example.com:8080":  "http://api.example.com:8080",
		"http://[::1]:80":              "http://[::1]",
	} {
		if got, err := normalizeOrigin(in); err != nil || got != want {
			t.Errorf("normalizeOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"api.example.com", "ftp://x.com", "https://x.com/path", "https://u:p@x.com", "https://x.com?q=1"} {
		if _, err := normalizeOrigin(bad); ferry.ErrorCode(err) != ferry.EINVALID {
			t.Errorf("normalizeOrigin(%q) = %v, want EINVALID", bad, err)
		}
	}
	if _, err := New(Config{Storage: &flakyStorage{}, Domain: "x", ProxyOrigins: []string{"https://x.com/api"}}); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("New with a bad origin: %v", err)
	}
}
