package build

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ferryhq/ferry/internal/ferry"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// ferryBinary builds the real ferry binary once per test run.
func ferryBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ferry-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "ferry")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/ferryhq/ferry").CombinedOutput()
		if err != nil {
			binErr = errors.New(string(out))
		}
	})
	if binErr != nil {
		t.Fatalf("go build ferry: %v", binErr)
	}
	return binPath
}

// runFerry runs `ferry build args...` with env added to a minimal environment; it returns stdout, stderr and
// the exit code.
func runFerry(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(ferryBinary(t), append([]string{"build"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		// The fixture git server is on loopback; the registry may be at a non-public address on this machine.
		"FERRY_CLONE_ALLOW=127.0.0.0/8,::1", "FERRY_EGRESS_ALLOW=" + prefixList(registryAllow(t))}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func TestCommandBinary(t *testing.T) {
	skipShort(t, "runs the real ferry binary through whole builds")
	requireBwrap(t)
	const token = "ghs_binarytoken_424242"
	e := newTestEnv(t, token)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("# project env\nGREETING=hush-hush-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := e.repo(map[string]string{
		"package.json": `{"name":"s","private":true,"scripts":{"build":"node build.js && echo said $GREETING"}}`,
		"build.js":     nodeScriptBuild,
	}, "feature")
	common := []string{"--repo", e.url + good.Path, "--token-file", tokenFile, "--project", "web", "--storage", e.stURL}

	t.Run("success with --json", func(t *testing.T) {
		stdout, stderr, code := runFerry(t, []string{"FERRY_WEBHOOK_SECRET=canary"},
			append(common, "--ref", "feature", "--alias", "git-feature", "--alias", "production", "--domain", "example.test",
				"--env-file", envFile, "--json")...)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		var out map[string]any
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
		}
		for _, k := range []string{"project", "deployment", "urls", "uploaded", "files", "bytes", "build_seconds", "step_seconds", "commit"} {
			if _, ok := out[k]; !ok {
				t.Errorf("--json lacks %q: %s", k, stdout)
			}
		}
		if out["commit"] != good.Commits[0] || out["build_seconds"].(float64) <= 0 {
			t.Errorf("result %s", stdout)
		}
		if !strings.Contains(stdout, "example.test") {
			t.Errorf("no URLs under the domain: %s", stdout)
		}
		if strings.Contains(stderr, token) || strings.Contains(stderr, "hush-hush-value") || !strings.Contains(stderr, "said ***") {
			t.Errorf("secrets not masked in the log:\n%s", stderr)
		}
		for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
			if len(line) < 25 || line[4] != '-' || line[10] != 'T' {
				t.Errorf("log line without a timestamp: %q", line)
			}
		}
	})
	t.Run("json logs", func(t *testing.T) {
		_, stderr, code := runFerry(t, nil, append(common, "--ref", good.Commits[0], "--log-format", "json")...)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		steps := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
			var rec struct {
				Time, Msg, Step string
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Time == "" {
				t.Fatalf("not a JSON log record: %q", line)
			}
			steps[rec.Step] = true
		}
		for _, s := range []string{StepClone, StepDetect, StepInstall, StepBuild, StepPublish} {
			if !steps[s] {
				t.Errorf("no log record of step %s", s)
			}
		}
	})
	t.Run("failing build exits 2 with the error line", func(t *testing.T) {
		bad := e.repo(map[string]string{"ferry.json": `{"buildCommand": "echo rendering page 7; echo 'TypeError: x is undefined' >&2; exit 1"}`})
		_, stderr, code := runFerry(t, nil, "--repo", e.url+bad.Path, "--token-file", tokenFile, "--project", "web", "--storage", e.stURL)
		if code != ferry.ExitUser {
			t.Errorf("exit %d, want 2", code)
		}
		last := stderr[strings.LastIndex(stderr, "ferry build:"):]
		for _, want := range []string{"step build", "exited with code 1", "TypeError: x is undefined"} {
			if !strings.Contains(last, want) {
				t.Errorf("final error lacks %q:\n%s", want, last)
			}
		}
		if strings.Contains(last, "rendering page 7") {
			t.Errorf("final error repeats output that is not an error:\n%s", last)
		}
	})
	t.Run("flags override ferry.json and detection", func(t *testing.T) {
		r := e.repo(map[string]string{
			"ferry.json":       `{"buildCommand": "exit 7"}`,
			"web/package.json": `{"name":"w","private":true,"scripts":{"build":"exit 8"}}`,
		})
		stdout, stderr, code := runFerry(t, nil, "--repo", e.url+r.Path, "--token-file", tokenFile, "--project", "web", "--storage", e.stURL,
			"--root-directory", "web", "--install-command", "", "--build-command", "mkdir -p site && echo flags > site/index.html",
			"--output-directory", "site", "--json")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		var out struct{ Deployment string }
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatal(err)
		}
		if body, _ := published(t, e.st, "web", out.Deployment, "/index.html"); body != "flags\n" {
			t.Errorf("/index.html = %q, want the --build-command's output", body)
		}
		if strings.Contains(stderr, "$ npm") {
			t.Errorf("--install-command \"\" still installed:\n%s", stderr)
		}
	})
	t.Run("bad ref exits 2", func(t *testing.T) {
		_, stderr, code := runFerry(t, nil, append(common, "--ref", "no-such-branch")...)
		if code != ferry.ExitUser || !strings.Contains(stderr, `ref "no-such-branch" not found`) {
			t.Errorf("exit %d\n%s", code, stderr)
		}
	})
	t.Run("missing bwrap exits 1", func(t *testing.T) {
		bin := t.TempDir()
		git, _ := exec.LookPath("git")
		if err := os.Symlink(git, filepath.Join(bin, "git")); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(ferryBinary(t), append([]string{"build", "--ref", "feature"}, common...)...)
		cmd.Env = []string{"PATH=" + bin, "HOME=" + t.TempDir()}
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != ferry.ExitInfra || !strings.Contains(string(out), "apt-get install bubblewrap") {
			t.Errorf("exit %d\n%s", cmd.ProcessState.ExitCode(), out)
		}
	})
	t.Run("missing flags exit 2", func(t *testing.T) {
		_, stderr, code := runFerry(t, nil, "--repo", e.url+good.Path)
		if code != ferry.ExitUser || !strings.Contains(stderr, "--project") {
			t.Errorf("exit %d\n%s", code, stderr)
		}
	})
}

func TestParseEnv(t *testing.T) {
	env, err := ParseEnv(strings.NewReader("# c\n\nA=1\nexport B = two=2\nC=\n"), "env")
	if err != nil || env["A"] != "1" || env["B"] != " two=2" || env["C"] != "" || len(env) != 3 {
		t.Fatalf("%v %v", env, err)
	}
	for _, bad := range []string{"NOVALUE", "1A=x", "A-B=x", "=x"} {
		if _, err := ParseEnv(strings.NewReader(bad), "env"); ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), "env:1") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParseEnv(f *testing.F) {
	for _, s := range []string{"A=1\n", "export X=y", "# x\n\nB==\n", "1=2", "A=\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		env, err := ParseEnv(strings.NewReader(s), "env")
		if err != nil {
			return
		}
		for k := range env {
			if !validEnvName(k) {
				t.Fatalf("accepted key %q", k)
			}
		}
	})
}
