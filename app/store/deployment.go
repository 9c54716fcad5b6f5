package store

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/internal/ferry"
)

const deploymentColumns = `id, project_id, commit_sha, ref, coalesce(pr_number, 0), kind, status, alias, url, alias_url,
	coalesce(github_deployment_id, 0), error, attempt, coalesce(superseded_by, ''), created_at, started_at, finished_at, updated_at`

func scanDeployment(row pgx.Row) (*Deployment, error) {
	var d Deployment
	var started, finished *time.Time
	if err := row.Scan(&d.ID, &d.ProjectID, &d.CommitSHA, &d.Ref, &d.PRNumber, &d.Kind, &d.Status, &d.Alias, &d.URL,
		&d.AliasURL, &d.GitHubDeploymentID, &d.Error, &d.Attempt, &d.SupersededBy, &d.CreatedAt, &started, &finished,
		&d.UpdatedAt); err != nil {
		return nil, err
	}
	if started != nil {
		d.StartedAt = *started
	}
	if finished != nil {
		d.FinishedAt = *finished
	}
	return &d, nil
}

func collectDeployments(rows pgx.Rows, err error) ([]*Deployment, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Deployment, error) { return scanDeployment(r) })
}

// DeploymentCreateParams describes a new deployment; it starts queued.
type DeploymentCreateParams struct {
	ID        string // required: internal/site.NewDeploymentID()
	ProjectID int64
	CommitSHA string
	Ref       string // the branch
	PRNumber  int    // 0 for branch and production deployments
	Kind      DeploymentKind
	Alias     string // the alias it moves when ready
}

// DeploymentCreate records a queued deployment. An unknown project is ENOTFOUND, a reused id ECONFLICT.
func (s *Store) DeploymentCreate(ctx context.Context, p DeploymentCreateParams) (*Deployment, error) {
	if p.ID == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "create deployment: no id given (make one with site.NewDeploymentID)")
	}
	if p.CommitSHA == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "create deployment %s: no commit SHA given", p.ID)
	}
	var pr *int
	if p.PRNumber != 0 {
		pr = &p.PRNumber
	}
	d, err := scanDeployment(s.db.QueryRow(ctx, `
		INSERT INTO deployments (id, project_id, commit_sha, ref, pr_number, kind, alias)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		RETURNING `+deploymentColumns,
		p.ID, p.ProjectID, p.CommitSHA, p.Ref, pr, string(p.Kind), p.Alias))
	if err != nil {
		return nil, dbError("create deployment "+p.ID, err)
	}
	return d, nil
}

// DeploymentGetByID returns the deployment with id id.
func (s *Store) DeploymentGetByID(ctx context.Context, id string) (*Deployment, error) {
	d, err := scanDeployment(s.db.QueryRow(ctx, `SELECT `+deploymentColumns+` FROM deployments WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("deployment %q not found", id)
	}
	if err != nil {
		return nil, dbError("get deployment", err)
	}
	return d, nil
}

// DeploymentUpdateStatusParams moves a deployment to Status and records what came with the move.
type DeploymentUpdateStatusParams struct {
	ID     string
	Status DeploymentStatus
	// Error says why a deployment failed; empty keeps the current text, and a new attempt (building) clears it.
	Error string
	// URL and AliasURL are set when non-empty, normally on ready.
	URL      string
	AliasURL string
}

// DeploymentUpdateStatus moves a deployment along its lifecycle: queued -> building -> ready, any unfinished
// status -> failed, error or canceled, building -> building (a new attempt: Attempt counts up), ready ->
// inactive. Any other move is ECONFLICT, and the deployment is unchanged. The check and the update are one
// statement, so two workers racing cannot both win a move that only one may make.
func (s *Store) DeploymentUpdateStatus(ctx context.Context, p DeploymentUpdateStatusParams) (*Deployment, error) {
	var from []string
	for f, tos := range transitions {
		for _, to := range tos {
			if to == p.Status {
				from = append(from, string(f))
			}
		}
	}
	if len(from) == 0 {
		return nil, ferry.Errorf(ferry.EINVALID, "update deployment %s: no deployment can move to status %q", p.ID, p.Status)
	}
	d, err := scanDeployment(s.db.QueryRow(ctx, `
		UPDATE deployments SET
			status      = $2,
			error       = CASE WHEN $3 <> '' THEN $3 WHEN $2 = 'building' THEN '' ELSE error END,
			url         = CASE WHEN $4 <> '' THEN $4 ELSE url END,
			alias_url   = CASE WHEN $5 <> '' THEN $5 ELSE alias_url END,
			attempt     = attempt + CASE WHEN $2 = 'building' THEN 1 ELSE 0 END,
			started_at  = CASE WHEN $2 = 'building' THEN coalesce(started_at, now()) ELSE started_at END,
			finished_at = CASE WHEN $2 IN ('queued', 'building') THEN NULL ELSE coalesce(finished_at, now()) END,
			updated_at  = now()
		WHERE id = $1 AND status = ANY($6)
		RETURNING `+deploymentColumns,
		p.ID, string(p.Status), p.Error, p.URL, p.AliasURL, from))
	if errors.Is(err, pgx.ErrNoRows) {
		cur, getErr := s.DeploymentGetByID(ctx, p.ID)
		if getErr != nil {
			return nil, getErr
		}
		return nil, ferry.Errorf(ferry.ECONFLICT, "deployment %s is %s and cannot become %s", p.ID, cur.Status, p.Status)
	}
	if err != nil {
		return nil, dbError("update deployment "+p.ID, err)
	}
	return d, nil
}

// DeploymentSetGitHubIDParams links a deployment to the GitHub Deployment that reports on it.
type DeploymentSetGitHubIDParams struct {
	ID                 string
	GitHubDeploymentID int64
}

// DeploymentSetGitHubID records the GitHub Deployment's id, so that later statuses go to the same one.
func (s *Store) DeploymentSetGitHubID(ctx context.Context, p DeploymentSetGitHubIDParams) (*Deployment, error) {
	d, err := scanDeployment(s.db.QueryRow(ctx, `
		UPDATE deployments SET github_deployment_id = $2, updated_at = now() WHERE id = $1
		RETURNING `+deploymentColumns, p.ID, nullInt64(p.GitHubDeploymentID)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("deployment %q not found", p.ID)
	}
	if err != nil {
		return nil, dbError("update deployment "+p.ID, err)
	}
	return d, nil
}

// DeploymentListByProjectParams filters and pages a project's deployments, newest first.
type DeploymentListByProjectParams struct {
	ProjectID int64
	Statuses  []DeploymentStatus // any of these; empty: all
	Ref       string             // "": any branch
	PRNumber  int                // 0: any
	Kind      DeploymentKind     // "": any
	// Limit is the page size: default 50, at most 500.
	Limit int
	// Cursor is the previous page's NextCursor; empty starts at the newest deployment.
	Cursor string
}

// DeploymentListResult is one page of deployments.
type DeploymentListResult struct {
	Deployments []*Deployment
	// NextCursor fetches the next (older) page; empty on the last page.
	NextCursor string
}

// DeploymentListByProject returns one page of a project's deployments, newest first. Pages are keyed on
// (created_at, id), so deployments created while a client pages do not shift or repeat rows.
func (s *Store) DeploymentListByProject(ctx context.Context, p DeploymentListByProjectParams) (*DeploymentListResult, error) {
	switch {
	case p.Limit <= 0:
		p.Limit = 50
	case p.Limit > 500:
		p.Limit = 500
	}
	var afterTime *time.Time
	var afterID string
	if p.Cursor != "" {
		t, id, err := decodeCursor(p.Cursor)
		if err != nil {
			return nil, err
		}
		afterTime, afterID = &t, id
	}
	statuses := make([]string, len(p.Statuses))
	for i, st := range p.Statuses {
		statuses[i] = string(st)
	}
	ds, err := collectDeployments(s.db.Query(ctx, `
		SELECT `+deploymentColumns+` FROM deployments
		WHERE project_id = $1
			AND (cardinality($2::text[]) = 0 OR status = ANY($2))
			AND ($3 = '' OR ref = $3)
			AND ($4 = 0 OR pr_number = $4)
			AND ($5 = '' OR kind = $5)
			AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7))
		ORDER BY created_at DESC, id DESC
		LIMIT $8`,
		p.ProjectID, statuses, p.Ref, p.PRNumber, string(p.Kind), afterTime, afterID, p.Limit+1))
	if err != nil {
		return nil, dbError("list deployments", err)
	}
	res := &DeploymentListResult{Deployments: ds}
	if len(ds) > p.Limit {
		res.Deployments = ds[:p.Limit]
		last := res.Deployments[p.Limit-1]
		res.NextCursor = encodeCursor(last.CreatedAt, last.ID)
	}
	return res, nil
}

// encodeCursor makes an opaque page cursor. Microseconds are PostgreSQL's precision, so the key is exact.
func encodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixMicro(), 10) + ":" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		if us, id, ok := strings.Cut(string(b), ":"); ok {
			if n, err := strconv.ParseInt(us, 10, 64); err == nil {
				return time.UnixMicro(n), id, nil
			}
		}
	}
	return time.Time{}, "", ferry.Errorf(ferry.EINVALID, "invalid page cursor %q (pass back a NextCursor unchanged)", c)
}

// DeploymentListActiveByRefParams names one line of work: a pull request, or else a branch.
type DeploymentListActiveByRefParams struct {
	ProjectID int64
	PRNumber  int    // when non-zero, the pull request's deployments, whatever their branch
	Ref       string // otherwise the branch's deployments that belong to no pull request
}

// DeploymentListActiveByRef returns the unfinished (queued or building) deployments of one pull request or
// branch, oldest first: the ones a newer commit supersedes.
func (s *Store) DeploymentListActiveByRef(ctx context.Context, p DeploymentListActiveByRefParams) ([]*Deployment, error) {
	ds, err := collectDeployments(s.db.Query(ctx, `
		SELECT `+deploymentColumns+` FROM deployments
		WHERE project_id = $1 AND status IN ('queued', 'building')
			AND CASE WHEN $2 <> 0 THEN pr_number = $2 ELSE pr_number IS NULL AND ref = $3 END
		ORDER BY created_at, id`,
		p.ProjectID, p.PRNumber, p.Ref))
	if err != nil {
		return nil, dbError("list active deployments", err)
	}
	return ds, nil
}

// DeploymentSupersedeParams names the newer deployment and, like DeploymentListActiveByRefParams, its line.
type DeploymentSupersedeParams struct {
	NewID     string
	ProjectID int64
	PRNumber  int
	Ref       string
}

// DeploymentSupersede cancels, in one statement, the unfinished deployments of the same pull request or branch
// that are older than NewID, records NewID as their superseded_by, and returns them so that the caller can stop
// their builds and report "inactive" to GitHub. A deployment newer than NewID is never touched, so a late
// redelivery cannot cancel newer work.
func (s *Store) DeploymentSupersede(ctx context.Context, p DeploymentSupersedeParams) ([]*Deployment, error) {
	ds, err := collectDeployments(s.db.Query(ctx, `
		UPDATE deployments SET status = 'canceled', superseded_by = $1, error = 'superseded by ' || $1,
			finished_at = now(), updated_at = now()
		WHERE project_id = $2 AND status IN ('queued', 'building') AND id <> $1
			AND CASE WHEN $3 <> 0 THEN pr_number = $3 ELSE pr_number IS NULL AND ref = $4 END
			AND (created_at, id) < (SELECT created_at, id FROM deployments WHERE id = $1)
		RETURNING `+deploymentColumns,
		p.NewID, p.ProjectID, p.PRNumber, p.Ref))
	if err != nil {
		return nil, dbError("supersede deployments", err)
	}
	return ds, nil
}
