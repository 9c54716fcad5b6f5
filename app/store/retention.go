package store

import (
	"context"
	"time"
)

// This file holds what the retention job (app/jobs/gc.go) needs: the projects to collect, and the database's
// side of what the storage collector removed.

// ProjectListForRetention returns every project not being deleted, by id: the periodic collection walks them.
func (s *Store) ProjectListForRetention(ctx context.Context) ([]*Project, error) {
	ps, err := collectProjects(s.db.Query(ctx, `SELECT `+projectColumns+` FROM projects WHERE deleting_at IS NULL ORDER BY id`))
	if err != nil {
		return nil, dbError("list projects", err)
	}
	return ps, nil
}

// DeploymentMarkCollected marks inactive the ready deployments of a project whose manifests the collector
// deleted, so the dashboard and the API stop offering them for promote and rollback. It returns how many rows
// changed.
func (s *Store) DeploymentMarkCollected(ctx context.Context, projectID int64, ids []string) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := s.db.Exec(ctx, `
		UPDATE deployments SET status = 'inactive', error = 'removed by the retention policy', updated_at = now()
		WHERE project_id = $1 AND id = ANY($2) AND status = 'ready'`, projectID, ids)
	if err != nil {
		return 0, dbError("mark collected deployments", err)
	}
	return tag.RowsAffected(), nil
}

// DeploymentLogPrune deletes a project's build log lines older than before, and returns how many went.
func (s *Store) DeploymentLogPrune(ctx context.Context, projectID int64, before time.Time) (int64, error) {
	tag, err := s.db.Exec(ctx, `
		DELETE FROM deployment_logs l USING deployments d
		WHERE l.deployment_id = d.id AND d.project_id = $1 AND l.time < $2`, projectID, before)
	if err != nil {
		return 0, dbError("prune build logs", err)
	}
	return tag.RowsAffected(), nil
}

// DeploymentRefByAlias returns the branch of the newest deployment that moved alias (a retired git-<slug>
// preview), so that its GitHub environment can be named; "" when none did.
func (s *Store) DeploymentRefByAlias(ctx context.Context, projectID int64, alias string) (string, error) {
	var ref string
	err := s.db.QueryRow(ctx, `
		SELECT coalesce((SELECT ref FROM deployments WHERE project_id = $1 AND alias = $2 AND pr_number IS NULL
		ORDER BY created_at DESC LIMIT 1), '')`, projectID, alias).Scan(&ref)
	if err != nil {
		return "", dbError("find the branch of an alias", err)
	}
	return ref, nil
}

// PRListRetired returns the pull requests of a project whose previews were all retired (every deployment
// finished, at least one inactive: the PR closed, or its alias was retired as stale) before `before`, and that
// still have GitHub deployments recorded: their GitHub deployments and environment are due for deletion.
func (s *Store) PRListRetired(ctx context.Context, projectID int64, before time.Time) ([]int, error) {
	rows, err := s.db.Query(ctx, `
		SELECT pr_number FROM deployments
		WHERE project_id = $1 AND pr_number IS NOT NULL
		GROUP BY pr_number
		HAVING bool_and(status IN ('inactive', 'canceled', 'failed', 'error'))
		   AND bool_or(status = 'inactive')
		   AND max(updated_at) < $2
		   AND count(github_deployment_id) > 0
		ORDER BY pr_number`, projectID, before)
	if err != nil {
		return nil, dbError("list retired pull requests", err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			return nil, dbError("list retired pull requests", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("list retired pull requests", err)
	}
	return out, nil
}

// DeploymentForgetGitHubByPR forgets the GitHub deployment ids of a pull request's deployments once they are
// deleted on GitHub, so PRListRetired stops returning it. The rows stay (the dashboard's history).
func (s *Store) DeploymentForgetGitHubByPR(ctx context.Context, projectID int64, pr int) error {
	_, err := s.db.Exec(ctx, `UPDATE deployments SET github_deployment_id = NULL
		WHERE project_id = $1 AND pr_number = $2 AND github_deployment_id IS NOT NULL`, projectID, pr)
	if err != nil {
		return dbError("forget GitHub deployments", err)
	}
	return nil
}

// DeploymentRetireByAlias marks inactive the ready deployments that moved alias (a preview alias the policy
// retired), the way a closed pull request's are.
func (s *Store) DeploymentRetireByAlias(ctx context.Context, projectID int64, alias string) (int64, error) {
	tag, err := s.db.Exec(ctx, `
		UPDATE deployments SET status = 'inactive', updated_at = now()
		WHERE project_id = $1 AND alias = $2 AND status = 'ready'`, projectID, alias)
	if err != nil {
		return 0, dbError("retire deployments", err)
	}
	return tag.RowsAffected(), nil
}
