package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/app/builder"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/pgcluster"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/migrations"
)

// OwnCluster is ownCluster for this package's external tests.
var OwnCluster = ownCluster

// ownCluster starts a PostgreSQL cluster of the test's own, which it may stop and start again (the shared test
// cluster serves every other test), with Ferry's schema.
func ownCluster(t *testing.T) (*pgcluster.Cluster, string) {
	t.Helper()
	ctx := context.Background()
	if _, err := pgcluster.FindBinDir(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	// As root the cluster runs as nobody, which must be able to enter its folder.
	dir, err := os.MkdirTemp("", "ferry-outage-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o711)
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	url := c.URL("postgres")
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := migrations.Apply(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return c, url
}

// TestLogBatcherOverflowMarksTheGap: with the database down and the buffer full, lines are refused and
// counted; once the database is back, the lines that waited arrive, then one line that says how many were
// lost, then the lines that came after, all in order and gap-free.
func TestLogBatcherOverflowMarksTheGap(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: stops and starts a PostgreSQL cluster")
	}
	t.Parallel()
	ctx := context.Background()
	cluster, url := ownCluster(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	st := store.New(pool)
	p, err := st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "overflow", CloneURL: "https://example.test/r.git", ProductionBranch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.DeploymentCreate(ctx, store.DeploymentCreateParams{ID: site.NewDeploymentID(), ProjectID: p.ID, CommitSHA: strings.Repeat("a", 40), Ref: "main", Kind: store.KindProduction, Alias: "production"})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncLog
	b := startLogBatcher(ctx, st, d.ID, slog.New(slog.NewTextHandler(&logs, nil)), 50, time.Minute)
	add := func(prefix string, n int) {
		for i := 1; i <= n; i++ {
			b.add(builder.LogLine{Time: time.Now(), Level: "INFO", Step: "build", Message: fmt.Sprintf("%s-%03d", prefix, i)})
		}
	}
	add("up", 10)
	waitLines(t, st, d.ID, 10)
	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	add("down", 120) // 50 wait, 70 are refused
	time.Sleep(500 * time.Millisecond)
	restarted, err := pgcluster.Start(ctx, pgcluster.Options{Dir: cluster.Dir(), Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Stop(ctx)
	waitLines(t, st, d.ID, 60)
	add("after", 5)
	b.close()

	lines, err := st.DeploymentLogList(ctx, store.DeploymentLogListParams{DeploymentID: d.ID})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 1; i <= 10; i++ {
		want = append(want, fmt.Sprintf("up-%03d", i))
	}
	for i := 1; i <= 50; i++ {
		want = append(want, fmt.Sprintf("down-%03d", i))
	}
	want = append(want, "WARN: 70 log lines were lost here: the database was unreachable and 50 lines were waiting")
	for i := 1; i <= 5; i++ {
		want = append(want, fmt.Sprintf("after-%03d", i))
	}
	var got []string
	for i, l := range lines {
		if l.Seq != int64(i+1) {
			t.Fatalf("line %d has seq %d", i+1, l.Seq)
		}
		got = append(got, l.Line)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("stored lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(logs.String(), "retried") || !strings.Contains(logs.String(), "stored again") {
		t.Errorf("the server's log does not tell the outage:\n%s", logs.String())
	}
}

// TestLogBatcherNoDuplicateAfterLostAnswer: a batch whose write committed although the batcher saw an error
// (the answer was lost) is recognised on the retry and not stored twice.
func TestLogBatcherNoDuplicateAfterLostAnswer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := ownCluster(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	st := store.New(pool)
	p, err := st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "lost-answer", CloneURL: "https://example.test/r.git", ProductionBranch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.DeploymentCreate(ctx, store.DeploymentCreateParams{ID: site.NewDeploymentID(), ProjectID: p.ID, CommitSHA: strings.Repeat("b", 40), Ref: "main", Kind: store.KindProduction, Alias: "production"})
	if err != nil {
		t.Fatal(err)
	}
	ls := &lostAnswer{Store: st, lose: 1}
	b := startLogBatcher(ctx, ls, d.ID, slog.New(slog.DiscardHandler), 100, time.Minute)
	for i := 1; i <= 3; i++ {
		b.add(builder.LogLine{Step: "build", Message: fmt.Sprintf("line-%d", i)})
	}
	b.close()
	lines, err := st.DeploymentLogList(ctx, store.DeploymentLogListParams{DeploymentID: d.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 || lines[0].Line != "line-1" || lines[2].Line != "line-3" || lines[2].Seq != 3 {
		t.Fatalf("stored %+v, want line-1..3 once", lines)
	}
}

// lostAnswer is the real store whose first lose appends of lines commit and then report an error, as when the
// connection drops between the commit and its answer.
type lostAnswer struct {
	*store.Store
	lose int
}

func (l *lostAnswer) DeploymentLogAppend(ctx context.Context, p store.DeploymentLogAppendParams) (int64, error) {
	n, err := l.Store.DeploymentLogAppend(ctx, p)
	if err == nil && len(p.Lines) > 0 && l.lose > 0 {
		l.lose--
		return 0, fmt.Errorf("read reply: connection reset by peer")
	}
	return n, err
}

func waitLines(t *testing.T, st *store.Store, id string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		lines, err := st.DeploymentLogList(context.Background(), store.DeploymentLogListParams{DeploymentID: id})
		if err == nil && len(lines) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lines stored, want %d (%v)", len(lines), n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
