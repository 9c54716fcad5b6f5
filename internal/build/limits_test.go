package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Issue 11 item 9: limits on the build as a whole, not per process.
func TestBuildLimitsAsAWhole(t *testing.T) {
	requireBwrap(t)

	t.Run("disk: writing past the workspace cap", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("the workspace tmpfs needs root; without it only RLIMIT_FSIZE applies (see the limits log line)")
		}
		e := newTestEnv(t, "")
		// A work dir of its own (t.TempDir's parents are private to root; the build's user must pass through).
		work, err := os.MkdirTemp("", "ferry-disktest-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(work) })
		os.Chmod(work, 0o711)
		r := e.repo(map[string]string{
			// 3 files of 40 MiB, each under the per-file limit, 120 MiB in all against a 64 MiB workspace.
			"ferry.json": `{"buildCommand": "for i in 1 2 3; do head -c 41943040 /dev/zero > big$i || exit 1; echo WROTE $i; done; mkdir -p dist; echo ok > dist/index.html"}`,
		})
		p := e.params(r)
		p.WorkDir = work
		p.Limits = Limits{Disk: 64 << 20, Timeout: time.Minute}
		_, err = Run(context.Background(), p)
		wantCode(t, err, ferry.ETOOLARGE, "filled its workspace", "64 MiB", "--max-disk-mib")
		if ferry.ExitCode(err) != ferry.ExitUser {
			t.Errorf("exit code %d, want %d (the build is at fault)", ferry.ExitCode(err), ferry.ExitUser)
		}
		if logs := e.logs.String(); strings.Contains(logs, "WROTE 2") || !strings.Contains(logs, "WROTE 1") {
			t.Errorf("the build wrote past 64 MiB:\n%s", logs)
		}
		// Nothing is left on the host: no folder in the work dir, no mount.
		if left, _ := os.ReadDir(work); len(left) != 0 {
			t.Errorf("the build left %v in its work dir", left)
		}
		if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), work) {
			t.Errorf("the workspace is still mounted:\n%s", b)
		}
	})

	t.Run("memory: processes that together exceed the cap", func(t *testing.T) {
		if _, _, why := ownMemCgroup(); why != "" {
			t.Skipf("no writable memory cgroup on this host (%s): the build falls back to RLIMIT_DATA per process", why)
		}
		if os.Geteuid() != 0 {
			t.Skip("creating a child cgroup needs root here")
		}
		e := newTestEnv(t, "")
		// Four processes of 160 MiB each, every one far under the per-process limit, 640 MiB against 384 MiB.
		hold := `node -e 'const b = Buffer.alloc(160 << 20, 1); setTimeout(() => console.log("HELD", b.length), 4000)'`
		r := e.repo(map[string]string{
			"ferry.json": `{"buildCommand": "sh hold.sh"}`,
			"hold.sh": "pids=''; for i in 1 2 3 4; do " + hold + " & pids=\"$pids $!\"; done\n" +
				"st=0; for p in $pids; do wait $p || st=$?; done\nmkdir -p dist; echo ok > dist/index.html; exit $st\n",
		})
		p := e.params(r)
		p.Limits = Limits{TotalMemory: 384 << 20, Timeout: time.Minute}
		_, err := Run(context.Background(), p)
		wantCode(t, err, ferry.EBUILD, "more memory than its limit", "--max-total-memory-mib 384")
		if n := strings.Count(e.logs.String(), "HELD"); n == 4 {
			t.Errorf("all four processes held their memory under a 384 MiB cap:\n%s", e.logs)
		}
		// The build's cgroup is gone afterwards.
		_, parent, _ := ownMemCgroup()
		if m, _ := filepath.Glob(filepath.Join(parent, "ferry-build-*")); len(m) != 0 {
			t.Logf("cgroups left (may belong to concurrent builds): %v", m)
		}
	})
}
