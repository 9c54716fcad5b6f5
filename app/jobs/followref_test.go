package jobs_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/site"
)

// pushDeploy is deploy as webhook intake does it for a push: with FollowRef.
func (h *harness) pushDeploy(p *store.Project, sha, ref string) *store.Deployment {
	h.t.Helper()
	var d *store.Deployment
	err := h.st.InTx(h.ctx, func(st *store.Store, tx pgx.Tx) error {
		var err error
		d, err = st.DeploymentCreate(h.ctx, store.DeploymentCreateParams{ID: site.NewDeploymentID(), ProjectID: p.ID,
			CommitSHA: sha, Ref: ref, Kind: store.KindProduction, Alias: site.ProductionAlias})
		if err != nil {
			return err
		}
		if _, err := st.DeploymentSupersede(h.ctx, store.DeploymentSupersedeParams{NewID: d.ID, ProjectID: p.ID, Ref: ref}); err != nil {
			return err
		}
		return jobs.InsertDeployArgs(h.ctx, h.client, tx, jobs.DeployArgs{DeploymentID: d.ID, FollowRef: true})
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// TestPushBuildNeverRollsBack is issue 11's item 7 at the alias: two pushes deploy in order, then a build of
// the older commit (a replayed push that intake had no row to compare with) finishes, and production stays on
// the newer one because GitHub says main points there. The old build stays reachable by id and says why.
func TestPushBuildNeverRollsBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{})
	p, r := h.newProject("rollback", static("<h1>v1</h1>"), static("<h1>v2</h1>"))
	older, newer := r.Commits[0], r.Commits[1]

	h.gh.SetRef(owner, repoName, "main", older)
	d1 := h.waitStatus(h.pushDeploy(p, older, "main").ID, store.StatusReady)
	if got := h.aliasTarget(p, "production"); got != d1.ID {
		t.Fatalf("production -> %q after the first push, want %s", got, d1.ID)
	}
	h.gh.SetRef(owner, repoName, "main", newer)
	d2 := h.waitStatus(h.pushDeploy(p, newer, "main").ID, store.StatusReady)
	if got := h.aliasTarget(p, "production"); got != d2.ID {
		t.Fatalf("production -> %q after the second push, want %s", got, d2.ID)
	}

	replay := h.pushDeploy(p, older, "main")
	d3 := h.waitStatus(replay.ID, store.StatusCanceled)
	h.waitJobs()
	if got := h.aliasTarget(p, "production"); got != d2.ID {
		t.Fatalf("production -> %q after the replayed older push, want it to stay on %s", got, d2.ID)
	}
	if !strings.Contains(d3.Error, "branch main now points at "+newer[:7]) || !strings.Contains(d3.Error, "promote") {
		t.Errorf("stale deployment's reason %q", d3.Error)
	}
	if _, err := h.site.ManifestGet(h.ctx, p.Name, d3.ID); err != nil {
		t.Errorf("the stale build's deployment is not reachable by id: %v", err)
	}
	asked := h.gh.CallsMatching("GET /repos/" + owner + "/" + repoName + "/git/ref/heads/main")
	if len(asked) != 3 {
		t.Errorf("GitHub was asked for main %d times, want once per build", len(asked))
	}

	// A branch that is gone on GitHub moves nothing either.
	h.gh.SetRef(owner, repoName, "main", "")
	gone := h.waitStatus(h.pushDeploy(p, older, "main").ID, store.StatusCanceled)
	if got := h.aliasTarget(p, "production"); got != d2.ID || !strings.Contains(gone.Error, "no longer exists") {
		t.Fatalf("deleted branch: production -> %q (%q)", got, gone.Error)
	}
}
