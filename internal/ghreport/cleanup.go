package ghreport

import (
	"context"
	"net/url"

	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/internal/ferry"
)

// DeploymentsDelete removes a retired environment's deployments from GitHub (the page that lists them grows
// forever otherwise): each is marked inactive first, since GitHub refuses to delete an active deployment, then
// deleted. It returns how many it deleted; ones already gone are not an error.
func (r *Reporter) DeploymentsDelete(ctx context.Context, owner, repo, environment string) (int, error) {
	if _, err := r.DeploymentsDeactivate(ctx, owner, repo, environment); err != nil {
		return 0, err
	}
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
			return 0, err
		}
		for _, d := range page {
			ids = append(ids, d.GetID())
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
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
