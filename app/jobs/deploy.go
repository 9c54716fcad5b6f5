package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/ferryhq/ferry/app/builder"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/buildcontract"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
)

// deployQueuedWorker announces new deployments on GitHub (and reports the ones they superseded) without waiting
// for a build slot.
type deployQueuedWorker struct {
	river.WorkerDefaults[DeployQueuedArgs]
	*workerBase
}

func (w *deployQueuedWorker) Work(ctx context.Context, job *river.Job[DeployQueuedArgs]) error {
	d, err := w.deps.Store.DeploymentGetByID(ctx, job.Args.DeploymentID)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	p, err := w.deps.Store.ProjectGetByID(ctx, d.ProjectID)
	if err != nil {
		return err
	}
	if job.Args.FollowRef {
		if err := w.supersedeForHead(ctx, w.deps.Logger.With("deployment", d.ID, "project", p.Name), p, d.ID); err != nil {
			return fmt.Errorf("supersede for %s: %w", d.ID, err)
		}
	}
	if err := w.ensureQueued(ctx, p, d.ID); err != nil {
		return fmt.Errorf("report %s queued: %w", d.ID, err)
	}
	w.m.jobs.WithLabelValues(job.Kind, "ok").Inc()
	return nil
}

// deployWorker builds one deployment: it reports the start, runs the builder while watching for a newer
// commit, moves the alias, and reports the end. User failures are final; infrastructure failures are retried
// by River until the last attempt, which marks the deployment error.
type deployWorker struct {
	river.WorkerDefaults[DeployArgs]
	*workerBase
}

// Timeout bounds the whole job; River's rescuer retries it if its worker dies (ClientConfig).
func (w *deployWorker) Timeout(*river.Job[DeployArgs]) time.Duration { return w.deps.BuildTimeout }

// NextRetry backs off RetryBackoff, then 4×RetryBackoff.
func (w *deployWorker) NextRetry(job *river.Job[DeployArgs]) time.Time {
	n := max(job.Attempt, 1)
	return time.Now().Add(w.deps.RetryBackoff * time.Duration(n*n))
}

// errStopped is the cancel cause of a build whose deployment was canceled or superseded under it.
var errStopped = errors.New("the deployment was canceled")

func (w *deployWorker) Work(ctx context.Context, job *river.Job[DeployArgs]) error {
	id := job.Args.DeploymentID
	log := w.deps.Logger.With("deployment", id, "attempt", job.Attempt, "job", job.ID)
	outcome := func(o string) { w.m.jobs.WithLabelValues(job.Kind, o).Inc() }

	d, err := w.deps.Store.DeploymentGetByID(ctx, id)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		outcome("canceled")
		return river.JobCancel(err)
	}
	if err != nil {
		return w.infra(ctx, log, job, nil, id, err)
	}
	if d.Status.Finished() {
		log.InfoContext(ctx, "deployment already finished; nothing to build", "status", d.Status)
		outcome("skipped")
		return nil
	}
	p, err := w.deps.Store.ProjectGetByID(ctx, d.ProjectID)
	if err != nil {
		return w.infra(ctx, log, job, nil, id, err)
	}
	log = log.With("project", p.Name)
	if p.GitHubBlocked != "" {
		return w.fail(ctx, log, job, p, id, ferry.Errorf(ferry.EBUILD, "not built: %s", p.GitHubBlocked))
	}
	if p.CloneURL == "" {
		// A project created from an installation event waits for its repo_sync job to read the clone URL.
		return w.infra(ctx, log, job, p, id, ferry.Errorf(ferry.EUNAVAILABLE, "the project's clone URL is not known yet (it is read from the GitHub API)"))
	}

	if job.Args.FollowRef {
		// Normally done by the fast deploy_queued job already; then nothing else is unfinished and GitHub is
		// not asked again.
		if err := w.supersedeForHead(ctx, log, p, id); err != nil {
			return w.infra(ctx, log, job, p, id, err)
		}
	}
	if err := w.ensureQueued(ctx, p, id); err != nil {
		return w.infra(ctx, log, job, p, id, fmt.Errorf("report queued: %w", err))
	}
	if job.Args.CompareBase != "" {
		if skip, root := w.unchanged(ctx, log, p, d, job.Args.CompareBase); skip {
			return w.skip(ctx, log, job, p, id, root)
		}
	}
	d, err = w.start(ctx, p, id)
	if ferry.ErrorCode(err) == ferry.ECONFLICT {
		log.InfoContext(ctx, "deployment finished before its build started", "err", err)
		outcome("skipped")
		return nil
	}
	if err != nil {
		return w.infra(ctx, log, job, p, id, fmt.Errorf("start build: %w", err))
	}
	// Only a retry says which attempt it is: a first attempt that fails through the user's code is final, and
	// "attempt 1 of 3" on it promised retries that never come (issue 18).
	if job.Attempt > 1 {
		w.logLine(ctx, log, id, fmt.Sprintf("attempt %d of %d (the last one failed on an infrastructure error)", job.Attempt, job.MaxAttempts))
	}

	req := builder.Request{DeploymentID: id, Project: p.Name, CloneURL: p.CloneURL, Ref: d.CommitSHA,
		Domain: w.deps.Domain, Storage: w.deps.StorageURL, Overrides: buildOverrides(ctx, log, p)}
	if gh := w.github(p); gh != nil {
		if req.Token, err = w.deps.GitHub.InstallationToken(ctx, gh.inst); err != nil {
			return w.infra(ctx, log, job, p, id, fmt.Errorf("get a clone token: %w", err))
		}
	}
	fork, err := w.isFork(ctx, job.Args, d)
	if err != nil {
		return w.infra(ctx, log, job, p, id, fmt.Errorf("read the fork flag: %w", err))
	}
	req.CacheScope = cacheScope(d, fork)
	if req.Env, err = w.buildEnv(ctx, fork, d); err != nil {
		return w.infra(ctx, log, job, p, id, fmt.Errorf("read env vars: %w", err))
	}

	buildCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		w.watch(buildCtx, stop, p, id)
	}()
	logs := newLogBatcher(ctx, w.deps.Store, id, log)
	req.Log = logs.add
	t0 := time.Now()
	res, buildErr := w.deps.Builder.Build(buildCtx, req)
	elapsed := time.Since(t0).Seconds()
	stop(nil)
	<-watchDone
	logs.close()

	if errors.Is(context.Cause(buildCtx), errStopped) {
		cur, _ := w.deps.Store.DeploymentGetByID(context.WithoutCancel(ctx), id)
		why := "canceled"
		if cur != nil && cur.SupersededBy != "" {
			why = "superseded by " + cur.SupersededBy
		}
		w.logLine(ctx, log, id, "build stopped: "+why)
		log.InfoContext(ctx, "build stopped", "why", why)
		w.m.buildSeconds.WithLabelValues("canceled").Observe(elapsed)
		outcome("canceled")
		return nil
	}
	if buildErr != nil {
		if ferry.ErrorCode(buildErr) == ferry.EBUILD {
			w.m.buildSeconds.WithLabelValues("failed").Observe(elapsed)
			return w.fail(ctx, log, job, p, id, buildErr)
		}
		w.m.buildSeconds.WithLabelValues("error").Observe(elapsed)
		return w.infra(ctx, log, job, p, id, buildErr)
	}
	w.m.buildSeconds.WithLabelValues("ready").Observe(elapsed)
	return w.succeed(ctx, log, job, p, d, res)
}

// isFork reports whether a deployment builds a pull request from a fork, whichever of its job and its row
// says so.
func (w *deployWorker) isFork(ctx context.Context, args DeployArgs, d *store.Deployment) (bool, error) {
	if args.Fork {
		return true, nil
	}
	f, err := w.deps.Store.DeploymentForkGet(ctx, d.ID)
	return f.Fork, err
}

// cacheScope is the trust level of a deployment's code, which picks the dependency cache its build reads and
// writes (buildcontract.CacheScopeProduction): a fork's pull request gets none, a preview never production's.
func cacheScope(d *store.Deployment, fork bool) string {
	switch {
	case fork:
		return buildcontract.CacheScopeFork
	case d.Kind == store.KindProduction:
		return buildcontract.CacheScopeProduction
	}
	return buildcontract.CacheScopePreview
}

// buildEnv is the env vars a build gets: the project's for the deployment's environment (production or
// preview), decrypted, and none at all for a pull request from a fork.
func (w *deployWorker) buildEnv(ctx context.Context, fork bool, d *store.Deployment) (map[string]string, error) {
	if fork {
		return nil, nil
	}
	env := store.EnvPreview
	if d.Kind == store.KindProduction {
		env = store.EnvProduction
	}
	return w.deps.Store.EnvValues(ctx, store.EnvValuesParams{ProjectID: d.ProjectID, Environment: env, Cipher: w.deps.EnvCipher})
}

// start moves the deployment to building (a new attempt) and reports in_progress, under the reporting lock so
// that a supersede in between cannot be reported before it.
func (w *deployWorker) start(ctx context.Context, p *store.Project, id string) (*store.Deployment, error) {
	var out *store.Deployment
	err := w.withLock(ctx, id, func(st *store.Store, _ *store.Deployment) error {
		d, err := st.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: id, Status: store.StatusBuilding})
		if err != nil {
			return err
		}
		out = d
		gh := w.github(p)
		if gh == nil {
			return nil
		}
		if d.GitHubDeploymentID != 0 {
			err := gh.r.DeploymentStatusCreate(ctx, ghreport.DeploymentStatusCreateParams{Owner: gh.owner, Repo: gh.name,
				DeploymentID: d.GitHubDeploymentID, State: ghreport.StateInProgress, LogURL: w.logURL(id),
				Description: "Building"})
			if err != nil {
				return err
			}
		}
		err = gh.r.CommitStatusCreate(ctx, ghreport.CommitStatusCreateParams{Owner: gh.owner, Repo: gh.name,
			SHA: d.CommitSHA, Project: p.Name, State: ghreport.StatePending, TargetURL: w.logURL(id), Description: "Building"})
		if err != nil {
			return err
		}
		w.checkRun(ctx, st, gh, p, d, checkState{status: ghreport.CheckInProgress, title: "Building",
			summary: fmt.Sprintf("Building, attempt %d.", d.Attempt)})
		return w.comment(ctx, gh, p, d, ghreport.RowBuilding)
	})
	return out, err
}

// watch cancels the build once its deployment is no longer building: superseded by a newer commit, canceled by
// a user, or its pull request closed. Every CheckRunInterval it also shows the log's tail on the check run.
func (w *deployWorker) watch(ctx context.Context, stop context.CancelCauseFunc, p *store.Project, id string) {
	t := time.NewTicker(w.deps.PollInterval)
	defer t.Stop()
	lastTail := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if gh := w.github(p); gh != nil && time.Since(lastTail) >= w.deps.CheckRunInterval {
			lastTail = time.Now()
			_ = w.withLock(ctx, id, func(st *store.Store, d *store.Deployment) error {
				if d.Status == store.StatusBuilding {
					w.checkRun(ctx, st, gh, p, d, checkState{status: ghreport.CheckInProgress, title: "Building",
						summary: fmt.Sprintf("Building, attempt %d.", d.Attempt)})
				}
				return nil
			})
		}
		d, err := w.deps.Store.DeploymentGetByID(ctx, id)
		if err != nil {
			continue // the database blinked; the build goes on and the next poll tries again
		}
		if d.Status != store.StatusBuilding {
			stop(errStopped)
			return
		}
	}
}

// succeed points the alias at the new deployment, marks it ready and reports success. A deployment canceled
// while it published is left as it is and its alias untouched.
func (w *deployWorker) succeed(ctx context.Context, log *slog.Logger, job *river.Job[DeployArgs], p *store.Project, d *store.Deployment, res *builder.Result) error {
	cur, err := w.deps.Store.DeploymentGetByID(ctx, d.ID)
	if err != nil {
		return w.infra(ctx, log, job, p, d.ID, err)
	}
	if cur.Status != store.StatusBuilding {
		log.InfoContext(ctx, "build finished after its deployment was canceled; alias left alone", "status", cur.Status)
		w.m.jobs.WithLabelValues(job.Kind, "canceled").Inc()
		return nil
	}
	if job.Args.FollowRef && d.Alias != "" && (d.PRNumber != 0 || d.Ref != "") {
		head, err := w.headOf(ctx, p, d)
		if err != nil {
			return w.infra(ctx, log, job, p, d.ID, err)
		}
		if head != "" && head != d.CommitSHA {
			return w.stale(ctx, log, job, p, cur, head)
		}
	}
	if d.Alias != "" {
		if err := w.deps.Site.AliasSet(ctx, p.Name, d.Alias, d.ID); err != nil {
			return w.infra(ctx, log, job, p, d.ID, fmt.Errorf("move alias %s: %w", d.Alias, err))
		}
	}
	_, err = w.deps.Store.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: d.ID, Status: store.StatusReady,
		URL: w.deploymentURL(p, d), AliasURL: w.aliasURL(p, d)})
	if ferry.ErrorCode(err) == ferry.ECONFLICT {
		log.InfoContext(ctx, "deployment canceled as it became ready", "err", err)
		w.m.jobs.WithLabelValues(job.Kind, "canceled").Inc()
		return nil
	}
	if err != nil {
		return w.infra(ctx, log, job, p, d.ID, err)
	}
	w.logLine(ctx, log, d.ID, fmt.Sprintf("ready: %s (%d files, built in %.1fs)", w.aliasURL(p, d), res.Files, res.BuildSeconds))
	log.InfoContext(ctx, "deployment ready", "alias", d.Alias, "build_seconds", res.BuildSeconds)
	w.m.jobs.WithLabelValues(job.Kind, "ok").Inc()
	// The site is live whatever GitHub says: a report that fails after the reporter's own retries is logged,
	// not retried by rebuilding.
	if err := w.finalReport(ctx, p, d.ID, ghreport.StateSuccess, "Deployed to "+w.aliasURL(p, d)); err != nil {
		log.WarnContext(ctx, "report success to GitHub", "err", err)
	}
	return nil
}

// stale ends a build whose branch or pull request has moved on to another commit since its push: the
// deployment stays reachable by its id, its alias is left on what it shows, and it is recorded as canceled
// with the reason.
func (w *deployWorker) stale(ctx context.Context, log *slog.Logger, job *river.Job[DeployArgs], p *store.Project, d *store.Deployment, head string) error {
	msg := fmt.Sprintf("not deployed to %s: branch %s now points at %s, not at this commit; promote this deployment to deploy it anyway",
		d.Alias, d.Ref, short(head))
	moved := d.Ref + " moved on"
	switch {
	case d.PRNumber != 0 && head == headGone:
		msg = fmt.Sprintf("not deployed to %s: pull request #%d is gone; the deployment stays reachable at its own URL", d.Alias, d.PRNumber)
	case d.PRNumber != 0:
		msg = fmt.Sprintf("not deployed to %s: the head of pull request #%d is now %s, not this commit; the deployment stays reachable at its own URL",
			d.Alias, d.PRNumber, short(head))
		moved = fmt.Sprintf("PR #%d moved on", d.PRNumber)
	case head == headGone:
		msg = fmt.Sprintf("not deployed to %s: branch %s no longer exists; promote this deployment to deploy it anyway", d.Alias, d.Ref)
	}
	_, err := w.deps.Store.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: d.ID, Status: store.StatusCanceled,
		Error: msg, URL: w.deploymentURL(p, d)})
	if err != nil && ferry.ErrorCode(err) != ferry.ECONFLICT {
		return w.infra(ctx, log, job, p, d.ID, err)
	}
	w.logLine(ctx, log, d.ID, msg)
	log.WarnContext(ctx, "built commit is not the head of its "+lineName(d)+"; alias left alone", "alias", d.Alias, "sha", d.CommitSHA, "head", head)
	w.m.jobs.WithLabelValues(job.Kind, "stale").Inc()
	gh := w.github(p)
	if gh == nil {
		return nil
	}
	// Settle everything GitHub shows as in progress: the deployment (inactive), the commit status and the check
	// run (neutral: the build worked, a newer commit owns the branch), so that nothing waits forever.
	err = w.withLock(ctx, d.ID, func(st *store.Store, d *store.Deployment) error {
		if d.GitHubDeploymentID != 0 {
			if err := gh.r.DeploymentStatusCreate(ctx, ghreport.DeploymentStatusCreateParams{Owner: gh.owner, Repo: gh.name,
				DeploymentID: d.GitHubDeploymentID, State: ghreport.StateInactive, LogURL: w.logURL(d.ID), Description: msg}); err != nil {
				return err
			}
		}
		if err := gh.r.CommitStatusCreate(ctx, ghreport.CommitStatusCreateParams{Owner: gh.owner, Repo: gh.name, SHA: d.CommitSHA,
			Project: p.Name, State: ghreport.StateSuccess, TargetURL: w.logURL(d.ID), Description: "Built; not deployed: " + moved}); err != nil {
			return err
		}
		title := "Not deployed: the branch moved on"
		if d.PRNumber != 0 {
			title = "Not deployed: the pull request moved on"
		}
		w.checkRun(ctx, st, gh, p, d, checkState{status: ghreport.CheckCompleted, conclusion: ghreport.ConclusionNeutral,
			title: title, summary: msg + "."})
		if d.PRNumber != 0 {
			// The row said "Building" for this commit since its start: show the pull request's current state.
			return w.commentCurrent(ctx, gh, p, d.PRNumber)
		}
		return nil
	})
	if err != nil {
		log.WarnContext(ctx, "report the stale deployment to GitHub", "err", err)
	}
	return nil
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// fail records a user failure: final, never retried.
func (w *deployWorker) fail(ctx context.Context, log *slog.Logger, job *river.Job[DeployArgs], p *store.Project, id string, cause error) error {
	w.m.failures.WithLabelValues("user").Inc()
	msg := ferry.ErrorMessage(cause)
	_, err := w.deps.Store.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: id, Status: store.StatusFailed, Error: msg})
	if err != nil && ferry.ErrorCode(err) != ferry.ECONFLICT {
		return w.infra(ctx, log, job, p, id, fmt.Errorf("record the failure: %w", err))
	}
	if err == nil {
		desc := msg
		if !strings.HasPrefix(strings.ToLower(desc), "build failed") {
			desc = "Build failed: " + desc
		}
		w.logLine(ctx, log, id, desc)
		if err := w.finalReport(ctx, p, id, ghreport.StateFailure, desc); err != nil {
			log.WarnContext(ctx, "report failure to GitHub", "err", err)
		}
	}
	log.InfoContext(ctx, "build failed", "err", msg)
	w.m.jobs.WithLabelValues(job.Kind, "failed").Inc()
	return river.JobCancel(cause)
}

// infra handles an infrastructure error: River retries the job, and the last attempt marks the deployment
// error with the reason and reports it. The error is returned in both cases, so that River records it.
func (w *deployWorker) infra(ctx context.Context, log *slog.Logger, job *river.Job[DeployArgs], p *store.Project, id string, cause error) error {
	w.m.failures.WithLabelValues("infrastructure").Inc()
	if job.Attempt < job.MaxAttempts {
		w.logLine(ctx, log, id, fmt.Sprintf("attempt %d failed (it will be retried): %v", job.Attempt, cause))
		log.WarnContext(ctx, "build attempt failed; River retries it", "err", cause)
		w.m.jobs.WithLabelValues(job.Kind, "retry").Inc()
		return cause
	}
	// The job's own context may be what ended; the verdict must still be written.
	ctx = context.WithoutCancel(ctx)
	msg := fmt.Sprintf("infrastructure error after %d attempts: %s", job.Attempt, ferry.ErrorMessage(cause))
	_, err := w.deps.Store.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: id, Status: store.StatusError, Error: msg})
	switch {
	case err == nil:
		w.logLine(ctx, log, id, msg)
		if p != nil {
			if err := w.finalReport(ctx, p, id, ghreport.StateError, msg); err != nil {
				log.WarnContext(ctx, "report error to GitHub", "err", err)
			}
		}
	case ferry.ErrorCode(err) != ferry.ECONFLICT:
		log.ErrorContext(ctx, "record the deployment error (the sweep will)", "err", err)
	}
	w.m.jobs.WithLabelValues(job.Kind, "discarded").Inc()
	return cause
}

// buildOverrides are the project's settings.overrides for the builder. Unreadable settings build with
// ferry.json alone, and say so in the server's log.
func buildOverrides(ctx context.Context, log *slog.Logger, p *store.Project) builder.Overrides {
	s, err := store.ParseProjectSettings(p.Settings)
	if err != nil {
		log.WarnContext(ctx, "project settings are unreadable; building with ferry.json alone", "project", p.Name, "err", err)
		return builder.Overrides{}
	}
	o := s.Overrides
	return builder.Overrides{RootDirectory: o.RootDirectory, InstallCommand: o.InstallCommand,
		BuildCommand: o.BuildCommand, OutputDirectory: o.OutputDirectory}
}
