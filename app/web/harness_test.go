package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/app"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/build/buildtest"
	"github.com/ferryhq/ferry/internal/build/gitserver"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/internal/storage"
	"github.com/ferryhq/ferry/proxy"
)

// The test binary doubles as the ferry binary for the local builder (buildtest.Command).
func TestMain(m *testing.M) { buildtest.Main(m, pgtest.Main) }

// stack is the whole of Ferry in this process: `ferry app` (app.Run, with the real local builder), the proxy
// serving what it publishes, a git server with fixture repositories, PostgreSQL and file storage.
type stack struct {
	t         *testing.T
	ctx       context.Context
	appURL    string
	proxyPort string
	pool      *pgxpool.Pool
	st        *store.Store
	git       *gitserver.Server
	gitURL    string
	storage   storage.Storage
}

func requireTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"bwrap", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed; CI must install it (apt-get install bubblewrap git)", tool)
			}
			t.Skipf("%s is not installed: apt-get install bubblewrap git", tool)
		}
	}
}

func newStack(t *testing.T) *stack { t.Helper(); return newStackWith(t, nil) }

// newStackWith is newStack with a hook that changes the proxy's and the app's configuration before they start.
func newStackWith(t *testing.T, mod func(appURL string, pc *proxy.Config, ac *app.Config)) *stack {
	t.Helper()
	requireTools(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := &stack{t: t, ctx: ctx}
	dbURL := pgtest.NewURL(t)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s.pool, s.st = pool, store.New(pool)

	if s.git, err = gitserver.New(t.TempDir(), ""); err != nil {
		t.Fatal(err)
	}
	gs := httptest.NewServer(s.git)
	t.Cleanup(gs.Close)
	s.gitURL = gs.URL

	storageURL := "file://" + t.TempDir()
	blobs, err := storage.Open(ctx, storageURL)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, s.proxyPort, _ = net.SplitHostPort(proxyLn.Addr().String())
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.appURL = "http://" + appLn.Addr().String()
	s.storage = blobs
	ready := make(chan struct{})
	pc := proxy.Config{Storage: blobs, Domain: "localhost", Log: logger, AliasTTL: time.Millisecond}
	ac := app.Config{
		Listener: appLn, DatabaseURL: dbURL, Storage: storageURL, Domain: "localhost:" + s.proxyPort,
		PublicURL: s.appURL, WebhookSecret: "test-secret", ShutdownTimeout: 5 * time.Second, Signup: "open",
		BuildCommand: buildtest.Command(),
		// The fixture git server is on loopback over http, as under ferry dev.
		GitAllowLoopback: true, GitAllowHTTP: true,
		Ready: func(string) { close(ready) },
	}
	if mod != nil {
		mod(s.appURL, &pc, &ac)
	}
	px, err := proxy.New(pc)
	if err != nil {
		t.Fatal(err)
	}

	proxyDone, appDone := make(chan error, 1), make(chan error, 1)
	go func() { proxyDone <- proxy.Serve(ctx, proxyLn, px, time.Second) }()
	go func() { appDone <- app.Run(ctx, ac, logger) }()
	t.Cleanup(func() {
		cancel()
		if err := <-appDone; err != nil {
			t.Errorf("app.Run: %v", err)
		}
		<-proxyDone
		px.Close()
	})
	select {
	case <-ready:
	case err := <-appDone:
		t.Fatalf("app.Run: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the app did not start within 60s")
	}
	return s
}

var repoCount atomic.Int64

// repo makes a fixture repository with one static page and returns its clone URL.
func (s *stack) repo(body string) string {
	s.t.Helper()
	name := fmt.Sprintf("acme/site%d", repoCount.Add(1))
	r, err := s.git.CreateRepo(name, []map[string]string{{"index.html": body}})
	if err != nil {
		s.t.Fatal(err)
	}
	return s.gitURL + r.Path
}

// client is one browser's cookies, talking to the app without following redirects.
type client struct {
	s    *stack
	http *http.Client
}

var userCount atomic.Int64

// signup makes a new user and returns a client signed in as them.
func (s *stack) signup() *client {
	s.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &client{s: s, http: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	email := fmt.Sprintf("user%d@example.com", userCount.Add(1))
	resp := c.post("/signup", url.Values{"email": {email}, "password": {"correct horse battery"}})
	if resp.StatusCode != http.StatusSeeOther {
		s.t.Fatalf("sign up: %d", resp.StatusCode)
	}
	return c
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf reads the form token from a page, as a browser's form would carry it.
func (c *client) csrf() string {
	c.s.t.Helper()
	_, body := c.get("/signup")
	if strings.Contains(body, "Log out") { // signed in: the session's token is on every page
		_, body = c.get("/projects/new")
	}
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		c.s.t.Fatal("no CSRF token on the page")
	}
	return m[1]
}

func (c *client) get(path string) (*http.Response, string) {
	c.s.t.Helper()
	resp, err := c.http.Get(c.s.appURL + path)
	if err != nil {
		c.s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// post sends a form with the page's CSRF token.
func (c *client) post(path string, form url.Values) *http.Response {
	c.s.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf_token") == "" {
		form.Set("csrf_token", c.csrf())
	}
	resp, err := c.http.PostForm(c.s.appURL+path, form)
	if err != nil {
		c.s.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Header.Set("X-Test-Body", strings.Join(strings.Fields(string(b)), " "))
	return resp
}

// waitStatus polls the database until the deployment reaches want.
func (s *stack) waitStatus(id string, want store.DeploymentStatus) *store.Deployment {
	s.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		d, err := s.st.DeploymentGetByID(s.ctx, id)
		if err != nil {
			s.t.Fatal(err)
		}
		if d.Status == want {
			return d
		}
		if d.Status.Finished() || time.Now().After(deadline) {
			lines, _ := s.st.DeploymentLogList(s.ctx, store.DeploymentLogListParams{DeploymentID: id})
			s.t.Fatalf("deployment %s is %s (%s), want %s; log: %+v", id, d.Status, d.Error, want, lines)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// latest returns the project's newest deployment.
func (s *stack) latest(project string) *store.Deployment {
	s.t.Helper()
	p, err := s.st.ProjectGetByName(s.ctx, project)
	if err != nil {
		s.t.Fatal(err)
	}
	res, err := s.st.DeploymentListByProject(s.ctx, store.DeploymentListByProjectParams{ProjectID: p.ID, Limit: 1})
	if err != nil || len(res.Deployments) == 0 {
		s.t.Fatalf("project %s has no deployment (%v)", project, err)
	}
	return res.Deployments[0]
}

// testWriter shows logs with -v.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
