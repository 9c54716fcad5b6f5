// Package protect holds what the app, the Action and the proxy share about protected sites (issue 16): a
// project's protection settings in storage (projects/<project>/protection.json), and the signed strings that
// let a visitor in without the proxy ever calling the app: share links, the app's hand-off tokens and the
// proxy's access cookies.
//
// Every signature is HMAC-SHA256 over a string that names what is signed, the host it is good for and when it
// expires, so that a value made for one purpose or host is refused for any other. Two keys exist:
//   - the project key (in protection.json, which storage keeps private: only the app, the Action and the proxy
//     read it) signs share links and access cookies, so rotating it revokes every link and cookie at once;
//   - the hand-off key (ferry app and ferry proxy --protection-key-file) signs the 60-second tokens with which
//     the app tells the proxy "this GitHub user may read this project".
package protect

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// Mode says which of a project's hosts need a way in.
type Mode string

// The modes. The zero value is Public.
const (
	// Public serves everything to everyone (the default, and what a project without protection.json gets).
	Public Mode = "public"
	// Previews protects every host but the production alias.
	Previews Mode = "previews"
	// All protects production too.
	All Mode = "all"
)

// ParseMode reads a mode as users write it; "" is Public.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "", Public:
		return Public, nil
	case Previews, All:
		return m, nil
	}
	return "", ferry.Errorf(ferry.EINVALID, "protection %q: use public, previews or all", s)
}

// Protects reports whether the mode protects an alias name (or deployment id) of its project.
func (m Mode) Protects(name string) bool {
	switch m {
	case All:
		return true
	case Previews:
		return name != "production"
	}
	return false
}

// Version is the format version of protection.json.
const Version = 1

// Settings is projects/<project>/protection.json.
type Settings struct {
	Version int  `json:"version"`
	Mode    Mode `json:"mode"`
	// PasswordHash is a bcrypt hash of the shared password; "" means no password way in.
	PasswordHash string `json:"passwordHash,omitempty"`
	// Members lets people who can read the repository on GitHub in, through the app's sign-in. The Action
	// writes false (it has no app); the app writes true.
	Members bool `json:"members"`
	// KeyID names Key; it changes with every rotation and is part of each cookie, so that a log line can say
	// which key a refused cookie was signed with.
	KeyID string `json:"keyId"`
	// Key signs share links and access cookies. Rotating it revokes them all.
	Key []byte `json:"key"`
}

// Key is where a project's settings live.
func Key(project string) string { return site.ProjectPrefix(project) + "protection.json" }

// maxSettingsBytes bounds what Get reads.
const maxSettingsBytes = 16 << 10

// Get reads a project's settings (ENOTFOUND when it has none: the project is public).
func Get(ctx context.Context, st storage.Storage, project string) (*Settings, error) {
	if err := site.ValidateProjectName(project); err != nil {
		return nil, err
	}
	rc, err := st.Get(ctx, Key(project))
	if err != nil {
		return nil, fmt.Errorf("get protection of %s: %w", project, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxSettingsBytes+1))
	if err != nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "read protection of %s: %w", project, err)
	}
	return Parse(data)
}

// Parse checks a protection.json.
func Parse(data []byte) (*Settings, error) {
	if len(data) > maxSettingsBytes {
		return nil, ferry.Errorf(ferry.EINVALID, "protection.json is larger than %d bytes", maxSettingsBytes)
	}
	var s Settings
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, ferry.Errorf(ferry.EINVALID, "protection.json: %w", err)
	}
	if s.Version != Version {
		return nil, ferry.Errorf(ferry.EINVALID, "protection.json has version %d; this ferry reads version %d: upgrade ferry", s.Version, Version)
	}
	m, err := ParseMode(string(s.Mode))
	if err != nil {
		return nil, err
	}
	s.Mode = m
	if len(s.Key) < 32 {
		return nil, ferry.Errorf(ferry.EINVALID, "protection.json: the key is shorter than 32 bytes")
	}
	if s.PasswordHash != "" && !strings.HasPrefix(s.PasswordHash, "$2") {
		return nil, ferry.Errorf(ferry.EINVALID, "protection.json: the password hash is not a bcrypt hash")
	}
	if s.KeyID == "" || len(s.KeyID) > 40 || strings.ContainsAny(s.KeyID, ".|") {
		return nil, ferry.Errorf(ferry.EINVALID, "protection.json: bad key id %q", s.KeyID)
	}
	return &s, nil
}

// Put writes a project's settings.
func Put(ctx context.Context, st storage.Storage, project string, s *Settings) error {
	if err := site.ValidateProjectName(project); err != nil {
		return err
	}
	s.Version = Version
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode protection: %w", err)
	}
	if _, err := Parse(data); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if err := st.Put(ctx, Key(project), bytes.NewReader(data), int64(len(data)), storage.PutOptions{
		SHA256: hex.EncodeToString(sum[:]), ContentType: "application/json"}); err != nil {
		return fmt.Errorf("write protection of %s: %w", project, err)
	}
	return nil
}

// Rotate gives s a new key (and key id), which revokes every share link and access cookie signed so far.
func (s *Settings) Rotate() {
	s.Key = make([]byte, 32)
	_, _ = rand.Read(s.Key) // never fails (Go 1.24+)
	id := make([]byte, 6)
	_, _ = rand.Read(id)
	s.KeyID = "k" + hex.EncodeToString(id)
}

// HashPassword hashes a shared password for PasswordHash. Passwords shorter than 8 bytes are refused: the
// proxy rate-limits guesses, but a 4-digit code would still fall in days.
func HashPassword(pw string) (string, error) {
	if len(pw) < 8 {
		return "", ferry.Errorf(ferry.EINVALID, "the password must have at least 8 characters")
	}
	if len(pw) > 72 {
		return "", ferry.Errorf(ferry.EINVALID, "the password must have at most 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// CheckPassword reports whether pw matches a PasswordHash. It takes about 50 ms on purpose.
func CheckPassword(hash, pw string) bool {
	return hash != "" && len(pw) <= 72 && bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// The kinds of access a cookie records; a member cookie expires sooner, so that revoked access ends.
const (
	KindMember   = "m"
	KindPassword = "p"
	KindShare    = "s"
)

func mac(key []byte, parts ...string) string {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

func macEqual(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }

// parseExp reads a Unix-seconds expiry and checks that it is in the future.
func parseExp(s string, now time.Time) bool {
	if len(s) == 0 || len(s) > 12 {
		return false
	}
	exp, err := strconv.ParseInt(s, 10, 64)
	return err == nil && now.Unix() < exp
}

// ShareToken is the value of ?ferry_share= for host, good until exp.
func ShareToken(key []byte, host string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return e + "." + mac(key, "share", host, e)
}

// CheckShare reports whether tok is a live share token for host.
func CheckShare(key []byte, host, tok string, now time.Time) bool {
	e, sig, ok := strings.Cut(tok, ".")
	return ok && parseExp(e, now) && macEqual(sig, mac(key, "share", host, e))
}

// HandoffTTL is how long a hand-off token lives: long enough for one redirect.
const HandoffTTL = 60 * time.Second

// HandoffToken is what the app sends the browser back to the site with, after checking that login can read the
// project's repository: <exp>.<nonce>.<login>.<sig>. The random nonce makes every token unique, so that the
// proxy can refuse a second use (ClaimHandoff).
func HandoffToken(key []byte, host, login string, now time.Time) string {
	e := strconv.FormatInt(now.Add(HandoffTTL).Unix(), 10)
	n := make([]byte, 16)
	_, _ = rand.Read(n) // never fails (Go 1.24+)
	nonce := base64.RawURLEncoding.EncodeToString(n)
	return e + "." + nonce + "." + login + "." + mac(key, "handoff", host, login, e, nonce)
}

// Handoff is what a checked hand-off token says.
type Handoff struct {
	// Login is the GitHub user the app found to be a member.
	Login string
	// Nonce names this token alone; ClaimHandoff records it so that the token opens the site once.
	Nonce string
	// Expires is when the token stops being good.
	Expires time.Time
}

// CheckHandoff reads a live hand-off token for host. It does not tell whether the token was used before: the
// caller claims it (ClaimHandoff) before honouring it.
func CheckHandoff(key []byte, host, tok string, now time.Time) (Handoff, bool) {
	e, rest, ok := strings.Cut(tok, ".")
	if !ok {
		return Handoff{}, false
	}
	nonce, rest, ok := strings.Cut(rest, ".")
	if !ok || !validNonce(nonce) {
		return Handoff{}, false
	}
	login, sig, ok := strings.Cut(rest, ".")
	if !ok || !validLogin(login) || !parseExp(e, now) || !macEqual(sig, mac(key, "handoff", host, login, e, nonce)) {
		return Handoff{}, false
	}
	exp, _ := strconv.ParseInt(e, 10, 64) // parseExp checked it
	return Handoff{Login: login, Nonce: nonce, Expires: time.Unix(exp, 0)}, true
}

// validNonce accepts what HandoffToken makes: 22 characters of unpadded base64url.
func validNonce(s string) bool {
	if len(s) != 22 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// HandoffsPrefix is where a project's used hand-off tokens are recorded: one small object per sign-in, named by
// its nonce. The retention collector deletes records older than HandoffRecordTTL.
func HandoffsPrefix(project string) string { return site.ProjectPrefix(project) + "handoffs/" }

// HandoffRecordTTL is how long a used token's record must outlive its writing: far beyond HandoffTTL, so that
// clock skew between the app (which sets a token's expiry) and a proxy (which checks it) cannot bring a token
// back to life after its record is gone.
const HandoffRecordTTL = time.Hour

// ErrHandoffUsed is ClaimHandoff's answer to a token that was used before, here or at another proxy.
var ErrHandoffUsed = ferry.Errorf(ferry.ECONFLICT, "this sign-in link was used already")

// ClaimHandoff records h's nonce in storage with a create-only write, so that of any number of proxies sharing
// the storage exactly one honours the token. A second claim is ErrHandoffUsed; a storage failure is returned
// as it is (the caller refuses the token: a sign-in can be retried, a replay must not slip through).
func ClaimHandoff(ctx context.Context, st storage.Conditional, project string, h Handoff) error {
	if err := site.ValidateProjectName(project); err != nil {
		return err
	}
	if !validNonce(h.Nonce) {
		return ferry.Errorf(ferry.EINVALID, "hand-off nonce %q is malformed", h.Nonce)
	}
	body := []byte(`{"login":"` + h.Login + `","expiresAt":` + strconv.FormatInt(h.Expires.Unix(), 10) + "}")
	_, err := st.PutIf(ctx, HandoffsPrefix(project)+h.Nonce, body, "")
	switch {
	case ferry.ErrorCode(err) == ferry.ECONFLICT:
		return ErrHandoffUsed
	case err != nil:
		return fmt.Errorf("record the hand-off of %s: %w", project, err)
	}
	return nil
}

func validLogin(s string) bool {
	if len(s) == 0 || len(s) > 39 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Cookie is an access cookie's value for host: kind, expiry, key id, signature.
func Cookie(key []byte, keyID, host, kind string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return kind + "." + e + "." + keyID + "." + mac(key, "cookie", host, kind, e, keyID)
}

// CheckCookie reports whether v is a live access cookie for host signed with key.
func CheckCookie(key []byte, keyID, host string, v []byte, now time.Time) bool {
	s := string(v) // the proxy calls this only for protected hosts; one small allocation is fine there
	kind, rest, ok := strings.Cut(s, ".")
	if !ok || len(kind) != 1 {
		return false
	}
	e, rest, ok := strings.Cut(rest, ".")
	if !ok {
		return false
	}
	id, sig, ok := strings.Cut(rest, ".")
	return ok && id == keyID && parseExp(e, now) && macEqual(sig, mac(key, "cookie", host, kind, e, id))
}

// CookieExpiry reads an access cookie's expiry (Unix seconds) without checking it; call it after CheckCookie.
func CookieExpiry(v []byte) (int64, bool) {
	_, rest, ok := bytes.Cut(v, []byte("."))
	if !ok {
		return 0, false
	}
	e, _, ok := bytes.Cut(rest, []byte("."))
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(e), 10, 64)
	return n, err == nil
}

// LoadKeyFile reads the hand-off key (at least 32 bytes; surrounding white space is dropped).
func LoadKeyFile(data []byte) ([]byte, error) {
	k := bytes.TrimSpace(data)
	if len(k) < 32 {
		return nil, ferry.Errorf(ferry.EINVALID, "the protection key file holds %d bytes; it needs at least 32 (openssl rand -hex 32 > key)", len(k))
	}
	return k, nil
}

// LocalNext is the path a visitor goes back to after signing in or entering the password: a path on the same
// host and nothing else. It is also the dashboard's auth.LocalPath, so the log-in page and the protected sites'
// hand-off refuse the same open redirects. Anything else is "/".
func LocalNext(next string) string {
	if next == "" || next[0] != '/' || len(next) > 2048 {
		return "/"
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c <= ' ' || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") || strings.HasPrefix(next, "//") {
		return "/"
	}
	out := (&url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery, Fragment: u.Fragment, RawFragment: u.RawFragment}).String()
	if !strings.HasPrefix(out, "/") || strings.HasPrefix(out, "//") || strings.ContainsAny(out, "\\\t\r\n") || len(out) > 2048 {
		return "/"
	}
	return out
}
