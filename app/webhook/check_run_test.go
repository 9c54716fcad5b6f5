package webhook_test

import (
	"context"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/app/webhook"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// The real check_run payloads' ids (octokit/webhooks, check_run/requested_action.payload.json).
const (
	realCheckRunID = 1494503112
	senderGitHubID = 2036040 // codebytere
)

// TestCheckRunActions presses the check run's buttons through the real requested_action and rerequested payloads,
// against the real projects service: only a sender linked to a Ferry user who reaches the project acts;
// Redeploy queues the same commit again, Promote moves the production alias.
func TestCheckRunActions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var sites *site.Store
	e := newEnv(t, func(c *webhook.Config) {
		files, err := storage.Open(ctx, "file://"+t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		sites = site.NewStore(files)
		rc, err := river.NewClient(riverpgxv5.New(c.Pool), &river.Config{})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := projects.New(projects.Config{Store: store.New(c.Pool), River: rc, Site: sites, Domain: "preview.test",
			Resolver: githubResolver{}})
		if err != nil {
			t.Fatal(err)
		}
		c.Actions = svc
	})
	p := e.seed("{}")

	// A ready preview of the PR head, published, reported on the real payload's check run.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>preview</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	dep, err := e.st.DeploymentCreate(ctx, store.DeploymentCreateParams{ID: site.NewDeploymentID(), ProjectID: p.ID,
		CommitSHA: prHeadSHA, Ref: "changes", PRNumber: 2, Kind: store.KindPreview, Alias: "pr-2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sites.Publish(ctx, site.PublishParams{Project: p.Name, Dir: dir, DeploymentID: dep.ID, Aliases: []string{"pr-2"}}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []store.DeploymentStatus{store.StatusBuilding, store.StatusReady} {
		if _, err := e.st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: dep.ID, Status: s}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.st.CheckRunSet(ctx, store.CheckRunSetParams{DeploymentID: dep.ID, ProjectID: p.ID, CommitSHA: prHeadSHA, CheckRunID: realCheckRunID}); err != nil {
		t.Fatal(err)
	}

	press := func(identifier string, mod func(m map[string]any)) []byte {
		return edit(t, payload(t, "check_run/requested_action.payload.json"), func(m map[string]any) {
			obj(m, "repository")["id"] = float64(helloWorldRepo)
			obj(m, "installation")["id"] = float64(eventInst)
			obj(m, "requested_action")["identifier"] = identifier
			if mod != nil {
				mod(m)
			}
		})
	}
	production := func() string {
		a, err := sites.AliasGet(ctx, p.Name, site.ProductionAlias)
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return a.Deployment
	}
	wantDeployments := func(what string, n int) {
		t.Helper()
		if ds := e.deployments(p.ID); len(ds) != n {
			t.Fatalf("%s: %d deployments, want %d", what, len(ds), n)
		}
	}

	// Nobody on Ferry is linked to the sender: refused.
	e.deliver("check_run", press("redeploy", nil), http.StatusAccepted)
	e.deliver("check_run", press("promote", nil), http.StatusAccepted)
	wantDeployments("unlinked sender", 1)
	if production() != "" {
		t.Fatal("an unlinked sender promoted")
	}

	// A linked Ferry user who does not reach the project (not the owner, not in its installation): refused.
	u, err := e.st.UserUpsertGitHub(ctx, store.UserUpsertGitHubParams{GitHubID: senderGitHubID, GitHubLogin: "codebytere"})
	if err != nil {
		t.Fatal(err)
	}
	e.deliver("check_run", press("redeploy", nil), http.StatusAccepted)
	e.deliver("check_run", press("promote", nil), http.StatusAccepted)
	wantDeployments("sender without access", 1)
	if production() != "" {
		t.Fatal("a sender without access promoted")
	}

	// The same check run id from another repository: refused even for a user who has access.
	if err := e.st.UserInstallationsReplace(ctx, u.ID, []int64{eventInst}); err != nil {
		t.Fatal(err)
	}
	e.deliver("check_run", press("promote", func(m map[string]any) { obj(m, "repository")["id"] = float64(spaceRepo) }), http.StatusAccepted)
	if production() != "" {
		t.Fatal("a check run action from another repository promoted")
	}
	// An identifier Ferry never offered: nothing.
	e.deliver("check_run", press("lgtm|26764", nil), http.StatusAccepted)
	wantDeployments("unknown identifier", 1)

	// The sender reaches the project through its installation: both buttons work.
	e.deliver("check_run", press("promote", nil), http.StatusAccepted)
	if got := production(); got != dep.ID {
		t.Fatalf("production -> %q after Promote, want %s", got, dep.ID)
	}
	e.deliver("check_run", press("redeploy", nil), http.StatusAccepted)
	ds := e.deployments(p.ID)
	if len(ds) != 2 || ds[1].CommitSHA != prHeadSHA || ds[1].PRNumber != 2 || ds[1].Alias != "pr-2" || ds[1].Status != store.StatusQueued {
		t.Fatalf("after Redeploy: %+v", ds)
	}
	// GitHub's own Re-run button (rerequested) redeploys too; the check run now reports the newest deployment.
	if err := e.st.CheckRunSet(ctx, store.CheckRunSetParams{DeploymentID: ds[1].ID, ProjectID: p.ID, CommitSHA: prHeadSHA, CheckRunID: realCheckRunID}); err != nil {
		t.Fatal(err)
	}
	rerun := edit(t, payload(t, "check_run/rerequested.payload.json"), func(m map[string]any) {
		// This 2018 example writes the App's times as "2018-04-25 20:42:10", which go-github (and so intake)
		// refuses as malformed; GitHub sends RFC 3339 today.
		for _, app := range []map[string]any{obj(m, "check_run", "app"), obj(m, "check_run", "check_suite", "app")} {
			app["created_at"], app["updated_at"] = "2018-04-25T20:42:10Z", "2018-04-25T20:42:10Z"
		}
		obj(m, "repository")["id"] = float64(helloWorldRepo)
		obj(m, "check_run")["id"] = float64(realCheckRunID)
		obj(m, "sender")["id"] = float64(senderGitHubID)
	})
	e.deliver("check_run", rerun, http.StatusAccepted)
	ds = e.deployments(p.ID)
	if len(ds) != 3 || ds[1].Status != store.StatusCanceled || ds[1].SupersededBy != ds[2].ID {
		t.Fatalf("after Re-run: %+v", ds)
	}
	// created and completed are GitHub echoing Ferry's own calls.
	e.deliver("check_run", payload(t, "check_run/created.payload.json"), http.StatusAccepted)
	e.deliver("check_run", payload(t, "check_run/completed.payload.json"), http.StatusAccepted)
	wantDeployments("created and completed", 3)
}

// githubResolver answers github.com's public address for any name, without DNS (this machine has none), so that
// a redeploy's git URL check passes; nothing connects to it.
type githubResolver struct{}

func (githubResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("140.82.112.3")}, nil
}
