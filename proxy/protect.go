package proxy

import (
	"bytes"
	"context"
	"errors"
	"html"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/protect"
)

// Protected sites (issue 16, docs/architecture.md "Protected previews"). A project's protection.json is read
// and cached like an alias; a deployment holds a pointer to its project's entry, so that an unprotected site
// pays two atomic loads and a comparison per request, and allocates nothing.

// protEntry caches one project's protection settings.
type protEntry struct {
	project    string
	refreshing atomic.Bool
	cur        atomic.Pointer[protState]
}

// protState is a project's settings at one moment: nil settings means none.
type protState struct {
	s       *protect.Settings
	expires int64
	ok      okCookies
}

// okCookies remembers access cookies whose signature checked, so that a visitor's later requests cost a map
// lookup instead of an HMAC. It belongs to one Settings value (a key rotation brings a new, empty one).
type okCookies struct {
	mu sync.RWMutex
	m  map[string]okCookie
}

type okCookie struct {
	host string
	exp  int64 // Unix seconds
}

const maxOKCookies = 4096

func (c *okCookies) check(v, host []byte, now int64) bool {
	c.mu.RLock()
	e, ok := c.m[string(v)]
	c.mu.RUnlock()
	return ok && now < e.exp && string(host) == e.host
}

func (c *okCookies) add(v []byte, host string, exp int64) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxOKCookies {
		c.m = map[string]okCookie{}
	}
	c.m[string(v)] = okCookie{host: host, exp: exp}
	c.mu.Unlock()
}

// Paths that protected hosts answer themselves.
var (
	pathAuth     = []byte("/__ferry/auth")
	pathPassword = []byte("/__ferry/password")
	pathLogout   = []byte("/__ferry/logout")
	pathFerry    = []byte("/__ferry/")
	argShare     = []byte("ferry_share")
	ccPrivate    = []byte("private, no-cache")
	vCookie      = []byte("Cookie")
)

// Cookie names: the __Host- prefix (no Domain, Path=/, Secure) is only allowed over HTTPS.
const (
	cookieSecure = "__Host-ferry_access"
	cookiePlain  = "ferry_access"
)

// protEntryFor returns the (shared) cache entry of a project's protection.
func (p *Proxy) protEntryFor(project string) *protEntry {
	p.protsMu.Lock()
	defer p.protsMu.Unlock()
	e := p.prots[project]
	if e == nil {
		if len(p.prots) >= maxDeployments {
			clear(p.prots) // deployments keep their pointers; new ones get fresh entries
		}
		e = &protEntry{project: project}
		p.prots[project] = e
	}
	return e
}

// protection returns a project's settings (st.s is nil when it has none), or nil when they cannot be read. It
// reads protection.json again once the alias TTL has passed, one request at a time; while storage fails, the
// last settings stay in force, and a project never read is closed (503) rather than opened.
func (p *Proxy) protection(e *protEntry) *protState {
	st := e.cur.Load()
	if st != nil && p.now() < st.expires {
		return st
	}
	if st != nil && !e.refreshing.CompareAndSwap(false, true) {
		return st
	}
	if st != nil {
		defer e.refreshing.Store(false)
		return p.refreshProtection(e)
	}
	v, _, _ := p.flight.Do("protection\x00"+e.project, func() (any, error) {
		if s := e.cur.Load(); s != nil {
			return s, nil
		}
		ctx, cancel := context.WithTimeout(p.base, p.cfg.StorageTimeout)
		defer cancel()
		s, err := p.readProtection(ctx, e)
		if err != nil {
			return nil, err
		}
		return s, nil
	})
	if v == nil {
		return nil
	}
	return v.(*protState)
}

func (p *Proxy) refreshProtection(e *protEntry) *protState {
	ctx, cancel := context.WithTimeout(p.base, p.cfg.StorageTimeout)
	defer cancel()
	st, err := p.readProtection(ctx, e)
	if err != nil {
		old := e.cur.Load()
		st = &protState{s: old.s, expires: p.now() + int64(time.Second)}
		e.cur.Store(st)
	}
	return st
}

// readProtection reads protection.json; a missing one is public. A broken one closes the project (its owner
// meant to protect it) and says why in the log.
func (p *Proxy) readProtection(ctx context.Context, e *protEntry) (*protState, error) {
	s, err := protect.Get(ctx, p.cfg.Storage, e.project)
	switch {
	case ferry.ErrorCode(err) == ferry.ENOTFOUND:
		s = nil
	case ferry.ErrorCode(err) == ferry.EINVALID:
		p.log.Error("protection.json is invalid; the project is closed until it is fixed", "project", e.project, "err", err)
		s = &protect.Settings{Mode: protect.All}
	case err != nil:
		p.metrics.storageErrors.Inc()
		p.log.Error("storage failed; cannot read protection", "project", e.project, "err", err)
		return nil, err
	}
	st := &protState{s: s, expires: p.now() + int64(p.cfg.AliasTTL)}
	e.cur.Store(st)
	return st, nil
}

// siteOf is the one host → (project, alias) lookup that protection uses. For a preview host the alias is what
// site.ParseHost found; for a custom domain (domains/<host>.json) it is the alias its mapping names, so a
// domain on production stays public when only previews are protected. r.dep.project is the project in both
// cases.
func siteOf(r *resolution) (project, alias string) { return r.dep.project, r.alias }

// gate decides whether a request to a protected host goes on. It answers the request itself (a redirect to
// sign in, the password page, a refusal) and returns false when it does not.
func (p *Proxy) gate(ctx *fasthttp.RequestCtx, project string, host []byte, s *protect.Settings, ok *okCookies) bool {
	now := time.Now()
	secure := ctx.IsTLS() || p.cfg.SecureCookies
	name := cookiePlain
	if secure {
		name = cookieSecure
	}
	path := ctx.Path()
	special := bytes.HasPrefix(path, pathFerry)
	v := ctx.Request.Header.Cookie(name)
	if !special && len(v) > 0 && ok.check(v, host, now.Unix()) {
		return true
	}
	h := string(host)
	switch {
	case bytes.Equal(path, pathAuth):
		var ho protect.Handoff
		ok := false
		if p.cfg.HandoffKey != nil && s.Members {
			ho, ok = protect.CheckHandoff(p.cfg.HandoffKey, h, string(ctx.QueryArgs().Peek("token")), now)
		}
		if !ok {
			page(ctx, fasthttp.StatusForbidden, pageHandoffRefused)
			return false
		}
		if !p.claimHandoff(ctx, project, h, ho) {
			return false
		}
		p.log.Info("member signed in to a protected site", "host", h, "github_login", ho.Login)
		p.setAccess(ctx, name, secure, s, h, protect.KindMember, now.Add(p.cfg.MemberTTL))
		p.seeOther(ctx, protect.LocalNext(string(ctx.QueryArgs().Peek("next"))))
		return false
	case bytes.Equal(path, pathPassword) && ctx.IsPost():
		p.passwordPost(ctx, name, secure, s, h, now)
		return false
	case bytes.Equal(path, pathLogout):
		c := fasthttp.AcquireCookie()
		c.SetKey(name)
		c.SetPath("/")
		c.SetHTTPOnly(true)
		c.SetSecure(secure)
		c.SetExpire(fasthttp.CookieExpireDelete)
		ctx.Response.Header.SetCookie(c)
		fasthttp.ReleaseCookie(c)
		page(ctx, fasthttp.StatusOK, pageSignedOut)
		return false
	}
	if len(v) > 0 && protect.CheckCookie(s.Key, s.KeyID, h, v, now) {
		if exp, ok2 := protect.CookieExpiry(v); ok2 {
			ok.add(v, h, exp)
		}
		return true
	}
	if tok := ctx.QueryArgs().PeekBytes(argShare); len(tok) > 0 {
		exp, ok := shareExpiry(string(tok))
		if !ok || !protect.CheckShare(s.Key, h, string(tok), now) {
			page(ctx, fasthttp.StatusForbidden, pageShareRefused)
			return false
		}
		p.setAccess(ctx, name, secure, s, h, protect.KindShare, exp)
		// Send the visitor on without the token, so that it does not linger in the address bar or in Referer.
		args := fasthttp.AcquireArgs()
		ctx.QueryArgs().CopyTo(args)
		args.DelBytes(argShare)
		loc := string(ctx.Path())
		if args.Len() > 0 {
			loc += "?" + args.String()
		}
		fasthttp.ReleaseArgs(args)
		p.seeOther(ctx, protect.LocalNext(loc))
		return false
	}
	next := string(ctx.URI().RequestURI())
	canSignIn := s.Members && p.cfg.HandoffKey != nil && p.cfg.SignInURL != ""
	if canSignIn && s.PasswordHash == "" && (ctx.IsGet() || ctx.IsHead()) {
		ctx.Response.Header.Set(fasthttp.HeaderLocation, p.signInURL(ctx, next))
		page(ctx, fasthttp.StatusFound, pageSignIn)
		return false
	}
	if s.PasswordHash == "" && !canSignIn {
		page(ctx, fasthttp.StatusForbidden, pageClosed)
		return false
	}
	p.passwordPage(ctx, fasthttp.StatusUnauthorized, s, next, "")
	return false
}

// claimHandoff makes a checked hand-off token good once across every proxy sharing the storage: first this
// process's memory, then a create-only record in storage (protect.ClaimHandoff). It answers the request itself
// when the token may not be used.
func (p *Proxy) claimHandoff(ctx *fasthttp.RequestCtx, project, host string, ho protect.Handoff) bool {
	if !p.handoffs.add(ho.Nonce, ho.Expires) {
		p.log.Warn("hand-off token replayed; refused", "host", host, "github_login", ho.Login)
		page(ctx, fasthttp.StatusForbidden, pageHandoffRefused)
		return false
	}
	sctx, cancel := context.WithTimeout(p.base, p.cfg.StorageTimeout)
	defer cancel()
	switch err := protect.ClaimHandoff(sctx, p.cond, project, ho); {
	case errors.Is(err, protect.ErrHandoffUsed):
		p.log.Warn("hand-off token used before at another proxy; refused", "host", host, "github_login", ho.Login)
		page(ctx, fasthttp.StatusForbidden, pageHandoffRefused)
		return false
	case err != nil:
		p.metrics.storageErrors.Inc()
		p.log.Error("storage failed; cannot record a member's sign-in", "host", host, "err", err)
		p.handoffs.forget(ho.Nonce) // the visitor may retry the same link once storage is back
		page(ctx, fasthttp.StatusServiceUnavailable, pageUnavailable)
		return false
	}
	return true
}

// usedHandoffs is the nonces of hand-off tokens this process honoured, until they expire.
type usedHandoffs struct {
	mu sync.Mutex
	m  map[string]time.Time
}

// add records nonce and reports whether it was new.
func (u *usedHandoffs) add(nonce string, exp time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.m[nonce]; ok {
		return false
	}
	if u.m == nil || len(u.m) >= maxHosts {
		now := time.Now()
		if u.m == nil {
			u.m = map[string]time.Time{}
		}
		for k, e := range u.m {
			if now.After(e) {
				delete(u.m, k)
			}
		}
		if len(u.m) >= maxHosts {
			// Hostile volumes of live tokens: forget them here; storage still refuses their replays.
			clear(u.m)
		}
	}
	u.m[nonce] = exp
	return true
}

func (u *usedHandoffs) forget(nonce string) {
	u.mu.Lock()
	delete(u.m, nonce)
	u.mu.Unlock()
}

// signInURL is the dashboard's /protect/start for this site and path.
func (p *Proxy) signInURL(ctx *fasthttp.RequestCtx, next string) string {
	scheme := "http://"
	if ctx.IsTLS() || p.cfg.SecureCookies {
		scheme = "https://"
	}
	q := url.Values{"site": {scheme + string(ctx.Host())}, "path": {protect.LocalNext(next)}}
	return p.cfg.SignInURL + "/protect/start?" + q.Encode()
}

func (p *Proxy) seeOther(ctx *fasthttp.RequestCtx, loc string) {
	ctx.Response.Header.Set(fasthttp.HeaderLocation, loc)
	ctx.Response.Header.SetCanonical(hCacheControl, vNoStore)
	ctx.SetStatusCode(fasthttp.StatusSeeOther)
}

func shareExpiry(tok string) (time.Time, bool) {
	e, _, ok := bytes.Cut([]byte(tok), []byte("."))
	if !ok {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(string(e), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// setAccess sets the host-only access cookie: no Domain attribute, so that no other site host receives it.
func (p *Proxy) setAccess(ctx *fasthttp.RequestCtx, name string, secure bool, s *protect.Settings, host, kind string, exp time.Time) {
	if max := time.Now().Add(p.cfg.AccessTTL); exp.After(max) {
		exp = max
	}
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(name)
	c.SetValue(protect.Cookie(s.Key, s.KeyID, host, kind, exp))
	c.SetPath("/")
	c.SetHTTPOnly(true)
	c.SetSecure(secure)
	c.SetSameSite(fasthttp.CookieSameSiteLaxMode)
	c.SetExpire(exp)
	ctx.Response.Header.SetCookie(c)
}

// passwordPost checks a password form, at most passwordTries wrong guesses per client address and host a
// minute (a right one is not counted).
func (p *Proxy) passwordPost(ctx *fasthttp.RequestCtx, name string, secure bool, s *protect.Settings, host string, now time.Time) {
	next := protect.LocalNext(string(ctx.PostArgs().Peek("next")))
	if s.PasswordHash == "" {
		page(ctx, fasthttp.StatusForbidden, pageClosed)
		return
	}
	key := ctx.RemoteIP().String() + "|" + host
	if !p.guesses.take(key, now) {
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "60")
		p.passwordPage(ctx, fasthttp.StatusTooManyRequests, s, next, "Too many wrong passwords from your address. Wait a minute and try again.")
		return
	}
	if !protect.CheckPassword(s.PasswordHash, string(ctx.PostArgs().Peek("password"))) {
		p.log.Warn("wrong password for a protected site", "host", host, "ip", ctx.RemoteIP().String())
		p.passwordPage(ctx, fasthttp.StatusUnauthorized, s, next, "Wrong password.")
		return
	}
	p.guesses.refund(key)
	p.setAccess(ctx, name, secure, s, host, protect.KindPassword, now.Add(p.cfg.AccessTTL))
	p.seeOther(ctx, next)
}

// passwordPage is the page a protected host shows to a visitor without access when a password is set: the
// form, and the sign-in link when members can sign in. next and msg are escaped.
func (p *Proxy) passwordPage(ctx *fasthttp.RequestCtx, status int, s *protect.Settings, next, msg string) {
	next = protect.LocalNext(next)
	b := []byte("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Protected site</title>" +
		"<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}</style>" +
		"</head><body><h1>This site is protected</h1>")
	if msg != "" {
		b = append(b, "<p role=\"alert\"><strong>"+html.EscapeString(msg)+"</strong></p>"...)
	}
	if s.PasswordHash != "" {
		b = append(b, "<form method=\"post\" action=\"/__ferry/password\"><input type=\"hidden\" name=\"next\" value=\""+
			html.EscapeString(next)+"\"><label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required autofocus></label> "+
			"<button type=\"submit\">Open</button></form>"...)
	}
	if s.Members && p.cfg.HandoffKey != nil && p.cfg.SignInURL != "" {
		b = append(b, "<p>Team members: <a id=\"ferry-sign-in\" href=\""+html.EscapeString(p.signInURL(ctx, next))+"\">sign in with GitHub</a>.</p>"...)
	}
	b = append(b, "<p><small>Ferry</small></p></body></html>\n"...)
	page(ctx, status, b)
	ctx.Response.Header.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
}

// markPrivate keeps a protected answer out of shared caches: a CDN in front of the proxy must never hand one
// visitor's page to another. Immutable assets keep their lifetime, privately.
func markPrivate(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	cc := h.PeekBytes(hCacheControl)
	switch {
	case bytes.Equal(cc, vNoStore):
	case bytes.Equal(cc, ccImmutable):
		h.SetCanonical(hCacheControl, ccPrivateImmutable)
	default:
		h.SetCanonical(hCacheControl, ccPrivate)
	}
	h.AddBytesKV(hVary, vCookie)
}

var ccPrivateImmutable = []byte("private, max-age=31536000, immutable")

// guesses limits wrong passwords per client address and host, in this proxy's memory: a fixed one-minute
// window of passwordTries failures.
type guesses struct {
	mu sync.Mutex
	m  map[string]*guessWindow
}

type guessWindow struct {
	start time.Time
	n     int
}

const passwordTries = 5

// take counts one password attempt and reports whether it may go on. Counting before the (slow) check, under
// the lock, means parallel guesses cannot all slip in before the first failure is recorded.
func (g *guesses) take(key string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	w := g.m[key]
	if w == nil || now.Sub(w.start) >= time.Minute {
		if g.m == nil || len(g.m) >= maxHosts {
			g.m = map[string]*guessWindow{} // hostile traffic: start over rather than grow
		}
		w = &guessWindow{start: now}
		g.m[key] = w
	}
	if w.n >= passwordTries {
		return false
	}
	w.n++
	return true
}

// refund gives back the attempt of a right password, so that people who type it right never run out.
func (g *guesses) refund(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if w := g.m[key]; w != nil && w.n > 0 {
		w.n--
	}
}
