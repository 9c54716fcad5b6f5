package jobs

import (
	"context"

	"github.com/riverqueue/river"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
)

// sweepWorker finishes deployments that nothing else will: queued or building, with no deploy job left to run.
// River's rescuer retries a job whose worker died, but after the last attempt it discards the job, and a
// deployment left behind would say "building" for ever. The sweep marks it error and tells GitHub.
type sweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	*workerBase
}

// orphanMessage is what a swept deployment says.
const orphanMessage = "the build was lost: its worker stopped (a crash or a restart) during its last attempt"

func (w *sweepWorker) Work(ctx context.Context, job *river.Job[SweepArgs]) error {
	ds, err := w.deps.Store.DeploymentListOrphaned(ctx, store.DeploymentListOrphanedParams{
		JobKind: DeployArgs{}.Kind(), UnchangedFor: w.deps.OrphanAfter,
	})
	if err != nil {
		return err
	}
	for _, d := range ds {
		log := w.deps.Logger.With("deployment", d.ID, "job", job.ID)
		_, err := w.deps.Store.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: d.ID, Status: store.StatusError, Error: orphanMessage})
		if ferry.ErrorCode(err) == ferry.ECONFLICT {
			continue
		}
		if err != nil {
			return err
		}
		w.logLine(ctx, log, d.ID, orphanMessage)
		log.WarnContext(ctx, "deployment had no job left; marked error")
		p, err := w.deps.Store.ProjectGetByID(ctx, d.ProjectID)
		if err != nil {
			return err
		}
		if err := w.finalReport(ctx, p, d.ID, ghreport.StateError, orphanMessage); err != nil {
			log.WarnContext(ctx, "report error to GitHub", "err", err)
		}
	}
	w.m.jobs.WithLabelValues(job.Kind, "ok").Inc()
	return nil
}
