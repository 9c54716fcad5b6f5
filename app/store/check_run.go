package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// CheckRunGet returns the GitHub check run that reports deployment id, or 0 when it has none yet.
func (s *Store) CheckRunGet(ctx context.Context, deploymentID string) (int64, error) {
	var id int64
	err := s.db.QueryRow(ctx, `SELECT check_run_id FROM deployment_check_runs WHERE deployment_id = $1`, deploymentID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, dbError("get check run", err)
	}
	return id, nil
}

// CheckRunForCommit returns the newest check run of a project's commit, from any of its deployments, or 0: a
// redeploy of the same commit reports on the same check run rather than adding a second one.
func (s *Store) CheckRunForCommit(ctx context.Context, projectID int64, commitSHA string) (int64, error) {
	var id int64
	err := s.db.QueryRow(ctx, `
		SELECT check_run_id FROM deployment_check_runs WHERE project_id = $1 AND commit_sha = $2
		ORDER BY created_at DESC LIMIT 1`, projectID, commitSHA).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, dbError("get check run of a commit", err)
	}
	return id, nil
}

// CheckRunSetParams links a deployment to its check run.
type CheckRunSetParams struct {
	DeploymentID string
	ProjectID    int64
	CommitSHA    string
	CheckRunID   int64
}

// CheckRunSet records (or replaces) the check run that reports a deployment.
func (s *Store) CheckRunSet(ctx context.Context, p CheckRunSetParams) error {
	_, err := s.db.Exec(ctx, `
		INSERT INTO deployment_check_runs (deployment_id, project_id, commit_sha, check_run_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (deployment_id) DO UPDATE SET check_run_id = excluded.check_run_id`,
		p.DeploymentID, p.ProjectID, p.CommitSHA, p.CheckRunID)
	if err != nil {
		return dbError("set check run", err)
	}
	return nil
}

// DeploymentGetByCheckRun returns the newest deployment a check run reports, for the check_run webhook's
// requested actions. None is ENOTFOUND.
func (s *Store) DeploymentGetByCheckRun(ctx context.Context, checkRunID int64) (*Deployment, error) {
	d, err := scanDeployment(s.db.QueryRow(ctx, `
		SELECT `+deploymentColumns+` FROM deployments WHERE id = (
			SELECT deployment_id FROM deployment_check_runs WHERE check_run_id = $1 ORDER BY created_at DESC LIMIT 1)`,
		checkRunID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("no deployment reports check run %d", checkRunID)
	}
	if err != nil {
		return nil, dbError("get deployment by check run", err)
	}
	return d, nil
}

// DeploymentLogTail returns the last n lines of a deployment's log (of one step, when step is not empty), in
// order: what a check run shows of a build.
func (s *Store) DeploymentLogTail(ctx context.Context, deploymentID, step string, n int) ([]LogLine, error) {
	if n <= 0 {
		n = 30
	}
	rows, err := s.db.Query(ctx, `
		SELECT seq, time, step, line FROM (
			SELECT seq, time, step, line FROM deployment_logs
			WHERE deployment_id = $1 AND ($2 = '' OR step = $2) ORDER BY seq DESC LIMIT $3
		) t ORDER BY seq`, deploymentID, step, n)
	if err != nil {
		return nil, dbError("tail deployment log", err)
	}
	lines, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LogLine, error) {
		var l LogLine
		err := r.Scan(&l.Seq, &l.Time, &l.Step, &l.Line)
		return l, err
	})
	if err != nil {
		return nil, dbError("tail deployment log", err)
	}
	return lines, nil
}

// UserGetByGitHubID returns the Ferry user linked to a GitHub account (through GitHub sign-in), or ENOTFOUND:
// who a check run's requested action acts as, and whether a GitHub sign-in needs a new account.
func (s *Store) UserGetByGitHubID(ctx context.Context, githubID int64) (*User, error) {
	if githubID <= 0 {
		return nil, notFound("no user with GitHub id %d", githubID)
	}
	u, err := scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.github_id = $1`, githubID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("no user linked to GitHub id %d", githubID)
	}
	if err != nil {
		return nil, dbError("get user", err)
	}
	return u, nil
}
