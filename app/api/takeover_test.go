package api_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/site"
)

// storageSnapshot reads every object under prefix: key to bytes.
func (h *harness) storageSnapshot(prefix string) map[string]string {
	h.t.Helper()
	objs, err := h.storage.List(h.ctx, prefix)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]string{}
	for _, o := range objs {
		rc, err := h.storage.Get(h.ctx, o.Key)
		if err != nil {
			h.t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			h.t.Fatal(err)
		}
		out[o.Key] = string(b)
	}
	return out
}

// wantKept fails unless every object of before is still in storage with the same bytes.
func (h *harness) wantKept(what string, before map[string]string) {
	h.t.Helper()
	now := h.storageSnapshot("projects/")
	for k, v := range before {
		got, ok := now[k]
		switch {
		case !ok:
			h.t.Errorf("%s: %s was removed", what, k)
		case got != v:
			h.t.Errorf("%s: %s changed", what, k)
		}
	}
}

// actionPublish publishes a site the way the GitHub Action does: straight to storage, through site.Store.Publish,
// with the Action's meta and the production alias. The App's database knows nothing of it.
func (h *harness) actionPublish(project, repository, body string) string {
	h.t.Helper()
	dir := h.t.TempDir()
	for name, data := range map[string]string{"index.html": body, "about.html": "about " + body} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
	res, err := h.site.Publish(h.ctx, site.PublishParams{Project: project, Dir: dir, Aliases: []string{site.ProductionAlias},
		Meta: map[string]string{"repository": repository, "builder": "github-action", "commit": strings.Repeat("a", 40), "ref": "refs/heads/main"}})
	if err != nil {
		h.t.Fatal(err)
	}
	return res.Deployment
}

// TestStorageOnlySiteTakeover is issue 11's item 3: a site the Action published exists in storage only. A
// signed-up user cannot create a project with its name (from any URL), rename a project to it, deploy over it or
// delete it; storage stays byte for byte. A user who proves ownership (an installation of the repository the
// manifests name) can; deleting their project removes only what Ferry built for it, unless they purge with the
// name confirmed.
func TestStorageOnlySiteTakeover(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	actionDep := h.actionPublish("landing", "Acme/Landing", "the action's site")
	h.actionPublish("orphan", "", "no repository named") // a `ferry publish` of a folder: no repository in meta
	before := h.storageSnapshot("projects/")

	bob := h.newUser()
	for _, c := range []struct{ git, name string }{
		{h.repo.Bare, "landing"},
		{"https://github.com/acme/landing.git", "landing"}, // the right repository, but bob has no installation of it
		{"https://github.com/bob/landing.git", ""},         // the default name from the URL
		{"https://github.com/acme/landing.git", "orphan"},
	} {
		r := h.do(bob, "POST", "/api/v1/projects", map[string]any{"gitUrl": c.git, "name": c.name})
		code, msg := r.errorCode()
		if r.status != 409 || code != "conflict" || !strings.Contains(msg, "is taken in storage") || !strings.Contains(msg, "Choose another name") {
			t.Errorf("create %q from %s: %d %s %q, want 409 taken in storage", c.name, c.git, r.status, code, msg)
		}
	}
	// Renaming an empty project to the name is a claim too.
	h.must(bob, 201, "POST", "/api/v1/projects", map[string]any{"gitUrl": h.repo.Bare, "name": "bobs"}, nil)
	if r := h.do(bob, "PATCH", "/api/v1/projects/bobs", map[string]any{"name": "landing"}); r.status != 409 {
		t.Errorf("rename to a storage-held name: %d %s, want 409", r.status, r.body)
	}
	// Without a project, there is nothing to deploy to, see or delete.
	for _, e := range []struct{ method, path string }{
		{"POST", "/api/v1/projects/landing/deployments"}, {"GET", "/api/v1/projects/landing/aliases"},
		{"DELETE", "/api/v1/projects/landing"}, {"DELETE", "/api/v1/projects/landing?purge_storage=true&confirm=landing"},
	} {
		if r := h.do(bob, e.method, e.path, map[string]string{"commit": strings.Repeat("b", 40)}); r.status != 404 {
			t.Errorf("%s %s: %d, want 404", e.method, e.path, r.status)
		}
	}
	if n := h.count(`SELECT count(*) FROM projects WHERE name IN ('landing', 'orphan')`); n != 0 {
		t.Fatalf("%d projects took the storage-held names", n)
	}
	h.wantKept("after bob's attempts", before)

	// Alice belongs to an installation of acme/landing: she proves ownership and takes the name.
	alice := h.newUser()
	if _, err := h.st.InstallationUpsert(h.ctx, store.InstallationUpsertParams{ID: 31, AccountLogin: "acme", AccountType: "Organization", AccountID: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.ProjectCreate(h.ctx, store.ProjectCreateParams{Name: "landing-app", Repository: "acme/landing",
		CloneURL: "https://github.com/acme/landing.git", GitHubRepoID: 31, InstallationID: 31}); err != nil {
		t.Fatal(err)
	}
	if err := h.st.UserInstallationsReplace(h.ctx, alice.id, []int64{31}); err != nil {
		t.Fatal(err)
	}
	if r := h.do(alice, "POST", "/api/v1/projects", map[string]any{"gitUrl": "https://github.com/acme/other.git", "name": "landing"}); r.status != 409 {
		t.Errorf("alice with another repository's URL: %d, want 409", r.status)
	}
	h.must(alice, 201, "POST", "/api/v1/projects", map[string]any{"gitUrl": "https://github.com/acme/landing.git", "name": "landing"}, nil)
	var p struct{ ProductionDeploymentID string }
	h.must(alice, 200, "GET", "/api/v1/projects/landing", nil, &p)
	if p.ProductionDeploymentID != actionDep {
		t.Fatalf("alice's project shows production %q, want the Action's %s", p.ProductionDeploymentID, actionDep)
	}
	// Ferry builds a preview for her project; deleting the project removes that and nothing the Action wrote.
	var d struct{ ID string }
	h.must(alice, 201, "POST", "/api/v1/projects/landing/deployments", map[string]string{"commit": h.repo.Commits[1], "branch": "feature"}, &d)
	h.waitDeployment(alice, d.ID, store.StatusReady)
	ferryManifest := site.ManifestKey("landing", d.ID)
	if _, err := h.storage.Stat(h.ctx, ferryManifest); err != nil {
		t.Fatalf("Ferry's build was not published: %v", err)
	}
	if r := h.do(alice, "DELETE", "/api/v1/projects/landing?purge_storage=true", nil); r.status != 400 || !strings.Contains(string(r.body), "confirm") {
		t.Fatalf("purge without confirmation: %d %s, want 400", r.status, r.body)
	}
	h.must(alice, 202, "DELETE", "/api/v1/projects/landing", nil, nil)
	h.waitGone(alice, "landing")
	h.wantKept("after alice deleted her project", before)
	if _, err := h.storage.Stat(h.ctx, ferryManifest); err == nil {
		t.Error("the deployment Ferry built is still stored")
	}
	if _, err := h.site.AliasGet(h.ctx, "landing", site.BranchAlias("landing", "feature")); err == nil {
		t.Error("the alias of Ferry's build is still stored")
	}
	if got := h.serve("landing", site.ProductionAlias); got != "the action's site" {
		t.Errorf("production now serves %q", got)
	}

	// With the name confirmed, a purge removes everything under the name.
	h.must(alice, 201, "POST", "/api/v1/projects", map[string]any{"gitUrl": "https://github.com/acme/landing.git", "name": "landing"}, nil)
	h.must(alice, 202, "DELETE", "/api/v1/projects/landing?purge_storage=true&confirm=landing", nil, nil)
	h.waitGone(alice, "landing")
	if left := h.storageSnapshot("projects/landing/"); len(left) != 0 {
		t.Errorf("a confirmed purge left %d objects", len(left))
	}
	h.wantKept("the purge of landing", map[string]string{})
	for k, v := range before {
		if strings.HasPrefix(k, "projects/orphan/") {
			h.wantKept("other names", map[string]string{k: v})
		}
	}
}

// waitGone polls until the project's deletion has finished.
func (h *harness) waitGone(u *user, name string) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for h.do(u, "GET", "/api/v1/projects/"+name, nil).status != 404 {
		if time.Now().After(deadline) {
			h.t.Fatalf("project %s was never deleted", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
