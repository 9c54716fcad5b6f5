// Package ghreport tells GitHub what Ferry did: deployments and their statuses, the sticky PR comment and the
// ferry/<project> commit status. The App and the Action share it, so both report the same way
// (docs/architecture.md, "GitHub reporting").
package ghreport

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/internal/ferry"
)

// DefaultAPIURL is the REST API root of github.com.
const DefaultAPIURL = "https://api.github.com"

// Config is what both kinds of clients share. The zero value talks to github.com with sane retry limits.
type Config struct {
	// APIURL is the REST API root: https://api.github.com (the default), https://HOST/api/v3 for GitHub Enterprise
	// Server (what GITHUB_API_URL holds in Actions), or an httptest URL. It is used as given: nothing is appended.
	APIURL string
	// Transport carries the requests. Default: http.DefaultTransport.
	Transport http.RoundTripper
	// Attempts bounds how often one call is tried when GitHub answers 5xx, throttles briefly or the network
	// fails. Default: 4.
	Attempts int
	// Backoff is the wait before the first retry after a 5xx or network error; it doubles each time. Default: 1s.
	Backoff time.Duration
	// MaxRateLimitWait is the longest a call sleeps for a rate limit to reset. A longer limit fails at once with
	// EUNAVAILABLE, so that the queue (or the workflow) retries later instead of holding a worker. Default: 30s.
	MaxRateLimitWait time.Duration
	// BotLogin, when set, is the only author whose comments CommentUpsert edits (for example "ferry[bot]" or
	// "github-actions[bot]"). Default: any Bot account's comment that carries Ferry's marker.
	BotLogin string
	// Logger receives retry notices. Default: slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, *url.URL, error) {
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	u, err := apiRoot(c.APIURL)
	if err != nil {
		return c, nil, err
	}
	if c.Transport == nil {
		c.Transport = http.DefaultTransport
	}
	if c.Attempts <= 0 {
		c.Attempts = 4
	}
	if c.Backoff <= 0 {
		c.Backoff = time.Second
	}
	if c.MaxRateLimitWait <= 0 {
		c.MaxRateLimitWait = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, u, nil
}

// apiRoot parses the API root the way go-github wants it (with a trailing slash) without the guessing of
// WithEnterpriseURLs, which appends /api/v3/ to any host that does not start with "api." and so breaks
// httptest URLs.
func apiRoot(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "GitHub API URL %q is not an http(s) URL such as %s or https://HOST/api/v3", raw, DefaultAPIURL)
	}
	u.RawQuery, u.Fragment = "", ""
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u, nil
}

func newClient(cfg Config, root *url.URL, tr http.RoundTripper) *github.Client {
	c := github.NewClient(&http.Client{Transport: tr})
	c.BaseURL = root
	c.UploadURL = root
	c.UserAgent = "ferry"
	return c
}

// NewTokenReporter returns a Reporter authenticated with a plain token: the Action's GITHUB_TOKEN or a
// personal access token.
func NewTokenReporter(cfg Config, token string) (*Reporter, error) {
	if token == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "no GitHub token: set the github-token input (default ${{ github.token }})")
	}
	cfg, root, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := newClient(cfg, root, cfg.Transport).WithAuthToken(token)
	return newReporter(cfg, c), nil
}

// App hands out installation-authenticated clients for one GitHub App. It keeps one token source per
// installation, so tokens are fetched once an hour rather than per call. It is safe for concurrent use.
type App struct {
	cfg   Config
	root  *url.URL
	appID int64
	key   *rsa.PrivateKey

	mu          sync.Mutex
	insts       map[int64]*installation
	jwtReporter *Reporter // calls as the App itself (appClient)
}

type installation struct {
	tr       *ghinstallation.Transport
	reporter *Reporter
}

// NewApp parses the App's private key (PEM, PKCS#1 as GitHub issues it, or PKCS#8) once, so that a bad key
// fails at start rather than on the first webhook.
func NewApp(cfg Config, appID int64, privateKeyPEM []byte) (*App, error) {
	if appID <= 0 {
		return nil, ferry.Errorf(ferry.EINVALID, "GitHub App id %d is not valid: give --github-app-id from the App's settings page", appID)
	}
	key, err := parseRSAKey(privateKeyPEM)
	if err != nil {
		return nil, err
	}
	cfg, root, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &App{cfg: cfg, root: root, appID: appID, key: key, insts: map[int64]*installation{}}, nil
}

func parseRSAKey(b []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, ferry.Errorf(ferry.EINVALID, "GitHub App private key is not PEM: give the .pem file downloaded from the App's settings page")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fail(ferry.EINVALID, err, "GitHub App private key: parse")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, ferry.Errorf(ferry.EINVALID, "GitHub App private key is %T, want an RSA key", k)
	}
	return rk, nil
}

func (a *App) installation(id int64) *installation {
	a.mu.Lock()
	defer a.mu.Unlock()
	if in, ok := a.insts[id]; ok {
		return in
	}
	// One AppsTransport per installation: ghinstallation writes BaseURL and Client into the shared AppsTransport
	// on every token refresh, which would race between installations.
	atr := ghinstallation.NewAppsTransportFromPrivateKey(a.cfg.Transport, a.appID, a.key)
	atr.BaseURL = strings.TrimSuffix(a.root.String(), "/")
	tr := ghinstallation.NewFromAppsTransport(atr, id)
	tr.BaseURL = atr.BaseURL
	in := &installation{tr: tr, reporter: newReporter(a.cfg, newClient(a.cfg, a.root, tr))}
	a.insts[id] = in
	return in
}

// Reporter returns the Reporter acting as installation id. Reporters are cached, so callers need not keep them.
func (a *App) Reporter(installationID int64) *Reporter {
	return a.installation(installationID).reporter
}

// Client returns a go-github client acting as installation id, for calls the Reporter does not wrap (reading a
// repository, listing files). It does not retry; map its errors with Err.
func (a *App) Client(installationID int64) *github.Client {
	return a.installation(installationID).reporter.client
}

// InstallationToken returns a current installation token, for example to clone the repository. It is valid for
// at least a minute and at most an hour; hand it to the build through a file, never argv or env.
func (a *App) InstallationToken(ctx context.Context, installationID int64) (string, error) {
	in := a.installation(installationID)
	var tok string
	err := in.reporter.retry(ctx, "get installation token", permNone, func(ctx context.Context) error {
		var err error
		tok, err = in.tr.Token(ctx)
		return err
	})
	if err != nil {
		return "", err
	}
	return tok, nil
}

// Err maps an error from a go-github call to Ferry's error type, the way the Reporter does: rate limits and 5xx
// become EUNAVAILABLE, 401 EUNAUTHORIZED, 403 EFORBIDDEN, 404 ENOTFOUND and 422 EINVALID.
func Err(op string, err error) error {
	return classify(op, permNone, err)
}
