package store

import (
	"context"
)

// The queries in this file serve crash recovery at start-up (app/jobs, Recover): an app instance claims its
// stable name with a session lock, then takes back the River jobs that its previous life left running.

// InstanceLockTry takes the session-level advisory lock that marks the app instance name as alive, and says
// whether it got it. The lock lasts as long as the connection, so s must run on a connection held for the
// process's life (not a pool, not a transaction). PostgreSQL frees it the moment that connection drops, which a
// SIGKILLed process's does at once.
func (s *Store) InstanceLockTry(ctx context.Context, name string) (bool, error) {
	var ok bool
	err := s.db.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended('ferry.instance:' || $1, 0))`, name).Scan(&ok)
	if err != nil {
		return false, dbError("lock app instance "+name, err)
	}
	return ok, nil
}

// JobRescueByClientParams selects the running jobs of one dead River client.
type JobRescueByClientParams struct {
	// ClientID is the River client id that last attempted the jobs.
	ClientID string
	// Reason is recorded in each job's errors, as River's own rescuer records why it rescued a job.
	Reason string
}

// RescuedJob is one job JobRescueByClient took back.
type RescuedJob struct {
	ID          int64
	Kind        string
	Attempt     int
	MaxAttempts int
	// State is "available" (it runs again now) or "discarded" (that was its last attempt).
	State string
	// DeploymentID is the job args' deployment_id, "" for jobs without one.
	DeploymentID string
}

// JobRescueByClient does at once what River's rescuer does only after RescueStuckJobsAfter: every job still
// "running" whose last attempt was made by ClientID becomes available again (or discarded when it had no
// attempt left), with Reason appended to its errors. Its scheduled_at is kept, so that it goes before the jobs
// queued after it, as it did before the crash. Call it only when that client is known to be dead.
func (s *Store) JobRescueByClient(ctx context.Context, p JobRescueByClientParams) ([]RescuedJob, error) {
	rows, err := s.db.Query(ctx, `
		UPDATE river_job SET
			errors       = array_append(errors, jsonb_build_object('at', now(), 'attempt', attempt, 'error', $2::text, 'trace', '')),
			state        = CASE WHEN attempt < max_attempts THEN 'available' ELSE 'discarded' END::river_job_state,
			finalized_at = CASE WHEN attempt < max_attempts THEN NULL ELSE now() END,
			metadata     = metadata || jsonb_build_object('ferry:rescued_at_start', now())
		WHERE state = 'running' AND attempted_by[array_upper(attempted_by, 1)] = $1
		RETURNING id, kind, attempt, max_attempts, state::text, coalesce(args->>'deployment_id', '')`,
		p.ClientID, p.Reason)
	if err != nil {
		return nil, dbError("rescue the jobs of "+p.ClientID, err)
	}
	defer rows.Close()
	var out []RescuedJob
	for rows.Next() {
		var j RescuedJob
		if err := rows.Scan(&j.ID, &j.Kind, &j.Attempt, &j.MaxAttempts, &j.State, &j.DeploymentID); err != nil {
			return nil, dbError("rescue the jobs of "+p.ClientID, err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("rescue the jobs of "+p.ClientID, err)
	}
	return out, nil
}
