package migrations

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/flagenv"
)

// About is the one line `ferry -h` shows for `ferry migrate`.
const About = "apply database migrations (River's queue tables and Ferry's own)"

// Command is `ferry migrate`: it applies every pending River and Ferry migration and prints each one it ran.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return command(ctx, args, stdout, stderr, os.Getenv)
}

func command(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flagenv.NewFlagSet("migrate", "ferry migrate --database-url URL",
		"Applies Ferry's database migrations (River's queue tables, then Ferry's own). Safe to run again, and from\nseveral places at once: it prints what it applied, or that the database is up to date.", stderr)
	databaseURL := fs.String("database-url", "", "PostgreSQL connection URL, for example postgres://ferry@db:5432/ferry (required)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up when migrating takes longer than this")
	if err := flagenv.Parse(fs, args, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return ferry.Errorf(ferry.EINVALID, "unexpected arguments %q (ferry migrate takes flags only)", strings.Join(fs.Args(), " "))
	}
	if *databaseURL == "" {
		return ferry.Errorf(ferry.EINVALID, "no database given: pass --database-url postgres://USER@HOST:5432/DB or set FERRY_DATABASE_URL")
	}
	cfg, err := pgxpool.ParseConfig(*databaseURL)
	if err != nil {
		// pgx's parse errors repeat the URL, password included; say only what is wrong.
		return ferry.Errorf(ferry.EINVALID, "--database-url is not a valid PostgreSQL URL or key=value string")
	}
	cfg.MaxConns = 2
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return &ferry.Error{Code: ferry.EUNAVAILABLE, Message: "connect to the database", Err: err}
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return &ferry.Error{Code: ferry.EUNAVAILABLE, Err: err,
			Message: fmt.Sprintf("connect to the database %s on %s:%d (check --database-url and that the server runs)", cfg.ConnConfig.Database, cfg.ConnConfig.Host, cfg.ConnConfig.Port)}
	}
	res, err := Apply(ctx, pool, slog.Default())
	if err != nil {
		return err
	}
	if len(res.Steps) == 0 {
		fmt.Fprintln(stdout, "database is up to date")
		return nil
	}
	for _, s := range res.Steps {
		fmt.Fprintf(stdout, "applied %s\n", s)
	}
	return nil
}
