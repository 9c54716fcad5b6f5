// Package gcbench measures the retention collector on versitygw (issue 14): the time and the storage requests
// one collection of a large store takes, and the proxy's requests/s (wrk) while it runs against without it.
// Goal: the proxy keeps at least 0.9× its requests/s during a collection.
//
//	go test ./bench/gc -run '^$' -bench . -benchtime 1x                       # 1,000 deployments, 100,000 blobs
//	GC_DEPLOYMENTS=200 GC_BLOBS=20000 go test ./bench/gc -run '^$' -bench . -benchtime 1x
//
// The store holds GC_DEPLOYMENTS production deployments with GC_BLOBS blobs between them (each deployment its
// own pages plus a shared stylesheet), dated 60 days ago; the policy keeps the current one and the 10 before it,
// so nearly everything goes. Needs versitygw v1.8.0 and wrk.
package gcbench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/internal/retention"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
	"github.com/ferryhq/ferry/internal/storage/s3test"
	"github.com/ferryhq/ferry/proxy"
)

// counting counts storage requests by kind. DeleteMany counts its S3 requests (one per 1,000 keys).
type counting struct {
	storage.Storage
	get, stat, put, del, list atomic.Int64
}

func (c *counting) Get(ctx context.Context, k string) (io.ReadCloser, error) {
	c.get.Add(1)
	return c.Storage.Get(ctx, k)
}
func (c *counting) Stat(ctx context.Context, k string) (storage.ObjectInfo, error) {
	c.stat.Add(1)
	return c.Storage.Stat(ctx, k)
}
func (c *counting) Put(ctx context.Context, k string, b io.ReadSeeker, n int64, o storage.PutOptions) error {
	c.put.Add(1)
	return c.Storage.Put(ctx, k, b, n, o)
}
func (c *counting) Delete(ctx context.Context, k string) error {
	c.del.Add(1)
	return c.Storage.Delete(ctx, k)
}
func (c *counting) DeleteMany(ctx context.Context, keys []string) error {
	c.del.Add(int64((len(keys) + 999) / 1000))
	return c.Storage.DeleteMany(ctx, keys)
}
func (c *counting) List(ctx context.Context, p string) ([]storage.ObjectInfo, error) {
	objs, err := c.Storage.List(ctx, p)
	c.list.Add(int64(len(objs)/1000 + 1)) // ListObjectsV2 pages
	return objs, err
}

func (c *counting) String() string {
	return fmt.Sprintf("GET %d, HEAD %d, PUT %d, DeleteObjects/DELETE %d, LIST pages %d", c.get.Load(), c.stat.Load(), c.put.Load(), c.del.Load(), c.list.Load())
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// fill writes the store directly (blobs, manifests, the production alias): publishing 100,000 files through
// local folders would measure the disk, not the collector.
func fill(b *testing.B, st storage.Storage, deployments, blobs int) (current string) {
	ctx := context.Background()
	perDep := blobs / deployments
	start := time.Now().Add(-60 * 24 * time.Hour)
	shared := []byte("body{color:teal}")
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	put := func(key string, data []byte) {
		g.Go(func() error {
			return st.Put(gctx, key, bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: sum(data)})
		})
	}
	put(site.BlobKey("web", sum(shared)), shared)
	var ids []string
	for i := range deployments {
		id := site.NewDeploymentIDAt(start.Add(time.Duration(i) * time.Minute))
		ids = append(ids, id)
		m := site.Manifest{Version: site.ManifestVersion, Project: "web", Deployment: id, CreatedAt: start,
			Files: map[string]site.File{"/style.css": {Blob: sum(shared), Size: int64(len(shared)), ContentType: "text/css"}}, Aliases: []string{"production"}}
		for j := range perDep {
			body := make([]byte, 64)
			_, _ = rand.Read(body)
			copy(body, fmt.Sprintf("<p>%d/%d</p>", i, j))
			name := fmt.Sprintf("/p/%d.html", j)
			if j == 0 {
				name = "/index.html"
			}
			m.Files[name] = site.File{Blob: sum(body), Size: int64(len(body)), ContentType: "text/html; charset=utf-8"}
			put(site.BlobKey("web", sum(body)), body)
		}
		data, _ := json.Marshal(m)
		put(site.ManifestKey("web", id), data)
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	current = ids[len(ids)-1]
	if err := site.NewStore(st).AliasSet(ctx, "web", "production", current); err != nil {
		b.Fatal(err)
	}
	return current
}

var rpsRE = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// wrk runs wrk against the proxy for d and returns requests/s.
func wrk(b *testing.B, addr string, d time.Duration) float64 {
	out, err := exec.Command("wrk", "-t2", "-c64", "-d"+strconv.Itoa(int(d.Seconds()))+"s", "-H", "Host: web.localhost", "http://"+addr+"/").CombinedOutput()
	if err != nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	m := rpsRE.FindSubmatch(out)
	if m == nil {
		b.Fatalf("wrk printed no rate:\n%s", out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	if strings.Contains(string(out), "Non-2xx") {
		b.Fatalf("the proxy answered errors during the run:\n%s", out)
	}
	return v
}

func BenchmarkGC(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Skip("wrk is not installed: apt-get install wrk")
	}
	deployments, blobs := envInt("GC_DEPLOYMENTS", 1000), envInt("GC_BLOBS", 100_000)
	srv := s3test.StartVersityGW(b)
	for range b.N {
		raw := srv.Open(b, fmt.Sprintf("bench-%d", time.Now().UnixNano()))
		t0 := time.Now()
		fill(b, raw, deployments, blobs)
		b.Logf("filled %d deployments, %d blobs in %s", deployments, blobs, time.Since(t0).Round(time.Millisecond))

		p, err := proxy.New(proxy.Config{Storage: raw, Domain: "localhost", Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		server := proxy.NewServer(p)
		go func() { _ = server.Serve(ln) }()
		addr := ln.Addr().String()

		// Without a collection, then during one, for the same time.
		c := &counting{Storage: raw}
		col := &retention.Collector{Storage: c, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return time.Now().Add(48 * time.Hour) }} // blobs were just written
		pol := retention.Defaults
		wrk(b, addr, 2*time.Second) // warm the proxy's caches
		var wg sync.WaitGroup
		var rep *retention.Report
		var took time.Duration
		var gcErr error
		window := time.Duration(envInt("GC_WINDOW_SECONDS", 10)) * time.Second
		base := wrk(b, addr, window)
		wg.Go(func() {
			t := time.Now()
			rep, gcErr = col.Project(context.Background(), "web", pol, nil, true)
			took = time.Since(t)
		})
		during := wrk(b, addr, window)
		wg.Wait()
		if gcErr != nil {
			b.Fatal(gcErr)
		}
		n, bytes := rep.Bytes()
		b.Logf("collection: %s, deleted %d objects (%d bytes) of %d deployments / %d blobs; requests: %s", took.Round(time.Millisecond), n, bytes, rep.Before.Deployments, rep.Before.Blobs, c)
		b.Logf("proxy: %.0f requests/s without a collection, %.0f during one (%.2f×; the collection ran %s of the %s window)", base, during, during/base, took.Round(time.Millisecond), window)
		b.ReportMetric(took.Seconds(), "gc-s")
		b.ReportMetric(during/base, "rps-ratio")
		b.ReportMetric(float64(n), "deleted")
		_ = server.Shutdown()
		p.Close()
	}
}
