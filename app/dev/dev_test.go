package dev

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"net/http"
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

	"github.com/ferryhq/ferry/internal/pgcluster"
)

func TestFlags(t *testing.T) {
	t.Parallel()
	var usage bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, &usage, func(string) string { return "" }); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"-dir", `(default ".ferry")`, "-listen", `(default ":8080")`, "-proxy-listen", `(default ":8081")`,
		"-domain", `(default "localhost")`, "-database-url", "-storage", "-public-url", "-webhook-secret", "-github-app-id",
		"-github-private-key-file", "-github-api-url", "-concurrency", "(default 2)", "FERRY_<FLAG_NAME>"} {
		if !strings.Contains(usage.String(), want) {
			t.Errorf("-h lacks %q", want)
		}
	}
	cfg, err := parseFlags([]string{"--proxy-listen", ":9091"}, io.Discard, func(k string) string {
		return map[string]string{"FERRY_DIR": "/srv/ferry", "FERRY_WEBHOOK_SECRET": "s"}[k]
	})
	if err != nil || cfg.Dir != "/srv/ferry" || cfg.ProxyListen != ":9091" || cfg.WebhookSecret != "s" || cfg.Listen != ":8080" {
		t.Fatalf("config %+v, err %v", cfg, err)
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
	app    string
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
	appLine   = regexp.MustCompile(`Dashboard and API:\s+(http://\S+)`)
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
	m1, m2 := appLine.FindStringSubmatch(out), healthURL.FindStringSubmatch(out)
	if m1 == nil || m2 == nil {
		t.Fatalf("banner lacks the URLs:\n%s", out)
	}
	d.app, d.proxy = m1[1], m2[1]
	for _, want := range []string{".localhost:", "webhook-secret", "/webhooks/github"} {
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
