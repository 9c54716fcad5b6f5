package protect_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/protect"
	"github.com/ferryhq/ferry/internal/storage"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func TestShareToken(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	tok := protect.ShareToken(key, "pr-1--web.localhost", now.Add(time.Hour))
	if !protect.CheckShare(key, "pr-1--web.localhost", tok, now) {
		t.Fatal("a live share token is refused")
	}
	if protect.CheckShare(key, "pr-1--web.localhost", tok, now.Add(2*time.Hour)) {
		t.Error("an expired share token is accepted")
	}
	if protect.CheckShare(key, "pr-1--api.localhost", tok, now) {
		t.Error("a share token for one host opens another")
	}
	if protect.CheckShare([]byte("another key, after a rotation..."), "pr-1--web.localhost", tok, now) {
		t.Error("a share token survives a key rotation")
	}
	exp, sig, _ := strings.Cut(tok, ".")
	if protect.CheckShare(key, "pr-1--web.localhost", "9"+exp+"."+sig, now) {
		t.Error("a share token with a moved expiry is accepted")
	}
}

func TestHandoffToken(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	tok := protect.HandoffToken(key, "pr-1--web.localhost", "octocat", now)
	ho, ok := protect.CheckHandoff(key, "pr-1--web.localhost", tok, now.Add(59*time.Second))
	if !ok || ho.Login != "octocat" || len(ho.Nonce) != 22 || !ho.Expires.Equal(now.Add(protect.HandoffTTL)) {
		t.Fatalf("CheckHandoff = %+v, %v", ho, ok)
	}
	if again := protect.HandoffToken(key, "pr-1--web.localhost", "octocat", now); again == tok {
		t.Error("two hand-off tokens for one login, host and second are equal: a second sign-in would be refused as a replay")
	}
	parts := strings.Split(tok, ".")
	parts[1] = "AAAAAAAAAAAAAAAAAAAAAA"
	if _, ok := protect.CheckHandoff(key, "pr-1--web.localhost", strings.Join(parts, "."), now); ok {
		t.Error("a hand-off token with another nonce is accepted")
	}
	if _, ok := protect.CheckHandoff(key, "pr-1--web.localhost", tok, now.Add(61*time.Second)); ok {
		t.Error("a hand-off token lives longer than 60 s")
	}
	if _, ok := protect.CheckHandoff(key, "web.localhost", tok, now); ok {
		t.Error("a hand-off token for one host opens another")
	}
	if _, ok := protect.CheckHandoff(key, "pr-1--web.localhost", strings.Replace(tok, "octocat", "hubot", 1), now); ok {
		t.Error("a hand-off token with another login is accepted")
	}
	// A share token is not a hand-off token, and the other way round.
	share := protect.ShareToken(key, "pr-1--web.localhost", now.Add(time.Minute))
	if _, ok := protect.CheckHandoff(key, "pr-1--web.localhost", share, now); ok {
		t.Error("a share token passes as a hand-off token")
	}
}

func TestCookie(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	c := protect.Cookie(key, "k1", "pr-1--web.localhost", protect.KindMember, now.Add(time.Minute))
	if !protect.CheckCookie(key, "k1", "pr-1--web.localhost", []byte(c), now) {
		t.Fatal("a live cookie is refused")
	}
	for name, bad := range map[string]bool{
		"expired":    protect.CheckCookie(key, "k1", "pr-1--web.localhost", []byte(c), now.Add(2*time.Minute)),
		"other host": protect.CheckCookie(key, "k1", "pr-1--other.localhost", []byte(c), now),
		"rotated":    protect.CheckCookie(key, "k2", "pr-1--web.localhost", []byte(c), now),
		"kind":       protect.CheckCookie(key, "k1", "pr-1--web.localhost", []byte("p"+c[1:]), now),
		"empty":      protect.CheckCookie(key, "k1", "pr-1--web.localhost", nil, now),
	} {
		if bad {
			t.Errorf("%s cookie accepted", name)
		}
	}
}

func TestSettingsRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := storage.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := protect.Get(ctx, st, "web"); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Fatalf("Get without settings: %v, want ENOTFOUND", err)
	}
	h, err := protect.HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	s := &protect.Settings{Mode: protect.Previews, PasswordHash: h}
	s.Rotate()
	if err := protect.Put(ctx, st, "web", s); err != nil {
		t.Fatal(err)
	}
	got, err := protect.Get(ctx, st, "web")
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode != protect.Previews || string(got.Key) != string(s.Key) || !protect.CheckPassword(got.PasswordHash, "correct horse") || protect.CheckPassword(got.PasswordHash, "wrong horse") {
		t.Fatalf("read back %+v", got)
	}
	if strings.Contains(got.PasswordHash, "correct horse") {
		t.Fatal("the password is stored in plain text")
	}
	if _, err := protect.HashPassword("short"); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("a 5-character password: %v, want EINVALID", err)
	}
	if err := protect.Put(ctx, st, "web", &protect.Settings{Mode: "secret"}); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("bad mode: %v, want EINVALID", err)
	}
}

func TestModeProtects(t *testing.T) {
	t.Parallel()
	if protect.Previews.Protects("production") || !protect.Previews.Protects("pr-1") || !protect.All.Protects("production") || protect.Public.Protects("pr-1") {
		t.Fatal("Protects is wrong")
	}
}

var nexts = []string{"/", "/a?b=c#d", "//evil.example", "/\\evil", "https://evil.example/", "/%2f%2fevil", "/\t/evil", "", "javascript:alert(1)", "/caf\u00e9"}

// FuzzLocalNext: whatever next is, the result is a path on this host (one leading slash, no scheme or host, no
// byte a browser would drop or turn into a slash), and cleaning it again changes nothing. auth.LocalPath is this
// function; app/auth's TestLocalPath and TestBrowserLoginRedirect try the attacks on it.
func FuzzLocalNext(f *testing.F) {
	for _, n := range nexts {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, n string) {
		got := protect.LocalNext(n)
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\t\r\n ") {
			t.Fatalf("LocalNext(%q) = %q: not a path on this host", n, got)
		}
		if u, err := url.Parse(got); err != nil || u.Scheme != "" || u.Host != "" {
			t.Fatalf("LocalNext(%q) = %q parses with a scheme or host (%v)", n, got, err)
		}
		if again := protect.LocalNext(got); again != got {
			t.Fatalf("LocalNext(%q) = %q, and again %q", n, got, again)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version":1,"mode":"previews","keyId":"k1","key":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}`))
	f.Add([]byte(`{"version":1,"mode":"all"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := protect.Parse(data)
		if err == nil && (len(s.Key) < 32 || s.KeyID == "") {
			t.Fatalf("accepted %q", data)
		}
	})
}

func FuzzCheckCookie(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(protect.Cookie(key, "k1", "h", protect.KindMember, now.Add(time.Minute)))
	f.Add("m.1.k1.x")
	f.Fuzz(func(t *testing.T, v string) {
		ok := protect.CheckCookie(key, "k1", "h", []byte(v), now)
		if ok && v != protect.Cookie(key, "k1", "h", v[:1], time.Unix(mustExp(v), 0)) {
			t.Fatalf("accepted a cookie it did not sign: %q", v)
		}
	})
}

func mustExp(v string) int64 {
	parts := strings.Split(v, ".")
	var n int64
	for _, c := range parts[1] {
		n = n*10 + int64(c-'0')
	}
	return n
}
