// Package pgcluster runs a private PostgreSQL cluster as a child process: initdb once, then postgres on a unix
// socket in its own folder. The test harness (internal/pgtest) starts a throw-away one per test binary, and
// `ferry dev` keeps one in .ferry/postgres whose data survives restarts. Nothing listens on TCP, so clusters of
// several processes never fight over a port.
//
// PostgreSQL refuses to run as root. When the caller is root, the cluster's files are chowned to an unprivileged
// user (Options.User, "nobody" by default) and initdb and postgres run as that user. The data folder's parents
// must then be reachable by that user: /tmp is, /root is not.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/internal/ferry"
)

// InstallHint is what a user missing PostgreSQL should do; errors and test skips repeat it.
const InstallHint = "install PostgreSQL (for example `apt-get install postgresql`) or set the bin folder with FERRY_PG_BINDIR"

// Superuser is the role initdb creates; clusters trust it over their private socket only.
const Superuser = "postgres"

// port only names the socket file (.s.PGSQL.<port>): there is no TCP listener, so it never collides.
const port = 5432

// Options says where and how to run a cluster. The zero value is not usable: Dir is required.
type Options struct {
	// Dir is the cluster's folder: data in Dir/data, the socket in Dir/run, the server log in Dir/postgres.log.
	// A Dir that already holds a cluster is started as is, so data survives restarts.
	Dir string
	// BinDir holds initdb and postgres. Default: FindBinDir().
	BinDir string
	// User is the OS user that owns and runs the cluster when the caller is root. Default: "nobody".
	// Ignored when the caller is not root: the cluster then runs as the caller.
	User string
	// Ephemeral turns durability off (fsync, full_page_writes, synchronous_commit) for throw-away test clusters.
	// Default false: a crash does not lose committed data.
	Ephemeral bool
	// Settings are extra postgresql.conf lines ("name = value"), applied at every start.
	Settings map[string]string
	// StartTimeout bounds the wait for the server to accept connections. Default 60s.
	StartTimeout time.Duration
}

// Cluster is a running server. Stop it with Stop; if this process dies first, the kernel sends the server
// SIGINT (a fast shutdown), so no postgres outlives its parent.
type Cluster struct {
	dir       string
	socketDir string
	logPath   string
	cmd       *exec.Cmd
	exited    chan struct{} // closed when the server process has exited
	waitErr   error         // valid after exited is closed
}

// FindBinDir locates the folder that holds initdb and postgres: $FERRY_PG_BINDIR, then PATH, then the newest
// /usr/lib/postgresql/*/bin, then `pg_config --bindir`. The error says how to install PostgreSQL.
func FindBinDir() (string, error) {
	var candidates []string
	if d := os.Getenv("FERRY_PG_BINDIR"); d != "" {
		candidates = append(candidates, d)
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			candidates = append(candidates, filepath.Dir(real))
		}
		candidates = append(candidates, filepath.Dir(p))
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(versions, func(i, j int) bool { return majorOf(versions[i]) > majorOf(versions[j]) })
	candidates = append(candidates, versions...)
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	for _, d := range candidates {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", ferry.Errorf(ferry.EUNAVAILABLE, "PostgreSQL binaries (initdb, postgres) not found: %s", InstallHint)
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Start initialises Dir when it holds no cluster yet, then starts postgres and waits until it accepts connections.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.Dir == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "start postgres: no cluster folder given")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if opts.BinDir == "" {
		if opts.BinDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{"initdb", "postgres"} {
		if !isExecutable(filepath.Join(opts.BinDir, name)) {
			return nil, ferry.Errorf(ferry.EUNAVAILABLE, "no %s in %s: %s", name, opts.BinDir, InstallHint)
		}
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	cred, err := credential(opts.User)
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, socketDir: filepath.Join(dir, "run"), logPath: filepath.Join(dir, "postgres.log"), exited: make(chan struct{})}
	// A unix socket path may hold at most 107 bytes; a deep Dir gets its socket in a short temporary folder.
	if len(c.socketDir)+len("/.s.PGSQL.5432.lock") > 100 {
		if c.socketDir, err = os.MkdirTemp("", "ferry-pg-"); err != nil {
			return nil, fmt.Errorf("start postgres: %w", err)
		}
		defer func() {
			if err != nil {
				os.RemoveAll(c.socketDir)
			}
		}()
	}
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if err := reachable(dir, cred); err != nil {
		return nil, err
	}
	for _, d := range []string{dir, c.socketDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("start postgres: %w", err)
		}
		if err := chown(d, cred); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		if err := initdb(ctx, opts.BinDir, dir, dataDir, cred); err != nil {
			return nil, err
		}
	}
	if err := writeSettings(dataDir, c.socketDir, opts, cred); err != nil {
		return nil, err
	}
	if err := c.start(ctx, opts.BinDir, dataDir, cred, opts.StartTimeout); err != nil {
		return nil, err
	}
	return c, nil
}

// credential returns who the cluster runs as: nil (the caller) unless the caller is root.
func credential(name string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if name == "" {
		name = "nobody"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, &ferry.Error{Code: ferry.EUNAVAILABLE, Err: err,
			Message: fmt.Sprintf("PostgreSQL cannot run as root, and the user %q to run it as is missing (create it, for example `useradd --system %s`)", name, name)}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("look up user %s: %w", name, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// reachable checks that the unprivileged cluster user may traverse every folder above dir, so that a root caller
// learns which folder blocks it instead of reading initdb's "permission denied".
func reachable(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("start postgres: %w", err)
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if ok {
			perm := st.Mode().Perm()
			var can bool
			switch {
			case sys.Uid == cred.Uid:
				can = perm&0o100 != 0
			case sys.Gid == cred.Gid:
				can = perm&0o010 != 0
			default:
				can = perm&0o001 != 0
			}
			if !can {
				return ferry.Errorf(ferry.EUNAVAILABLE, "PostgreSQL cannot run as root, and uid %d that runs it cannot enter %s (mode %v): put the cluster elsewhere, open that folder (chmod o+x), or run as a non-root user", cred.Uid, d, perm)
			}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func chown(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("hand %s to the postgres user: %w", path, err)
	}
	return nil
}

// childEnv is the whole environment of initdb and postgres: the caller's secrets never reach the server.
func childEnv() []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", "LANG=C", "TZ=UTC"}
}

func initdb(ctx context.Context, binDir, dir, dataDir string, cred *syscall.Credential) error {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"--pgdata", dataDir, "--username", Superuser, "--auth", "trust", "--encoding", "UTF8", "--no-locale",
		"--no-sync", "--no-instructions")
	cmd.Dir = dir
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("initdb %s: %v: %s", dataDir, err, bytes.TrimSpace(out))
		if cred != nil {
			msg += fmt.Sprintf(" (running as root, the cluster runs as uid %d, which must be able to reach %s)", cred.Uid, dir)
		}
		return ferry.Errorf(ferry.EUNAVAILABLE, "%s", msg)
	}
	return nil
}

// writeSettings rewrites postgresql.auto.conf at every start, so that a moved folder or changed options apply.
func writeSettings(dataDir, socketDir string, opts Options, cred *syscall.Credential) error {
	settings := map[string]string{
		"listen_addresses":        "''",
		"unix_socket_directories": quote(socketDir),
		"unix_socket_permissions": "0700",
		"port":                    strconv.Itoa(port),
		"max_connections":         "200",
		"shared_buffers":          "32MB",
		"logging_collector":       "off",
	}
	if opts.Ephemeral {
		settings["fsync"] = "off"
		settings["full_page_writes"] = "off"
		settings["synchronous_commit"] = "off"
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by ferry at every start; edits here are lost.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, settings[k])
	}
	path := filepath.Join(dataDir, "postgresql.auto.conf")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write postgres settings: %w", err)
	}
	return chown(path, cred)
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (c *Cluster) start(ctx context.Context, binDir, dataDir string, cred *syscall.Credential, timeout time.Duration) error {
	logFile, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open postgres log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor
	c.cmd = exec.Command(filepath.Join(binDir, "postgres"), "-D", dataDir)
	c.cmd.Dir = c.dir
	c.cmd.Env = childEnv()
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	// Own process group: a terminal's Ctrl-C reaches us, and we shut the server down in order.
	// Pdeathsig: if we die without Stop, the kernel asks the server for a fast shutdown.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGINT}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the creating thread ends, not the process; keep this thread alive, and locked to
		// this goroutine, for as long as the server runs (go.dev/issue/27505).
		runtime.LockOSThread()
		if err := c.cmd.Start(); err != nil {
			started <- err
			runtime.UnlockOSThread()
			return
		}
		started <- nil
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-c.exited:
			return ferry.Errorf(ferry.EUNAVAILABLE, "postgres exited at start (%v); its log %s ends with:\n%s", c.waitErr, c.logPath, c.logTail())
		case <-ctx.Done():
			_ = c.Stop(context.Background())
			return ferry.Errorf(ferry.EUNAVAILABLE, "postgres did not accept connections within %s (last error: %v); its log %s ends with:\n%s", timeout, err, c.logPath, c.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *Cluster) logTail() string {
	b, _ := os.ReadFile(c.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// URL is a connection string for database on this cluster, as the superuser over the private socket.
func (c *Cluster) URL(database string) string {
	q := url.Values{"host": {c.socketDir}, "port": {strconv.Itoa(port)}, "sslmode": {"disable"}}
	return (&url.URL{Scheme: "postgres", User: url.User(Superuser), Path: "/" + database, RawQuery: q.Encode()}).String()
}

// Dir is the cluster's folder.
func (c *Cluster) Dir() string { return c.dir }

// LogPath is the server's log file, for error messages that point operators at it.
func (c *Cluster) LogPath() string { return c.logPath }

// Stop shuts the server down fast (open sessions are ended, data is kept) and waits for it, escalating to an
// immediate shutdown when ctx ends first. Stopping a stopped cluster is a no-op.
func (c *Cluster) Stop(ctx context.Context) error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	select {
	case <-c.exited:
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
	case <-ctx.Done():
		_ = c.cmd.Process.Signal(syscall.SIGQUIT)
		<-c.exited
		return fmt.Errorf("stop postgres: %w", ctx.Err())
	}
	if c.socketDir != filepath.Join(c.dir, "run") {
		_ = os.RemoveAll(c.socketDir)
	}
	return nil
}
