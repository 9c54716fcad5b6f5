package pgtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/internal/pgcluster"
)

func TestMain(m *testing.M) { Main(m) }

func hasTable(t *testing.T, pool *pgxpool.Pool, name string) bool {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestNewIsMigratedAndIsolated checks that each New database has the schema and sees no other test's rows.
func TestNewIsMigratedAndIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := New(t), New(t)
	for _, table := range []string{"projects", "deployments", "river_job", "ferry_schema_version"} {
		if !hasTable(t, a, table) {
			t.Errorf("table %s missing from a new database", table)
		}
	}
	if _, err := a.Exec(ctx, "INSERT INTO webhook_deliveries (id, event) VALUES ('d1', 'ping')"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.QueryRow(ctx, "SELECT count(*) FROM webhook_deliveries").Scan(&n); err != nil || n != 0 {
		t.Fatalf("second database sees %d deliveries (err %v), want 0", n, err)
	}
}

// TestNewEmptyURL checks that an empty database has no tables, for migration tests.
func TestNewEmptyURL(t *testing.T) {
	t.Parallel()
	pool, err := pxpoolNew(NewEmptyURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if hasTable(t, pool, "projects") {
		t.Fatal("empty database has the projects table")
	}
}

func pxpoolNew(url string) (*pgxpool.Pool, error) { return pgxpool.New(context.Background(), url) }

// TestTxRollsBack checks that a Tx's writes vanish at cleanup.
func TestTxRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("write", func(t *testing.T) {
		tx := Tx(t)
		if _, err := tx.Exec(ctx, "INSERT INTO webhook_deliveries (id, event) VALUES ('rolled-back', 'ping')"); err != nil {
			t.Fatal(err)
		}
	})
	tx := Tx(t)
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM webhook_deliveries WHERE id = 'rolled-back'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("found %d rolled-back rows (err %v), want 0", n, err)
	}
}

func TestWithDatabase(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p@h:5432/postgres?sslmode=disable": "postgres://u:p@h:5432/other?sslmode=disable",
		"host=/tmp/x dbname=postgres":                    "host=/tmp/x dbname=postgres dbname='other'",
	} {
		if got := withDatabase(in, "other"); got != want {
			t.Errorf("withDatabase(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHelperNoPostgres is not a test: TestMissingPostgres runs it in a child process that pretends PostgreSQL is
// not installed.
func TestHelperNoPostgres(t *testing.T) {
	if os.Getenv("PGTEST_HELPER_NOPG") == "" {
		t.Skip("helper process only")
	}
	findBinDir = func() (string, error) { return "", errors.New("initdb not found: " + pgcluster.InstallHint) }
	New(t)
	t.Error("New returned without PostgreSQL")
}

// TestMissingPostgres checks that without PostgreSQL a test skips with an install hint, and fails under CI.
func TestMissingPostgres(t *testing.T) {
	t.Parallel()
	for _, ci := range []string{"", "true"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNoPostgres$", "-test.v")
		cmd.Env = append(os.Environ(), "PGTEST_HELPER_NOPG=1", "CI="+ci, EnvURL+"=")
		out, err := cmd.CombinedOutput()
		if !strings.Contains(string(out), "apt-get install postgresql") {
			t.Errorf("CI=%q: output lacks the install hint:\n%s", ci, out)
		}
		switch {
		case ci == "" && (err != nil || !strings.Contains(string(out), "--- SKIP: TestHelperNoPostgres")):
			t.Errorf("without CI the test should skip; err %v:\n%s", err, out)
		case ci != "" && (err == nil || !strings.Contains(string(out), "--- FAIL: TestHelperNoPostgres")):
			t.Errorf("under CI the test should fail; err %v:\n%s", err, out)
		}
	}
}
