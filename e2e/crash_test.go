package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCrashRecovery is issue 4's "Survive a crash" on the real binary: `ferry app` is SIGKILLed while a slow
// build runs and two more wait, then started again on the same address. The build it was running is retried at
// once (not after River's 25-minute rescue), no build outlives the killed app, and every delivery accepted
// before the kill ends as a ready deployment.
func TestCrashRecovery(t *testing.T) {
	w := newWorld(t)
	const buildDelay = 5 // seconds the fixture's build sleeps
	repo, err := w.git.CreateRepo(owner+"/"+repoName, []map[string]string{siteFixture(t, buildDelay)})
	if err != nil {
		t.Fatal(err)
	}
	w.startProxy()
	addr := freeAddr(t)
	app := w.startApp(addr, "--concurrency", "1")

	prs := []int{2, 3, 4}
	for _, n := range prs {
		if code := deliver(t, addr, "pull_request", fmt.Sprintf("crash-opened-%d", n), w.prPayload("pull_request/opened.payload.json", repo, n, repo.Commits[0], "")); code != http.StatusAccepted {
			t.Fatalf("PR %d opened: status %d", n, code)
		}
	}
	// Kill the app once a build is well inside its build step.
	ds := w.waitDeployments(time.Minute, "a build to start", func(ds []deployment) bool {
		for _, d := range ds {
			if d.Status == "building" {
				return true
			}
		}
		return false
	})
	var killed deployment
	for _, d := range ds {
		if d.Status == "building" {
			killed = d
		}
	}
	time.Sleep(2 * time.Second)
	if !buildRunning(killed.ID) {
		t.Fatalf("no build process for %s before the kill", killed.ID)
	}
	app.kill9(t)
	time.Sleep(300 * time.Millisecond)
	if buildRunning(killed.ID) {
		t.Fatalf("the build of %s outlived the killed app", killed.ID)
	}
	if got := w.deployments(); len(got) != len(prs) {
		t.Fatalf("deployments after the kill: %+v, want one per accepted delivery", got)
	}

	restart := time.Now()
	w.startApp(addr, "--concurrency", "1")
	var retried time.Duration
	w.waitDeployments(30*time.Second, "the killed build to be retried", func(ds []deployment) bool {
		for _, d := range ds {
			if d.ID == killed.ID && d.Attempt >= 2 {
				retried = time.Since(restart)
				return true
			}
		}
		return false
	})
	ds = w.waitDeployments(90*time.Second, "every deployment to finish", func(ds []deployment) bool {
		for _, d := range ds {
			if d.Status == "queued" || d.Status == "building" {
				return false
			}
		}
		return true
	})
	all := time.Since(restart)
	for _, d := range ds {
		if d.Status != "ready" {
			t.Errorf("deployment %s (PR %d): %s %q, want ready", d.ID, d.PR, d.Status, d.Error)
		}
		if d.ID == killed.ID && d.Attempt != 2 {
			t.Errorf("killed deployment ran %d attempts, want 2", d.Attempt)
		}
		if code, _ := w.get(fmt.Sprintf("pr-%d--%s.localhost", d.PR, project), "/"); code != http.StatusOK {
			t.Errorf("PR %d preview: %d", d.PR, code)
		}
	}
	// Each deployment was built to the end exactly once (the killed attempt aside).
	var runs int
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		// A job completes just after its deployment shows ready (the final GitHub report comes in between).
		if err := w.pool.QueryRow(t.Context(), `SELECT count(*) FROM river_job WHERE kind = 'deploy' AND state = 'completed'`).Scan(&runs); err != nil {
			t.Fatal(err)
		}
		if runs >= len(prs) || time.Now().After(deadline) {
			break
		}
	}
	if runs != len(prs) {
		rows, _ := w.pool.Query(t.Context(), `SELECT id, state::text, attempt, args::text, attempted_by::text, errors::text FROM river_job WHERE kind = 'deploy' ORDER BY id`)
		for rows.Next() {
			var id int64
			var st, args, by, errs string
			var att int
			_ = rows.Scan(&id, &st, &att, &args, &by, &errs)
			t.Logf("job %d %s attempt %d %s by %s errors %s", id, st, att, args, by, errs)
		}
		rows.Close()
		t.Errorf("%d completed deploy jobs, want %d", runs, len(prs))
	}
	t.Logf("crash drill: killed build retried %s after the restart; all %d deployments ready %s after it (builds sleep %ds, concurrency 1)",
		retried.Round(10*time.Millisecond), len(prs), all.Round(10*time.Millisecond), buildDelay)
}

// buildRunning says whether a `ferry build` for deployment id still runs on this machine.
func buildRunning(id string) bool {
	out, _ := exec.Command("ps", "-eo", "args").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, " build ") && strings.Contains(l, id) {
			return true
		}
	}
	return false
}
