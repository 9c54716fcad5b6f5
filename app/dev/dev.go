// Package dev is `ferry dev`: the whole of Ferry on one machine, in one process, with nothing to set up. It
// starts a private PostgreSQL in .ferry/postgres (unless --database-url is given), keeps sites in
// .ferry/storage, and runs the App (webhooks, API, dashboard, the queue and the local sandboxed builder) next to
// the proxy, so that a newcomer's first command shows the real system rather than a toy version of it.
package dev

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/app"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/flagenv"
	"github.com/ferryhq/ferry/internal/pgcluster"
	"github.com/ferryhq/ferry/internal/protect"
	"github.com/ferryhq/ferry/internal/storage"
	"github.com/ferryhq/ferry/proxy"
)

// About is the one line `ferry -h` shows for `ferry dev`.
const About = "everything on one machine: database, app, builder and proxy (start here)"

const about = `Runs all of Ferry on this machine in one process: a private PostgreSQL in DIR/postgres (unless
--database-url is given), file storage in DIR/storage, the App with its dashboard, API and webhook intake on
--listen, the local sandboxed builder, and the proxy on --proxy-listen serving http://<project>.localhost.
Env vars are encrypted with a key kept in DIR/secret.key. Data survives restarts. Ctrl-C stops everything,
PostgreSQL included. The banner prints a one-time link that signs in as dev@localhost.

Without a GitHub App it still deploys a git URL or a local repository (from the dashboard, or with ferry
deploy and an API token from the tokens page). Create the GitHub App in three
clicks from the dashboard's /settings/github-app page (the banner links it), or give an existing App's
--github-app-id and --github-private-key-file; either way, forward its webhooks to /webhooks/github.`

// databaseName is the database `ferry dev` creates in its private cluster.
const databaseName = "ferry"

// Config is what `ferry dev` runs with.
type Config struct {
	// Dir holds everything ferry dev keeps: postgres/, storage/, webhook-secret and secret.key (the key that
	// encrypts env vars). Default ".ferry".
	Dir string
	// Listen is the App's address. Default "127.0.0.1:8080": loopback only, so that nobody else on the network
	// reaches the dashboard, its sign-in link or its local repositories.
	Listen string
	// ProxyListen is the proxy's address. Default "127.0.0.1:8081".
	ProxyListen string
	// Domain is what site host names end in. Default "localhost", which browsers resolve to loopback.
	Domain string
	// DatabaseURL, when set, is used instead of the private cluster.
	DatabaseURL string
	// Storage, when set, is used instead of file storage in Dir/storage.
	Storage string
	// PublicURL is the dashboard's URL, in log links and the sign-in link. Default: http://app.localhost:<App
	// port>, a host name of its own, so that the dashboard's cookies go to no other local server: a cookie for
	// plain "localhost" would reach every port of localhost, a build's listener included.
	PublicURL string
	// LocalRepos is the folder whose git repositories may be deployed by path or file:// URL. Default: the
	// current directory.
	LocalRepos string
	// Signup is who may create an account (auth.Signup*). Default "closed": the banner's link signs in
	// dev@localhost, the first user, and nobody else signs up.
	Signup string
	// WebhookSecret is the GitHub App's webhook secret. Default: a random one kept in Dir/webhook-secret.
	WebhookSecret string
	// GitHubAppID, GitHubPrivateKey and GitHubAPIURL are passed to the App as they are (app.Config).
	GitHubAppID      int64
	GitHubPrivateKey []byte
	GitHubAPIURL     string
	// Concurrency is the number of builds run at once. Default 2.
	Concurrency int
	// Build is passed on to every build (--build-* flags). Its clones may always reach loopback, where a
	// local git server runs; the builds themselves may not (the dashboard is there).
	Build app.BuildConfig
	// LogLevel is the least level of Ferry's own log lines that ferry dev prints (debug, info, warn, error).
	// Default info; River's own lines (its queue's periodic job counts) show from warn, or all with debug.
	LogLevel slog.Level
}

// Command is `ferry dev`.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr, os.Getenv)
	if err != nil {
		return err
	}
	logger := slog.New(newLevelHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}), cfg.LogLevel))
	return Run(ctx, cfg, stdout, logger)
}

func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (Config, error) {
	fs := flagenv.NewFlagSet("dev", "ferry dev [flags]", about, stderr)
	var c Config
	fs.StringVar(&c.Dir, "dir", ".ferry", "`folder` for the database, the sites, the webhook secret and the env var key")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "`address` of the App: dashboard, API and webhooks. WARNING: another address (:8080, 0.0.0.0:8080) lets everyone on the network reach the dashboard and deploy from --local-repos; then pass --public-url and keep --signup closed")
	fs.StringVar(&c.ProxyListen, "proxy-listen", "127.0.0.1:8081", "`address` of the proxy that serves the sites (another address shows them to the network)")
	fs.StringVar(&c.LocalRepos, "local-repos", ".", "`folder` whose git repositories (and only those) may be deployed by path or file:// URL")
	fs.StringVar(&c.Signup, "signup", "closed", "who may create an account (`mode`): closed (only dev@localhost, through the banner's link), invite (with a link made on the account page) or open")
	fs.StringVar(&c.Domain, "domain", "localhost", "domain `D` that site host names end in (<project>.D)")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL `URL` to use instead of the private cluster in DIR/postgres")
	fs.StringVar(&c.Storage, "storage", "", "storage `URL` to use instead of file storage in DIR/storage")
	fs.StringVar(&c.PublicURL, "public-url", "", "the dashboard's `URL`, for the sign-in link and build log links (default http://app.localhost:<port of --listen>)")
	fs.StringVar(&c.WebhookSecret, "webhook-secret", "", "the GitHub App's webhook `secret` (default: a random one kept in DIR/webhook-secret)")
	fs.Int64Var(&c.GitHubAppID, "github-app-id", 0, "the GitHub App's `id`, with --github-private-key-file or --github-private-key (default: no GitHub App; nothing is reported to GitHub)")
	privateKey := app.GitHubKeyFlags(fs)
	fs.StringVar(&c.GitHubAPIURL, "github-api-url", "https://api.github.com", "GitHub REST API root `URL` (https://HOST/api/v3 for GitHub Enterprise Server)")
	fs.IntVar(&c.Concurrency, "concurrency", 2, "`number` of builds run at once")
	buildFlagsDone := app.BuildFlags(fs, &c.Build)
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "least `level` of log lines shown: debug, info, warn or error (River's queue logs from warn unless debug)")
	if err := flagenv.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, ferry.Errorf(ferry.EINVALID, "%w", err)
	}
	if err := buildFlagsDone(); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, ferry.Errorf(ferry.EINVALID, "unexpected arguments %q (ferry dev takes flags only; see ferry dev -h)", strings.Join(fs.Args(), " "))
	}
	key, err := privateKey(getenv)
	if err != nil {
		return c, err
	}
	c.GitHubPrivateKey = key
	if c.Concurrency < 1 {
		return c, ferry.Errorf(ferry.EINVALID, "--concurrency %d: run at least 1 build at once", c.Concurrency)
	}
	return c, nil
}

// withDefaults fills in what Run needs: loopback listeners, so that nothing reaches ferry dev from the network
// unless the operator says so.
func (c Config) withDefaults() Config {
	if c.Dir == "" {
		c.Dir = ".ferry"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.ProxyListen == "" {
		c.ProxyListen = "127.0.0.1:8081"
	}
	if c.LocalRepos == "" {
		c.LocalRepos = "."
	}
	if c.Domain == "" {
		c.Domain = "localhost"
	}
	return c
}

// Run starts everything, prints where to find it on stdout, and serves until ctx ends (Ctrl-C). It then stops
// the App and the proxy, and its PostgreSQL last.
func Run(ctx context.Context, cfg Config, stdout io.Writer, logger *slog.Logger) (err error) {
	cfg = cfg.withDefaults()
	localRepos, err := filepath.Abs(cfg.LocalRepos)
	if err != nil {
		return fmt.Errorf("find --local-repos: %w", err)
	}
	if fi, err := os.Stat(localRepos); err != nil || !fi.IsDir() {
		return ferry.Errorf(ferry.EINVALID, "--local-repos %s is not a folder", localRepos)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return fmt.Errorf("find --dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ferry.Errorf(ferry.EINVALID, "create --dir %s: %w", dir, err)
	}

	// Listen first: a port in use is the likeliest failure, and it should not cost a database start.
	appLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "listen on %s for the App (is another ferry running? pass another --listen): %w", cfg.Listen, err)
	}
	defer appLn.Close()
	proxyLn, err := net.Listen("tcp", cfg.ProxyListen)
	if err != nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "listen on %s for the proxy (pass another --proxy-listen): %w", cfg.ProxyListen, err)
	}
	defer proxyLn.Close()

	dbURL := cfg.DatabaseURL
	if dbURL == "" {
		fmt.Fprintf(stdout, "Starting PostgreSQL in %s ...\n", filepath.Join(dir, "postgres"))
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "postgres")})
		if err != nil {
			return fmt.Errorf("start the private PostgreSQL (or pass --database-url): %w", err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if serr := cluster.Stop(sctx); serr != nil {
				err = errors.Join(err, serr)
			}
		}()
		if dbURL, err = ensureDatabase(ctx, cluster); err != nil {
			return err
		}
	}

	storageURL := cfg.Storage
	if storageURL == "" {
		root := filepath.Join(dir, "storage")
		if err := os.MkdirAll(root, 0o755); err != nil {
			return fmt.Errorf("create storage folder: %w", err)
		}
		storageURL = "file://" + root
	}
	secret, secretFile, err := webhookSecret(cfg.WebhookSecret, dir)
	if err != nil {
		return err
	}
	// Env vars are encrypted at rest even in dev; the key stays in dir, so they survive restarts.
	keyFile := filepath.Join(dir, "secret.key")
	if _, err := store.EnsureSecretKeyFile(keyFile); err != nil {
		return err
	}
	// Protected sites: the app signs members' hand-offs with this key and the proxy checks them.
	protectionKeyFile := filepath.Join(dir, "protection.key")
	if _, err := store.EnsureSecretKeyFile(protectionKeyFile); err != nil {
		return err
	}
	protectionKey, err := os.ReadFile(protectionKeyFile)
	if err != nil {
		return fmt.Errorf("read %s: %w", protectionKeyFile, err)
	}
	// Scripts (ferry deploy, webhook forwarders) call the API on the address itself; browsers use the
	// dashboard's own host name, app.localhost, which the App sends them to (CanonicalHost).
	appURL := "http://" + displayAddr(appLn.Addr())
	_, appPort, _ := net.SplitHostPort(appLn.Addr().String())
	dashURL := "http://app.localhost:" + appPort
	// The App prints site URLs; they must name the proxy's port to be clickable.
	siteDomain := cfg.Domain
	if _, port, _ := net.SplitHostPort(proxyLn.Addr().String()); port != "80" {
		siteDomain += ":" + port
	}
	publicURL := cfg.PublicURL
	if publicURL == "" {
		publicURL = dashURL
	}
	dashURL = strings.TrimSuffix(publicURL, "/")

	st, err := storage.Open(ctx, storageURL)
	if err != nil {
		return err
	}
	handoffKey, err := protect.LoadKeyFile(protectionKey)
	if err != nil {
		return err
	}
	px, err := proxy.New(proxy.Config{Storage: st, Domain: cfg.Domain, Log: logger.With("component", "proxy"),
		HandoffKey: handoffKey, SignInURL: dashURL})
	if err != nil {
		return err
	}
	defer px.Close()

	// One context for both servers: when either stops on its own, the other follows.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan struct{})
	appDone := make(chan error, 1)
	// The App makes the link before it serves, in its own goroutine; close(ready) publishes it to this one.
	var signIn, appSetup string
	webhookSecret, fallbackSecret := secret, ""
	if cfg.WebhookSecret == "" && cfg.GitHubAppID == 0 {
		// The generated secret must not win over the secret of an App created from the dashboard.
		webhookSecret, fallbackSecret = "", secret
	}
	go func() {
		appDone <- app.Run(rctx, app.Config{
			Listener: appLn, DatabaseURL: dbURL, Storage: storageURL, Domain: siteDomain, PublicURL: publicURL,
			GitHubAppID: cfg.GitHubAppID, GitHubPrivateKey: cfg.GitHubPrivateKey, GitHubAPIURL: cfg.GitHubAPIURL,
			WebhookSecret: webhookSecret, FallbackWebhookSecret: fallbackSecret, Concurrency: cfg.Concurrency, ShutdownTimeout: 10 * time.Second,
			SecretKeyFile: keyFile, ProtectionKeyFile: protectionKeyFile, AllowLocalRepos: true, LocalReposDir: localRepos, Signup: cfg.Signup, CanonicalHost: true,
			GitAllowLoopback: true, GitAllowHTTP: true,
			Build:       devBuild(cfg.Build),
			DevSignIn:   func(link string) { signIn = link },
			NoGitHubApp: func(setupURL string) { appSetup = setupURL },
			Ready:       func(string) { close(ready) },
		}, logger)
		cancel()
	}()
	proxyDone := make(chan error, 1)
	go func() {
		proxyDone <- proxy.Serve(rctx, proxyLn, px, 5*time.Second)
		cancel()
	}()

	select {
	case <-ready:
		printBanner(stdout, banner{app: appURL, dashboard: dashURL, localRepos: localRepos, exposed: !loopback(appLn.Addr()) || !loopback(proxyLn.Addr()), proxyAddr: proxyLn.Addr(), domain: cfg.Domain, dir: dir, dbURL: dbURL,
			ownDB: cfg.DatabaseURL == "", storage: storageURL, secretFile: secretFile, keyFile: keyFile,
			github: appSetup == "", appFromDashboard: appSetup == "" && cfg.GitHubAppID == 0, appSetup: appSetup, signIn: signIn})
	case <-rctx.Done():
	}
	<-rctx.Done()
	fmt.Fprintln(stdout, "Stopping Ferry ...")
	return errors.Join(<-appDone, <-proxyDone)
}

// ensureDatabase creates the ferry database in a fresh cluster and returns its URL.
func ensureDatabase(ctx context.Context, cluster *pgcluster.Cluster) (string, error) {
	conn, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		return "", ferry.Errorf(ferry.EUNAVAILABLE, "connect to the private PostgreSQL (its log: %s): %w", cluster.LogPath(), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, databaseName).Scan(&exists); err != nil {
		return "", fmt.Errorf("look for the %s database: %w", databaseName, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+databaseName); err != nil {
			return "", fmt.Errorf("create the %s database: %w", databaseName, err)
		}
	}
	return cluster.URL(databaseName), nil
}

// webhookSecret returns the secret to check deliveries with: the given one, else the one kept in dir, else a
// new random one written there (0600), so that a GitHub App or a forwarder configured once keeps working.
func webhookSecret(given, dir string) (secret, file string, err error) {
	if given != "" {
		return given, "", nil
	}
	file = filepath.Join(dir, "webhook-secret")
	b, err := os.ReadFile(file)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), file, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("read the webhook secret: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", "", fmt.Errorf("make a webhook secret: %w", err)
	}
	secret = hex.EncodeToString(raw)
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("keep the webhook secret: %w", err)
	}
	return secret, file, nil
}

// loopback reports whether a listener's address is on loopback only.
func loopback(a net.Addr) bool {
	host, _, err := net.SplitHostPort(a.String())
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// displayAddr turns a listener's address into what a browser on this machine opens: a wildcard or loopback
// host becomes "localhost".
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || ip == nil || ip.IsUnspecified() || ip.IsLoopback() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

type banner struct {
	app        string
	dashboard  string
	localRepos string
	exposed    bool
	proxyAddr  net.Addr
	domain     string
	dir        string
	dbURL      string
	ownDB      bool
	storage    string
	secretFile string
	keyFile    string
	github     bool
	appSetup   string // the dashboard page that creates the GitHub App, when none is configured
	// appFromDashboard: the App was created from the dashboard, and deliveries are signed with its own secret.
	appFromDashboard bool
	signIn           string
}

func printBanner(w io.Writer, b banner) {
	_, port, _ := net.SplitHostPort(b.proxyAddr.String())
	sites := fmt.Sprintf("http://<project>.%s:%s", b.domain, port)
	previews := fmt.Sprintf("http://pr-<n>--<project>.%s:%s", b.domain, port)
	health := "http://" + displayAddr(b.proxyAddr) + "/healthz"
	db := "your --database-url"
	if b.ownDB {
		db = "private PostgreSQL in " + filepath.Join(b.dir, "postgres") + " (" + b.dbURL + ")"
	}
	fmt.Fprintf(w, `
Ferry is running.

  Dashboard:          %s
  API:                %s   (for ferry deploy --server)
  Sites:              %s   (previews: %s)
  Proxy health:       %s
  Webhooks:           POST %s/webhooks/github
  Database:           %s
  Storage:            %s
  Env var key:        %s
  Local repositories: %s and below
`, b.dashboard, b.app, sites, previews, health, b.app, db, b.storage, b.keyFile, b.localRepos)
	if b.exposed {
		fmt.Fprint(w, `
WARNING: Ferry listens beyond this machine (--listen or --proxy-listen is not a loopback address). Anyone who
reaches it can try to sign in, and the sign-in link below signs in whoever opens it first.
`)
	}
	if b.signIn != "" {
		fmt.Fprintf(w, `
Sign in as dev@localhost (the link works once, for 15 minutes; restart for a new one):
  %s
Then create an API token at %s/account/tokens and deploy from a terminal, with the token in FERRY_TOKEN
(kept out of your shell history and ps):
  export FERRY_TOKEN=...   # or FERRY_TOKEN_FILE=path
  ferry deploy --server %s <git-url|path>
`, b.signIn, b.dashboard, b.app)
	}
	secret := "the one given with --webhook-secret"
	if b.secretFile != "" {
		secret = b.secretFile
	}
	if b.appFromDashboard {
		secret = "the App's own, stored when the dashboard created it"
	}
	if b.github {
		fmt.Fprintf(w, `
GitHub App: deliveries must reach %s/webhooks/github, signed with the webhook secret (%s).
A laptop is not reachable from GitHub: point the App's webhook URL at a forwarding channel (for example a
smee.io channel) and run its client here, for example:
  npx smee-client --url https://smee.io/<channel> --target %s/webhooks/github
`, b.app, secret, b.app)
	} else {
		fmt.Fprintf(w, `
No GitHub App configured: nothing is reported to GitHub. Deploy a public git URL or a local folder from the
dashboard, or with: ferry deploy <git-url|path>
Create the GitHub App in three clicks (signed in as dev@localhost), no restart needed:
  %s
Or connect an existing App: restart with --github-app-id and --github-private-key-file, set the App's webhook
secret to the one in %s, and forward its webhooks to %s/webhooks/github (see ferry dev -h).
`, b.appSetup, secret, b.app)
	}
	fmt.Fprintln(w, "\nPress Ctrl-C to stop.")
}

// devBuild lets the clones of `ferry dev` reach a git server on this machine (loopback), which is where dev
// repositories live; the builds' own egress stays public-only, so a build cannot reach the dashboard.
func devBuild(b app.BuildConfig) app.BuildConfig {
	b.CloneAllow = append([]string{"127.0.0.0/8", "::1"}, b.CloneAllow...)
	return b
}
