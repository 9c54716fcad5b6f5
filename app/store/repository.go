package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/internal/ferry"
)

// ProjectSetRepositoryParams is where a project's repository lives now, as GitHub says (a rename, a transfer,
// the API's answer for a project created from an installation event).
type ProjectSetRepositoryParams struct {
	ID         int64
	Repository string // "owner/name"
	CloneURL   string
	// ProductionBranch, when not nil, replaces the production branch (a project created without knowing the
	// repository's default branch).
	ProductionBranch *string
}

// ProjectSetRepository records p. An empty repository or clone URL is EINVALID.
func (s *Store) ProjectSetRepository(ctx context.Context, p ProjectSetRepositoryParams) (*Project, error) {
	if p.Repository == "" || p.CloneURL == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "update project %d: a repository and a clone URL are required", p.ID)
	}
	proj, err := scanProject(s.db.QueryRow(ctx, `
		UPDATE projects SET repository = $2, clone_url = $3, production_branch = coalesce($4, production_branch),
			updated_at = now()
		WHERE id = $1
		RETURNING `+projectColumns, p.ID, p.Repository, p.CloneURL, p.ProductionBranch))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("project %d not found", p.ID)
	}
	if err != nil {
		return nil, dbError("update project repository", err)
	}
	return proj, nil
}

// ProjectSetGitHubBlocked records why a project does not build ("" lifts it).
func (s *Store) ProjectSetGitHubBlocked(ctx context.Context, id int64, reason string) error {
	tag, err := s.db.Exec(ctx, `UPDATE projects SET github_blocked = $2, updated_at = now() WHERE id = $1`, id, reason)
	if err != nil {
		return dbError("block project", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("project %d not found", id)
	}
	return nil
}
