// Package auth signs people in to Ferry: passwords hashed with argon2id, sessions kept in PostgreSQL behind a
// Secure, HttpOnly, SameSite=Lax cookie (logging out deletes the row, so a stolen cookie dies with it), CSRF
// tokens on every cookie-authenticated form post, log-in rate limits per account and per IP counted in the
// database (so every replica sees the same failures), "Sign in with GitHub" through the App's OAuth client,
// and API tokens for scripts (`Authorization: Bearer ferry_...`).
//
// Middleware puts the caller's user into the request context; handlers read it with UserFrom and put
// CSRFToken into their forms:
//
//	a, _ := auth.New(auth.Config{Store: st, PublicURL: "https://ferry.example.com", Render: web.Render})
//	a.Routes(mux)
//	handler := a.Middleware(mux)
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
)

// Cookie names.
const (
	SessionCookie = "ferry_session"
	// csrfCookie carries the CSRF token of anonymous visitors (double submit), so that the log-in and sign-up
	// forms are protected too (no log-in CSRF).
	csrfCookie  = "ferry_csrf"
	stateCookie = "ferry_oauth_state"
)

// RenderFunc renders page (a template of app/web) with data; auth passes a map[string]any whose keys the page reads;
// app/web's Render adds the layout's fields (user, CSRF token, title). auth takes it as a function so that
// app/web may import auth for UserFrom without an import cycle.
type RenderFunc func(w http.ResponseWriter, r *http.Request, status int, page string, data any)

// Config is what Auth runs with.
type Config struct {
	// Store is the database. Required.
	Store *store.Store
	// PublicURL is Ferry's own URL (https://ferry.example.com). Cookies are Secure unless it is plain
	// http://localhost (or 127.0.0.1, ::1, *.localhost); the GitHub callback and sign-in links are built on it.
	// Empty: cookies are Secure and URLs follow the request's Host.
	PublicURL string
	// GitHubClientID and GitHubClientSecret are the GitHub App's OAuth credentials; without them "Sign in with
	// GitHub" is hidden.
	GitHubClientID     string
	GitHubClientSecret string
	// GitHubClient, when set, gives the OAuth client id and secret per sign-in instead of GitHubClientID and
	// GitHubClientSecret, so that a GitHub App created from the dashboard signs people in without a restart
	// (app/githubapp). An empty id hides "Sign in with GitHub".
	GitHubClient func() (id, secret string)
	// GitHubURL is GitHub's web root, for the OAuth endpoints. Default https://github.com.
	GitHubURL string
	// GitHubAPIURL is the REST API root. Default https://api.github.com.
	GitHubAPIURL string
	// HTTPClient talks to GitHub. Default: a client with a 15 s timeout.
	HTTPClient *http.Client
	// Render draws the auth pages (web.Render). Default: plain text, for API-only use and tests.
	Render RenderFunc
	// Logger receives failed log-ins (never with the password). Default slog.Default().
	Logger *slog.Logger
	// SessionTTL is how long a session lasts. Default 30 days.
	SessionTTL time.Duration
	// RateWindow, MaxFailuresPerAccount and MaxFailuresPerIP bound failed log-ins: once an account or an IP
	// has that many failures within the window, further attempts are refused with 429 until old ones age out.
	// Defaults 15 minutes, 5 and 50.
	RateWindow            time.Duration
	MaxFailuresPerAccount int
	MaxFailuresPerIP      int
	// ClientIP returns the caller's address for per-IP limits. Default: the connection's remote address. Behind a
	// load balancer, pass a function that reads the header the balancer sets (and that clients cannot forge).
	ClientIP func(r *http.Request) string
	// MaxConcurrentHashes bounds argon2id passes (19 MiB each) running at once; further log-ins wait up to
	// HashWait for a slot and then get 503 with Retry-After. Defaults: the number of cores, and 2 seconds.
	MaxConcurrentHashes int
	HashWait            time.Duration
	// Signup is who may create an account: SignupClosed (the default), SignupInvite or SignupOpen.
	Signup string
	// SignupEmailDomains and SignupGitHubOrgs restrict open sign-up: an email sign-up needs an address at one
	// of the domains, a new GitHub sign-in active membership of one of the organizations (asked of GitHub with
	// the user's token). With only one list set, the other way of signing up is refused. Invites pass both.
	SignupEmailDomains []string
	SignupGitHubOrgs   []string
	// Domain is the preview domain D (ferry app --domain): /protect/start only sends members back to its hosts.
	Domain string
	// ProtectionKey signs the hand-off tokens that let members into protected sites (--protection-key-file, the
	// same file as ferry proxy's). nil: members cannot sign in to protected sites.
	ProtectionKey []byte
	// Domains reads custom-domain mappings (site.Store), so that a project protected on its custom domain
	// sends its members back there. nil: members sign in on preview hosts only.
	Domains DomainLookup
}

// DomainLookup reads one custom domain's mapping (domains/<host>.json); site.Store implements it.
type DomainLookup interface {
	DomainGet(ctx context.Context, host string) (*site.Domain, error)
}

// Auth signs people in and tells handlers who is calling.
type Auth struct {
	cfg    Config
	st     *store.Store
	secure bool
	// hostPrefix names cookies __Host-..., which browsers accept only from HTTPS, host-only and for Path=/: a
	// sibling host or a plain-HTTP page cannot set or shadow them. On when the public URL is https.
	hostPrefix bool
	logger     *slog.Logger
	http       *http.Client
	hashSlots  chan struct{}
	hashes     atomic.Int64
}

// New checks cfg and returns an Auth.
func New(cfg Config) (*Auth, error) {
	if cfg.Store == nil {
		return nil, ferry.Errorf(ferry.EINVALID, "auth: no store")
	}
	secure, hostPrefix := true, false
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, ferry.Errorf(ferry.EINVALID, "auth: public URL %q is not an http(s) URL", cfg.PublicURL)
		}
		cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
		secure = !(u.Scheme == "http" && isLocalhost(u.Hostname()))
		hostPrefix = u.Scheme == "https"
	}
	mode, err := ParseSignup(cfg.Signup)
	if err != nil {
		return nil, err
	}
	cfg.Signup = mode
	cfg.SignupEmailDomains, cfg.SignupGitHubOrgs = normList(cfg.SignupEmailDomains), normList(cfg.SignupGitHubOrgs)
	if len(cfg.SignupGitHubOrgs) > 0 && cfg.GitHubClientID == "" && cfg.GitHubClient == nil {
		return nil, ferry.Errorf(ferry.EINVALID, "--signup-github-orgs needs GitHub sign-in: pass --github-client-id and --github-client-secret")
	}
	if cfg.MaxConcurrentHashes <= 0 {
		cfg.MaxConcurrentHashes = runtime.GOMAXPROCS(0)
	}
	if cfg.HashWait <= 0 {
		cfg.HashWait = 2 * time.Second
	}
	if (cfg.GitHubClientID == "") != (cfg.GitHubClientSecret == "") {
		return nil, ferry.Errorf(ferry.EINVALID, "GitHub sign-in needs both --github-client-id and --github-client-secret (from the GitHub App's settings page)")
	}
	if cfg.GitHubURL == "" {
		cfg.GitHubURL = "https://github.com"
	}
	cfg.GitHubURL = strings.TrimSuffix(cfg.GitHubURL, "/")
	if cfg.GitHubAPIURL == "" {
		cfg.GitHubAPIURL = "https://api.github.com"
	}
	cfg.GitHubAPIURL = strings.TrimSuffix(cfg.GitHubAPIURL, "/")
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if cfg.Render == nil {
		cfg.Render = plainRender
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 30 * 24 * time.Hour
	}
	if cfg.RateWindow <= 0 {
		cfg.RateWindow = 15 * time.Minute
	}
	if cfg.MaxFailuresPerAccount <= 0 {
		cfg.MaxFailuresPerAccount = 5
	}
	if cfg.MaxFailuresPerIP <= 0 {
		cfg.MaxFailuresPerIP = 50
	}
	if cfg.ClientIP == nil {
		cfg.ClientIP = remoteIP
	}
	if cfg.PublicURL == "" {
		cfg.Logger.Warn("no public URL: session cookies are Secure, so signing in needs HTTPS; pass --public-url (http://localhost:8080 for local use)")
	}
	dummyHash() // made now, so that the first sign-in to a missing account takes as long as any other
	return &Auth{cfg: cfg, st: cfg.Store, secure: secure, hostPrefix: hostPrefix, logger: cfg.Logger, http: cfg.HTTPClient,
		hashSlots: make(chan struct{}, cfg.MaxConcurrentHashes)}, nil
}

// Sweep deletes expired sessions, sign-in links and invites, devices unused for 400 days and failed log-ins
// older than the rate window, so that the tables stay small however many attempts an attacker makes.
func (a *Auth) Sweep(ctx context.Context) error {
	n, err := a.st.SessionDeleteExpired(ctx, time.Now().Add(-a.cfg.RateWindow))
	if err != nil {
		return fmt.Errorf("sweep sessions: %w", err)
	}
	if n > 0 {
		a.logger.InfoContext(ctx, "expired sessions deleted", "count", n)
	}
	if err := a.st.SignInGuardSweep(ctx, deviceTTL); err != nil {
		return fmt.Errorf("sweep invites and devices: %w", err)
	}
	return nil
}

// Run sweeps every interval (default 10 minutes) until ctx ends. Every replica may run it: the deletes are
// idempotent.
func (a *Auth) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 10 * time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := a.Sweep(ctx); err != nil && ctx.Err() == nil {
			a.logger.WarnContext(ctx, "sweep sessions", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SecureCookies reports whether cookies carry the Secure flag.
func (a *Auth) SecureCookies() bool { return a.secure }

// GitHubEnabled reports whether "Sign in with GitHub" is configured.
func (a *Auth) GitHubEnabled() bool {
	id, _ := a.githubClient()
	return id != ""
}

// githubClient is the OAuth client id and secret now in force (Config.GitHubClient).
func (a *Auth) githubClient() (id, secret string) {
	if a.cfg.GitHubClient != nil {
		return a.cfg.GitHubClient()
	}
	return a.cfg.GitHubClientID, a.cfg.GitHubClientSecret
}

func isLocalhost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type ctxKey struct{}

// caller is who made a request, as Middleware found out.
type caller struct {
	user    *store.User
	session *store.Session // nil for bearer and anonymous requests
	token   *store.APIToken
	csrf    string
}

func callerFrom(ctx context.Context) *caller {
	c, _ := ctx.Value(ctxKey{}).(*caller)
	return c
}

// UserFrom returns the signed-in user of a request's context, or nil for an anonymous one.
func UserFrom(ctx context.Context) *store.User {
	if c := callerFrom(ctx); c != nil {
		return c.user
	}
	return nil
}

// CSRFToken returns the token that forms must send back in the field "csrf_token" (or scripts in the header
// X-CSRF-Token): the session's for a signed-in user, the anonymous visitor's cookie otherwise. Empty for
// bearer-token requests, which need none.
func CSRFToken(ctx context.Context) string {
	if c := callerFrom(ctx); c != nil {
		return c.csrf
	}
	return ""
}

// WithUser returns ctx signed in as u (with CSRF token csrf), for tests of handlers behind Middleware.
func WithUser(ctx context.Context, u *store.User, csrf string) context.Context {
	return context.WithValue(ctx, ctxKey{}, &caller{user: u, csrf: csrf})
}

func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

func randomToken(prefix string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// safeMethod reports whether m changes nothing, by HTTP's definition, and so needs no CSRF token.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || m == http.MethodTrace
}

// Middleware finds the caller — a bearer token, else a session cookie, else anonymous — and puts them into the
// request context for UserFrom. A bad bearer token is 401 at once (a script should learn it is misconfigured,
// not see an empty list). Unsafe methods of cookie-authenticated requests need the session's CSRF token in the
// form field csrf_token or the header X-CSRF-Token, else 403; anonymous form posts need the csrf cookie's value
// the same way. Bearer requests are exempt: browsers never add that header on their own.
func (a *Auth) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if authz := r.Header.Get("Authorization"); authz != "" {
			scheme, tok, _ := strings.Cut(authz, " ")
			if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
				writeJSONError(w, http.StatusUnauthorized, ferry.EUNAUTHORIZED, `the Authorization header must be "Bearer <API token>"; create a token on the account's API tokens page`)
				return
			}
			t, u, err := a.st.APITokenGetByHash(ctx, hashToken(strings.TrimSpace(tok)))
			if err != nil {
				if ferry.ErrorCode(err) == ferry.ENOTFOUND {
					writeJSONError(w, http.StatusUnauthorized, ferry.EUNAUTHORIZED, "this API token is unknown or was revoked; create a new one on the account's API tokens page")
					return
				}
				a.logger.ErrorContext(ctx, "check API token", "err", err)
				writeJSONError(w, ferry.HTTPStatus(err), ferry.ErrorCode(err), ferry.ErrorMessage(err))
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, ctxKey{}, &caller{user: u, token: t})))
			return
		}

		c := &caller{}
		if ck, err := r.Cookie(a.cookieName(SessionCookie)); err == nil && ck.Value != "" {
			sess, u, err := a.st.SessionGetByTokenHash(ctx, hashToken(ck.Value))
			switch {
			case err == nil:
				c.user, c.session, c.csrf = u, sess, sess.CSRFToken
			case ferry.ErrorCode(err) == ferry.ENOTFOUND:
				a.clearCookie(w, SessionCookie) // expired or logged out elsewhere
			default:
				a.logger.ErrorContext(ctx, "check session", "err", err)
				http.Error(w, ferry.ErrorMessage(err), ferry.HTTPStatus(err))
				return
			}
		}
		if c.session == nil {
			if ck, err := r.Cookie(a.cookieName(csrfCookie)); err == nil && len(ck.Value) >= 32 {
				c.csrf = ck.Value
			} else {
				c.csrf = randomToken("")
				a.setCookie(w, csrfCookie, c.csrf, 0)
			}
		}
		if !safeMethod(r.Method) && (c.session != nil || isFormPost(r)) {
			sent := r.Header.Get("X-CSRF-Token")
			if sent == "" {
				r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
				sent = r.PostFormValue("csrf_token")
			}
			if subtle.ConstantTimeCompare([]byte(sent), []byte(c.csrf)) != 1 {
				a.logger.WarnContext(ctx, "CSRF token missing or wrong", "method", r.Method, "path", r.URL.Path, "ip", a.cfg.ClientIP(r))
				http.Error(w, "Forbidden: the form's security token is missing or out of date. Reload the page and try again.", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, ctxKey{}, c)))
	})
}

// isFormPost reports whether a request has a body type that a cross-site HTML form can send; other types need a
// CORS preflight, which Ferry never grants.
func isFormPost(r *http.Request) bool {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	return strings.HasPrefix(ct, "application/x-www-form-urlencoded") ||
		strings.HasPrefix(ct, "multipart/form-data") || strings.HasPrefix(ct, "text/plain")
}

// cookieName is name as this server sets it: "__Host-" + name behind HTTPS.
func (a *Auth) cookieName(name string) string {
	if a.hostPrefix {
		return "__Host-" + name
	}
	return name
}

// SessionCookieName is the session cookie's name on this server: SessionCookie, with the __Host- prefix behind
// HTTPS.
func (a *Auth) SessionCookieName() string { return a.cookieName(SessionCookie) }

// setCookie sets a host-only cookie (no Domain attribute, so it is never sent to <project>.D or any other
// host), for the whole site, HttpOnly, SameSite=Lax, and Secure unless Ferry runs on plain http://localhost.
func (a *Auth) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: a.cookieName(name), Value: value, Path: "/", MaxAge: int(maxAge / time.Second),
		HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode,
	})
}

func (a *Auth) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: a.cookieName(name), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode})
}

// startSession creates a session for u and sets its cookie.
func (a *Auth) startSession(ctx context.Context, w http.ResponseWriter, u *store.User) error {
	tok := randomToken("")
	if _, err := a.st.SessionCreate(ctx, store.SessionCreateParams{
		UserID: u.ID, TokenHash: hashToken(tok), CSRFToken: randomToken(""), ExpiresAt: time.Now().Add(a.cfg.SessionTTL),
	}); err != nil {
		return err
	}
	a.setCookie(w, SessionCookie, tok, a.cfg.SessionTTL)
	return nil
}

// CreateAPIToken makes a new API token for user and returns it in full — the only time it exists outside the
// caller's hands: the database keeps its SHA-256 and its first characters.
func (a *Auth) CreateAPIToken(ctx context.Context, userID int64, name string) (string, *store.APIToken, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", nil, ferry.Errorf(ferry.EINVALID, "give the token a name, such as the machine or CI job that will use it")
	case len(name) > 100:
		return "", nil, ferry.Errorf(ferry.EINVALID, "the token name is %d characters; use at most 100", len(name))
	}
	tok := randomToken("ferry_")
	t, err := a.st.APITokenCreate(ctx, store.APITokenCreateParams{UserID: userID, Name: name, Prefix: tok[:12], TokenHash: hashToken(tok)})
	if err != nil {
		return "", nil, err
	}
	return tok, t, nil
}

// OneTimeLink returns a URL that signs its first visitor in as the user with email, creating that user
// (without a password) when there is none: `ferry dev` prints it so that a fresh local install needs no
// sign-up. The link works once, within 15 minutes.
func (a *Auth) OneTimeLink(ctx context.Context, email string) (string, error) {
	email, err := validEmail(email)
	if err != nil {
		return "", err
	}
	u, err := a.st.UserGetByEmail(ctx, email)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		u, err = a.st.UserCreate(ctx, store.UserCreateParams{Email: email})
		if ferry.ErrorCode(err) == ferry.ECONFLICT { // created meanwhile
			u, err = a.st.UserGetByEmail(ctx, email)
		}
	}
	if err != nil {
		return "", fmt.Errorf("one-time link: %w", err)
	}
	tok := randomToken("")
	if err := a.st.LoginLinkCreate(ctx, u.ID, hashToken(tok), time.Now().Add(15*time.Minute)); err != nil {
		return "", fmt.Errorf("one-time link: %w", err)
	}
	base := a.cfg.PublicURL
	if base == "" {
		base = "http://localhost:8080"
	}
	return base + "/auth/link?token=" + url.QueryEscape(tok), nil
}

// writeJSONError answers in the REST API's error shape.
func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// plainRender is the RenderFunc used without app/web: the page's error or notice as text.
func plainRender(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%s\n", page)
	m, _ := data.(map[string]any)
	for _, k := range []string{"Error", "NewToken"} {
		if v, ok := m[k]; ok && v != "" && v != nil {
			fmt.Fprintf(w, "%s: %v\n", k, v)
		}
	}
}
