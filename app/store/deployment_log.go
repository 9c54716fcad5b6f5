package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/internal/ferry"
)

// DeploymentLogAppendParams is a batch of log lines for one deployment.
type DeploymentLogAppendParams struct {
	DeploymentID string
	Lines        []LogLine // Seq is ignored; a zero Time means now
}

// DeploymentLogAppend stores a batch of log lines and returns the sequence number of the last one. Numbers
// continue the deployment's log (1, 2, 3... across batches and attempts) and never collide, even with
// concurrent writers, because the deployment's row lock orders the batches. An empty batch returns the current
// last number. An unknown deployment is ENOTFOUND.
func (s *Store) DeploymentLogAppend(ctx context.Context, p DeploymentLogAppendParams) (int64, error) {
	n := len(p.Lines)
	lines, steps := make([]string, n), make([]string, n)
	times := make([]*time.Time, n)
	for i := range p.Lines {
		lines[i], steps[i] = p.Lines[i].Line, p.Lines[i].Step
		if !p.Lines[i].Time.IsZero() {
			times[i] = &p.Lines[i].Time
		}
	}
	var last int64
	err := s.db.QueryRow(ctx, `
		WITH bump AS (
			UPDATE deployments SET log_seq = log_seq + $2 WHERE id = $1 RETURNING log_seq
		), ins AS (
			INSERT INTO deployment_logs (deployment_id, seq, time, step, line)
			SELECT $1, bump.log_seq - $2 + l.ord, coalesce(l.time, now()), l.step, l.line
			FROM bump, unnest($3::text[], $4::text[], $5::timestamptz[]) WITH ORDINALITY AS l(line, step, time, ord)
		)
		SELECT log_seq FROM bump`,
		p.DeploymentID, n, lines, steps, times).Scan(&last)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, notFound("deployment %q not found", p.DeploymentID)
	}
	if err != nil {
		return 0, dbError("append deployment log", err)
	}
	return last, nil
}

// DeploymentLogListParams selects the log lines after a known one, for live tails that resume
// (Last-Event-ID) and for paging a long log.
type DeploymentLogListParams struct {
	DeploymentID string
	AfterSeq     int64 // 0: from the first line
	// Limit caps the lines returned: default 1000, at most 10000.
	Limit int
}

// DeploymentLogList returns log lines with Seq > AfterSeq in order. An unknown deployment is ENOTFOUND, so that
// a tail can tell "no lines yet" from "no such deployment".
func (s *Store) DeploymentLogList(ctx context.Context, p DeploymentLogListParams) ([]LogLine, error) {
	switch {
	case p.Limit <= 0:
		p.Limit = 1000
	case p.Limit > 10000:
		p.Limit = 10000
	}
	rows, err := s.db.Query(ctx, `
		SELECT l.seq, l.time, l.step, l.line FROM deployments d
		LEFT JOIN LATERAL (
			SELECT seq, time, step, line FROM deployment_logs
			WHERE deployment_id = d.id AND seq > $2 ORDER BY seq LIMIT $3
		) l ON true
		WHERE d.id = $1
		ORDER BY l.seq`,
		p.DeploymentID, p.AfterSeq, p.Limit)
	if err != nil {
		return nil, dbError("list deployment log", err)
	}
	var found bool
	lines := []LogLine{}
	for rows.Next() {
		found = true
		var seq *int64
		var l LogLine
		var t *time.Time
		var step, line *string
		if err := rows.Scan(&seq, &t, &step, &line); err != nil {
			rows.Close()
			return nil, dbError("list deployment log", err)
		}
		if seq == nil { // the deployment exists but has no lines after AfterSeq
			continue
		}
		l.Seq, l.Time, l.Step, l.Line = *seq, *t, *step, *line
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("list deployment log", err)
	}
	if !found {
		return nil, ferry.Errorf(ferry.ENOTFOUND, "deployment %q not found", p.DeploymentID)
	}
	return lines, nil
}
