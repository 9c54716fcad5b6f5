package retention_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/retention"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/proxy"
)

// TestProxyServesDuringGC: a real proxy with (almost) no blob cache serves the production alias and every
// deployment of the rollback window by id while a collection deletes the rest; afterwards a rollback to each
// deployment inside the window serves its own page through the proxy.
func TestProxyServesDuringGC(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("slow: builds a store of 40 deployments and serves it")
	}
	ctx := context.Background()
	_, st, keep := oldStore(t, 40, 20) // window: the current one and the 10 before it (keep)
	p, err := proxy.New(proxy.Config{Storage: st, Domain: "localhost", CacheBytes: 1, AliasTTL: 10 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := proxy.NewServer(p)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", ln.Addr().String())
	}}}
	get := func(host, path string) (int, string, error) {
		resp, err := client.Get("http://" + host + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served, failed atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				host := "web.localhost"
				if i%2 == 1 {
					host = keep[i%len(keep)] + "--web.localhost"
				}
				code, _, err := get(host, fmt.Sprintf("/p/%04d.html", i%20))
				if err != nil || code != http.StatusOK {
					failed.Add(1)
					t.Errorf("GET %s during the collection: %d %v", host, code, err)
					return
				}
				served.Add(1)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	c := &retention.Collector{Storage: st, Log: quiet()}
	rep, err := c.Project(ctx, "web", retention.Defaults, nil, true)
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.DeletedDeployments) != 29 {
		t.Errorf("deleted %d deployments, want 29", len(rep.DeletedDeployments))
	}
	t.Logf("%d requests served during a collection that deleted %d objects", served.Load(), len(rep.Deleted))

	ss := site.NewStore(st)
	for i, id := range keep {
		if err := ss.AliasSet(ctx, "web", "production", id); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("deployment %d page 7", 40-len(keep)+i)
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, body, err := get("web.localhost", "/p/0007.html")
			if err == nil && code == 200 && strings.Contains(body, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after a rollback to %s: %d %q %v, want %q", id, code, body, err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
