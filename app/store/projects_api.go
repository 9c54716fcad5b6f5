package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/internal/ferry"
)

// This file holds what the projects service (app/projects) needs beyond the core store: settings updates,
// deletion with progress (migration 005), and canceling a project's unfinished builds.

func init() {
	for k, v := range map[string]string{
		"project_env_key_check":         "an env var name must be at most 256 letters, digits and underscores, not starting with a digit",
		"project_env_environment_check": `the environment must be "production" or "preview"`,
		"project_env_project_id_fkey":   "the project does not exist",
	} {
		constraintMessages[k] = v
	}
}

// ProjectUpdateParams changes a project's editable fields; nil leaves a field as it is.
type ProjectUpdateParams struct {
	ID               int64
	Name             *string
	ProductionBranch *string
	Settings         json.RawMessage // nil: unchanged
}

// ProjectUpdate applies p. A taken name is ECONFLICT, an invalid one EINVALID.
func (s *Store) ProjectUpdate(ctx context.Context, p ProjectUpdateParams) (*Project, error) {
	var settings *string
	if p.Settings != nil {
		if !json.Valid(p.Settings) {
			return nil, ferry.Errorf(ferry.EINVALID, "update project: settings are not valid JSON")
		}
		str := string(p.Settings)
		settings = &str
	}
	proj, err := scanProject(s.db.QueryRow(ctx, `
		UPDATE projects SET
			name              = coalesce($2, name),
			production_branch = coalesce($3, production_branch),
			settings          = coalesce($4::jsonb, settings),
			updated_at        = now()
		WHERE id = $1
		RETURNING `+projectColumns, p.ID, p.Name, p.ProductionBranch, settings))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("project %d not found", p.ID)
	}
	if err != nil {
		return nil, dbError("update project", err)
	}
	return proj, nil
}

// ProjectDeletion is the progress of a project's deletion: storage objects removed of those found.
type ProjectDeletion struct {
	StartedAt time.Time
	Total     int
	Done      int
}

// ProjectDeletionGet returns the deletion under way for a project, or nil when none is.
func (s *Store) ProjectDeletionGet(ctx context.Context, id int64) (*ProjectDeletion, error) {
	var started *time.Time
	var d ProjectDeletion
	err := s.db.QueryRow(ctx, `SELECT deleting_at, delete_total, delete_done FROM projects WHERE id = $1`, id).
		Scan(&started, &d.Total, &d.Done)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("project %d not found", id)
	}
	if err != nil {
		return nil, dbError("get project deletion", err)
	}
	if started == nil {
		return nil, nil
	}
	d.StartedAt = *started
	return &d, nil
}

// ProjectDeletionStart marks a project as being deleted. A project already being deleted is ECONFLICT, so
// that two requests enqueue one job.
func (s *Store) ProjectDeletionStart(ctx context.Context, id int64) (*ProjectDeletion, error) {
	var d ProjectDeletion
	err := s.db.QueryRow(ctx, `
		UPDATE projects SET deleting_at = now(), delete_total = 0, delete_done = 0, updated_at = now()
		WHERE id = $1 AND deleting_at IS NULL
		RETURNING deleting_at`, id).Scan(&d.StartedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, getErr := s.ProjectGetByID(ctx, id); getErr != nil {
			return nil, getErr
		}
		return nil, ferry.Errorf(ferry.ECONFLICT, "the project is already being deleted")
	}
	if err != nil {
		return nil, dbError("start project deletion", err)
	}
	return &d, nil
}

// ProjectDeletionProgressParams records how far a deletion got.
type ProjectDeletionProgressParams struct {
	ID    int64
	Total int
	Done  int
}

// ProjectDeletionProgress records progress for the pages that show it.
func (s *Store) ProjectDeletionProgress(ctx context.Context, p ProjectDeletionProgressParams) error {
	if _, err := s.db.Exec(ctx, `UPDATE projects SET delete_total = $2, delete_done = $3 WHERE id = $1`, p.ID, p.Total, p.Done); err != nil {
		return dbError("record project deletion progress", err)
	}
	return nil
}

// DeploymentCancelUnfinishedParams names the project whose queued and building deployments stop.
type DeploymentCancelUnfinishedParams struct {
	ProjectID int64
	Reason    string // stored as the deployments' error
}

// DeploymentCancelUnfinished cancels every queued or building deployment of a project in one statement and
// returns them; running builds notice (the deploy worker polls its status) and stop.
func (s *Store) DeploymentCancelUnfinished(ctx context.Context, p DeploymentCancelUnfinishedParams) ([]*Deployment, error) {
	ds, err := collectDeployments(s.db.Query(ctx, `
		UPDATE deployments SET status = 'canceled', error = $2, finished_at = now(), updated_at = now()
		WHERE project_id = $1 AND status IN ('queued', 'building')
		RETURNING `+deploymentColumns, p.ProjectID, p.Reason))
	if err != nil {
		return nil, dbError("cancel deployments", err)
	}
	return ds, nil
}

// DeploymentCountByProject counts a project's deployments, whatever their status.
func (s *Store) DeploymentCountByProject(ctx context.Context, projectID int64) (int, error) {
	var n int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM deployments WHERE project_id = $1`, projectID).Scan(&n); err != nil {
		return 0, dbError("count deployments", err)
	}
	return n, nil
}

// DeploymentCancelParams stops one deployment by a user's request.
type DeploymentCancelParams struct {
	ID     string
	Reason string
}

// DeploymentCancel moves one queued or building deployment to canceled with Reason as its error. A finished
// deployment is ECONFLICT and stays as it is.
func (s *Store) DeploymentCancel(ctx context.Context, p DeploymentCancelParams) (*Deployment, error) {
	return s.DeploymentUpdateStatus(ctx, DeploymentUpdateStatusParams{ID: p.ID, Status: StatusCanceled, Error: p.Reason})
}
