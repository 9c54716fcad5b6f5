package auth

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
)

// callbackURL is where GitHub sends the browser back; it must match the App's "Callback URL" setting.
func (a *Auth) callbackURL(r *http.Request) string {
	base := a.cfg.PublicURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return base + "/auth/github/callback"
}

// githubStart sends the browser to GitHub's authorization page with a fresh state, kept in a short-lived cookie
// so that the callback can tell its own flow from a forged one.
func (a *Auth) githubStart(w http.ResponseWriter, r *http.Request) {
	if !a.GitHubEnabled() {
		a.renderError(w, r, "login", map[string]any{"Title": "Log in"}, ferry.Errorf(ferry.ENOTFOUND,
			"sign-in with GitHub is not set up on this server; an administrator can pass --github-client-id and --github-client-secret"))
		return
	}
	state := randomToken("")
	invite := r.URL.Query().Get("invite")
	if len(invite) > 100 || strings.Contains(invite, "|") {
		invite = ""
	}
	a.setCookie(w, stateCookie, state+"|"+url.QueryEscape(LocalPath(r.URL.Query().Get("next")))+"|"+invite, 10*time.Minute)
	clientID, _ := a.githubClient()
	q := url.Values{"client_id": {clientID}, "redirect_uri": {a.callbackURL(r)}, "state": {state}}
	http.Redirect(w, r, a.cfg.GitHubURL+"/login/oauth/authorize?"+q.Encode(), http.StatusFound)
}

// githubCallback trades the code for a user token, learns who the user is and which App installations they
// reach, records both and signs them in. A signed-in user links their GitHub account instead.
func (a *Auth) githubCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	data := map[string]any{"Title": "Log in"}
	fail := func(err error) { a.renderError(w, r, "login", data, err) }
	if !a.GitHubEnabled() {
		fail(ferry.Errorf(ferry.ENOTFOUND, "sign-in with GitHub is not set up on this server"))
		return
	}
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		fail(ferry.Errorf(ferry.EUNAUTHORIZED, "GitHub did not sign you in (%s); try again", e))
		return
	}
	ck, err := r.Cookie(a.cookieName(stateCookie))
	a.clearCookie(w, stateCookie)
	var want, next, invite string
	if err == nil {
		want, next, _ = strings.Cut(ck.Value, "|")
		next, invite, _ = strings.Cut(next, "|")
		next, _ = url.QueryUnescape(next)
	}
	if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(q.Get("state"))) != 1 {
		fail(ferry.Errorf(ferry.EFORBIDDEN, "the GitHub sign-in expired or did not start here; click \"Sign in with GitHub\" again"))
		return
	}
	code := q.Get("code")
	if code == "" || len(code) > 200 {
		fail(ferry.Errorf(ferry.EINVALID, "GitHub sent no sign-in code; try again"))
		return
	}
	token, err := a.exchangeCode(ctx, code, a.callbackURL(r))
	if err != nil {
		a.logger.WarnContext(ctx, "GitHub sign-in: exchange code", "err", err)
		fail(err)
		return
	}
	var gu struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
		Name  string `json:"name"`
	}
	if err := a.githubGet(ctx, token, "/user", &gu); err != nil {
		fail(err)
		return
	}
	if gu.ID == 0 {
		fail(ferry.Errorf(ferry.EUNAVAILABLE, "GitHub's answer to GET /user had no user id; try again"))
		return
	}
	installs, err := a.userInstallations(ctx, token)
	if err != nil {
		fail(err)
		return
	}
	params := store.UserUpsertGitHubParams{GitHubID: gu.ID, GitHubLogin: gu.Login, Name: gu.Name}
	if cur := UserFrom(ctx); cur != nil {
		params.UserID = cur.ID
	}
	// A GitHub account that no Ferry account has yet is a sign-up: it needs an invite, or open sign-up and
	// the allow-lists.
	newAccount := false
	if params.UserID == 0 {
		_, err := a.st.UserGetByGitHubID(ctx, gu.ID)
		switch {
		case ferry.ErrorCode(err) == ferry.ENOTFOUND:
			newAccount = true
		case err != nil:
			fail(err)
			return
		}
	}
	if newAccount {
		if invite, err = a.inviteFor(ctx, invite); err != nil {
			fail(err)
			return
		}
		if invite == "" {
			if err := a.signupRefusal(); err != nil {
				a.logger.WarnContext(ctx, "GitHub sign-up refused", "signup", a.cfg.Signup, "github_login", gu.Login)
				fail(err)
				return
			}
			if err := a.signupGitHubAllowed(ctx, token, gu.Login); err != nil {
				fail(err)
				return
			}
		}
	}
	var u *store.User
	err = a.st.InTx(ctx, func(st *store.Store, _ pgx.Tx) error {
		var err error
		if newAccount && invite != "" {
			if err := a.useInvite(ctx, st.InviteUse, invite); err != nil {
				return err
			}
		}
		if u, err = st.UserUpsertGitHub(ctx, params); err != nil {
			return err
		}
		return st.UserInstallationsReplace(ctx, u.ID, installs)
	})
	if err == nil {
		err = a.signIn(ctx, w, r, u)
	}
	if err != nil {
		fail(err)
		return
	}
	a.logger.InfoContext(ctx, "signed in with GitHub", "user", u.ID, "github_login", gu.Login, "installations", len(installs))
	http.Redirect(w, r, LocalPath(next), http.StatusSeeOther)
}

// exchangeCode trades an OAuth code for a user access token (POST /login/oauth/access_token).
func (a *Auth) exchangeCode(ctx context.Context, code, redirectURI string) (string, error) {
	clientID, clientSecret := a.githubClient()
	form := url.Values{"client_id": {clientID}, "client_secret": {clientSecret},
		"code": {code}, "redirect_uri": {redirectURI}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.GitHubURL+"/login/oauth/access_token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("exchange GitHub code: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := a.doJSON(req, &out); err != nil {
		return "", err
	}
	if out.Error != "" || out.AccessToken == "" {
		// bad_verification_code: reused or expired; incorrect_client_credentials: a server misconfiguration.
		if out.Error == "incorrect_client_credentials" || out.Error == "redirect_uri_mismatch" {
			return "", ferry.Errorf(ferry.EINTERNAL, "GitHub refused the server's OAuth settings (%s): check --github-client-id, --github-client-secret and the App's callback URL", out.Error)
		}
		return "", ferry.Errorf(ferry.EUNAUTHORIZED, "GitHub refused the sign-in code (%s); start again", out.Error)
	}
	return out.AccessToken, nil
}

// userInstallations lists the ids of the App installations the user's token reaches (GET /user/installations),
// following pages.
func (a *Auth) userInstallations(ctx context.Context, token string) ([]int64, error) {
	var ids []int64
	for page := 1; page <= 20; page++ {
		var out struct {
			TotalCount    int `json:"total_count"`
			Installations []struct {
				ID int64 `json:"id"`
			} `json:"installations"`
		}
		if err := a.githubGet(ctx, token, fmt.Sprintf("/user/installations?per_page=100&page=%d", page), &out); err != nil {
			return nil, err
		}
		for _, in := range out.Installations {
			ids = append(ids, in.ID)
		}
		if len(out.Installations) < 100 || len(ids) >= out.TotalCount {
			break
		}
	}
	return ids, nil
}

func (a *Auth) githubGet(ctx context.Context, token, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.cfg.GitHubAPIURL+path, nil)
	if err != nil {
		return fmt.Errorf("GitHub GET %s: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	return a.doJSON(req, out)
}

func (a *Auth) doJSON(req *http.Request, out any) error {
	what := req.Method + " " + req.URL.Path
	res, err := a.http.Do(req)
	if err != nil {
		return &ferry.Error{Code: ferry.EUNAVAILABLE, Message: "GitHub could not be reached (" + what + "); try again", Err: err}
	}
	return a.doResponse(res, what, out)
}

// doResponse reads GitHub's answer to what into out, and closes its body.
func (a *Auth) doResponse(res *http.Response, what string, out any) error {
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return &ferry.Error{Code: ferry.EUNAVAILABLE, Message: "read GitHub's answer to " + what, Err: err}
	}
	switch {
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		return ferry.Errorf(ferry.EUNAUTHORIZED, "GitHub refused %s (%d); sign in with GitHub again", what, res.StatusCode)
	case res.StatusCode >= 300:
		return ferry.Errorf(ferry.EUNAVAILABLE, "GitHub answered %s with %d; try again", what, res.StatusCode)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "GitHub's answer to %s is not JSON: %w", what, err)
	}
	return nil
}
