package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/siteconfig"
	"github.com/ferryhq/ferry/internal/storage"
)

const testDomain = "ferry.test"

// flakyStorage is the real file backend with a switch that makes every call fail as an outage would.
type flakyStorage struct {
	storage.Storage
	down  atomic.Bool
	calls atomic.Int64 // every call but reads of the alias change signal
	// signalGets counts reads of the alias change signal; signalDown fails them alone.
	signalGets atomic.Int64
	signalDown atomic.Bool
}

var errDown = ferry.Errorf(ferry.EUNAVAILABLE, "storage is down (test)")

func (s *flakyStorage) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if key == site.SignalKey {
		s.signalGets.Add(1)
		if s.signalDown.Load() {
			return nil, errDown
		}
	} else {
		s.calls.Add(1)
	}
	if s.down.Load() {
		return nil, errDown
	}
	return s.Storage.Get(ctx, key)
}

func (s *flakyStorage) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return storage.ObjectInfo{}, errDown
	}
	return s.Storage.Stat(ctx, key)
}

func (s *flakyStorage) List(ctx context.Context, prefix string) ([]storage.ObjectInfo, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return nil, errDown
	}
	return s.Storage.List(ctx, prefix)
}

// GetTagged, PutIf and DeleteIf pass the file backend's conditional writes through (claiming hand-off tokens
// needs them), and fail while the storage is down.
func (s *flakyStorage) GetTagged(ctx context.Context, key string) ([]byte, string, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return nil, "", errDown
	}
	return s.Storage.(storage.Conditional).GetTagged(ctx, key)
}

func (s *flakyStorage) PutIf(ctx context.Context, key string, body []byte, ifTag string) (string, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return "", errDown
	}
	return s.Storage.(storage.Conditional).PutIf(ctx, key, body, ifTag)
}

func (s *flakyStorage) DeleteIf(ctx context.Context, key, tag string) error {
	s.calls.Add(1)
	if s.down.Load() {
		return errDown
	}
	return s.Storage.(storage.Conditional).DeleteIf(ctx, key, tag)
}

// testEnv is a proxy on a real loopback listener over real file storage.
type testEnv struct {
	st    *flakyStorage
	store *site.Store
	p     *Proxy
	addr  string
}

func newEnv(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	fst, err := storage.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return newEnvOn(t, cfg, &flakyStorage{Storage: fst})
}

// newEnvOn is newEnv over a given storage, so that several proxies can share one.
func newEnvOn(t *testing.T, cfg Config, st *flakyStorage) *testEnv {
	t.Helper()
	cfg.Storage, cfg.Domain = st, testDomain
	if cfg.CacheDir == "" {
		cfg.CacheDir = t.TempDir()
	}
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, p, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &testEnv{st: st, store: site.NewStore(st), p: p, addr: ln.Addr().String()}
}

// publish writes files into a folder and publishes it with the real site store.
func (e *testEnv) publish(t *testing.T, project string, files map[string]string, settings *siteconfig.File, aliases ...string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := e.store.Publish(context.Background(), site.PublishParams{Project: project, Dir: dir, Aliases: aliases, Settings: settings})
	if err != nil {
		t.Fatalf("publish %s: %v", project, err)
	}
	return res.Deployment
}

type resp struct {
	status int
	header http.Header
	body   string
}

// do sends one request over a real connection, with the raw request path (no client-side cleaning) and no
// transparent decompression.
func (e *testEnv) do(t *testing.T, method, host, path string, headers ...string) resp {
	t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path, host)
	for i := 0; i+1 < len(headers); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", headers[i], headers[i+1])
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, "http://"+host+"/", nil)
	r, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("%s %s %s: %v", method, host, path, err)
	}
	defer r.Body.Close()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatalf("%s %s %s: read body: %v", method, host, path, err)
	}
	return resp{status: r.StatusCode, header: r.Header, body: string(body)}
}

func sha(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// text returns n bytes of compressible, deterministic text.
func text(seed string, n int) string {
	var b strings.Builder
	r := rand.New(rand.NewPCG(uint64(len(seed)), 7))
	words := []string{"const ", "function ", "return ", "let ", "=> ", "{ ", "} ", "; ", seed, "\n"}
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.String()[:n]
}

var (
	indexHTML = "<!doctype html><title>web</title>" + text("index", 2000)
	aboutHTML = "<!doctype html><title>about</title>about page"
	docsHTML  = "<!doctype html><title>docs</title>docs index"
	notFound  = "<!doctype html><title>404</title>custom not found"
	appJS     = text("app", 5000)
	bigJS     = text("big", 150_000)
	styleCSS  = "body{color:red}"
	pngBytes  = "\x89PNG\r\n\x1a\n" + strings.Repeat("\x00\x01\x02", 300)
)

func webSite() map[string]string {
	return map[string]string{
		"index.html":             indexHTML,
		"about.html":             aboutHTML,
		"docs/index.html":        docsHTML,
		"guide/index.html":       docsHTML,
		"404.html":               notFound,
		"assets/app.3f2a1b9c.js": appJS,
		"assets/big-5KQ2ZQ3P.js": bigJS,
		"style.css":              styleCSS,
		"logo.png":               pngBytes,
		"_redirects": strings.Join([]string{
			"/old /about 301",
			"/temp /about?from=temp 302",
			"/blog/* /news/:splat 301",
			"/rewrite /about.html 200",
			"/gone /404.html 404",
			"/about /index.html 302",
			"/docs /about 302!",
			"/ext https://example.com/x 301",
			"/frag /about#team 301",
			"/store id=:id /blog-post/:id 301",
			"/store?kind=shoes /shoes 302",
			"/admin/* 200!",
		}, "\n"),
		// Not indented, as both upstreams allow.
		"_headers": "/assets/*\n  X-Asset: yes\n/about\n  X-Frame-Options: DENY\n  Cache-Control: no-cache\n" +
			"/old\nX-On-Redirect: yes\n/blog/*\nX-Splat: :splat\n/style.css\n! Cache-Control\n  X-Css: 1\n" +
			"/missing\n  X-On-404: yes\n",
		"admin/panel.html": aboutHTML,
	}
}

func TestServe(t *testing.T) {
	e := newEnv(t, Config{})
	webID := e.publish(t, "web", webSite(), nil, "production")
	e.publish(t, "app", map[string]string{"index.html": indexHTML, "main.js": appJS}, nil, "production", "pr-1")
	noClean := false
	e.publish(t, "slash", map[string]string{"index.html": indexHTML, "docs/index.html": docsHTML, "about.html": aboutHTML}, &siteconfig.File{TrailingSlash: new(true), CleanURLs: &noClean}, "production")
	e.publish(t, "noslash", map[string]string{"index.html": indexHTML, "docs/index.html": docsHTML}, &siteconfig.File{TrailingSlash: new(false)}, "production")
	// A multi-page site without 404.html (Astro, Eleventy): unknown paths are 404s, and /about/ moves to /about.
	e.publish(t, "mpa", map[string]string{"index.html": indexHTML, "about.html": aboutHTML, "blog/index.html": docsHTML,
		"_headers": "/*\n  X-Site: mpa\n"}, nil, "production")
	e.publish(t, "slashclean", map[string]string{"index.html": indexHTML, "about.html": aboutHTML}, &siteconfig.File{TrailingSlash: new(true)}, "production")
	// A project with previews but nothing in production yet.
	e.publish(t, "fresh", map[string]string{"index.html": indexHTML}, nil, "pr-3")

	web := "web." + testDomain
	etagIndex := `"` + sha(indexHTML) + `"`
	tests := []struct {
		name     string
		method   string
		host     string
		path     string
		headers  []string
		status   int
		body     string // exact body; "" skips
		contains string
		want     map[string]string // header: exact value ("-" means absent)
	}{
		{name: "index", host: web, path: "/", status: 200, body: indexHTML, want: map[string]string{
			"Content-Type": "text/html; charset=utf-8", "ETag": etagIndex, "Cache-Control": "public, max-age=0, must-revalidate",
			"X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding", "Content-Encoding": "-"}},
		{name: "port ignored and case folded", host: "WEB.ferry.test:8081", path: "/", status: 200, body: indexHTML},
		{name: "trailing dot", host: "web.ferry.test.", path: "/", status: 200, body: indexHTML},
		{name: "exact file", host: web, path: "/style.css", status: 200, body: styleCSS, want: map[string]string{"Content-Type": "text/css; charset=utf-8", "Vary": "-"}},
		{name: "binary type", host: web, path: "/logo.png", status: 200, body: pngBytes, want: map[string]string{"Content-Type": "image/png", "Vary": "-"}},
		{name: "index.html itself", host: web, path: "/index.html", status: 200, body: indexHTML},
		{name: "clean url", host: web, path: "/about", status: 200, body: aboutHTML},
		{name: "directory index", host: web, path: "/guide/", status: 200, body: docsHTML},
		{name: "clean url directory", host: web, path: "/guide", status: 200, body: docsHTML},
		{name: "hashed asset immutable", host: web, path: "/assets/app.3f2a1b9c.js", status: 200, body: appJS, want: map[string]string{
			"Cache-Control": "public, max-age=31536000, immutable", "Content-Type": "text/javascript; charset=utf-8", "X-Asset": "yes"}},
		{name: "query ignored for files", host: web, path: "/style.css?v=2", status: 200, body: styleCSS},
		{name: "if-none-match", host: web, path: "/", headers: []string{"If-None-Match", etagIndex}, status: 304, body: "", want: map[string]string{"ETag": etagIndex}},
		{name: "if-none-match list and weak", host: web, path: "/", headers: []string{"If-None-Match", `"x", W/` + etagIndex}, status: 304},
		{name: "if-none-match other", host: web, path: "/", headers: []string{"If-None-Match", `"nope"`}, status: 200, body: indexHTML},
		{name: "head", method: "HEAD", host: web, path: "/", status: 200, body: "", want: map[string]string{"Content-Length": fmt.Sprint(len(indexHTML)), "ETag": etagIndex}},
		{name: "head large", method: "HEAD", host: web, path: "/assets/big-5KQ2ZQ3P.js", status: 200, body: "", want: map[string]string{"Content-Length": fmt.Sprint(len(bigJS))}},
		{name: "large file", host: web, path: "/assets/big-5KQ2ZQ3P.js", status: 200, body: bigJS, want: map[string]string{"Cache-Control": "public, max-age=31536000, immutable"}},
		{name: "range", host: web, path: "/", headers: []string{"Range", "bytes=10-19"}, status: 206, body: indexHTML[10:20], want: map[string]string{
			"Content-Range": fmt.Sprintf("bytes 10-19/%d", len(indexHTML)), "Content-Encoding": "-"}},
		{name: "range disables compression", host: web, path: "/", headers: []string{"Range", "bytes=-5", "Accept-Encoding", "br, gzip"}, status: 206, body: indexHTML[len(indexHTML)-5:], want: map[string]string{"Content-Encoding": "-"}},
		{name: "range large", host: web, path: "/assets/big-5KQ2ZQ3P.js", headers: []string{"Range", "bytes=100000-100099"}, status: 206, body: bigJS[100000:100100]},
		{name: "range unsatisfiable", host: web, path: "/", headers: []string{"Range", "bytes=99999999-"}, status: 416, want: map[string]string{"Content-Range": fmt.Sprintf("bytes */%d", len(indexHTML))}},
		// RFC 9110 14.1.2: a last-pos past the end (however many digits) is clamped to the end.
		{name: "range end past file", host: web, path: "/", headers: []string{"Range", "bytes=0-99999999999999999999999"}, status: 206, body: indexHTML, want: map[string]string{
			"Content-Range": fmt.Sprintf("bytes 0-%d/%d", len(indexHTML)-1, len(indexHTML))}},
		{name: "range end past file int64", host: web, path: "/", headers: []string{"Range", "bytes=3-9223372036854775807"}, status: 206, body: indexHTML[3:]},
		{name: "range end past large file", host: web, path: "/assets/big-5KQ2ZQ3P.js", headers: []string{"Range", "bytes=100000-18446744073709551616"}, status: 206, body: bigJS[100000:]},
		{name: "range huge suffix", host: web, path: "/", headers: []string{"Range", "bytes=-99999999999999999999999"}, status: 206, body: indexHTML},
		{name: "range start huge", host: web, path: "/", headers: []string{"Range", "bytes=99999999999999999999999-"}, status: 416, want: map[string]string{"Content-Range": fmt.Sprintf("bytes */%d", len(indexHTML))}},
		{name: "range empty suffix", host: web, path: "/", headers: []string{"Range", "bytes=-0"}, status: 416},
		{name: "range reversed", host: web, path: "/", headers: []string{"Range", "bytes=9-3"}, status: 416},
		{name: "if-range mismatch serves all", host: web, path: "/", headers: []string{"Range", "bytes=0-1", "If-Range", `"old"`}, status: 200, body: indexHTML},
		{name: "multi range serves all", host: web, path: "/", headers: []string{"Range", "bytes=0-1,5-6"}, status: 200, body: indexHTML},
		{name: "redirect 301", host: web, path: "/old", status: 301, want: map[string]string{"Location": "/about"}},
		{name: "redirect keeps query", host: web, path: "/old?x=1&y=2", status: 301, want: map[string]string{"Location": "/about?x=1&y=2"}},
		{name: "target's own query kept alone", host: web, path: "/temp?x=1", status: 302, want: map[string]string{"Location": "/about?from=temp"}},
		{name: "query before fragment", host: web, path: "/frag?q=1", status: 301, want: map[string]string{"Location": "/about?q=1#team"}},
		{name: "query condition", host: web, path: "/store?id=42&utm=x", status: 301, want: map[string]string{"Location": "/blog-post/42"}},
		{name: "query condition literal", host: web, path: "/store?kind=shoes", status: 302, want: map[string]string{"Location": "/shoes"}},
		{name: "query condition unmet", host: web, path: "/store?kind=hats", status: 404, body: notFound},
		{name: "query condition absent", host: web, path: "/store", status: 404, body: notFound},
		{name: "forward rule", host: web, path: "/admin/panel", status: 200, body: aboutHTML},
		{name: "headers on redirects", host: web, path: "/old", status: 301, want: map[string]string{"X-On-Redirect": "yes"}},
		{name: "splat in header value", host: web, path: "/blog/2024/a%20b", status: 301, want: map[string]string{"X-Splat": "2024/a%20b", "Location": "/news/2024/a%20b"}},
		{name: "splat keeps trailing slash", host: web, path: "/blog/2024/post/", status: 301, want: map[string]string{"Location": "/news/2024/post/"}},
		{name: "header removed", host: web, path: "/style.css", status: 200, body: styleCSS, want: map[string]string{"Cache-Control": "-", "X-Css": "1"}},
		{name: "headers on custom 404", host: web, path: "/missing", status: 404, want: map[string]string{"X-On-404": "yes"}},
		{name: "mpa unknown path is 404", host: "mpa." + testDomain, path: "/nope", status: 404, contains: "404 Not Found", want: map[string]string{"X-Site": "mpa"}},
		{name: "mpa about", host: "mpa." + testDomain, path: "/about", status: 200, body: aboutHTML},
		{name: "mpa about slash 308", host: "mpa." + testDomain, path: "/about/?x=1", status: 308, want: map[string]string{"Location": "/about?x=1"}},
		{name: "mpa dir index slash", host: "mpa." + testDomain, path: "/blog/", status: 200, body: docsHTML},
		{name: "spa missing asset is 404", host: "app." + testDomain, path: "/assets/index-OLDHASH1.js", status: 404, contains: "404 Not Found"},
		{name: "spa missing image is 404", host: "app." + testDomain, path: "/nope.png", status: 404},
		{name: "trailing slash add, about.html", host: "slashclean." + testDomain, path: "/about", status: 301, want: map[string]string{"Location": "/about/"}},
		{name: "trailing slash add serves about.html at /about/", host: "slashclean." + testDomain, path: "/about/", status: 200, body: aboutHTML},
		{name: "no production yet", host: "fresh." + testDomain, path: "/", status: 404, contains: "No production deployment yet"},
		{name: "fresh preview", host: "pr-3--fresh." + testDomain, path: "/", status: 200, body: indexHTML},
		{name: "preview removed", host: "pr-9--fresh." + testDomain, path: "/", status: 404, contains: "preview was removed"},
		{name: "redirect splat", host: web, path: "/blog/2024/post", status: 301, want: map[string]string{"Location": "/news/2024/post"}},
		{name: "redirect external", host: web, path: "/ext", status: 301, want: map[string]string{"Location": "https://example.com/x"}},
		{name: "rewrite 200", host: web, path: "/rewrite", status: 200, body: aboutHTML},
		{name: "rule 404", host: web, path: "/gone", status: 404, body: notFound},
		{name: "shadowed by file", host: web, path: "/about", status: 200, body: aboutHTML, want: map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-cache"}},
		{name: "forced over file", host: web, path: "/docs", status: 302, want: map[string]string{"Location": "/about"}},
		{name: "custom 404", host: web, path: "/missing", status: 404, body: notFound, want: map[string]string{"Content-Type": "text/html; charset=utf-8"}},
		{name: "spa fallback", host: "app." + testDomain, path: "/some/client/route", status: 200, body: indexHTML},
		{name: "alias host", host: "pr-1--app." + testDomain, path: "/main.js", status: 200, body: appJS},
		{name: "deployment id host", host: webID + "--web." + testDomain, path: "/about", status: 200, body: aboutHTML},
		{name: "alias of other project", host: "pr-1--web." + testDomain, path: "/", status: 404, contains: "Deployment not found"},
		{name: "unknown project", host: "nope." + testDomain, path: "/", status: 404, contains: "No such site"},
		{name: "unknown project preview", host: "pr-1--nope." + testDomain, path: "/", status: 404, contains: "No such site"},
		{name: "unknown host", host: "web.example.com", path: "/", status: 404, contains: "not a Ferry site"},
		{name: "deeper subdomain", host: "a.web." + testDomain, path: "/", status: 404, contains: "not a Ferry site"},
		{name: "trailing slash add", host: "slash." + testDomain, path: "/docs?q=1", status: 301, want: map[string]string{"Location": "/docs/?q=1"}},
		{name: "trailing slash add keeps files", host: "slash." + testDomain, path: "/about.html", status: 200, body: aboutHTML},
		{name: "no clean urls", host: "slash." + testDomain, path: "/about", status: 301, want: map[string]string{"Location": "/about/"}},
		{name: "trailing slash remove", host: "noslash." + testDomain, path: "/docs/", status: 301, want: map[string]string{"Location": "/docs"}},
		{name: "trailing slash removed serves index", host: "noslash." + testDomain, path: "/docs", status: 200, body: docsHTML},
		{name: "healthz", host: "127.0.0.1:8081", path: "/healthz", status: 200, body: "ok\n"},
		{name: "healthz ipv6", host: "[::1]:8081", path: "/healthz", status: 200, body: "ok\n"},
		{name: "metrics", host: "127.0.0.1", path: "/metrics", status: 200, contains: "ferry_proxy_requests_total"},
		{name: "healthz not on sites", host: web, path: "/healthz", status: 404, body: notFound},
		{name: "post", method: "POST", host: web, path: "/", status: 405, want: map[string]string{"Allow": "GET, HEAD"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			hs := tc.headers
			if !hasHeader(hs, "Accept-Encoding") {
				hs = append(hs, "Accept-Encoding", "identity")
			}
			r := e.do(t, method, tc.host, tc.path, hs...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d; body %.200q", r.status, tc.status, r.body)
			}
			if tc.body != "" && r.body != tc.body {
				t.Errorf("body %.100q (%d bytes), want %.100q (%d bytes)", r.body, len(r.body), tc.body, len(tc.body))
			}
			if (tc.status == 304 || method == "HEAD") && r.body != "" {
				t.Errorf("body %q, want none", r.body)
			}
			if !strings.Contains(r.body, tc.contains) {
				t.Errorf("body %.300q does not contain %q", r.body, tc.contains)
			}
			for k, v := range tc.want {
				got, ok := r.header[http.CanonicalHeaderKey(k)]
				switch {
				case v == "-" && ok:
					t.Errorf("%s: %q, want none", k, got)
				case v != "-" && strings.Join(got, ", ") != v:
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

func hasHeader(hs []string, name string) bool {
	for i := 0; i < len(hs); i += 2 {
		if strings.EqualFold(hs[i], name) {
			return true
		}
	}
	return false
}

func TestCompression(t *testing.T) {
	e := newEnv(t, Config{})
	e.publish(t, "web", webSite(), nil, "production")
	host := "web." + testDomain
	for _, path := range []string{"/", "/assets/app.3f2a1b9c.js", "/assets/big-5KQ2ZQ3P.js", "/missing"} {
		want := map[string]string{"/": indexHTML, "/assets/app.3f2a1b9c.js": appJS, "/assets/big-5KQ2ZQ3P.js": bigJS, "/missing": notFound}[path]
		for _, enc := range []string{"br", "gzip"} {
			r := e.do(t, "GET", host, path, "Accept-Encoding", enc)
			if len(want) < minCompressSize {
				continue
			}
			if got := r.header.Get("Content-Encoding"); got != enc {
				t.Fatalf("%s %s: Content-Encoding %q", path, enc, got)
			}
			if r.header.Get("Vary") != "Accept-Encoding" {
				t.Errorf("%s %s: Vary %q", path, enc, r.header.Get("Vary"))
			}
			if len(r.body) >= len(want) {
				t.Errorf("%s %s: %d bytes compressed, %d plain", path, enc, len(r.body), len(want))
			}
			var got []byte
			var err error
			if enc == "gzip" {
				var gr *gzip.Reader
				if gr, err = gzip.NewReader(strings.NewReader(r.body)); err == nil {
					got, err = io.ReadAll(gr)
				}
			} else {
				got, err = fasthttp.AppendUnbrotliBytes(nil, []byte(r.body))
			}
			if err != nil || string(got) != want {
				t.Errorf("%s %s: decoded %d bytes (err %v), want %d bytes", path, enc, len(got), err, len(want))
			}
		}
	}
	// Compressed once: every request above after the first of each file was a cache hit.
	if misses := counter(t, e.p.metrics.blobMisses); misses != 4 {
		t.Errorf("blob cache misses %v, want 4 (one per file)", misses)
	}
	// Not for images.
	if r := e.do(t, "GET", host, "/logo.png", "Accept-Encoding", "br, gzip"); r.header.Get("Content-Encoding") != "" || r.body != pngBytes {
		t.Errorf("png: Content-Encoding %q", r.header.Get("Content-Encoding"))
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, Config{})
	e.publish(t, "web", webSite(), nil, "production")
	web := "web." + testDomain
	for _, tc := range []struct {
		host, path string
		status     int
	}{
		{web, "/../../etc/passwd", 400},
		{web, "/assets/../index.html", 400},
		{web, "/%2e%2e/%2e%2e/etc/passwd", 400},
		{web, "/assets/%2E%2e/index.html", 400},
		{web, "/.%2e/x", 400},
		{web, "/assets/.", 400},
		{web, "/assets%2fapp.3f2a1b9c.js", 400},
		{web, "/assets%2Fapp.3f2a1b9c.js", 400},
		{web, "/a%5c..%5cb", 400},
		{web, "/a%00b", 400},
		{web, "/a%0ab", 400},
		{web, "/a%zzb", 400},
		{web, "/a%252e%252e/b", 404}, // a literal "%2e%2e" segment: harmless, just not a file
		{web, "/" + strings.Repeat("a", 3000), 414},
		{web, "*", 400},
		{"web.ferry.test:80x", "/", 400},
		{"web.ferry.test:123456", "/", 400},
		{"web_ferry.test", "/", 400},
		{"web.ferry.test/../x", "/", 400},
		{"[::1", "/", 400},
	} {
		r := e.do(t, "GET", tc.host, tc.path)
		if r.status != tc.status {
			t.Errorf("GET %.80s Host %q: status %d, want %d; body %.120q", tc.path, tc.host, r.status, tc.status, r.body)
		}
		if r.status != 404 && (strings.Contains(r.body, "custom not found") || strings.Contains(r.body, "<title>web")) {
			t.Errorf("GET %.80s Host %q: served site content", tc.path, tc.host)
		}
	}
}

func TestStorageOutage(t *testing.T) {
	e := newEnv(t, Config{AliasTTL: 50 * time.Millisecond})
	e.publish(t, "web", webSite(), nil, "production")
	e.publish(t, "other", map[string]string{"index.html": aboutHTML}, nil, "production")
	web, other := "web."+testDomain, "other."+testDomain
	for _, path := range []string{"/", "/about", "/assets/big-5KQ2ZQ3P.js"} {
		if r := e.do(t, "GET", web, path); r.status != 200 {
			t.Fatalf("warm %s: %d", path, r.status)
		}
	}

	e.st.down.Store(true)
	time.Sleep(120 * time.Millisecond) // past the alias TTL: the alias would be read again
	for _, path := range []string{"/", "/about", "/assets/big-5KQ2ZQ3P.js"} {
		if r := e.do(t, "GET", web, path); r.status != 200 {
			t.Errorf("cached %s during outage: %d %.100q", path, r.status, r.body)
		}
	}
	if r := e.do(t, "GET", web, "/style.css"); r.status != 503 || !strings.Contains(r.body, "storage cannot be reached") {
		t.Errorf("uncached file during outage: %d %.100q", r.status, r.body)
	}
	if r := e.do(t, "GET", other, "/"); r.status != 503 {
		t.Errorf("uncached site during outage: %d %.100q", r.status, r.body)
	}

	e.st.down.Store(false)
	if r := e.do(t, "GET", other, "/"); r.status != 200 || r.body != aboutHTML {
		t.Errorf("uncached site after outage: %d", r.status)
	}
	if r := e.do(t, "GET", web, "/style.css"); r.status != 200 || r.body != styleCSS {
		t.Errorf("uncached file after outage: %d", r.status)
	}
}

func TestAliasTTL(t *testing.T) {
	const ttl = 200 * time.Millisecond
	e := newEnv(t, Config{AliasTTL: ttl})
	v1 := e.publish(t, "web", map[string]string{"index.html": "v1"}, nil, "production")
	host := "web." + testDomain
	if r := e.do(t, "GET", host, "/"); r.body != "v1" {
		t.Fatalf("before promote: %q", r.body)
	}
	v2 := e.publish(t, "web", map[string]string{"index.html": "v2"}, nil)
	if err := e.store.AliasSet(context.Background(), "web", "production", v2); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	for {
		r := e.do(t, "GET", host, "/")
		if r.body == "v2" {
			break
		}
		if time.Since(promoted) > ttl+150*time.Millisecond {
			t.Fatalf("promote not visible %v after it (TTL %v): %q", time.Since(promoted), ttl, r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Rollback, and the pinned deployment id host never moves.
	if err := e.store.AliasSet(context.Background(), "web", "production", v1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(ttl + 50*time.Millisecond)
	if r := e.do(t, "GET", host, "/"); r.body != "v1" {
		t.Errorf("after rollback: %q", r.body)
	}
	if r := e.do(t, "GET", v2+"--web."+testDomain, "/"); r.body != "v2" {
		t.Errorf("pinned deployment: %q", r.body)
	}
	// A deleted alias stops serving.
	if err := e.store.AliasDelete(context.Background(), "web", "production"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(ttl + 50*time.Millisecond)
	if r := e.do(t, "GET", host, "/"); r.status != 404 {
		t.Errorf("after alias delete: %d", r.status)
	}
}

func TestCacheBound(t *testing.T) {
	const budget = 16 << 10
	e := newEnv(t, Config{CacheBytes: budget, CacheDiskBytes: 400 << 10, DiskThreshold: 8 << 10})
	files := map[string]string{}
	for i := range 40 {
		files[fmt.Sprintf("f%02d.txt", i)] = text(fmt.Sprint("small", i), 3000)
		if i < 10 {
			files[fmt.Sprintf("big%02d.txt", i)] = text(fmt.Sprint("big", i), 100_000)
		}
	}
	files["index.html"] = indexHTML
	e.publish(t, "web", files, nil, "production")
	host := "web." + testDomain
	for round := range 2 {
		for name, body := range files {
			r := e.do(t, "GET", host, "/"+name, "Accept-Encoding", "gzip")
			if r.status != 200 {
				t.Fatalf("round %d %s: %d", round, name, r.status)
			}
			if r.header.Get("Content-Encoding") == "" && r.body != body {
				t.Fatalf("round %d %s: wrong body", round, name)
			}
			mem, disk := e.p.blobs.usage()
			if mem > budget || disk > 400<<10 {
				t.Fatalf("after %s: %d bytes in memory (budget %d), %d on disk", name, mem, budget, disk)
			}
		}
	}
	if ev := counter(t, e.p.metrics.blobEvictions); ev == 0 {
		t.Error("no evictions")
	}
	ents, err := os.ReadDir(e.p.cfg.CacheDir)
	if err != nil {
		t.Fatal(err)
	}
	var onDisk int64
	for _, ent := range ents {
		info, _ := ent.Info()
		onDisk += info.Size()
	}
	if _, disk := e.p.blobs.usage(); onDisk != disk {
		t.Errorf("cache folder holds %d bytes, accounted %d", onDisk, disk)
	}
}

func TestConcurrentMissesShareOneFetch(t *testing.T) {
	e := newEnv(t, Config{})
	e.publish(t, "web", webSite(), nil, "production")
	before := e.st.calls.Load()
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			r := e.do(t, "GET", "web."+testDomain, "/assets/big-5KQ2ZQ3P.js")
			if r.status != 200 || r.body != bigJS {
				errs <- fmt.Errorf("status %d, %d bytes", r.status, len(r.body))
				return
			}
			errs <- nil
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	// alias + manifest + blob; a few more if requests raced past the first fetch's end are fine, 16× is not.
	if calls := e.st.calls.Load() - before; calls > 6 {
		t.Errorf("%d storage calls for 16 concurrent cold requests", calls)
	}
}

func TestHashedName(t *testing.T) {
	for name, want := range map[string]bool{
		"/assets/app.3f2a1b9c.js":           true,
		"/chunk-5KQ2ZQ3P.js":                true,
		"/static/js/main.3f2a1b9c.chunk.js": true,
		"/assets/index-B2xk9aQ7.css":        true,
		"/app.js":                           false,
		"/bootstrap.min.js":                 false,
		"/jquery-3.6.0.min.js":              false,
		"/Dashboard-Component.js":           false,
		"/3f2a1b9c.js":                      false,
		"/app.3f2a1b9c":                     false,
		"/favicon.ico":                      false,
		"/assets/es2015-polyfills.js":       false,
		// Framework folders (issue 20): immutable by design.
		"/_next/static/chunks/pages/_app.js":                      true,
		"/_next/static/Xk3_bUILDid/_buildManifest.js":             true,
		"/_app/immutable/entry/start.js":                          true,
		"/_app/version.json":                                      false,
		"/_nuxt/entry.js":                                         true,
		"/_nuxt/builds/latest.json":                               false,
		"/_astro/index.astro_astro_type_script.js":                true,
		"/static/js/main.abcdefab.js":                             true,
		"/static/js/787.12345678.chunk.js":                        true,
		"/static/media/logo.6ce24c58023cc2f8fd88fe9d219db6c6.svg": true,
		"/static/js/app.js":                                       false,
		"/static/css/site.css":                                    false,
		// Vite's letters-only and all-digit hashes, in its assets/ folder.
		"/assets/hero-CLDdwZDr.png":       true,
		"/assets/index-12345678.js":       true,
		"/assets/index-Ab_d-fGh.js":       true,
		"/assets/my-component.js":         false,
		"/assets/jquery-migrate.js":       false,
		"/assets/date-picker-calendar.js": false,
		"/photos/trip-20240101.jpg":       false,
		"/hero-CLDdwZDr.png":              false,
	} {
		if got := immutablePath(name); got != want {
			t.Errorf("immutablePath(%q) = %v, want %v", name, got, want)
		}
	}
	if got := string(cacheControl("/page.3f2a1b9c.html", "text/html; charset=utf-8")); got != string(ccRevalidate) {
		t.Errorf("hashed HTML: %q", got)
	}
}

func TestShutdownDrains(t *testing.T) {
	fst, err := storage.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Storage: fst, Domain: testDomain, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	dir := p.cfg.CacheDir
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, p, time.Second) }()
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary cache folder left behind: %v", err)
	}
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"/", "/a/b.html", "/../x", "/%2e%2e/x", "/a%2fb", "/a/./b", "/%2E.", "/a%00", "/%", "/a%2", "//x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		status, _ := checkPath([]byte(raw))
		if status != 0 {
			return
		}
		// Accepted: decoding must not produce a dot segment, a NUL or an encoded separator.
		var uri fasthttp.URI
		uri.SetPath(raw)
		for _, seg := range bytes.Split(uri.Path(), []byte("/")) {
			if string(seg) == ".." || bytes.IndexByte(seg, 0) >= 0 || bytes.IndexByte(seg, '\\') >= 0 {
				t.Fatalf("accepted %q, which decodes to %q", raw, uri.Path())
			}
		}
	})
}

func FuzzNormHost(f *testing.F) {
	for _, s := range []string{"web.localhost", "WEB.localhost:8081", "[::1]:80", "a..b", "x:", ":80", "web.localhost.", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		var buf [hostBufLen]byte
		out, ok := normHost(buf[:0], []byte(h))
		if !ok {
			return
		}
		for _, c := range out {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '[' || c == ']' || c == ':' || c >= 'A' && c <= 'F') {
				t.Fatalf("normHost(%q) = %q", h, out)
			}
		}
	})
}
