// Command webhook-intake measures `ferry app`'s webhook intake: it fires signed pull_request deliveries (real
// payload, unique delivery ids and head SHAs) at a running server on loopback, reports accepted deliveries per
// second and latency percentiles, then checks in PostgreSQL that every accepted delivery produced exactly one
// deployment with exactly one deploy job, and that redeliveries added nothing.
//
// With no -url, it starts everything itself: a private PostgreSQL cluster (durable, fsync on, as in
// production) and `ferry app` built from this checkout, with no GitHub App configured.
//
//	go run ./bench/webhook-intake                       # self-contained: 5000 deliveries, 32 at a time
//	go run ./bench/webhook-intake -rate 500 -n 10000    # open loop at a fixed rate
//	go run ./bench/webhook-intake -url http://127.0.0.1:8080/webhooks/github -secret S -database-url postgres://...
//
// Goal (issue 4): at least 500 deliveries/s accepted with p99 at most 50 ms, none lost.
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/internal/ghwebhooks"
	"github.com/ferryhq/ferry/internal/pgcluster"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-intake:", err)
		os.Exit(1)
	}
}

type options struct {
	// appPID and pgDir are set when the bench started the stack itself, to account CPU time per delivery.
	appPID int
	pgDir  string

	url, secret, databaseURL, ferryBin, payloads string
	n, concurrency, prs, redeliveries            int
	rate                                         float64
	ephemeral                                    bool
}

// payload reads a real delivery from -payloads, or from the embedded copies.
func (o *options) payload(name string) ([]byte, error) {
	if o.payloads == "" {
		return ghwebhooks.Read(name)
	}
	return os.ReadFile(filepath.Join(o.payloads, name))
}

func run() error {
	var o options
	flag.StringVar(&o.url, "url", "", "webhook URL of a running ferry app (default: start PostgreSQL and ferry app here)")
	flag.StringVar(&o.secret, "secret", "", "its webhook secret (with -url)")
	flag.StringVar(&o.databaseURL, "database-url", "", "its database, for the final check (with -url)")
	flag.StringVar(&o.ferryBin, "ferry", "", "ferry binary to start (default: go build from this checkout)")
	flag.StringVar(&o.payloads, "payloads", "", "folder of real webhook payloads laid out as octokit/webhooks' examples (default: the ones in internal/ghwebhooks)")
	flag.IntVar(&o.n, "n", 5000, "deliveries to send")
	flag.IntVar(&o.concurrency, "c", 32, "deliveries in flight at once")
	flag.Float64Var(&o.rate, "rate", 0, "deliveries per second (0: as fast as the server answers, closed loop)")
	flag.IntVar(&o.prs, "prs", 200, "distinct pull request numbers the deliveries are spread over")
	flag.IntVar(&o.redeliveries, "redeliveries", 200, "accepted deliveries sent again at the end (each must change nothing)")
	flag.BoolVar(&o.ephemeral, "ephemeral", false, "run the private PostgreSQL without fsync (default: durable, as in production)")
	flag.Parse()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if o.url == "" {
		stop, err := startStack(ctx, &o)
		if err != nil {
			return err
		}
		defer stop()
	}
	if o.secret == "" || o.databaseURL == "" {
		return fmt.Errorf("-url needs -secret and -database-url")
	}
	tmpl, err := o.payload("pull_request/synchronize.payload.json")
	if err != nil {
		return err
	}
	install, err := o.payload("installation/created.payload.json")
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.concurrency * 2}, Timeout: 30 * time.Second}
	runID := randomHex(4)
	// The installation event gives the payloads' repository a project.
	if code, _, err := send(client, o, "installation", "bench-"+runID+"-install", install); err != nil || code != http.StatusAccepted {
		return fmt.Errorf("installation delivery: status %d, %v", code, err)
	}

	bodies := make([][]byte, o.n)
	for i := range bodies {
		if bodies[i], err = prPayload(tmpl, i%o.prs+1, sha(runID, i)); err != nil {
			return err
		}
	}
	lat := make([]time.Duration, o.n)
	codes := make([]int, o.n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var tick <-chan time.Time
	if o.rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / o.rate))
		defer t.Stop()
		tick = t.C
	}
	cpuBefore := cpuTimes(o)
	start := time.Now()
	for w := 0; w < o.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= o.n {
					return
				}
				if tick != nil {
					<-tick
				}
				code, d, err := send(client, o, "pull_request", deliveryID(runID, i), bodies[i])
				if err != nil {
					code = -1
				}
				codes[i], lat[i] = code, d
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpuAfter := cpuTimes(o)

	accepted := 0
	other := map[int]int{}
	for _, c := range codes {
		if c == http.StatusAccepted {
			accepted++
		} else {
			other[c]++
		}
	}
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	pct := func(p float64) time.Duration { return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))] }
	mode := "closed loop"
	if o.rate > 0 {
		mode = fmt.Sprintf("open loop at %.0f/s", o.rate)
	}
	fmt.Printf("deliveries: %d sent, %d accepted (202), others %v; %d in flight, %s\n", o.n, accepted, other, o.concurrency, mode)
	fmt.Printf("throughput: %.0f accepted deliveries/s over %s\n", float64(accepted)/elapsed.Seconds(), elapsed.Round(time.Millisecond))
	fmt.Printf("latency:    p50 %s  p90 %s  p99 %s  max %s\n", pct(.50).Round(10*time.Microsecond), pct(.90).Round(10*time.Microsecond),
		pct(.99).Round(10*time.Microsecond), sorted[len(sorted)-1].Round(10*time.Microsecond))

	if o.appPID != 0 && accepted > 0 {
		per := func(i int) float64 { return (cpuAfter[i] - cpuBefore[i]).Seconds() * 1000 / float64(accepted) }
		fmt.Printf("cpu:        %.2f ms per accepted delivery in ferry app (workers included), %.2f ms in PostgreSQL, %.2f ms in this load generator\n",
			per(0), per(1), per(2))
		fmt.Printf("            => %.0f deliveries/s would fill 2 idle cores with app + PostgreSQL alone\n", 2000/(per(0)+per(1)))
	}

	// Redeliveries of accepted deliveries: 200 and no change.
	redelivered := 0
	for i := 0; i < o.n && redelivered < o.redeliveries; i += max(1, o.n/max(1, o.redeliveries)) {
		if codes[i] != http.StatusAccepted {
			continue
		}
		code, _, err := send(client, o, "pull_request", deliveryID(runID, i), bodies[i])
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("redelivery %d: status %d, %v (want 200)", i, code, err)
		}
		redelivered++
	}
	return check(ctx, o, runID, accepted, redelivered)
}

// check verifies in the database that each accepted delivery made one deployment and one deploy job.
func check(ctx context.Context, o options, runID string, accepted, redelivered int) error {
	conn, err := pgx.Connect(ctx, o.databaseURL)
	if err != nil {
		return fmt.Errorf("connect for the check: %w", err)
	}
	defer conn.Close(ctx)
	var deliveries, shas, oneEach, deployJobs int
	err = conn.QueryRow(ctx, `
		WITH d AS (
			SELECT d.commit_sha, count(DISTINCT d.id) AS deployments, count(j.id) AS jobs
			FROM deployments d LEFT JOIN river_job j ON j.kind = 'deploy' AND j.args->>'deployment_id' = d.id
			WHERE d.commit_sha LIKE $1 || '%'
			GROUP BY d.commit_sha
		)
		SELECT (SELECT count(*) FROM webhook_deliveries WHERE id LIKE 'bench-' || $1 || '-pr-%'),
			(SELECT count(*) FROM d), (SELECT count(*) FROM d WHERE deployments = 1 AND jobs = 1),
			(SELECT coalesce(sum(jobs), 0) FROM d)`, runID).Scan(&deliveries, &shas, &oneEach, &deployJobs)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	fmt.Printf("check:      %d accepted, %d deliveries recorded, %d commits deployed, %d with exactly one deployment and one deploy job (%d deploy jobs); %d redeliveries answered 200\n",
		accepted, deliveries, shas, oneEach, deployJobs, redelivered)
	if deliveries != accepted || shas != accepted || oneEach != accepted || deployJobs != accepted {
		return fmt.Errorf("FAIL: accepted deliveries and their jobs do not match one to one")
	}
	fmt.Println("check:      OK, none lost, none doubled")
	return nil
}

func send(client *http.Client, o options, event, id string, body []byte) (int, time.Duration, error) {
	req, err := http.NewRequest(http.MethodPost, o.url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	mac := hmac.New(sha256.New, []byte(o.secret))
	mac.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/bench")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, time.Since(start), err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start), nil
}

func deliveryID(runID string, i int) string { return fmt.Sprintf("bench-%s-pr-%d", runID, i) }

// sha makes a unique 40-hex head SHA per delivery that starts with the run id, for the final check.
func sha(runID string, i int) string { return fmt.Sprintf("%s%032x", runID, i) }

// prPayload is the real synchronize payload with another pull request number and head SHA.
func prPayload(tmpl []byte, number int, headSHA string) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(tmpl, &m); err != nil {
		return nil, err
	}
	m["number"] = number
	pr := m["pull_request"].(map[string]any)
	pr["number"] = number
	pr["head"].(map[string]any)["sha"] = headSHA
	m["after"] = headSHA
	return json.Marshal(m)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startStack starts a private PostgreSQL and `ferry app` on a free loopback port, and fills o to point at them.
func startStack(ctx context.Context, o *options) (stop func(), err error) {
	dir, err := os.MkdirTemp("", "ferry-bench-intake-")
	if err != nil {
		return nil, err
	}
	var cleanups []func()
	stop = func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	cleanups = append(cleanups, func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // the cluster's user must enter it
		return stop, err
	}
	if o.ferryBin == "" {
		o.ferryBin = filepath.Join(dir, "ferry")
		build := exec.CommandContext(ctx, "go", "build", "-o", o.ferryBin, ".")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return stop, fmt.Errorf("build ferry (run from the repository root): %w", err)
		}
	}
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "pg"), Ephemeral: o.ephemeral,
		Settings: map[string]string{"max_connections": "100"}})
	if err != nil {
		return stop, err
	}
	cleanups = append(cleanups, func() { _ = cluster.Stop(context.Background()) })
	o.databaseURL = cluster.URL("postgres")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return stop, err
	}
	addr := ln.Addr().String()
	ln.Close()
	o.secret = randomHex(16)
	o.url = "http://" + addr + "/webhooks/github"
	logFile, err := os.Create(filepath.Join(os.TempDir(), "ferry-bench-intake-app.log"))
	if err != nil {
		return stop, err
	}
	app := exec.Command(o.ferryBin, "app", "--listen", addr, "--storage", "file://"+filepath.Join(dir, "storage"),
		"--concurrency", "1")
	app.Env = append(os.Environ(), "FERRY_DATABASE_URL="+o.databaseURL, "FERRY_WEBHOOK_SECRET="+o.secret)
	app.Stdout, app.Stderr = logFile, logFile
	if err := app.Start(); err != nil {
		return stop, err
	}
	o.appPID, o.pgDir = app.Process.Pid, cluster.Dir()
	cleanups = append(cleanups, func() {
		_ = app.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = app.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			_ = app.Process.Kill()
			<-done
		}
		logFile.Close()
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return stop, fmt.Errorf("ferry app did not become healthy; see %s", logFile.Name())
		}
	}
	fmt.Printf("started PostgreSQL (durable=%v) and ferry app on %s; app log in %s\n", !o.ephemeral, addr, logFile.Name())
	return stop, nil
}

// cpuTimes returns the CPU time (user + system) used so far by ferry app, by the PostgreSQL cluster (the
// postmaster, its reaped children and its live backends) and by this process. Zero when the bench did not start
// the stack.
func cpuTimes(o options) [3]time.Duration {
	var t [3]time.Duration
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		t[2] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if o.appPID == 0 {
		return t
	}
	t[0] = procCPU(o.appPID, false)
	pidFile, err := os.ReadFile(filepath.Join(o.pgDir, "data", "postmaster.pid"))
	if err != nil {
		return t
	}
	pm, _ := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	t[1] = procCPU(pm, true)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := procStat(pid); len(f) > 16 && f[1] == strconv.Itoa(pm) {
			t[1] += procCPU(pid, false)
		}
	}
	return t
}

// procStat returns the fields of /proc/PID/stat after the command name: state, ppid, ...
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// procCPU is utime + stime of pid (fields 14 and 15 of /proc/PID/stat), with its reaped children's when asked.
func procCPU(pid int, children bool) time.Duration {
	f := procStat(pid)
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	idx := []int{11, 12} // utime, stime: fields 14 and 15, counted from "state" (field 3)
	if children {
		idx = append(idx, 13, 14)
	}
	for _, i := range idx {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}
