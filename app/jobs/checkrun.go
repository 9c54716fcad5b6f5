package jobs

import (
	"context"
	"fmt"
	"strings"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
)

// checkTailLines is how much of the log a check run shows: enough to see what a build was doing or why it
// failed, little enough to read on the PR's checks tab.
const checkTailLines = 30

// checkState is one step of a deployment's ferry/<project> check run.
type checkState struct {
	status, conclusion string
	title, summary     string
	// step, when set, shows that step's last lines rather than the log's (the failing step).
	step string
}

// checkRun reports d on the ferry/<project> check run of its commit (one per project and commit: a redeploy
// reuses the commit's run). It runs under d's reporting lock with st in that transaction. A failure is logged and
// never fails the caller: check runs add to the commit status and deployment statuses, which stay the contract,
// and an installation that has not granted `checks: write` yet must still deploy.
func (w *workerBase) checkRun(ctx context.Context, st *store.Store, gh *repo, p *store.Project, d *store.Deployment, cs checkState) {
	log := w.deps.Logger.With("deployment", d.ID, "project", p.Name)
	id, err := st.CheckRunGet(ctx, d.ID)
	if err == nil && id == 0 {
		id, err = st.CheckRunForCommit(ctx, p.ID, d.CommitSHA)
	}
	if err != nil {
		log.WarnContext(ctx, "check run not reported", "err", err)
		return
	}
	params := ghreport.CheckRunParams{Owner: gh.owner, Repo: gh.name, SHA: d.CommitSHA, Project: p.Name,
		CheckRunID: id, DeploymentID: d.ID, Status: cs.status, Conclusion: cs.conclusion, Title: cs.title,
		Summary: w.checkSummary(p, d, cs), DetailsURL: w.logURL(d.ID)}
	if cs.status != ghreport.CheckQueued {
		tail, err := st.DeploymentLogTail(ctx, d.ID, cs.step, checkTailLines)
		if err != nil {
			log.WarnContext(ctx, "check run without the log's tail", "err", err)
		}
		if len(tail) > 0 {
			lines := make([]string, len(tail))
			for i, l := range tail {
				lines[i] = l.Line
			}
			params.Text = ghreport.LogBlock(lines)
		}
	}
	if cs.conclusion == ghreport.ConclusionSuccess || cs.conclusion == ghreport.ConclusionFailure {
		params.Actions = []ghreport.CheckRunAction{ghreport.RedeployAction}
		if cs.conclusion == ghreport.ConclusionSuccess && d.Kind == store.KindPreview {
			params.Actions = append(params.Actions, ghreport.PromoteAction)
		}
	}
	newID, err := gh.r.CheckRunUpsert(ctx, params)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND && id != 0 {
		// The run is gone (the repository was recreated, or GitHub pruned it): start a new one.
		params.CheckRunID = 0
		newID, err = gh.r.CheckRunUpsert(ctx, params)
	}
	if err != nil {
		log.WarnContext(ctx, "check run not reported", "status", cs.status, "err", err)
		return
	}
	if err := st.CheckRunSet(ctx, store.CheckRunSetParams{DeploymentID: d.ID, ProjectID: p.ID, CommitSHA: d.CommitSHA,
		CheckRunID: newID}); err != nil {
		log.WarnContext(ctx, "check run id not recorded", "err", err)
	}
}

// checkSummary is the check run's markdown summary: what happened and the URLs.
func (w *workerBase) checkSummary(p *store.Project, d *store.Deployment, cs checkState) string {
	var b strings.Builder
	if cs.summary != "" {
		b.WriteString(cs.summary)
		b.WriteString("\n\n")
	}
	target := "preview"
	switch {
	case d.Kind == store.KindProduction:
		target = "production"
	case d.PRNumber != 0:
		target = fmt.Sprintf("preview of #%d", d.PRNumber)
	}
	fmt.Fprintf(&b, "| | |\n|---|---|\n| Project | `%s` (%s) |\n| Commit | `%s` on `%s` |\n| Deployment | `%s` |\n",
		p.Name, target, shortSHA(d.CommitSHA), mdCell(d.Ref), d.ID)
	if cs.conclusion == ghreport.ConclusionSuccess {
		fmt.Fprintf(&b, "| URL | %s |\n| Deployment URL | %s |\n", w.aliasURL(p, d), w.deploymentURL(p, d))
	}
	if u := w.logURL(d.ID); u != "" {
		fmt.Fprintf(&b, "| Log | %s |\n", u)
	}
	if cs.step != "" {
		fmt.Fprintf(&b, "\nThe last lines of the failing step, `%s`:\n", mdCell(cs.step))
	} else if cs.status != ghreport.CheckQueued {
		b.WriteString("\nThe log's last lines:\n")
	}
	return b.String()
}

// mdCell keeps a user-controlled name (a branch, a step) from breaking the summary's table or code spans.
func mdCell(s string) string {
	return strings.NewReplacer("|", "\\|", "`", "'", "\n", " ", "\r", " ").Replace(s)
}

// failingStep is the build step whose lines end the log before Ferry's own verdict: the one that failed.
func failingStep(ctx context.Context, st *store.Store, id string) string {
	tail, err := st.DeploymentLogTail(ctx, id, "", 200)
	if err != nil {
		return ""
	}
	for i := len(tail) - 1; i >= 0; i-- {
		if s := tail[i].Step; s != "" && s != "ferry" {
			return s
		}
	}
	return ""
}
