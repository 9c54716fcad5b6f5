// Package e2e runs Ferry's real binaries end to end (issue 8): `ferry app` and `ferry proxy` on a private
// PostgreSQL, versitygw as storage, a fixture repository over git smart-HTTP, the fake GitHub API, real
// webhook payloads, and headless Chromium for the pages. Run it with
//
//	go test ./e2e/...
//
// It needs PostgreSQL, versitygw, git, node/npm, bubblewrap and Chromium (/usr/bin/chromium); a missing tool
// skips a test locally with an install hint and fails it when CI is set.
package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/build/gitserver"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/internal/storage/s3test"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	realdata = "../../shared/realdata/github-webhooks"
	owner    = "Codertocat"
	repoName = "Hello-World"
	project  = "hello-world" // site.ProjectNameFromRepo("Hello-World")
	secret   = "e2e webhook secret"
)

// need skips (or, on CI, fails) a test whose external tool is missing.
func need(t *testing.T, tool, hint string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed: %s", tool, hint)
		}
		t.Skipf("%s is not installed: %s", tool, hint)
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// ferryBinary builds the real ferry binary once per test run.
func ferryBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ferry-e2e-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "ferry")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// world is one complete set of real parts for a test.
type world struct {
	t       *testing.T
	bin     string
	dbURL   string
	pool    *pgxpool.Pool
	s3      *s3test.Server
	storage string
	gh      *ghfake.Server
	git     *gitserver.Server
	gitURL  string
	keyFile string
	dir     string

	proxyAddr string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	need(t, "git", "apt-get install git")
	need(t, "npm", "apt-get install nodejs npm")
	need(t, "bwrap", "apt-get install bubblewrap")
	w := &world{t: t, bin: ferryBinary(t), dir: t.TempDir()}
	w.dbURL = pgtest.NewURL(t)
	pool, err := pgxpool.New(context.Background(), w.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	w.pool = pool
	w.s3 = s3test.StartVersityGW(t)
	w.storage = w.s3.URL("sites")
	w.gh = ghfake.New(t)
	w.gh.AddInstallation(1, owner+"/"+repoName)
	w.keyFile = filepath.Join(w.dir, "app-key.pem")
	if err := os.WriteFile(w.keyFile, w.gh.PrivateKeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if w.git, err = gitserver.New(filepath.Join(w.dir, "git"), ""); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(w.git)
	t.Cleanup(hs.Close)
	w.gitURL = hs.URL
	// The pull_request payloads name installation 1; record it as its installation event would have.
	if _, err := store.New(pool).InstallationUpsert(context.Background(), store.InstallationUpsertParams{
		ID: 1, AccountLogin: owner, AccountType: "User", AccountID: 21031067}); err != nil {
		t.Fatal(err)
	}
	return w
}

// freeAddr returns a loopback address nobody listens on (for servers that must come back on the same one).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a running ferry subcommand in its own process group.
type proc struct {
	cmd    *exec.Cmd
	log    *bytes.Buffer
	exited chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func (w *world) start(name string, args ...string) *proc {
	w.t.Helper()
	cmd := exec.Command(w.bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + w.dir, "TMPDIR=" + os.TempDir()}, w.s3.Env()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	logFile, err := os.CreateTemp(w.dir, name+"-*.log")
	if err != nil {
		w.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	w.t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
		if w.t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			w.t.Logf("%s log:\n%s", name, tail(string(b), 60))
		}
	})
	return p
}

// kill9 is a crash: SIGKILL to the process group, nothing gets to clean up.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// startProxy runs `ferry proxy` on versitygw.
func (w *world) startProxy() *proc {
	w.t.Helper()
	w.proxyAddr = freeAddr(w.t)
	p := w.start("proxy", "proxy", "--listen", w.proxyAddr, "--storage", w.storage, "--domain", "localhost", "--alias-ttl", "500ms")
	waitHealthy(w.t, "http://"+w.proxyAddr+"/healthz", p)
	return p
}

// startApp runs `ferry app` on addr against everything in w.
func (w *world) startApp(addr string, extra ...string) *proc {
	w.t.Helper()
	_, proxyPort, _ := net.SplitHostPort(w.proxyAddr)
	args := append([]string{"app", "--listen", addr, "--database-url", w.dbURL, "--storage", w.storage,
		"--domain", "localhost:" + proxyPort, "--public-url", "http://ferry.test",
		"--github-app-id", fmt.Sprint(w.gh.AppID), "--github-private-key-file", w.keyFile,
		"--github-api-url", w.gh.URL, "--webhook-secret", secret}, extra...)
	p := w.start("app", args...)
	waitHealthy(w.t, "http://"+addr+"/healthz", p)
	return p
}

func waitHealthy(t *testing.T, url string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited before %s answered", p.cmd.Args[1], url)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered 200: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// payload reads a real webhook delivery and lets edit change it (clone URL, SHAs, PR number).
func payload(t *testing.T, file string, edit func(m map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(realdata, file))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// prPayload is a pull_request delivery for PR n of the fixture repository at head.
func (w *world) prPayload(file string, repo *gitserver.Repo, n int, head, before string) []byte {
	return payload(w.t, file, func(m map[string]any) {
		clone := w.gitURL + repo.Path
		m["number"] = n
		m["repository"].(map[string]any)["clone_url"] = clone
		pr := m["pull_request"].(map[string]any)
		pr["number"] = n
		pr["head"].(map[string]any)["sha"] = head
		pr["head"].(map[string]any)["ref"] = fmt.Sprintf("change-%d", n)
		pr["head"].(map[string]any)["repo"].(map[string]any)["clone_url"] = clone
		pr["base"].(map[string]any)["repo"].(map[string]any)["clone_url"] = clone
		if before != "" {
			m["before"], m["after"] = before, head
		}
	})
}

// deliver posts a signed delivery as GitHub does and returns the status code.
func deliver(t *testing.T, appAddr, event, id string, body []byte) int {
	t.Helper()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+appAddr+"/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/e2e")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("deliver %s: %v", event, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// deployment is the part of a deployments row the tests look at.
type deployment struct {
	ID, Status, Error, Alias, URL, AliasURL string
	PR, Attempt                             int
}

func (w *world) deployments() []deployment {
	w.t.Helper()
	rows, err := w.pool.Query(context.Background(), `
		SELECT id, status, error, alias, url, alias_url, coalesce(pr_number, 0), attempt FROM deployments ORDER BY created_at, id`)
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	var out []deployment
	for rows.Next() {
		var d deployment
		if err := rows.Scan(&d.ID, &d.Status, &d.Error, &d.Alias, &d.URL, &d.AliasURL, &d.PR, &d.Attempt); err != nil {
			w.t.Fatal(err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		w.t.Fatal(err)
	}
	return out
}

// waitDeployments polls until ok holds for the deployments, or fails after timeout.
func (w *world) waitDeployments(timeout time.Duration, what string, ok func([]deployment) bool) []deployment {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ds := w.deployments()
		if ok(ds) {
			return ds
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: not after %s; deployments: %+v", what, timeout, ds)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// noRedirects shows redirects as they are answered.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// get fetches path from the proxy as host (Go's resolver does not map *.localhost to loopback: dial the
// proxy and set Host).
func (w *world) get(host, path string) (int, string) {
	w.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+w.proxyAddr+path, nil)
	req.Host = host
	resp, err := noRedirects.Do(req)
	if err != nil {
		w.t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// siteFixture is examples/spa under src/, with a dependency-free npm build that copies it to dist/ (after
// delay seconds), and replace applied to its files' names and contents. A changed asset needs a new name, as a
// bundler would give it: the proxy serves hashed names as immutable, so browsers keep the old one.
func siteFixture(t *testing.T, delay int, replace ...string) map[string]string {
	t.Helper()
	files := map[string]string{
		"package.json":      `{"name":"e2e-site","version":"1.0.0","private":true,"scripts":{"build":"node build.js"}}`,
		"package-lock.json": `{"name":"e2e-site","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"e2e-site","version":"1.0.0"}}}`,
		"build.js": fmt.Sprintf(`const fs = require("fs");
setTimeout(() => { fs.cpSync("src", "dist", {recursive: true}); }, %d);
`, delay*1000),
	}
	r := strings.NewReplacer(replace...)
	root := "../examples/spa"
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files[r.Replace("src/"+filepath.ToSlash(rel))] = r.Replace(string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
