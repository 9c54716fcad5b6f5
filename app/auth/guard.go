package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
)

// deviceCookie marks a browser that has signed in before. A per-account lock-out (too many wrong passwords)
// does not apply to it: the owner's own browser keeps its own, separate budget of attempts, so an attacker who
// guesses at an account locks out only browsers that never signed in as it. Its value is random; the database
// keeps its SHA-256 (known_devices).
const deviceCookie = "ferry_device"

// deviceTTL is how long a device stays known without signing in: 400 days, the longest browsers keep a cookie.
const deviceTTL = 400 * 24 * time.Hour

// errBusy is what an attempt gets when every password-hash slot stays taken for Config.HashWait: 503 with
// Retry-After, rather than one more 19 MiB argon2id pass queued behind the others.
var errBusy = ferry.Errorf(ferry.EUNAVAILABLE, "the server is busy checking other passwords; try again in a few seconds")

// withHashSlot runs fn, an argon2id hash or check, once one of Config.MaxConcurrentHashes slots is free, so
// that a flood of log-ins costs at most that many hashes' memory and cores at a time; /healthz and the
// dashboard keep answering. It gives up with errBusy after Config.HashWait.
func (a *Auth) withHashSlot(ctx context.Context, fn func()) error {
	t := time.NewTimer(a.cfg.HashWait)
	defer t.Stop()
	select {
	case a.hashSlots <- struct{}{}:
	case <-t.C:
		return errBusy
	case <-ctx.Done():
		return errBusy
	}
	defer func() { <-a.hashSlots }()
	a.hashes.Add(1)
	fn()
	return nil
}

// checkPassword is CheckPassword within a hash slot.
func (a *Auth) checkPassword(ctx context.Context, hash, password string) (ok bool, err error) {
	if serr := a.withHashSlot(ctx, func() { ok, err = CheckPassword(hash, password) }); serr != nil {
		return false, serr
	}
	return ok, err
}

// hashPassword is HashPassword within a hash slot.
func (a *Auth) hashPassword(ctx context.Context, password string) (hash string, err error) {
	if serr := a.withHashSlot(ctx, func() { hash, err = HashPassword(password) }); serr != nil {
		return "", serr
	}
	return hash, err
}

// PasswordHashes returns how many argon2id hashes and checks this Auth has run, for metrics and for tests
// that prove a flood of log-ins costs no more than the rate limit allows.
func (a *Auth) PasswordHashes() int64 { return a.hashes.Load() }

// deviceUser returns the user whose known device the request comes from, and the device's attempt key; 0 and ""
// for a browser that never signed in (or whose cookie is unknown).
func (a *Auth) deviceUser(ctx context.Context, r *http.Request) (int64, string) {
	ck, err := r.Cookie(a.cookieName(deviceCookie))
	if err != nil || len(ck.Value) < 32 {
		return 0, ""
	}
	h := hashToken(ck.Value)
	id, err := a.st.KnownDeviceUser(ctx, h, deviceTTL)
	if err != nil {
		if ferry.ErrorCode(err) != ferry.ENOTFOUND {
			a.logger.WarnContext(ctx, "look up known device", "err", err)
		}
		return 0, ""
	}
	return id, "device:" + hex.EncodeToString(h[:12])
}

// rememberDevice marks the browser as one that signed in as u: it keeps its cookie when that is already u's,
// and gets a new one otherwise. A failure only costs the lock-out exemption, so it is logged, not returned.
func (a *Auth) rememberDevice(ctx context.Context, w http.ResponseWriter, r *http.Request, u *store.User) {
	tok := ""
	if ck, err := r.Cookie(a.cookieName(deviceCookie)); err == nil && len(ck.Value) >= 32 {
		if id, err := a.st.KnownDeviceUser(ctx, hashToken(ck.Value), deviceTTL); err == nil && id == u.ID {
			tok = ck.Value
		}
	}
	if tok == "" {
		tok = randomToken("")
	}
	h := sha256.Sum256([]byte(tok))
	if err := a.st.KnownDeviceRecord(ctx, u.ID, h[:]); err != nil {
		a.logger.WarnContext(ctx, "remember device", "user", u.ID, "err", err)
		return
	}
	a.setCookie(w, deviceCookie, tok, deviceTTL)
}

// takeAttempt records a password attempt under keys before the hash runs (store.LoginAttemptTake), so that
// no more attempts than the limits allow ever reach the hash, however many arrive at once. It returns the
// attempt's ids, to forget when the password was right, or limited=true when a key is used up.
func (a *Auth) takeAttempt(ctx context.Context, keys []string, limits []int) (ids []int64, limited bool, err error) {
	ids, key, err := a.st.LoginAttemptTake(ctx, store.LoginAttemptTakeParams{Keys: keys, Limits: limits, Since: time.Now().Add(-a.cfg.RateWindow)})
	if err != nil {
		return nil, false, err
	}
	if key != "" {
		a.logger.WarnContext(ctx, "password attempt refused: too many failures", "key", key)
		return nil, true, nil
	}
	return ids, false, nil
}

// forgetAttempt deletes an attempt that turned out right, or that never reached the hash.
func (a *Auth) forgetAttempt(ctx context.Context, ids []int64) {
	if err := a.st.LoginAttemptForget(ctx, ids); err != nil {
		a.logger.WarnContext(ctx, "forget log-in attempt", "err", err)
	}
}
