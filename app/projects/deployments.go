package projects

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
)

// EnqueueParams describes a deployment for Enqueue to store and build.
type EnqueueParams struct {
	store.DeploymentCreateParams // an empty ID gets site.NewDeploymentID()
	// Fork marks a pull request from another repository: built without the project's env vars.
	Fork bool
	// AwaitingApproval stores the deployment with no job, until a maintainer approves it.
	AwaitingApproval bool
	// FollowRef (pushes and pull requests) moves the alias at the end of the build only if the branch or pull
	// request still points at the commit on GitHub, and supersedes only once GitHub says the commit is the
	// newest (jobs.DeployArgs.FollowRef).
	FollowRef bool
	// CompareBase asks the build to skip itself when GitHub's compare since this commit shows no change under
	// the project's root directory (jobs.DeployArgs.CompareBase).
	CompareBase string
}

// Enqueue is THE way a deployment starts, for webhook intake and for users alike: it stores a queued
// deployment, cancels the older unfinished ones of the same pull request or branch, and enqueues its build,
// all in the caller's transaction (st runs on tx), so that none of it exists unless all of it does. A fork
// build is marked on its row and in its job's args, so that the worker withholds env vars whichever it reads.
// A deployment with neither branch nor pull request (a bare commit) supersedes nothing.
func Enqueue(ctx context.Context, st *store.Store, tx pgx.Tx, rc *river.Client[pgx.Tx], p EnqueueParams) (dep *store.Deployment, superseded []*store.Deployment, err error) {
	if p.ID == "" {
		p.ID = site.NewDeploymentID()
	}
	dep, err = st.DeploymentCreate(ctx, p.DeploymentCreateParams)
	if err != nil {
		return nil, nil, err
	}
	if p.Fork {
		if err := st.DeploymentSetFork(ctx, store.DeploymentSetForkParams{ID: dep.ID, AwaitingApproval: p.AwaitingApproval}); err != nil {
			return nil, nil, err
		}
	}
	// A push's or pull request's deployment (FollowRef) supersedes in its deploy_queued job, once GitHub has
	// said which commit is newest: arrival order is not (jobs.DeployArgs.FollowRef). One waiting for approval
	// has no job yet, so it supersedes here.
	if (dep.PRNumber != 0 || dep.Ref != "") && (!p.FollowRef || p.AwaitingApproval) {
		superseded, err = st.DeploymentSupersede(ctx, store.DeploymentSupersedeParams{
			NewID: dep.ID, ProjectID: dep.ProjectID, PRNumber: dep.PRNumber, Ref: dep.Ref,
		})
		if err != nil {
			return nil, nil, err
		}
	}
	if p.AwaitingApproval {
		return dep, superseded, nil
	}
	if err := jobs.InsertDeployArgs(ctx, rc, tx, jobs.DeployArgs{DeploymentID: dep.ID, Fork: p.Fork, FollowRef: p.FollowRef, CompareBase: p.CompareBase}); err != nil {
		return nil, nil, ferry.Wrap(ferry.EUNAVAILABLE, err)
	}
	return dep, superseded, nil
}

// Deployment is a deployment as users see it.
type Deployment struct {
	ID           string                 `json:"id"`
	Project      string                 `json:"project"`
	Commit       string                 `json:"commit"`
	Branch       string                 `json:"branch,omitempty"`
	PR           int                    `json:"pr,omitempty"`
	Kind         store.DeploymentKind   `json:"kind"`
	Status       store.DeploymentStatus `json:"status"`
	Alias        string                 `json:"alias,omitempty"`
	URL          string                 `json:"url"`                // the immutable URL <id>--<project>.D
	AliasURL     string                 `json:"aliasUrl,omitempty"` // the alias's URL
	LogURL       string                 `json:"logUrl,omitempty"`   // the dashboard's page for it
	Error        string                 `json:"error,omitempty"`
	Attempt      int                    `json:"attempt"`
	SupersededBy string                 `json:"supersededBy,omitempty"`
	CreatedAt    time.Time              `json:"createdAt"`
	StartedAt    *time.Time             `json:"startedAt,omitempty"`
	FinishedAt   *time.Time             `json:"finishedAt,omitempty"`
	// Fork and AwaitingApproval are filled in by DeploymentGet.
	Fork             bool `json:"fork,omitempty"`
	AwaitingApproval bool `json:"awaitingApproval,omitempty"`
	// Production reports whether the production alias points at it (DeploymentGet, Promote, Rollback).
	Production bool `json:"production,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *Service) deploymentView(p *store.Project, d *store.Deployment) *Deployment {
	v := &Deployment{ID: d.ID, Project: p.Name, Commit: d.CommitSHA, Branch: d.Ref, PR: d.PRNumber, Kind: d.Kind,
		Status: d.Status, Alias: d.Alias, URL: d.URL, AliasURL: d.AliasURL, Error: d.Error, Attempt: d.Attempt,
		SupersededBy: d.SupersededBy, CreatedAt: d.CreatedAt, StartedAt: timePtr(d.StartedAt), FinishedAt: timePtr(d.FinishedAt)}
	if v.URL == "" {
		v.URL = site.DeploymentURL(s.cfg.Domain, p.Name, d.ID)
	}
	if v.AliasURL == "" && d.Alias != "" {
		v.AliasURL = site.DeploymentURL(s.cfg.Domain, p.Name, d.Alias)
	}
	if s.cfg.PublicURL != "" {
		v.LogURL = strings.TrimSuffix(s.cfg.PublicURL, "/") + "/deployments/" + d.ID
	}
	return v
}

// deployment finds a deployment and its project for user, or ENOTFOUND.
func (s *Service) deployment(ctx context.Context, userID int64, id string) (*store.Project, *store.Deployment, error) {
	if userID == 0 {
		return nil, nil, ferry.Errorf(ferry.EUNAUTHORIZED, "sign in first")
	}
	if !site.IsDeploymentID(id) {
		return nil, nil, ferry.Errorf(ferry.ENOTFOUND, "deployment %q not found (ids look like dpl-0123456789abcdef)", id)
	}
	d, err := s.cfg.Store.DeploymentGetByID(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	p, err := s.cfg.Store.ProjectGetForUser(ctx, userID, d.ProjectID)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return nil, nil, ferry.Errorf(ferry.ENOTFOUND, "deployment %q not found", id)
	}
	if err != nil {
		return nil, nil, err
	}
	return p, d, nil
}

// DeploymentListParams filters and pages a project's deployments, newest first.
type DeploymentListParams struct {
	Project string
	Branch  string   // "": any
	PR      int      // 0: any
	Status  []string // any of these; empty: all
	// Limit is the page size: default 20, at most 100.
	Limit int
	// Cursor is the previous page's NextCursor.
	Cursor string
}

// DeploymentList is one page of deployments.
type DeploymentList struct {
	Deployments []*Deployment `json:"deployments"`
	// NextCursor fetches the next, older page; empty on the last one.
	NextCursor string `json:"nextCursor,omitempty"`
}

// DeploymentList returns one page of a project's deployments.
func (s *Service) DeploymentList(ctx context.Context, userID int64, p DeploymentListParams) (*DeploymentList, error) {
	proj, err := s.project(ctx, userID, p.Project)
	if err != nil {
		return nil, err
	}
	q := store.DeploymentListByProjectParams{ProjectID: proj.ID, Ref: p.Branch, PRNumber: p.PR, Limit: p.Limit, Cursor: p.Cursor}
	switch {
	case p.Limit < 0 || p.Limit > maxListPerPage:
		return nil, ferry.Errorf(ferry.EINVALID, "limit %d is out of range: ask for 1 to %d deployments per page", p.Limit, maxListPerPage)
	case p.PR < 0:
		return nil, ferry.Errorf(ferry.EINVALID, "pr %d is not a pull request number", p.PR)
	case len(p.Branch) > MaxBranch:
		return nil, ferry.Errorf(ferry.ETOOLARGE, "the branch name is longer than %d characters", MaxBranch)
	}
	if q.Limit == 0 {
		q.Limit = 20
	}
	for _, st := range p.Status {
		ds := store.DeploymentStatus(st)
		switch ds {
		case store.StatusQueued, store.StatusBuilding, store.StatusReady, store.StatusFailed, store.StatusError,
			store.StatusCanceled, store.StatusInactive:
			q.Statuses = append(q.Statuses, ds)
		default:
			return nil, ferry.Errorf(ferry.EINVALID, "unknown status %q: use queued, building, ready, failed, error, canceled or inactive", st)
		}
	}
	res, err := s.cfg.Store.DeploymentListByProject(ctx, q)
	if err != nil {
		return nil, err
	}
	out := &DeploymentList{Deployments: make([]*Deployment, 0, len(res.Deployments)), NextCursor: res.NextCursor}
	for _, d := range res.Deployments {
		out.Deployments = append(out.Deployments, s.deploymentView(proj, d))
	}
	return out, nil
}

// DeploymentGet returns one deployment.
func (s *Service) DeploymentGet(ctx context.Context, userID int64, id string) (*Deployment, error) {
	p, d, err := s.deployment(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	v := s.deploymentView(p, d)
	f, err := s.cfg.Store.DeploymentForkGet(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	v.Fork, v.AwaitingApproval = f.Fork, f.AwaitingApproval
	if d.Status == store.StatusReady {
		if cur, err := s.productionID(ctx, p); err == nil {
			v.Production = cur == d.ID
		}
	}
	return v, nil
}

// LogLine is one line of a build log.
type LogLine struct {
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	Step string    `json:"step,omitempty"`
	Line string    `json:"line"`
}

// DeploymentLogs returns the log lines after seq after (0: from the start), at most limit (default 1000, at
// most 10000), for tails that poll or resume.
func (s *Service) DeploymentLogs(ctx context.Context, userID int64, id string, after int64, limit int) ([]LogLine, error) {
	if after < 0 || limit < 0 || limit > 10000 {
		return nil, ferry.Errorf(ferry.EINVALID, "after must be 0 or more and limit 0 to 10000")
	}
	if _, _, err := s.deployment(ctx, userID, id); err != nil {
		return nil, err
	}
	lines, err := s.cfg.Store.DeploymentLogList(ctx, store.DeploymentLogListParams{DeploymentID: id, AfterSeq: after, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]LogLine, len(lines))
	for i, l := range lines {
		out[i] = LogLine{Seq: l.Seq, Time: l.Time, Step: l.Step, Line: l.Line}
	}
	return out, nil
}

// DeployParams asks for a manual build.
type DeployParams struct {
	// Branch is built at its current head, or names the line Commit belongs to. Default: the production
	// branch (when Commit is empty too).
	Branch string `json:"branch,omitempty"`
	// Commit is a full SHA to build. With no Branch it deploys to its own URL only, moving no alias.
	Commit string `json:"commit,omitempty"`
}

// DeployNow builds a branch (at its head) or a commit: the production branch goes to production, another
// branch to its git-<branch> alias, like a push would.
func (s *Service) DeployNow(ctx context.Context, userID int64, project string, p DeployParams) (*Deployment, error) {
	proj, err := s.writableProject(ctx, userID, project)
	if err != nil {
		return nil, err
	}
	if err := buildable(proj); err != nil {
		return nil, err
	}
	if p.Branch != "" {
		if err := validateBranch(p.Branch); err != nil {
			return nil, err
		}
	}
	sha := p.Commit
	if sha != "" {
		if err := validateCommit(sha); err != nil {
			return nil, err
		}
		// No ls-remote checks the URL on this path: the build's clone would be the first to reach it.
		if err := s.checkBuildable(ctx, proj); err != nil {
			return nil, err
		}
	} else {
		if p.Branch == "" {
			p.Branch = proj.ProductionBranch
		}
		if sha, err = s.cfg.ResolveRef(ctx, proj, p.Branch); err != nil {
			return nil, err
		}
	}
	params := store.DeploymentCreateParams{ProjectID: proj.ID, CommitSHA: sha, Ref: p.Branch, Kind: store.KindPreview}
	switch p.Branch {
	case "":
	case proj.ProductionBranch:
		params.Kind, params.Alias = store.KindProduction, site.ProductionAlias
	default:
		params.Alias = site.BranchAlias(proj.Name, p.Branch)
	}
	d, err := s.enqueue(ctx, EnqueueParams{DeploymentCreateParams: params})
	if err != nil {
		return nil, err
	}
	s.cfg.Logger.InfoContext(ctx, "deployment started by a user", "project", proj.Name, "deployment", d.ID, "user", userID, "branch", p.Branch, "sha", sha)
	return s.deploymentView(proj, d), nil
}

// buildable refuses to build a project that GitHub no longer lets Ferry reach (the App uninstalled or the
// repository removed from it); promoting and rolling back its deployments still work.
func buildable(p *store.Project) error {
	if p.GitHubBlocked != "" {
		return ferry.Errorf(ferry.ECONFLICT, "%s", p.GitHubBlocked)
	}
	return nil
}

func (s *Service) enqueue(ctx context.Context, p EnqueueParams) (*store.Deployment, error) {
	var d *store.Deployment
	err := s.cfg.Store.InTx(ctx, func(st *store.Store, tx pgx.Tx) error {
		var err error
		d, _, err = Enqueue(ctx, st, tx, s.cfg.River, p)
		return err
	})
	return d, err
}

// Redeploy builds a deployment's commit again as a new deployment of the same branch or pull request (a fork's
// stays a fork build, without env vars). It supersedes the line's unfinished builds like a new commit would.
func (s *Service) Redeploy(ctx context.Context, userID int64, id string) (*Deployment, error) {
	p, old, err := s.deployment(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	if _, err := s.writableProject(ctx, userID, p.Name); err != nil {
		return nil, err
	}
	if err := s.checkBuildable(ctx, p); err != nil {
		return nil, err
	}
	f, err := s.cfg.Store.DeploymentForkGet(ctx, old.ID)
	if err != nil {
		return nil, err
	}
	d, err := s.enqueue(ctx, EnqueueParams{Fork: f.Fork, DeploymentCreateParams: store.DeploymentCreateParams{
		ProjectID: p.ID, CommitSHA: old.CommitSHA, Ref: old.Ref, PRNumber: old.PRNumber, Kind: old.Kind, Alias: old.Alias}})
	if err != nil {
		return nil, err
	}
	s.cfg.Logger.InfoContext(ctx, "deployment redeployed", "project", p.Name, "deployment", d.ID, "from", old.ID, "user", userID)
	return s.deploymentView(p, d), nil
}

// Cancel stops a queued or building deployment; its build notices within the worker's poll interval. A
// finished deployment is ECONFLICT.
func (s *Service) Cancel(ctx context.Context, userID int64, id string) (*Deployment, error) {
	p, d, err := s.deployment(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	if d.Status.Finished() {
		return nil, ferry.Errorf(ferry.ECONFLICT, "deployment %s is %s; only queued or building deployments can be canceled", d.ID, d.Status)
	}
	d, err = s.cfg.Store.DeploymentCancel(ctx, store.DeploymentCancelParams{ID: d.ID, Reason: "canceled by a user"})
	if err != nil {
		return nil, err
	}
	s.logLine(ctx, d.ID, "canceled by a user")
	s.cfg.Logger.InfoContext(ctx, "deployment canceled", "project", p.Name, "deployment", d.ID, "user", userID)
	return s.deploymentView(p, d), nil
}

// productionID is the deployment the production alias points at, "" when none.
func (s *Service) productionID(ctx context.Context, p *store.Project) (string, error) {
	a, err := s.cfg.Site.AliasGet(ctx, p.Name, site.ProductionAlias)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return a.Deployment, nil
}

// Promote points the production alias at a ready deployment (a preview, or an earlier production build): one
// storage write, live at once, nothing rebuilt. The env vars it was built with stay those of its environment.
func (s *Service) Promote(ctx context.Context, userID int64, id string) (*Deployment, error) {
	return s.moveProduction(ctx, userID, id, false)
}

// Rollback points the production alias back at a ready deployment older than the one in production now.
func (s *Service) Rollback(ctx context.Context, userID int64, id string) (*Deployment, error) {
	return s.moveProduction(ctx, userID, id, true)
}

func (s *Service) moveProduction(ctx context.Context, userID int64, id string, rollback bool) (*Deployment, error) {
	verb := "promoted"
	if rollback {
		verb = "rolled back"
	}
	p, d, err := s.deployment(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	if _, err := s.writableProject(ctx, userID, p.Name); err != nil {
		return nil, err
	}
	if d.Status != store.StatusReady {
		return nil, ferry.Errorf(ferry.ECONFLICT, "deployment %s is %s; only a ready deployment can go to production", d.ID, d.Status)
	}
	cur, err := s.productionID(ctx, p)
	if err != nil {
		return nil, err
	}
	switch {
	case cur == d.ID:
		return nil, ferry.Errorf(ferry.ECONFLICT, "deployment %s is already in production", d.ID)
	case rollback && cur == "":
		return nil, ferry.Errorf(ferry.ECONFLICT, "project %s has nothing in production to roll back from; promote a deployment instead", p.Name)
	case rollback:
		curDep, err := s.cfg.Store.DeploymentGetByID(ctx, cur)
		if err == nil && !d.CreatedAt.Before(curDep.CreatedAt) {
			return nil, ferry.Errorf(ferry.ECONFLICT, "deployment %s is newer than the one in production (%s); a rollback goes to an earlier one, so promote it instead", d.ID, cur)
		}
	}
	if err := s.cfg.Site.AliasSet(ctx, p.Name, site.ProductionAlias, d.ID); err != nil {
		return nil, err
	}
	// Each deployment's log says what happened to it, in its own terms: "rolled back to production (was X)"
	// on the target read as if this deployment had been rolled back out (issue 18).
	switch {
	case rollback:
		s.logLine(ctx, d.ID, fmt.Sprintf("production rolled back to this deployment (it was serving %s)", cur))
		s.logLine(ctx, cur, fmt.Sprintf("no longer in production: production was rolled back to the earlier %s", d.ID))
	case cur != "":
		s.logLine(ctx, d.ID, fmt.Sprintf("promoted to production (it was serving %s)", cur))
		s.logLine(ctx, cur, fmt.Sprintf("no longer in production: %s was promoted in its place", d.ID))
	default:
		s.logLine(ctx, d.ID, "promoted to production")
	}
	s.cfg.Logger.InfoContext(ctx, "production alias moved", "action", verb, "project", p.Name, "deployment", d.ID, "from", cur, "user", userID)
	v := s.deploymentView(p, d)
	v.Production = true
	return v, nil
}

// logLine records a user's action in the deployment's log; failing costs only the line.
func (s *Service) logLine(ctx context.Context, id, line string) {
	_, err := s.cfg.Store.DeploymentLogAppend(ctx, store.DeploymentLogAppendParams{DeploymentID: id,
		Lines: []store.LogLine{{Time: time.Now(), Step: "ferry", Line: line}}})
	if err != nil {
		s.cfg.Logger.WarnContext(ctx, "append to the build log", "deployment", id, "err", err)
	}
}
