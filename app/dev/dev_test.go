package dev

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/build/gitserver"
	"github.com/ferryhq/ferry/internal/pgcluster"
)

func TestFlags(t *testing.T) {
	t.Parallel()
	var usage bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, &usage, func(string) string { return "" }); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"-dir", `(default ".ferry")`, "-listen", `(default "127.0.0.1:8080")`, "-proxy-listen", `(default "127.0.0.1:8081")`,
		"WARNING", "-local-repos", `(default ".")`, "-signup", `(default "closed")`,
		"-domain", `(default "localhost")`, "-database-url", "-storage", "-public-url", "-webhook-secret", "-github-app-id",
		"-github-private-key-file", "-github-api-url", "-concurrency", "(default 2)", "FERRY_<FLAG_NAME>"} {
		if !strings.Contains(usage.String(), want) {
			t.Errorf("-h lacks %q", want)
		}
	}
	cfg, err := parseFlags([]string{"--proxy-listen", ":9091"}, io.Discard, func(k string) string {
		return map[string]string{"FERRY_DIR": "/srv/ferry", "FERRY_WEBHOOK_SECRET": "s"}[k]
	})
	if err != nil || cfg.Dir != "/srv/ferry" || cfg.ProxyListen != ":9091" || cfg.WebhookSecret != "s" || cfg.Listen != "127.0.0.1:8080" || cfg.Signup != "closed" || cfg.LocalRepos != "." {
		t.Fatalf("config %+v, err %v", cfg, err)
	}
	// Run's own defaults (a Config filled in by code, not flags) are loopback too.
	if d := (Config{}).withDefaults(); d.Listen != "127.0.0.1:8080" || d.ProxyListen != "127.0.0.1:8081" || d.LocalRepos != "." {
		t.Fatalf("Run's defaults %+v: want loopback listeners and the working directory", d)
	}
	for _, args := range [][]string{{"serve"}, {"--concurrency", "0"}, {"--github-private-key-file", "/nonexistent/key.pem"}} {
		if _, err := parseFlags(args, io.Discard, func(string) string { return "" }); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// TestDev runs the real binary twice in a fresh folder: both listeners answer, Ctrl-C (SIGINT) stops
// everything with exit 0 and leaves no PostgreSQL behind, and what the first run stored is there in the second.
func TestDev(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs the real `ferry dev` twice with its own PostgreSQL and a build; run without -short")
	}
	if _, err := pgcluster.FindBinDir(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	bin := buildFerry(t)
	work := t.TempDir()
	// As root the cluster runs as "nobody", which must be able to enter the folders above it.
	for d := work; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(work, ".ferry")

	run := func(first bool) {
		d := startDev(t, bin, work)
		secret, err := os.ReadFile(filepath.Join(dir, "webhook-secret"))
		if err != nil {
			t.Fatalf("no generated webhook secret: %v", err)
		}
		for _, u := range []string{d.app + "/healthz", d.proxy + "/healthz"} {
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d", u, resp.StatusCode)
			}
		}
		// A signed ping is recorded on the first run; its redelivery on the second run finds it (200, not 202),
		// which shows that the database, and the webhook secret, survived the restart.
		want := http.StatusAccepted
		if !first {
			want = http.StatusOK
		}
		if got := ping(t, d.app, strings.TrimSpace(string(secret))); got != want {
			t.Fatalf("ping delivery (first run %v): status %d, want %d", first, got, want)
		}
		// The banner's one-time link signs in as the first user; on the first run that user deploys a local
		// repository with an env var through the real ferry deploy, and the second run still serves it.
		c := signIn(t, d)
		if first {
			dashboardCookies(t, d, c)
			refuseOutside(t, d, c)
			deployLocal(t, bin, d, c, work)
		}
		if got := siteBody(t, d, "http://dev-site.localhost"); !strings.Contains(got, "hello from ferry-dev") {
			t.Fatalf("site after restart (first run %v): %q", first, got)
		}
		postmasterPID := readPostmasterPID(t, dir)
		if err := syscall.Kill(postmasterPID, 0); err != nil {
			t.Fatalf("postgres %d not running while ferry dev runs: %v", postmasterPID, err)
		}
		d.stop(t)
		if err := syscall.Kill(postmasterPID, 0); err == nil {
			t.Fatalf("postgres %d still runs after ferry dev stopped", postmasterPID)
		}
		if _, err := os.Stat(filepath.Join(dir, "postgres", "data", "postmaster.pid")); err == nil {
			t.Fatal("postmaster.pid left behind: PostgreSQL did not shut down cleanly")
		}
		if !strings.Contains(d.output(), "Stopping Ferry") {
			t.Errorf("no stop message in:\n%s", d.output())
		}
	}
	run(true)
	run(false)
}

func buildFerry(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ferry")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type devProcess struct {
	cmd    *exec.Cmd
	app    string // the API's address, http://localhost:PORT
	dash   string // the dashboard, http://app.localhost:PORT
	proxy  string
	mu     sync.Mutex
	out    bytes.Buffer
	exited chan error
}

func (d *devProcess) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

var (
	appLine   = regexp.MustCompile(`API:\s+(http://\S+)`)
	dashLine  = regexp.MustCompile(`Dashboard:\s+(http://\S+)`)
	linkLine  = regexp.MustCompile(`(?m)^\s+(http://\S+/auth/link\?token=\S+)$`)
	healthURL = regexp.MustCompile(`Proxy health:\s+(http://\S+)/healthz`)
)

// startDev runs `ferry dev` on free loopback ports and waits for its banner.
func startDev(t *testing.T, bin, work string) *devProcess {
	t.Helper()
	cmd := exec.Command(bin, "dev", "--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0")
	cmd.Dir = work
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &devProcess{cmd: cmd, exited: make(chan error, 1)}
	bannerDone := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if !signalled && strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				signalled = true
				close(bannerDone)
			}
		}
		d.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case <-bannerDone:
	case err := <-d.exited:
		t.Fatalf("ferry dev exited early (%v):\n%s\n%s", err, d.output(), stderr.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("ferry dev printed no banner in 90s:\n%s\n%s", d.output(), stderr.String())
	}
	out := d.output()
	m1, m2, m3 := appLine.FindStringSubmatch(out), healthURL.FindStringSubmatch(out), dashLine.FindStringSubmatch(out)
	if m1 == nil || m2 == nil || m3 == nil {
		t.Fatalf("banner lacks the URLs:\n%s", out)
	}
	d.app, d.proxy, d.dash = m1[1], m2[1], m3[1]
	if !strings.HasPrefix(d.dash, "http://app.localhost:") || strings.Contains(out, "WARNING") {
		t.Errorf("dashboard at %s, want http://app.localhost:PORT, and no exposure warning on loopback:\n%s", d.dash, out)
	}
	// No GitHub App: the banner links the dashboard page that creates one.
	for _, want := range []string{".localhost:", "webhook-secret", "/webhooks/github", "secret.key", "/account/tokens", d.dash + "/settings/github-app\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	return d
}

// stop sends Ctrl-C and expects a clean exit.
func (d *devProcess) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		if err != nil {
			t.Fatalf("ferry dev exited with %v after SIGINT:\n%s", err, d.output())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("ferry dev still runs 60s after SIGINT")
	}
}

func ping(t *testing.T, app, secret string) int {
	t.Helper()
	body := []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`)
	req, _ := http.NewRequest(http.MethodPost, app+"/webhooks/github", bytes.NewReader(body))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "ping")
	req.Header.Set("X-GitHub-Delivery", "dev-test-ping-1")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func readPostmasterPID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "postgres", "data", "postmaster.pid"))
	if err != nil {
		t.Fatalf("no postmaster.pid while ferry dev runs: %v", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// signIn follows the banner's one-time link with a fresh cookie jar and expects to land, signed in, on the
// projects page. The link works once only.
func signIn(t *testing.T, d *devProcess) *http.Client {
	t.Helper()
	m := linkLine.FindStringSubmatch(d.output())
	if m == nil {
		t.Fatalf("banner has no sign-in link:\n%s", d.output())
	}
	c := localhostClient()
	body, status, final := get(t, c, m[1])
	if status != http.StatusOK || final != d.dash+"/projects" || !strings.Contains(body, "<h1>Projects</h1>") || !strings.Contains(body, "dev@localhost") {
		t.Fatalf("sign-in link: %d at %s:\n%s", status, final, body)
	}
	// Used once: a second visit does not sign a fresh browser in.
	if body, _, final := get(t, localhostClient(), m[1]); strings.Contains(body, "dev@localhost") {
		t.Fatalf("the sign-in link worked twice (at %s)", final)
	}
	return c
}

func get(t *testing.T, c *http.Client, u string) (body string, status int, final string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), resp.StatusCode, resp.Request.URL.String()
}

var (
	csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	newToken  = regexp.MustCompile(`<code class="token" id="new-token">([^<]+)</code>`)
)

// deployLocal creates an API token on the tokens page, makes a project of a local repository whose build
// prints an env var, saves that env var through the API (encrypted with ferry dev's key), and runs the real
// `ferry deploy` on the repository's path: it streams the log and prints the URL that the proxy serves.
func deployLocal(t *testing.T, bin string, d *devProcess, c *http.Client, work string) {
	t.Helper()
	page, _, _ := get(t, c, d.dash+"/account/tokens")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("tokens page has no CSRF field:\n%s", page)
	}
	resp, err := c.PostForm(d.dash+"/account/tokens", url.Values{"csrf_token": {m[1]}, "name": {"dev test"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tm := newToken.FindStringSubmatch(string(b))
	if resp.StatusCode != http.StatusCreated || tm == nil {
		t.Fatalf("create token: %d\n%s", resp.StatusCode, b)
	}
	token := html.UnescapeString(tm[1])

	repo, err := gitserver.CreateRepo(filepath.Join(work, "repos"), "dev-site", []map[string]string{{
		"ferry.json": `{"installCommand": "", "buildCommand": "sh build.sh", "outputDirectory": "dist"}`,
		"build.sh":   "mkdir -p dist\necho \"<p>hello from $GREETING</p>\" > dist/index.html\n",
	}})
	if err != nil {
		t.Fatal(err)
	}
	api := func(method, path, body string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, d.app+"/api/v1"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
		}
	}
	api("POST", "/projects", `{"gitUrl": "`+repo.Bare+`", "name": "dev-site"}`, http.StatusCreated)
	api("PUT", "/projects/dev-site/env/production/GREETING", `{"value": "ferry-dev"}`, http.StatusOK)

	start := time.Now()
	cmd := exec.Command(bin, "deploy", "--server", d.app, "--poll", "200ms", "--timeout", "3m", repo.Bare)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work, "FERRY_TOKEN=" + token}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ferry deploy: %v\n%s\n%s\nferry dev:\n%s", err, stdout.String(), stderr.String(), d.output())
	}
	t.Logf("ferry deploy of a local repository under ferry dev took %s", time.Since(start).Round(time.Millisecond))
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(d.proxy, "http://"))
	if got, want := strings.TrimSpace(stdout.String()), "http://dev-site.localhost:"+port; got != want {
		t.Fatalf("ferry deploy printed %q, want %q\n%s", got, want, stderr.String())
	}
	if !strings.Contains(stderr.String(), "ready: ") || !strings.Contains(stderr.String(), "sh build.sh") {
		t.Fatalf("ferry deploy did not stream the build log:\n%s", stderr.String())
	}
}

// siteBody asks the proxy for site's root page by host name, whatever that host resolves to here.
func siteBody(t *testing.T, d *devProcess, site string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, d.proxy+"/", nil)
	req.Host = strings.TrimPrefix(site, "http://")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s", site, resp.StatusCode, b)
	}
	return string(b)
}

// localhostClient is a browser-like client with its own cookies that resolves *.localhost to loopback, as
// browsers do (Go's resolver asks DNS for them).
func localhostClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err == nil && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}}
}

// dashboardCookies checks what a signed-in browser holds (issue 11 item 10): every dashboard cookie is
// host-only on app.localhost (no Domain attribute), so the browser sends none of them to a site at
// <project>.localhost or to plain localhost on any port, where a build could listen; and a browser that opens
// the dashboard as http://localhost:PORT is sent to app.localhost before any cookie is set.
func dashboardCookies(t *testing.T, d *devProcess, c *http.Client) {
	t.Helper()
	dash, _ := url.Parse(d.dash)
	if len(c.Jar.Cookies(dash)) == 0 {
		t.Fatal("no cookies for the dashboard after signing in")
	}
	_, proxyPort, _ := net.SplitHostPort(strings.TrimPrefix(d.proxy, "http://"))
	_, appPort, _ := net.SplitHostPort(dash.Host)
	for _, other := range []string{"http://dev-site.localhost:" + proxyPort + "/", "http://localhost:" + appPort + "/",
		"http://localhost:9999/", "http://evil.localhost:9999/", "http://127.0.0.1:" + appPort + "/"} {
		u, _ := url.Parse(other)
		if cs := c.Jar.Cookies(u); len(cs) != 0 {
			t.Errorf("the browser would send %v to %s", cs, other)
		}
	}
	// On the wire: a fresh visit sets cookies with no Domain attribute.
	resp, err := localhostClient().Get(d.dash + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, line := range resp.Header.Values("Set-Cookie") {
		if strings.Contains(strings.ToLower(line), "domain=") {
			t.Errorf("Set-Cookie with a Domain attribute: %s", line)
		}
	}
	if len(resp.Header.Values("Set-Cookie")) == 0 {
		t.Error("the log-in page set no cookie to check")
	}
	// The dashboard opened on plain localhost moves to app.localhost first, setting nothing on localhost.
	nc := localhostClient()
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = nc.Get("http://localhost:" + appPort + "/login?next=/account")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != d.dash+"/login?next=/account" || len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("dashboard on localhost: %d to %q, cookies %q", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Values("Set-Cookie"))
	}
}

// refuseOutside tries to make a project of a git repository outside the folder ferry dev deploys local
// repositories from (its working directory here), by path and by file:// URL, and expects a clear refusal.
func refuseOutside(t *testing.T, d *devProcess, c *http.Client) {
	t.Helper()
	outside, err := gitserver.CreateRepo(t.TempDir(), "outside", []map[string]string{{"index.html": "secret"}})
	if err != nil {
		t.Fatal(err)
	}
	page, _, _ := get(t, c, d.dash+"/projects/new")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("new project page has no CSRF field:\n%s", page)
	}
	for _, u := range []string{outside.Bare, "file://" + outside.Bare, outside.Bare + "/../" + filepath.Base(outside.Bare)} {
		resp, err := c.PostForm(d.dash+"/projects", url.Values{"csrf_token": {m[1]}, "git_url": {u}, "name": {"outside"}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "is outside") || !strings.Contains(string(b), "--local-repos") {
			t.Errorf("project from %s: %d\n%.2000s", u, resp.StatusCode, b)
		}
	}
}
