// Package githubapp holds the GitHub App's credentials as they are now, for every part of `ferry app` that acts
// as the App: the webhook verifier (its secret), the workers and the projects service (the App's key, through
// ghreport), and GitHub sign-in (the OAuth client). They come from flags and FERRY_* variables, or from the App
// the dashboard created with the manifest flow (stored encrypted, app/store's github_app); Save swaps them in
// at once, so that a server set up from the dashboard needs no restart.
//
// Precedence, per group of credentials: a group given by flags or variables wins over the stored App's; the
// groups are the App id with its private key, the webhook secret, and the OAuth client id with its secret.
package githubapp

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
)

// Static is what flags and FERRY_* variables gave. Each group set here wins over the stored App's.
type Static struct {
	AppID         int64
	PrivateKey    []byte
	WebhookSecret string
	ClientID      string
	ClientSecret  string
	// FallbackWebhookSecret checks deliveries when neither the flags nor a stored App give a secret: ferry dev's
	// generated secret, for forwarders set up by hand.
	FallbackWebhookSecret string
}

// Config is what Live runs on.
type Config struct {
	Static Static
	// GitHub is the REST client configuration the App is made with (API URL, logger).
	GitHub ghreport.Config
	// Store reads and saves the App the dashboard created. Required.
	Store *store.Store
	// Cipher opens and seals the stored App's secrets (--secret-key-file). nil: no App can be stored, and a
	// stored one is ignored with a warning.
	Cipher *store.EnvCipher
	// Logger receives the switch to new credentials (never the credentials). Default slog.Default().
	Logger *slog.Logger
}

// Current is one consistent set of credentials. Read it once per use (Live.Current) and do not keep it: Save
// replaces it.
type Current struct {
	// App acts as the GitHub App; nil when no App is configured.
	App *ghreport.App
	// AppID and Slug name it; Slug is known only for a stored App. HTMLURL is its page on GitHub.
	AppID   int64
	Slug    string
	HTMLURL string
	// FromDashboard reports that the App id and key are the stored App's, not the flags'.
	FromDashboard bool
	// WebhookSecret checks deliveries; empty: deliveries cannot be checked yet.
	WebhookSecret []byte
	// ClientID and ClientSecret are the OAuth client of "Sign in with GitHub"; empty: sign-in with GitHub is off.
	ClientID     string
	ClientSecret string
}

// Live is the credentials as they are now, safe for concurrent use: readers load one pointer, Save swaps it.
type Live struct {
	cfg    Config
	cur    atomic.Pointer[Current]
	mu     sync.Mutex // serialises Save and Reload
	stored bool       // a stored App has been loaded: the row never changes afterwards
}

// New loads the stored App (if any) and returns the credentials holder. A bad key in the flags is EINVALID
// here, at start, rather than on the first webhook.
func New(ctx context.Context, cfg Config) (*Live, error) {
	if cfg.Store == nil {
		return nil, ferry.Errorf(ferry.EINVALID, "githubapp: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.GitHub.Logger == nil {
		cfg.GitHub.Logger = cfg.Logger
	}
	l := &Live{cfg: cfg}
	cur, err := l.merge(nil)
	if err != nil {
		return nil, err
	}
	l.cur.Store(cur)
	if err := l.Reload(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// Current returns the credentials now in force.
func (l *Live) Current() *Current { return l.cur.Load() }

// FlagsApp reports whether the flags name the App (--github-app-id): then the dashboard has nothing to create.
func (l *Live) FlagsApp() bool { return l.cfg.Static.AppID != 0 }

// CanStore reports whether an App created from the dashboard can be kept: that needs --secret-key-file.
func (l *Live) CanStore() bool { return l.cfg.Cipher != nil }

// merge builds the credentials from the flags and a stored App (nil: none), by the package's precedence.
func (l *Live) merge(stored *ghreport.AppCredentials) (*Current, error) {
	s := l.cfg.Static
	c := &Current{WebhookSecret: []byte(s.WebhookSecret), ClientID: s.ClientID, ClientSecret: s.ClientSecret}
	key := s.PrivateKey
	c.AppID = s.AppID
	if c.AppID == 0 && stored != nil {
		c.AppID, key, c.FromDashboard = stored.ID, []byte(stored.PrivateKeyPEM), true
		c.Slug, c.HTMLURL = stored.Slug, stored.HTMLURL
	}
	if c.AppID != 0 {
		app, err := ghreport.NewApp(l.cfg.GitHub, c.AppID, key)
		if err != nil {
			return nil, err
		}
		c.App = app
	}
	if len(c.WebhookSecret) == 0 && stored != nil {
		c.WebhookSecret = []byte(stored.WebhookSecret)
	}
	if len(c.WebhookSecret) == 0 {
		c.WebhookSecret = []byte(s.FallbackWebhookSecret)
	}
	if c.ClientID == "" && stored != nil {
		c.ClientID, c.ClientSecret = stored.ClientID, stored.ClientSecret
	}
	return c, nil
}

// Reload reads the stored App and swaps its credentials in, once: the stored App never changes after it is
// created, so later calls do nothing. Run calls it periodically, so that the other replicas follow the one
// whose dashboard created the App.
func (l *Live) Reload(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stored {
		return nil
	}
	row, err := l.cfg.Store.GitHubAppGet(ctx)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	if l.cfg.Cipher == nil {
		l.stored = true // warn once
		l.cfg.Logger.WarnContext(ctx, "a GitHub App was created from the dashboard, but without --secret-key-file its credentials cannot be read; it is not used", "app_id", row.AppID)
		return nil
	}
	creds, err := l.open(row)
	if err != nil {
		return err
	}
	return l.swap(ctx, creds)
}

// open decrypts a stored App.
func (l *Live) open(row *store.GitHubApp) (*ghreport.AppCredentials, error) {
	c := &ghreport.AppCredentials{ID: row.AppID, Slug: row.Slug, HTMLURL: row.HTMLURL, ClientID: row.ClientID}
	for _, f := range []struct {
		column string
		sealed []byte
		out    *string
	}{
		{store.AppSecretPrivateKey, row.PrivateKeySealed, &c.PrivateKeyPEM},
		{store.AppSecretWebhookSecret, row.WebhookSecretSealed, &c.WebhookSecret},
		{store.AppSecretClientSecret, row.ClientSecretSealed, &c.ClientSecret},
	} {
		v, err := l.cfg.Cipher.OpenAppSecret(f.column, f.sealed)
		if err != nil {
			return nil, err
		}
		*f.out = v
	}
	return c, nil
}

// swap makes creds current. The caller holds l.mu.
func (l *Live) swap(ctx context.Context, creds *ghreport.AppCredentials) error {
	cur, err := l.merge(creds)
	if err != nil {
		return err
	}
	l.cur.Store(cur)
	l.stored = true
	l.cfg.Logger.InfoContext(ctx, "GitHub App credentials from the dashboard in use", "app_id", creds.ID, "slug", creds.Slug,
		"key_from_dashboard", cur.FromDashboard)
	return nil
}

// Save stores the App that the manifest flow created (encrypted) and starts using it at once. Nothing is
// stored when the credentials do not work here (a key that does not parse) or when the server already has an
// App from the dashboard (ECONFLICT).
func (l *Live) Save(ctx context.Context, creds *ghreport.AppCredentials, userID int64) error {
	if l.cfg.Cipher == nil {
		return ferry.Errorf(ferry.EINVALID, "this server cannot keep a GitHub App's credentials: start it with --secret-key-file (the key that encrypts env vars)")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.merge(creds); err != nil { // refuse before storing anything
		return err
	}
	c := l.cfg.Cipher
	_, err := l.cfg.Store.GitHubAppCreate(ctx, store.GitHubApp{AppID: creds.ID, Slug: creds.Slug, HTMLURL: creds.HTMLURL,
		ClientID:            creds.ClientID,
		PrivateKeySealed:    c.SealAppSecret(store.AppSecretPrivateKey, creds.PrivateKeyPEM),
		WebhookSecretSealed: c.SealAppSecret(store.AppSecretWebhookSecret, creds.WebhookSecret),
		ClientSecretSealed:  c.SealAppSecret(store.AppSecretClientSecret, creds.ClientSecret),
		CreatedBy:           userID})
	if err != nil {
		return err
	}
	return l.swap(ctx, creds)
}

// Run reloads the stored App every interval (default 30s) until one is found or ctx ends, so that every
// replica starts using an App created through another one.
func (l *Live) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 30 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		l.mu.Lock()
		done := l.stored
		l.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := l.Reload(ctx); err != nil && ctx.Err() == nil {
			l.cfg.Logger.WarnContext(ctx, "read the GitHub App created from the dashboard", "err", err)
		}
	}
}

// WebhookSecret is the secret deliveries are checked with now (webhook.Config.SecretFunc).
func (l *Live) WebhookSecret() []byte { return l.Current().WebhookSecret }

// OAuthClient is GitHub sign-in's client id and secret now (auth.Config.GitHubClient).
func (l *Live) OAuthClient() (id, secret string) {
	c := l.Current()
	return c.ClientID, c.ClientSecret
}

// Reporter is the current App's reporter for an installation, nil when no App is configured (jobs.GitHub).
func (l *Live) Reporter(installationID int64) *ghreport.Reporter {
	if app := l.Current().App; app != nil {
		return app.Reporter(installationID)
	}
	return nil
}

// errNoApp is what acting as the App fails with while none is configured.
func errNoApp() error {
	return ferry.Errorf(ferry.EUNAVAILABLE, "no GitHub App is configured: create one from the dashboard (GitHub App page) or pass --github-app-id")
}

// InstallationToken is a clone token from the current App (jobs.GitHub, the projects service).
func (l *Live) InstallationToken(ctx context.Context, installationID int64) (string, error) {
	app := l.Current().App
	if app == nil {
		return "", errNoApp()
	}
	return app.InstallationToken(ctx, installationID)
}

// HookDeliveries lists the current App's webhook deliveries (jobs.HookDeliveries); none without an App.
func (l *Live) HookDeliveries(ctx context.Context, p ghreport.HookDeliveriesParams) ([]ghreport.HookDelivery, error) {
	app := l.Current().App
	if app == nil {
		return nil, nil
	}
	return app.HookDeliveries(ctx, p)
}

// HookRedeliver asks the current App's GitHub to send a delivery again (jobs.HookDeliveries).
func (l *Live) HookRedeliver(ctx context.Context, deliveryID int64) error {
	app := l.Current().App
	if app == nil {
		return errNoApp()
	}
	return app.HookRedeliver(ctx, deliveryID)
}
