// Package migrations holds Ferry's database schema as numbered tern .sql files, embedded in the binary, and
// Apply, which brings a database fully up to date: River's queue tables (through rivermigrate) and then Ferry's
// own tables (through tern). `ferry migrate` and `ferry app` at start call it; both may run on many replicas
// at once, so Apply serialises itself with an advisory lock.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/ferryhq/ferry/internal/ferry"
)

//go:embed *.sql
var files embed.FS

// VersionTable is where tern records Ferry's schema version. It is unqualified, so it follows search_path, as
// River's tables do.
const VersionTable = "ferry_schema_version"

// lockKey is Apply's advisory lock. It differs from tern's own lock, which tern takes and releases per step;
// Apply's covers River and Ferry together, so a second replica waits and then finds nothing to do.
const lockKey = int64(0x6665727279_6d6967) // "ferry" "mig"

// Step is one migration that Apply ran.
type Step struct {
	// Line is "river" or "ferry": whose schema the step belongs to.
	Line    string
	Version int
	Name    string
}

// String renders a step as `ferry migrate` prints it.
func (s Step) String() string { return fmt.Sprintf("%s %03d %s", s.Line, s.Version, s.Name) }

// Result lists the steps one Apply ran, River's first; it is empty when the database was already up to date.
type Result struct {
	Steps []Step
}

// Apply migrates the database behind pool to the newest River and Ferry schemas. It is idempotent and safe to
// call from several processes at once. River's migrator takes connections of its own, so pool must allow at
// least two (pgxpool's default does). logger may be nil.
func Apply(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) (*Result, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if pool.Config().MaxConns < 2 {
		return nil, ferry.Errorf(ferry.EINVALID, "migrate: the connection pool allows %d connection; migrations need at least 2", pool.Config().MaxConns)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, &ferry.Error{Code: ferry.EUNAVAILABLE, Message: "migrate: connect to the database", Err: err}
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		conn.Release()
		return nil, fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	defer func() {
		// A session lock outlives a cancelled ctx; a connection that cannot unlock must not return to the pool.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
		conn.Release()
	}()

	res := &Result{}
	riverMigrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("migrate river: %w", err)
	}
	riverRes, err := riverMigrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("migrate river: %w", err)
	}
	for _, v := range riverRes.Versions {
		res.Steps = append(res.Steps, Step{Line: "river", Version: v.Version, Name: v.Name})
	}

	m, err := migrate.NewMigrator(ctx, conn.Conn(), VersionTable)
	if err != nil {
		return nil, fmt.Errorf("migrate ferry: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return nil, fmt.Errorf("migrate ferry: load migrations: %w", err)
	}
	m.OnStart = func(seq int32, name, direction, _ string) {
		logger.InfoContext(ctx, "applying migration", "line", "ferry", "version", seq, "name", name, "direction", direction)
		_, short, _ := strings.Cut(strings.TrimSuffix(name, ".sql"), "_") // "001_initial.sql" -> "initial"
		res.Steps = append(res.Steps, Step{Line: "ferry", Version: int(seq), Name: short})
	}
	if err := m.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrate ferry: %w", err)
	}
	return res, nil
}

// Latest is the newest Ferry schema version in this binary, so `ferry app` can tell an outdated database apart.
func Latest() (int, error) {
	names, err := migrate.FindMigrations(files)
	if err != nil {
		return 0, fmt.Errorf("find migrations: %w", err)
	}
	return len(names), nil
}
