package jobs_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/site"
)

// TestMonorepoCompareSkips: a monorepo project's push too long for its payload's file lists asks GitHub's
// compare API (with the installation token): nothing under the root directory skips the build, reported as
// skipped (check run), inactive (deployment) and success (commit status); a change under it builds.
func TestMonorepoCompareSkips(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{})
	p, r := h.newProject("web", map[string]string{"apps/web/index.html": "<h1>web</h1>", "api/main.go": "package main"})
	settings := []byte(`{"overrides": {"rootDirectory": "apps/web", "buildCommand": "", "outputDirectory": "."}}`)
	if _, err := h.st.ProjectUpdate(h.ctx, store.ProjectUpdateParams{ID: p.ID, Settings: settings}); err != nil {
		t.Fatal(err)
	}
	p, _ = h.st.ProjectGetByID(h.ctx, p.ID)
	sha := r.Commits[0]
	const base = "1111111111111111111111111111111111111111"
	enqueue := func(ref string) *store.Deployment {
		var d *store.Deployment
		err := h.st.InTx(h.ctx, func(st *store.Store, tx pgx.Tx) error {
			var err error
			d, err = st.DeploymentCreate(h.ctx, store.DeploymentCreateParams{ID: site.NewDeploymentID(), ProjectID: p.ID, CommitSHA: sha,
				Ref: ref, Kind: store.KindPreview, Alias: "git-" + ref})
			if err != nil {
				return err
			}
			return jobs.InsertDeployArgs(h.ctx, h.client, tx, jobs.DeployArgs{DeploymentID: d.ID, CompareBase: base})
		})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	h.gh.SetCompare(owner, repoName, base, sha, "api/main.go", "apps/website/x.html")
	d := h.waitStatus(enqueue("api").ID, store.StatusCanceled)
	h.waitJobs()
	if !strings.Contains(d.Error, "skipped") || d.Attempt != 0 {
		t.Errorf("skipped deployment: error %q, attempt %d", d.Error, d.Attempt)
	}
	c := h.checkRunOf(sha)
	if c.Conclusion == nil || *c.Conclusion != "skipped" {
		t.Errorf("check run = %+v", c)
	}
	cs := h.gh.CommitStatuses(owner, repoName, sha)
	if len(cs) == 0 || cs[len(cs)-1].State != "success" || !strings.Contains(cs[len(cs)-1].Description, "Skipped") {
		t.Errorf("commit statuses = %+v", cs)
	}
	if sts := h.gh.DeploymentStatuses(d.GitHubDeploymentID); len(sts) == 0 || sts[len(sts)-1].State != "inactive" {
		t.Errorf("deployment statuses = %+v", sts)
	}
	calls := h.gh.CallsMatching("GET /repos/" + owner + "/" + repoName + "/compare/*")
	if len(calls) != 1 || calls[0].Path != "/repos/"+owner+"/"+repoName+"/compare/"+base+"..."+sha || calls[0].Auth != "installation" {
		t.Fatalf("compare calls: %+v", calls)
	}

	h.gh.SetCompare(owner, repoName, base, sha, "api/main.go", "apps/web/index.html")
	h.waitStatus(enqueue("web").ID, store.StatusReady)
}
