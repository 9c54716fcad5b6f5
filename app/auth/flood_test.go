package auth_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/auth"
)

// rssBytes is this process's resident set size, from /proc/self/statm.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip("no /proc/self/statm:", err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// TestLoginFlood is the attack of issue 11 item 8 on the real HTTP server (in this process, so its memory is
// measured here): 150 concurrent wrong-password log-ins for one account. At most the account's limit reach the
// argon2id hash (19 MiB each), the rest get 429 at once; memory stays bounded; /healthz answers quickly
// meanwhile; and afterwards the owner, on a browser that signed in before, still gets in with the right
// password while a new browser is locked out.
func TestLoginFlood(t *testing.T) {
	// Not parallel: it measures the process's memory.
	e := newEnv(t, nil)
	ctx := context.Background()
	owner := e.browser()
	wantStatus(t, owner.signup("owner@example.com", "the-owners-password"), http.StatusSeeOther)
	wantStatus(t, owner.post("/logout", nil, "/account"), http.StatusSeeOther)
	if owner.cookie("ferry_device") == nil {
		t.Fatal("sign-up set no device cookie")
	}

	attacker := e.browser()
	token := attacker.csrf("/login")
	form := url.Values{"email": {"owner@example.com"}, "password": {"wrong-guess"}, "csrf_token": {token}}.Encode()
	hashesBefore := e.auth.PasswordHashes()
	var peak atomic.Int64
	base := rssBytes(t)
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			if r := rssBytes(t); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	const n = 150
	var statuses sync.Map
	var wg sync.WaitGroup
	startGate := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGate
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/login", strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			res, err := attacker.c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			v, _ := statuses.LoadOrStore(res.StatusCode, new(atomic.Int64))
			v.(*atomic.Int64).Add(1)
		}()
	}
	close(startGate)
	// While the flood runs, /healthz answers quickly.
	time.Sleep(20 * time.Millisecond)
	hstart := time.Now()
	hres, err := http.Get(e.srv.URL + "/healthz")
	healthz := time.Since(hstart)
	if err != nil || hres.StatusCode != http.StatusOK {
		t.Fatalf("/healthz during the flood: %v %v", hres, err)
	}
	hres.Body.Close()
	wg.Wait()
	close(stop)
	sampler.Wait()

	count := func(status int) int64 {
		if v, ok := statuses.Load(status); ok {
			return v.(*atomic.Int64).Load()
		}
		return 0
	}
	hashed := e.auth.PasswordHashes() - hashesBefore
	growth := peak.Load() - base
	t.Logf("150 concurrent wrong log-ins: %d answered 401, %d 429, %d 503; %d argon2id hashes; RSS %d MiB -> peak +%d MiB; /healthz took %s",
		count(401), count(429), count(503), hashed, base>>20, growth>>20, healthz)
	if count(401) > 5 || hashed > 5 {
		t.Errorf("%d wrong passwords were checked (%d hashes); the account allows 5", count(401), hashed)
	}
	if count(401)+count(429)+count(503) != n {
		t.Errorf("unexpected answers: 401=%d 429=%d 503=%d of %d", count(401), count(429), count(503), n)
	}
	if growth > 128<<20 {
		t.Errorf("RSS grew by %d MiB under the flood; want under 128 MiB", growth>>20)
	}
	if healthz > time.Second {
		t.Errorf("/healthz took %s during the flood", healthz)
	}

	// The account is locked for browsers that never signed in as it...
	a := e.browser().login("owner@example.com", "the-owners-password")
	wantStatus(t, a, http.StatusTooManyRequests)
	// ...but not for the owner's own browser, which signed in before.
	wantStatus(t, owner.login("owner@example.com", "the-owners-password"), http.StatusSeeOther)
	if got := owner.whoami(); !strings.Contains(got, "owner@example.com") {
		t.Fatalf("the owner's known browser is not signed in: %q", got)
	}
	// A stolen device cookie is no way around the limit either: it has a budget of its own.
	if _, err := e.pool.Exec(ctx, `DELETE FROM login_attempts`); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, owner.post("/logout", nil, "/account"), http.StatusSeeOther)
	for i := 0; i < 5; i++ {
		wantStatus(t, owner.login("owner@example.com", "wrong-guess"), http.StatusUnauthorized)
	}
	wantStatus(t, owner.login("owner@example.com", "the-owners-password"), http.StatusTooManyRequests)
}

// TestHashesBounded: when every hash slot stays busy, a log-in waits HashWait and gets 503 with Retry-After,
// and that attempt does not count as a failure.
func TestHashesBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *auth.Config) { c.MaxConcurrentHashes = 1; c.HashWait = 50 * time.Millisecond })
	wantStatus(t, e.browser().signup("busy@example.com", "busy-password"), http.StatusSeeOther)
	var wg sync.WaitGroup
	var busy, other atomic.Int64
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := e.browser().login("nobody"+strconv.Itoa(i)+"@example.com", "wrong-guess")
			switch {
			case a.status == http.StatusServiceUnavailable && a.header.Get("Retry-After") != "" && strings.Contains(a.body, "busy"):
				busy.Add(1)
			default:
				other.Add(1)
			}
		}()
	}
	wg.Wait()
	if busy.Load() == 0 {
		t.Fatalf("8 concurrent log-ins with 1 hash slot and 50ms of patience: none was told the server is busy")
	}
	if n := e.count(`SELECT count(*) FROM login_attempts WHERE key LIKE 'account:%'`); int64(n) != other.Load() {
		t.Fatalf("%d attempts recorded, want only the %d that were checked", n, other.Load())
	}
}
