package jobs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/pgcluster"
)

// TestBuildLogSurvivesDatabaseOutage is issue 11's "build log lines dropped while the database is down", done
// for real: PostgreSQL is shut down while a build prints lines and started again before it ends. Every line
// arrives once, in order, with gap-free numbers.
func TestBuildLogSurvivesDatabaseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: stops and starts a PostgreSQL cluster around a 10-second build")
	}
	t.Parallel()
	cluster, url := jobs.OwnCluster(t)
	h := newHarness(t, opts{dbURL: url})
	p, r := h.newProject("outage", map[string]string{
		"ferry.json": `{"buildCommand": "for i in $(seq -w 1 100); do echo pre-$i; done; sleep 3; for i in $(seq -w 1 200); do echo mid-$i; sleep 0.005; done; sleep 5; for i in $(seq -w 1 100); do echo post-$i; done; mkdir -p out && echo ok > out/index.html", "outputDirectory": "out"}`,
	})
	d := h.deploy(p, r.Commits[0], "main", 0)
	h.wait(d.ID, "past its first lines", func(*store.Deployment) bool { return strings.Contains(h.logText(d.ID), "pre-100") })
	if err := cluster.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	time.Sleep(6 * time.Second) // the mid lines are printed meanwhile, 3-4.5s into the outage
	restarted, err := pgcluster.Start(context.Background(), pgcluster.Options{Dir: cluster.Dir(), Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restarted.Stop(context.Background()) })
	t.Logf("database down for %s", time.Since(t0).Round(100*time.Millisecond))
	d = h.waitStatus(d.ID, store.StatusReady)

	lines, err := h.st.DeploymentLogList(h.ctx, store.DeploymentLogListParams{DeploymentID: d.ID, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, phase := range []struct {
		name string
		n    int
	}{{"pre", 100}, {"mid", 200}, {"post", 100}} {
		for i := 1; i <= phase.n; i++ {
			want = append(want, fmt.Sprintf("%s-%03d", phase.name, i))
		}
	}
	var got []string
	for i, l := range lines {
		if l.Seq != int64(i+1) {
			t.Fatalf("line %d has seq %d: the numbers have a gap", i+1, l.Seq)
		}
		if l.Step == "build" && (strings.HasPrefix(l.Line, "pre-") || strings.HasPrefix(l.Line, "mid-") || strings.HasPrefix(l.Line, "post-")) {
			got = append(got, l.Line)
		}
		if strings.Contains(l.Line, "lost") {
			t.Errorf("a line says lines were lost: %s", l.Line)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("stored %d build lines, want the %d printed, once each and in order; got %v", len(got), len(want), got)
	}
}
