package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/internal/ferry"
)

// This file holds a project's env vars (migration 005). Values are stored only as EnvCipher ciphertext; the
// list method returns names and times, never values, so that no page or API answer can show one by mistake.

// The environments an env var applies to: production builds (the production branch) and preview builds
// (every other branch and pull request).
const (
	EnvProduction = "production"
	EnvPreview    = "preview"
)

// EnvVar is one env var without its value.
type EnvVar struct {
	ProjectID   int64
	Environment string // EnvProduction or EnvPreview
	Key         string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// EnvSetParams saves one env var. Sealed is Cipher.Seal(ProjectID, Environment, Key, value).
type EnvSetParams struct {
	ProjectID   int64
	Environment string
	Key         string
	Sealed      []byte
}

// EnvSet creates or replaces one env var. A bad environment or key is EINVALID, an unknown project ENOTFOUND.
func (s *Store) EnvSet(ctx context.Context, p EnvSetParams) (*EnvVar, error) {
	var v EnvVar
	err := s.db.QueryRow(ctx, `
		INSERT INTO project_env (project_id, environment, key, value_enc) VALUES ($1, $2, $3, $4)
		ON CONFLICT (project_id, environment, key) DO UPDATE SET value_enc = excluded.value_enc, updated_at = now()
		RETURNING project_id, environment, key, created_at, updated_at`,
		p.ProjectID, p.Environment, p.Key, p.Sealed).Scan(&v.ProjectID, &v.Environment, &v.Key, &v.CreatedAt, &v.UpdatedAt)
	if err != nil {
		return nil, dbError("save env var "+p.Key, err)
	}
	return &v, nil
}

// EnvList returns a project's env vars (names only) by environment, then name.
func (s *Store) EnvList(ctx context.Context, projectID int64) ([]EnvVar, error) {
	rows, err := s.db.Query(ctx, `
		SELECT project_id, environment, key, created_at, updated_at FROM project_env
		WHERE project_id = $1 ORDER BY environment, key`, projectID)
	if err != nil {
		return nil, dbError("list env vars", err)
	}
	vars, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (EnvVar, error) {
		var v EnvVar
		err := r.Scan(&v.ProjectID, &v.Environment, &v.Key, &v.CreatedAt, &v.UpdatedAt)
		return v, err
	})
	if err != nil {
		return nil, dbError("list env vars", err)
	}
	return vars, nil
}

// EnvDeleteParams names one env var.
type EnvDeleteParams struct {
	ProjectID   int64
	Environment string
	Key         string
}

// EnvDelete removes one env var; a missing one is ENOTFOUND.
func (s *Store) EnvDelete(ctx context.Context, p EnvDeleteParams) error {
	tag, err := s.db.Exec(ctx, `DELETE FROM project_env WHERE project_id = $1 AND environment = $2 AND key = $3`,
		p.ProjectID, p.Environment, p.Key)
	if err != nil {
		return dbError("delete env var "+p.Key, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("env var %s is not set for %s", p.Key, p.Environment)
	}
	return nil
}

// EnvValuesParams asks for the decrypted env vars of one environment, for a build.
type EnvValuesParams struct {
	ProjectID   int64
	Environment string
	Cipher      *EnvCipher
}

// EnvValues decrypts a project's env vars for one environment. Only the deploy worker calls it, to hand them to
// a build; a value that does not decrypt (a changed key) is EINTERNAL, never silently left out.
func (s *Store) EnvValues(ctx context.Context, p EnvValuesParams) (map[string]string, error) {
	rows, err := s.db.Query(ctx, `SELECT key, value_enc FROM project_env WHERE project_id = $1 AND environment = $2`,
		p.ProjectID, p.Environment)
	if err != nil {
		return nil, dbError("read env vars", err)
	}
	type sealed struct {
		key string
		val []byte
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sealed, error) {
		var s sealed
		err := r.Scan(&s.key, &s.val)
		return s, err
	})
	if err != nil {
		return nil, dbError("read env vars", err)
	}
	if len(all) == 0 {
		return nil, nil
	}
	if p.Cipher == nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "the project has env vars but no secret key is configured (--secret-key-file)")
	}
	out := make(map[string]string, len(all))
	for _, s := range all {
		v, err := p.Cipher.Open(p.ProjectID, p.Environment, s.key, s.val)
		if err != nil {
			return nil, err
		}
		out[s.key] = v
	}
	return out, nil
}
