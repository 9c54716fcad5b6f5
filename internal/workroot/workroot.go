// Package workroot is the one folder where Ferry's processes keep build workspaces and secret files, swept of
// what crashed processes left. The runner (ferry build) and the App (its local builds) both open one, so it
// belongs to neither.
package workroot

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Name is the one folder, in the temp folder (or --workdir), where Ferry's processes keep build
// workspaces and any secret file that could not stay in memory. Each process has a folder of its own there,
// run-<random>, next to a run-<random>.lock file that it holds an flock on for as long as it lives.
const Name = "ferry-work"

// Root is one process's folder below Name. A crash (SIGKILL, power loss) leaves the folder
// behind, with checkouts and whatever a build wrote; the next Ferry process that opens a Root in the same
// place removes it, because its lock is free again. A folder whose lock is held belongs to a running process
// and is never touched, and nothing outside Name ever is.
type Root struct {
	// Dir is this process's folder: pass it as a build's WorkDir.
	Dir  string
	lock *os.File
}

// Open makes the process's folder below base/ferry-work (base "" is the system's temp folder), after
// removing what crashed Ferry processes left there. base/ferry-work must be a folder of this user's, not a
// link: in a shared /tmp another user could have made it first, and Ferry never writes below theirs.
func Open(base string, log *slog.Logger) (*Root, error) {
	if base == "" {
		base = os.TempDir()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root := filepath.Join(base, Name)
	// Traversable, not listable, so that a build's sandbox user reaches its workspace below.
	if err := os.Mkdir(root, 0o711); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "create the work folder %s: %w", root, err)
	}
	fi, err := os.Lstat(root)
	if err != nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "work folder %s: %w", root, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0 {
		return nil, ferry.Errorf(ferry.EINVALID, "%s is not a folder of this user's that only it can write (a link, or made by another user): remove it, or point TMPDIR (or ferry build --workdir) elsewhere", root)
	}
	if removed := sweep(root, log); removed > 0 {
		log.Info("removed the work folders of crashed Ferry processes", "folder", root, "count", removed)
	}
	for range 5 {
		w, err := newRun(root)
		if err == nil {
			return w, nil
		}
		if !errors.Is(err, errRaced) {
			return nil, ferry.Errorf(ferry.EUNAVAILABLE, "create a work folder in %s: %w", root, err)
		}
	}
	return nil, ferry.Errorf(ferry.EUNAVAILABLE, "create a work folder in %s: lost the race five times", root)
}

// errRaced is a lock file that a concurrent sweep removed between its creation and its lock.
var errRaced = errors.New("lock file removed under us")

// newRun creates and locks run-<random>.lock, checks that the locked file is still the one at that name (a
// sweep may have taken it in between), and only then makes the folder.
func newRun(root string) (*Root, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	dir := filepath.Join(root, "run-"+hex.EncodeToString(b))
	f, err := os.OpenFile(dir+".lock", os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, errRaced
	}
	held, err1 := f.Stat()
	named, err2 := os.Lstat(dir + ".lock")
	if err1 != nil || err2 != nil || !os.SameFile(held, named) {
		f.Close()
		return nil, errRaced
	}
	if err := os.Mkdir(dir, 0o711); err != nil {
		f.Close()
		os.Remove(dir + ".lock")
		return nil, err
	}
	return &Root{Dir: dir, lock: f}, nil
}

// sweep removes every run folder whose lock file is free (its process is gone) or missing, and
// returns how many it removed. A folder it cannot remove is logged and left for the next start.
func sweep(root string, log *slog.Logger) int {
	entries, err := os.ReadDir(root)
	if err != nil {
		log.Warn("list the work folder", "folder", root, "err", err)
		return 0
	}
	removed := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "run-") || strings.HasSuffix(name, ".lock") {
			continue
		}
		dir := filepath.Join(root, name)
		f, err := os.OpenFile(dir+".lock", os.O_RDWR|syscall.O_NOFOLLOW, 0)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// A folder without a lock: its lock is always made first, so this is the rest of an interrupted sweep.
		case err != nil:
			log.Warn("open a work folder's lock", "folder", dir, "err", err)
			continue
		default:
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				f.Close() // held: a live process's folder
				continue
			}
		}
		if err := removeAll(dir); err != nil {
			log.Warn("remove a crashed process's work folder", "folder", dir, "err", err)
		} else {
			removed++
			if f != nil {
				os.Remove(dir + ".lock")
			}
		}
		if f != nil {
			f.Close()
		}
	}
	// Lock files whose folder is gone (a crash between the lock and the folder, or a removal cut short).
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "run-") || !strings.HasSuffix(name, ".lock") {
			continue
		}
		lock := filepath.Join(root, name)
		if _, err := os.Lstat(strings.TrimSuffix(lock, ".lock")); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		f, err := os.OpenFile(lock, os.O_RDWR|syscall.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.Remove(lock)
		}
		f.Close()
	}
	return removed
}

// removeAll removes dir even where a build (as the sandbox user) left folders without write permission, and
// where a crashed ferry build left its workspace tmpfs mounted (the mount outlives a SIGKILL).
func removeAll(dir string) error {
	unmountBelow(dir)
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// Close removes the process's folder and frees its lock.
func (w *Root) Close() error {
	if w == nil || w.lock == nil {
		return nil
	}
	err := removeAll(w.Dir)
	if rerr := os.Remove(w.Dir + ".lock"); err == nil && rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = rerr
	}
	if cerr := w.lock.Close(); err == nil {
		err = cerr
	}
	w.lock = nil
	if err != nil {
		return fmt.Errorf("remove the work folder %s: %w", w.Dir, err)
	}
	return nil
}

// unmountBelow detaches every mount at or below dir, deepest first: a crashed build's workspace tmpfs
// (--max-disk-mib) stays mounted after its ferry build was killed, and RemoveAll cannot remove a mount point.
// Detaching drops the tmpfs and what the build wrote to it. Errors are ignored: RemoveAll reports what is left.
func unmountBelow(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountPath(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, mp := range points {
		_ = syscall.Unmount(mp, syscall.MNT_DETACH)
	}
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				out.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		out.WriteByte(s[i])
	}
	return out.String()
}
