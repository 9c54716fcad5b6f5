package webhook

import (
	"context"

	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
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
	return p, nil
}

// newDeployment describes a deployment that deploymentEnqueue stores.
type newDeployment struct {
	store.DeploymentCreateParams // ID is filled in
	// Fork marks a pull request from another repository: built without the project's secrets.
	Fork bool
	// AwaitingApproval stores the deployment with no job, until a maintainer approves it.
	AwaitingApproval bool
}

// deploymentEnqueue stores a queued deployment, cancels the older unfinished ones of the same pull request or
// branch, and enqueues its build, all in the intake transaction. A fork build is marked twice, on the
// deployment row and in its job's args, so that the worker withholds the project's secrets whichever it reads.
func deploymentEnqueue(ctx context.Context, d *Delivery, nd newDeployment) (*store.Deployment, error) {
	nd.ID = site.NewDeploymentID()
	dep, err := d.Store.DeploymentCreate(ctx, nd.DeploymentCreateParams)
	if err != nil {
		return nil, err
	}
	if nd.Fork {
		if err := d.Store.DeploymentSetFork(ctx, store.DeploymentSetForkParams{ID: dep.ID, AwaitingApproval: nd.AwaitingApproval}); err != nil {
			return nil, err
		}
	}
	superseded, err := d.Store.DeploymentSupersede(ctx, store.DeploymentSupersedeParams{
		NewID: dep.ID, ProjectID: dep.ProjectID, PRNumber: dep.PRNumber, Ref: dep.Ref,
	})
	if err != nil {
		return nil, err
	}
	for _, old := range superseded {
		d.Log.InfoContext(ctx, "deployment superseded", "deployment", old.ID, "by", dep.ID, "was", old.Status)
	}
	if nd.AwaitingApproval {
		return dep, nil
	}
	if err := jobs.InsertDeployArgs(ctx, d.River, d.Tx, jobs.DeployArgs{DeploymentID: dep.ID, Fork: nd.Fork}); err != nil {
		return nil, ferry.Wrap(ferry.EUNAVAILABLE, err)
	}
	return dep, nil
}
