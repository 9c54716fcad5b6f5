package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

const installationColumns = `id, account_login, account_type, account_id, suspended_at, created_at, updated_at`

func scanInstallation(row pgx.Row) (*Installation, error) {
	var i Installation
	var suspended *time.Time
	if err := row.Scan(&i.ID, &i.AccountLogin, &i.AccountType, &i.AccountID, &suspended, &i.CreatedAt, &i.UpdatedAt); err != nil {
		return nil, err
	}
	if suspended != nil {
		i.SuspendedAt = *suspended
	}
	return &i, nil
}

// InstallationUpsertParams describes an installation as GitHub's installation event shows it.
type InstallationUpsertParams struct {
	ID           int64
	AccountLogin string
	AccountType  string
	AccountID    int64
	SuspendedAt  time.Time // zero: active
}

// InstallationUpsert records an installation or refreshes it (an account renamed, a redelivered "created").
func (s *Store) InstallationUpsert(ctx context.Context, p InstallationUpsertParams) (*Installation, error) {
	var suspended *time.Time
	if !p.SuspendedAt.IsZero() {
		suspended = &p.SuspendedAt
	}
	i, err := scanInstallation(s.db.QueryRow(ctx, `
		INSERT INTO installations (id, account_login, account_type, account_id, suspended_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET
			account_login = excluded.account_login, account_type = excluded.account_type,
			account_id = excluded.account_id, suspended_at = excluded.suspended_at, updated_at = now()
		RETURNING `+installationColumns,
		p.ID, p.AccountLogin, p.AccountType, p.AccountID, suspended))
	if err != nil {
		return nil, dbError("upsert installation", err)
	}
	return i, nil
}

// InstallationGetByID returns the installation with GitHub id id.
func (s *Store) InstallationGetByID(ctx context.Context, id int64) (*Installation, error) {
	i, err := scanInstallation(s.db.QueryRow(ctx, `SELECT `+installationColumns+` FROM installations WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("installation %d not found", id)
	}
	if err != nil {
		return nil, dbError("get installation", err)
	}
	return i, nil
}

// InstallationSetSuspendedParams says whether GitHub suspended or unsuspended an installation.
type InstallationSetSuspendedParams struct {
	ID        int64
	Suspended bool
	// At is when it was suspended; zero means now. Ignored when unsuspending.
	At time.Time
}

// InstallationSetSuspended records a suspend or unsuspend event.
func (s *Store) InstallationSetSuspended(ctx context.Context, p InstallationSetSuspendedParams) (*Installation, error) {
	var at *time.Time
	if p.Suspended {
		if p.At.IsZero() {
			p.At = time.Now()
		}
		at = &p.At
	}
	i, err := scanInstallation(s.db.QueryRow(ctx, `
		UPDATE installations SET suspended_at = $2, updated_at = now() WHERE id = $1
		RETURNING `+installationColumns, p.ID, at))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("installation %d not found", p.ID)
	}
	if err != nil {
		return nil, dbError("suspend installation", err)
	}
	return i, nil
}

// InstallationDelete forgets an uninstalled installation. Its projects stay, with no installation, so that
// their deployments and storage can be cleaned up (or the App reinstalled) deliberately.
func (s *Store) InstallationDelete(ctx context.Context, id int64) error {
	tag, err := s.db.Exec(ctx, `DELETE FROM installations WHERE id = $1`, id)
	if err != nil {
		return dbError("delete installation", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("installation %d not found", id)
	}
	return nil
}
