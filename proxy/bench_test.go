package proxy

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// benchProxy publishes the web fixture and returns a warm proxy.
func benchProxy(b *testing.B) *Proxy {
	b.Helper()
	fst, err := storage.NewFile(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	for name, body := range webSite() {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := site.NewStore(fst).Publish(context.Background(), site.PublishParams{Project: "web", Dir: dir, Aliases: []string{"production"}}); err != nil {
		b.Fatal(err)
	}
	p, err := New(Config{Storage: fst, Domain: testDomain, CacheDir: b.TempDir(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// benchHandle runs the handler on a reused RequestCtx, as a fasthttp worker does, and fails on a wrong status.
func benchHandle(b *testing.B, path string, headers ...string) {
	p := benchProxy(b)
	var ctx fasthttp.RequestCtx
	setup := func() {
		ctx.Request.Reset()
		ctx.Request.SetRequestURI(path)
		ctx.Request.Header.SetHost("web." + testDomain)
		for i := 0; i+1 < len(headers); i += 2 {
			ctx.Request.Header.Set(headers[i], headers[i+1])
		}
	}
	setup()
	p.Handle(&ctx) // warm the caches
	want := ctx.Response.StatusCode()
	if want >= 400 {
		b.Fatalf("%s: status %d", path, want)
	}
	ctx.Response.Reset()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p.Handle(&ctx)
		if ctx.Response.StatusCode() != want {
			b.Fatalf("status %d", ctx.Response.StatusCode())
		}
		ctx.Response.Reset()
	}
}

func BenchmarkHandleSmall(b *testing.B)    { benchHandle(b, "/") }
func BenchmarkHandleCleanURL(b *testing.B) { benchHandle(b, "/about") }
func BenchmarkHandleBrotli(b *testing.B)   { benchHandle(b, "/", "Accept-Encoding", "gzip, deflate, br") }
func BenchmarkHandleNotModified(b *testing.B) {
	benchHandle(b, "/", "If-None-Match", `"`+sha(indexHTML)+`"`)
}
func BenchmarkHandleLarge(b *testing.B)    { benchHandle(b, "/assets/big-5KQ2ZQ3P.js") }
func BenchmarkHandleRedirect(b *testing.B) { benchHandle(b, "/old") }
