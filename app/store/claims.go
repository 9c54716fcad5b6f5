package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// UserReachesRepository reports whether user belongs to a GitHub App installation whose project is repository
// ("owner/name", compared without case): the proof of ownership for a name that storage holds with deployments
// of that repository (internal/site.Occupant).
func (s *Store) UserReachesRepository(ctx context.Context, userID int64, repository string) (bool, error) {
	var ok bool
	err := s.db.QueryRow(ctx, `SELECT EXISTS (
		SELECT 1 FROM projects p JOIN user_installations ui ON ui.installation_id = p.installation_id
		WHERE ui.user_id = $1 AND lower(p.repository) = lower($2) AND p.repository <> '')`, userID, repository).Scan(&ok)
	if err != nil {
		return false, dbError("check the user's repositories", err)
	}
	return ok, nil
}

// DeploymentIDsByProject returns the ids of every deployment Ferry recorded for a project, whatever its
// status: what a deletion may remove from storage without the owner's explicit purge.
func (s *Store) DeploymentIDsByProject(ctx context.Context, projectID int64) ([]string, error) {
	rows, err := s.db.Query(ctx, `SELECT id FROM deployments WHERE project_id = $1 ORDER BY id`, projectID)
	if err != nil {
		return nil, dbError("list the project's deployment ids", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, dbError("list the project's deployment ids", err)
	}
	return ids, nil
}
