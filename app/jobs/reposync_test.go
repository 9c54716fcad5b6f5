package jobs_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
	"github.com/ferryhq/ferry/internal/site"
)

// TestRepoSyncReadsCloneURLFromAPI: a project created from an installation event (no clone URL in the payload)
// gets its clone URL, full name and default branch from GET /repos/{owner}/{repo}, called with the
// installation's token; a build queued before that waits (retries) rather than guessing a URL.
func TestRepoSyncReadsCloneURLFromAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{})
	h.gh.SetDefaultBranch(owner+"/"+repoName, "trunk")
	p, err := h.st.ProjectCreate(h.ctx, store.ProjectCreateParams{Name: "synced", Repository: owner + "/" + repoName,
		GitHubRepoID: 4242, InstallationID: installationID})
	if err != nil {
		t.Fatal(err)
	}
	err = h.st.InTx(h.ctx, func(st *store.Store, tx pgx.Tx) error {
		return jobs.InsertRepoSync(h.ctx, h.client, tx, jobs.RepoSyncArgs{ProjectID: p.ID, SetProductionBranch: true})
	})
	if err != nil {
		t.Fatal(err)
	}
	h.waitJobs()
	got, err := h.st.ProjectGetByID(h.ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CloneURL != h.gh.URL+"/"+owner+"/"+repoName+".git" || got.ProductionBranch != "trunk" || got.Repository != owner+"/"+repoName {
		t.Fatalf("project after repo_sync: %+v", got)
	}
	calls := h.gh.CallsMatching("GET /repos/" + owner + "/" + repoName)
	if len(calls) != 1 || calls[0].Auth != ghfake.AuthInstallation || calls[0].Installation != installationID {
		t.Fatalf("repository read: %+v", calls)
	}
}

// TestBlockedProjectDoesNotBuild: a project whose installation was removed fails its queued deployment with
// the reason, and its production site stays where it was.
func TestBlockedProjectDoesNotBuild(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{})
	p, r := h.newProject("gone", static("<h1>live</h1>"))
	live := h.deploy(p, r.Commits[0], "main", 0)
	h.waitStatus(live.ID, store.StatusReady)
	h.waitJobs()
	const why = "The GitHub App was uninstalled from acme on 2026-12-02: nothing builds."
	if err := h.st.ProjectSetGitHubBlocked(h.ctx, p.ID, why); err != nil {
		t.Fatal(err)
	}
	d := h.deploy(p, r.Commits[0], "main", 0)
	d = h.waitStatus(d.ID, store.StatusFailed)
	if !strings.Contains(d.Error, why) {
		t.Errorf("error = %q, want the reason", d.Error)
	}
	if got := h.aliasTarget(p, site.ProductionAlias); got != live.ID {
		t.Errorf("production -> %q, want the live deployment %s kept", got, live.ID)
	}
}
