// Package store keeps Ferry's state in PostgreSQL: installations, projects, deployments, their logs and webhook
// deliveries. Methods follow River's style: noun first (DeploymentCreate, DeploymentGetByID), one params struct
// per call. A Store runs on a pool, a connection or a transaction alike, so that webhook intake can record a
// delivery, create a deployment and enqueue its River job in one transaction:
//
//	err := st.InTx(ctx, func(st *store.Store, tx pgx.Tx) error {
//		inserted, err := st.WebhookDeliveryInsert(ctx, store.WebhookDeliveryInsertParams{ID: id, Event: "push"})
//		...
//		_, err = riverClient.InsertTx(ctx, tx, args, nil)
//		return err
//	})
//
// Errors carry ferry codes: a missing row is ENOTFOUND, a duplicate or a forbidden status change ECONFLICT,
// input the schema rejects EINVALID, and a database that cannot be reached EUNAVAILABLE.
package store

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/internal/ferry"
)

// DBTX is what a Store runs its queries on: *pgxpool.Pool, *pgx.Conn and pgx.Tx all qualify. Begin on a
// transaction opens a savepoint, so InTx nests.
type DBTX interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	_ DBTX = (*pgxpool.Pool)(nil)
	_ DBTX = (*pgx.Conn)(nil)
	_ DBTX = (pgx.Tx)(nil)
)

// Store is Ferry's state in PostgreSQL. It holds no state of its own, so it is cheap to make per transaction.
type Store struct {
	db DBTX
}

// New returns a Store that runs on db.
func New(db DBTX) *Store { return &Store{db: db} }

// WithTx returns a Store whose methods run inside tx, for callers that manage the transaction themselves.
func (s *Store) WithTx(tx pgx.Tx) *Store { return &Store{db: tx} }

// InTx runs fn in a transaction (a savepoint when s is already in one) and commits when fn returns nil. fn gets
// the raw tx too, for River's InsertTx.
func (s *Store) InTx(ctx context.Context, fn func(st *Store, tx pgx.Tx) error) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return dbError("begin transaction", err)
	}
	defer func() { _ = tx.Rollback(ctx) }() // a no-op after Commit
	if err := fn(&Store{db: tx}, tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return dbError("commit transaction", err)
	}
	return nil
}

// constraintMessages turns the schema's named constraints into messages a user can act on.
var constraintMessages = map[string]string{
	"installations_pkey":                 "this installation is already recorded",
	"projects_name_key":                  "a project with this name already exists; choose another name",
	"projects_name_check":                "the project name must be at most 40 lowercase letters, digits and single hyphens, starting and ending with a letter or digit",
	"projects_github_repo_id_key":        "a project for this repository already exists",
	"projects_installation_id_fkey":      "the installation is not recorded",
	"deployments_pkey":                   "a deployment with this id already exists",
	"deployments_id_check":               `the deployment id must be "dpl-" followed by 16 characters of 0-9 and a-v`,
	"deployments_kind_check":             `the deployment kind must be "production" or "preview"`,
	"deployments_status_check":           "unknown deployment status",
	"deployments_project_id_fkey":        "the project does not exist",
	"deployments_superseded_by_fkey":     "the superseding deployment does not exist",
	"deployment_logs_deployment_id_fkey": "the deployment does not exist",
}

// dbError wraps err from the operation op with the ferry code that tells callers what to do about it.
func dbError(op string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		msg := constraintMessages[pgErr.ConstraintName]
		if msg == "" {
			msg = pgErr.Message
		}
		switch pgErr.Code {
		case "23505": // unique_violation
			return &ferry.Error{Code: ferry.ECONFLICT, Message: op + ": " + msg, Err: err}
		case "23503": // foreign_key_violation
			return &ferry.Error{Code: ferry.ENOTFOUND, Message: op + ": " + msg, Err: err}
		case "23514", "23502", "22P02", "22001", "22003": // check, not null, bad text, too long, out of range
			return &ferry.Error{Code: ferry.EINVALID, Message: op + ": " + msg, Err: err}
		case "40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300": // serialization, deadlock, lock, shutdown, too many connections
			return &ferry.Error{Code: ferry.EUNAVAILABLE, Message: op + ": the database is busy or restarting; try again in a moment", Err: err}
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return &ferry.Error{Code: ferry.EUNAVAILABLE, Message: op + ": the database is unreachable; try again in a moment", Err: err}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// notFound is the error for a lookup that matched no row.
func notFound(format string, args ...any) error {
	return ferry.Errorf(ferry.ENOTFOUND, format, args...)
}

// nullInt64 maps Go's zero to SQL NULL for ids that are never 0.
func nullInt64(v int64) *int64 {
	if v == 0 {
		return nil
	}
	return &v
}
