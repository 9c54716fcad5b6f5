package store

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/internal/ferry"
)

const projectColumns = `id, name, repository, clone_url, coalesce(github_repo_id, 0), coalesce(installation_id, 0),
	coalesce(owner_id, 0), production_branch, settings, created_at, updated_at, github_blocked`

func scanProject(row pgx.Row) (*Project, error) {
	var p Project
	var settings []byte
	if err := row.Scan(&p.ID, &p.Name, &p.Repository, &p.CloneURL, &p.GitHubRepoID, &p.InstallationID, &p.OwnerID,
		&p.ProductionBranch, &settings, &p.CreatedAt, &p.UpdatedAt, &p.GitHubBlocked); err != nil {
		return nil, err
	}
	p.Settings = json.RawMessage(settings)
	return &p, nil
}

func collectProjects(rows pgx.Rows, err error) ([]*Project, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Project, error) { return scanProject(r) })
}

// ProjectCreateParams describes a new project. Name must be DNS-safe (internal/site.ValidateProjectName); the
// schema enforces the same rule.
type ProjectCreateParams struct {
	Name             string
	Repository       string // "owner/name"
	CloneURL         string
	GitHubRepoID     int64           // 0: not a GitHub App repository
	InstallationID   int64           // 0: none
	OwnerID          int64           // 0: none
	ProductionBranch string          // default "main"
	Settings         json.RawMessage // default {}
}

// ProjectCreate records a new project. A taken name or an already-known repository is ECONFLICT. A project of
// the GitHub App may start without a clone URL: its repo_sync job reads it from the API.
func (s *Store) ProjectCreate(ctx context.Context, p ProjectCreateParams) (*Project, error) {
	if p.CloneURL == "" && p.GitHubRepoID == 0 {
		return nil, ferry.Errorf(ferry.EINVALID, "create project %q: no clone URL given", p.Name)
	}
	if p.ProductionBranch == "" {
		p.ProductionBranch = "main"
	}
	if len(p.Settings) == 0 {
		p.Settings = json.RawMessage("{}")
	}
	if !json.Valid(p.Settings) {
		return nil, ferry.Errorf(ferry.EINVALID, "create project %q: settings are not valid JSON", p.Name)
	}
	proj, err := scanProject(s.db.QueryRow(ctx, `
		INSERT INTO projects (name, repository, clone_url, github_repo_id, installation_id, owner_id, production_branch, settings)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		RETURNING `+projectColumns,
		p.Name, p.Repository, p.CloneURL, nullInt64(p.GitHubRepoID), nullInt64(p.InstallationID), nullInt64(p.OwnerID),
		p.ProductionBranch, string(p.Settings)))
	if err != nil {
		return nil, dbError("create project "+p.Name, err)
	}
	return proj, nil
}

// ProjectGetByID returns the project with id id.
func (s *Store) ProjectGetByID(ctx context.Context, id int64) (*Project, error) {
	p, err := scanProject(s.db.QueryRow(ctx, `SELECT `+projectColumns+` FROM projects WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("project %d not found", id)
	}
	if err != nil {
		return nil, dbError("get project", err)
	}
	return p, nil
}

// ProjectGetByName returns the project named name, as host names and storage keys refer to it.
func (s *Store) ProjectGetByName(ctx context.Context, name string) (*Project, error) {
	p, err := scanProject(s.db.QueryRow(ctx, `SELECT `+projectColumns+` FROM projects WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("project %q not found", name)
	}
	if err != nil {
		return nil, dbError("get project", err)
	}
	return p, nil
}

// ProjectGetByRepoID returns the project of the GitHub repository with id repoID, as webhooks name it.
func (s *Store) ProjectGetByRepoID(ctx context.Context, repoID int64) (*Project, error) {
	p, err := scanProject(s.db.QueryRow(ctx, `SELECT `+projectColumns+` FROM projects WHERE github_repo_id = $1`, repoID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("no project for GitHub repository %d", repoID)
	}
	if err != nil {
		return nil, dbError("get project", err)
	}
	return p, nil
}

// ProjectListByInstallation returns an installation's projects by name, for an uninstall or a suspension.
func (s *Store) ProjectListByInstallation(ctx context.Context, installationID int64) ([]*Project, error) {
	ps, err := collectProjects(s.db.Query(ctx, `SELECT `+projectColumns+` FROM projects WHERE installation_id = $1 ORDER BY name`, installationID))
	if err != nil {
		return nil, dbError("list projects", err)
	}
	return ps, nil
}

// ProjectDeleteByRepoID deletes the project of a repository the App lost access to, with its deployments and
// logs, and returns it so that the caller can remove its storage prefix. No such project is ENOTFOUND.
func (s *Store) ProjectDeleteByRepoID(ctx context.Context, repoID int64) (*Project, error) {
	p, err := scanProject(s.db.QueryRow(ctx, `DELETE FROM projects WHERE github_repo_id = $1 RETURNING `+projectColumns, repoID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("no project for GitHub repository %d", repoID)
	}
	if err != nil {
		return nil, dbError("delete project", err)
	}
	return p, nil
}

// ProjectDeleteByID deletes a project with its deployments and logs, and returns it.
func (s *Store) ProjectDeleteByID(ctx context.Context, id int64) (*Project, error) {
	p, err := scanProject(s.db.QueryRow(ctx, `DELETE FROM projects WHERE id = $1 RETURNING `+projectColumns, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("project %d not found", id)
	}
	if err != nil {
		return nil, dbError("delete project", err)
	}
	return p, nil
}
