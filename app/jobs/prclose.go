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

	var latest *store.Deployment
	cursor := ""
	for {
		page, err := st.DeploymentListByProject(ctx, store.DeploymentListByProjectParams{
			ProjectID: p.ID, PRNumber: pr, Limit: 500, Cursor: cursor,
			Statuses: []store.DeploymentStatus{store.StatusQueued, store.StatusBuilding, store.StatusReady},
		})
		if err != nil {
			return err
		}
		for _, d := range page.Deployments {
			if latest == nil {
				latest = d
			}
			to, why := store.StatusInactive, ""
			if !d.Status.Finished() {
				to, why = store.StatusCanceled, fmt.Sprintf("pull request #%d closed", pr)
			}
			_, err := st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: d.ID, Status: to, Error: why})
			if err != nil && ferry.ErrorCode(err) != ferry.ECONFLICT { // ECONFLICT: it finished meanwhile
				return err
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
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
	st := w.deps.Store
	log := w.deps.Logger.With("project", p.Name, "branch", branch, "job", job.ID)
	if branch == p.ProductionBranch {
		log.WarnContext(ctx, "the production branch was deleted; production keeps serving its current deployment")
		return nil
	}
	cursor := ""
	for {
		page, err := st.DeploymentListByProject(ctx, store.DeploymentListByProjectParams{
			ProjectID: p.ID, Ref: branch, Limit: 500, Cursor: cursor,
			Statuses: []store.DeploymentStatus{store.StatusQueued, store.StatusBuilding, store.StatusReady},
		})
		if err != nil {
			return err
		}
		for _, d := range page.Deployments {
			if d.PRNumber != 0 { // a pull request's previews go when it closes
				continue
			}
			to, why := store.StatusInactive, ""
			if !d.Status.Finished() {
				to, why = store.StatusCanceled, fmt.Sprintf("branch %s deleted", branch)
			}
			_, err := st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: d.ID, Status: to, Error: why})
			if err != nil && ferry.ErrorCode(err) != ferry.ECONFLICT { // ECONFLICT: it finished meanwhile
				return err
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
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
