package builder_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/builder"
	"github.com/ferryhq/ferry/internal/build/buildtest"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/workroot"
)

// crashingApp is the child of TestLocalBuildCrashLeavesNothing: an "App" that opens its work folder as ferry
// app does and runs one local build, until the test SIGKILLs it mid-build.
const crashingAppEnv = "BUILDER_TEST_CRASHING_APP"

func crashingApp() {
	spec := os.Getenv(crashingAppEnv)
	if spec == "" {
		return
	}
	// base|clone URL|ref|storage|token|env secret
	f := strings.Split(spec, "|")
	wr, err := workroot.Open(f[0], nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	l, err := builder.NewLocal(builder.LocalConfig{Command: buildtest.Command(), WorkDir: wr.Dir, Timeout: time.Minute})
	if err != nil {
		os.Exit(3)
	}
	_, err = l.Build(context.Background(), builder.Request{DeploymentID: site.NewDeploymentID(), Project: "web",
		CloneURL: f[1], Ref: f[2], Storage: f[3], Token: f[4], Env: map[string]string{"API_KEY": f[5]}})
	fmt.Fprintln(os.Stderr, "build ended:", err)
	os.Exit(4)
}

// TestLocalBuildCrashLeavesNothing is issue 11's "plaintext build secrets and workspaces left in /tmp after a
// crash", done for real: an App process runs a build whose command writes its env var into the workspace,
// and is SIGKILLed mid-build. Its workspace is left behind; the next start (workroot.Open, as ferry app
// and ferry dev call it) removes it, leaves a live process's folder and everything not Ferry's alone, and no
// secret text remains on disk. The token and env vars never touched the disk in the first place.
func TestLocalBuildCrashLeavesNothing(t *testing.T) {
	t.Parallel()
	buildtest.RequireBwrap(t)
	e := newEnv(t)
	const envSecret = "crash-env-secret-4f1d"
	marker := fmt.Sprintf("ferry-crash-marker-%d", time.Now().UnixNano())
	r := e.repo(t, "acme/crash", map[string]string{
		"ferry.json": `{"buildCommand": "echo $API_KEY > leaked.txt && touch ` + marker + ` && sleep 120"}`,
		"index.html": "x",
	})
	// Like the system's temp folder, the base must let the sandbox user through to its workspace.
	base, err := os.MkdirTemp("", "ferry-crash-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o711)
	// Not Ferry's: a neighbour in the same temp folder, and a stray file in ferry-work.
	os.WriteFile(filepath.Join(base, "other-app.txt"), []byte("keep"), 0o644)
	// A live Ferry process's folder: must survive every sweep.
	live, err := workroot.Open(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	os.WriteFile(filepath.Join(live.Dir, "busy"), []byte("in use"), 0o600)
	os.WriteFile(filepath.Join(base, workroot.Name, "README"), []byte("keep"), 0o644)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashingAppEnv+"="+strings.Join([]string{base, e.gitURL + r.Path, r.Commits[0], e.storeURL, e.token, envSecret}, "|"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !found(base, marker) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the build never reached its command; app stderr:\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for deadline = time.Now().Add(5 * time.Second); len(leftovers(marker)) > 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("build processes outlived the App: %q", leftovers(marker))
		}
	}
	if !containsText(t, base, envSecret) {
		t.Fatal("the crash left no workspace behind: the test does not test anything")
	}

	next, err := workroot.Open(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	for _, secret := range []string{envSecret, e.token} {
		if containsText(t, base, secret) {
			t.Errorf("after the restart, %q is still on disk below %s", secret, base)
		}
	}
	if found(base, marker) {
		t.Error("the crashed build's workspace is still there")
	}
	for _, keep := range []string{filepath.Join(base, "other-app.txt"), filepath.Join(live.Dir, "busy"), filepath.Join(base, workroot.Name, "README")} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("the sweep removed %s, which is not a crashed run's: %v", keep, err)
		}
	}
}

// found reports whether a file named name lies anywhere below root.
func found(root, name string) bool {
	hit := false
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == name {
			hit = true
		}
		return nil
	})
	return hit
}

// containsText reports whether any regular file below root holds s.
func containsText(t *testing.T, root, s string) bool {
	t.Helper()
	hit := false
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(s)) {
			hit = true
		}
		return nil
	})
	return hit
}

// TestLocalBuildSecretsNotInherited: the token and env file reach ferry build as memory files, and the build's
// commands, which list every open descriptor they can see, find neither: not in the sandbox, and not even
// with --sandbox none, where ferry build's inherited descriptors would reach them unless it closes them.
func TestLocalBuildSecretsNotInherited(t *testing.T) {
	t.Parallel()
	buildtest.RequireBwrap(t)
	e := newEnv(t)
	r := e.repo(t, "acme/fds", map[string]string{
		"ferry.json": `{"buildCommand": "mkdir -p out && for f in /proc/[0-9]*/fd/*; do echo \"$f $(readlink $f)\"; done > out/index.html; p=$$; while [ $p -gt 1 ]; do echo \"ancestor $p\"; p=$(cut -d' ' -f4 /proc/$p/stat); done >> out/index.html", "outputDirectory": "out"}`,
	})
	for _, sandbox := range []string{"", "none"} {
		l, err := builder.NewLocal(builder.LocalConfig{Command: buildtest.Command(), Sandbox: sandbox, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		var log lines
		res, err := l.Build(context.Background(), builder.Request{
			DeploymentID: site.NewDeploymentID(), Project: "web", CloneURL: e.gitURL + r.Path, Ref: r.Commits[0],
			Token: e.token, Env: map[string]string{"API_KEY": "fd-env-secret"}, Storage: e.storeURL, Log: log.add,
		})
		if err != nil {
			t.Fatalf("sandbox %q: build: %v\n%s", sandbox, err, log.text())
		}
		page := publishedPage(t, e, res.Deployment)
		if !strings.Contains(page, "ancestor ") {
			t.Fatalf("the build could not list its descriptors, so the test proves nothing:\n%s", page)
		}
		// Without a sandbox the build sees every process of the host, other tests' included: those of its own
		// chain (its shell, ferry build) must hold no secret's descriptor.
		ancestors := map[string]bool{}
		for _, line := range strings.Split(page, "\n") {
			if pid, ok := strings.CutPrefix(line, "ancestor "); ok {
				ancestors[pid] = true
			}
		}
		for _, line := range strings.Split(page, "\n") {
			pid, _, _ := strings.Cut(strings.TrimPrefix(line, "/proc/"), "/")
			if strings.Contains(line, "memfd:") && (sandbox == "" || ancestors[pid]) {
				t.Errorf("sandbox %q: the build's commands can see a secret's descriptor: %s", sandbox, line)
			}
		}
	}
}

func publishedPage(t *testing.T, e *env, deployment string) string {
	t.Helper()
	m, err := site.NewStore(e.st).ManifestGet(context.Background(), "web", deployment)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := m.Files["/index.html"]
	if !ok {
		t.Fatalf("no /index.html in %v", m.Files)
	}
	rc, err := e.st.Get(context.Background(), site.BlobKey("web", f.Blob))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b bytes.Buffer
	b.ReadFrom(rc)
	return b.String()
}
