package jobs

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/retention"
	"github.com/ferryhq/ferry/internal/site"
)

// RetentionArgs asks for one collection of every project by its retention policy (internal/retention). It runs
// periodically (Deps.RetentionInterval).
type RetentionArgs struct{}

// Kind is the River job kind.
func (RetentionArgs) Kind() string { return "retention" }

// InsertOpts makes the collection unique while one is waiting or running, across every replica: River's
// leader inserts the periodic job, and a run longer than the interval does not get a second one beside it.
func (RetentionArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: river.QueueDefault, MaxAttempts: 1, UniqueOpts: river.UniqueOpts{
		ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
			rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateScheduled},
	}}
}

// retentionWorker runs the storage collector for each project, then brings the database and GitHub in line:
// collected deployments become inactive, old build logs go, retired previews' GitHub deployments become
// inactive, and after the grace period a closed pull request's GitHub deployments and environment are deleted.
type retentionWorker struct {
	river.WorkerDefaults[RetentionArgs]
	*workerBase
	noAdmin sync.Map // installation id -> true once "no Administration permission" was logged
}

// Timeout bounds one collection below River's rescue of stuck jobs (BuildTimeout + 5m, 25m by default), so a
// long run is never rescued into a second one beside it. A run cut short leaves a consistent store, and the
// next one goes on (docs/architecture.md).
func (w *retentionWorker) Timeout(*river.Job[RetentionArgs]) time.Duration { return 20 * time.Minute }

func (w *retentionWorker) Work(ctx context.Context, job *river.Job[RetentionArgs]) error {
	st := w.deps.Store
	ps, err := st.ProjectListForRetention(ctx)
	if err != nil {
		return err
	}
	// A run cut short by its timeout must not starve the same projects every time.
	rand.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
	c := &retention.Collector{Storage: w.deps.Site.Storage, Log: w.deps.Logger.With("job", job.ID), Metrics: w.m.retention,
		Gone: w.projectGone}
	domains, domainsOK := c.DomainAliases(ctx)
	failed := 0
	for _, p := range ps {
		if err := w.project(ctx, c, p, domains[p.Name], domainsOK); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed++
			w.deps.Logger.ErrorContext(ctx, "project not collected; the next run tries again", "project", p.Name, "err", err)
		}
	}
	outcome := "ok"
	if failed > 0 {
		outcome = "failed"
	}
	w.m.jobs.WithLabelValues(job.Kind, outcome).Inc()
	return nil
}

// projectGone is the collector's Gone: the project's row is gone or marked for deletion, whose job removes
// (or already removed) its storage.
func (w *retentionWorker) projectGone(ctx context.Context, name string) (bool, error) {
	p, err := w.deps.Store.ProjectGetByName(ctx, name)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	d, err := w.deps.Store.ProjectDeletionGet(ctx, p.ID)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return true, nil
	}
	return d != nil, err
}

func (w *retentionWorker) project(ctx context.Context, c *retention.Collector, p *store.Project, domains map[string]bool, domainsOK bool) error {
	st := w.deps.Store
	log := w.deps.Logger.With("project", p.Name)
	settings, _ := store.ParseProjectSettings(p.Settings) // a wrong type leaves the default
	pol := settings.Retention.Over(w.deps.Retention)
	if err := pol.Validate(); err != nil {
		log.WarnContext(ctx, "project retention settings are invalid; using the server's defaults", "err", err)
		pol = w.deps.Retention
	}
	rep, err := c.Project(ctx, p.Name, pol, domains, domainsOK)
	w.m.retention.Run(rep, err)
	if err != nil {
		return err
	}
	if n, err := st.DeploymentMarkCollected(ctx, p.ID, rep.DeletedDeployments); err != nil {
		return err
	} else if n > 0 {
		log.InfoContext(ctx, "collected deployments marked inactive", "deployments", n)
	}
	if n, err := st.DeploymentLogPrune(ctx, p.ID, time.Now().Add(-pol.LogRetention())); err != nil {
		return err
	} else if n > 0 {
		log.InfoContext(ctx, "build log lines deleted", "lines", n, "reason", "older than "+strconv.Itoa(pol.LogRetentionDays)+" days")
	}
	gh := w.github(p)
	for _, alias := range rep.RetiredAliases {
		if _, err := st.DeploymentRetireByAlias(ctx, p.ID, alias); err != nil {
			return err
		}
		if gh == nil {
			continue
		}
		env := ""
		if n, ok := strings.CutPrefix(alias, "pr-"); ok {
			if pr, err := strconv.Atoi(n); err == nil && pr > 0 {
				env = ghreport.Environment(false, pr, "")
			}
		} else if ref, err := st.DeploymentRefByAlias(ctx, p.ID, alias); err != nil {
			return err
		} else if ref != "" && site.BranchAlias(p.Name, ref) == alias {
			env = ghreport.Environment(false, 0, ref)
		}
		if env == "" {
			continue
		}
		if n, err := gh.r.DeploymentsDeactivate(ctx, gh.owner, gh.name, env); err != nil {
			return err
		} else {
			log.InfoContext(ctx, "retired preview's GitHub deployments marked inactive", "alias", alias, "environment", env, "deployments", n)
		}
	}
	if gh == nil {
		return nil
	}
	prs, err := st.PRListRetired(ctx, p.ID, time.Now().Add(-time.Duration(pol.PreviewGraceDays)*24*time.Hour))
	if err != nil {
		return err
	}
	for _, pr := range prs {
		env := ghreport.Environment(false, pr, "")
		n, err := gh.r.DeploymentsDelete(ctx, gh.owner, gh.name, env)
		if err != nil {
			return err
		}
		log.InfoContext(ctx, "closed pull request's GitHub deployments deleted", "pr", pr, "deployments", n,
			"reason", "retired more than "+strconv.Itoa(pol.PreviewGraceDays)+" days ago")
		switch err := gh.r.EnvironmentDelete(ctx, gh.owner, gh.name, env); {
		case err == nil:
			log.InfoContext(ctx, "GitHub environment deleted", "environment", env)
		case ferry.ErrorCode(err) == ferry.EFORBIDDEN:
			if _, seen := w.noAdmin.LoadOrStore(p.InstallationID, true); !seen {
				log.WarnContext(ctx, "GitHub environments of closed pull requests stay: grant the App the Administration (read and write) permission to remove them", "installation", p.InstallationID, "err", err)
			}
		default:
			return err
		}
		if err := st.DeploymentForgetGitHubByPR(ctx, p.ID, pr); err != nil {
			return err
		}
	}
	return nil
}
