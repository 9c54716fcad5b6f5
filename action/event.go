package action

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/sethvargo/go-githubactions"

	"github.com/ferryhq/ferry/internal/ferry"
)

// event is what the Action needs from the workflow run and its webhook payload: which commit to deploy, whether
// it is a pull request, and whether the ref is the repository's default branch.
type event struct {
	Name     string // GITHUB_EVENT_NAME: push, pull_request, workflow_dispatch, ...
	Owner    string
	Repo     string
	SHA      string // the commit to report on: the PR's head for pull requests, GITHUB_SHA otherwise
	Ref      string // refs/heads/main, refs/pull/2/merge, ...
	Branch   string // the branch being deployed (the PR's head branch for pull requests)
	PR       int    // pull request number, 0 if none
	PRAction string // opened, synchronize, reopened, closed, ...
	// DefaultBranch is the repository's default branch per the event payload; production "auto" compares the
	// ref with it and nothing else.
	DefaultBranch string
	RunURL        string // the workflow run, used as the deployment's log_url
	// Deleted is a push that deleted its branch or tag: there is nothing to deploy.
	Deleted bool
	// Fork is a pull request whose head lives in another repository than its base (or in one that is gone):
	// outside code, which gets no dependency cache (build.CacheScopeFork).
	Fork bool
}

// prRepo is a pull request's head or base repository in a payload.
type prRepo struct {
	Repo *struct {
		FullName string `json:"full_name"`
	} `json:"repo"`
}

// payload is the part of a webhook payload the Action reads.
type payload struct {
	Action      string `json:"action"`
	Number      int    `json:"number"`
	Ref         string `json:"ref"`
	After       string `json:"after"`
	Deleted     bool   `json:"deleted"`
	PullRequest *struct {
		Number int `json:"number"`
		Head   struct {
			SHA string `json:"sha"`
			Ref string `json:"ref"`
			prRepo
		} `json:"head"`
		Base prRepo `json:"base"`
	} `json:"pull_request"`
	Repository struct {
		Name          string `json:"name"`
		DefaultBranch string `json:"default_branch"`
	} `json:"repository"`
}

// readEvent combines the runner's GITHUB_* variables with the payload at GITHUB_EVENT_PATH.
func readEvent(gctx *githubactions.GitHubContext) (*event, error) {
	var p payload
	if gctx.Event != nil {
		// Context already decoded the file into a map; round-trip it into typed fields.
		b, err := json.Marshal(gctx.Event)
		if err != nil {
			return nil, fmt.Errorf("encode event payload: %w", err)
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "event payload at GITHUB_EVENT_PATH: %w", err)
		}
	}
	owner, repo := gctx.Repo()
	if owner == "" || repo == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "GITHUB_REPOSITORY is not set: run ferry action inside a GitHub Actions job")
	}
	ev := &event{
		Name:          gctx.EventName,
		Owner:         owner,
		Repo:          repo,
		SHA:           gctx.SHA,
		Ref:           gctx.Ref,
		DefaultBranch: p.Repository.DefaultBranch,
		PRAction:      p.Action,
		Deleted:       p.Deleted,
	}
	if ev.Ref == "" {
		ev.Ref = p.Ref
	}
	ev.Branch = strings.TrimPrefix(ev.Ref, "refs/heads/")
	if !strings.HasPrefix(ev.Ref, "refs/heads/") {
		ev.Branch = ""
	}
	if strings.HasPrefix(ev.Name, "pull_request") && p.PullRequest != nil {
		ev.PR = p.PullRequest.Number
		ev.SHA = p.PullRequest.Head.SHA
		ev.Branch = p.PullRequest.Head.Ref
		head, base := p.PullRequest.Head.Repo, p.PullRequest.Base.Repo
		// The full names, not head.repo.fork: a repository that is itself a fork has fork=true on its own PRs.
		ev.Fork = head == nil || base == nil || !strings.EqualFold(head.FullName, base.FullName)
	}
	if ev.SHA == "" {
		ev.SHA = p.After
	}
	if ev.SHA == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "no commit to deploy: GITHUB_SHA is not set")
	}
	if gctx.ServerURL != "" && gctx.RunID != 0 {
		ev.RunURL = fmt.Sprintf("%s/%s/%s/actions/runs/%d", strings.TrimSuffix(gctx.ServerURL, "/"), owner, repo, gctx.RunID)
	}
	return ev, nil
}

// onProductionBranch reports whether the event's ref is the production branch: the production-branch input
// when set, else the default branch named in the payload. Pull requests never are: their ref is
// refs/pull/<n>/merge.
func (ev *event) onProductionBranch(productionBranch string) bool {
	if productionBranch == "" {
		productionBranch = ev.DefaultBranch
	}
	return ev.PR == 0 && productionBranch != "" && ev.Ref == "refs/heads/"+productionBranch
}

// closedPR reports whether this run should clean up a pull request's preview instead of deploying.
func (ev *event) closedPR() bool { return ev.PR != 0 && ev.PRAction == "closed" }
