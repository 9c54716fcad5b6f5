package jobs_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/site"
)

// TestBranchDeletedRetiresPreview: a deleted branch's preview goes like a closed pull request's: its
// deployment becomes inactive, its git-<slug> alias is deleted, and its GitHub deployments are marked
// inactive; production and another branch's preview stay.
func TestBranchDeletedRetiresPreview(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{})
	p, r := h.newProject("web", static("<h1>hi</h1>"))
	sha := r.Commits[0]
	prod := h.waitStatus(h.deploy(p, sha, p.ProductionBranch, 0).ID, store.StatusReady)
	feature := h.waitStatus(h.deploy(p, sha, "feature", 0).ID, store.StatusReady)
	other := h.waitStatus(h.deploy(p, sha, "other", 0).ID, store.StatusReady)
	h.waitJobs()
	featureAlias := site.BranchAlias(p.Name, "feature")
	if got := h.aliasTarget(p, featureAlias); got != feature.ID {
		t.Fatalf("%s -> %q before the deletion, want %s", featureAlias, got, feature.ID)
	}

	h.gh.Reset()
	for _, branch := range []string{"feature", p.ProductionBranch} {
		err := h.st.InTx(h.ctx, func(st *store.Store, tx pgx.Tx) error {
			return jobs.InsertBranchDeleted(h.ctx, h.client, tx, p.ID, branch)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	h.waitStatus(feature.ID, store.StatusInactive)
	h.waitJobs()
	if got := h.aliasTarget(p, featureAlias); got != "" {
		t.Errorf("%s still points at %s", featureAlias, got)
	}
	if got := h.aliasTarget(p, "production"); got != prod.ID {
		t.Errorf("production -> %q, want %s (the production branch is never retired)", got, prod.ID)
	}
	if got := h.aliasTarget(p, site.BranchAlias(p.Name, "other")); got != other.ID {
		t.Errorf("another branch's preview -> %q, want %s", got, other.ID)
	}
	for id, want := range map[string]store.DeploymentStatus{prod.ID: store.StatusReady, other.ID: store.StatusReady} {
		d, err := h.st.DeploymentGetByID(h.ctx, id)
		if err != nil || d.Status != want {
			t.Errorf("%s: %v, %v; want %s", id, d, err, want)
		}
	}
	names := map[string]string{ghID(feature): "{feature}"}
	wantLines(t, "GitHub calls on a branch deletion", h.calls(names), []string{
		"GET /deployments",
		"GET /deployments/{feature}/statuses",
		"POST /deployments/{feature}/statuses inactive",
	})
}
