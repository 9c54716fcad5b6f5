// Package app is `ferry app`, the GitHub App server: webhook intake (app/webhook), the River queue with its
// workers (app/jobs) and builders (app/builder), /healthz and Prometheus /metrics, all on one PostgreSQL.
package app

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ferryhq/ferry/app/builder"
	"github.com/ferryhq/ferry/app/buildevents"
	"github.com/ferryhq/ferry/app/githubapp"
	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/app/web"
	"github.com/ferryhq/ferry/app/webhook"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
	"github.com/ferryhq/ferry/internal/workroot"
	"github.com/ferryhq/ferry/migrations"
)

// About is the one line `ferry -h` shows for `ferry app`.
const About = "the GitHub App server: dashboard, REST API, webhooks, build queue and workers"

// Command is `ferry app`.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr, os.Getenv)
	if err != nil {
		return err
	}
	return Run(ctx, cfg, slog.Default())
}

// Run serves until ctx ends, then stops gracefully: it stops accepting requests, lets open ones finish, and
// gives running jobs until cfg.ShutdownTimeout before canceling them (River retries them on the next start).
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if logger == nil {
		logger = slog.Default()
	}

	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := migrations.Apply(ctx, pool, logger)
	if err != nil {
		return err
	}
	for _, s := range res.Steps {
		logger.InfoContext(ctx, "migration applied", "step", s.String())
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newQueueCollector(pool, logger))

	events, err := buildevents.New(buildevents.Config{DB: pool, Logger: logger})
	if err != nil {
		return err
	}
	cipher, err := envCipher(ctx, cfg, logger)
	if err != nil {
		return err
	}
	gh, err := githubApp(ctx, cfg, pool, cipher, logger)
	if err != nil {
		return err
	}
	go gh.Run(ctx, 0) // other replicas pick up an App created through this one's dashboard, and vice versa
	// Local builds keep their workspaces in a folder of this process's own, and what a crashed run left in
	// the temp folder ($TMPDIR/ferry-work) is removed first (issue 11).
	work, err := workroot.Open("", logger)
	if err != nil {
		return err
	}
	defer work.Close()
	riverCfg, err := workers(ctx, cfg, pool, cipher, events, gh, reg, work.Dir, logger)
	if err != nil {
		return err
	}
	// Crash recovery (issue 4): a stable client id per instance, and its previous life's running jobs taken back.
	instanceAddr := cfg.Listen
	if cfg.Listener != nil {
		instanceAddr = cfg.Listener.Addr().String()
	}
	inst, err := jobs.Recover(ctx, pool, jobs.InstanceName(instanceAddr), logger)
	if err != nil {
		return err
	}
	defer inst.Release()
	riverCfg.ID = inst.ID
	rc, err := river.NewClient(riverpgxv5.New(pool), riverCfg)
	if err != nil {
		return fmt.Errorf("create job queue: %w", err)
	}
	// River hard-stops when its start context ends; the stop below is the graceful one.
	if err := rc.Start(context.WithoutCancel(ctx)); err != nil {
		return &ferry.Error{Code: ferry.EUNAVAILABLE, Message: "start job queue", Err: err}
	}
	defer stopRiver(rc, cfg.ShutdownTimeout, logger)

	intakeStorage, err := storage.Open(ctx, cfg.Storage)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/internal/builds/", events.Handler())
	mux.HandleFunc("GET /healthz", healthz(pool))
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	mux.Handle("GET /metrics", metricsAuth(cfg.MetricsToken, metrics))
	if err := serveMetrics(ctx, cfg, metrics, logger); err != nil {
		return err
	}
	svc, err := mountWeb(ctx, cfg, pool, cipher, rc, gh, mux, logger)
	if err != nil {
		return err
	}
	intake, err := webhook.New(webhook.Config{
		SecretFunc: gh.WebhookSecret, Pool: pool, River: rc, Site: site.NewStore(intakeStorage), MaxBodyBytes: cfg.MaxBodyBytes,
		PendingBytes: cfg.WebhookPendingBytes,
		GitHubURL:    cfg.GitHubURL, Logger: logger, Registerer: reg, Actions: svc,
	})
	if err != nil {
		return err
	}
	mux.Handle("/webhooks/github", intake)

	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return ferry.Errorf(ferry.EUNAVAILABLE, "listen on %s (is another server using it? pass another --listen): %w", cfg.Listen, err)
		}
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10, // GitHub's headers are a few hundred bytes; 1 MiB per connection adds up
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.InfoContext(ctx, "ferry app listening", "addr", ln.Addr().String(), "config", cfg.String())
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr().String())
	}

	select {
	case err := <-served:
		return ferry.Errorf(ferry.EUNAVAILABLE, "serve HTTP: %w", err)
	case <-ctx.Done():
	}
	logger.Info("ferry app stopping")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("open requests cut at shutdown", "err", err)
	}
	return nil
}

// githubApp is the one GitHub App of this process, as it is now: flags, or the App created from the dashboard
// (app/githubapp), shared by the webhook verifier, the workers (reports, clone tokens), the projects service
// (deploy now on private repositories) and GitHub sign-in. Saving an App from the dashboard swaps it in.
func githubApp(ctx context.Context, cfg Config, pool *pgxpool.Pool, cipher *store.EnvCipher, logger *slog.Logger) (*githubapp.Live, error) {
	live, err := githubapp.New(ctx, githubapp.Config{Store: store.New(pool), Cipher: cipher, Logger: logger,
		GitHub: ghreport.Config{APIURL: cfg.GitHubAPIURL, Logger: logger},
		Static: githubapp.Static{AppID: cfg.GitHubAppID, PrivateKey: cfg.GitHubPrivateKey, WebhookSecret: cfg.WebhookSecret,
			ClientID: cfg.GitHubClientID, ClientSecret: cfg.GitHubClientSecret, FallbackWebhookSecret: cfg.FallbackWebhookSecret}})
	if err != nil {
		return nil, err
	}
	if live.Current().App == nil {
		setup := cfg.PublicURL + web.GitHubAppPath
		logger.WarnContext(ctx, "no GitHub App configured: nothing is reported to GitHub; the server's owner can create the App from the dashboard, or pass --github-app-id", "page", setup)
		if cfg.NoGitHubApp != nil {
			cfg.NoGitHubApp(setup)
		}
	}
	return live, nil
}

// workers builds the River configuration with every worker registered (app/jobs).
func workers(ctx context.Context, cfg Config, pool *pgxpool.Pool, cipher *store.EnvCipher, events *buildevents.Service, gh *githubapp.Live, reg prometheus.Registerer, workDir string, logger *slog.Logger) (*river.Config, error) {
	st, err := storage.Open(ctx, cfg.Storage)
	if err != nil {
		return nil, err
	}
	var b builder.Builder
	if cfg.Builder == "ecs" {
		ecsCfg := cfg.ECS
		ecsCfg.Grants, ecsCfg.EventsURL, ecsCfg.Logger = events, cfg.PublicURL, logger
		ecsCfg.EgressAllow, ecsCfg.CloneAllow = cfg.Build.EgressAllow, cfg.Build.CloneAllow
		if b, err = builder.NewECS(ctx, ecsCfg); err != nil {
			return nil, err
		}
	} else if b, err = builder.NewLocal(builder.LocalConfig{Command: cfg.BuildCommand, WorkDir: workDir,
		EgressAllow: cfg.Build.EgressAllow, CloneAllow: cfg.Build.CloneAllow,
		MaxDiskMiB: cfg.Build.MaxDiskMiB, MaxTotalMemoryMiB: cfg.Build.MaxTotalMemoryMiB}); err != nil {
		return nil, err
	}
	rcfg, err := jobs.ClientConfig(jobs.Deps{EnvCipher: cipher,
		Store: store.New(pool), Site: site.NewStore(st), Builder: b, GitHub: gh, Deliveries: gh,
		StorageURL: cfg.Storage, Domain: cfg.Domain, PublicURL: cfg.PublicURL, Logger: logger, Metrics: reg,
		Retention: cfg.Retention, RetentionInterval: cfg.RetentionInterval,
	}, cfg.Concurrency)
	if err != nil {
		return nil, err
	}
	if rcfg.Logger == nil || rcfg.Logger == logger {
		// Marked, so that a handler can tell River's own lines from Ferry's (ferry dev shows them from warn).
		rcfg.Logger = logger.With("component", "river")
	}
	return rcfg, nil
}

// stopRiver lets running jobs finish for up to timeout, then cancels them; canceled jobs are retried later.
func stopRiver(rc *river.Client[pgx.Tx], timeout time.Duration, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := rc.Stop(ctx)
	if err == nil {
		return
	}
	logger.Warn("running jobs did not finish in time; canceling them", "timeout", timeout, "err", err)
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if err := rc.StopAndCancel(cctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Error("stop job queue", "err", err)
	}
}

// openPool connects with room for intake bursts next to the workers, unless the URL sets pool_max_conns.
func openPool(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		// pgx's parse errors repeat the URL, password included; say only what is wrong.
		return nil, ferry.Errorf(ferry.EINVALID, "--database-url is not a valid PostgreSQL URL or key=value string")
	}
	if !strings.Contains(cfg.DatabaseURL, "pool_max_conns") {
		pcfg.MaxConns = int32(max(20, cfg.Concurrency+12))
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, &ferry.Error{Code: ferry.EUNAVAILABLE, Message: "connect to the database", Err: err}
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, &ferry.Error{Code: ferry.EUNAVAILABLE, Err: err,
			Message: fmt.Sprintf("connect to the database %s on %s:%d (check --database-url and that the server runs)", pcfg.ConnConfig.Database, pcfg.ConnConfig.Host, pcfg.ConnConfig.Port)}
	}
	return pool, nil
}

// metricsAuth guards /metrics on the main listener: it holds queue depths, webhook counts and the process's
// internals, which are the operator's business. With a token it needs "Authorization: Bearer <token>"
// (compared in constant time); without one it is not served there (--metrics-listen serves it elsewhere).
func metricsAuth(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if token == "" {
			http.Error(w, "/metrics is not served on this address: pass --metrics-token TOKEN (then send Authorization: Bearer TOKEN) or --metrics-listen ADDR", http.StatusNotFound)
			return
		}
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ferry metrics"`)
			http.Error(w, "/metrics needs Authorization: Bearer <the --metrics-token>", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveMetrics serves /metrics without a token on cfg.MetricsListen (or cfg.MetricsListener) until ctx ends,
// for scrapers on a private interface.
func serveMetrics(ctx context.Context, cfg Config, metrics http.Handler, logger *slog.Logger) error {
	ln := cfg.MetricsListener
	if ln == nil {
		if cfg.MetricsListen == "" {
			return nil
		}
		var err error
		if ln, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			return ferry.Errorf(ferry.EUNAVAILABLE, "listen on %s for /metrics (pass another --metrics-listen): %w", cfg.MetricsListen, err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("serve /metrics", "addr", ln.Addr().String(), "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	logger.InfoContext(ctx, "metrics listening", "addr", ln.Addr().String())
	return nil
}

// healthz answers 200 only while the database answers: a server that cannot record deliveries is not healthy.
func healthz(pool *pgxpool.Pool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := pool.Ping(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "database unreachable")
			return
		}
		fmt.Fprintln(w, "ok")
	}
}

// webURL derives the web root (for clone URLs) from the API root: api.github.com serves github.com, and GitHub
// Enterprise Server's https://HOST/api/v3 serves https://HOST.
func webURL(apiURL string) string {
	if apiURL == "" || strings.TrimSuffix(apiURL, "/") == ghreport.DefaultAPIURL {
		return "https://github.com"
	}
	return strings.TrimSuffix(strings.TrimSuffix(apiURL, "/"), "/api/v3")
}

// queueCollector reports River's job counts by queue and state at scrape time, so queue depth needs no
// bookkeeping in the workers.
type queueCollector struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	desc   *prometheus.Desc
}

func newQueueCollector(pool *pgxpool.Pool, logger *slog.Logger) *queueCollector {
	return &queueCollector{pool: pool, logger: logger, desc: prometheus.NewDesc("ferry_queue_jobs",
		"River jobs by queue and state (available and scheduled are the queue depth).", []string{"queue", "state"}, nil)}
}

// Describe sends the one metric this collector makes.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect counts the jobs; a database that does not answer in time leaves the metric out of this scrape.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rows, err := c.pool.Query(ctx, `SELECT queue, state::text, count(*) FROM river_job GROUP BY queue, state`)
	if err != nil {
		c.logger.Warn("metrics: count queued jobs", "err", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var queue, state string
		var n int64
		if err := rows.Scan(&queue, &state, &n); err != nil {
			c.logger.Warn("metrics: count queued jobs", "err", err)
			return
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), queue, state)
	}
	if err := rows.Err(); err != nil {
		c.logger.Warn("metrics: count queued jobs", "err", err)
	}
}
