package auth

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Sign-up modes (Config.Signup, --signup).
const (
	// SignupClosed lets nobody create an account, except the first one of an empty server through the
	// operator's one-time invite (logged at start, or `ferry dev`'s sign-in link). The default.
	SignupClosed = "closed"
	// SignupInvite lets people in with a one-time invite link that a signed-in user makes on the account page.
	SignupInvite = "invite"
	// SignupOpen lets anyone sign up, within the allow-lists when they are set.
	SignupOpen = "open"
)

// inviteTTL is how long an invite link works.
const inviteTTL = 7 * 24 * time.Hour

// ParseSignup checks a --signup value.
func ParseSignup(mode string) (string, error) {
	switch m := strings.ToLower(strings.TrimSpace(mode)); m {
	case "":
		return SignupClosed, nil
	case SignupClosed, SignupInvite, SignupOpen:
		return m, nil
	}
	return "", ferry.Errorf(ferry.EINVALID, "unknown --signup %q: use closed (nobody signs up), invite (with a link a user makes) or open (anyone, within --signup-email-domains and --signup-github-orgs)", mode)
}

// normList lowercases and trims an allow-list, dropping blanks and a leading "@".
func normList(in []string) []string {
	var out []string
	for _, v := range in {
		if v = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(v)), "@"); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Signup returns the sign-up mode.
func (a *Auth) Signup() string { return a.cfg.Signup }

// signupEmailAllowed checks an email sign-up in open mode against the allow-lists.
func (a *Auth) signupEmailAllowed(email string) error {
	domains, orgs := a.cfg.SignupEmailDomains, a.cfg.SignupGitHubOrgs
	if len(domains) == 0 && len(orgs) == 0 {
		return nil
	}
	domain := email[strings.LastIndex(email, "@")+1:]
	for _, d := range domains {
		if domain == d {
			return nil
		}
	}
	if len(domains) == 0 {
		return ferry.Errorf(ferry.EFORBIDDEN, "sign-up on this server is for members of the GitHub organizations %s: sign in with GitHub instead", strings.Join(orgs, ", "))
	}
	return ferry.Errorf(ferry.EFORBIDDEN, "sign-up on this server is open to email addresses at %s only", strings.Join(domains, ", "))
}

// signupGitHubAllowed checks a new GitHub sign-in in open mode: with an organization allow-list the user must
// be an active member of one of them, asked of GitHub with the user's own token.
func (a *Auth) signupGitHubAllowed(ctx context.Context, token, login string) error {
	domains, orgs := a.cfg.SignupEmailDomains, a.cfg.SignupGitHubOrgs
	if len(orgs) == 0 {
		if len(domains) == 0 {
			return nil
		}
		return ferry.Errorf(ferry.EFORBIDDEN, "sign-up on this server is open to email addresses at %s only: sign up with your email address", strings.Join(domains, ", "))
	}
	for _, org := range orgs {
		ok, err := a.githubMember(ctx, token, org)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	a.logger.WarnContext(ctx, "GitHub sign-up refused: not in an allowed organization", "github_login", login)
	return ferry.Errorf(ferry.EFORBIDDEN, "sign-up on this server is for members of the GitHub organizations %s; GitHub says %s is not an active member of any (if you are, grant this app access to the organization and try again)", strings.Join(orgs, ", "), login)
}

// githubMember asks GitHub whether the token's user is an active member of org
// (GET /user/memberships/orgs/{org}: 200 with state "active"; 404 or 403 when not, or when the App may not see
// the organization's members).
func (a *Auth) githubMember(ctx context.Context, token, org string) (bool, error) {
	path := "/user/memberships/orgs/" + url.PathEscape(org)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.cfg.GitHubAPIURL+path, nil)
	if err != nil {
		return false, fmt.Errorf("GitHub GET %s: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	res, err := a.http.Do(req)
	if err != nil {
		return false, &ferry.Error{Code: ferry.EUNAVAILABLE, Message: "GitHub could not be reached (GET " + path + "); try again", Err: err}
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusNotFound, http.StatusForbidden:
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		return false, nil
	}
	var out struct {
		State string `json:"state"`
	}
	if err := a.doResponse(res, "GET "+path, &out); err != nil {
		return false, err
	}
	return out.State == "active", nil
}

// inviteFor returns the signed-up-to-be visitor's invite, "" when none was given or it is not live.
func (a *Auth) inviteFor(ctx context.Context, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	if len(token) > 100 {
		return "", ferry.Errorf(ferry.ENOTFOUND, "this invite link is unknown, expired or was used already; ask for a new one")
	}
	by, err := a.st.InviteCheck(ctx, hashToken(token))
	if err != nil {
		return "", err
	}
	if a.cfg.Signup == SignupClosed && by != 0 {
		return "", ferry.Errorf(ferry.EFORBIDDEN, "sign-up is closed on this server, and invites made by users no longer work; ask its operator")
	}
	return token, nil
}

// signupRefusal says why a new account may not be made without an invite, "" in open mode.
func (a *Auth) signupRefusal() error {
	switch a.cfg.Signup {
	case SignupOpen:
		return nil
	case SignupInvite:
		return ferry.Errorf(ferry.EFORBIDDEN, "sign-up on this server needs an invite link: ask someone who has an account to make one on their account page")
	}
	return ferry.Errorf(ferry.EFORBIDDEN, "sign-up is closed on this server: ask its operator for an account")
}

// useInvite consumes an invite inside the transaction that makes the account (store.InviteUse).
func (a *Auth) useInvite(ctx context.Context, use func(ctx context.Context, hash []byte) (int64, error), token string) error {
	by, err := use(ctx, hashToken(token))
	if err != nil {
		return err
	}
	if a.cfg.Signup == SignupClosed && by != 0 {
		return ferry.Errorf(ferry.EFORBIDDEN, "sign-up is closed on this server, and invites made by users no longer work; ask its operator")
	}
	return nil
}

// CreateInvite makes a one-time sign-up link, valid for 7 days. byUser is the user who makes it, 0 for the
// operator (`ferry app` logs one for the first account of an empty server). Users may make invites only in
// invite mode.
func (a *Auth) CreateInvite(ctx context.Context, r *http.Request, byUser int64) (string, error) {
	if byUser != 0 && a.cfg.Signup != SignupInvite {
		return "", ferry.Errorf(ferry.EFORBIDDEN, "this server does not take invites from users (--signup is %s)", a.cfg.Signup)
	}
	tok := randomToken("")
	if err := a.st.InviteCreate(ctx, byUser, hashToken(tok), time.Now().Add(inviteTTL)); err != nil {
		return "", fmt.Errorf("create invite: %w", err)
	}
	return a.baseURL(r) + "/signup?" + url.Values{"invite": {tok}}.Encode(), nil
}

// FirstAccountInvite returns an operator invite when the server has no account yet and sign-up is not open,
// so that a fresh `ferry app --signup closed` can still get its first user (the link goes to the log, which
// only the operator reads); "" otherwise.
func (a *Auth) FirstAccountInvite(ctx context.Context) (string, error) {
	if a.cfg.Signup == SignupOpen {
		return "", nil
	}
	n, err := a.st.UserCount(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	return a.CreateInvite(ctx, nil, 0)
}

// baseURL is the public URL, or the request's own origin when none is configured (nil r: "").
func (a *Auth) baseURL(r *http.Request) string {
	if a.cfg.PublicURL != "" || r == nil {
		return a.cfg.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
