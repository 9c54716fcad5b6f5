package action

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/build"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/site"
)

// deploy builds (if asked), publishes and reports one deployment.
func (r *run) deploy(ctx context.Context) error {
	id := site.NewDeploymentID()
	o := &outcome{Project: r.project, Deployment: id, Aliases: r.aliases}
	if r.in.Domain != "" {
		o.DeploymentURL = site.DeploymentURL(r.in.Domain, r.project, id)
		o.URL = o.DeploymentURL
		if len(r.aliases) > 0 {
			o.URL = site.DeploymentURL(r.in.Domain, r.project, r.aliases[0])
		}
	}
	r.log.InfoContext(ctx, "deploying", "project", r.project, "deployment", id, "aliases", strings.Join(r.aliases, ","),
		"environment", r.env, "production", r.prod, "commit", r.ev.SHA)

	// Protection goes first, so that a new preview is never public for a moment.
	if err := r.applyProtection(ctx, o); err != nil {
		return err
	}
	ghID, err := r.reportStart(ctx, id)
	if err != nil {
		if ghID != 0 {
			// Do not leave the GitHub deployment in progress for ever.
			r.reportEnd(ctx, ghID, o, err)
		}
		return err
	}
	res, err := r.buildAndPublish(ctx, id)
	if err != nil {
		// The user sees err as the step's failure; the report tells GitHub the same, best effort.
		r.reportEnd(ctx, ghID, o, err)
		return err
	}
	o.Result = res
	// The site is live: later steps get its outputs even if telling GitHub fails.
	r.finish(o)
	return r.reportEnd(ctx, ghID, o, nil)
}

// buildAndPublish publishes the directory input, or builds the repository and publishes its output.
func (r *run) buildAndPublish(ctx context.Context, id string) (*site.PublishResult, error) {
	meta := map[string]string{
		"commit":     r.ev.SHA,
		"ref":        r.ev.Ref,
		"repository": r.ev.Owner + "/" + r.ev.Repo,
		"builder":    "github-action",
		"run":        r.ev.RunURL,
	}
	if r.in.Directory == "" {
		res, err := r.buildAndPublishRepo(ctx, id, meta)
		if errors.Is(err, build.ErrPublish) {
			return nil, publishError(r.in.Storage, err)
		}
		if err != nil {
			return nil, err
		}
		return res, nil
	}
	cfg, err := r.settings()
	if err != nil {
		return nil, err
	}
	dir := r.in.Directory
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(r.workdir, dir)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, ferry.Errorf(ferry.EINVALID, "input directory %q is not a folder in the workspace; build the site in an earlier step, or leave directory empty to let Ferry build it", r.in.Directory)
	}
	r.gha.Group("Publish " + r.project)
	defer r.gha.EndGroup()
	res, err := r.store.Publish(ctx, site.PublishParams{
		Project:      r.project,
		Dir:          dir,
		DeploymentID: id,
		Aliases:      r.aliases,
		Settings:     cfg,
		Domain:       r.in.Domain,
		Meta:         meta,
		Log:          r.log,
	})
	if err != nil {
		return nil, publishError(r.in.Storage, err)
	}
	return res, nil
}

// publishError adds what to check to storage failures, which otherwise read as bare S3 error codes.
func publishError(storageURL string, err error) error {
	where := storageURL
	if u, perr := url.Parse(storageURL); perr == nil {
		u.RawQuery = ""
		where = u.String()
	}
	switch code := ferry.ErrorCode(err); code {
	case ferry.EUNAUTHORIZED, ferry.EFORBIDDEN:
		return fail(code, err, "publish to %s: the storage refused the credentials. Check role-to-assume (or the AWS keys) and that "+
			"its policy allows s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on the project's prefix (see the README)", where)
	case ferry.EUNAVAILABLE:
		return fail(code, err, "publish to %s: the storage did not answer after retries; nothing was made visible, so re-run the job", where)
	}
	return fmt.Errorf("publish to %s: %w", where, err)
}

// fail builds Ferry's error with a message that says what to do and err kept as the cause, shown after it.
func fail(code string, err error, format string, args ...any) error {
	return &ferry.Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// reportStart creates the GitHub deployment (in progress) and marks the PR comment building. It returns the
// GitHub deployment's id (0 when there is no reporter or none was created), also with an error.
func (r *run) reportStart(ctx context.Context, id string) (int64, error) {
	if r.rep == nil {
		return 0, nil
	}
	ghID, err := r.rep.DeploymentCreate(ctx, ghreport.DeploymentCreateParams{
		Owner: r.ev.Owner, Repo: r.ev.Repo, SHA: r.ev.SHA, Environment: r.env, Production: r.prod,
		Project: r.project, DeploymentID: id,
	})
	if err != nil {
		return 0, err
	}
	err = r.rep.DeploymentStatusCreate(ctx, ghreport.DeploymentStatusCreateParams{
		Owner: r.ev.Owner, Repo: r.ev.Repo, DeploymentID: ghID, State: ghreport.StateInProgress,
		LogURL: r.ev.RunURL, Description: "Building and publishing",
	})
	if err != nil {
		return ghID, err
	}
	if err := r.comment(ctx, ghreport.CommentRow{Project: r.project, Status: ghreport.RowBuilding, LogURL: r.ev.RunURL, Commit: r.ev.SHA}); err != nil {
		return ghID, err
	}
	r.reportCheckRun(ctx, ghreport.CheckRunParams{Status: ghreport.CheckInProgress, DeploymentID: id, Title: "Building",
		Summary: "Building and publishing `" + id + "` in [the workflow run](" + r.ev.RunURL + ")."})
	return ghID, nil
}

// reportCheckRun creates or updates the run's ferry/<project> check run, the same one the App reports. Check
// runs need `checks: write`, which a workflow's GITHUB_TOKEN often lacks: then a log line says so and the
// deployment, its statuses and the comment go on without it.
func (r *run) reportCheckRun(ctx context.Context, p ghreport.CheckRunParams) {
	if r.rep == nil || (r.checkRun == 0 && p.Status == ghreport.CheckCompleted && r.checkRunSkipped) {
		return
	}
	p.Owner, p.Repo, p.SHA, p.Project, p.CheckRunID, p.DetailsURL = r.ev.Owner, r.ev.Repo, r.ev.SHA, r.project, r.checkRun, r.ev.RunURL
	id, err := r.rep.CheckRunUpsert(ctx, p)
	switch {
	case ferry.ErrorCode(err) == ferry.EFORBIDDEN:
		r.checkRunSkipped = true
		r.log.InfoContext(ctx, "check run skipped: the token cannot create check runs (add `checks: write` to the job's permissions for a ferry/"+r.project+" check)")
	case err != nil:
		r.gha.Warningf("ferry/%s check run not reported: %v", r.project, err)
	default:
		r.checkRun = id
	}
}

// reportEnd posts the final status, the comment row and the commit status. With a failed deploy (failed != nil)
// it reports the failure and logs its own errors, since failed is what the step returns.
func (r *run) reportEnd(ctx context.Context, ghID int64, o *outcome, failed error) error {
	if r.rep == nil {
		return nil
	}
	state, row, desc := ghreport.StateSuccess, ghreport.RowReady, "Deployed "+o.Deployment
	if failed != nil {
		state, row, desc = ghreport.StateError, ghreport.RowError, "Ferry could not deploy: "+ferry.ErrorMessage(failed)
		if !ferry.IsRetryable(failed) {
			state, row = ghreport.StateFailure, ghreport.RowFailed
		}
	}
	var errs []error
	errs = append(errs, r.rep.DeploymentStatusCreate(ctx, ghreport.DeploymentStatusCreateParams{
		Owner: r.ev.Owner, Repo: r.ev.Repo, DeploymentID: ghID, State: state,
		EnvironmentURL: o.URL, LogURL: r.ev.RunURL, Description: desc,
	}))
	cr := ghreport.CommentRow{Project: r.project, Status: row, LogURL: r.ev.RunURL, Commit: r.ev.SHA}
	if failed == nil {
		cr.URL, cr.DeploymentURL = o.URL, o.DeploymentURL
	}
	errs = append(errs, r.comment(ctx, cr))
	// statuses: write is not in the permissions the README asks for, so a refused commit status is a warning.
	if err := r.rep.CommitStatusCreate(ctx, ghreport.CommitStatusCreateParams{
		Owner: r.ev.Owner, Repo: r.ev.Repo, SHA: r.ev.SHA, Project: r.project, State: state,
		TargetURL: o.URL, Description: desc,
	}); err != nil {
		if ferry.ErrorCode(err) == ferry.EFORBIDDEN {
			r.gha.Warningf("ferry/%s commit status not set (add `statuses: write` to the job's permissions for it): %v", r.project, err)
		} else {
			errs = append(errs, err)
		}
	}
	check := ghreport.CheckRunParams{Status: ghreport.CheckCompleted, Conclusion: ghreport.ConclusionSuccess,
		DeploymentID: o.Deployment, Title: "Deployed", Summary: checkSummary(o, desc, r.ev.RunURL)}
	if failed != nil {
		check.Conclusion, check.Title = ghreport.ConclusionFailure, "Deploy failed"
	}
	r.reportCheckRun(ctx, check)
	err := errors.Join(errs...)
	if failed != nil && err != nil {
		r.gha.Warningf("report the failure to GitHub: %v", err)
		return nil
	}
	return err
}

// comment upserts the PR's sticky comment when there is a PR and the comment input allows it.
func (r *run) comment(ctx context.Context, row ghreport.CommentRow) error {
	if r.rep == nil || r.ev.PR == 0 || !r.in.Comment {
		return nil
	}
	row.UpdatedAt = time.Now()
	return r.rep.CommentUpsert(ctx, r.ev.Owner, r.ev.Repo, r.ev.PR, row)
}

// cleanup handles a closed pull request: the preview alias goes (its deployments stay reachable by id), the
// PR's GitHub deployments become inactive, and the comment says the preview was removed.
func (r *run) cleanup(ctx context.Context) error {
	alias := r.in.Alias
	if alias == "" {
		alias = site.PRAlias(r.ev.PR)
	}
	if err := r.store.AliasDelete(ctx, r.project, alias); err != nil {
		return publishError(r.in.Storage, err)
	}
	r.log.InfoContext(ctx, "alias removed", "project", r.project, "alias", alias)
	n := 0
	if r.rep != nil {
		var err error
		if n, err = r.rep.DeploymentsDeactivate(ctx, r.ev.Owner, r.ev.Repo, r.env); err != nil {
			return err
		}
		if err := r.comment(ctx, ghreport.CommentRow{Project: r.project, Status: ghreport.RowRemoved, Commit: r.ev.SHA}); err != nil {
			return err
		}
	}
	r.finish(&outcome{Project: r.project, Cleanup: fmt.Sprintf(
		"Pull request #%d closed: alias `%s` of project `%s` removed, %d GitHub deployment(s) marked inactive.", r.ev.PR, alias, r.project, n)})
	return nil
}

// finish writes the step outputs and the job summary, when the runner gave files for them.
func (r *run) finish(o *outcome) {
	if r.opts.Getenv("GITHUB_OUTPUT") != "" {
		writeOutputs(r.gha, o)
	}
	if r.opts.Getenv("GITHUB_STEP_SUMMARY") != "" {
		r.gha.AddStepSummary(summary(o))
	}
	if o.URL != "" {
		r.gha.Noticef("Deployed %s: %s", r.project, o.URL)
	}
}

// checkSummary is the check run's markdown: what happened and the URLs.
func checkSummary(o *outcome, desc, runURL string) string {
	var b strings.Builder
	b.WriteString(desc + "\n\n")
	if o.URL != "" {
		fmt.Fprintf(&b, "- URL: %s\n", o.URL)
	}
	if o.DeploymentURL != "" {
		fmt.Fprintf(&b, "- Deployment URL: %s\n", o.DeploymentURL)
	}
	if runURL != "" {
		fmt.Fprintf(&b, "- Log: %s\n", runURL)
	}
	return b.String()
}
