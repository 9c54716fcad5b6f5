package store

import (
	"context"
	"errors"
	"slices"

	"github.com/jackc/pgx/v5"
)

// This file holds what webhook intake (app/webhook) needs beyond the core store: the fork flags of a deployment
// (migration 002) and re-linking a project to the installation that reaches it.

// DeploymentFork says how far a deployment's code is trusted.
type DeploymentFork struct {
	// Fork is true for a pull request from another repository: its build must not see the project's secret
	// env vars, because the code that runs is not the maintainers'.
	Fork bool
	// AwaitingApproval is true while a fork deployment waits for a maintainer's ferry:approve label; it has no
	// job until then.
	AwaitingApproval bool
}

// DeploymentSetForkParams marks a deployment as a fork build.
type DeploymentSetForkParams struct {
	ID               string
	AwaitingApproval bool
}

// DeploymentSetFork marks a (new) deployment as a fork build, and as waiting for approval when the project asks
// for that. Intake calls it in the transaction that creates the deployment, so no worker ever sees the
// deployment unmarked.
func (s *Store) DeploymentSetFork(ctx context.Context, p DeploymentSetForkParams) error {
	tag, err := s.db.Exec(ctx, `UPDATE deployments SET fork = true, awaiting_approval = $2, updated_at = now() WHERE id = $1`,
		p.ID, p.AwaitingApproval)
	if err != nil {
		return dbError("mark fork deployment "+p.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("deployment %q not found", p.ID)
	}
	return nil
}

// DeploymentForkGet returns a deployment's fork flags, for the worker that decides whether the build gets the
// project's secrets. An unknown deployment is ENOTFOUND.
func (s *Store) DeploymentForkGet(ctx context.Context, id string) (DeploymentFork, error) {
	var f DeploymentFork
	err := s.db.QueryRow(ctx, `SELECT fork, awaiting_approval FROM deployments WHERE id = $1`, id).Scan(&f.Fork, &f.AwaitingApproval)
	if errors.Is(err, pgx.ErrNoRows) {
		return f, notFound("deployment %q not found", id)
	}
	if err != nil {
		return f, dbError("get deployment "+id, err)
	}
	return f, nil
}

// DeploymentApproveParams names the pull request whose waiting fork deployments a maintainer approved.
type DeploymentApproveParams struct {
	ProjectID int64
	PRNumber  int
	// CommitSHA, when set, releases only the deployments of that commit: the head the approving label event
	// names, which is what the maintainer saw. A labeled body replayed under a new delivery id after the fork
	// pushed again then releases nothing new. Empty: every waiting deployment of the pull request.
	CommitSHA string
}

// DeploymentApprove releases a pull request's queued deployments that await approval and returns their ids
// (oldest first), so that the caller enqueues their builds in the same transaction. Deployments that were
// superseded meanwhile are canceled, not queued, and stay as they are.
func (s *Store) DeploymentApprove(ctx context.Context, p DeploymentApproveParams) ([]string, error) {
	rows, err := s.db.Query(ctx, `
		UPDATE deployments SET awaiting_approval = false, updated_at = now()
		WHERE project_id = $1 AND pr_number = $2 AND status = 'queued' AND awaiting_approval
		  AND ($3 = '' OR commit_sha = $3)
		RETURNING id`, p.ProjectID, p.PRNumber, p.CommitSHA)
	if err != nil {
		return nil, dbError("approve deployments", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, dbError("approve deployments", err)
	}
	// RETURNING has no ORDER BY; ids sort by creation time (internal/site.NewDeploymentID).
	slices.Sort(ids)
	return ids, nil
}

// ProjectSetInstallationParams links a project to the installation that now reaches its repository.
type ProjectSetInstallationParams struct {
	ID             int64
	InstallationID int64 // 0: none
}

// ProjectSetInstallation records which installation reaches a project's repository, for an App reinstalled on
// an account whose projects Ferry still knows. A new installation lifts the block of an uninstalled one.
func (s *Store) ProjectSetInstallation(ctx context.Context, p ProjectSetInstallationParams) (*Project, error) {
	proj, err := scanProject(s.db.QueryRow(ctx, `
		UPDATE projects SET installation_id = $2, github_blocked = '', updated_at = now() WHERE id = $1
		RETURNING `+projectColumns, p.ID, nullInt64(p.InstallationID)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("project %d not found", p.ID)
	}
	if err != nil {
		return nil, dbError("update project", err)
	}
	return proj, nil
}
