package webhook_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/ferryhq/ferry/app/store"
)

const movedRepo = 186853261 // Octocoders/Hello-World in the real repository payloads

// TestRepositoryRenamedAndTransferred: the real renamed and transferred payloads move the project to the
// repository's new full name and clone URL; edited changes nothing; a push naming the repository differently
// (a rename Ferry missed) moves it too.
func TestRepositoryRenamedAndTransferred(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.st.InstallationUpsert(ctx, store.InstallationUpsertParams{ID: eventInst, AccountLogin: "octocat", AccountType: "User", AccountID: 1}); err != nil {
		t.Fatal(err)
	}
	p, err := e.st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "hello", Repository: "octocat/Old-Name",
		CloneURL: "https://github.com/octocat/Old-Name.git", GitHubRepoID: movedRepo, InstallationID: eventInst, ProductionBranch: "master"})
	if err != nil {
		t.Fatal(err)
	}
	get := func() *store.Project {
		t.Helper()
		p, err := e.st.ProjectGetByRepoID(ctx, movedRepo)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	e.deliver("repository", payload(t, "repository/edited.payload.json"), http.StatusAccepted)
	if got := get(); got.Repository != "octocat/Old-Name" {
		t.Fatalf("edited moved the project: %+v", got)
	}
	e.deliver("repository", payload(t, "repository/renamed.payload.json"), http.StatusAccepted)
	if got := get(); got.Repository != "Octocoders/Hello-World" || got.CloneURL != "https://github.com/Octocoders/Hello-World.git" || got.Name != "hello" {
		t.Fatalf("after renamed: %+v", got)
	}
	e.deliver("repository", edit(t, payload(t, "repository/transferred.payload.json"), func(m map[string]any) {
		r := obj(m, "repository")
		r["full_name"], r["clone_url"] = "NewOwner/Hello-World", "https://ghe.example.test/scm/NewOwner/Hello-World.git"
	}), http.StatusAccepted)
	if got := get(); got.Repository != "NewOwner/Hello-World" || got.CloneURL != "https://ghe.example.test/scm/NewOwner/Hello-World.git" {
		t.Fatalf("after transferred: %+v", got)
	}
	// A push that names the repository as it is now.
	e.deliver("push", edit(t, payload(t, "push/with-new-branch.payload.json"), func(m map[string]any) {
		r := obj(m, "repository")
		r["id"], r["full_name"], r["clone_url"] = float64(movedRepo), "Renamed/Again", "https://github.com/Renamed/Again.git"
	}), http.StatusAccepted)
	if got := get(); got.Repository != "Renamed/Again" || got.CloneURL != "https://github.com/Renamed/Again.git" {
		t.Fatalf("after a push with a new name: %+v", got)
	}
	if ds := e.deployments(p.ID); len(ds) != 1 {
		t.Fatalf("the push built %d deployments, want 1", len(ds))
	}
	// A repository Ferry has no project for: nothing.
	before := e.counts()
	e.deliver("repository", edit(t, payload(t, "repository/renamed.payload.json"), func(m map[string]any) {
		obj(m, "repository")["id"] = float64(42)
	}), http.StatusAccepted)
	if c := e.counts(); c.projects != before.projects {
		t.Fatalf("a rename of an unknown repository created a project: %+v", c)
	}
}
