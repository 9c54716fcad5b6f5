package jobs

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/site"
)

// prCloseWorker retires a closed pull request's previews, or a deleted branch's: the line's unfinished
// deployments are canceled (their builds stop), its ready ones become inactive, its alias is deleted, and
// GitHub hears the same. The retention collector deletes what is left after the grace period. Every step is
// idempotent, so a retry after a failure redoes only what is left.
type prCloseWorker struct {
	river.WorkerDefaults[PRCloseArgs]
	*workerBase
}

func (w *prCloseWorker) Work(ctx context.Context, job *river.Job[PRCloseArgs]) error {
	st := w.deps.Store
	p, err := st.ProjectGetByID(ctx, job.Args.ProjectID)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	pr, branch := job.Args.PRNumber, job.Args.Branch
	if branch != "" && pr == 0 {
		return w.branchDeleted(ctx, job, p, branch)
	}
	log := w.deps.Logger.With("project", p.Name, "pr", pr, "job", job.ID)

	latest, err := w.retireLine(ctx, store.DeploymentListByProjectParams{ProjectID: p.ID, PRNumber: pr},
		fmt.Sprintf("pull request #%d closed", pr), func(*store.Deployment) bool { return true })
	if err != nil {
		return err
	}
	if err := w.deps.Site.AliasDelete(ctx, p.Name, site.PRAlias(pr)); err != nil {
		return err
	}
	if gh := w.github(p); gh != nil {
		if _, err := gh.r.DeploymentsDeactivate(ctx, gh.owner, gh.name, ghreport.Environment(false, pr, "")); err != nil {
			return err
		}
		row := ghreport.CommentRow{Project: p.Name, Status: ghreport.RowRemoved}
		if latest != nil {
			row.Commit = latest.CommitSHA
		}
		if err := gh.r.CommentUpsert(ctx, gh.owner, gh.name, pr, row); err != nil {
			return err
		}
	}
	log.InfoContext(ctx, "pull request previews retired", "alias", site.PRAlias(pr))
	w.m.jobs.WithLabelValues(job.Kind, "ok").Inc()
	return nil
}

// branchDeleted retires a deleted branch's preview (git-<slug>): its deployments built from pushes to that
// branch, its alias and its GitHub environment's deployments. The production branch is never retired this way:
// its deployments are the rollback window, and the collector's policy keeps them.
func (w *prCloseWorker) branchDeleted(ctx context.Context, job *river.Job[PRCloseArgs], p *store.Project, branch string) error {
	log := w.deps.Logger.With("project", p.Name, "branch", branch, "job", job.ID)
	if branch == p.ProductionBranch {
		log.WarnContext(ctx, "the production branch was deleted; production keeps serving its current deployment")
		return nil
	}
	// A pull request's previews go when it closes.
	pushes := func(d *store.Deployment) bool { return d.PRNumber == 0 }
	if _, err := w.retireLine(ctx, store.DeploymentListByProjectParams{ProjectID: p.ID, Ref: branch},
		fmt.Sprintf("branch %s deleted", branch), pushes); err != nil {
		return err
	}
	alias := site.BranchAlias(p.Name, branch)
	if err := w.deps.Site.AliasDelete(ctx, p.Name, alias); err != nil {
		return err
	}
	if gh := w.github(p); gh != nil {
		if _, err := gh.r.DeploymentsDeactivate(ctx, gh.owner, gh.name, ghreport.Environment(false, 0, branch)); err != nil {
			return err
		}
	}
	log.InfoContext(ctx, "deleted branch's preview retired", "alias", alias)
	w.m.jobs.WithLabelValues(job.Kind, "ok").Inc()
	return nil
}

// retireLine ends the live deployments that params selects and keep accepts: unfinished ones are canceled with
// why (their builds stop), ready ones become inactive. It returns the newest one it saw.
func (w *prCloseWorker) retireLine(ctx context.Context, params store.DeploymentListByProjectParams, why string, keep func(*store.Deployment) bool) (*store.Deployment, error) {
	st := w.deps.Store
	params.Limit = 500
	params.Statuses = []store.DeploymentStatus{store.StatusQueued, store.StatusBuilding, store.StatusReady}
	var latest *store.Deployment
	for {
		page, err := st.DeploymentListByProject(ctx, params)
		if err != nil {
			return nil, err
		}
		for _, d := range page.Deployments {
			if !keep(d) {
				continue
			}
			if latest == nil {
				latest = d
			}
			to, reason := store.StatusInactive, ""
			if !d.Status.Finished() {
				to, reason = store.StatusCanceled, why
			}
			_, err := st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: d.ID, Status: to, Error: reason})
			if err != nil && ferry.ErrorCode(err) != ferry.ECONFLICT { // ECONFLICT: it finished meanwhile
				return nil, err
			}
		}
		if page.NextCursor == "" {
			return latest, nil
		}
		params.Cursor = page.NextCursor
	}
}
