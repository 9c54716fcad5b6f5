// Package jobs holds the River job kinds that connect webhook intake to the workers: intake inserts them in the
// same transaction that persists a delivery, and the workers in this package carry them out. The args types are a
// contract between the two halves of `ferry app`; their JSON is stored in river_job rows, so change them only
// additively.
//
// Wiring, in `ferry app`:
//
//	cfg, err := jobs.ClientConfig(jobs.Deps{...}, concurrency) // workers, queues, timeouts, the sweep
//	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
//	...
//	st.InTx(ctx, func(st *store.Store, tx pgx.Tx) error { ...; return jobs.InsertDeploy(ctx, client, tx, id) })
package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/ferryhq/ferry/app/builder"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/retention"
	"github.com/ferryhq/ferry/internal/site"
)

// Queue names. Builds have their own queue so that its MaxWorkers is the build concurrency; GitHub reports of
// new deployments have theirs so that "queued" shows even while every build slot is busy.
const (
	QueueBuild  = "build"
	QueueReport = "report"
)

// MaxAttempts is how often a deployment is tried when the infrastructure fails it (docs/architecture.md, "Deployment lifecycle").
const MaxAttempts = 3

// DeployArgs asks for one deployment (already stored with status queued) to be reported, built and published.
type DeployArgs struct {
	DeploymentID string `json:"deployment_id"`
	// Fork marks a pull request from a fork: its build gets none of the project's env vars.
	Fork bool `json:"fork,omitempty"`
	// FollowRef (set for pushes and pull requests) moves the alias only if, when the build ends, GitHub says the
	// branch (or the pull request's head) still points at the deployment's commit: an older commit never
	// replaces a newer one on an alias, however its webhook arrived (a replayed delivery, a late retry, out of
	// order). Promote does it on purpose. It also makes the deployment supersede the line's other unfinished
	// ones only once GitHub says its commit is the line's head (supersedeForHead), not at intake.
	FollowRef bool `json:"follow_ref,omitempty"`
	// CompareBase, for a monorepo project's push whose payload was too long to list its files, is the commit
	// before the push: the build first asks GitHub what changed since, and is skipped when nothing under the
	// project's root directory did.
	CompareBase string `json:"compare_base,omitempty"`
}

// Kind is the River job kind.
func (DeployArgs) Kind() string { return "deploy" }

// InsertOpts puts builds on the build queue with MaxAttempts attempts, however they are inserted.
func (DeployArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueBuild, MaxAttempts: MaxAttempts}
}

// DeployQueuedArgs asks for a new deployment to be announced on GitHub (its Deployment and the "queued"
// status), and for the deployments it superseded to be reported inactive, without waiting for a build slot.
type DeployQueuedArgs struct {
	DeploymentID string `json:"deployment_id"`
	// FollowRef is DeployArgs.FollowRef: the report job first supersedes the line's other unfinished
	// deployments if GitHub says the line points at this one's commit (supersedeForHead).
	FollowRef bool `json:"follow_ref,omitempty"`
}

// Kind is the River job kind.
func (DeployQueuedArgs) Kind() string { return "deploy_queued" }

// InsertOpts puts the report on its own fast queue.
func (DeployQueuedArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueReport, MaxAttempts: MaxAttempts}
}

// PRCloseArgs asks for a closed pull request's previews, or a deleted branch's, to be retired: deployments
// inactive, alias removed, GitHub's deployments inactive, the sticky comment updated (pull requests). One of
// PRNumber and Branch is set.
type PRCloseArgs struct {
	ProjectID int64 `json:"project_id"`
	PRNumber  int   `json:"pr_number"`
	// Branch is a deleted branch whose git-<slug> preview goes (never the production branch).
	Branch string `json:"branch,omitempty"`
}

// Kind is the River job kind.
func (PRCloseArgs) Kind() string { return "pr_close" }

// InsertOpts: retiring a preview is retried like a build.
func (PRCloseArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: river.QueueDefault, MaxAttempts: MaxAttempts}
}

// SweepArgs asks for unfinished deployments whose jobs are gone to be marked error. It runs periodically.
type SweepArgs struct{}

// Kind is the River job kind.
func (SweepArgs) Kind() string { return "deployment_sweep" }

// InsertDeploy enqueues the work for a new deployment inside tx, so that the deployment row and its jobs commit
// together: the build, and the fast GitHub report.
func InsertDeploy(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, deploymentID string) error {
	return InsertDeployArgs(ctx, client, tx, DeployArgs{DeploymentID: deploymentID})
}

// InsertDeployArgs is InsertDeploy for callers that set more than the id (a fork's pull request).
func InsertDeployArgs(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, args DeployArgs) error {
	_, err := client.InsertManyTx(ctx, tx, []river.InsertManyParams{
		{Args: DeployQueuedArgs{DeploymentID: args.DeploymentID, FollowRef: args.FollowRef}},
		{Args: args},
	})
	if err != nil {
		return fmt.Errorf("enqueue deployment %s: %w", args.DeploymentID, err)
	}
	return nil
}

// InsertBranchDeleted enqueues the clean-up of a deleted branch's preview inside tx: the same job as a closed
// pull request's.
func InsertBranchDeleted(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, projectID int64, branch string) error {
	if _, err := client.InsertTx(ctx, tx, PRCloseArgs{ProjectID: projectID, Branch: branch}, nil); err != nil {
		return fmt.Errorf("enqueue the preview clean-up of deleted branch %s: %w", branch, err)
	}
	return nil
}

// InsertPRClose enqueues the clean-up of a closed pull request inside tx.
func InsertPRClose(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, projectID int64, pr int) error {
	if _, err := client.InsertTx(ctx, tx, PRCloseArgs{ProjectID: projectID, PRNumber: pr}, nil); err != nil {
		return fmt.Errorf("enqueue closing of PR #%d: %w", pr, err)
	}
	return nil
}

// GitHub is what the workers need of the GitHub App: a reporter and a clone token per installation.
// *ghreport.App satisfies it.
type GitHub interface {
	// Reporter acts as the App's installation; nil while no App is configured (nothing is reported then).
	Reporter(installationID int64) *ghreport.Reporter
	InstallationToken(ctx context.Context, installationID int64) (string, error)
}

var _ GitHub = (*ghreport.App)(nil)

// Deps is what the workers run on. Store, Site, Builder and StorageURL are required.
type Deps struct {
	Store *store.Store
	// Site moves and deletes aliases in the storage the builds publish to.
	Site    *site.Store
	Builder builder.Builder
	// GitHub reports deployments; nil (or a project without an installation) reports nothing and clones
	// without a token, as `ferry dev` does with a bare git URL.
	GitHub GitHub
	// EnvCipher decrypts the projects' env vars for their builds (app/projects stores them); nil: a project
	// with env vars fails to build with a message naming --secret-key-file.
	EnvCipher *store.EnvCipher
	// StorageURL is handed to every build (--storage).
	StorageURL string
	// Domain makes the preview URLs (site.DeploymentURL).
	Domain string
	// PublicURL is the App's own URL; log links are PublicURL + "/deployments/<id>". Empty: no log links.
	PublicURL string
	Logger    *slog.Logger
	// Metrics receives the workers' metrics; nil keeps them unregistered.
	Metrics prometheus.Registerer

	// BuildTimeout bounds one deploy job, build and reporting included. Default 20m; keep it above the build
	// runner's own --timeout (15m by default).
	BuildTimeout time.Duration
	// PollInterval is how often a running build checks whether it was superseded. Default 1s.
	PollInterval time.Duration
	// RetryBackoff is the wait before the second attempt after an infrastructure error; the third waits four
	// times as long. Default 15s.
	RetryBackoff time.Duration
	// Deliveries lists and redelivers the App's webhook deliveries; nil turns the redelivery job off (no App).
	Deliveries HookDeliveries
	// RedeliverInterval is how often missed webhook deliveries are looked for (and once at start). Default 5m.
	RedeliverInterval time.Duration
	// RedeliverWindow is how far back deliveries are looked at; GitHub redelivers only the last 3 days'.
	// Default 24h.
	RedeliverWindow time.Duration
	// RedeliverMax bounds the redeliveries one run asks for, oldest first; the rest wait a run. Default 50.
	RedeliverMax int
	// RedeliverMaxPages bounds the pages of 100 deliveries one run reads. Default 10.
	RedeliverMaxPages int
	// CheckRunInterval is how often a running build's check run gets the log's newest lines. Default 10s.
	CheckRunInterval time.Duration
	// SweepInterval is how often orphaned deployments are looked for. Default 1m.
	SweepInterval time.Duration
	// OrphanAfter is how long an unfinished deployment without a live job is left alone. Default 1m.
	OrphanAfter time.Duration
	// Retention is the server's default retention policy; projects override fields in their settings.
	// Zero fields: retention.Defaults.
	Retention retention.Policy
	// RetentionInterval is how often the retention job collects every project. Default 1h; negative: never.
	RetentionInterval time.Duration
}

func (d Deps) withDefaults() (Deps, error) {
	if d.Store == nil || d.Site == nil || d.Builder == nil || d.StorageURL == "" {
		return d, ferry.Errorf(ferry.EINVALID, "jobs: Store, Site, Builder and StorageURL are required")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.BuildTimeout <= 0 {
		d.BuildTimeout = 20 * time.Minute
	}
	if d.PollInterval <= 0 {
		d.PollInterval = time.Second
	}
	if d.RetryBackoff <= 0 {
		d.RetryBackoff = 15 * time.Second
	}
	if d.RedeliverInterval <= 0 {
		d.RedeliverInterval = 5 * time.Minute
	}
	if d.RedeliverWindow <= 0 {
		d.RedeliverWindow = 24 * time.Hour
	}
	if d.RedeliverMax <= 0 {
		d.RedeliverMax = 50
	}
	if d.RedeliverMaxPages <= 0 {
		d.RedeliverMaxPages = 10
	}
	if d.CheckRunInterval <= 0 {
		d.CheckRunInterval = 10 * time.Second
	}
	if d.SweepInterval <= 0 {
		d.SweepInterval = time.Minute
	}
	if d.OrphanAfter <= 0 {
		d.OrphanAfter = time.Minute
	}
	d.Retention = d.Retention.Over(retention.Defaults)
	if d.RetentionInterval == 0 {
		d.RetentionInterval = time.Hour
	}
	return d, nil
}

// Register adds every worker of this package to workers.
func Register(workers *river.Workers, deps Deps) error {
	deps, err := deps.withDefaults()
	if err != nil {
		return err
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return err
	}
	w := &workerBase{deps: deps, m: m}
	for _, add := range []func() error{
		func() error { return river.AddWorkerSafely(workers, &deployWorker{workerBase: w}) },
		func() error { return river.AddWorkerSafely(workers, &deployQueuedWorker{workerBase: w}) },
		func() error { return river.AddWorkerSafely(workers, &prCloseWorker{workerBase: w}) },
		func() error { return river.AddWorkerSafely(workers, &sweepWorker{workerBase: w}) },
		func() error { return river.AddWorkerSafely(workers, &projectDeleteWorker{workerBase: w}) },
		func() error { return river.AddWorkerSafely(workers, &retentionWorker{workerBase: w}) },
		func() error { return river.AddWorkerSafely(workers, &redeliverWorker{workerBase: w}) },
		func() error { return river.AddWorkerSafely(workers, &repoSyncWorker{workerBase: w}) },
	} {
		if err := add(); err != nil {
			return fmt.Errorf("register workers: %w", err)
		}
	}
	return nil
}

// QueueConfig is the queues the workers use; concurrency is the number of builds run at once (--concurrency).
func QueueConfig(concurrency int) map[string]river.QueueConfig {
	if concurrency <= 0 {
		concurrency = 1
	}
	return map[string]river.QueueConfig{
		QueueBuild:         {MaxWorkers: concurrency},
		QueueReport:        {MaxWorkers: 10},
		river.QueueDefault: {MaxWorkers: 5},
	}
}

// ClientConfig is a complete River configuration for `ferry app`: the workers, the queues, the periodic sweep,
// and the rescue of jobs whose worker died (SIGKILL, a lost machine): River retries a job still running after
// BuildTimeout + 5m, and the sweep marks error what River discarded. Callers may set more fields (Logger, ID).
func ClientConfig(deps Deps, concurrency int) (*river.Config, error) {
	deps, err := deps.withDefaults()
	if err != nil {
		return nil, err
	}
	workers := river.NewWorkers()
	if err := Register(workers, deps); err != nil {
		return nil, err
	}
	periodic := []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(deps.SweepInterval),
			func() (river.JobArgs, *river.InsertOpts) { return SweepArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}),
	}
	if deps.RetentionInterval > 0 {
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(deps.RetentionInterval),
			func() (river.JobArgs, *river.InsertOpts) { return RetentionArgs{}, nil }, nil))
	}
	if deps.Deliveries != nil {
		// Missed webhooks (issue 15): at start, since a restart is when deliveries are lost, then periodically.
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(deps.RedeliverInterval),
			func() (river.JobArgs, *river.InsertOpts) { return RedeliverArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}))
	}
	return &river.Config{
		Queues:      QueueConfig(concurrency),
		Workers:     workers,
		MaxAttempts: MaxAttempts,
		// A job inserted by webhook intake is announced by LISTEN/NOTIFY; River then fetches at most this long
		// after its previous fetch (default 100ms), which every deployment waits. 20ms costs at most 50 fetch
		// queries a second, and only while jobs keep arriving.
		FetchCooldown:        20 * time.Millisecond,
		JobTimeout:           time.Minute, // reports, PR close, sweep; builds set their own (BuildTimeout)
		RescueStuckJobsAfter: deps.BuildTimeout + 5*time.Minute,
		Logger:               deps.Logger,
		PeriodicJobs:         periodic,
	}, nil
}
