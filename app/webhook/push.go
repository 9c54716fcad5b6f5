package webhook

import (
	"context"
	"log/slog"
	"strings"

	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
)

// PushHandler deploys pushed branches: the project's production branch (production_branch, set from the
// repository's default branch when the project is created) to production, any other branch to a preview at its
// git-<slug> alias. Tag pushes and branch deletions build nothing.
type PushHandler struct{}

var _ EventHandler = PushHandler{}

// Handles names the event.
func (PushHandler) Handles() []string { return []string{"push"} }

// Handle stores a queued deployment for the pushed commit and enqueues its build.
func (PushHandler) Handle(ctx context.Context, d *Delivery) (string, error) {
	ev, ok := d.Payload.(*github.PushEvent)
	if !ok {
		return "", payloadError("push event of an unexpected type")
	}
	ref, after := ev.GetRef(), ev.GetAfter()
	log := d.Log.With("ref", ref, "repository", ev.GetRepo().GetFullName())
	branch, isBranch := strings.CutPrefix(ref, "refs/heads/")
	switch {
	case strings.HasPrefix(ref, "refs/tags/"):
		log.InfoContext(ctx, "tag push ignored")
		return OutcomeIgnored, nil
	case !isBranch || branch == "":
		log.InfoContext(ctx, "push to a ref that is not a branch ignored")
		return OutcomeIgnored, nil
	case ev.GetDeleted() || strings.Trim(after, "0") == "":
		return branchDeleted(ctx, d, ev, branch, log)
	}
	r := ev.GetRepo()
	if r.GetID() == 0 {
		return "", payloadError("push event without repository.id")
	}
	p, err := projectForEvent(ctx, d, repo{ID: r.GetID(), Name: r.GetName(), FullName: r.GetFullName(),
		CloneURL: r.GetCloneURL(), DefaultBranch: r.GetDefaultBranch()}, ev.GetInstallation().GetID())
	if err != nil || p == nil {
		return OutcomeIgnored, err
	}
	// A monorepo's project (settings.overrides.rootDirectory) builds only when the push changed its folder,
	// unless it asks to always build. A payload that cannot tell hands the question to the build (compare API).
	var compareBase string
	if settings, err := store.ParseProjectSettings(p.Settings); err == nil && !settings.AlwaysBuild && settings.Overrides.RootDirectory != nil {
		touched, known := pushTouches(ev, *settings.Overrides.RootDirectory)
		if !touched {
			log.InfoContext(ctx, "push changed nothing under the project's root directory; nothing built (set alwaysBuild to build every push)",
				"project", p.Name, "root_directory", *settings.Overrides.RootDirectory)
			return OutcomeIgnored, nil
		}
		if before := ev.GetBefore(); !known && strings.Trim(before, "0") != "" {
			compareBase = before
		}
	}
	// The project's production branch decides, not the repository's default branch in the payload: a team
	// that ships from "release" while developing on "main" sets production_branch and main builds previews.
	params := store.DeploymentCreateParams{ProjectID: p.ID, CommitSHA: after, Ref: branch,
		Kind: store.KindPreview, Alias: site.BranchAlias(p.Name, branch)}
	if branch == p.ProductionBranch {
		params.Kind, params.Alias = store.KindProduction, site.ProductionAlias
	}
	// X-GitHub-Delivery is not signed, so a replayed body under a new id gets past the delivery check: judge the
	// signed content instead. A commit the alias has (or had before newer ones) builds nothing.
	seen, err := d.Store.DeploymentCommitSeen(ctx, store.DeploymentCommitSeenParams{ProjectID: p.ID, Alias: params.Alias, CommitSHA: after})
	if err != nil {
		return "", err
	}
	switch seen {
	case store.CommitLatest:
		log.InfoContext(ctx, "push of the commit already deployed; nothing built", "project", p.Name, "alias", params.Alias, "sha", after)
		return OutcomeAlreadyDeployed, nil
	case store.CommitOlder:
		log.WarnContext(ctx, "push of a commit older than the alias's; nothing built (a replayed delivery, or a reset: promote the old deployment to go back)",
			"project", p.Name, "alias", params.Alias, "sha", after)
		return OutcomeStale, nil
	}
	// FollowRef: when the build ends, the alias moves only if the branch still points at this commit on GitHub,
	// so a replay of a push Ferry never saw cannot roll the branch's site back either.
	dep, err := deploymentEnqueue(ctx, d, newDeployment{DeploymentCreateParams: params, FollowRef: true, CompareBase: compareBase})
	if err != nil {
		return "", err
	}
	log.InfoContext(ctx, "deployment queued", "project", p.Name, "deployment", dep.ID, "kind", dep.Kind, "alias", dep.Alias, "sha", after)
	return OutcomeAccepted, nil
}

// branchDeleted retires a deleted branch's preview (the same job as a closed pull request's). A repository with
// no project, and the production branch, need nothing.
func branchDeleted(ctx context.Context, d *Delivery, ev *github.PushEvent, branch string, log *slog.Logger) (string, error) {
	p, err := d.Store.ProjectGetByRepoID(ctx, ev.GetRepo().GetID())
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		log.InfoContext(ctx, "branch deleted in a repository with no project, ignored")
		return OutcomeIgnored, nil
	}
	if err != nil {
		return "", err
	}
	if branch == p.ProductionBranch {
		log.WarnContext(ctx, "the production branch was deleted; production keeps serving its current deployment", "project", p.Name)
		return OutcomeIgnored, nil
	}
	if err := jobs.InsertBranchDeleted(ctx, d.River, d.Tx, p.ID, branch); err != nil {
		return "", ferry.Wrap(ferry.EUNAVAILABLE, err)
	}
	log.InfoContext(ctx, "branch deleted, its preview retiring", "project", p.Name)
	return OutcomeAccepted, nil
}
