package retention_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// ferryBin builds the real binary once per test run.
func ferryBin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ferry")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/ferryhq/ferry").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// oldStore publishes n production deployments of files pages each, dated 60 days ago (ids and blob times), and
// the newest is production: everything but it and the 10 before it is garbage.
func oldStore(t *testing.T, n, files int) (root string, st *storage.File, keep []string) {
	t.Helper()
	root = t.TempDir()
	st = must(storage.NewFile(root))
	ss := site.NewStore(st)
	ctx := context.Background()
	start := time.Now().Add(-60 * 24 * time.Hour)
	var ids []string
	for i := range n {
		f := map[string]string{"index.html": fmt.Sprintf("<h1>%d</h1>", i), "style.css": "shared"}
		for j := range files {
			f[fmt.Sprintf("p/%04d.html", j)] = fmt.Sprintf("deployment %d page %d", i, j)
		}
		id := site.NewDeploymentIDAt(start.Add(time.Duration(i) * time.Minute))
		if _, err := ss.Publish(ctx, site.PublishParams{Project: "web", Dir: writeTree(t, f), DeploymentID: id, Aliases: []string{"production"}}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			err = os.Chtimes(p, start, start)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return root, st, ids[len(ids)-11:]
}

// consistent fails unless every manifest and every alias target is complete.
func consistent(t *testing.T, st storage.Storage) {
	t.Helper()
	ss := site.NewStore(st)
	for _, d := range must(ss.DeploymentList(context.Background(), "web")) {
		complete(t, st, "web", d.ID)
	}
	for _, a := range must(ss.AliasList(context.Background(), "web")) {
		complete(t, st, "web", a.Deployment)
	}
}

// TestGCCommand runs the real `ferry gc`: --dry-run deletes nothing and says what it would; a run killed with
// SIGKILL in the middle of its blob deletes leaves every deployment complete; the next run finishes the job.
func TestGCCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: builds ferry and a store of 3,600 blobs")
	}
	t.Parallel()
	bin := ferryBin(t)
	root, st, keep := oldStore(t, 24, 150)
	url := "file://" + root
	before := keys(t, st, "")

	var out, errb bytes.Buffer
	cmd := exec.Command(bin, "gc", "--storage", url, "--dry-run")
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("ferry gc --dry-run: %v\n%s", err, errb.String())
	}
	if got := keys(t, st, ""); !slices.Equal(got, before) {
		t.Fatalf("--dry-run changed storage: %d keys before, %d after", len(before), len(got))
	}
	if !strings.Contains(out.String(), "web: would delete 1976 objects") {
		t.Errorf("dry run summary %q, want 13 deployments and their 13×151 blobs", out.String())
	}
	if !strings.Contains(errb.String(), "reason=\"production deployment outside the rollback window of 10\"") {
		t.Errorf("dry run does not say why: %s", errb.String()[:min(2000, errb.Len())])
	}

	// The real run, killed after its first batch of blob deletes.
	cmd = exec.Command(bin, "gc", "--storage", url, "--project", "web")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "kind=blob") {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	err = cmd.Wait()
	killed := err != nil && strings.Contains(err.Error(), "killed")
	left := len(keys(t, st, "projects/web/blobs/"))
	t.Logf("killed=%v (%v); %d blobs left after the kill", killed, err, left)
	if !killed || left <= 11*151+1 {
		t.Logf("the run finished before the kill reached it; the consistency checks below still apply")
	}
	consistent(t, st)

	// The next run finishes: exactly the current deployment and the 10 before it are left, and every blob left is named by it.
	out.Reset()
	errb.Reset()
	cmd = exec.Command(bin, "gc", "--storage", url, "--json")
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("ferry gc after the kill: %v\n%s", err, errb.String())
	}
	consistent(t, st)
	var ids []string
	for _, d := range must(site.NewStore(st).DeploymentList(context.Background(), "web")) {
		ids = append(ids, d.ID)
	}
	if !slices.Equal(ids, keep) {
		t.Errorf("deployments left %v, want the current one and the 10 before it %v", ids, keep)
	}
	if got := len(keys(t, st, "projects/web/blobs/")); got != 11*151+1 {
		t.Errorf("%d blobs left, want %d (11 deployments of 151 own pages and a shared stylesheet)", got, 11*151+1)
	}
}
