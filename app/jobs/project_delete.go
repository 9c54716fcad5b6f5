package jobs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
)

// ProjectDeleteArgs asks for a project to be deleted: its aliases first (so its sites stop answering at once),
// then every storage object under its prefix, recording progress as it goes, and its database row last (with
// its deployments, logs and env vars). The project is already marked deleting (store.ProjectDeletionStart) and
// its unfinished builds canceled when the job is inserted.
type ProjectDeleteArgs struct {
	ProjectID int64 `json:"project_id"`
}

// Kind is the River job kind.
func (ProjectDeleteArgs) Kind() string { return "project_delete" }

// InsertOpts: deleting is retried like a build; every pass starts from a fresh listing, so a retry resumes.
func (ProjectDeleteArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: river.QueueDefault, MaxAttempts: 10}
}

type projectDeleteWorker struct {
	river.WorkerDefaults[ProjectDeleteArgs]
	*workerBase
}

// Timeout: a project with many blobs takes a while on S3.
func (w *projectDeleteWorker) Timeout(*river.Job[ProjectDeleteArgs]) time.Duration {
	return 30 * time.Minute
}

// projectDeletePasses bounds the listings: a build canceled by the deletion may still write its last objects
// for a moment after the first pass, and the next pass removes them.
const projectDeletePasses = 3

func (w *projectDeleteWorker) Work(ctx context.Context, job *river.Job[ProjectDeleteArgs]) error {
	st := w.deps.Store
	p, err := st.ProjectGetByID(ctx, job.Args.ProjectID)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return nil // an earlier attempt finished
	}
	if err != nil {
		return err
	}
	log := w.deps.Logger.With("project", p.Name, "job", job.ID)
	if _, err := st.DeploymentCancelUnfinished(ctx, store.DeploymentCancelUnfinishedParams{ProjectID: p.ID, Reason: "the project is being deleted"}); err != nil {
		return err
	}
	aliases, err := w.deps.Site.AliasList(ctx, p.Name)
	if err != nil {
		return fmt.Errorf("delete project %s: %w", p.Name, err)
	}
	for _, a := range aliases {
		if err := w.deps.Site.AliasDelete(ctx, p.Name, a.Name); err != nil {
			return fmt.Errorf("delete project %s: %w", p.Name, err)
		}
	}
	done := 0
	for pass := 0; pass < projectDeletePasses; pass++ {
		objs, err := w.deps.Site.Storage.List(ctx, site.ProjectPrefix(p.Name))
		if err != nil {
			return fmt.Errorf("delete project %s: %w", p.Name, err)
		}
		if len(objs) == 0 {
			break
		}
		total := done + len(objs)
		// Manifests before blobs, so that no deployment ever names a blob that is gone.
		keys := make([]string, 0, len(objs))
		for _, o := range objs {
			if strings.Contains(o.Key, "/deployments/") {
				keys = append(keys, o.Key)
			}
		}
		for _, o := range objs {
			if !strings.Contains(o.Key, "/deployments/") {
				keys = append(keys, o.Key)
			}
		}
		last := time.Now()
		for i, k := range keys {
			if err := w.deps.Site.Storage.Delete(ctx, k); err != nil {
				return fmt.Errorf("delete project %s: %w", p.Name, err)
			}
			done++
			if i == len(keys)-1 || time.Since(last) > 250*time.Millisecond {
				last = time.Now()
				if err := st.ProjectDeletionProgress(ctx, store.ProjectDeletionProgressParams{ID: p.ID, Total: total, Done: done}); err != nil {
					return err
				}
			}
		}
		if pass < projectDeletePasses-1 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(w.deps.PollInterval * 2):
			}
		}
	}
	if _, err := st.ProjectDeleteByID(ctx, p.ID); err != nil && ferry.ErrorCode(err) != ferry.ENOTFOUND {
		return err
	}
	log.InfoContext(ctx, "project deleted", "objects", done, "aliases", len(aliases))
	w.m.jobs.WithLabelValues(job.Kind, "ok").Inc()
	return nil
}
