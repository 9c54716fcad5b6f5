package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/pgtest"
)

func TestDeploymentForkAndApprove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.Tx(t))
	p := newProject(t, st)
	plain := newDeployment(t, st, p.ID, 7, "feature")
	f := must[store.DeploymentFork](t)(st.DeploymentForkGet(ctx, plain.ID))
	if f.Fork || f.AwaitingApproval {
		t.Fatalf("new deployment flags = %+v, want none", f)
	}

	a := newDeployment(t, st, p.ID, 7, "feature")
	b := newDeployment(t, st, p.ID, 7, "feature")
	other := newDeployment(t, st, p.ID, 8, "other")
	for _, d := range []*store.Deployment{a, b, other} {
		if err := st.DeploymentSetFork(ctx, store.DeploymentSetForkParams{ID: d.ID, AwaitingApproval: true}); err != nil {
			t.Fatal(err)
		}
	}
	f = must[store.DeploymentFork](t)(st.DeploymentForkGet(ctx, a.ID))
	if !f.Fork || !f.AwaitingApproval {
		t.Fatalf("marked deployment flags = %+v", f)
	}
	// a is canceled by b before the approval: only b is released.
	if _, err := st.DeploymentSupersede(ctx, store.DeploymentSupersedeParams{NewID: b.ID, ProjectID: p.ID, PRNumber: 7}); err != nil {
		t.Fatal(err)
	}
	ids := must[[]string](t)(st.DeploymentApprove(ctx, store.DeploymentApproveParams{ProjectID: p.ID, PRNumber: 7}))
	if !slices.Equal(ids, []string{b.ID}) {
		t.Fatalf("approved %v, want [%s]", ids, b.ID)
	}
	if f := must[store.DeploymentFork](t)(st.DeploymentForkGet(ctx, b.ID)); !f.Fork || f.AwaitingApproval {
		t.Fatalf("approved deployment flags = %+v, want fork only", f)
	}
	if ids := must[[]string](t)(st.DeploymentApprove(ctx, store.DeploymentApproveParams{ProjectID: p.ID, PRNumber: 7})); len(ids) != 0 {
		t.Fatalf("second approval released %v", ids)
	}
	if f := must[store.DeploymentFork](t)(st.DeploymentForkGet(ctx, other.ID)); !f.AwaitingApproval {
		t.Fatal("another pull request's deployment was released")
	}

	wantCode(t, st.DeploymentSetFork(ctx, store.DeploymentSetForkParams{ID: newID()}), "not_found")
	_, err := st.DeploymentForkGet(ctx, newID())
	wantCode(t, err, "not_found")
}

func TestProjectSetInstallation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.Tx(t))
	p := newProject(t, st)
	if _, err := st.InstallationUpsert(ctx, store.InstallationUpsertParams{ID: 4242, AccountLogin: "octo", AccountType: "User", AccountID: 1}); err != nil {
		t.Fatal(err)
	}
	got := must[*store.Project](t)(st.ProjectSetInstallation(ctx, store.ProjectSetInstallationParams{ID: p.ID, InstallationID: 4242}))
	if got.InstallationID != 4242 {
		t.Fatalf("installation = %d", got.InstallationID)
	}
	got = must[*store.Project](t)(st.ProjectSetInstallation(ctx, store.ProjectSetInstallationParams{ID: p.ID}))
	if got.InstallationID != 0 {
		t.Fatalf("installation = %d after unlinking", got.InstallationID)
	}
	// An unknown installation fails the statement; a savepoint keeps the test's transaction usable.
	err := st.InTx(ctx, func(st *store.Store, _ pgx.Tx) error {
		_, err := st.ProjectSetInstallation(ctx, store.ProjectSetInstallationParams{ID: p.ID, InstallationID: 999999})
		return err
	})
	wantCode(t, err, "not_found")
	_, err = st.ProjectSetInstallation(ctx, store.ProjectSetInstallationParams{ID: -1})
	wantCode(t, err, "not_found")
}
