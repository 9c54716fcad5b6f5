package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/pgtest"
)

func TestDeploymentLockSerializes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))
	p := newProject(t, st)
	d := newDeployment(t, st, p.ID, 1, "feature")

	locked := make(chan struct{})
	release := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- st.InTx(ctx, func(st *store.Store, _ pgx.Tx) error {
			if err := st.DeploymentLock(ctx, d.ID); err != nil {
				return err
			}
			close(locked)
			<-release
			return nil
		})
	}()
	<-locked
	got := make(chan time.Time, 1)
	go func() {
		_ = st.InTx(ctx, func(st *store.Store, _ pgx.Tx) error {
			err := st.DeploymentLock(ctx, d.ID)
			got <- time.Now()
			return err
		})
	}()
	// Another deployment's lock is independent.
	other := newDeployment(t, st, p.ID, 2, "other")
	if err := st.InTx(ctx, func(st *store.Store, _ pgx.Tx) error { return st.DeploymentLock(ctx, other.ID) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
		t.Fatal("the second lock was granted while the first was held")
	case <-time.After(300 * time.Millisecond):
	}
	releasedAt := time.Now()
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if at := <-got; at.Before(releasedAt) {
		t.Fatal("the second lock was granted before the first was released")
	}
}

func TestDeploymentListSupersededBy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))
	p := newProject(t, st)
	a := newDeployment(t, st, p.ID, 5, "feature")
	b := newDeployment(t, st, p.ID, 5, "feature")
	c := newDeployment(t, st, p.ID, 5, "feature")
	if _, err := st.DeploymentSupersede(ctx, store.DeploymentSupersedeParams{NewID: c.ID, ProjectID: p.ID, PRNumber: 5}); err != nil {
		t.Fatal(err)
	}
	got := must[[]*store.Deployment](t)(st.DeploymentListSupersededBy(ctx, c.ID))
	if ids := idsOf(got); len(ids) != 2 || ids[0] != a.ID || ids[1] != b.ID {
		t.Fatalf("superseded by %s: %v, want [%s %s]", c.ID, ids, a.ID, b.ID)
	}
	if got := must[[]*store.Deployment](t)(st.DeploymentListSupersededBy(ctx, a.ID)); len(got) != 0 {
		t.Fatalf("superseded by %s: %v, want none", a.ID, idsOf(got))
	}
}

func TestDeploymentListOrphaned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	st := store.New(pool)
	p := newProject(t, st)
	withJob := func(state string) *store.Deployment {
		d := newDeployment(t, st, p.ID, 0, "main")
		if state != "" {
			_, err := pool.Exec(ctx, `INSERT INTO river_job (args, kind, max_attempts, priority, queue, state, finalized_at)
				VALUES (jsonb_build_object('deployment_id', $1::text), 'deploy', 3, 1, 'build', $2::river_job_state,
					CASE WHEN $2::text IN ('completed', 'discarded', 'cancelled') THEN now() END)`, d.ID, state)
			if err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	none := withJob("")
	discarded := withJob("discarded")
	running := withJob("running")
	retryable := withJob("retryable")
	ready := withJob("completed")
	must[*store.Deployment](t)(st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: ready.ID, Status: store.StatusBuilding}))
	must[*store.Deployment](t)(st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: ready.ID, Status: store.StatusReady}))
	must[*store.Deployment](t)(st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: discarded.ID, Status: store.StatusBuilding}))

	// Fresh deployments are left alone, whatever their jobs.
	if got := must[[]*store.Deployment](t)(st.DeploymentListOrphaned(ctx, store.DeploymentListOrphanedParams{JobKind: "deploy"})); len(got) != 0 {
		t.Fatalf("orphaned right away: %v", idsOf(got))
	}
	if _, err := pool.Exec(ctx, `UPDATE deployments SET updated_at = now() - interval '10 minutes'`); err != nil {
		t.Fatal(err)
	}
	got := must[[]*store.Deployment](t)(st.DeploymentListOrphaned(ctx, store.DeploymentListOrphanedParams{JobKind: "deploy"}))
	want := map[string]bool{none.ID: true, discarded.ID: true}
	if len(got) != len(want) {
		t.Fatalf("orphaned = %v, want %v (running %s and retryable %s have live jobs)", idsOf(got), want, running.ID, retryable.ID)
	}
	for _, d := range got {
		if !want[d.ID] {
			t.Errorf("%s listed as orphaned", d.ID)
		}
	}
	if _, err := st.DeploymentListOrphaned(ctx, store.DeploymentListOrphanedParams{JobKind: "deploy", Limit: 1}); err != nil {
		t.Fatal(err)
	}
	cctx, canceled := context.WithCancel(ctx)
	canceled()
	if _, err := st.DeploymentListOrphaned(cctx, store.DeploymentListOrphanedParams{JobKind: "deploy"}); err == nil {
		t.Fatal("a canceled context should fail the query")
	}
}
