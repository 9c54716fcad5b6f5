package build

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The limits on a build as a whole, beside the per-process rlimits: its workspace lives on a size-capped
// tmpfs, and its processes share one memory cgroup. Both need privileges that ferry may not have (root, a
// writable cgroup); without them the build still runs, under the per-process limits only, and the one
// "limits" log line at the start of every build says which limits are in force.

// workspaceDisk mounts a tmpfs of size bytes on dir, so that a build cannot fill the host's disk (it gets
// ENOSPC at the cap) and leaves nothing on disk when it ends. It needs CAP_SYS_ADMIN; without it, it returns
// a nil unmount and the reason.
func workspaceDisk(dir string, size int64) (unmount func(), why string) {
	if os.Geteuid() != 0 {
		return nil, "ferry is not root, so it cannot mount a size-capped tmpfs"
	}
	opts := fmt.Sprintf("size=%d,mode=0755,nr_inodes=%d", size, inodesFor(size))
	if err := syscall.Mount("ferry-build", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		return nil, fmt.Sprintf("mounting a tmpfs failed (%v)", err)
	}
	return func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) }, ""
}

// inodesFor allows one inode per 8 KiB: node_modules is many small files, and tmpfs's default (half the
// RAM's pages) is not tied to the size cap.
func inodesFor(size int64) int64 {
	n := size / (8 << 10)
	if n < 16384 {
		n = 16384
	}
	return n
}

// diskFull reports whether the file system at dir has (almost) no space or inodes left: a failed step then
// failed because the build filled its workspace.
func diskFull(dir string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	return free < 1<<20 || (st.Files > 0 && st.Ffree < 16)
}

// memCgroup is the memory cgroup of one build: every sandboxed command starts inside it, so the limit is on
// all of the build's processes together (and on the tmpfs pages they write).
type memCgroup struct {
	dir     string
	version int // 1 or 2
}

const cgroupRoot = "/sys/fs/cgroup"

// newMemCgroup creates the build's cgroup under ferry's own, with limit bytes of memory and no swap. uid is
// the build's user (v1 lets it add itself, see enterArgs). It returns nil and the reason when the host has no
// writable memory cgroup.
func newMemCgroup(limit int64, uid int, dropUID bool) (*memCgroup, string) {
	v, parent, why := ownMemCgroup()
	if why != "" {
		return nil, why
	}
	dir := filepath.Join(parent, fmt.Sprintf("ferry-build-%d-%d", os.Getpid(), rand.Uint32()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Sprintf("cannot create a cgroup under %s (%v)", parent, err)
	}
	cg := &memCgroup{dir: dir, version: v}
	write := func(name, value string) error { return os.WriteFile(filepath.Join(dir, name), []byte(value), 0o644) }
	limitStr := strconv.FormatInt(limit, 10)
	var err error
	if v == 2 {
		err = write("memory.max", limitStr)
		_ = write("memory.swap.max", "0")
		_ = write("memory.oom.group", "1") // an OOM kill takes the whole build, not one random process
	} else {
		err = write("memory.limit_in_bytes", limitStr)
		_ = write("memory.memsw.limit_in_bytes", limitStr) // no swap either, where swap accounting exists
		if err == nil && dropUID {
			// v1 lets a process move itself into a cgroup whose cgroup.procs it may write; the build's user
			// gets that for this one cgroup, and it only ever goes in (enterArgs).
			err = os.Lchown(filepath.Join(dir, "cgroup.procs"), uid, uid)
		}
	}
	if err != nil {
		cg.remove()
		return nil, fmt.Sprintf("cannot set the limit of cgroup %s (%v)", dir, err)
	}
	return cg, ""
}

// ownMemCgroup finds the memory cgroup this process is in, as a folder it may create children in.
func ownMemCgroup() (version int, dir, why string) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return 0, "", "no /proc/self/cgroup"
	}
	defer f.Close()
	var v1, v2 string
	found1, found2 := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2, found2 = parts[2], true
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				v1, found1 = parts[2], true
			}
		}
	}
	if found2 {
		if b, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil && hasWord(string(b), "memory") {
			dir := filepath.Join(cgroupRoot, v2)
			sub, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
			if !hasWord(string(sub), "memory") {
				if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory"), 0o644); err != nil {
					return 0, "", fmt.Sprintf("cgroup v2: cannot enable the memory controller for children of %s (%v); run ferry in a cgroup of its own with memory delegated", dir, err)
				}
			}
			return 2, dir, ""
		}
	}
	if found1 {
		base := filepath.Join(cgroupRoot, "memory")
		for _, dir := range []string{filepath.Join(base, v1), base} {
			if fi, err := os.Stat(filepath.Join(dir, "memory.limit_in_bytes")); err == nil && !fi.IsDir() {
				return 1, dir, ""
			}
		}
	}
	return 0, "", "no memory cgroup controller is mounted"
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// describe is the memory part of the build's "limits" line.
func (cg *memCgroup) describe() string {
	return fmt.Sprintf("cgroup v%d", cg.version)
}

// enter prepares cmd to start inside the cgroup. With v2 the kernel puts the child there at clone
// (CLONE_INTO_CGROUP), before it runs a single instruction. v1 has no such clone flag, so argv is wrapped
// in a shell that moves itself in and then execs the rest: still before anything of the build runs.
func (cg *memCgroup) enter(attr *syscall.SysProcAttr, argv []string) ([]string, func(), error) {
	if cg == nil {
		return argv, func() {}, nil
	}
	if cg.version == 2 {
		fd, err := syscall.Open(cg.dir, syscall.O_DIRECTORY|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("open cgroup %s: %w", cg.dir, err)
		}
		attr.UseCgroupFD, attr.CgroupFD = true, fd
		return argv, func() { syscall.Close(fd) }, nil
	}
	wrapped := append([]string{"/bin/sh", "-c", `echo $$ > "$0" && exec "$@"`, filepath.Join(cg.dir, "cgroup.procs")}, argv...)
	return wrapped, func() {}, nil
}

// oomKilled reports whether the kernel killed a process of the build for going over the limit.
func (cg *memCgroup) oomKilled() bool {
	if cg == nil {
		return false
	}
	name := "memory.events"
	if cg.version == 1 {
		name = "memory.oom_control"
	}
	b, err := os.ReadFile(filepath.Join(cg.dir, name))
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "oom_kill" && f[1] != "0" {
				return true
			}
		}
	}
	return false
}

// remove deletes the cgroup once its processes are gone (they die with the sandbox's PID namespace, which
// can take a moment after bwrap exits).
func (cg *memCgroup) remove() {
	if cg == nil {
		return
	}
	for i := 0; i < 50; i++ {
		err := os.Remove(cg.dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		if cg.version == 2 {
			_ = os.WriteFile(filepath.Join(cg.dir, "cgroup.kill"), []byte("1"), 0o644)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
