package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry/app/auth"
	"github.com/ferryhq/ferry/app/githubapp"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
)

// GitHubAppPath is the dashboard page that creates the GitHub App with the manifest flow; `ferry dev` prints it.
const GitHubAppPath = "/settings/github-app"

// gitHubAppCreatedPath is the manifest's redirect URL: GitHub sends the browser back here with the code.
const gitHubAppCreatedPath = GitHubAppPath + "/created"

// manifestStateTTL is how long a manifest form's state is good for: GitHub's code lives an hour too.
const manifestStateTTL = time.Hour

// GitHubAppSetup is what the GitHub App page needs of the credentials holder (*githubapp.Live).
type GitHubAppSetup interface {
	Current() *githubapp.Current
	FlagsApp() bool
	CanStore() bool
	Save(ctx context.Context, creds *ghreport.AppCredentials, userID int64) error
}

// GitHubAppConfig is what the GitHub App page runs on.
type GitHubAppConfig struct {
	// Setup holds the credentials and keeps new ones. Required.
	Setup GitHubAppSetup
	// Owner returns the server owner's user id (store.UserFirstID): the only account that may create the App.
	// Required.
	Owner func(ctx context.Context) (int64, error)
	// PublicURL is Ferry's own URL, which the manifest's webhook, callback and redirect URLs are built on.
	// Empty: the page says to pass --public-url.
	PublicURL string
	// GitHubURL is GitHub's web root (--github-url), where the manifest form posts. Default https://github.com.
	GitHubURL string
	// GitHub reaches the API for the code's conversion (APIURL, Transport).
	GitHub ghreport.Config
	// Logger receives created Apps (never their secrets). Default slog.Default().
	Logger *slog.Logger
}

// GitHubAppPage is the owner's page that creates the server's GitHub App in three clicks (the App manifest flow):
// Ferry fills in the manifest and posts it to GitHub, GitHub creates the App and sends the browser back with a
// one-time code, and Ferry converts the code into the App's credentials, stores them encrypted and starts using
// them at once.
//
// Who may: only the server's owner, its first account, and only while no App is configured (by flags or from
// the dashboard). Everyone else gets 403: the App's credentials act for every project on the server.
type GitHubAppPage struct {
	cfg GitHubAppConfig
}

// NewGitHubAppPage checks cfg and returns the page.
func NewGitHubAppPage(cfg GitHubAppConfig) (*GitHubAppPage, error) {
	if cfg.Setup == nil || cfg.Owner == nil {
		return nil, errors.New("web: the GitHub App page needs Setup and Owner")
	}
	if cfg.GitHubURL == "" {
		cfg.GitHubURL = "https://github.com"
	}
	cfg.GitHubURL = strings.TrimSuffix(cfg.GitHubURL, "/")
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &GitHubAppPage{cfg: cfg}, nil
}

// Routes mounts the page and the manifest's redirect. They need auth.Middleware around the mux.
func (p *GitHubAppPage) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+GitHubAppPath, p.page)
	mux.HandleFunc("GET "+gitHubAppCreatedPath, p.created)
}

// gitHubAppData is the page's data.
type gitHubAppData struct {
	Page
	// App is the App in use, nil when none is.
	App     *githubapp.Current
	FromApp string // "flags" or "dashboard"
	// InstallURL is where the App is installed on repositories.
	InstallURL string
	// Form: where the manifest posts and what it holds, with the choices the options form made.
	FormURL  string
	Manifest string
	Org      string
	Public   bool
	Name     string
	// Blocked says why the App cannot be created here (no public URL, no secret key), with the fix.
	Blocked string
}

var githubLogin = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$`)

// owner lets only the server's owner through; everyone else gets an error page.
func (p *GitHubAppPage) owner(w http.ResponseWriter, r *http.Request) (int64, bool) {
	u := auth.UserFrom(r.Context())
	if u == nil {
		http.Redirect(w, r, "/login?next="+url.QueryEscape(GitHubAppPath), http.StatusSeeOther)
		return 0, false
	}
	w.Header().Set("Cache-Control", "no-store")
	id, err := p.cfg.Owner(r.Context())
	if err != nil {
		Error(w, r, err)
		return 0, false
	}
	if id != u.ID {
		Error(w, r, ferry.Errorf(ferry.EFORBIDDEN, "only this server's owner (its first account) can set up its GitHub App"))
		return 0, false
	}
	return u.ID, true
}

func (p *GitHubAppPage) page(w http.ResponseWriter, r *http.Request) {
	userID, ok := p.owner(w, r)
	if !ok {
		return
	}
	d := &gitHubAppData{Page: Page{Title: "GitHub App"}}
	if cur := p.cfg.Setup.Current(); cur.App != nil {
		d.App, d.FromApp = cur, "flags"
		if cur.FromDashboard {
			d.FromApp = "dashboard"
		}
		if cur.HTMLURL != "" {
			d.InstallURL = cur.HTMLURL + "/installations/new"
		}
		Render(w, r, http.StatusOK, "github_app", d)
		return
	}
	switch {
	case p.cfg.PublicURL == "":
		d.Blocked = "GitHub must reach this server's webhook and send browsers back to it: start ferry app with --public-url https://ferry.example.com."
	case !p.cfg.Setup.CanStore():
		d.Blocked = "The App's private key and secrets are stored encrypted with the env vars' key: start ferry app with --secret-key-file."
	}
	if d.Blocked != "" {
		Render(w, r, http.StatusOK, "github_app", d)
		return
	}
	q := r.URL.Query()
	d.Org, d.Public, d.Name = strings.TrimSpace(q.Get("org")), q.Get("public") == "on", strings.TrimSpace(q.Get("name"))
	if d.Org != "" && !githubLogin.MatchString(d.Org) {
		d.Error = "“" + d.Org + "” is not a GitHub organization name (letters, digits and hyphens, at most 39)."
		d.Org = ""
	}
	if d.Name == "" {
		d.Name = defaultAppName(p.cfg.PublicURL)
	}
	if len(d.Name) > 34 { // GitHub's limit for App names
		d.Name = d.Name[:34]
	}
	m, err := ghreport.AppManifest(p.cfg.PublicURL, d.Name, gitHubAppCreatedPath, d.Public)
	if err != nil {
		Error(w, r, err)
		return
	}
	d.Manifest = m.JSON()
	d.FormURL = ghreport.ManifestFormURL(p.cfg.GitHubURL, d.Org, manifestState(auth.CSRFToken(r.Context()), userID, time.Now()))
	// The one form of the dashboard that posts elsewhere: to GitHub's "create a GitHub App" page.
	Render(w, withFormAction(r, origin(p.cfg.GitHubURL)), http.StatusOK, "github_app", d)
}

// defaultAppName names the App after the server's host, as App names are unique on GitHub.
func defaultAppName(publicURL string) string {
	u, err := url.Parse(publicURL)
	if err != nil || u.Hostname() == "" {
		return "Ferry"
	}
	return "Ferry (" + u.Hostname() + ")"
}

// created is the manifest's redirect: it checks the state against this session, converts the code into the
// App's credentials and saves them. Anything wrong shows an error page and stores nothing.
func (p *GitHubAppPage) created(w http.ResponseWriter, r *http.Request) {
	userID, ok := p.owner(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	q := r.URL.Query()
	fail := func(err error) {
		p.cfg.Logger.WarnContext(ctx, "GitHub App not created from its manifest", "user", userID, "err", err)
		Error(w, r, err)
	}
	if !checkManifestState(q.Get("state"), auth.CSRFToken(ctx), userID, time.Now()) {
		fail(ferry.Errorf(ferry.EFORBIDDEN, "this GitHub App creation did not start in this browser session, or it is over an hour old; nothing was stored. Start again from %s (the App GitHub created, if any, can be deleted in its settings on GitHub)", GitHubAppPath))
		return
	}
	if cur := p.cfg.Setup.Current(); cur.App != nil {
		fail(ferry.Errorf(ferry.ECONFLICT, "this server already uses GitHub App %d; nothing was changed (delete the new App in its settings on GitHub)", cur.AppID))
		return
	}
	creds, err := ghreport.ManifestConvert(ctx, p.cfg.GitHub, q.Get("code"))
	if err != nil {
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			err = ferry.Errorf(ferry.EINVALID, "GitHub does not know this App creation code: it was used already or is over an hour old. Nothing was stored; start again from %s", GitHubAppPath)
		}
		fail(err)
		return
	}
	if err := p.cfg.Setup.Save(ctx, creds, userID); err != nil {
		fail(err)
		return
	}
	p.cfg.Logger.InfoContext(ctx, "GitHub App created from its manifest and in use", "user", userID, "app_id", creds.ID, "slug", creds.Slug)
	http.Redirect(w, r, GitHubAppPath, http.StatusSeeOther)
}

// manifestState is the manifest form's state: a nonce, its expiry and a MAC keyed with the session's CSRF token
// over both and the user, so that only the browser session that started the flow can finish it, within the hour.
func manifestState(csrf string, userID int64, now time.Time) string {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	n := base64.RawURLEncoding.EncodeToString(nonce)
	exp := strconv.FormatInt(now.Add(manifestStateTTL).Unix(), 10)
	return n + "." + exp + "." + manifestMAC(csrf, userID, n, exp)
}

func manifestMAC(csrf string, userID int64, nonce, exp string) string {
	m := hmac.New(sha256.New, []byte(csrf))
	m.Write([]byte("ferry-github-app-manifest\x00" + strconv.FormatInt(userID, 10) + "\x00" + nonce + "\x00" + exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkManifestState reports whether state was made by manifestState for this session and user, and is unexpired.
func checkManifestState(state, csrf string, userID int64, now time.Time) bool {
	parts := strings.Split(state, ".")
	if csrf == "" || len(parts) != 3 || len(state) > 200 {
		return false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || now.Unix() > exp {
		return false
	}
	return hmac.Equal([]byte(parts[2]), []byte(manifestMAC(csrf, userID, parts[0], parts[1])))
}

// withFormAction lets the page's forms post to origin besides the dashboard itself (Render keeps the rest of
// ContentSecurityPolicy).
func withFormAction(r *http.Request, origin string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), formActionKey{}, origin))
}

type formActionKey struct{}

// origin is a URL's scheme://host[:port], the form a CSP source takes.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// formActionFor is the extra form-action origin a page asked for with withFormAction, or "".
func formActionFor(r *http.Request) string {
	s, _ := r.Context().Value(formActionKey{}).(string)
	return s
}
