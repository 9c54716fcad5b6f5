// Package drills holds issue 8's reliability drills. They run the real binaries (through the e2e harness:
// `ferry app`, `ferry proxy`, PostgreSQL, versitygw, git smart-HTTP, the fake GitHub) and report their figures
// in the test log. They take minutes, so they are not part of the everyday test command:
//
//	go test ./bench/drills -run . -v -timeout 15m
//
// The crash drill is e2e.TestCrashRecovery (go test ./e2e -run Crash -v).
package drills

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/e2e"
	"github.com/ferryhq/ferry/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func finished(d e2e.Deployment) bool { return d.Status != "queued" && d.Status != "building" }

// TestPoisonPill: a deployment whose infrastructure step (the clone) always fails is tried 3 times and then
// dead-lettered, while 10 deployments queued after it all succeed.
func TestPoisonPill(t *testing.T) {
	w := e2e.NewWorld(t)
	repo, err := w.Git.CreateRepo(e2e.Owner+"/"+e2e.RepoName, []map[string]string{e2e.SiteFixture(t, 0)})
	if err != nil {
		t.Fatal(err)
	}
	w.StartProxy()
	addr := e2e.FreeAddr(t)
	w.StartApp(addr, "--concurrency", "2")
	t0 := time.Now()
	poison := w.PRPayload("pull_request/opened.payload.json", e2e.PR{Repo: repo, Broken: true, RepoID: e2e.BrokenRepoID,
		RepoName: e2e.BrokenRepoName, Number: 1, Head: repo.Commits[0]})
	if code := e2e.Deliver(t, addr, "pull_request", "poison", poison); code != http.StatusAccepted {
		t.Fatalf("poison delivery: %d", code)
	}
	for n := 2; n <= 11; n++ {
		body := w.PRPayload("pull_request/opened.payload.json", e2e.PR{Repo: repo, Number: n, Head: repo.Commits[0]})
		if code := e2e.Deliver(t, addr, "pull_request", fmt.Sprintf("good-%d", n), body); code != http.StatusAccepted {
			t.Fatalf("delivery %d: %d", n, code)
		}
	}
	var othersDone time.Duration
	ds := w.WaitDeployments(5*time.Minute, "every deployment to finish", func(ds []e2e.Deployment) bool {
		good := 0
		for _, d := range ds[1:] {
			if d.Status == "ready" {
				good++
			}
		}
		if good == 10 && othersDone == 0 {
			othersDone = time.Since(t0)
		}
		return len(ds) == 11 && finished(ds[0]) && good == 10
	})
	deadLettered := time.Since(t0)
	p := ds[0]
	if p.Status != "error" || p.Attempt != 3 {
		t.Fatalf("poison deployment: %+v, want error after 3 attempts", p)
	}
	var state string
	var attempt int
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		// The last attempt records the error before River finalizes its job.
		if err := w.Pool.QueryRow(t.Context(), `SELECT state::text, attempt FROM river_job WHERE kind = 'deploy' AND args->>'deployment_id' = $1`, p.ID).Scan(&state, &attempt); err != nil {
			t.Fatal(err)
		}
		if state != "running" || time.Now().After(deadline) {
			break
		}
	}
	if state != "discarded" || attempt != 3 {
		t.Fatalf("poison job: %s after %d attempts, want discarded after 3", state, attempt)
	}
	t.Logf("poison pill: 10 good deployments ready %s after the deliveries; the poison one dead-lettered (error, job discarded) after 3 attempts at %s; its error: %q",
		othersDone.Round(10*time.Millisecond), deadLettered.Round(10*time.Millisecond), p.Error)
}

// TestLoad: 50 deployments delivered at once with --concurrency 2 all finish, and none is built twice.
func TestLoad(t *testing.T) {
	w := e2e.NewWorld(t)
	repo, err := w.Git.CreateRepo(e2e.Owner+"/"+e2e.RepoName, []map[string]string{e2e.SiteFixture(t, 0)})
	if err != nil {
		t.Fatal(err)
	}
	w.StartProxy()
	addr := e2e.FreeAddr(t)
	w.StartApp(addr, "--concurrency", "2")
	const n = 50
	t0 := time.Now()
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := w.PRPayload("pull_request/opened.payload.json", e2e.PR{Repo: repo, Number: 100 + i, Head: repo.Commits[0]})
			codes[i] = e2e.Deliver(t, addr, "pull_request", fmt.Sprintf("load-%d", i), body)
		}()
	}
	wg.Wait()
	accepted := time.Since(t0)
	for i, c := range codes {
		if c != http.StatusAccepted {
			t.Fatalf("delivery %d: %d", i, c)
		}
	}
	ds := w.WaitDeployments(10*time.Minute, "all 50 deployments to finish", func(ds []e2e.Deployment) bool {
		for _, d := range ds {
			if !finished(d) {
				return false
			}
		}
		return len(ds) == n
	})
	all := time.Since(t0)
	for _, d := range ds {
		if d.Status != "ready" || d.Attempt != 1 {
			t.Errorf("deployment %s (PR %d): %s after %d attempts %q", d.ID, d.PR, d.Status, d.Attempt, d.Error)
		}
	}
	var jobs, completed, maxAttempt int
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := w.Pool.QueryRow(t.Context(), `SELECT count(*), count(*) FILTER (WHERE state = 'completed'), coalesce(max(attempt), 0)
			FROM river_job WHERE kind = 'deploy'`).Scan(&jobs, &completed, &maxAttempt); err != nil {
			t.Fatal(err)
		}
		if completed == n || time.Now().After(deadline) {
			break
		}
	}
	if jobs != n || completed != n || maxAttempt != 1 {
		t.Fatalf("deploy jobs: %d, completed %d, max attempt %d; want %d, %d, 1", jobs, completed, maxAttempt, n, n)
	}
	t.Logf("load: %d deliveries accepted in %s; all %d deployments ready, each built once, %s after the first delivery (%.2f s per deployment at --concurrency 2)",
		n, accepted.Round(time.Millisecond), n, all.Round(10*time.Millisecond), all.Seconds()/n)
}

// TestStorageDown: storage is unreachable for 10 s while the proxy serves. A site already cached keeps
// answering 200, a site never requested gets 503, and both answer 200 again once storage is back, with no
// restart.
func TestStorageDown(t *testing.T) {
	w := e2e.NewWorld(t)
	repo, err := w.Git.CreateRepo(e2e.Owner+"/"+e2e.RepoName, []map[string]string{e2e.SiteFixture(t, 0)})
	if err != nil {
		t.Fatal(err)
	}
	w.StartProxy()
	addr := e2e.FreeAddr(t)
	w.StartApp(addr)
	for _, n := range []int{1, 2} {
		body := w.PRPayload("pull_request/opened.payload.json", e2e.PR{Repo: repo, Number: n, Head: repo.Commits[0]})
		if code := e2e.Deliver(t, addr, "pull_request", fmt.Sprintf("storage-%d", n), body); code != http.StatusAccepted {
			t.Fatalf("delivery %d: %d", n, code)
		}
	}
	w.WaitDeployments(2*time.Minute, "both deployments ready", func(ds []e2e.Deployment) bool {
		return len(ds) == 2 && ds[0].Status == "ready" && ds[1].Status == "ready"
	})
	cached, uncached := "pr-1--"+e2e.Project+".localhost", "pr-2--"+e2e.Project+".localhost"
	paths := []string{"/", "/about", "/assets/app.8d3e5b7c.js"}
	for _, p := range paths {
		if code, _ := w.Get(cached, p); code != http.StatusOK {
			t.Fatalf("warm %s%s: %d", cached, p, code)
		}
	}

	w.S3.Stop()
	outage := time.Now()
	// One client per site, so that slow answers on one do not thin out the other's figures.
	counts := map[string]map[int]int{cached: {}, uncached: {}}
	slowest := map[string]time.Duration{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, host := range []string{cached, uncached} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(outage) < 10*time.Second {
				for _, p := range paths {
					t0 := time.Now()
					code, _ := w.Get(host, p)
					mu.Lock()
					counts[host][code]++
					slowest[host] = max(slowest[host], time.Since(t0))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	w.S3.Start(t)
	back := time.Now()
	var recovered time.Duration
	for {
		c1, _ := w.Get(uncached, "/")
		c2, _ := w.Get(cached, "/")
		if c1 == http.StatusOK && c2 == http.StatusOK {
			recovered = time.Since(back)
			break
		}
		if time.Since(back) > time.Minute {
			t.Fatalf("no recovery a minute after storage came back: uncached %d, cached %d", c1, c2)
		}
		time.Sleep(20 * time.Millisecond)
	}
	total := func(m map[int]int) (n int) {
		for _, v := range m {
			n += v
		}
		return n
	}
	t.Logf("storage down 10s: cached site %v of %d requests (slowest %s); uncached site %v of %d (slowest %s); full service %s after storage returned",
		counts[cached], total(counts[cached]), slowest[cached].Round(time.Millisecond), counts[uncached], total(counts[uncached]),
		slowest[uncached].Round(time.Millisecond), recovered.Round(time.Millisecond))
	if counts[cached][http.StatusOK] != total(counts[cached]) {
		t.Errorf("cached site during the outage: %v, want only 200", counts[cached])
	}
	if counts[uncached][http.StatusServiceUnavailable] != total(counts[uncached]) {
		t.Errorf("uncached site during the outage: %v, want only 503", counts[uncached])
	}
}
