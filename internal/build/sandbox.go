package build

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferryhq/ferry/internal/egress"
	"github.com/ferryhq/ferry/internal/ferry"
)

// Sandbox modes for Params.Sandbox.
const (
	// SandboxBwrap runs install and build commands under bubblewrap. It is the default.
	SandboxBwrap = "bwrap"
	// SandboxNone runs them directly on the host, with a fresh environment but the host's file system. Only for
	// trusted code, for example in a CI runner that is itself the sandbox.
	SandboxNone = "none"
)

// Limits bound what one build's commands may use. Zero fields take the defaults in DefaultLimits.
type Limits struct {
	// Timeout is the wall-clock time for install plus build. Default 15m.
	Timeout time.Duration
	// Processes caps the processes (RLIMIT_NPROC) of the sandbox user; it stops fork bombs. Default 512.
	Processes int
	// Memory caps each process's data segment (RLIMIT_DATA, which counts heap and private writable mappings
	// but not the address space that V8 reserves). Default 4 GiB.
	Memory int64
	// FileSize caps any one file a build writes (RLIMIT_FSIZE). Default 1 GiB.
	FileSize int64
	// TmpSize caps the private /tmp, which lives in memory. Default 1 GiB.
	TmpSize int64
	// OutputSize caps the total size of the published output folder. Default 1 GiB.
	OutputSize int64
	// LogLines caps the output lines a build may log; the rest is dropped, with one notice. Default 20000.
	LogLines int
	// Disk caps the workspace as a whole (checkout, node_modules, caches), which is a tmpfs of this size when
	// ferry runs as root. Default 4 GiB.
	Disk int64
	// TotalMemory caps the memory of all of the build's processes together, and of the files they write to
	// the in-memory workspace, through a memory cgroup where the host has a writable one. Default 6 GiB.
	TotalMemory int64
}

// DefaultLimits are what `ferry build` uses when a flag is not given.
var DefaultLimits = Limits{
	Timeout:     15 * time.Minute,
	Processes:   512,
	Memory:      4 << 30,
	FileSize:    1 << 30,
	TmpSize:     1 << 30,
	OutputSize:  1 << 30,
	LogLines:    20000,
	Disk:        4 << 30,
	TotalMemory: 6 << 30,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.Timeout > 0 {
		d.Timeout = l.Timeout
	}
	if l.Processes > 0 {
		d.Processes = l.Processes
	}
	if l.Memory > 0 {
		d.Memory = l.Memory
	}
	if l.FileSize > 0 {
		d.FileSize = l.FileSize
	}
	if l.TmpSize > 0 {
		d.TmpSize = l.TmpSize
	}
	if l.OutputSize > 0 {
		d.OutputSize = l.OutputSize
	}
	if l.LogLines > 0 {
		d.LogLines = l.LogLines
	}
	if l.Disk > 0 {
		d.Disk = l.Disk
	}
	if l.TotalMemory > 0 {
		d.TotalMemory = l.TotalMemory
	}
	return d
}

// sandboxUID is the user that build commands run as inside the sandbox.
const sandboxUID = 65534

// Outside the sandbox (when ferry runs as root), each build runs as its own unused user, picked from
// [buildUIDBase, buildUIDBase+buildUIDRange). A non-root user is what makes RLIMIT_NPROC count (the kernel
// exempts root), and a user of its own is what makes the count this build's alone: with a shared one (nobody),
// a concurrent build or a host service running as nobody would use up the limit and fail this build.
const (
	buildUIDBase  = 1 << 24
	buildUIDRange = 1 << 24
)

// insideRoot is where the workspace appears inside the sandbox; host paths never show.
const insideRoot = "/build"

// sandbox runs shell commands of one build. The workspace (hostRoot) is the only writable place.
type sandbox struct {
	mode     string
	hostRoot string // the workspace on the host: src/, home/, cache/
	etcDir   string // root-owned minimal passwd/group, bound read-only
	limits   Limits
	bwrap    string
	prlimit  string
	binds    []string          // extra read-only toolchain folders outside /usr
	extraEnv map[string]string // operator settings passed to every command (CA files)
	path     string            // PATH inside
	dropUID  bool              // ferry is root: run as uid outside
	uid      int               // the build's own user outside the sandbox, when dropUID
	egress   *egressProxy      // the only way out of the sandbox's network namespace (bwrap mode)
	cgroup   *memCgroup        // the build's memory cgroup, or nil where the host has none
	log      *slog.Logger
}

// ErrNoBwrap says why ferry build refuses to run without a sandbox.
var errNoBwrap = ferry.Errorf(ferry.EINTERNAL,
	"bubblewrap (bwrap) is not installed, and build commands are untrusted code: install it (apt-get install bubblewrap) or, only for trusted code, pass --sandbox=none")

// newSandbox checks that the tools exist and prepares the read-only views. etcDir must be outside hostRoot.
func newSandbox(mode, hostRoot, etcDir string, limits Limits, log *slog.Logger) (*sandbox, error) {
	s := &sandbox{mode: mode, hostRoot: hostRoot, etcDir: etcDir, limits: limits, log: log}
	s.prlimit, _ = exec.LookPath("prlimit")
	switch mode {
	case SandboxBwrap, "":
		s.mode = SandboxBwrap
		p, err := exec.LookPath("bwrap")
		if err != nil {
			return nil, errNoBwrap
		}
		s.bwrap = p
		if s.prlimit == "" {
			return nil, ferry.Errorf(ferry.EINTERNAL, "prlimit is not installed (it applies the process and memory limits): install util-linux")
		}
		s.dropUID = os.Geteuid() == 0
		s.uid = buildUIDBase + rand.IntN(buildUIDRange)
	case SandboxNone:
		log.Warn("SANDBOX DISABLED (--sandbox=none): install and build commands run on this host with its file system; use only for trusted code")
	default:
		return nil, ferry.Errorf(ferry.EINVALID, "--sandbox %q: want bwrap or none", mode)
	}
	if err := s.toolchain(); err != nil {
		return nil, err
	}
	return s, nil
}

// toolchain finds node, npm, corepack, yarn, pnpm and git, and binds the install prefix of each one that lives
// outside /usr (setup-node's tool cache, /opt, nvm), read-only.
func (s *sandbox) toolchain() error {
	pathDirs := []string{}
	seen := map[string]bool{}
	for _, tool := range []string{"node", "npm", "npx", "corepack", "yarn", "pnpm", "git"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			continue
		}
		bin := filepath.Dir(p)
		if !seen[bin] {
			seen[bin] = true
			pathDirs = append(pathDirs, bin)
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			continue
		}
		for _, d := range []string{bin, filepath.Dir(filepath.Dir(real))} {
			if underSystem(d) || seen["bind:"+d] {
				continue
			}
			seen["bind:"+d] = true
			s.binds = append(s.binds, d)
		}
	}
	for _, d := range []string{"/usr/local/bin", "/usr/bin", "/bin"} {
		if !seen[d] {
			pathDirs = append(pathDirs, d)
		}
	}
	if s.mode == SandboxBwrap {
		s.path = insideRoot + "/bin:" + strings.Join(pathDirs, ":")
	} else {
		s.path = filepath.Join(s.hostRoot, "bin") + ":" + strings.Join(pathDirs, ":")
	}
	return nil
}

func underSystem(d string) bool {
	for _, sys := range []string{"/usr", "/bin", "/sbin", "/lib", "/lib64"} {
		if d == sys || strings.HasPrefix(d, sys+"/") {
			return true
		}
	}
	return false
}

// dir maps a path relative to the workspace to the path the commands see.
func (s *sandbox) dir(rel string) string {
	if s.mode == SandboxBwrap {
		return filepath.Join(insideRoot, rel)
	}
	return filepath.Join(s.hostRoot, rel)
}

// commandError is a user command that exited non-zero or ran out of time.
type commandError struct {
	Step        string
	ExitCode    int
	TimedOut    bool
	OutOfMemory bool // the kernel killed a process for going over the build's memory cgroup limit
	Tail        []string
	Causes      []string // lines that state the cause, from anywhere in the output
}

func (e *commandError) Error() string {
	what := fmt.Sprintf("exited with code %d", e.ExitCode)
	switch {
	case e.TimedOut:
		what = "was stopped: the build ran past its timeout"
	case e.OutOfMemory:
		what = "was stopped: the build's processes together used more memory than its limit"
	}
	msg := fmt.Sprintf("step %s %s", e.Step, what)
	var earlier []string
	for _, c := range e.Causes {
		if !contains(e.Tail, c) {
			earlier = append(earlier, c)
		}
	}
	sep := ":\n    "
	if len(earlier) > 0 {
		msg += "; the cause, from earlier in its output:\n    " + strings.Join(earlier, "\n    ")
		sep = "; at the end:\n    "
	}
	// The error lines alone: the whole output is in the log just above, and printing its tail again made
	// the failure appear twice (issue 18).
	if lines := ErrorLines(e.Tail); len(lines) > 0 {
		msg += sep + strings.Join(lines, "\n    ")
	}
	return msg
}

// run runs command with sh -c in the workspace folder rel, with exactly env, streaming its output to out.
// deadline bounds it; on expiry every process of the command is killed (the PID namespace dies with bwrap).
func (s *sandbox) run(ctx context.Context, deadline time.Time, step, rel, command string, env []string, out *lineWriter) error {
	args := s.argv(rel, command)
	runCtx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	cmd := exec.Command(args[0], args[1:]...)
	// The environment passes through prlimit and bwrap unchanged: values (project secrets) never go through
	// argv, where /proc/<pid>/cmdline would show them to every host user.
	cmd.Env = env
	cmd.Dir = s.hostRoot // bwrap's --chdir moves into rel
	if s.mode == SandboxNone {
		cmd.Dir = s.dir(rel)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if s.dropUID {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.uid), Groups: []uint32{}}
	}
	if s.cgroup != nil {
		wrapped, release, err := s.cgroup.enter(cmd.SysProcAttr, cmd.Args)
		if err != nil {
			return ferry.Errorf(ferry.EINTERNAL, "start %s in the build's cgroup: %w", step, err)
		}
		defer release()
		cmd.Path, cmd.Args = wrapped[0], wrapped
	}
	closeInheritedFiles()
	if err := cmd.Start(); err != nil {
		return ferry.Errorf(ferry.EINTERNAL, "start %s: %w", step, err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-runCtx.Done():
			// The whole process group: bwrap (whose PID namespace takes every build process with it), or the
			// commands themselves with --sandbox=none.
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	err := cmd.Wait()
	close(done)
	if s.mode == SandboxNone {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // leftovers in the group
	}
	out.flush()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	ce := &commandError{Step: step, ExitCode: -1, Tail: append([]string(nil), out.tail...), Causes: append([]string(nil), out.causes...)}
	if runCtx.Err() != nil {
		ce.TimedOut = true
		return ce
	}
	ce.OutOfMemory = s.cgroup.oomKilled()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ce.ExitCode = ee.ExitCode()
		if s.mode == SandboxBwrap && bwrapFailed(out.tail) {
			return ferry.Errorf(ferry.EINTERNAL, "the sandbox (bwrap) failed to start: %s", strings.Join(out.tail, " | "))
		}
		return ce
	}
	return ferry.Errorf(ferry.EINTERNAL, "run %s: %w", step, err)
}

// closeInheritedFiles marks every descriptor above stderr close-on-exec. Go opens its own files that way, but
// descriptors that ferry's parent left open (a supervisor's socket, a secret passed on a pipe) are not, and
// neither prlimit nor bwrap closes them: without this, the build could read them.
func closeInheritedFiles() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// bwrapFailed recognises bubblewrap's own setup errors ("bwrap: ..."), which are the host's fault.
func bwrapFailed(tail []string) bool {
	return len(tail) > 0 && strings.HasPrefix(tail[len(tail)-1], "bwrap: ")
}

// argv builds the command line: prlimit sets the limits, then bwrap builds the sandbox, then sh runs the
// user's command.
func (s *sandbox) argv(rel, command string) []string {
	var a []string
	if s.prlimit != "" {
		a = append(a, s.prlimit,
			"--nproc="+strconv.Itoa(s.limits.Processes),
			"--data="+strconv.FormatInt(s.limits.Memory, 10),
			"--fsize="+strconv.FormatInt(s.limits.FileSize, 10),
			"--core=0",
			"--")
	}
	if s.mode == SandboxNone {
		return append(a, "/bin/sh", "-c", command)
	}
	a = append(a, s.bwrap,
		// A network namespace of its own: only lo, no host sockets in /proc/net, no host ports to bind; the
		// egress proxy's socket below is the only way out.
		"--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--unshare-net",
		"--uid", strconv.Itoa(sandboxUID), "--gid", strconv.Itoa(sandboxUID),
		"--hostname", "ferry-build",
		"--die-with-parent", "--new-session",
		"--ro-bind", "/usr", "/usr",
	)
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			if target, err := os.Readlink(d); err == nil {
				a = append(a, "--symlink", target, d)
			}
		case fi.IsDir():
			a = append(a, "--ro-bind", d, d)
		}
	}
	// Only what name resolution and TLS need from /etc, plus a passwd that knows the build user.
	for _, f := range []string{"/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf",
		"/etc/gai.conf", "/etc/ssl", "/etc/ca-certificates", "/etc/pki", "/etc/alternatives", "/etc/localtime"} {
		if _, err := os.Stat(f); err == nil {
			a = append(a, "--ro-bind", f, f)
		}
	}
	a = append(a,
		"--ro-bind", filepath.Join(s.etcDir, "passwd"), "/etc/passwd",
		"--ro-bind", filepath.Join(s.etcDir, "group"), "/etc/group",
		"--proc", "/proc",
		"--dev", "/dev",
		"--size", strconv.FormatInt(s.limits.TmpSize, 10), "--tmpfs", "/tmp",
		"--bind", s.hostRoot, insideRoot,
	)
	if s.egress != nil {
		a = append(a, "--bind", s.egress.sock, insideEgressSock, "--ro-bind", s.egress.forwarder, insideForwarder)
	}
	// After the private /tmp, so that a toolchain under /tmp (setup-node's, a tool cache) stays visible.
	for _, d := range s.binds {
		a = append(a, "--ro-bind", d, d)
	}
	a = append(a,
		"--remount-ro", "/",
		"--chdir", s.dir(rel),
		"--disable-userns",
		"--",
	)
	if s.egress != nil {
		a = append(a, insideForwarder, egress.ForwardArg, insideEgressSock, insideProxyAddr, "--")
	}
	return append(a, "/bin/sh", "-c", command)
}

// writeEtc writes the minimal /etc/passwd and /etc/group that npm and git expect (they look up the current
// user), into a root-owned folder outside the workspace.
func writeEtc(dir string) error {
	files := map[string]string{
		"passwd": "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:" + insideRoot + "/home:/bin/sh\n",
		"group":  "root:x:0:\nnogroup:x:65534:\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return fmt.Errorf("write sandbox /etc/%s: %w", name, err)
		}
	}
	return nil
}
