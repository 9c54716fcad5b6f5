package webhook

import (
	"context"
	"strings"

	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
)

// ApproveLabel is the label a maintainer puts on a pull request from a fork to let it build, when the project's
// settings say {"requireForkApproval": true}. Approval covers the pull request while the label stays on it:
// later pushes build too, still without the project's secrets. Removing the label stops new fork builds.
const ApproveLabel = "ferry:approve"

// PullRequestHandler deploys pull requests to previews at their pr-<n> alias and retires them when they close.
// Pull requests from forks build without the project's secrets, wait for ApproveLabel when the project asks
// for approval, and do not build at all when the project's settings say {"buildForks": false}.
type PullRequestHandler struct{}

var _ EventHandler = PullRequestHandler{}

// Handles names the event.
func (PullRequestHandler) Handles() []string { return []string{"pull_request"} }

// Handle acts on opened, synchronize, reopened, closed and labeled; other actions are ignored.
func (PullRequestHandler) Handle(ctx context.Context, d *Delivery) (string, error) {
	ev, ok := d.Payload.(*github.PullRequestEvent)
	if !ok {
		return "", payloadError("pull_request event of an unexpected type")
	}
	pr := ev.GetPullRequest()
	n := ev.GetNumber()
	if n == 0 {
		n = pr.GetNumber()
	}
	action := ev.GetAction()
	log := d.Log.With("pr", n, "repository", ev.GetRepo().GetFullName())
	switch action {
	case "opened", "synchronize", "reopened", "closed":
	case "labeled":
		if ev.GetLabel().GetName() != ApproveLabel || pr.GetState() == "closed" {
			return OutcomeIgnored, nil
		}
	default:
		log.DebugContext(ctx, "pull_request action ignored")
		return OutcomeIgnored, nil
	}
	r := ev.GetRepo()
	if r.GetID() == 0 || n == 0 {
		return "", payloadError("pull_request event without repository.id or number")
	}
	if action == "closed" {
		// A closed pull request of a repository Ferry does not know has no previews: no project is created.
		p, err := d.Store.ProjectGetByRepoID(ctx, r.GetID())
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			log.InfoContext(ctx, "pull request closed in a repository with no project, ignored")
			return OutcomeIgnored, nil
		}
		if err != nil {
			return "", err
		}
		if err := jobs.InsertPRClose(ctx, d.River, d.Tx, p.ID, n); err != nil {
			return "", ferry.Wrap(ferry.EUNAVAILABLE, err)
		}
		log.InfoContext(ctx, "pull request closed, previews retiring", "project", p.Name)
		return OutcomeAccepted, nil
	}
	p, err := projectForEvent(ctx, d, repo{ID: r.GetID(), Name: r.GetName(), FullName: r.GetFullName(),
		CloneURL: r.GetCloneURL(), DefaultBranch: r.GetDefaultBranch()}, ev.GetInstallation().GetID())
	if err != nil || p == nil {
		return OutcomeIgnored, err
	}
	log = log.With("project", p.Name)

	fork := isFork(pr)
	settings, err := store.ParseProjectSettings(p.Settings)
	if err != nil {
		log.WarnContext(ctx, "project settings are unreadable; fork approval assumed required", "err", err)
		settings.RequireForkApproval = true
	}
	if fork && !settings.BuildForks {
		log.InfoContext(ctx, "pull request from a fork not built: the project's settings turn fork builds off (buildForks: false)", "action", action)
		return OutcomeIgnored, nil
	}
	needsApproval := fork && settings.RequireForkApproval && !hasLabel(pr, ApproveLabel)

	if action == "labeled" {
		if !fork || !settings.RequireForkApproval {
			log.InfoContext(ctx, "approval label on a pull request that needs none, ignored")
			return OutcomeIgnored, nil
		}
		ids, err := d.Store.DeploymentApprove(ctx, store.DeploymentApproveParams{ProjectID: p.ID, PRNumber: n,
			CommitSHA: pr.GetHead().GetSHA()})
		if err != nil {
			return "", err
		}
		if len(ids) == 0 {
			log.InfoContext(ctx, "pull request approved; no deployment was waiting")
			return OutcomeIgnored, nil
		}
		for _, id := range ids {
			if err := jobs.InsertDeployArgs(ctx, d.River, d.Tx, jobs.DeployArgs{DeploymentID: id, Fork: true, FollowRef: true}); err != nil {
				return "", ferry.Wrap(ferry.EUNAVAILABLE, err)
			}
			log.InfoContext(ctx, "fork deployment approved, build queued", "deployment", id, "approved_by", ev.GetSender().GetLogin())
		}
		return OutcomeAccepted, nil
	}

	sha := pr.GetHead().GetSHA()
	if sha == "" {
		return "", payloadError("pull_request event without pull_request.head.sha")
	}
	// As for pushes: a body replayed under a new delivery id must not take the preview back. A commit older than
	// the preview's is stale for every action; the preview's own commit builds nothing on synchronize, while
	// opened and reopened build it again (a reopened pull request gets its preview back).
	seen, err := d.Store.DeploymentCommitSeen(ctx, store.DeploymentCommitSeenParams{ProjectID: p.ID,
		Alias: site.PRAlias(n), CommitSHA: sha, PRNumber: n})
	if err != nil {
		return "", err
	}
	switch {
	case seen == store.CommitLatest && action == "synchronize":
		log.InfoContext(ctx, "synchronize of the commit already deployed; nothing built", "sha", sha)
		return OutcomeAlreadyDeployed, nil
	case seen == store.CommitOlder:
		log.WarnContext(ctx, "pull request event of a commit older than the preview's; nothing built", "action", action, "sha", sha)
		return OutcomeStale, nil
	}
	dep, err := deploymentEnqueue(ctx, d, newDeployment{
		DeploymentCreateParams: store.DeploymentCreateParams{ProjectID: p.ID, CommitSHA: sha,
			Ref: pr.GetHead().GetRef(), PRNumber: n, Kind: store.KindPreview, Alias: site.PRAlias(n)},
		Fork: fork, AwaitingApproval: needsApproval,
		// FollowRef: the build moves pr-<n> only if the pull request's head is still this commit when it ends,
		// and supersedes the pull request's other builds only once GitHub says this commit is its head.
		FollowRef: true,
	})
	if err != nil {
		return "", err
	}
	log = log.With("deployment", dep.ID, "alias", dep.Alias, "sha", sha, "fork", fork)
	if needsApproval {
		log.InfoContext(ctx, "fork deployment waits for the "+ApproveLabel+" label")
	} else {
		log.InfoContext(ctx, "deployment queued")
	}
	return OutcomeAccepted, nil
}

// isFork reports whether a pull request's head lives in another repository than its base. A head repository
// that is gone (a deleted fork) counts as a fork: its code is not the maintainers'.
func isFork(pr *github.PullRequest) bool {
	head, base := pr.GetHead().GetRepo(), pr.GetBase().GetRepo()
	if head == nil || base == nil {
		return true
	}
	return head.GetID() != base.GetID() || !strings.EqualFold(head.GetFullName(), base.GetFullName())
}

func hasLabel(pr *github.PullRequest, name string) bool {
	for _, l := range pr.Labels {
		if l.GetName() == name {
			return true
		}
	}
	return false
}
