package deploy

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// needTool skips when a tool is missing locally, and fails in CI, which installs it.
func needTool(t *testing.T, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed, and CI installs it: %s", name, hint)
	}
	t.Skipf("%s is not installed (%s)", name, hint)
	return ""
}

// TestDockerfileRunSteps runs, or checks, the exact commands of every RUN step, because no Docker engine is
// here to run them. Each RUN must match one case below; a new RUN step fails until it gets one.
func TestDockerfileRunSteps(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs the image's go build, apt and useradd steps here; run without -short")
	}
	d := loadDockerfile(t)
	var ctxDir string // the build context, made once for the build stage's steps
	for _, s := range d.stages {
		for _, in := range s.steps {
			if in.cmd != "RUN" {
				continue
			}
			run := in.args
			switch {
			case s.name == "build" && strings.HasPrefix(run, "go mod download"),
				s.name == "build" && strings.Contains(run, "go build"):
				if ctxDir == "" {
					ctxDir = buildContext(t)
				}
				runBuildStep(t, s, in, ctxDir)
			case strings.HasPrefix(run, "apt-get update"):
				checkAptStep(t, in)
			case strings.HasPrefix(run, "groupadd"):
				runUserStep(t, d, in)
			default:
				t.Errorf("line %d: RUN %s is not run by any test: add a case to TestDockerfileRunSteps", in.line, run)
			}
		}
	}
}

// runBuildStep runs a build-stage command with sh -c, as Docker does, in a copy of the build context, with the
// stage's ENV.
func runBuildStep(t *testing.T, s stage, in instruction, dir string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", in.args)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for _, st := range s.steps {
		if st.cmd == "ENV" {
			cmd.Env = append(cmd.Env, st.args)
		}
		if st.line > in.line {
			break
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("line %d: RUN %s: %v\n%s", in.line, in.args, err, out)
	}
	m := regexp.MustCompile(`-o (\S+)`).FindStringSubmatch(in.args)
	if m == nil {
		return
	}
	bin := filepath.Join(dir, m[1])
	checkBinary(t, bin, dir)
}

// checkBinary asserts what the go build flags promise: static (CGO_ENABLED=0), stripped (-s -w), no paths of
// the build machine (-trimpath), and a ferry that runs.
func checkBinary(t *testing.T, bin, buildDir string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("open built binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("ferry is dynamically linked; the build must set CGO_ENABLED=0")
		}
	}
	for _, sec := range f.Sections {
		if sec.Name == ".symtab" || strings.HasPrefix(sec.Name, ".debug_") || strings.HasPrefix(sec.Name, ".zdebug_") {
			t.Errorf("ferry has section %s; the build must strip with -ldflags \"-s -w\"", sec.Name)
		}
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(buildDir)) {
		t.Errorf("ferry contains the build folder %s; the build must use -trimpath", buildDir)
	}
	out, err := exec.Command(bin, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("ferry -h: %v\n%s", err, out)
	}
	for _, c := range []string{"proxy", "build", "action"} {
		if !strings.Contains(string(out), c) {
			t.Errorf("ferry -h does not list %s:\n%s", c, out)
		}
	}
}

// buildContext makes what `docker build .` sends: the committed tree (git archive HEAD, so that other people's
// unfinished files in a shared checkout do not count) less what .dockerignore excludes. Without git, or with
// FERRY_TEST_DOCKER_CONTEXT=worktree, it copies the working tree instead.
func buildContext(t *testing.T) string {
	t.Helper()
	ign := loadDockerignore(t)
	dir := t.TempDir()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	git, gitErr := exec.LookPath("git")
	if gitErr == nil {
		if _, err := os.Stat(filepath.Join(root, ".git")); err != nil {
			gitErr = err
		}
	}
	if gitErr == nil && os.Getenv("FERRY_TEST_DOCKER_CONTEXT") == "worktree" {
		gitErr = errors.New("FERRY_TEST_DOCKER_CONTEXT=worktree")
	}
	if gitErr != nil {
		t.Logf("%v: the context is the working tree", gitErr)
		err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			if rel == "." {
				return nil
			}
			if ign.excluded(rel) {
				if e.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if e.IsDir() || !e.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return writeFile(dir, rel, b, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
	cmd := exec.Command(git, "archive", "--format=tar", "HEAD")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git archive HEAD: %v\n%s", err, stderr.Bytes())
	}
	tr := tar.NewReader(bytes.NewReader(out))
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg || ign.excluded(h.Name) {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeFile(dir, h.Name, b, os.FileMode(h.Mode)&0o755); err != nil {
			t.Fatal(err)
		}
		n++
	}
	t.Logf("build context: %d files from HEAD after .dockerignore", n)
	return dir
}

func writeFile(dir, rel string, b []byte, mode os.FileMode) error {
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, b, mode|0o600)
}

// checkAptStep checks the apt-get step without changing this machine: every package has an install candidate
// in this Debian's archive (bookworm, as the image), and apt can resolve the install in a dry run. The step's
// exact command cannot run here: it would install packages on a shared machine and empty its apt lists.
func checkAptStep(t *testing.T, in instruction) {
	t.Helper()
	needTool(t, "apt-get", "the apt-get step is checked against Debian's archive")
	if !strings.HasSuffix(in.args, "rm -rf /var/lib/apt/lists/*") {
		t.Errorf("line %d: the apt step must end by removing /var/lib/apt/lists, or the image keeps them", in.line)
	}
	m := regexp.MustCompile(`apt-get install ((?:-\S+ )*)([a-z0-9.+ -]+?)(?: &&|$)`).FindStringSubmatch(in.args)
	if m == nil {
		t.Fatalf("line %d: no apt-get install in %s", in.line, in.args)
	}
	if !strings.Contains(m[1], "--no-install-recommends") || !strings.Contains(m[1], "-y") {
		t.Errorf("line %d: apt-get install needs -y and --no-install-recommends", in.line)
	}
	pkgs := strings.Fields(m[2])
	for _, want := range []string{"git", "bubblewrap", "ca-certificates"} {
		if !contains(pkgs, want) {
			t.Errorf("line %d: the image needs %s (builds and the local builder use it)", in.line, want)
		}
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil && !strings.Contains(string(b), "VERSION_CODENAME=bookworm") {
		t.Logf("this machine is not Debian bookworm; the candidates below come from its own release")
	}
	for _, p := range pkgs {
		out, err := exec.Command("apt-cache", "policy", p).CombinedOutput()
		if err != nil {
			t.Fatalf("apt-cache policy %s: %v\n%s", p, err, out)
		}
		c := regexp.MustCompile(`Candidate: (\S+)`).FindStringSubmatch(string(out))
		if c == nil || c[1] == "(none)" {
			t.Errorf("line %d: package %s has no install candidate (run apt-get update first?):\n%s", in.line, p, out)
		}
	}
	args := append([]string{"install", "--dry-run", "-y", "--no-install-recommends"}, pkgs...)
	if out, err := exec.Command("apt-get", args...).CombinedOutput(); err != nil {
		t.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// runUserStep runs the exact groupadd/useradd command inside bubblewrap, with private copies of /etc, /home and
// /var/log, so that it creates the user there and not on this machine; then checks the user matches USER.
func runUserStep(t *testing.T, d *dockerfile, in instruction) {
	t.Helper()
	bwrap := needTool(t, "bwrap", "apt-get install bubblewrap")
	if os.Geteuid() != 0 {
		t.Skip("useradd needs root (CI runs as root)")
	}
	tmp := t.TempDir()
	etc, home, varlog := filepath.Join(tmp, "etc"), filepath.Join(tmp, "home"), filepath.Join(tmp, "log")
	if out, err := exec.Command("cp", "-a", "/etc/.", etc).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc: %v\n%s", err, out)
	}
	for _, p := range []string{home, varlog} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The node base image has user node (1000); this machine's /etc stands in for it. Drop a clashing ferry.
	for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
		p := filepath.Join(etc, f)
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(l, "ferry:") {
				keep = append(keep, l)
			}
		}
		os.WriteFile(p, []byte(strings.Join(keep, "\n")), 0o600)
	}
	cmd := exec.Command(bwrap, "--dev-bind", "/", "/", "--bind", etc, "/etc", "--bind", home, "/home",
		"--bind", varlog, "/var/log", "--unshare-pid", "--die-with-parent", "sh", "-c", in.args)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("line %d: RUN %s: %v\n%s", in.line, in.args, err, out)
	}
	b, err := os.ReadFile(filepath.Join(etc, "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ferry:x:(\d+):(\d+):[^:\n]*:([^:\n]*):([^:\n]*)$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("no ferry user in the passwd the step wrote")
	}
	_, server := d.stage("server")
	user, _ := d.effective(server, "USER")
	if got := m[1] + ":" + m[2]; got != user {
		t.Errorf("useradd made ferry %s, but USER is %s", got, user)
	}
	if m[4] != "/usr/sbin/nologin" {
		t.Errorf("ferry's shell is %s, want /usr/sbin/nologin", m[4])
	}
	if fi, err := os.Stat(filepath.Join(home, path.Base(m[3]))); err != nil || !fi.IsDir() {
		t.Errorf("home %s was not created: %v", m[3], err)
	}
	if wd, _ := d.effective(server, "WORKDIR"); wd != m[3] {
		t.Errorf("WORKDIR %s, want ferry's home %s (writable by ferry)", wd, m[3])
	}
}
