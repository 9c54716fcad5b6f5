package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ferryhq/ferry/app/auth"
	"github.com/ferryhq/ferry/app/events"
	"github.com/ferryhq/ferry/app/githubapp"
	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/app/web"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/netpolicy"
	"github.com/ferryhq/ferry/internal/protect"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// mountWeb mounts the signed-in part of the app on mux as its fallback route, behind auth.Middleware: the
// account pages (app/auth), the dashboard with its live updates (app/web, app/events) and the static assets.
// Routes mux already has (webhooks, /healthz, /metrics) stay outside the middleware. It starts the one
// LISTEN connection of this process, which stops when ctx ends. It returns the projects service, which the
// check runs' buttons use too.
func mountWeb(ctx context.Context, cfg Config, pool *pgxpool.Pool, cipher *store.EnvCipher, rc *river.Client[pgx.Tx], gh *githubapp.Live, mux *http.ServeMux, logger *slog.Logger) (*projects.Service, error) {
	st := store.New(pool)
	var protectionKey []byte
	if cfg.ProtectionKeyFile != "" {
		data, err := os.ReadFile(cfg.ProtectionKeyFile)
		if err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "read --protection-key-file: %w", err)
		}
		if protectionKey, err = protect.LoadKeyFile(data); err != nil {
			return nil, err
		}
	}
	blobs, err := storage.Open(ctx, cfg.Storage)
	if err != nil {
		return nil, err
	}
	sites := site.NewStore(blobs)
	a, err := auth.New(auth.Config{Domain: cfg.Domain, ProtectionKey: protectionKey, Domains: sites, Store: st, PublicURL: cfg.PublicURL, Logger: logger, Render: web.Render,
		GitHubClient: gh.OAuthClient, GitHubURL: cfg.GitHubURL, GitHubAPIURL: cfg.GitHubAPIURL,
		Signup: cfg.Signup, SignupEmailDomains: cfg.SignupEmailDomains, SignupGitHubOrgs: cfg.SignupGitHubOrgs})
	if err != nil {
		return nil, err
	}
	go a.Run(ctx, 0) // deletes expired sessions and old failed log-ins until ctx ends
	if cfg.DevSignIn != nil {
		link, err := a.OneTimeLink(ctx, "dev@localhost")
		if err != nil {
			return nil, err
		}
		cfg.DevSignIn(link)
	} else if link, err := a.FirstAccountInvite(ctx); err != nil {
		return nil, err
	} else if link != "" {
		// Only the operator reads this log; the link works once, for 7 days.
		logger.WarnContext(ctx, "no accounts yet and sign-up is not open: the first account signs up with this one-time invite link", "signup", a.Signup(), "link", link)
	}
	svc, err := newProjects(cfg, st, rc, sites, cipher, gh, logger)
	if err != nil {
		return nil, err
	}
	go svc.DomainWatch(ctx, cmp.Or(cfg.DomainCheckInterval, 30*time.Second))
	hub, err := events.New(events.Config{ConnConfig: pool.Config().ConnConfig, Logger: logger})
	if err != nil {
		return nil, err
	}
	go func() { _ = hub.Run(ctx) }() // returns nil when ctx ends; connection losses are logged and retried
	dash, err := web.NewDashboard(web.DashboardConfig{Projects: svc, Auth: a,
		Streams: &events.Streams{Hub: hub, Store: st, Logger: logger}})
	if err != nil {
		return nil, err
	}
	appPage, err := web.NewGitHubAppPage(web.GitHubAppConfig{Setup: gh, Owner: st.UserFirstID, PublicURL: cfg.PublicURL,
		GitHubURL: cfg.GitHubURL, GitHub: ghreport.Config{APIURL: cfg.GitHubAPIURL, Logger: logger}, Logger: logger})
	if err != nil {
		return nil, err
	}
	ui := http.NewServeMux()
	a.Routes(ui)
	dash.Routes(ui)
	appPage.Routes(ui)
	if err := mountAPI(ui, svc, logger); err != nil {
		return nil, err
	}
	ui.Handle("GET /static/", web.Assets())
	var h http.Handler = web.SecurityHeaders(a.Middleware(ui))
	if cfg.CanonicalHost && cfg.PublicURL != "" {
		if h, err = canonicalHost(cfg.PublicURL, h); err != nil {
			return nil, err
		}
	}
	mux.Handle("/", h)
	return svc, nil
}

// canonicalHost sends a browser that asks for a dashboard page on another host name than publicURL's (for
// example http://localhost:8080 under `ferry dev`) to the same path on publicURL, before any cookie is set: a
// cookie set for "localhost" would go to every port of localhost, so a build listening on one would receive
// it. Only GET and HEAD move; the API (bearer tokens, no cookies), webhooks and the build event stream answer
// on any host name, as scripts call them.
func canonicalHost(publicURL string, next http.Handler) (http.Handler, error) {
	pu, err := url.Parse(publicURL)
	if err != nil {
		return nil, fmt.Errorf("canonical host: %w", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Host, pu.Host) && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
			!strings.HasPrefix(r.URL.Path, "/api/") {
			http.Redirect(w, r, publicURL+auth.LocalPath(r.URL.RequestURI()), http.StatusTemporaryRedirect)
			return
		}
		next.ServeHTTP(w, r)
	}), nil
}

// tokenSource hands out GitHub App installation tokens: *ghreport.App, or a fake in tests.
type tokenSource interface {
	InstallationToken(ctx context.Context, installationID int64) (string, error)
}

// cloneTokens is projects.Config.Tokens: "deploy now" looks up a branch with `git ls-remote`, which needs the
// installation's token on a private repository, exactly as the build's clone does. nil (no App configured)
// looks branches up anonymously.
func cloneTokens(ts tokenSource) func(ctx context.Context, installationID int64) (string, error) {
	if ts == nil {
		return nil
	}
	return ts.InstallationToken
}

// newProjects is the projects service that the dashboard and the API share. tokens may be nil.
func newProjects(cfg Config, st *store.Store, rc *river.Client[pgx.Tx], sites *site.Store, cipher *store.EnvCipher, tokens tokenSource, logger *slog.Logger) (*projects.Service, error) {
	var dns projects.Resolver
	if cfg.DNSServer != "" {
		dns = projects.ResolverAt(cfg.DNSServer)
	}
	return projects.New(projects.Config{Store: st, River: rc, Site: sites, Domain: cfg.Domain, PublicURL: cfg.PublicURL,
		Logger: logger, EnvCipher: cipher, AllowLocalRepos: cfg.AllowLocalRepos, LocalReposDir: cfg.LocalReposDir, Tokens: cloneTokens(tokens), DNS: dns,
		GitPolicy:        netpolicy.Policy{Allow: cfg.GitAllowRanges, AllowLoopback: cfg.GitAllowLoopback},
		AllowInsecureGit: cfg.GitAllowHTTP, Retention: cfg.Retention})
}
