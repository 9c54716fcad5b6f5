package jobs_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/app/builder"
	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/buildcontract"
	"github.com/ferryhq/ferry/internal/site"
)

// scopeRecorder passes every build on to the real local builder and records the cache scope it was asked for.
type scopeRecorder struct {
	next   builder.Builder
	mu     sync.Mutex
	scopes map[string]string // deployment id -> cache scope
}

func (r *scopeRecorder) Build(ctx context.Context, req builder.Request) (*builder.Result, error) {
	r.mu.Lock()
	r.scopes[req.DeploymentID] = req.CacheScope
	r.mu.Unlock()
	return r.next.Build(ctx, req)
}

// TestCacheScopeReachesTheBuild: the deploy job tells ferry build how far the commit is trusted: production for
// the production branch, preview for a branch or pull request of the repository itself, fork for a pull
// request from another repository (whose row, not only its job, says so).
func TestCacheScopeReachesTheBuild(t *testing.T) {
	t.Parallel()
	rec := &scopeRecorder{scopes: map[string]string{}}
	h := newHarness(t, opts{wrap: func(b builder.Builder) builder.Builder { rec.next = b; return rec }})
	p, r := h.newProject("scoped", static("<h1>hi</h1>"))
	sha := r.Commits[0]
	prod := h.deploy(p, sha, "main", 0)
	h.waitStatus(prod.ID, store.StatusReady)
	branch := h.deploy(p, sha, "feature", 0)
	h.waitStatus(branch.ID, store.StatusReady)
	pr := h.deploy(p, sha, "feature", 7)
	h.waitStatus(pr.ID, store.StatusReady)
	// A fork's pull request, marked on its row only (a job from before the fork flag was in DeployArgs).
	var fork *store.Deployment
	err := h.st.InTx(h.ctx, func(st *store.Store, tx pgx.Tx) error {
		var err error
		fork, err = st.DeploymentCreate(h.ctx, store.DeploymentCreateParams{ID: site.NewDeploymentID(), ProjectID: p.ID,
			CommitSHA: sha, Ref: "patch-1", PRNumber: 8, Kind: store.KindPreview, Alias: site.PRAlias(8)})
		if err != nil {
			return err
		}
		if err := st.DeploymentSetFork(h.ctx, store.DeploymentSetForkParams{ID: fork.ID}); err != nil {
			return err
		}
		return jobs.InsertDeployArgs(h.ctx, h.client, tx, jobs.DeployArgs{DeploymentID: fork.ID})
	})
	if err != nil {
		t.Fatal(err)
	}
	h.waitStatus(fork.ID, store.StatusReady)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for d, want := range map[*store.Deployment]string{prod: buildcontract.CacheScopeProduction, branch: buildcontract.CacheScopePreview,
		pr: buildcontract.CacheScopePreview, fork: buildcontract.CacheScopeFork} {
		if got := rec.scopes[d.ID]; got != want {
			t.Errorf("deployment %s (ref %s, pr %d): cache scope %q, want %q", d.ID, d.Ref, d.PRNumber, got, want)
		}
	}
}
