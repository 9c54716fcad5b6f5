// Package pgtest gives tests a real, migrated PostgreSQL database with nothing installed by hand.
//
// With FERRY_TEST_DATABASE_URL unset, the first test that asks for a database starts ONE private cluster for
// the whole test binary (internal/pgcluster: initdb in a temp folder, a unix socket, fsync off), and Main stops
// it and removes the folder when the tests end. As root, the cluster runs as the user "nobody", because
// PostgreSQL refuses to run as root (set FERRY_PG_USER to pick another). With FERRY_TEST_DATABASE_URL set,
// pgtest uses that server instead; its role needs CREATEDB.
//
// Each New gets its own database, copied from a template that was migrated once (CREATE DATABASE ... TEMPLATE
// takes milliseconds) and dropped at cleanup. Tx is cheaper still: a transaction on one shared migrated
// database, rolled back at cleanup.
//
// Missing PostgreSQL binaries skip the test with an install hint, or fail it when the env var CI is set.
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		pool := pgtest.New(t)
//		...
//	}
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/internal/pgcluster"
	"github.com/ferryhq/ferry/migrations"
)

// EnvURL names the environment variable that points tests at an existing server instead of a private cluster.
const EnvURL = "FERRY_TEST_DATABASE_URL"

var (
	mainCalled atomic.Bool
	counter    atomic.Int64

	once   sync.Once
	srv    *server
	srvErr error
	skip   bool // srvErr means "PostgreSQL is not installed"

	findBinDir = pgcluster.FindBinDir // replaced by the test of a machine without PostgreSQL
)

// server is what the whole test binary shares.
type server struct {
	cluster  *pgcluster.Cluster // nil with FERRY_TEST_DATABASE_URL
	tempDir  string
	baseURL  string        // the maintenance database, for CREATE/DROP DATABASE
	admin    *pgxpool.Pool // on baseURL
	template string        // a migrated database that nobody connects to
	shared   *pgxpool.Pool // a migrated database for Tx
	sharedDB string
}

// Main runs the package's tests and then stops the private cluster, if one was started. Call it from TestMain:
// New and Tx fail a test whose package does not, because its cluster would outlive the test binary.
func Main(m *testing.M) {
	mainCalled.Store(true)
	code := m.Run()
	if srv != nil {
		if err := srv.close(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
	os.Exit(code)
}

// New returns a pool on a fresh database of its own with every migration applied, dropped at cleanup.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return connect(t, NewURL(t))
}

// NewURL returns the connection URL of a fresh migrated database, dropped at cleanup, for code under test that
// opens its own pool (`ferry app`, a worker).
func NewURL(t testing.TB) string {
	t.Helper()
	s := get(t)
	return s.createDB(t, s.template)
}

// NewEmptyURL returns the connection URL of a fresh database with no tables at all, dropped at cleanup, for
// tests of the migrations themselves.
func NewEmptyURL(t testing.TB) string {
	t.Helper()
	s := get(t)
	return s.createDB(t, "template0")
}

// Tx returns a transaction on a migrated database shared by the test binary, rolled back at cleanup: the
// cheapest isolation for tests that do not commit or need their own connections.
func Tx(t testing.TB) pgx.Tx {
	t.Helper()
	s := get(t)
	ctx := context.Background()
	tx, err := s.shared.Begin(ctx)
	if err != nil {
		t.Fatalf("pgtest: begin: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

func connect(t testing.TB, dbURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(pool.Close) // registered after the drop, so it runs before it
	return pool
}

// get returns the shared server, starting it on first use; it skips or fails t when that is impossible.
func get(t testing.TB) *server {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("pgtest: call pgtest.Main(m) from the package's TestMain, so that the test cluster is stopped at the end")
	}
	once.Do(func() { srv, srvErr = start() })
	if srvErr != nil {
		if skip && os.Getenv("CI") == "" {
			t.Skipf("pgtest: %v", srvErr)
		}
		t.Fatalf("pgtest: %v", srvErr)
	}
	return srv
}

func start() (_ *server, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := &server{}
	defer func() {
		if err != nil {
			_ = s.close()
		}
	}()
	if s.baseURL = os.Getenv(EnvURL); s.baseURL == "" {
		binDir, err := findBinDir()
		if err != nil {
			skip = true
			return nil, err
		}
		pruneStale()
		if s.tempDir, err = os.MkdirTemp("", "ferry-pgtest-"); err != nil {
			return nil, err
		}
		// The cluster's user (not root) must be able to enter the folder.
		if err := os.Chmod(s.tempDir, 0o755); err != nil {
			return nil, err
		}
		s.cluster, err = pgcluster.Start(ctx, pgcluster.Options{
			Dir: filepath.Join(s.tempDir, "pg"), BinDir: binDir, User: os.Getenv("FERRY_PG_USER"), Ephemeral: true,
		})
		if err != nil {
			return nil, err
		}
		s.baseURL = s.cluster.URL("postgres")
	}
	if s.admin, err = pgxpool.New(ctx, s.baseURL); err != nil {
		return nil, fmt.Errorf("connect to %s: %w", EnvURL, err)
	}
	prefix := fmt.Sprintf("ferrytest_%d_", os.Getpid())
	s.template = prefix + "template"
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{s.template}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create template database: %w", err)
	}
	tplPool, err := pgxpool.New(ctx, withDatabase(s.baseURL, s.template))
	if err != nil {
		return nil, fmt.Errorf("connect to template database: %w", err)
	}
	_, err = migrations.Apply(ctx, tplPool, nil)
	tplPool.Close() // CREATE DATABASE ... TEMPLATE refuses a template that has sessions
	if err != nil {
		return nil, fmt.Errorf("migrate template database: %w", err)
	}
	s.sharedDB = prefix + "shared"
	if err := s.create(ctx, s.sharedDB, s.template); err != nil {
		return nil, err
	}
	sharedCfg, err := pgxpool.ParseConfig(withDatabase(s.baseURL, s.sharedDB))
	if err != nil {
		return nil, err
	}
	sharedCfg.MaxConns = 32 // each Tx holds a connection for its whole test
	if s.shared, err = pgxpool.NewWithConfig(ctx, sharedCfg); err != nil {
		return nil, fmt.Errorf("connect to shared database: %w", err)
	}
	return s, nil
}

func (s *server) create(ctx context.Context, name, template string) error {
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	for attempt := 0; ; attempt++ {
		_, err := s.admin.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		// 55006: the template is briefly in use (a session closing after migration); try again.
		if errors.As(err, &pgErr) && pgErr.Code == "55006" && attempt < 50 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if err != nil {
			return fmt.Errorf("create database %s: %w", name, err)
		}
		return nil
	}
}

func (s *server) createDB(t testing.TB, template string) string {
	t.Helper()
	name := fmt.Sprintf("ferrytest_%d_%d", os.Getpid(), counter.Add(1))
	ctx := context.Background()
	if err := s.create(ctx, name, template); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if _, err := s.admin.Exec(context.Background(), "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return withDatabase(s.baseURL, name)
}

func (s *server) close() error {
	var errs []error
	ctx := context.Background()
	if s.shared != nil {
		s.shared.Close()
	}
	if s.admin != nil {
		if s.cluster == nil { // a private cluster goes away whole; an external server keeps only what it had
			for _, db := range []string{s.sharedDB, s.template} {
				if db == "" {
					continue
				}
				if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)"); err != nil {
					errs = append(errs, err)
				}
			}
		}
		s.admin.Close()
	}
	if s.cluster != nil {
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := s.cluster.Stop(stopCtx); err != nil {
			errs = append(errs, err)
		}
	}
	if s.tempDir != "" {
		if err := os.RemoveAll(s.tempDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pruneStale removes the folders of test clusters whose test binary was killed (a timeout, Ctrl-C twice): older
// than an hour and with no live postmaster. Their servers stopped themselves (pgcluster's parent-death signal).
func pruneStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "ferry-pgtest-*"))
	for _, dir := range dirs {
		st, err := os.Stat(dir)
		if err != nil || time.Since(st.ModTime()) < time.Hour {
			continue
		}
		if pidFile, err := os.ReadFile(filepath.Join(dir, "pg", "data", "postmaster.pid")); err == nil {
			pid, _ := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
			if pid > 0 && syscall.Kill(pid, 0) == nil {
				continue
			}
		}
		_ = os.RemoveAll(dir)
	}
}

// withDatabase points a connection string (URL or key=value form) at another database on the same server.
func withDatabase(connString, database string) string {
	if strings.Contains(connString, "://") {
		if u, err := url.Parse(connString); err == nil {
			u.Path = "/" + database
			u.RawPath = ""
			return u.String()
		}
	}
	return connString + " dbname='" + strings.ReplaceAll(database, "'", `\'`) + "'"
}
