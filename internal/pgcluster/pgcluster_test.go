package pgcluster

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/internal/ferry"
)

func binDirOrSkip(t *testing.T) string {
	t.Helper()
	dir, err := FindBinDir()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return dir
}

// tempDir is a folder that the unprivileged cluster user can reach, with a short path for the socket.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgcluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestStartStopRestart checks that a cluster starts, keeps its data across a restart, and stops.
func TestStartStopRestart(t *testing.T) {
	t.Parallel()
	binDir := binDirOrSkip(t)
	ctx := context.Background()
	dir := filepath.Join(tempDir(t), "pg")

	c, err := Start(ctx, Options{Dir: dir, BinDir: binDir})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives')"); err != nil {
		t.Fatal(err)
	}
	var listen string
	if err := conn.QueryRow(ctx, "SHOW listen_addresses").Scan(&listen); err != nil {
		t.Fatal(err)
	}
	if listen != "" {
		t.Errorf("listen_addresses = %q, want no TCP listener", listen)
	}
	conn.Close(ctx)
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := pgx.Connect(ctx, c.URL("postgres")); err == nil {
		t.Fatal("connected to a stopped cluster")
	}

	c2, err := Start(ctx, Options{Dir: dir, BinDir: binDir})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Stop(ctx)
	conn, err = pgx.Connect(ctx, c2.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "survives" {
		t.Fatalf("after restart: v=%q err=%v", v, err)
	}
}

// TestEphemeralSettings checks that a test cluster runs with durability off.
func TestEphemeralSettings(t *testing.T) {
	t.Parallel()
	binDir := binDirOrSkip(t)
	ctx := context.Background()
	c, err := Start(ctx, Options{Dir: filepath.Join(tempDir(t), "pg"), BinDir: binDir, Ephemeral: true,
		Settings: map[string]string{"application_name": "'ferrytest'"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(ctx)
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for name, want := range map[string]string{"fsync": "off", "application_name": "ferrytest"} {
		var got string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&got); err != nil || got != want {
			t.Errorf("%s = %q (err %v), want %q", name, got, err, want)
		}
	}
}

// TestLongDirGetsShortSocket checks that a folder too deep for a unix socket path still works.
func TestLongDirGetsShortSocket(t *testing.T) {
	t.Parallel()
	binDir := binDirOrSkip(t)
	ctx := context.Background()
	dir := filepath.Join(tempDir(t), "a-rather-long-folder-name-to-push-the-socket-path-over-the-limit", "another-long-one", "pg")
	c, err := Start(ctx, Options{Dir: dir, BinDir: binDir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
}

// TestMissingBinaries checks the error a user without PostgreSQL sees.
func TestMissingBinaries(t *testing.T) {
	_, err := Start(context.Background(), Options{Dir: t.TempDir(), BinDir: t.TempDir()})
	if err == nil {
		t.Fatal("started without binaries")
	}
	if ferry.ErrorCode(err) != ferry.EUNAVAILABLE {
		t.Errorf("code = %q, want %q (%v)", ferry.ErrorCode(err), ferry.EUNAVAILABLE, err)
	}
	if !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Errorf("error %q does not say how to install PostgreSQL", err)
	}
}

// TestUnreachableDirAsRoot checks that a root caller learns which folder the cluster user cannot enter.
func TestUnreachableDirAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root runs the cluster as another user")
	}
	binDir := binDirOrSkip(t)
	closed := tempDir(t)
	if err := os.Chmod(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Options{Dir: filepath.Join(closed, "pg"), BinDir: binDir})
	if err == nil || !strings.Contains(err.Error(), "cannot enter "+closed) {
		t.Fatalf("err = %v, want one naming %s", err, closed)
	}
}

// TestMissingDir checks that a cluster folder is required.
func TestMissingDir(t *testing.T) {
	if _, err := Start(context.Background(), Options{}); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Fatalf("err = %v, want EINVALID", err)
	}
}

// TestHelperProcess is not a test: TestNoOrphanAfterCrash runs the test binary as a parent that starts a
// cluster and is then killed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv("PGCLUSTER_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	c, err := Start(context.Background(), Options{Dir: dir, BinDir: os.Getenv("PGCLUSTER_HELPER_BINDIR"), Ephemeral: true})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	_ = c
	fmt.Println("ready")
	time.Sleep(time.Minute)
	os.Exit(1)
}

// TestNoOrphanAfterCrash checks that a server whose parent is SIGKILLed (a test binary timing out, `ferry dev`
// killed) shuts itself down instead of running for ever.
func TestNoOrphanAfterCrash(t *testing.T) {
	t.Parallel()
	binDir := binDirOrSkip(t)
	dir := filepath.Join(tempDir(t), "pg")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "PGCLUSTER_HELPER_DIR="+dir, "PGCLUSTER_HELPER_BINDIR="+binDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		_ = cmd.Process.Kill()
		t.Fatalf("helper said %q (%v)", line, err)
	}
	pidFile, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGQUIT)
			t.Fatalf("postgres %d still runs 30s after its parent died", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
