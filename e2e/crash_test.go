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
// before the kill ends as a ready Deployment.
func TestCrashRecovery(t *testing.T) {
	w := NewWorld(t)
	const buildDelay = 5 // seconds the fixture's build sleeps
	repo, err := w.Git.CreateRepo(Owner+"/"+RepoName, []map[string]string{SiteFixture(t, buildDelay)})
	if err != nil {
		t.Fatal(err)
	}
	w.StartProxy()
	addr := FreeAddr(t)
	app := w.StartApp(addr, "--concurrency", "1")

	prs := []int{2, 3, 4}
	for _, n := range prs {
		if code := Deliver(t, addr, "pull_request", fmt.Sprintf("crash-opened-%d", n), w.PRPayload("pull_request/opened.payload.json", PR{Repo: repo, Number: n, Head: repo.Commits[0]})); code != http.StatusAccepted {
			t.Fatalf("PR %d opened: status %d", n, code)
		}
	}
	// Kill the app once a build is well inside its build step.
	ds := w.WaitDeployments(time.Minute, "a build to start", func(ds []Deployment) bool {
		for _, d := range ds {
			if d.Status == "building" {
				return true
			}
		}
		return false
	})
	var killed Deployment
	for _, d := range ds {
		if d.Status == "building" {
			killed = d
		}
	}
	time.Sleep(2 * time.Second)
	if !buildRunning(killed.ID) {
		t.Fatalf("no build process for %s before the kill", killed.ID)
	}
	app.Kill9(t)
	time.Sleep(300 * time.Millisecond)
	if buildRunning(killed.ID) {
		t.Fatalf("the build of %s outlived the killed app", killed.ID)
	}
	if got := w.Deployments(); len(got) != len(prs) {
		t.Fatalf("deployments after the kill: %+v, want one per accepted delivery", got)
	}

	restart := time.Now()
	w.StartApp(addr, "--concurrency", "1")
	var retried time.Duration
	w.WaitDeployments(30*time.Second, "the killed build to be retried", func(ds []Deployment) bool {
		for _, d := range ds {
			if d.ID == killed.ID && d.Attempt >= 2 {
				retried = time.Since(restart)
				return true
			}
		}
		return false
	})
	ds = w.WaitDeployments(90*time.Second, "every Deployment to finish", func(ds []Deployment) bool {
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
			t.Errorf("Deployment %s (PR %d): %s %q, want ready", d.ID, d.PR, d.Status, d.Error)
		}
		if d.ID == killed.ID && d.Attempt != 2 {
			t.Errorf("killed Deployment ran %d attempts, want 2", d.Attempt)
		}
		if code, _ := w.Get(fmt.Sprintf("pr-%d--%s.localhost", d.PR, Project), "/"); code != http.StatusOK {
			t.Errorf("PR %d preview: %d", d.PR, code)
		}
	}
	// Each Deployment was built to the end exactly once (the killed attempt aside).
	var runs int
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		// A job completes just after its Deployment shows ready (the final GitHub report comes in between).
		if err := w.Pool.QueryRow(t.Context(), `SELECT count(*) FROM river_job WHERE kind = 'deploy' AND state = 'completed'`).Scan(&runs); err != nil {
			t.Fatal(err)
		}
		if runs >= len(prs) || time.Now().After(deadline) {
			break
		}
	}
	if runs != len(prs) {
		rows, _ := w.Pool.Query(t.Context(), `SELECT id, state::text, attempt, args::text, attempted_by::text, errors::text FROM river_job WHERE kind = 'deploy' ORDER BY id`)
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

// buildRunning says whether a `ferry build` for Deployment id still runs on this machine.
func buildRunning(id string) bool {
	out, _ := exec.Command("ps", "-eo", "args").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, " build ") && strings.Contains(l, id) {
			return true
		}
	}
	return false
}
