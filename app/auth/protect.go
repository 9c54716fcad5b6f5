package auth

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/protect"
	"github.com/ferryhq/ferry/internal/site"
)

// Protected previews (issue 16, docs/architecture.md "Protected previews"). The proxy sends a visitor of a
// members-only site to /protect/start?site=<origin>&path=<path>. The dashboard signs them in with GitHub (the
// App's own OAuth credentials: GitHub skips the consent screen once a user has authorized the App, so a member
// who comes back just passes through), asks GitHub with the user's token whether they can read the project's
// repository, and sends them back to <origin>/__ferry/auth with a 60-second token bound to the host and their
// login, which the proxy exchanges for a host-only cookie. No Ferry account is needed: membership is GitHub's
// answer, asked again each time the proxy's member cookie runs out (ferry proxy --member-ttl).

const protectStateCookie = "ferry_protect_state"

// protectCallbackPath is the second callback URL to register in the GitHub App's settings.
const protectCallbackPath = "/protect/callback"

// ProtectRoutes mounts the members' sign-in for protected sites.
func (a *Auth) ProtectRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /protect/start", a.protectStart)
	mux.HandleFunc("GET "+protectCallbackPath, a.protectCallback)
}

// protectTarget checks the site origin the proxy sent: http(s)://<host>[:port] and nothing more, whose host is
// a site host of Ferry's domain or a verified custom domain that serves a project (not one that redirects). It
// returns the project and the host name the hand-off token is bound to.
func (a *Auth) protectTarget(ctx context.Context, origin string) (project, host string, err error) {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", "", ferry.Errorf(ferry.EINVALID, "the link to sign in to a protected site is broken (site %q); open the site again", origin)
	}
	host = strings.ToLower(u.Hostname())
	if project, _, ok := site.ParseHost(host, a.cfg.Domain); ok && a.cfg.Domain != "" {
		return project, host, nil
	}
	if a.cfg.Domains != nil && host != a.cfg.Domain && !strings.HasSuffix(host, "."+a.cfg.Domain) {
		d, err := a.cfg.Domains.DomainGet(ctx, host)
		switch {
		case err == nil && d.Status == site.DomainVerified && d.RedirectTo == "":
			return d.Project, host, nil
		case err != nil && ferry.ErrorCode(err) == ferry.EUNAVAILABLE:
			return "", "", err
		}
	}
	return "", "", ferry.Errorf(ferry.EINVALID, "%s is not a site of this Ferry server", host)
}

func (a *Auth) protectStart(w http.ResponseWriter, r *http.Request) {
	data := map[string]any{"Title": "Sign in to a protected site"}
	fail := func(err error) { a.renderError(w, r, "error", data, err) }
	if !a.GitHubEnabled() || a.cfg.ProtectionKey == nil {
		fail(ferry.Errorf(ferry.ENOTFOUND, "members cannot sign in to protected sites on this server: it needs --github-client-id, --github-client-secret and --protection-key-file; ask for a share link or the password instead"))
		return
	}
	q := r.URL.Query()
	origin := strings.TrimSuffix(q.Get("site"), "/")
	project, _, err := a.protectTarget(r.Context(), origin)
	if err != nil {
		fail(err)
		return
	}
	if _, err := a.projectRepo(r.Context(), project); err != nil {
		fail(err)
		return
	}
	state := randomToken("")
	a.setCookie(w, protectStateCookie, state+"|"+url.QueryEscape(origin)+"|"+url.QueryEscape(protect.LocalNext(q.Get("path"))), 10*time.Minute)
	clientID, _ := a.githubClient()
	v := url.Values{"client_id": {clientID}, "redirect_uri": {a.protectCallbackURL(r)}, "state": {state}}
	http.Redirect(w, r, a.cfg.GitHubURL+"/login/oauth/authorize?"+v.Encode(), http.StatusFound)
}

func (a *Auth) protectCallbackURL(r *http.Request) string {
	return strings.TrimSuffix(a.callbackURL(r), "/auth/github/callback") + protectCallbackPath
}

// projectRepo is the GitHub repository ("owner/name") whose readers are the project's members.
func (a *Auth) projectRepo(ctx context.Context, project string) (string, error) {
	p, err := a.st.ProjectGetByName(ctx, project)
	switch {
	case ferry.ErrorCode(err) == ferry.ENOTFOUND:
		return "", ferry.Errorf(ferry.ENOTFOUND, "there is no project %s on this server", project)
	case err != nil:
		return "", err
	case p.Repository == "":
		return "", ferry.Errorf(ferry.ENOTFOUND, "project %s is not linked to a GitHub repository, so its members cannot sign in; ask for a share link or the password", project)
	}
	return p.Repository, nil
}

func (a *Auth) protectCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	data := map[string]any{"Title": "Sign in to a protected site"}
	fail := func(err error) { a.renderError(w, r, "error", data, err) }
	if !a.GitHubEnabled() || a.cfg.ProtectionKey == nil {
		fail(ferry.Errorf(ferry.ENOTFOUND, "members cannot sign in to protected sites on this server"))
		return
	}
	q := r.URL.Query()
	ck, err := r.Cookie(a.cookieName(protectStateCookie))
	a.clearCookie(w, protectStateCookie)
	var want, origin, next string
	if err == nil {
		parts := strings.SplitN(ck.Value, "|", 3)
		if len(parts) == 3 {
			want = parts[0]
			origin, _ = url.QueryUnescape(parts[1])
			next, _ = url.QueryUnescape(parts[2])
		}
	}
	if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(q.Get("state"))) != 1 {
		fail(ferry.Errorf(ferry.EFORBIDDEN, "the sign-in expired or did not start here; open the protected site again"))
		return
	}
	if e := q.Get("error"); e != "" {
		fail(ferry.Errorf(ferry.EUNAUTHORIZED, "GitHub did not sign you in (%s); open the protected site again", e))
		return
	}
	project, host, err := a.protectTarget(r.Context(), origin)
	if err != nil {
		fail(err)
		return
	}
	repo, err := a.projectRepo(ctx, project)
	if err != nil {
		fail(err)
		return
	}
	code := q.Get("code")
	if code == "" || len(code) > 200 {
		fail(ferry.Errorf(ferry.EINVALID, "GitHub sent no sign-in code; open the protected site again"))
		return
	}
	token, err := a.exchangeCode(ctx, code, a.protectCallbackURL(r))
	if err != nil {
		a.logger.WarnContext(ctx, "protected site sign-in: exchange code", "err", err)
		fail(err)
		return
	}
	var gu struct {
		Login string `json:"login"`
	}
	if err := a.githubGet(ctx, token, "/user", &gu); err != nil {
		fail(err)
		return
	}
	// GET /repos/{owner}/{repo} with the user's token: 200 means they can read it; GitHub answers 404 (or 403)
	// to everyone else, private repositories included.
	member, err := a.canRead(ctx, token, repo)
	if err != nil {
		fail(err)
		return
	}
	if !member {
		a.logger.WarnContext(ctx, "protected site: not a member", "github_login", gu.Login, "repository", repo, "host", host)
		fail(ferry.Errorf(ferry.EFORBIDDEN, "you are signed in to GitHub as %s, who cannot read %s, so this site is closed to you. Ask the team to give you access to the repository, or for a share link", gu.Login, repo))
		return
	}
	a.logger.InfoContext(ctx, "protected site: member signed in", "github_login", gu.Login, "repository", repo, "host", host)
	v := url.Values{"token": {protect.HandoffToken(a.cfg.ProtectionKey, host, gu.Login, time.Now())}, "next": {protect.LocalNext(next)}}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, origin+"/__ferry/auth?"+v.Encode(), http.StatusSeeOther)
}

// canRead asks GitHub whether the user whose token this is can read repo (GET /repos/{owner}/{repo}).
func (a *Auth) canRead(ctx context.Context, token, repo string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.cfg.GitHubAPIURL+"/repos/"+repo, nil)
	if err != nil {
		return false, fmt.Errorf("GitHub GET /repos/%s: %w", repo, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	res, err := a.http.Do(req)
	if err != nil {
		return false, &ferry.Error{Code: ferry.EUNAVAILABLE, Message: "GitHub could not be reached; try again", Err: err}
	}
	switch res.StatusCode {
	case http.StatusNotFound, http.StatusForbidden:
		res.Body.Close()
		return false, nil
	}
	var out struct {
		FullName string `json:"full_name"`
	}
	if err := a.doResponse(res, "GET /repos/"+repo, &out); err != nil {
		return false, err
	}
	return strings.EqualFold(out.FullName, repo), nil
}
