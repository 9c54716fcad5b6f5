package auth

import (
	"context"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/protect"
)

// FlashCookie carries a one-line notice across a redirect ("Password changed."); app/web's Render shows it
// once and clears it.
const FlashCookie = "ferry_flash"

// Routes mounts the account pages on mux: /login, /signup, POST /logout, /account (with the password change),
// /account/tokens, /auth/github with its callback, and /auth/link (one-time links).
func (a *Auth) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /login", a.loginPage)
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("GET /signup", a.signupPage)
	mux.HandleFunc("POST /signup", a.signup)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("GET /account", a.requireUser(a.accountPage))
	mux.HandleFunc("POST /account/password", a.requireUser(a.changePassword))
	mux.HandleFunc("POST /account/invites", a.requireUser(a.createInvite))
	mux.HandleFunc("GET /account/tokens", a.requireUser(a.tokensPage))
	mux.HandleFunc("POST /account/tokens", a.requireUser(a.createToken))
	mux.HandleFunc("POST /account/tokens/{id}/delete", a.requireUser(a.deleteToken))
	mux.HandleFunc("GET /auth/github", a.githubStart)
	mux.HandleFunc("GET /auth/github/callback", a.githubCallback)
	mux.HandleFunc("GET /auth/link", a.useLink)
	a.ProtectRoutes(mux)
}

// requireUser sends anonymous browsers to the log-in page and back.
func (a *Auth) requireUser(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if UserFrom(r.Context()) == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "Sign in first.", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

// Flash sets a notice that the next rendered page shows once.
func (a *Auth) Flash(w http.ResponseWriter, msg string) {
	http.SetCookie(w, &http.Cookie{Name: FlashCookie, Value: url.QueryEscape(msg), Path: "/", MaxAge: 60,
		HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode})
}

// LocalPath returns next when it is a path on this site, and "/" otherwise, so that ?next= (after a log-in or a
// GitHub sign-in) cannot send a freshly signed-in user to another site. Browsers do not read a Location the way
// Go does: they drop tabs and newlines anywhere, treat a backslash as a slash and skip leading spaces and control
// characters, so "/\t/evil.example" and "/\\evil.example" both become "//evil.example", another host. So any
// control character, space or backslash refuses next outright (a real path of this site percent-encodes them),
// next must then parse as a bare path without scheme or host that starts with one slash, and what is returned
// is re-encoded from the parsed parts, never the raw input.
func LocalPath(next string) string {
	return protect.LocalNext(next) // one rule for the dashboard and the protected sites' hand-off
}

// validEmail normalises an email address and says what is wrong with a bad one.
func validEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	switch {
	case email == "":
		return "", ferry.Errorf(ferry.EINVALID, "enter your email address")
	case len(email) > 254:
		return "", ferry.Errorf(ferry.EINVALID, "the email address is %d characters; at most 254 are allowed", len(email))
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || !strings.Contains(email[strings.LastIndex(email, "@"):], ".") && !strings.HasSuffix(email, "@localhost") {
		return "", ferry.Errorf(ferry.EINVALID, "%q is not an email address (like you@example.com)", email)
	}
	return email, nil
}

// validPassword says what is wrong with a new password.
func validPassword(pw string) error {
	switch {
	case pw == "":
		return ferry.Errorf(ferry.EINVALID, "enter a password")
	case len([]rune(pw)) < MinPasswordLen:
		return ferry.Errorf(ferry.EINVALID, "the password must be at least %d characters", MinPasswordLen)
	case len(pw) > MaxPasswordLen:
		return ferry.Errorf(ferry.EINVALID, "the password must be at most %d characters", MaxPasswordLen)
	}
	return nil
}

func (a *Auth) render(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	data["GitHubEnabled"] = a.GitHubEnabled()
	if _, ok := data["Signup"]; !ok {
		data["Signup"] = a.cfg.Signup
	}
	w.Header().Set("Cache-Control", "no-store")
	a.cfg.Render(w, r, status, page, data)
}

// renderError shows page again with err's message; internal errors are logged and shown generically.
func (a *Auth) renderError(w http.ResponseWriter, r *http.Request, page string, data map[string]any, err error) {
	status := ferry.HTTPStatus(err)
	if status >= 500 {
		a.logger.ErrorContext(r.Context(), "account page", "page", page, "err", err)
	}
	if err == errBusy {
		w.Header().Set("Retry-After", "2")
	}
	msg := ferry.ErrorMessage(err)
	if msg != "" {
		msg = strings.ToUpper(msg[:1]) + msg[1:]
	}
	data["Error"] = msg
	a.render(w, r, status, page, data)
}

func (a *Auth) loginPage(w http.ResponseWriter, r *http.Request) {
	if UserFrom(r.Context()) != nil {
		http.Redirect(w, r, LocalPath(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	a.render(w, r, http.StatusOK, "login", map[string]any{"Title": "Log in", "Next": r.URL.Query().Get("next")})
}

// errBadLogin is one message for every failure, so that the page does not tell which emails have accounts.
var errBadLogin = ferry.Errorf(ferry.EUNAUTHORIZED, "wrong email or password")

func (a *Auth) login(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	email := strings.ToLower(strings.TrimSpace(r.PostFormValue("email")))
	password := r.PostFormValue("password")
	next := r.PostFormValue("next")
	data := map[string]any{"Title": "Log in", "Email": email, "Next": next}
	if len(email) > 254 {
		email = email[:254]
	}
	if email == "" || password == "" {
		a.renderError(w, r, "login", data, ferry.Errorf(ferry.EINVALID, "enter your email address and your password"))
		return
	}
	u, err := a.st.UserGetByEmail(ctx, email)
	hash := dummyHash()
	switch {
	case err == nil && u.PasswordHash != "":
		hash = u.PasswordHash
	case err != nil && ferry.ErrorCode(err) != ferry.ENOTFOUND:
		a.renderError(w, r, "login", data, err)
		return
	}
	// The attempt is recorded before the hash runs, under the account (or, for a browser that signed in as
	// this account before, under that device instead) and the IP: a flood of guesses gets 429 past the limit
	// rather than each one a 19 MiB argon2id pass, and the owner's known browser is not locked out by them.
	ip := a.cfg.ClientIP(r)
	accountKey, ipKey := "account:"+email, "ip:"+ip
	first := accountKey
	if u != nil {
		if devUser, devKey := a.deviceUser(ctx, r); devUser == u.ID {
			first = devKey
		}
	}
	ids, limited, err := a.takeAttempt(ctx, []string{first, ipKey}, []int{a.cfg.MaxFailuresPerAccount, a.cfg.MaxFailuresPerIP})
	if err != nil {
		a.renderError(w, r, "login", data, err)
		return
	}
	if limited {
		a.logger.WarnContext(ctx, "log-in refused: too many failures", "email", email, "ip", ip)
		data["Error"] = "Too many failed log-ins. Wait " + a.cfg.RateWindow.String() + " and try again, or log in from a browser that has signed in to this account before."
		w.Header().Set("Retry-After", strconv.Itoa(int(a.cfg.RateWindow/time.Second)))
		a.render(w, r, http.StatusTooManyRequests, "login", data)
		return
	}
	ok, err := a.checkPassword(ctx, hash, password)
	if err != nil {
		if err == errBusy {
			a.forgetAttempt(ctx, ids) // never checked: it is no failure
		}
		a.renderError(w, r, "login", data, err)
		return
	}
	if !ok || u == nil || u.PasswordHash == "" {
		reason := "wrong password"
		switch {
		case u == nil:
			reason = "no such account"
		case u.PasswordHash == "":
			reason = "account has no password"
		}
		a.logger.WarnContext(ctx, "log-in failed", "email", email, "ip", ip, "reason", reason)
		a.renderError(w, r, "login", data, errBadLogin)
		return
	}
	a.forgetAttempt(ctx, ids)
	if err := a.st.LoginAttemptClear(ctx, accountKey); err != nil {
		a.logger.ErrorContext(ctx, "clear failed log-ins", "err", err)
	}
	if err := a.signIn(ctx, w, r, u); err != nil {
		a.renderError(w, r, "login", data, err)
		return
	}
	http.Redirect(w, r, LocalPath(next), http.StatusSeeOther)
}

// signIn starts a fresh session for u, ending the browser's previous one (no session fixation), and marks the
// browser as a known device of u.
func (a *Auth) signIn(ctx context.Context, w http.ResponseWriter, r *http.Request, u *store.User) error {
	if c := callerFrom(ctx); c != nil && c.session != nil {
		if err := a.st.SessionDelete(ctx, c.session.ID); err != nil {
			return err
		}
	}
	if err := a.startSession(ctx, w, u); err != nil {
		return err
	}
	a.rememberDevice(ctx, w, r, u)
	return nil
}

// signupData is what the sign-up page shows: the form, or why sign-up is closed, with an invite's token.
func (a *Auth) signupData(ctx context.Context, invite string) (map[string]any, error) {
	data := map[string]any{"Title": "Sign up", "Signup": a.cfg.Signup}
	tok, err := a.inviteFor(ctx, invite)
	if err != nil {
		data["Closed"] = true
		return data, err
	}
	data["Invite"] = tok
	if tok == "" {
		if err := a.signupRefusal(); err != nil {
			data["Closed"] = true
			data["Error"] = err
			return data, nil
		}
		if d := a.cfg.SignupEmailDomains; len(d) > 0 {
			data["Domains"] = strings.Join(d, ", ")
		}
		if o := a.cfg.SignupGitHubOrgs; len(o) > 0 {
			data["Orgs"] = strings.Join(o, ", ")
			data["EmailClosed"] = len(a.cfg.SignupEmailDomains) == 0
		}
	}
	return data, nil
}

func (a *Auth) signupPage(w http.ResponseWriter, r *http.Request) {
	data, err := a.signupData(r.Context(), r.URL.Query().Get("invite"))
	if err != nil {
		a.renderError(w, r, "signup", data, err)
		return
	}
	if e, ok := data["Error"].(error); ok {
		a.renderError(w, r, "signup", data, e)
		return
	}
	a.render(w, r, http.StatusOK, "signup", data)
}

func (a *Auth) signup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := strings.TrimSpace(r.PostFormValue("name"))
	password := r.PostFormValue("password")
	data, err := a.signupData(ctx, r.PostFormValue("invite"))
	if err == nil {
		if e, ok := data["Error"].(error); ok {
			err = e
		}
	}
	if err != nil {
		a.logger.WarnContext(ctx, "sign-up refused", "signup", a.cfg.Signup, "ip", a.cfg.ClientIP(r), "err", err)
		a.renderError(w, r, "signup", data, err)
		return
	}
	data["Email"], data["Name"] = r.PostFormValue("email"), name
	invite, _ := data["Invite"].(string)
	email, err := validEmail(r.PostFormValue("email"))
	if err == nil && invite == "" {
		err = a.signupEmailAllowed(email)
	}
	if err == nil && len(name) > 100 {
		err = ferry.Errorf(ferry.EINVALID, "the name is %d characters; use at most 100", len(name))
	}
	if err == nil {
		err = validPassword(password)
	}
	if err != nil {
		a.renderError(w, r, "signup", data, err)
		return
	}
	hash, err := a.hashPassword(ctx, password)
	if err != nil {
		a.renderError(w, r, "signup", data, err)
		return
	}
	var u *store.User
	err = a.st.InTx(ctx, func(st *store.Store, _ pgx.Tx) error {
		if invite != "" {
			if err := a.useInvite(ctx, st.InviteUse, invite); err != nil {
				return err
			}
		}
		var err error
		u, err = st.UserCreate(ctx, store.UserCreateParams{Email: email, Name: name, PasswordHash: hash})
		return err
	})
	if err != nil {
		a.renderError(w, r, "signup", data, err)
		return
	}
	a.logger.InfoContext(ctx, "user signed up", "user", u.ID, "invited", invite != "")
	if err := a.signIn(ctx, w, r, u); err != nil {
		a.renderError(w, r, "signup", data, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (a *Auth) logout(w http.ResponseWriter, r *http.Request) {
	if c := callerFrom(r.Context()); c != nil && c.session != nil {
		if err := a.st.SessionDelete(r.Context(), c.session.ID); err != nil {
			a.logger.ErrorContext(r.Context(), "log out", "err", err)
			http.Error(w, ferry.ErrorMessage(err), ferry.HTTPStatus(err))
			return
		}
	}
	a.clearCookie(w, SessionCookie)
	a.Flash(w, "You are logged out.")
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (a *Auth) accountData(u *store.User) map[string]any {
	return map[string]any{"Title": "Account", "HasPassword": u.PasswordHash != "", "Invites": a.cfg.Signup == SignupInvite}
}

// createInvite makes a one-time sign-up link (--signup invite) and shows it once.
func (a *Auth) createInvite(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := UserFrom(ctx)
	data := a.accountData(u)
	link, err := a.CreateInvite(ctx, r, u.ID)
	if err != nil {
		a.renderError(w, r, "account", data, err)
		return
	}
	a.logger.InfoContext(ctx, "invite created", "user", u.ID)
	data["InviteLink"] = link
	a.render(w, r, http.StatusCreated, "account", data)
}

func (a *Auth) accountPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "account", a.accountData(UserFrom(r.Context())))
}

func (a *Auth) changePassword(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c := callerFrom(ctx)
	u := c.user
	data := a.accountData(u)
	if u.PasswordHash != "" {
		key := "account:" + strings.ToLower(u.Email)
		if u.Email == "" {
			key = "user:" + strconv.FormatInt(u.ID, 10)
		}
		ids, limited, err := a.takeAttempt(ctx, []string{key, "ip:" + a.cfg.ClientIP(r)}, []int{a.cfg.MaxFailuresPerAccount, a.cfg.MaxFailuresPerIP})
		if err != nil || limited {
			if err == nil {
				err = ferry.Errorf(ferry.EFORBIDDEN, "too many wrong passwords; wait %s and try again", a.cfg.RateWindow)
			}
			a.renderError(w, r, "account", data, err)
			return
		}
		ok, err := a.checkPassword(ctx, u.PasswordHash, r.PostFormValue("current_password"))
		if err != nil {
			if err == errBusy {
				a.forgetAttempt(ctx, ids)
			}
			a.renderError(w, r, "account", data, err)
			return
		}
		if !ok {
			a.logger.WarnContext(ctx, "password change: wrong current password", "user", u.ID, "ip", a.cfg.ClientIP(r))
			a.renderError(w, r, "account", data, ferry.Errorf(ferry.EINVALID, "the current password is wrong"))
			return
		}
		a.forgetAttempt(ctx, ids)
	}
	password := r.PostFormValue("new_password")
	if err := validPassword(password); err != nil {
		a.renderError(w, r, "account", data, err)
		return
	}
	hash, err := a.hashPassword(ctx, password)
	if err == nil {
		err = a.st.UserSetPassword(ctx, u.ID, hash)
	}
	var keep int64
	if c.session != nil {
		keep = c.session.ID
	}
	if err == nil {
		err = a.st.SessionDeleteForUser(ctx, u.ID, keep)
	}
	if err != nil {
		a.renderError(w, r, "account", data, err)
		return
	}
	a.logger.InfoContext(ctx, "password changed; other sessions signed out", "user", u.ID)
	a.Flash(w, "Password changed. Your other sessions were signed out.")
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

func (a *Auth) tokensData(ctx context.Context, userID int64) (map[string]any, error) {
	ts, err := a.st.APITokenList(ctx, userID)
	return map[string]any{"Title": "API tokens", "Tokens": ts}, err
}

func (a *Auth) tokensPage(w http.ResponseWriter, r *http.Request) {
	data, err := a.tokensData(r.Context(), UserFrom(r.Context()).ID)
	if err != nil {
		a.renderError(w, r, "tokens", data, err)
		return
	}
	a.render(w, r, http.StatusOK, "tokens", data)
}

func (a *Auth) createToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := UserFrom(ctx)
	tok, t, err := a.CreateAPIToken(ctx, u.ID, r.PostFormValue("name"))
	data, lerr := a.tokensData(ctx, u.ID)
	if err == nil {
		err = lerr
	}
	if err != nil {
		data["Name"] = r.PostFormValue("name")
		a.renderError(w, r, "tokens", data, err)
		return
	}
	// Shown in this response only: the page says so, and it is not cached.
	data["NewToken"] = tok
	data["NewTokenName"] = t.Name
	a.render(w, r, http.StatusCreated, "tokens", data)
}

func (a *Auth) deleteToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := UserFrom(ctx)
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		err = ferry.Errorf(ferry.ENOTFOUND, "API token %q not found", r.PathValue("id"))
	} else {
		err = a.st.APITokenDelete(ctx, u.ID, id)
	}
	if err != nil {
		data, _ := a.tokensData(ctx, u.ID)
		a.renderError(w, r, "tokens", data, err)
		return
	}
	a.Flash(w, "Token revoked. Scripts using it can no longer sign in.")
	http.Redirect(w, r, "/account/tokens", http.StatusSeeOther)
}

func (a *Auth) useLink(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	data := map[string]any{"Title": "Log in"}
	userID, err := a.st.LoginLinkUse(ctx, hashToken(r.URL.Query().Get("token")))
	var u *store.User
	if err == nil {
		u, err = a.st.UserGetByID(ctx, userID)
	}
	if err == nil {
		err = a.signIn(ctx, w, r, u)
	}
	if err != nil {
		a.renderError(w, r, "login", data, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
