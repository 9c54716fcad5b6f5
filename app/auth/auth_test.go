package auth_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/app/auth"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/app/web"
	"github.com/ferryhq/ferry/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// logBuffer collects the server's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a running Ferry front door: auth's pages, two tiny endpoints that tell who is calling, and the
// middleware around all of it, on a fresh database.
type env struct {
	t    *testing.T
	pool *pgxpool.Pool
	st   *store.Store
	auth *auth.Auth
	srv  *httptest.Server
	logs *logBuffer
}

func newEnv(t *testing.T, mod func(*auth.Config)) *env {
	t.Helper()
	pool := pgtest.New(t)
	e := &env{t: t, pool: pool, st: store.New(pool), logs: &logBuffer{}}
	var handler http.Handler
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)
	// The server listens on 127.0.0.1; the public URL says localhost, as `ferry dev` does, and cookies follow it.
	e.srv.URL = strings.Replace(e.srv.URL, "127.0.0.1", "localhost", 1)
	cfg := auth.Config{Store: e.st, PublicURL: e.srv.URL, Render: web.Render, Signup: auth.SignupOpen,
		Logger: slog.New(slog.NewTextHandler(e.logs, nil))}
	if mod != nil {
		mod(&cfg)
	}
	a, err := auth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.auth = a
	mux := http.NewServeMux()
	a.Routes(mux)
	mux.Handle("GET /static/", web.Assets())
	who := func(w http.ResponseWriter, r *http.Request) {
		if u := auth.UserFrom(r.Context()); u != nil {
			fmt.Fprintf(w, "user %d %s", u.ID, u.Email)
			return
		}
		fmt.Fprint(w, "anonymous")
	}
	mux.HandleFunc("GET /whoami", who)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := pool.Ping(r.Context()); err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("POST /api/echo", who)
	handler = a.Middleware(mux)
	return e
}

// browser is a client with its own cookie jar that does not follow redirects, so tests see each answer.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type answer struct {
	status int
	body   string
	header http.Header
	res    *http.Response
}

func (b *browser) do(req *http.Request) answer {
	b.e.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, body: string(body), header: res.Header, res: res}
}

func (b *browser) get(path string) answer {
	b.e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.e.srv.URL+path, nil)
	return b.do(req)
}

var csrfRe = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf loads page and returns the CSRF token in its forms.
func (b *browser) csrf(page string) string {
	b.e.t.Helper()
	a := b.get(page)
	m := csrfRe.FindStringSubmatch(a.body)
	if m == nil {
		b.e.t.Fatalf("no CSRF token on %s (%d): %s", page, a.status, a.body)
	}
	return m[1]
}

// post submits a form; the CSRF token is added unless vals has one (an empty one is left out).
func (b *browser) post(path string, vals url.Values, csrfFrom string) answer {
	b.e.t.Helper()
	if vals == nil {
		vals = url.Values{}
	}
	if _, ok := vals["csrf_token"]; !ok && csrfFrom != "" {
		vals.Set("csrf_token", b.csrf(csrfFrom))
	}
	if vals.Get("csrf_token") == "" {
		vals.Del("csrf_token")
	}
	req, _ := http.NewRequest(http.MethodPost, b.e.srv.URL+path, strings.NewReader(vals.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (b *browser) signup(email, password string) answer {
	b.e.t.Helper()
	return b.post("/signup", url.Values{"email": {email}, "password": {password}}, "/signup")
}

func (b *browser) login(email, password string) answer {
	b.e.t.Helper()
	return b.post("/login", url.Values{"email": {email}, "password": {password}}, "/login")
}

func (b *browser) whoami() string {
	b.e.t.Helper()
	return b.get("/whoami").body
}

func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func setCookie(a answer, name string) *http.Cookie {
	for _, c := range a.res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func wantStatus(t *testing.T, a answer, status int) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status = %d, want %d; body:\n%s", a.status, status, a.body)
	}
}

func regexpMust(expr string) *regexp.Regexp { return regexp.MustCompile(expr) }

// newEnvStore is a store on a fresh database, for tests that need no server.
func newEnvStore(t *testing.T) *store.Store { return store.New(pgtest.New(t)) }
