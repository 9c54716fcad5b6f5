package build

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

// escapeBuild runs a build whose build command is script (in a repo that has nothing else) and returns the
// logs and the error. The script's output is logged, so what it managed to read shows there.
func escapeBuild(t *testing.T, e *testEnv, script string, limits Limits) (string, error) {
	t.Helper()
	r := e.repo(map[string]string{
		"escape.sh":  script,
		"ferry.json": `{"buildCommand": "sh escape.sh", "outputDirectory": "dist"}`,
	})
	p := e.params(r)
	p.Limits = limits
	if p.Limits.Timeout == 0 {
		p.Limits.Timeout = time.Minute
	}
	_, err := Run(context.Background(), p)
	return e.logs.String(), err
}

func TestSandboxEscapes(t *testing.T) {
	skipShort(t, "each escape is a sandboxed build, some of them run into the timeout")
	requireBwrap(t)

	t.Run("env of ferry build", func(t *testing.T) {
		e := newTestEnv(t, "")
		t.Setenv("FERRY_WEBHOOK_SECRET", "canary-env-5f3a")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "canary-aws-77c1")
		logs, err := escapeBuild(t, e, `
env | sed 's/^/ENV: /'
cat /proc/*/environ 2>/dev/null | tr '\0' '\n' | sed 's/^/PROCENV: /'
mkdir -p dist && echo ok > dist/index.html
`, Limits{})
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		if !strings.Contains(logs, "ENV: CI=true") {
			t.Fatalf("the probe did not run:\n%s", logs)
		}
		for _, canary := range []string{"canary-env-5f3a", "canary-aws-77c1", "FERRY_WEBHOOK_SECRET"} {
			if strings.Contains(logs, canary) {
				t.Errorf("the build saw %s:\n%s", canary, logs)
			}
		}
	})

	t.Run("read a file outside the workspace", func(t *testing.T) {
		e := newTestEnv(t, "")
		dir := t.TempDir()
		canary := filepath.Join(dir, "app-private-key.pem")
		if err := os.WriteFile(canary, []byte("canary-file-9d2e"), 0o644); err != nil {
			t.Fatal(err)
		}
		logs, err := escapeBuild(t, e, `
cat `+canary+` /root/.gitconfig /etc/shadow /proc/1/root/`+canary+` 2>&1 | sed 's/^/READ: /'
ls / /etc /root /home 2>&1 | sed 's/^/LS: /'
mkdir -p dist && echo ok > dist/index.html
`, Limits{})
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		if !strings.Contains(logs, "READ: ") {
			t.Fatalf("the probe did not run:\n%s", logs)
		}
		if strings.Contains(logs, "canary-file-9d2e") {
			t.Errorf("the build read the canary:\n%s", logs)
		}
		if strings.Contains(logs, "LS: shadow") || strings.Contains(logs, "LS: "+filepath.Base(filepath.Dir(dir))) {
			t.Errorf("the build sees host files:\n%s", logs)
		}
	})

	t.Run("write outside the workspace", func(t *testing.T) {
		e := newTestEnv(t, "")
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		targets := []string{filepath.Join(dir, "pwned"), "/usr/pwned", "/pwned", "/etc/pwned", "/tmp/ferry-escape-pwned"}
		script := "mkdir -p dist && echo ok > dist/index.html\n"
		for _, target := range targets {
			script += "echo x > " + target + " && echo WROTE " + target + "\n"
		}
		logs, err := escapeBuild(t, e, script, Limits{})
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		for _, target := range targets {
			if _, err := os.Stat(target); err == nil {
				os.Remove(target)
				t.Errorf("the build wrote %s on the host", target)
			}
			if strings.Contains(logs, "WROTE "+target) && target != "/tmp/ferry-escape-pwned" {
				t.Errorf("the build could write %s inside the sandbox:\n%s", target, logs)
			}
		}
	})

	t.Run("fork bomb", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("the process limit is exact only when ferry drops to the sandbox user, which needs root")
		}
		e := newTestEnv(t, "")
		// Tries to start 300 processes under a limit of 64; dash says "Cannot fork" and stops.
		logs, err := escapeBuild(t, e, `
i=0
while [ $i -lt 300 ]; do sleep 3737 & i=$((i+1)); done
echo STARTED $i
`, Limits{Processes: 64, Timeout: 30 * time.Second})
		if err == nil || strings.Contains(logs, "STARTED 300") {
			t.Fatalf("the build started 300 processes under a limit of 64 (err %v):\n%s", err, logs)
		}
		wantCode(t, err, ferry.EBUILD, "step build")
		if !strings.Contains(err.Error(), "fork") {
			t.Errorf("error does not show the failed fork: %v", err)
		}
		waitNoLeftovers(t, "3737")
	})

	t.Run("process limit is not shared with other builds or host users", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to drop to the sandbox user")
		}
		// Processes of another build, or a service that runs as nobody (ferry dev's PostgreSQL), hold most of
		// a limit of 64 if the build's user is shared.
		for i := 0; i < 56; i++ {
			cmd := exec.Command("sleep", "6363")
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		}
		e := newTestEnv(t, "")
		logs, err := escapeBuild(t, e, `for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 0.3 & done; wait; mkdir -p dist && echo ok > dist/index.html`,
			Limits{Processes: 64, Timeout: 30 * time.Second})
		if err != nil {
			t.Fatalf("a build of 14 processes failed under a limit of 64 because other users' processes counted: %v\n%s", err, logs)
		}
	})

	t.Run("classic fork bomb is contained by the timeout", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to drop to the sandbox user")
		}
		e := newTestEnv(t, "")
		start := time.Now()
		_, err := escapeBuild(t, e, `bomb() { bomb | bomb & }; bomb; sleep 4242`, Limits{Processes: 64, Timeout: 4 * time.Second})
		wantCode(t, err, ferry.EBUILD)
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("took %s", d)
		}
		waitNoLeftovers(t, "4242")
	})

	t.Run("run past the timeout", func(t *testing.T) {
		e := newTestEnv(t, "")
		start := time.Now()
		_, err := escapeBuild(t, e, `echo started; (sleep 5151 &); sleep 5152`, Limits{Timeout: 2 * time.Second})
		wantCode(t, err, ferry.EBUILD, "timeout", "step build", "started")
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("the timeout of 2s took %s to stop the build", d)
		}
		waitNoLeftovers(t, "5151")
		waitNoLeftovers(t, "5152")
	})

	t.Run("symlink to /etc/passwd in the output", func(t *testing.T) {
		e := newTestEnv(t, "")
		_, err := escapeBuild(t, e, `mkdir -p dist && echo ok > dist/index.html && ln -s /etc/passwd dist/passwd.txt`, Limits{})
		wantCode(t, err, ferry.EBUILD, "passwd.txt", "link")
		if keys, _ := e.st.List(context.Background(), "projects/web/deployments/"); len(keys) != 0 {
			t.Errorf("a deployment was published: %v", keys)
		}
	})

	t.Run("output folder is a symlink out of the repository", func(t *testing.T) {
		e := newTestEnv(t, "")
		_, err := escapeBuild(t, e, `ln -s /etc dist`, Limits{})
		wantCode(t, err, ferry.EBUILD, "outside")
	})

	t.Run("checkout replaced by a link to a host folder", func(t *testing.T) {
		e := newTestEnv(t, "")
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "dist"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "dist", "index.html"), []byte("canary-host-dir-31c7"), 0o600); err != nil {
			t.Fatal(err)
		}
		// The build owns its workspace, so it can swap src itself for a link; the host must not follow it.
		_, err := escapeBuild(t, e, `cd / && rm -rf /build/src && ln -s `+dir+` /build/src`, Limits{})
		wantCode(t, err, ferry.EBUILD, "outside")
		if keys, _ := e.st.List(context.Background(), "projects/web/blobs/"); len(keys) != 0 {
			t.Errorf("host files were published: %v", keys)
		}
	})

	t.Run("file descriptors that ferry build inherited", func(t *testing.T) {
		e := newTestEnv(t, "")
		// A parent (a supervisor, a test runner, a builder passing a secret on a pipe) may start ferry build with
		// descriptors that are not close-on-exec; they must not reach the build.
		secret := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(secret, []byte("canary-fd-0c5e"), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(secret)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), syscall.F_SETFD, 0); errno != 0 {
			t.Fatal(errno)
		}
		logs, err := escapeBuild(t, e, fmt.Sprintf("ls /proc/self/fd | sed 's/^/FD: /'; cat <&%d; mkdir -p dist && echo ok > dist/index.html", f.Fd()), Limits{})
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		if !strings.Contains(logs, "FD: 0") {
			t.Fatalf("the probe did not run:\n%s", logs)
		}
		if strings.Contains(logs, "canary-fd-0c5e") {
			t.Errorf("the build read an inherited descriptor:\n%s", logs)
		}
	})

	t.Run("memory limit", func(t *testing.T) {
		e := newTestEnv(t, "")
		logs, err := escapeBuild(t, e, `node -e 'const a = []; for (let i = 0; i < 40; i++) a.push(Buffer.alloc(64 << 20, 1)); console.log("ALLOCATED", a.length * 64, "MiB")'`,
			Limits{Memory: 512 << 20})
		wantCode(t, err, ferry.EBUILD, "step build")
		if strings.Contains(logs, "ALLOCATED") {
			t.Errorf("the build allocated 2.5 GiB under a 512 MiB limit:\n%s", logs)
		}
	})
}

func TestSecretsMaskedInLogs(t *testing.T) {
	requireBwrap(t)
	e := newTestEnv(t, "")
	r := e.repo(map[string]string{"ferry.json": `{"buildCommand": "echo the key is $API_KEY; mkdir dist; echo ok > dist/index.html"}`})
	p := e.params(r)
	p.Env = map[string]string{"API_KEY": "sk-live-0123456789"}
	if _, err := Run(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	if strings.Contains(logs, "sk-live-0123456789") || !strings.Contains(logs, "the key is ***") {
		t.Errorf("secret not masked:\n%s", logs)
	}
}

// waitNoLeftovers fails when a process of the build (found by a marker in its command line) outlives it.
func waitNoLeftovers(t *testing.T, marker string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := leftovers(marker)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("build processes outlived the build:\n%s", strings.Join(left, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
