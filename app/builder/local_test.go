package builder_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/builder"
	"github.com/ferryhq/ferry/internal/build"
	"github.com/ferryhq/ferry/internal/build/buildtest"
	"github.com/ferryhq/ferry/internal/build/gitserver"
	"github.com/ferryhq/ferry/internal/buildcontract"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// The test binary doubles as the ferry binary (buildtest.Command); the child first records what it was started
// with when BUILDER_TEST_DUMP names a file.
func TestMain(m *testing.M) {
	dumpInvocation(os.Args[1:])
	crashingApp()
	buildtest.Main(m, nil)
}

// dumpInvocation writes the arguments and environment of a build runner started with BUILDER_TEST_DUMP, which
// only newLocal's extra environment sets, and the mode of its token file.
func dumpInvocation(args []string) {
	if dump := os.Getenv("BUILDER_TEST_DUMP"); dump != "" {
		rec := map[string]any{"args": args, "env": os.Environ()}
		for i, a := range args {
			if (a == "--token-file" || a == "--env-file") && i+1 < len(args) {
				target, _ := os.Readlink(args[i+1])
				rec[strings.TrimPrefix(a, "--")] = target
			}
		}
		b, _ := json.Marshal(rec)
		_ = os.WriteFile(dump, b, 0o644)
	}
}

type env struct {
	git      *gitserver.Server
	gitURL   string
	storeURL string
	st       storage.Storage
	token    string
	fail     *failingGit
}

// failingGit answers 503 while down is true, the way GitHub does in an outage.
type failingGit struct {
	mu   sync.Mutex
	down bool
	h    http.Handler
}

func (f *failingGit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	f.h.ServeHTTP(w, r)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	const token = "ghs_testtoken123456"
	srv, err := gitserver.New(t.TempDir(), token)
	if err != nil {
		t.Skipf("git is not installed: apt-get install git (%v)", err)
	}
	fg := &failingGit{h: srv}
	hs := httptest.NewServer(fg)
	t.Cleanup(hs.Close)
	dir := t.TempDir()
	st, err := storage.Open(context.Background(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	return &env{git: srv, gitURL: hs.URL, storeURL: "file://" + dir, st: st, token: token, fail: fg}
}

func (e *env) repo(t *testing.T, name string, files map[string]string) *gitserver.Repo {
	t.Helper()
	r, err := e.git.CreateRepo(name, []map[string]string{files})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newLocal(t *testing.T, extraEnv ...string) *builder.Local {
	t.Helper()
	l, err := builder.NewLocal(builder.LocalConfig{
		Command:   buildtest.Command(),
		Env:       extraEnv,
		Timeout:   2 * time.Minute,
		KillGrace: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type lines struct {
	mu sync.Mutex
	l  []builder.LogLine
}

func (l *lines) add(x builder.LogLine) { l.mu.Lock(); l.l = append(l.l, x); l.mu.Unlock() }
func (l *lines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, x := range l.l {
		fmt.Fprintf(&b, "%s %s %s\n", x.Level, x.Step, x.Message)
	}
	return b.String()
}

func TestLocalBuildPublishes(t *testing.T) { // not parallel: it sets env vars
	e := newEnv(t)
	r := e.repo(t, "acme/static", map[string]string{"index.html": "<h1>hello</h1>"})
	dump := filepath.Join(t.TempDir(), "dump.json")
	// Secrets of the server that must not reach the build runner.
	t.Setenv("FERRY_WEBHOOK_SECRET", "webhook-secret-xyz")
	t.Setenv("FERRY_DATABASE_URL", "postgres://secret@db/ferry")
	l := newLocal(t, "BUILDER_TEST_DUMP="+dump)
	var log lines
	id := site.NewDeploymentID()
	res, err := l.Build(context.Background(), builder.Request{
		DeploymentID: id, Project: "web", CloneURL: e.gitURL + r.Path, Ref: r.Commits[0], Token: e.token,
		Env: map[string]string{"API_KEY": "sekret-value-1"}, Domain: "example.test", Storage: e.storeURL,
		CacheScope: buildcontract.CacheScopeProduction, Log: log.add,
	})
	if err != nil {
		t.Fatalf("build: %v\nlog:\n%s", err, log.text())
	}
	if res.Deployment != id || res.Project != "web" || res.Commit != r.Commits[0] || res.Files != 1 {
		t.Errorf("result = %+v", res)
	}
	if _, err := site.NewStore(e.st).ManifestGet(context.Background(), "web", id); err != nil {
		t.Errorf("manifest not published: %v", err)
	}
	text := log.text()
	for _, want := range []string{"INFO clone ", "INFO publish publishing"} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, e.token) {
		t.Errorf("log shows the token:\n%s", text)
	}

	var rec struct {
		Args      []string `json:"args"`
		Env       []string `json:"env"`
		TokenFile string   `json:"token-file"`
		EnvFile   string   `json:"env-file"`
	}
	b, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rec.Args, " ") + " " + strings.Join(rec.Env, " ")
	for _, secret := range []string{e.token, "sekret-value-1", "webhook-secret-xyz", "postgres://secret"} {
		if strings.Contains(all, secret) {
			t.Errorf("the build runner's argv or env holds %q:\nargs %q\nenv %q", secret, rec.Args, rec.Env)
		}
	}
	for _, kv := range rec.Env {
		if strings.HasPrefix(kv, "FERRY_") && kv != buildtest.Env {
			t.Errorf("the build runner inherited %s", kv)
		}
	}
	// The secrets reach the runner as memory files, never as files on a disk.
	if !strings.HasPrefix(rec.TokenFile, "/memfd:") || !strings.HasPrefix(rec.EnvFile, "/memfd:") {
		t.Errorf("token file %q, env file %q: want memory files (/memfd:...)", rec.TokenFile, rec.EnvFile)
	}
	if !strings.Contains(strings.Join(rec.Args, " "), "--cache-scope production") {
		t.Errorf("no --cache-scope production in %q", rec.Args)
	}
	if !strings.Contains(strings.Join(rec.Args, " "), "--env-file") {
		t.Errorf("no --env-file in %q", rec.Args)
	}
}

func TestLocalBuildUserFailureIsFinal(t *testing.T) {
	t.Parallel()
	buildtest.RequireBwrap(t)
	e := newEnv(t)
	r := e.repo(t, "acme/broken", map[string]string{
		// A Vite-like failure: the error, then a code frame and more stack lines than the runner's old
		// five-line tail, ending in a coloured closing brace (issue 18: the red box showed "}\x1b[39m").
		"ferry.json": `{"buildCommand": "sh fail.sh"}`,
		"fail.sh": "echo the build broke >&2\nprintf '\\033[31m[builtin:vite-transform] Error:\\033[0m Unexpected token\\n' >&2\n" +
			"echo '   ╭─[ src/App.jsx:123:28 ]' >&2\nfor i in 1 2 3 4 5 6 7 8; do echo \"    at frame$i (x.js:$i:1)\" >&2; done\n" +
			"printf '}\\033[39m\\n' >&2\nexit 3\n",
		"index.html": "x",
	})
	var log lines
	_, err := newLocal(t).Build(context.Background(), builder.Request{
		DeploymentID: site.NewDeploymentID(), Project: "web", CloneURL: e.gitURL + r.Path, Ref: r.Commits[0],
		Token: e.token, Storage: e.storeURL, Log: log.add,
	})
	if ferry.ErrorCode(err) != ferry.EBUILD {
		t.Fatalf("err = %v (code %q), want EBUILD\nlog:\n%s", err, ferry.ErrorCode(err), log.text())
	}
	if !strings.Contains(err.Error(), "exit") || strings.Contains(err.Error(), "ferry build:") {
		t.Errorf("error %q should be the runner's message without its prefix", err)
	}
	if !strings.Contains(log.text(), "the build broke") {
		t.Errorf("log lacks the command's output:\n%s", log.text())
	}
	msg := ferry.ErrorMessage(err)
	if !strings.Contains(msg, "[builtin:vite-transform] Error: Unexpected token") || !strings.Contains(msg, "src/App.jsx:123:28") ||
		strings.Contains(msg, "\x1b") || strings.Contains(msg, "frame8") {
		t.Errorf("error %q should name the error line and its location, without colours or stack frames", msg)
	}
	if n := strings.Count(log.text(), "Unexpected token"); n != 1 {
		t.Errorf("the error line is in the log %d times, want once:\n%s", n, log.text())
	}
}

func TestLocalBuildInfrastructureFailureIsRetryable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.repo(t, "acme/down", map[string]string{"index.html": "x"})
	e.fail.down = true
	_, err := newLocal(t).Build(context.Background(), builder.Request{
		DeploymentID: site.NewDeploymentID(), Project: "web", CloneURL: e.gitURL + r.Path, Ref: r.Commits[0],
		Token: e.token, Storage: e.storeURL,
	})
	if err == nil || !ferry.IsRetryable(err) {
		t.Fatalf("err = %v (code %q), want a retryable error", err, ferry.ErrorCode(err))
	}
	if !strings.Contains(err.Error(), "503") && !strings.Contains(err.Error(), "fetch") {
		t.Errorf("error %q does not say what failed", err)
	}
}

func TestLocalBuildMissingBinaryIsRetryable(t *testing.T) {
	t.Parallel()
	l, err := builder.NewLocal(builder.LocalConfig{Command: []string{filepath.Join(t.TempDir(), "no-ferry"), "build"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Build(context.Background(), builder.Request{Project: "web", CloneURL: "file:///nowhere", Storage: "file:///tmp/x"})
	if !ferry.IsRetryable(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
}

func TestLocalBuildCancelKillsEverything(t *testing.T) {
	t.Parallel()
	buildtest.RequireBwrap(t)
	e := newEnv(t)
	marker := fmt.Sprintf("ferry-cancel-marker-%d", time.Now().UnixNano())
	r := e.repo(t, "acme/slow", map[string]string{
		"ferry.json": `{"buildCommand": "sleep 120 # ` + marker + `"}`,
		"index.html": "x",
	})
	ctx, cancel := context.WithCancelCause(context.Background())
	started := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		_, err := newLocal(t).Build(ctx, builder.Request{
			DeploymentID: site.NewDeploymentID(), Project: "web", CloneURL: e.gitURL + r.Path, Ref: r.Commits[0],
			Token: e.token, Storage: e.storeURL,
			Log: func(l builder.LogLine) {
				if l.Step == build.StepBuild && strings.HasPrefix(l.Message, "$ ") {
					once.Do(func() { close(started) })
				}
			},
		})
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("build ended before it started its command: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the build command never started")
	}
	time.Sleep(300 * time.Millisecond) // let the sandboxed sleep start
	errSuperseded := errors.New("superseded")
	t0 := time.Now()
	cancel(errSuperseded)
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Build did not return after its context was canceled")
	}
	if !errors.Is(err, errSuperseded) {
		t.Errorf("err = %v, want it to wrap the cancel cause", err)
	}
	if d := time.Since(t0); d > 4*time.Second {
		t.Errorf("cancel took %s", d)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := leftovers(marker)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left behind: %q", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leftovers lists processes whose command line contains marker.
func leftovers(marker string) []string {
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err == nil && strings.Contains(string(b), marker) {
			found = append(found, d+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// TestLocalBuildOverrides runs a real build whose ferry.json would fail: the overrides move it to another
// folder, skip the install, replace the build command and name the output folder, and the result is what the
// overriding command made.
func TestLocalBuildOverrides(t *testing.T) {
	t.Parallel()
	buildtest.RequireBwrap(t)
	e := newEnv(t)
	r := e.repo(t, "acme/overrides", map[string]string{
		"ferry.json":      `{"installCommand": "exit 7", "buildCommand": "exit 8", "outputDirectory": "nowhere"}`,
		"site/ferry.json": `{"installCommand": "exit 7", "buildCommand": "exit 8", "outputDirectory": "nowhere"}`,
		"site/page.txt":   "overridden",
	})
	str := func(s string) *string { return &s }
	var log lines
	id := site.NewDeploymentID()
	res, err := newLocal(t).Build(context.Background(), builder.Request{
		DeploymentID: id, Project: "over", CloneURL: e.gitURL + r.Path, Ref: r.Commits[0], Token: e.token,
		Storage: e.storeURL, Log: log.add,
		Overrides: builder.Overrides{RootDirectory: str("site"), InstallCommand: str(""),
			BuildCommand: str("mkdir -p out && cp page.txt out/index.html"), OutputDirectory: str("out")},
	})
	if err != nil {
		t.Fatalf("build: %v\nlog:\n%s", err, log.text())
	}
	m, err := site.NewStore(e.st).ManifestGet(context.Background(), "over", id)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := m.Files["/index.html"]
	if !ok || res.Files != 1 {
		t.Fatalf("published files %v (result %+v)\nlog:\n%s", m.Files, res, log.text())
	}
	rc, err := e.st.Get(context.Background(), site.BlobKey("over", f.Blob))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "overridden" {
		t.Fatalf("index.html = %q", b)
	}
}

func TestOverridesArgs(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	for _, c := range []struct {
		o    builder.Overrides
		want []string
	}{
		{builder.Overrides{}, nil},
		// Empty commands skip their step; empty folders keep ferry.json's.
		{builder.Overrides{RootDirectory: str(""), InstallCommand: str(""), BuildCommand: str(""), OutputDirectory: str("")},
			[]string{"--install-command=", "--build-command="}},
		{builder.Overrides{RootDirectory: str("web"), InstallCommand: str("npm ci"), BuildCommand: str("-x && make"), OutputDirectory: str("dist")},
			[]string{"--root-directory=web", "--install-command=npm ci", "--build-command=-x && make", "--output-directory=dist"}},
	} {
		if got := c.o.Args(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Args() = %q, want %q", got, c.want)
		}
	}
}
