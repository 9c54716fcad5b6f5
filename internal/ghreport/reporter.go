package ghreport

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Deployment states GitHub accepts for a deployment status.
const (
	StateQueued     = "queued"
	StateInProgress = "in_progress"
	StateSuccess    = "success"
	StateFailure    = "failure"
	StateError      = "error"
	StateInactive   = "inactive"
	// StatePending exists for commit statuses only; CommitStatusCreate also takes the deployment states above.
	StatePending = "pending"
)

// MaxDescription is GitHub's limit for deployment and commit status descriptions, in characters.
const MaxDescription = 140

// Environment names the GitHub environment of a deployment: "production", "preview/pr-<n>" for a pull request,
// or "preview/<branch>" for another branch. The target is explicit: production is never guessed from a name.
func Environment(production bool, pr int, branch string) string {
	switch {
	case production:
		return "production"
	case pr > 0:
		return "preview/pr-" + strconv.Itoa(pr)
	}
	return "preview/" + branch
}

// Reporter reports one installation's (or one token's) deployments to GitHub. It retries what is worth
// retrying and returns Ferry errors. It is safe for concurrent use.
type Reporter struct {
	cfg    Config
	client *github.Client

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per PR: serializes read-modify-write of the sticky comment
}

func newReporter(cfg Config, c *github.Client) *Reporter {
	return &Reporter{cfg: cfg, client: c, locks: map[string]*sync.Mutex{}}
}

// Client exposes the underlying go-github client for calls the Reporter does not wrap.
func (r *Reporter) Client() *github.Client { return r.client }

// DeploymentCreateParams describes one build to GitHub.
type DeploymentCreateParams struct {
	Owner, Repo string
	// SHA is the head commit being deployed.
	SHA string
	// Environment is usually Environment(production, pr, branch).
	Environment string
	// Production marks the deployment production_environment; otherwise it is a transient preview.
	Production bool
	// Project and DeploymentID are Ferry's ids, sent in the payload so that GitHub's data points back to Ferry.
	Project      string
	DeploymentID string
	// Description defaults to "Ferry: <project>".
	Description string
}

// DeploymentCreate creates a GitHub deployment and returns its id. required_contexts is sent empty so that
// GitHub does not refuse the deployment while ferry/<project> itself is pending, and auto_merge false so that
// GitHub never merges the default branch into the PR.
func (r *Reporter) DeploymentCreate(ctx context.Context, p DeploymentCreateParams) (int64, error) {
	if p.Owner == "" || p.Repo == "" || p.SHA == "" || p.Environment == "" {
		return 0, ferry.Errorf(ferry.EINVALID, "create GitHub deployment: owner, repo, sha and environment are required")
	}
	desc := p.Description
	if desc == "" {
		desc = "Ferry: " + p.Project
	}
	req := &github.DeploymentRequest{
		Ref:                   github.String(p.SHA),
		Task:                  github.String("deploy"),
		AutoMerge:             github.Bool(false),
		RequiredContexts:      &[]string{},
		Environment:           github.String(p.Environment),
		Description:           github.String(truncate(desc, MaxDescription)),
		TransientEnvironment:  github.Bool(!p.Production),
		ProductionEnvironment: github.Bool(p.Production),
		Payload: map[string]string{
			"ferry_project":    p.Project,
			"ferry_deployment": p.DeploymentID,
		},
	}
	var id int64
	err := r.retry(ctx, "create GitHub deployment", permDeployments, func(ctx context.Context) error {
		d, _, err := r.client.Repositories.CreateDeployment(ctx, p.Owner, p.Repo, req)
		if err != nil {
			return err
		}
		id = d.GetID()
		return nil
	})
	return id, err
}

// DeploymentStatusCreateParams is one step of a deployment's life on GitHub.
type DeploymentStatusCreateParams struct {
	Owner, Repo string
	// DeploymentID is GitHub's id, from DeploymentCreate.
	DeploymentID int64
	// State is one of the State* constants except StatePending.
	State string
	// EnvironmentURL is the live (alias) URL; GitHub shows it as "View deployment".
	EnvironmentURL string
	// LogURL is the dashboard's log page.
	LogURL string
	// Description is cut to 140 characters.
	Description string
	// AutoInactive: nil lets GitHub mark older successful deployments of the environment inactive on success
	// (its default), which is what superseding wants.
	AutoInactive *bool
}

var deploymentStates = map[string]bool{StateQueued: true, StateInProgress: true, StateSuccess: true,
	StateFailure: true, StateError: true, StateInactive: true}

// DeploymentStatusCreate posts a deployment status.
func (r *Reporter) DeploymentStatusCreate(ctx context.Context, p DeploymentStatusCreateParams) error {
	if !deploymentStates[p.State] {
		return ferry.Errorf(ferry.EINVALID, "create GitHub deployment status: state %q is not one of queued, in_progress, success, failure, error, inactive", p.State)
	}
	req := &github.DeploymentStatusRequest{
		State:        github.String(p.State),
		AutoInactive: p.AutoInactive,
	}
	if p.EnvironmentURL != "" {
		req.EnvironmentURL = github.String(p.EnvironmentURL)
	}
	if p.LogURL != "" {
		req.LogURL = github.String(p.LogURL)
	}
	if p.Description != "" {
		req.Description = github.String(truncate(p.Description, MaxDescription))
	}
	return r.retry(ctx, "create GitHub deployment status", permDeployments, func(ctx context.Context) error {
		_, _, err := r.client.Repositories.CreateDeploymentStatus(ctx, p.Owner, p.Repo, p.DeploymentID, req)
		return err
	})
}

// DeploymentsDeactivate marks every deployment of environment inactive (a closed PR) and returns how many it
// marked. Deployments whose latest status is already inactive are skipped.
func (r *Reporter) DeploymentsDeactivate(ctx context.Context, owner, repo, environment string) (int, error) {
	if environment == "" {
		return 0, ferry.Errorf(ferry.EINVALID, "deactivate GitHub deployments: environment is required")
	}
	ids, err := r.deploymentIDs(ctx, owner, repo, environment)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		var latest []*github.DeploymentStatus
		err := r.retry(ctx, "list GitHub deployment statuses", permDeployments, func(ctx context.Context) error {
			var err error
			latest, _, err = r.client.Repositories.ListDeploymentStatuses(ctx, owner, repo, id, &github.ListOptions{PerPage: 1})
			return err
		})
		if err != nil {
			return n, err
		}
		if len(latest) > 0 && latest[0].GetState() == StateInactive {
			continue
		}
		err = r.DeploymentStatusCreate(ctx, DeploymentStatusCreateParams{Owner: owner, Repo: repo, DeploymentID: id,
			State: StateInactive, Description: "Preview removed"})
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// CommentUpsert writes row into the pull request's one Ferry comment: it finds the comment by CommentMarker among
// bot comments and edits it, keeping the other projects' rows, or creates it the first time.
//
// Upserts to one PR are serialized within this process. Two processes updating the same PR at the same
// moment can still lose a row; the next update of that project restores it.
func (r *Reporter) CommentUpsert(ctx context.Context, owner, repo string, pr int, row CommentRow) error {
	if pr <= 0 || row.Project == "" {
		return ferry.Errorf(ferry.EINVALID, "update the PR comment: a PR number and a project are required")
	}
	if row.UpdatedAt.IsZero() {
		row.UpdatedAt = time.Now()
	}
	row.UpdatedAt = row.UpdatedAt.UTC().Truncate(time.Second)
	unlock := r.lock(fmt.Sprintf("%s/%s#%d", owner, repo, pr))
	defer unlock()

	var found *github.IssueComment
	var rows []CommentRow
	opts := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for {
		var page []*github.IssueComment
		var resp *github.Response
		err := r.retry(ctx, "list PR comments", permPullRequests, func(ctx context.Context) error {
			var err error
			page, resp, err = r.client.Issues.ListComments(ctx, owner, repo, pr, opts)
			return err
		})
		if err != nil {
			return err
		}
		for _, c := range page {
			if !r.ours(c) {
				continue
			}
			if found == nil {
				found = c
			}
			// A duplicate (two processes raced to create it) still contributes its rows; newest wins.
			for _, old := range parseCommentRows(c.GetBody()) {
				if i := indexRow(rows, old.Project); i < 0 {
					rows = append(rows, old)
				} else if old.UpdatedAt.After(rows[i].UpdatedAt) {
					rows[i] = old
				}
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	body := renderComment(mergeRow(rows, row))
	if found == nil {
		return r.retry(ctx, "create PR comment", permPullRequests, func(ctx context.Context) error {
			_, _, err := r.client.Issues.CreateComment(ctx, owner, repo, pr, &github.IssueComment{Body: github.String(body)})
			return err
		})
	}
	if found.GetBody() == body {
		return nil
	}
	return r.retry(ctx, "edit PR comment", permPullRequests, func(ctx context.Context) error {
		_, _, err := r.client.Issues.EditComment(ctx, owner, repo, found.GetID(), &github.IssueComment{Body: github.String(body)})
		return err
	})
}

func indexRow(rows []CommentRow, project string) int {
	for i, r := range rows {
		if r.Project == project {
			return i
		}
	}
	return -1
}

// ours reports whether c is Ferry's sticky comment. Only bot comments count, so that a person quoting the marker
// does not capture the updates (GitHub would refuse the edit anyway).
func (r *Reporter) ours(c *github.IssueComment) bool {
	if !strings.HasPrefix(c.GetBody(), CommentMarker) {
		return false
	}
	if r.cfg.BotLogin != "" {
		return strings.EqualFold(c.GetUser().GetLogin(), r.cfg.BotLogin)
	}
	return c.GetUser().GetType() == "Bot"
}

func (r *Reporter) lock(key string) func() {
	r.mu.Lock()
	l, ok := r.locks[key]
	if !ok {
		l = &sync.Mutex{}
		r.locks[key] = l
	}
	r.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// CommitStatusCreateParams is the ferry/<project> status on a commit, which shows in the PR's checks.
type CommitStatusCreateParams struct {
	Owner, Repo, SHA string
	// Project names the context: "ferry/<project>".
	Project string
	// State is pending, success, failure or error; the deployment states map onto these (queued and
	// in_progress are pending; inactive is refused).
	State       string
	TargetURL   string
	Description string
}

// CommitStatusCreate sets the ferry/<project> commit status.
func (r *Reporter) CommitStatusCreate(ctx context.Context, p CommitStatusCreateParams) error {
	state := p.State
	switch state {
	case StateQueued, StateInProgress, StatePending:
		state = StatePending
	case StateSuccess, StateFailure, StateError:
	default:
		return ferry.Errorf(ferry.EINVALID, "create commit status: state %q is not one of pending, success, failure, error", p.State)
	}
	if p.Project == "" || p.SHA == "" {
		return ferry.Errorf(ferry.EINVALID, "create commit status: project and sha are required")
	}
	st := &github.RepoStatus{State: github.String(state), Context: github.String("ferry/" + p.Project)}
	if p.TargetURL != "" {
		st.TargetURL = github.String(p.TargetURL)
	}
	if p.Description != "" {
		st.Description = github.String(truncate(p.Description, MaxDescription))
	}
	return r.retry(ctx, "create commit status", permStatuses, func(ctx context.Context) error {
		_, _, err := r.client.Repositories.CreateStatus(ctx, p.Owner, p.Repo, p.SHA, st)
		return err
	})
}

// deploymentIDs lists the ids of every deployment of environment, following GitHub's pages.
func (r *Reporter) deploymentIDs(ctx context.Context, owner, repo, environment string) ([]int64, error) {
	var ids []int64
	opts := &github.DeploymentsListOptions{Environment: environment, ListOptions: github.ListOptions{PerPage: 100}}
	for {
		var page []*github.Deployment
		var resp *github.Response
		err := r.retry(ctx, "list GitHub deployments", permDeployments, func(ctx context.Context) error {
			var err error
			page, resp, err = r.client.Repositories.ListDeployments(ctx, owner, repo, opts)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, d := range page {
			ids = append(ids, d.GetID())
		}
		if resp.NextPage == 0 {
			return ids, nil
		}
		opts.Page = resp.NextPage
	}
}
