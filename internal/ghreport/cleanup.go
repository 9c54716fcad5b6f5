package ghreport

import (
	"context"
	"net/url"

	"github.com/ferryhq/ferry/internal/ferry"
)

// DeploymentsDelete removes a retired environment's deployments from GitHub (the page that lists them grows
// forever otherwise): each is marked inactive first, since GitHub refuses to delete an active deployment, then
// deleted. It returns how many it deleted; ones already gone are not an error.
func (r *Reporter) DeploymentsDelete(ctx context.Context, owner, repo, environment string) (int, error) {
	if _, err := r.DeploymentsDeactivate(ctx, owner, repo, environment); err != nil {
		return 0, err
	}
	ids, err := r.deploymentIDs(ctx, owner, repo, environment)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		err := r.retry(ctx, "delete GitHub deployment", permDeployments, func(ctx context.Context) error {
			_, err := r.client.Repositories.DeleteDeployment(ctx, owner, repo, id)
			return err
		})
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			continue
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// EnvironmentDelete removes an environment such as preview/pr-42 from the repository's settings. GitHub asks
// for the Administration (write) permission; without it the error is EFORBIDDEN, and callers go on without.
// A missing environment is not an error.
func (r *Reporter) EnvironmentDelete(ctx context.Context, owner, repo, name string) error {
	if name == "" || name == "production" {
		return ferry.Errorf(ferry.EINVALID, "delete GitHub environment %q: only preview environments are deleted", name)
	}
	err := r.retry(ctx, "delete GitHub environment", permAdministration, func(ctx context.Context) error {
		// GitHub wants the name URL-encoded ("preview%2Fpr-42"); go-github passes it as it is.
		_, err := r.client.Repositories.DeleteEnvironment(ctx, owner, repo, url.PathEscape(name))
		return err
	})
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return nil
	}
	return err
}
