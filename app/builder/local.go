package builder

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryhq/ferry/internal/ferry"
)

// LocalConfig configures Local. Every field is optional.
type LocalConfig struct {
	// Command is the ferry binary followed by the arguments that select `ferry build`. Default: this very
	// executable (os.Executable) and "build". Tests point it at a binary of their own.
	Command []string
	// Env is added to the build runner's environment, which otherwise holds only PATH, HOME, TMPDIR, LANG and
	// the AWS_* variables (the storage credentials). Nothing else of the server's environment is passed on: not
	// the webhook secret, the App key or the database URL.
	Env []string
	// Sandbox is ferry build's --sandbox: "" keeps its default (bwrap); "none" is for trusted code only.
	Sandbox string
	// Timeout is ferry build's --timeout for install plus build; 0 keeps its default (15m).
	Timeout time.Duration
	// WorkDir holds the builds' workspaces (and secret files, where memory files are not available): the
	// App passes its workroot.Open folder, so that a crash leaves nothing the next start does not remove.
	// Default: the system's temp folder (ferry build then makes its own ferry-work folder there).
	WorkDir string
	// EgressAllow and CloneAllow are ferry build's --egress-allow and --clone-allow: ranges beyond the public
	// internet that builds (an internal registry) or only their clones (a git server on this machine) may
	// reach. Default: none.
	EgressAllow, CloneAllow []string
	// MaxDiskMiB and MaxTotalMemoryMiB are ferry build's --max-disk-mib and --max-total-memory-mib; 0 keeps
	// its defaults.
	MaxDiskMiB, MaxTotalMemoryMiB int64
	// KillGrace is how long a canceled build gets between SIGTERM and SIGKILL. Default 5s.
	KillGrace time.Duration
	// MaxResultBytes caps what is read from the runner's stdout (its --json result). Default 1 MiB.
	MaxResultBytes int64
}

// Local runs `ferry build` as a sub-process of the server. The sandbox is inside ferry build; Local's job is to
// keep the server's secrets away from it, stream its log, and tell user failures from infrastructure ones.
type Local struct {
	cfg LocalConfig
}

var _ Builder = (*Local)(nil)

// NewLocal returns a Local builder. It fails only when the default command cannot be found.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if len(cfg.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, ferry.Errorf(ferry.EINTERNAL, "find the ferry binary for local builds: %w", err)
		}
		cfg.Command = []string{exe, "build"}
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = 5 * time.Second
	}
	if cfg.MaxResultBytes <= 0 {
		cfg.MaxResultBytes = 1 << 20
	}
	return &Local{cfg: cfg}, nil
}

// Build runs one build to its end. Exit code 2 of ferry build (the user's code or config is at fault) is
// EBUILD; any other failure is EUNAVAILABLE, worth a retry. When ctx ends, the runner gets SIGTERM (it then
// kills its sandbox and removes its workspace) and SIGKILL after KillGrace; the error then wraps ctx's cause.
func (l *Local) Build(ctx context.Context, req Request) (*Result, error) {
	if req.Project == "" || req.CloneURL == "" || req.Storage == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "build %s: project, clone URL and storage are required", req.DeploymentID)
	}
	secrets, err := os.MkdirTemp(l.cfg.WorkDir, "ferry-secrets-")
	if err != nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "create secrets folder: %w", err)
	}
	defer os.RemoveAll(secrets)

	args := append([]string(nil), l.cfg.Command[1:]...)
	args = append(args, "--repo", req.CloneURL, "--project", req.Project, "--storage", req.Storage,
		"--json", "--log-format", "json")
	if req.DeploymentID != "" {
		args = append(args, "--deployment-id", req.DeploymentID)
	}
	args = append(args, req.args()...)
	if l.cfg.Sandbox != "" {
		args = append(args, "--sandbox", l.cfg.Sandbox)
	}
	if l.cfg.Timeout > 0 {
		args = append(args, "--timeout", l.cfg.Timeout.String())
	}
	if l.cfg.WorkDir != "" {
		args = append(args, "--workdir", l.cfg.WorkDir)
	}
	for _, r := range l.cfg.EgressAllow {
		args = append(args, "--egress-allow", r)
	}
	for _, r := range l.cfg.CloneAllow {
		args = append(args, "--clone-allow", r)
	}
	if l.cfg.MaxDiskMiB > 0 {
		args = append(args, "--max-disk-mib", strconv.FormatInt(l.cfg.MaxDiskMiB, 10))
	}
	if l.cfg.MaxTotalMemoryMiB > 0 {
		args = append(args, "--max-total-memory-mib", strconv.FormatInt(l.cfg.MaxTotalMemoryMiB, 10))
	}
	var extra []*os.File
	defer func() {
		for _, f := range extra {
			f.Close()
		}
	}()
	// handOver passes a secret to the runner as an inherited memory file (/dev/fd/N), so that it is never on
	// a disk a crash could leave it on; only where memfd_create fails does it go to a 0600 file in secrets,
	// which the next start removes if this process dies first (workroot.Open).
	handOver := func(flag, name string, b []byte) error {
		if f, err := memFile(name, b); err == nil {
			extra = append(extra, f)
			args = append(args, flag, fmt.Sprintf("/dev/fd/%d", 2+len(extra)))
			return nil
		}
		p := filepath.Join(secrets, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return ferry.Errorf(ferry.EUNAVAILABLE, "write %s file: %w", name, err)
		}
		args = append(args, flag, p)
		return nil
	}
	if req.Token != "" {
		if err := handOver("--token-file", "token", []byte(req.Token)); err != nil {
			return nil, err
		}
	}
	if len(req.Env) > 0 {
		b, err := envFile(req.Env)
		if err != nil {
			return nil, err
		}
		if err := handOver("--env-file", "env", b); err != nil {
			return nil, err
		}
	}

	cmd := exec.Command(l.cfg.Command[0], args...)
	cmd.ExtraFiles = extra
	cmd.Env = l.env()
	cmd.Dir = secrets
	// Its own process group, so that a cancel reaches everything it started; and SIGKILL when the server dies,
	// so that a crashed server leaves no build running behind it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stdout bytes.Buffer
	cmd.Stdout = &limitedWriter{w: &stdout, left: l.cfg.MaxResultBytes}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "build runner stderr: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "start the build runner %s: %w", l.cfg.Command[0], err)
	}
	pgid := cmd.Process.Pid
	// The runner has its own copies of the memory files; ours would only keep the secrets alive longer.
	for _, f := range extra {
		f.Close()
	}
	extra = nil

	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-time.After(l.cfg.KillGrace):
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			case <-stop:
			}
		case <-stop:
		}
	}()

	tail := readLog(stderr, req.Log)
	waitErr := cmd.Wait()
	close(stop)
	<-stopped
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // anything left in the group

	if ctx.Err() != nil {
		return nil, fmt.Errorf("build %s stopped: %w", req.DeploymentID, context.Cause(ctx))
	}
	if waitErr == nil {
		var res Result
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			return nil, ferry.Errorf(ferry.EINTERNAL, "read the build runner's result: %w", err)
		}
		return &res, nil
	}
	var exitErr *exec.ExitError
	if errors.As(waitErr, &exitErr) && exitErr.ExitCode() == ferry.ExitUser {
		return nil, ferry.Errorf(ferry.EBUILD, "%s", failureMessage(tail, "the build failed"))
	}
	return nil, ferry.Errorf(ferry.EUNAVAILABLE, "build runner failed (%v): %s", waitErr, failureMessage(tail, "no error message"))
}

// memFile returns a memory-backed file (memfd) holding b, read from its start, for a child to inherit.
func memFile(name string, b []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("ferry-"+name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "memfd:ferry-"+name)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// env is the build runner's whole environment.
func (l *Local) env() []string {
	env := []string{"LANG=C.UTF-8"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH", k == "HOME", k == "TMPDIR", strings.HasPrefix(k, "AWS_"):
			env = append(env, kv)
		}
	}
	return append(env, l.cfg.Env...)
}

// envFile renders env vars in the KEY=VALUE form that ferry build's --env-file reads, sorted for stable files.
func envFile(env map[string]string) ([]byte, error) {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		v := env[k]
		if strings.ContainsAny(v, "\r\n") || strings.ContainsAny(k, "=\r\n") {
			return nil, ferry.Errorf(ferry.EBUILD, "env var %q: names and values must be one line each; remove the line break in the project's settings", k)
		}
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	return b.Bytes(), nil
}

// tailLines is how many of the runner's plain (non-JSON) stderr lines are kept for the error message: the
// runner prints its final error as "ferry build: ..." in plain text, possibly over a few indented lines.
const tailLines = 20

// readLog turns the runner's JSON log records into LogLines as they arrive, and returns its last plain lines.
// Plain lines go to the log too (a runner that crashes says why there), except the runner's final error
// from its "ferry build: " line on: that becomes the deployment's error, which the worker logs once.
func readLog(r io.Reader, sink func(LogLine)) []string {
	var tail []string
	final := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if l, ok := parseLogLine(line); ok {
			if sink != nil {
				sink(l)
			}
			continue
		}
		s := strings.TrimRight(string(line), " \t\r")
		if strings.TrimSpace(s) == "" {
			continue
		}
		final = final || strings.HasPrefix(s, "ferry build: ")
		tail = append(tail, s)
		if len(tail) > tailLines {
			tail = tail[1:]
		}
		if sink != nil && !final {
			sink(LogLine{Time: time.Now(), Level: "ERROR", Step: "ferry", Message: strings.TrimSpace(s)})
		}
	}
	_, _ = io.Copy(io.Discard, r) // a line over the cap: drain, so the runner never blocks on a full pipe
	return tail
}

// parseLogLine reads one record of slog's JSON handler: time, level, msg, step, and any other attributes,
// which are appended to the message as key=value.
func parseLogLine(b []byte) (LogLine, bool) {
	if len(b) == 0 || b[0] != '{' {
		return LogLine{}, false
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		return LogLine{}, false
	}
	msg, ok := rec["msg"].(string)
	if !ok {
		return LogLine{}, false
	}
	l := LogLine{Message: msg, Step: "ferry", Level: "INFO"}
	if s, ok := rec["step"].(string); ok && s != "" {
		l.Step = s
	}
	if s, ok := rec["level"].(string); ok {
		l.Level = s
	}
	if s, ok := rec["time"].(string); ok {
		l.Time, _ = time.Parse(time.RFC3339Nano, s)
	}
	if l.Time.IsZero() {
		l.Time = time.Now()
	}
	var extra []string
	for k, v := range rec {
		switch k {
		case "time", "level", "msg", "step":
			continue
		}
		if f, ok := v.(float64); ok { // JSON numbers: 1000000, not 1e+06
			v = strconv.FormatFloat(f, 'f', -1, 64)
		}
		extra = append(extra, fmt.Sprintf("%s=%v", k, v))
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		l.Message += " " + strings.Join(extra, " ")
	}
	return l, true
}

// failureMessage is the runner's own error, from its "ferry build: " line to the end, without that prefix.
func failureMessage(tail []string, fallback string) string {
	for i := len(tail) - 1; i >= 0; i-- {
		if _, msg, ok := strings.Cut(tail[i], "ferry build: "); ok {
			return strings.Join(append([]string{msg}, tail[i+1:]...), "\n")
		}
	}
	if len(tail) > 0 {
		return strings.TrimSpace(tail[len(tail)-1])
	}
	return fallback
}

// limitedWriter keeps the first left bytes and drops the rest, so a runaway stdout cannot exhaust memory.
type limitedWriter struct {
	w    io.Writer
	left int64
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	n := len(p)
	if w.left <= 0 {
		return n, nil
	}
	if int64(len(p)) > w.left {
		p = p[:w.left]
	}
	w.left -= int64(len(p))
	_, err := w.w.Write(p)
	return n, err
}
