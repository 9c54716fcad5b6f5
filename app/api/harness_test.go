package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ferryhq/ferry/app/api"
	"github.com/ferryhq/ferry/app/auth"
	"github.com/ferryhq/ferry/app/builder"
	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/build/gitserver"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// fakeResolver answers git URLs' host names from a map, so that no test sends a DNS query; other names do
// not exist.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// publishBuilder is the builder of these tests: instead of cloning and running npm, it publishes a one-page
// site naming the commit and the env var GREETING, through the real site store, so that the real deploy
// worker moves real aliases in real storage.
type publishBuilder struct {
	site  *site.Store
	fail  atomic.Bool   // builds fail as the user's code would
	block chan struct{} // when set, builds wait for it (or their cancel)
	envs  chan map[string]string
}

func (b *publishBuilder) Build(ctx context.Context, req builder.Request) (*builder.Result, error) {
	if req.Log != nil {
		req.Log(builder.LogLine{Time: time.Now(), Level: "INFO", Step: "build", Message: "building " + req.Ref})
	}
	if b.envs != nil {
		b.envs <- req.Env
	}
	if b.block != nil {
		select {
		case <-b.block:
		case <-ctx.Done():
			return nil, ferry.Errorf(ferry.EUNAVAILABLE, "canceled")
		}
	}
	if b.fail.Load() {
		return nil, ferry.Errorf(ferry.EBUILD, "build failed: npm run build exited with 1")
	}
	dir, err := os.MkdirTemp("", "api-test-site-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	body := fmt.Sprintf("commit %s greeting %s", req.Ref, req.Env["GREETING"])
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(body), 0o644); err != nil {
		return nil, err
	}
	res, err := b.site.Publish(ctx, site.PublishParams{Project: req.Project, Dir: dir, DeploymentID: req.DeploymentID})
	if err != nil {
		return nil, err
	}
	return &builder.Result{Project: req.Project, Deployment: res.Deployment, Commit: req.Ref, Files: res.Files}, nil
}

// harness is one test's Ferry: PostgreSQL, file storage, River with the real workers, the projects service,
// auth and the API on a real HTTP server.
type harness struct {
	t       *testing.T
	ctx     context.Context
	pool    *pgxpool.Pool
	st      *store.Store
	site    *site.Store
	storage storage.Storage
	svc     *projects.Service
	auth    *auth.Auth
	srv     *httptest.Server
	builder *publishBuilder
	repo    *gitserver.Repo
	cipher  *store.EnvCipher
	river   *river.Client[pgx.Tx]
}

func (h *harness) svcRiver() *river.Client[pgx.Tx] { return h.river }

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, ctx: context.Background()}
	h.pool = pgtest.New(t)
	h.st = store.New(h.pool)
	var err error
	if h.storage, err = storage.Open(h.ctx, "file://"+t.TempDir()); err != nil {
		t.Fatal(err)
	}
	h.site = site.NewStore(h.storage)
	h.builder = &publishBuilder{site: h.site}
	if h.cipher, err = store.NewEnvCipher(bytes.Repeat([]byte{7}, 32)); err != nil {
		t.Fatal(err)
	}
	h.repo, err = gitserver.CreateRepo(t.TempDir(), "acme/site", []map[string]string{{"index.html": "one"}, {"index.html": "two"}}, "feature")
	if err != nil {
		t.Skipf("git is not installed: apt-get install git (%v)", err)
	}

	logger := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	cfg, err := jobs.ClientConfig(jobs.Deps{Store: h.st, Site: h.site, Builder: h.builder, StorageURL: "file:///unused",
		Domain: "localhost:8081", Logger: logger, EnvCipher: h.cipher, PollInterval: 50 * time.Millisecond,
		RetryBackoff: 10 * time.Millisecond, SweepInterval: time.Hour}, 2)
	if err != nil {
		t.Fatal(err)
	}
	cfg.FetchCooldown, cfg.FetchPollInterval, cfg.TestOnly = 10*time.Millisecond, 50*time.Millisecond, true
	rc, err := river.NewClient(riverpgxv5.New(h.pool), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.river = rc
	if err := rc.Start(h.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = rc.StopAndCancel(ctx)
	})

	h.svc, err = projects.New(projects.Config{Store: h.st, River: rc, Site: h.site, EnvCipher: h.cipher,
		Domain: "localhost:8081", PublicURL: "http://ferry.localhost:8080", AllowLocalRepos: true, Logger: logger,
		Resolver: fakeResolver{"github.com": {netip.MustParseAddr("140.82.112.3")}}})
	if err != nil {
		t.Fatal(err)
	}
	h.auth, err = auth.New(auth.Config{Store: h.st, PublicURL: "http://localhost:8080", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Config{Service: h.svc, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.Routes(mux)
	h.srv = httptest.NewServer(h.auth.Middleware(mux))
	t.Cleanup(h.srv.Close)
	return h
}

var userCounter atomic.Int64

// user is a signed-up user with an API token.
type user struct {
	h     *harness
	id    int64
	token string
}

func (h *harness) newUser() *user {
	h.t.Helper()
	n := userCounter.Add(1)
	u, err := h.st.UserCreate(h.ctx, store.UserCreateParams{Email: fmt.Sprintf("user%d@example.com", n), Name: "User"})
	if err != nil {
		h.t.Fatal(err)
	}
	tok, _, err := h.auth.CreateAPIToken(h.ctx, u.ID, "test")
	if err != nil {
		h.t.Fatal(err)
	}
	return &user{h: h, id: u.ID, token: tok}
}

// response is one API answer.
type response struct {
	status int
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errorCode returns the body's error code and message ("" when the body is no error).
func (r response) errorCode() (string, string) {
	var e struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code, e.Error.Message
}

// do sends a request as the user (nil: anonymous). body may be a string (sent as is) or a value (JSON).
func (h *harness) do(u *user, method, path string, body any) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(h.ctx, method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if u != nil {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{status: resp.StatusCode, body: b}
}

// must sends a request and fails the test unless the status is want.
func (h *harness) must(u *user, want int, method, path string, body any, out any) {
	h.t.Helper()
	r := h.do(u, method, path, body)
	if r.status != want {
		h.t.Fatalf("%s %s = %d, want %d: %s", method, path, r.status, want, r.body)
	}
	if out != nil {
		r.decode(h.t, out)
	}
}

// waitDeployment polls the API until the deployment's status is one of want.
func (h *harness) waitDeployment(u *user, id string, want ...store.DeploymentStatus) projects.Deployment {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var d projects.Deployment
		h.must(u, 200, "GET", "/api/v1/deployments/"+id, nil, &d)
		for _, w := range want {
			if d.Status == w {
				return d
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("deployment %s is %s (error %q), want %v", id, d.Status, d.Error, want)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// serve returns what the site store serves at an alias: the body of index.html of the deployment it points at.
func (h *harness) serve(project, alias string) string {
	h.t.Helper()
	a, err := h.site.AliasGet(h.ctx, project, alias)
	if err != nil {
		h.t.Fatalf("alias %s of %s: %v", alias, project, err)
	}
	m, err := h.site.ManifestGet(h.ctx, project, a.Deployment)
	if err != nil {
		h.t.Fatal(err)
	}
	f, ok := m.Files["/index.html"]
	if !ok {
		h.t.Fatalf("deployment %s has no /index.html: %+v", a.Deployment, m.Files)
	}
	rc, err := h.storage.Get(h.ctx, site.BlobKey(project, f.Blob))
	if err != nil {
		h.t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// count returns a count(*) query's result.
func (h *harness) count(query string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.pool.QueryRow(h.ctx, query, args...).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func TestMain(m *testing.M) { pgtest.Main(m) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(30 * time.Millisecond)
	}
}
