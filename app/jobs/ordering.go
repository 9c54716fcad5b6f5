package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/site"
)

// headGone is what headOf answers for a branch or pull request that GitHub no longer has: it matches no commit.
const headGone = "-"

// headOf asks GitHub which commit a deployment's line points at now: its branch (GET .../git/ref/heads/<ref>)
// or its pull request's head (GET .../pulls/<n>, head.sha). "" means there is no answer to compare with: the
// project is not on GitHub (no App or installation), or the deployment has no line. A line that is gone is
// headGone.
func (w *workerBase) headOf(ctx context.Context, p *store.Project, d *store.Deployment) (string, error) {
	gh := w.github(p)
	if gh == nil {
		return "", nil
	}
	switch {
	case d.PRNumber != 0:
		pr, resp, err := gh.r.Client().PullRequests.Get(ctx, gh.owner, gh.name, d.PRNumber)
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return headGone, nil
		}
		if err != nil {
			return "", fmt.Errorf("ask GitHub for the head of pull request #%d: %w", d.PRNumber, err)
		}
		return pr.GetHead().GetSHA(), nil
	case d.Ref != "":
		ref, resp, err := gh.r.Client().Git.GetRef(ctx, gh.owner, gh.name, "heads/"+d.Ref)
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return headGone, nil
		}
		if err != nil {
			return "", fmt.Errorf("ask GitHub where %s points: %w", d.Ref, err)
		}
		return ref.GetObject().GetSHA(), nil
	}
	return "", nil
}

// supersedeForHead is how a push's or pull request's deployment (FollowRef) replaces the other unfinished
// deployments of its branch or pull request. Webhook intake cannot decide it: deliveries arrive out of order,
// and an older push arriving while a newer one builds would cancel the newer build and then end stale itself,
// leaving the alias on neither commit. So intake supersedes nothing for them, and this asks GitHub which
// commit the line points at: only the deployment of that commit cancels the others (all of them, whatever
// their arrival order); any other one supersedes nothing, builds, and ends stale at its head check if GitHub
// still says so then. With nothing else unfinished on the line, GitHub is not asked. A project not on GitHub
// falls back to arrival order (store.DeploymentSupersede).
//
// The superseded deployments are reported inactive: by ensureQueued when d is not announced yet, here when it
// is.
func (w *workerBase) supersedeForHead(ctx context.Context, log *slog.Logger, p *store.Project, id string) error {
	d, err := w.deps.Store.DeploymentGetByID(ctx, id)
	if err != nil {
		return err
	}
	if d.Status.Finished() || (d.PRNumber == 0 && d.Ref == "") {
		return nil
	}
	active, err := w.deps.Store.DeploymentListActiveByRef(ctx, store.DeploymentListActiveByRefParams{
		ProjectID: p.ID, PRNumber: d.PRNumber, Ref: d.Ref})
	if err != nil {
		return err
	}
	others := 0
	for _, o := range active {
		if o.ID != d.ID {
			others++
		}
	}
	if others == 0 {
		return nil
	}
	head, err := w.headOf(ctx, p, d)
	if err != nil {
		return err
	}
	var superseded []*store.Deployment
	switch head {
	case "":
		superseded, err = w.deps.Store.DeploymentSupersede(ctx, store.DeploymentSupersedeParams{
			NewID: d.ID, ProjectID: p.ID, PRNumber: d.PRNumber, Ref: d.Ref})
	case d.CommitSHA:
		superseded, err = w.deps.Store.DeploymentSupersedeForHead(ctx, store.DeploymentSupersedeForHeadParams{
			NewID: d.ID, ProjectID: p.ID, PRNumber: d.PRNumber, Ref: d.Ref, Head: head})
	default:
		log.InfoContext(ctx, "deployment supersedes nothing: GitHub says its line points at another commit",
			"line", lineName(d), "sha", d.CommitSHA, "head", head, "unfinished", others)
		return nil
	}
	if err != nil {
		return err
	}
	for _, o := range superseded {
		log.InfoContext(ctx, "deployment superseded", "superseded", o.ID, "was", o.Status, "head", head)
	}
	if d, err = w.deps.Store.DeploymentGetByID(ctx, d.ID); err != nil || d.GitHubDeploymentID == 0 {
		return err
	}
	for _, o := range superseded {
		if err := w.reportSuperseded(ctx, p, o, d); err != nil {
			return fmt.Errorf("report %s superseded: %w", o.ID, err)
		}
	}
	return nil
}

// lineName names a deployment's branch or pull request in messages.
func lineName(d *store.Deployment) string {
	if d.PRNumber != 0 {
		return fmt.Sprintf("pull request #%d", d.PRNumber)
	}
	return "branch " + d.Ref
}

// commentCurrent rewrites a pull request's comment row for the project from what the pull request has now:
// its newest unfinished deployment, else the one its alias shows. A stale build wrote "Building" for its
// commit when it started; without this the row would keep saying so after a newer commit was deployed.
func (w *workerBase) commentCurrent(ctx context.Context, gh *repo, p *store.Project, pr int) error {
	active, err := w.deps.Store.DeploymentListActiveByRef(ctx, store.DeploymentListActiveByRefParams{ProjectID: p.ID, PRNumber: pr})
	if err != nil {
		return err
	}
	if len(active) > 0 {
		d := active[len(active)-1]
		row := ghreport.RowQueued
		if d.Status == store.StatusBuilding {
			row = ghreport.RowBuilding
		}
		return w.comment(ctx, gh, p, d, row)
	}
	a, err := w.deps.Site.AliasGet(ctx, p.Name, site.PRAlias(pr))
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	d, err := w.deps.Store.DeploymentGetByID(ctx, a.Deployment)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	return w.comment(ctx, gh, p, d, ghreport.RowReady)
}
