package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/site"
)

// workerBase is what every worker of this package shares.
type workerBase struct {
	deps Deps
	m    *metrics
}

// repo is one project's GitHub side: nil when the project is not reported to GitHub.
type repo struct {
	r           *ghreport.Reporter
	owner, name string
	inst        int64
}

// github returns the project's reporter, or nil when there is no GitHub App or no installation reaches it.
func (w *workerBase) github(p *store.Project) *repo {
	if w.deps.GitHub == nil || p.InstallationID == 0 {
		return nil
	}
	owner, name, ok := strings.Cut(p.Repository, "/")
	if !ok || owner == "" || name == "" {
		return nil
	}
	r := w.deps.GitHub.Reporter(p.InstallationID)
	if r == nil { // no App yet (app/githubapp.Live before one is created)
		return nil
	}
	return &repo{r: r, owner: owner, name: name, inst: p.InstallationID}
}

// withLock runs fn on a fresh copy of the deployment while holding its reporting lock (store.DeploymentLock) in
// a transaction; fn's store runs in that transaction, so a status change it makes commits with its reports.
func (w *workerBase) withLock(ctx context.Context, id string, fn func(st *store.Store, d *store.Deployment) error) error {
	return w.deps.Store.InTx(ctx, func(st *store.Store, _ pgx.Tx) error {
		if err := st.DeploymentLock(ctx, id); err != nil {
			return err
		}
		d, err := st.DeploymentGetByID(ctx, id)
		if err != nil {
			return err
		}
		return fn(st, d)
	})
}

func (w *workerBase) environment(d *store.Deployment) string {
	return ghreport.Environment(d.Kind == store.KindProduction, d.PRNumber, d.Ref)
}

func (w *workerBase) logURL(id string) string {
	if w.deps.PublicURL == "" {
		return ""
	}
	return strings.TrimSuffix(w.deps.PublicURL, "/") + "/deployments/" + id
}

func (w *workerBase) aliasURL(p *store.Project, d *store.Deployment) string {
	if d.Alias == "" {
		return w.deploymentURL(p, d)
	}
	return site.DeploymentURL(w.deps.Domain, p.Name, d.Alias)
}

func (w *workerBase) deploymentURL(p *store.Project, d *store.Deployment) string {
	return site.DeploymentURL(w.deps.Domain, p.Name, d.ID)
}

// ensureQueued announces a deployment on GitHub once: the deployments it superseded become inactive, then its
// GitHub Deployment, its "queued" status and, for a pull request, the comment row. Both the fast report job and the build job call it; the lock and the stored
// GitHub id make the second call a no-op. A deployment that was canceled before anyone announced it is never
// announced.
func (w *workerBase) ensureQueued(ctx context.Context, p *store.Project, id string) error {
	gh := w.github(p)
	if gh == nil {
		return nil
	}
	return w.withLock(ctx, id, func(st *store.Store, d *store.Deployment) error {
		if d.GitHubDeploymentID != 0 || d.Status.Finished() {
			return nil
		}
		// First the deployments this one replaced: once, since the announcement happens once, and before it,
		// so that GitHub shows the old one inactive before the new one queued.
		old, err := st.DeploymentListSupersededBy(ctx, d.ID)
		if err != nil {
			return err
		}
		for _, o := range old {
			if err := w.reportSuperseded(ctx, p, o, d); err != nil {
				return fmt.Errorf("report %s superseded: %w", o.ID, err)
			}
		}
		ghID, err := gh.r.DeploymentCreate(ctx, ghreport.DeploymentCreateParams{
			Owner: gh.owner, Repo: gh.name, SHA: d.CommitSHA, Environment: w.environment(d),
			Production: d.Kind == store.KindProduction, Project: p.Name, DeploymentID: d.ID,
		})
		if err != nil {
			return err
		}
		if _, err := st.DeploymentSetGitHubID(ctx, store.DeploymentSetGitHubIDParams{ID: d.ID, GitHubDeploymentID: ghID}); err != nil {
			return err
		}
		err = gh.r.DeploymentStatusCreate(ctx, ghreport.DeploymentStatusCreateParams{
			Owner: gh.owner, Repo: gh.name, DeploymentID: ghID, State: ghreport.StateQueued,
			LogURL: w.logURL(d.ID), Description: "Queued",
		})
		if err != nil {
			return err
		}
		w.checkRun(ctx, st, gh, p, d, checkState{status: ghreport.CheckQueued, title: "Queued"})
		return w.comment(ctx, gh, p, d, ghreport.RowQueued)
	})
}

// comment updates the project's row in the pull request's sticky comment; branches have no comment.
func (w *workerBase) comment(ctx context.Context, gh *repo, p *store.Project, d *store.Deployment, status ghreport.RowStatus) error {
	if d.PRNumber == 0 {
		return nil
	}
	row := ghreport.CommentRow{Project: p.Name, Status: status, Commit: d.CommitSHA, LogURL: w.logURL(d.ID)}
	switch status {
	case ghreport.RowReady:
		row.URL, row.DeploymentURL = w.aliasURL(p, d), w.deploymentURL(p, d)
	case ghreport.RowRemoved:
		row.LogURL = ""
	}
	return gh.r.CommentUpsert(ctx, gh.owner, gh.name, d.PRNumber, row)
}

// finalReport tells GitHub how a deployment ended: its deployment status, the commit status and the comment
// row. A deployment GitHub never heard of is created first, so that a failure is visible.
func (w *workerBase) finalReport(ctx context.Context, p *store.Project, id, state, description string) error {
	gh := w.github(p)
	if gh == nil {
		return nil
	}
	return w.withLock(ctx, id, func(st *store.Store, d *store.Deployment) error {
		if d.GitHubDeploymentID == 0 {
			ghID, err := gh.r.DeploymentCreate(ctx, ghreport.DeploymentCreateParams{
				Owner: gh.owner, Repo: gh.name, SHA: d.CommitSHA, Environment: w.environment(d),
				Production: d.Kind == store.KindProduction, Project: p.Name, DeploymentID: d.ID,
			})
			if err != nil {
				return err
			}
			if d, err = st.DeploymentSetGitHubID(ctx, store.DeploymentSetGitHubIDParams{ID: d.ID, GitHubDeploymentID: ghID}); err != nil {
				return err
			}
		}
		ds := ghreport.DeploymentStatusCreateParams{Owner: gh.owner, Repo: gh.name, DeploymentID: d.GitHubDeploymentID,
			State: state, LogURL: w.logURL(d.ID), Description: description}
		cs := ghreport.CommitStatusCreateParams{Owner: gh.owner, Repo: gh.name, SHA: d.CommitSHA, Project: p.Name,
			State: state, TargetURL: w.logURL(d.ID), Description: description}
		row := ghreport.RowError
		check := checkState{status: ghreport.CheckCompleted, conclusion: ghreport.ConclusionFailure,
			title: "Infrastructure error", summary: description}
		switch state {
		case ghreport.StateSuccess:
			ds.EnvironmentURL = w.aliasURL(p, d)
			cs.TargetURL = ds.EnvironmentURL
			row = ghreport.RowReady
			check.conclusion, check.title, check.summary = ghreport.ConclusionSuccess, "Deployed", description
		case ghreport.StateFailure:
			row = ghreport.RowFailed
			check.step = failingStep(ctx, st, d.ID)
			check.title = "Build failed"
			if check.step != "" {
				check.title += " in " + check.step
			}
		}
		if err := gh.r.DeploymentStatusCreate(ctx, ds); err != nil {
			return err
		}
		if err := gh.r.CommitStatusCreate(ctx, cs); err != nil {
			return err
		}
		w.checkRun(ctx, st, gh, p, d, check)
		return w.comment(ctx, gh, p, d, row)
	})
}

// reportSuperseded marks a canceled deployment inactive on GitHub, naming the commit that replaced it. A
// deployment GitHub never heard of stays unheard of.
func (w *workerBase) reportSuperseded(ctx context.Context, p *store.Project, old *store.Deployment, by *store.Deployment) error {
	gh := w.github(p)
	if gh == nil {
		return nil
	}
	return w.withLock(ctx, old.ID, func(st *store.Store, d *store.Deployment) error {
		if d.GitHubDeploymentID == 0 || d.Status != store.StatusCanceled {
			return nil
		}
		desc := "Superseded by " + shortSHA(by.CommitSHA)
		err := gh.r.DeploymentStatusCreate(ctx, ghreport.DeploymentStatusCreateParams{
			Owner: gh.owner, Repo: gh.name, DeploymentID: d.GitHubDeploymentID, State: ghreport.StateInactive,
			LogURL: w.logURL(d.ID), Description: desc,
		})
		if err != nil {
			return err
		}
		if by.CommitSHA != d.CommitSHA {
			// A redeploy of the same commit takes the run over; a newer commit leaves this one cancelled.
			w.checkRun(ctx, st, gh, p, d, checkState{status: ghreport.CheckCompleted,
				conclusion: ghreport.ConclusionCancelled, title: desc, summary: desc + "."})
		}
		if d.Attempt == 0 {
			return nil
		}
		// The build had started and set the commit status pending: settle it.
		return gh.r.CommitStatusCreate(ctx, ghreport.CommitStatusCreateParams{Owner: gh.owner, Repo: gh.name,
			SHA: d.CommitSHA, Project: p.Name, State: ghreport.StateError, TargetURL: w.logURL(d.ID), Description: desc})
	})
}

func shortSHA(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// logLine appends one line of the worker's own to a deployment's log; failures only cost the line.
func (w *workerBase) logLine(ctx context.Context, log *slog.Logger, id, line string) {
	_, err := w.deps.Store.DeploymentLogAppend(context.WithoutCancel(ctx), store.DeploymentLogAppendParams{
		DeploymentID: id, Lines: []store.LogLine{{Time: time.Now(), Step: "ferry", Line: line}},
	})
	if err != nil {
		log.WarnContext(ctx, "append to the build log", "err", err)
	}
}
