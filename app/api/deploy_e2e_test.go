package api_test

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/app/api"
	"github.com/ferryhq/ferry/internal/ferry"
)

// TestDeployCommand runs `ferry deploy` against the API on a real HTTP server with the real deploy worker:
// first it creates the project, then reuses it; a failing build exits as the user's error.
func TestDeployCommand(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	u := h.newUser()
	env := func(k string) string {
		if k == "FERRY_TOKEN" {
			return u.token
		}
		return ""
	}
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := api.DeployCommandWithEnv(context.Background(), append([]string{"--server", h.srv.URL, "--poll", "20ms"}, args...), &out, &errOut, env)
		return out.String(), errOut.String(), err
	}
	out, logs, err := run(h.repo.Bare)
	if err != nil || out != "http://site.localhost:8081\n" {
		t.Fatalf("deploy = %q, %v\n%s", out, err, logs)
	}
	if !strings.Contains(logs, "created project site") || !strings.Contains(logs, "building "+h.repo.Commits[1]) || !strings.Contains(logs, "ready: ") {
		t.Fatalf("log:\n%s", logs)
	}
	if got := h.serve("site", "production"); !strings.HasPrefix(got, "commit "+h.repo.Commits[1]) {
		t.Fatalf("production serves %q", got)
	}
	// Again, on a branch: the project is reused and the URL is the branch's.
	out, logs, err = run("--branch", "feature", h.repo.Bare)
	if err != nil || out != "http://git-feature--site.localhost:8081\n" || strings.Contains(logs, "created project") {
		t.Fatalf("second deploy = %q, %v\n%s", out, err, logs)
	}
	// The name is taken by another repository (a real one: a folder without commits is refused first).
	other := t.TempDir()
	for _, args := range [][]string{{"init", "-q"}, {"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "x"}} {
		if out, err := exec.Command("git", append([]string{"-C", other}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	_, _, err = run("--project", "site", other)
	if ferry.ErrorCode(err) != ferry.ECONFLICT || !strings.Contains(err.Error(), "pass --project with another name") {
		t.Fatalf("name of another repository: %v", err)
	}
	// A failing build exits 2 with its reason.
	h.builder.fail.Store(true)
	_, logs, err = run(h.repo.Bare)
	if ferry.ErrorCode(err) != ferry.EBUILD || ferry.ExitCode(err) != 2 || !strings.Contains(err.Error(), "npm run build exited with 1") {
		t.Fatalf("failed build: %v\n%s", err, logs)
	}
	// A revoked or wrong token is the user's error too.
	u.token = "ferry_wrong"
	_, _, err = run(h.repo.Bare)
	if ferry.ErrorCode(err) != ferry.EUNAUTHORIZED || ferry.ExitCode(err) != 2 {
		t.Fatalf("wrong token: %v", err)
	}
}
