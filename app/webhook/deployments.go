package webhook

import (
	"context"

	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
)

// projectForEvent finds the project a push or pull request belongs to. A repository Ferry does not know yet
// gets a project when its installation is known and not suspended (the App may have been installed before
// Ferry's database existed, or its installation_repositories event lost); otherwise, and while the
// installation is suspended, it returns nil: the event builds nothing.
func projectForEvent(ctx context.Context, d *Delivery, r repo, installationID int64) (*store.Project, error) {
	p, err := d.Store.ProjectGetByRepoID(ctx, r.ID)
	switch {
	case err == nil:
		installationID = p.InstallationID
	case ferry.ErrorCode(err) != ferry.ENOTFOUND:
		return nil, err
	case installationID == 0:
		d.Log.InfoContext(ctx, "event for a repository with no project and no installation, ignored", "repository", r.FullName)
		return nil, nil
	}
	if installationID != 0 {
		inst, err := d.Store.InstallationGetByID(ctx, installationID)
		switch {
		case ferry.ErrorCode(err) == ferry.ENOTFOUND && p == nil:
			d.Log.InfoContext(ctx, "event for a repository of an unknown installation, ignored", "repository", r.FullName, "installation", installationID)
			return nil, nil
		case ferry.ErrorCode(err) == ferry.ENOTFOUND:
		case err != nil:
			return nil, err
		case inst.Suspended():
			d.Log.InfoContext(ctx, "installation suspended, nothing built", "repository", r.FullName, "installation", installationID)
			return nil, nil
		}
	}
	if p == nil {
		p, _, err = projectEnsure(ctx, d, r, installationID)
		if err != nil {
			return nil, err
		}
		d.Log.InfoContext(ctx, "project created for a repository seen first in an event", "project", p.Name, "repository", r.FullName)
	}
	if p.GitHubBlocked != "" {
		d.Log.InfoContext(ctx, "project blocked, nothing built", "project", p.Name, "why", p.GitHubBlocked)
		return nil, nil
	}
	// Every push and pull request names the repository as it is now: a rename or a transfer that Ferry missed
	// (or that has no event of its own) is picked up here.
	if r.FullName != "" && r.CloneURL != "" && (r.FullName != p.Repository || r.CloneURL != p.CloneURL) {
		from := p.Repository
		if p, err = d.Store.ProjectSetRepository(ctx, store.ProjectSetRepositoryParams{ID: p.ID, Repository: r.FullName, CloneURL: r.CloneURL}); err != nil {
			return nil, err
		}
		d.Log.InfoContext(ctx, "project follows its repository", "project", p.Name, "from", from, "to", p.Repository)
	}
	return p, nil
}

// newDeployment describes a deployment that deploymentEnqueue stores.
type newDeployment = projects.EnqueueParams

// deploymentEnqueue stores a queued deployment, cancels the older unfinished ones of the same pull request or
// branch, and enqueues its build, all in the intake transaction: projects.Enqueue, the one way a deployment
// starts, shared with "deploy now" and redeploy.
func deploymentEnqueue(ctx context.Context, d *Delivery, nd newDeployment) (*store.Deployment, error) {
	dep, superseded, err := projects.Enqueue(ctx, d.Store, d.Tx, d.River, nd)
	if err != nil {
		return nil, err
	}
	for _, old := range superseded {
		d.Log.InfoContext(ctx, "deployment superseded", "deployment", old.ID, "by", dep.ID, "was", old.Status)
	}
	return dep, nil
}
