package store

import (
	"context"
	"time"
)

// The queries in this file serve the job workers (app/jobs): reporting locks, superseded deployments, and the
// sweep that finds deployments whose jobs are gone.

// DeploymentLock takes a lock on one deployment's GitHub reporting until the end of the current transaction:
// the workers hold it while they check a deployment's status and post to GitHub, so that statuses reach GitHub
// in lifecycle order (queued, in_progress, then success or inactive) however the jobs interleave. Outside a
// transaction it locks nothing; call it inside InTx.
func (s *Store) DeploymentLock(ctx context.Context, id string) error {
	if _, err := s.db.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('ferry.deployment:' || $1, 0))`, id); err != nil {
		return dbError("lock deployment "+id, err)
	}
	return nil
}

// DeploymentListSupersededBy returns the deployments that newID superseded (DeploymentSupersede), oldest first,
// so that their GitHub statuses can say so.
func (s *Store) DeploymentListSupersededBy(ctx context.Context, newID string) ([]*Deployment, error) {
	ds, err := collectDeployments(s.db.Query(ctx, `
		SELECT `+deploymentColumns+` FROM deployments WHERE superseded_by = $1 ORDER BY created_at, id`, newID))
	if err != nil {
		return nil, dbError("list superseded deployments", err)
	}
	return ds, nil
}

// DeploymentListOrphanedParams selects unfinished deployments that no River job will finish.
type DeploymentListOrphanedParams struct {
	// JobKind is the River job kind that builds a deployment; its args carry "deployment_id".
	JobKind string
	// UnchangedFor skips deployments updated more recently than this (default 1m), so that a deployment and
	// its job committing together are never caught in between.
	UnchangedFor time.Duration
	// Limit caps the rows (default 100).
	Limit int
}

// DeploymentListOrphaned returns queued or building deployments that have no River job of kind JobKind left
// to run (none available, scheduled, retryable or running): their last attempt died with its worker and River
// discarded the job, so nothing would ever move them on. The sweep marks them error.
func (s *Store) DeploymentListOrphaned(ctx context.Context, p DeploymentListOrphanedParams) ([]*Deployment, error) {
	if p.UnchangedFor <= 0 {
		p.UnchangedFor = time.Minute
	}
	if p.Limit <= 0 {
		p.Limit = 100
	}
	ds, err := collectDeployments(s.db.Query(ctx, `
		SELECT `+deploymentColumns+` FROM deployments d
		WHERE d.status IN ('queued', 'building') AND d.updated_at < now() - make_interval(secs => $2)
			AND NOT EXISTS (
				SELECT 1 FROM river_job j
				WHERE j.kind = $1 AND j.args->>'deployment_id' = d.id
					AND j.state IN ('available', 'pending', 'retryable', 'running', 'scheduled'))
		ORDER BY d.created_at, d.id
		LIMIT $3`,
		p.JobKind, p.UnchangedFor.Seconds(), p.Limit))
	if err != nil {
		return nil, dbError("list orphaned deployments", err)
	}
	return ds, nil
}
