package migrations_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func pool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func tables(t *testing.T, p *pgxpool.Pool) map[string]bool {
	t.Helper()
	rows, err := p.Query(context.Background(), "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func ferryVersion(t *testing.T, p *pgxpool.Pool) int {
	t.Helper()
	var v int
	if err := p.QueryRow(context.Background(), "SELECT version FROM "+migrations.VersionTable).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestApplyTwice checks that Apply creates every table on an empty database and that a second Apply does nothing.
func TestApplyTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pool(t, pgtest.NewEmptyURL(t))

	res, err := migrations.Apply(ctx, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	var river, ferrySteps int
	for _, s := range res.Steps {
		switch s.Line {
		case "river":
			river++
		case "ferry":
			ferrySteps++
		}
	}
	latest, err := migrations.Latest()
	if err != nil {
		t.Fatal(err)
	}
	if river == 0 || ferrySteps != latest || res.Steps[len(res.Steps)-1].String() != "ferry 001 initial" && latest == 1 {
		t.Fatalf("first Apply ran %v", res.Steps)
	}
	have := tables(t, p)
	for _, want := range []string{"installations", "projects", "deployments", "deployment_logs", "webhook_deliveries", "river_job", "river_migration", migrations.VersionTable} {
		if !have[want] {
			t.Errorf("table %s missing after Apply", want)
		}
	}

	res, err = migrations.Apply(ctx, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps) != 0 {
		t.Fatalf("second Apply ran %v", res.Steps)
	}
	if v := ferryVersion(t, p); v != latest {
		t.Fatalf("version %d, want %d", v, latest)
	}
}

// TestApplyConcurrently starts several "replicas" at once on one empty database: all succeed, each migration runs
// once.
func TestApplyConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewEmptyURL(t)
	const replicas = 4
	results := make([]*migrations.Result, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := 0; i < replicas; i++ {
		p := pool(t, url)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], errs[i] = migrations.Apply(ctx, p, nil)
		}(i)
	}
	wg.Wait()
	seen := map[string]int{}
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		for _, s := range results[i].Steps {
			seen[s.String()]++
		}
	}
	if len(seen) == 0 {
		t.Fatal("no replica applied anything")
	}
	for step, n := range seen {
		if n != 1 {
			t.Errorf("%s applied %d times", step, n)
		}
	}
}

// TestDownAndUp checks that every migration's drop section undoes it, so a rollback is possible.
func TestDownAndUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pool(t, pgtest.NewEmptyURL(t))
	if _, err := migrations.Apply(ctx, p, nil); err != nil {
		t.Fatal(err)
	}
	conn, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	m, err := migrate.NewMigrator(ctx, conn.Conn(), migrations.VersionTable)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(migrations.Files); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 0); err != nil {
		t.Fatalf("migrate down: %v", err)
	}
	if have := tables(t, p); have["projects"] || have["deployments"] {
		t.Fatalf("tables left after migrating down: %v", have)
	}
	if err := m.Migrate(ctx); err != nil {
		t.Fatalf("migrate up again: %v", err)
	}
	if !tables(t, p)["deployments"] {
		t.Fatal("deployments missing after migrating up again")
	}
}

func TestApplyNeedsTwoConnections(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig(pgtest.NewEmptyURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = migrations.Apply(context.Background(), p, nil)
	if ferry.ErrorCode(err) != ferry.EINVALID {
		t.Fatalf("err = %v, want EINVALID", err)
	}
}

func runCommand(env map[string]string, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = migrations.RunCommand(context.Background(), args, &out, &errOut, func(k string) string { return env[k] })
	return out.String(), errOut.String(), err
}

// TestCommand runs `ferry migrate` against a fresh database, then again.
func TestCommand(t *testing.T) {
	t.Parallel()
	url := pgtest.NewEmptyURL(t)
	out, _, err := runCommand(nil, "--database-url", url)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "applied river 001 ") || !strings.Contains(out, "applied ferry 001 initial\n") {
		t.Fatalf("first run printed:\n%s", out)
	}
	if !tables(t, pool(t, url))["deployments"] {
		t.Fatal("no deployments table after ferry migrate")
	}
	// The environment works as well as the flag.
	out, _, err = runCommand(map[string]string{"FERRY_DATABASE_URL": url})
	if err != nil {
		t.Fatal(err)
	}
	if out != "database is up to date\n" {
		t.Fatalf("second run printed %q", out)
	}
}

func TestCommandErrors(t *testing.T) {
	t.Parallel()
	_, stderr, err := runCommand(nil, "-h")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "-database-url") || !strings.Contains(stderr, "-timeout") || !strings.Contains(stderr, "(default 5m0s)") {
		t.Errorf("-h: err %v, usage:\n%s", err, stderr)
	}

	_, _, err = runCommand(nil)
	if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), "--database-url") || !strings.Contains(err.Error(), "FERRY_DATABASE_URL") {
		t.Errorf("no URL: %v", err)
	}
	_, _, err = runCommand(nil, "--database-url", "postgres://u:secret@h:notaport/db")
	if ferry.ErrorCode(err) != ferry.EINVALID || strings.Contains(err.Error(), "secret") {
		t.Errorf("bad URL: %v", err)
	}
	_, _, err = runCommand(nil, "--database-url", "postgres://u@127.0.0.1:1/db?connect_timeout=5", "--timeout", "10s")
	if ferry.ErrorCode(err) != ferry.EUNAVAILABLE || ferry.ExitCode(err) != ferry.ExitInfra {
		t.Errorf("unreachable: %v", err)
	}
	_, _, err = runCommand(nil, "--database-url", "postgres://x/y", "extra")
	if ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("extra argument: %v", err)
	}
}
