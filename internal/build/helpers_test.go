package build

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/build/gitserver"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/netpolicy"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// syncBuffer collects log output written from several goroutines.
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

// testEnv is a git server with fixture repos, a storage folder and a log buffer.
type testEnv struct {
	t      *testing.T
	srv    *gitserver.Server
	url    string
	st     storage.Storage
	stURL  string
	logs   *syncBuffer
	token  string
	nextID int
}

func newTestEnv(t *testing.T, token string) *testEnv {
	t.Helper()
	srv, err := gitserver.New(t.TempDir(), token)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	stURL := "file://" + t.TempDir()
	st, err := storage.Open(context.Background(), stURL)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, srv: srv, url: hs.URL, st: st, stURL: stURL, logs: &syncBuffer{}, token: token}
}

// repo creates a fixture repo with one commit holding files.
func (e *testEnv) repo(files map[string]string, branches ...string) *gitserver.Repo {
	e.t.Helper()
	e.nextID++
	r, err := e.srv.CreateRepo("acme/site"+string(rune('a'+e.nextID)), []map[string]string{files}, branches...)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// params builds a repo over HTTP at its last commit.
func (e *testEnv) params(r *gitserver.Repo) Params {
	return Params{
		Repo:    e.url + r.Path,
		Ref:     r.Commits[len(r.Commits)-1],
		Token:   e.token,
		Project: "web",
		Storage: e.st,
		Log:     slog.New(must(NewLogHandler(io.MultiWriter(e.logs, testWriter{e.t}), "text"))),
		Limits:  Limits{Timeout: 3 * time.Minute},
		// The fixture git server is on loopback; the build itself still gets public addresses only, plus the
		// npm registry's addresses where this machine reaches it at a non-public one.
		CloneAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Egress:     netpolicy.Policy{Allow: registryAllow(e.t)},
	}
}

var registryOnce struct {
	sync.Once
	allow []netip.Prefix
}

// registryAllow returns the addresses of npm's configured registry that the policy would refuse: on a machine
// that reaches the registry through an internal mirror or a test network, an operator allows exactly those
// (--egress-allow), and so do the tests. Nothing else is allowed.
func registryAllow(t *testing.T) []netip.Prefix {
	registryOnce.Do(func() {
		out, err := exec.Command("npm", "config", "get", "registry").Output()
		if err != nil {
			return
		}
		u, err := url.Parse(strings.TrimSpace(string(out)))
		if err != nil || u.Hostname() == "" {
			return
		}
		ps, err := netpolicy.HostPrefixes(context.Background(), nil, u.Hostname())
		if err != nil {
			return
		}
		for _, p := range ps {
			if netpolicy.Classify(p.Addr()) != "" {
				registryOnce.allow = append(registryOnce.allow, p)
			}
		}
	})
	return registryOnce.allow
}

// testWriter shows logs with -v, attributed to the test.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// requireBwrap skips without bubblewrap locally and fails in CI, where it must be installed.
func requireBwrap(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("bwrap is not installed; CI must apt-get install bubblewrap")
		}
		t.Skip("bwrap is not installed: apt-get install bubblewrap")
	}
}

// requireTool skips without a tool locally and fails in CI.
func requireTool(t *testing.T, tool, hint string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed: %s", tool, hint)
		}
		t.Skipf("%s is not installed: %s", tool, hint)
	}
}

// published reads one published file of a deployment through the site store.
func published(t *testing.T, st storage.Storage, project, deployment, urlPath string) (string, bool) {
	t.Helper()
	ctx := context.Background()
	m, err := site.NewStore(st).ManifestGet(ctx, project, deployment)
	if err != nil {
		t.Fatalf("read manifest: %v", err)
	}
	f, ok := m.Files[urlPath]
	if !ok {
		return "", false
	}
	rc, err := st.Get(ctx, site.BlobKey(project, f.Blob))
	if err != nil {
		t.Fatalf("read blob of %s: %v", urlPath, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

// manifestPaths lists a deployment's URL paths.
func manifestPaths(t *testing.T, st storage.Storage, project, deployment string) []string {
	t.Helper()
	m, err := site.NewStore(st).ManifestGet(context.Background(), project, deployment)
	if err != nil {
		t.Fatalf("read manifest: %v", err)
	}
	var paths []string
	for p := range m.Files {
		paths = append(paths, p)
	}
	return paths
}

// wantCode asserts err's ferry code and that its message holds every fragment.
func wantCode(t *testing.T, err error, code string, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %s error, got success", code)
	}
	if got := ferry.ErrorCode(err); got != code {
		t.Fatalf("error code = %s, want %s; error: %v", got, code, err)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
}

// leftovers lists processes whose command line contains marker: a build must leave none behind.
func leftovers(marker string) []string {
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err == nil && bytes.Contains(b, []byte(marker)) {
			found = append(found, d+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

func prefixList(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}
