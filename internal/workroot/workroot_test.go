package workroot

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestWorkRootRefusesForeignFolder: a ferry-work that is a link (to a folder whose run-* entries a sweep would
// remove) or that others may write is refused, and what it points at is left alone.
func TestWorkRootRefusesForeignFolder(t *testing.T) {
	t.Parallel()
	base, victim := t.TempDir(), t.TempDir()
	os.Mkdir(filepath.Join(victim, "run-precious"), 0o700)
	if err := os.Symlink(victim, filepath.Join(base, Name)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(base, nil); err == nil {
		t.Fatal("a ferry-work that is a link was used")
	}
	if _, err := os.Stat(filepath.Join(victim, "run-precious")); err != nil {
		t.Fatalf("the link's target was swept: %v", err)
	}
	open := t.TempDir()
	os.Mkdir(filepath.Join(open, Name), 0o777)
	os.Chmod(filepath.Join(open, Name), 0o777)
	if _, err := Open(open, nil); err == nil {
		t.Fatal("a world-writable ferry-work was used")
	}
}

// TestWorkRootLiveAndGone: two live processes' folders never sweep each other; a closed one is gone, and the
// leftovers of a dead one (its lock free, or its lock file missing) go at the next open.
func TestWorkRootLiveAndGone(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	a, err := Open(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Dir == b.Dir {
		t.Fatal("two processes got one folder")
	}
	if _, err := os.Stat(a.Dir); err != nil {
		t.Fatalf("a live folder was swept: %v", err)
	}
	// A dead process: its folder and a lock nobody holds; and a folder whose lock file is missing.
	dead := filepath.Join(base, Name, "run-dead")
	os.MkdirAll(filepath.Join(dead, "ws"), 0o755)
	os.WriteFile(filepath.Join(dead, "ws", "secret"), []byte("x"), 0o600)
	os.WriteFile(dead+".lock", nil, 0o600)
	orphan := filepath.Join(base, Name, "run-orphan")
	os.MkdirAll(orphan, 0o755)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.Dir); err == nil {
		t.Error("a closed folder is still there")
	}
	c, err := Open(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, gone := range []string{dead, dead + ".lock", orphan} {
		if _, err := os.Lstat(gone); err == nil {
			t.Errorf("%s survived the sweep", gone)
		}
	}
	if _, err := os.Stat(a.Dir); err != nil {
		t.Errorf("a live folder was swept: %v", err)
	}
	a.Close()
}

// TestWorkRootSweepsMountedWorkspace: a ferry build killed mid-build leaves its workspace tmpfs
// (--max-disk-mib) mounted; the next start detaches it and removes the folder, with what the build wrote.
func TestWorkRootSweepsMountedWorkspace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	base := t.TempDir()
	ws := filepath.Join(base, Name, "run-crashed", "ferry-build-1", "ws")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(base, Name, "run-crashed.lock"), nil, 0o600)
	if err := syscall.Mount("tmpfs", ws, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(ws, syscall.MNT_DETACH) })
	os.WriteFile(filepath.Join(ws, "secret"), []byte("canary"), 0o600)
	w, err := Open(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := os.Lstat(filepath.Join(base, Name, "run-crashed")); !os.IsNotExist(err) {
		t.Fatalf("the crashed run's folder with a mounted workspace is still there: %v", err)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), ws) {
		t.Fatal("the crashed build's tmpfs is still mounted")
	}
}
