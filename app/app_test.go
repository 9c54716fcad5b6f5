package app

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
	"github.com/ferryhq/ferry/internal/ghwebhooks"
	"github.com/ferryhq/ferry/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFlags(t *testing.T) {
	t.Parallel()
	var usage bytes.Buffer
	_, err := parseFlags([]string{"-h"}, &usage, envOf(nil))
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"-listen", `(default ":8080")`, "-database-url", "-storage", "-domain", `(default "localhost")`,
		"-public-url", "-github-app-id", "-github-private-key-file", "-webhook-secret", "-github-api-url",
		`(default "https://api.github.com")`, "-builder", `(default "local")`, "-concurrency", "(default 2)",
		"-max-body-bytes", "(default 8388608)", "-webhook-pending-bytes", "(default 33554432)", "-shutdown-timeout", "FERRY_<FLAG_NAME>", "-signup", `(default "closed")`,
		"-signup-email-domains", "-signup-github-orgs", "-metrics-token", "-metrics-listen"} {
		if !strings.Contains(usage.String(), want) {
			t.Errorf("-h lacks %q:\n%s", want, usage.String())
		}
	}

	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	keyFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(secretFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte("-----BEGIN RSA PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	full := map[string]string{"FERRY_DATABASE_URL": "postgres://x/y", "FERRY_STORAGE": "file:///tmp/x", "FERRY_WEBHOOK_SECRET_FILE": secretFile}
	cfg, err := parseFlags([]string{"--concurrency", "3", "--github-app-id", "7", "--github-private-key-file", keyFile}, io.Discard, envOf(full))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.WebhookSecret != "s3cret" || cfg.Concurrency != 3 || cfg.DatabaseURL != "postgres://x/y" || cfg.GitHubAppID != 7 ||
		!bytes.HasPrefix(cfg.GitHubPrivateKey, []byte("-----BEGIN")) || cfg.Listen != ":8080" {
		t.Fatalf("config: %+v", cfg)
	}
	if cfg.Signup != "closed" {
		t.Fatalf("default --signup %q, want closed", cfg.Signup)
	}
	open, err := parseFlags([]string{"--signup", "open", "--signup-email-domains", "example.com, corp.example"}, io.Discard, envOf(full))
	if err != nil || open.Signup != "open" || len(open.SignupEmailDomains) != 2 || open.SignupEmailDomains[1] != "corp.example" {
		t.Fatalf("--signup open with domains: %+v %v", open, err)
	}
	if strings.Contains(cfg.String(), "s3cret") || strings.Contains(cfg.String(), "postgres://") {
		t.Fatalf("String() leaks secrets: %s", cfg)
	}

	without := func(key string) map[string]string {
		m := map[string]string{}
		for k, v := range full {
			if k != key {
				m[k] = v
			}
		}
		return m
	}
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"no database", nil, without("FERRY_DATABASE_URL"), []string{"--database-url", "FERRY_DATABASE_URL"}},
		{"no storage", nil, without("FERRY_STORAGE"), []string{"--storage", "FERRY_STORAGE"}},
		{"app id without secret", []string{"--github-app-id", "7", "--github-private-key-file", keyFile}, without("FERRY_WEBHOOK_SECRET_FILE"), []string{"--webhook-secret", "FERRY_WEBHOOK_SECRET", "FERRY_WEBHOOK_SECRET_FILE"}},
		{"bad GitHub URL", []string{"--github-url", "github.com"}, full, []string{"--github-url"}},
		{"app id without key", []string{"--github-app-id", "7"}, full, []string{"--github-private-key-file", "FERRY_GITHUB_PRIVATE_KEY_FILE"}},
		{"key without app id", []string{"--github-private-key-file", keyFile}, full, []string{"--github-app-id", "FERRY_GITHUB_APP_ID"}},
		{"missing key file", []string{"--github-app-id", "7", "--github-private-key-file", filepath.Join(dir, "nope")}, full, []string{"--github-private-key-file"}},
		{"unknown builder", []string{"--builder", "ecs2"}, full, []string{"--builder", "local"}},
		{"zero concurrency", []string{"--concurrency", "0"}, full, []string{"--concurrency"}},
		{"tiny body cap", []string{"--max-body-bytes", "10"}, full, []string{"--max-body-bytes"}},
		{"bad public URL", []string{"--public-url", "ferry.example.com"}, full, []string{"--public-url"}},
		{"extra argument", []string{"serve"}, full, []string{"flags only"}},
		{"bad number", []string{"--concurrency", "two"}, full, []string{"concurrency"}},
		{"unknown sign-up mode", []string{"--signup", "yes"}, full, []string{"--signup", "closed", "invite", "open"}},
	} {
		_, err := parseFlags(c.args, io.Discard, envOf(c.env))
		if ferry.ErrorCode(err) != ferry.EINVALID || ferry.ExitCode(err) != ferry.ExitUser {
			t.Errorf("%s: err %v, want EINVALID", c.name, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not mention %q", c.name, err, w)
			}
		}
	}
}

// TestGitHubPrivateKeyFlags: the App's key comes from a file or, for ECS secrets, as the PEM value itself;
// exactly one of them per level, the command line winning over the environment.
func TestGitHubPrivateKeyFlags(t *testing.T) {
	t.Parallel()
	const key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----"
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.key")
	if err := os.WriteFile(keyFile, []byte("-----BEGIN RSA PRIVATE KEY-----\nFROMFILE\n-----END RSA PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"FERRY_DATABASE_URL": "postgres://x/y", "FERRY_STORAGE": "file:///tmp/x", "FERRY_WEBHOOK_SECRET": "s", "FERRY_GITHUB_APP_ID": "7"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want string // a part of the key, or of the error with wantErr
		err  bool
	}{
		{"value in the environment (ECS)", nil, with("FERRY_GITHUB_PRIVATE_KEY", key), "MIIEabc", false},
		{"value on one line with \\n", nil, with("FERRY_GITHUB_PRIVATE_KEY", strings.ReplaceAll(key, "\n", `\n`)), "KEY-----\nMIIEabc\n-----END", false},
		{"value flag", []string{"--github-private-key", key}, base, "MIIEabc", false},
		{"file flag", []string{"--github-private-key-file", keyFile}, base, "FROMFILE", false},
		{"file variable", nil, with("FERRY_GITHUB_PRIVATE_KEY_FILE", keyFile), "FROMFILE", false},
		{"command line wins over the environment", []string{"--github-private-key", key}, with("FERRY_GITHUB_PRIVATE_KEY_FILE", keyFile), "MIIEabc", false},
		{"file flag wins over the value variable", []string{"--github-private-key-file", keyFile}, with("FERRY_GITHUB_PRIVATE_KEY", key), "FROMFILE", false},
		{"both flags", []string{"--github-private-key", key, "--github-private-key-file", keyFile}, base, "not both", true},
		{"both variables", nil, with("FERRY_GITHUB_PRIVATE_KEY", key, "FERRY_GITHUB_PRIVATE_KEY_FILE", keyFile), "not both", true},
		{"a path given as the value", []string{"--github-private-key", keyFile}, base, "--github-private-key-file", true},
		{"neither", nil, base, "--github-private-key (FERRY_GITHUB_PRIVATE_KEY)", true},
	} {
		cfg, err := parseFlags(c.args, io.Discard, envOf(c.env))
		if c.err {
			if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: err %v, want EINVALID mentioning %q", c.name, err, c.want)
			}
			continue
		}
		if err != nil || !strings.Contains(string(cfg.GitHubPrivateKey), c.want) || !strings.HasPrefix(string(cfg.GitHubPrivateKey), "-----BEGIN") {
			t.Errorf("%s: key %q, err %v; want it to hold %q", c.name, cfg.GitHubPrivateKey, err, c.want)
		}
	}
	// A real key, given as the one-line value that a secret store may hold, is one that the App client takes.
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	real := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	cfg, err := parseFlags(nil, io.Discard, envOf(with("FERRY_GITHUB_PRIVATE_KEY", strings.ReplaceAll(string(real), "\n", `\n`))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ghreport.NewApp(ghreport.Config{}, cfg.GitHubAppID, cfg.GitHubPrivateKey); err != nil {
		t.Fatalf("the App client refuses the key given as a value: %v", err)
	}
	var usage bytes.Buffer
	_, _ = parseFlags([]string{"-h"}, &usage, envOf(nil))
	if !strings.Contains(usage.String(), "-github-private-key PEM") || !strings.Contains(usage.String(), "FERRY_GITHUB_PRIVATE_KEY") {
		t.Errorf("-h does not document --github-private-key:\n%s", usage.String())
	}
}

func TestWebURL(t *testing.T) {
	t.Parallel()
	for api, want := range map[string]string{
		"":                               "https://github.com",
		"https://api.github.com":         "https://github.com",
		"https://api.github.com/":        "https://github.com",
		"https://ghe.example.com/api/v3": "https://ghe.example.com",
		"http://127.0.0.1:5555":          "http://127.0.0.1:5555",
	} {
		if got := webURL(api); got != want {
			t.Errorf("webURL(%q) = %q, want %q", api, got, want)
		}
	}
}

func TestHealthzDatabaseDown(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	srv := http.HandlerFunc(healthz(pool))
	w := &recorder{header: http.Header{}}
	srv.ServeHTTP(w, mustRequest(t, "GET", "/healthz"))
	if w.status != http.StatusServiceUnavailable {
		t.Fatalf("healthz with no database: %d", w.status)
	}
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(s int) { r.status = s }

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sign(body []byte, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// TestRun starts the whole App on a real database, file storage and the fake GitHub API: webhooks are taken,
// /healthz and /metrics answer, a pull request is announced on GitHub by the workers and its (failing) build
// is recorded, and a canceled context stops the server.
func TestRun(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	gh := ghfake.New(t)
	gh.AddInstallation(1, "Codertocat/Hello-World")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const secret = "run-secret"
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Listener: ln, DatabaseURL: dbURL, Storage: "file://" + t.TempDir(), WebhookSecret: secret,
			GitHubAppID: gh.AppID, GitHubPrivateKey: gh.PrivateKeyPEM, GitHubAPIURL: gh.URL,
			PublicURL: "https://ferry.example.com", ShutdownTimeout: 5 * time.Second,
			MetricsToken: "metrics-token-1", MetricsListener: metricsLn,
			// A build that fails as the user's fault (exit 2): final, no retries, no real build needed.
			BuildCommand: []string{"/bin/sh", "-c", "echo build failed >&2; exit 2", "ferry-build"},
		}, logger)
	}()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 10 * time.Second}
	var health *http.Response
	for deadline := time.Now().Add(60 * time.Second); ; {
		health, err = client.Get(base + "/healthz")
		if err == nil && health.StatusCode == http.StatusOK {
			health.Body.Close()
			break
		}
		if err == nil {
			health.Body.Close()
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz never answered 200: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	deliver := func(event, file string, want int) {
		t.Helper()
		body := ghwebhooks.Payload(t, file)
		req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/github", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", event)
		req.Header.Set("X-GitHub-Delivery", event+"-"+file)
		req.Header.Set("X-Hub-Signature-256", sign(body, secret))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: status %d, want %d", event, file, resp.StatusCode, want)
		}
	}
	deliver("ping", "ping/payload.json", http.StatusAccepted)
	// The pull_request payload names installation 1; record it as its installation event would, so that the
	// pull request creates its project on the fly.
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	st := store.New(pool)
	if _, err := st.InstallationUpsert(context.Background(), store.InstallationUpsertParams{ID: 1, AccountLogin: "Codertocat", AccountType: "User", AccountID: 21031067}); err != nil {
		t.Fatal(err)
	}
	deliver("pull_request", "pull_request/opened.payload.json", http.StatusAccepted)
	p, err := st.ProjectGetByRepoID(context.Background(), 186853002)
	if err != nil {
		t.Fatalf("no project made for the pull request's repository: %v", err)
	}

	// The workers pick the deployment up: it fails (exit 2) and GitHub hears of it.
	var dep *store.Deployment
	for deadline := time.Now().Add(60 * time.Second); ; {
		res, err := st.DeploymentListByProject(context.Background(), store.DeploymentListByProjectParams{ProjectID: p.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Deployments) == 1 && res.Deployments[0].Status.Finished() {
			dep = res.Deployments[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment never finished: %+v", res.Deployments)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if dep.Status != store.StatusFailed {
		t.Errorf("deployment status %s (%s), want failed", dep.Status, dep.Error)
	}
	if deps := gh.Deployments("Codertocat", "Hello-World"); len(deps) != 1 {
		t.Errorf("GitHub deployments: %+v, want 1", deps)
	}

	// /metrics on the public listener needs the token; the private listener serves it as it is.
	scrape := func(url, token string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	for _, tok := range []string{"", "wrong-token", "metrics-token-"} {
		if status, body := scrape(base+"/metrics", tok); status != http.StatusUnauthorized || bytes.Contains(body, []byte("go_goroutines")) {
			t.Fatalf("/metrics with token %q: %d\n%.300s", tok, status, body)
		}
	}
	status, metrics := scrape(base+"/metrics", "metrics-token-1")
	if status != http.StatusOK {
		t.Fatalf("/metrics with the token: %d", status)
	}
	if status, private := scrape("http://"+metricsLn.Addr().String()+"/metrics", ""); status != http.StatusOK || !bytes.Contains(private, []byte("go_goroutines")) {
		t.Fatalf("/metrics on --metrics-listen: %d", status)
	}
	for _, want := range []string{
		`ferry_webhooks_total{event="ping",outcome="accepted"} 1`,
		`ferry_webhooks_total{event="pull_request",outcome="accepted"} 1`,
		`ferry_queue_jobs{queue="build",state=`,
		"ferry_webhook_duration_seconds_bucket",
		"go_goroutines",
	} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop within 20s of cancel")
	}
	if _, err := client.Get(base + "/healthz"); err == nil {
		t.Fatal("server still answers after stop")
	}
}
