package proxy

import (
	"context"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/storage"
)

// sharedProxies starts n proxies over one file storage, each with its own storage counters, the way several
// proxy machines share one bucket.
func sharedProxies(t *testing.T, n int, cfg Config) []*testEnv {
	t.Helper()
	fst, err := storage.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	envs := make([]*testEnv, n)
	for i := range envs {
		envs[i] = newEnvOn(t, cfg, &flakyStorage{Storage: fst})
	}
	return envs
}

// waitBody polls host on e until it serves want, and returns how long that took from since; it fails after limit.
func waitBody(t *testing.T, e *testEnv, host, want string, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	for {
		r := e.do(t, "GET", host, "/")
		took := time.Since(since)
		if r.body == want {
			return took
		}
		if took > limit {
			t.Fatalf("%s still serves %q %v after the change (want %q)", e.addr, r.body, took, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAliasSignalTwoProxies: with an alias TTL of an hour, only the change signal can explain a promote, a
// rollback and a removal showing at two proxies that share one storage within a second.
func TestAliasSignalTwoProxies(t *testing.T) {
	envs := sharedProxies(t, 2, Config{AliasTTL: time.Hour, SignalInterval: 100 * time.Millisecond})
	pub := envs[0]
	v1 := pub.publish(t, "web", map[string]string{"index.html": "v1"}, nil, "production")
	v2 := pub.publish(t, "web", map[string]string{"index.html": "v2"}, nil)
	host := "web." + testDomain
	for _, e := range envs {
		waitBody(t, e, host, "v1", time.Now(), time.Second) // warm: the alias is now cached for an hour
	}
	ctx := context.Background()
	for _, step := range []struct {
		to, want string
	}{{v2, "v2"}, {v1, "v1"}, {v2, "v2"}} {
		if err := pub.store.AliasSet(ctx, "web", "production", step.to); err != nil {
			t.Fatal(err)
		}
		changed := time.Now()
		for _, e := range envs {
			waitBody(t, e, host, step.want, changed, 900*time.Millisecond)
		}
	}
	if err := pub.store.AliasDelete(ctx, "web", "production"); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	for _, e := range envs {
		for e.do(t, "GET", host, "/").status != 404 {
			if time.Since(deleted) > 900*time.Millisecond {
				t.Fatalf("%s still serves a deleted alias %v after", e.addr, time.Since(deleted))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// A new alias that was cached as missing shows up as quickly.
	if r := envs[1].do(t, "GET", "pr-1--web."+testDomain, "/"); r.status != 404 {
		t.Fatalf("pr-1 before it exists: %d", r.status)
	}
	if err := pub.store.AliasSet(ctx, "web", "pr-1", v1); err != nil {
		t.Fatal(err)
	}
	waitBody(t, envs[1], "pr-1--web."+testDomain, "v1", time.Now(), 900*time.Millisecond)
	for i, e := range envs {
		if c := counter(t, e.p.metrics.signalChanges); c < 5 {
			t.Errorf("proxy %d saw %v signal changes, want at least 5", i, c)
		}
	}
}

// TestAliasSignalOff is the control: without the signal the same promote waits for the TTL, so the test above
// measures the signal and not something else.
func TestAliasSignalOff(t *testing.T) {
	envs := sharedProxies(t, 1, Config{AliasTTL: time.Hour, SignalInterval: -1})
	e := envs[0]
	e.publish(t, "web", map[string]string{"index.html": "v1"}, nil, "production")
	v2 := e.publish(t, "web", map[string]string{"index.html": "v2"}, nil)
	host := "web." + testDomain
	waitBody(t, e, host, "v1", time.Now(), time.Second)
	if err := e.store.AliasSet(context.Background(), "web", "production", v2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if r := e.do(t, "GET", host, "/"); r.body != "v1" {
		t.Fatalf("without the signal the hour-long TTL should still hold v1, got %q", r.body)
	}
	if n := e.st.signalGets.Load(); n != 0 {
		t.Errorf("signal off, yet %d reads of it", n)
	}
}

// TestAliasSignalLost: while the signal cannot be read the proxy keeps serving and falls back to the TTL, and
// once it is back changes show quickly again. The cost is one GET per interval, whatever the number of sites.
func TestAliasSignalLost(t *testing.T) {
	const ttl = 600 * time.Millisecond
	envs := sharedProxies(t, 1, Config{AliasTTL: ttl, SignalInterval: 50 * time.Millisecond})
	e := envs[0]
	v1 := e.publish(t, "web", map[string]string{"index.html": "v1"}, nil, "production")
	v2 := e.publish(t, "web", map[string]string{"index.html": "v2"}, nil)
	e.publish(t, "docs", map[string]string{"index.html": "d1"}, nil, "production")
	host := "web." + testDomain
	waitBody(t, e, host, "v1", time.Now(), time.Second)
	waitBody(t, e, "docs."+testDomain, "d1", time.Now(), time.Second)

	e.st.signalDown.Store(true)
	time.Sleep(120 * time.Millisecond) // a few failed polls
	if err := e.store.AliasSet(context.Background(), "web", "production", v2); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	if r := e.do(t, "GET", host, "/"); r.status != 200 {
		t.Fatalf("signal lost: status %d, want the cached site", r.status)
	}
	waitBody(t, e, host, "v2", changed, ttl+400*time.Millisecond)
	if c := counter(t, e.p.metrics.signalErrors); c < 1 {
		t.Errorf("signal errors = %v, want some", c)
	}

	e.st.signalDown.Store(false)
	time.Sleep(150 * time.Millisecond)
	waitBody(t, e, host, "v2", time.Now(), time.Second) // re-cache under the current generation
	if err := e.store.AliasSet(context.Background(), "web", "production", v1); err != nil {
		t.Fatal(err)
	}
	waitBody(t, e, host, "v1", time.Now(), ttl/2+100*time.Millisecond)

	// Cost: one GET per interval for the whole storage.
	before, start := e.st.signalGets.Load(), time.Now()
	time.Sleep(time.Second)
	perSec := float64(e.st.signalGets.Load()-before) / time.Since(start).Seconds()
	if perSec > 25 {
		t.Errorf("%.1f signal reads per second at a 50ms interval, want at most ~20", perSec)
	}
}

// TestAliasSignalLatency reports the promote → visible distribution at two proxies with the default 250ms
// interval (bench/alias-signal.sh runs it); every sample must stay under 1s.
func TestAliasSignalLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 20 promotes")
	}
	envs := sharedProxies(t, 2, Config{AliasTTL: time.Hour})
	pub := envs[0]
	ids := []string{
		pub.publish(t, "web", map[string]string{"index.html": "a"}, nil, "production"),
		pub.publish(t, "web", map[string]string{"index.html": "b"}, nil),
	}
	bodies := []string{"a", "b"}
	host := "web." + testDomain
	for _, e := range envs {
		waitBody(t, e, host, "a", time.Now(), time.Second)
	}
	var lat []time.Duration
	start := time.Now()
	reads0 := envs[0].st.signalGets.Load() + envs[1].st.signalGets.Load()
	for i := 1; i <= 20; i++ {
		// A random pause, so that promotes do not lock onto the poll's phase.
		time.Sleep(time.Duration(rand.Int64N(int64(300 * time.Millisecond))))
		if err := pub.store.AliasSet(context.Background(), "web", "production", ids[i%2]); err != nil {
			t.Fatal(err)
		}
		changed := time.Now()
		for _, e := range envs {
			lat = append(lat, waitBody(t, e, host, bodies[i%2], changed, time.Second))
		}
	}
	reads := envs[0].st.signalGets.Load() + envs[1].st.signalGets.Load() - reads0
	perProxy := float64(reads) / 2 / time.Since(start).Seconds()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(f float64) time.Duration { return lat[int(f*float64(len(lat)-1))].Round(time.Millisecond) }
	t.Logf("promote → visible at 2 proxies, %d samples: min %v p50 %v p90 %v max %v; signal reads %.1f per proxy per second",
		len(lat), q(0), q(0.5), q(0.9), q(1), perProxy)
	if q(1) >= time.Second {
		t.Errorf("slowest promote took %v, want under 1s", q(1))
	}
}
