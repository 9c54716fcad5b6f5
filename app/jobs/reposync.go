package jobs

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
)

// RepoSyncArgs asks for a project's repository to be read from the GitHub API: its clone URL and full name,
// and (SetProductionBranch) its default branch. Installation events name repositories without either, and a
// clone URL built from a host name breaks on GitHub Enterprise-like layouts.
type RepoSyncArgs struct {
	ProjectID           int64 `json:"project_id"`
	SetProductionBranch bool  `json:"set_production_branch,omitempty"`
}

// Kind is the River job kind.
func (RepoSyncArgs) Kind() string { return "repo_sync" }

// InsertOpts: on the fast report queue, retried like a report.
func (RepoSyncArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueReport, MaxAttempts: 5}
}

// InsertRepoSync enqueues a repository read inside tx, with the project that needs it.
func InsertRepoSync(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, args RepoSyncArgs) error {
	if _, err := client.InsertTx(ctx, tx, args, nil); err != nil {
		return fmt.Errorf("enqueue repository sync of project %d: %w", args.ProjectID, err)
	}
	return nil
}

type repoSyncWorker struct {
	river.WorkerDefaults[RepoSyncArgs]
	*workerBase
}

func (w *repoSyncWorker) Work(ctx context.Context, job *river.Job[RepoSyncArgs]) error {
	p, err := w.deps.Store.ProjectGetByID(ctx, job.Args.ProjectID)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	gh := w.github(p)
	if gh == nil {
		return river.JobCancel(ferry.Errorf(ferry.EINVALID, "project %s has no GitHub installation to read its repository with", p.Name))
	}
	repo, _, err := gh.r.Client().Repositories.Get(ctx, gh.owner, gh.name)
	if err != nil {
		err = ghreport.Err("read repository "+p.Repository, err)
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			return river.JobCancel(err) // gone, or no longer reachable: its removal event says so
		}
		return err
	}
	params := store.ProjectSetRepositoryParams{ID: p.ID, Repository: repo.GetFullName(), CloneURL: repo.GetCloneURL()}
	if b := repo.GetDefaultBranch(); job.Args.SetProductionBranch && b != "" && !strings.ContainsAny(b, " \t\n") {
		params.ProductionBranch = &b
	}
	if _, err := w.deps.Store.ProjectSetRepository(ctx, params); err != nil {
		return err
	}
	w.deps.Logger.InfoContext(ctx, "project repository read from GitHub", "project", p.Name, "repository", params.Repository,
		"clone_url", params.CloneURL, "production_branch", params.ProductionBranch != nil)
	w.m.jobs.WithLabelValues(job.Kind, "ok").Inc()
	return nil
}
