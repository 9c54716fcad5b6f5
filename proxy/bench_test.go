package proxy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
func BenchmarkHandleRange(b *testing.B) {
	benchHandle(b, "/assets/big-5KQ2ZQ3P.js", "Range", "bytes=100-99999999999999999999")
}

// benchServe sends GET path over one keep-alive loopback connection to Serve, so that the whole response path
// runs (fasthttp, the socket writes, sendfile for large files). The client reads exactly one response's bytes
// into a reused buffer, so allocations reported are the server's.
func benchServe(b *testing.B, path string) {
	p := benchProxy(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, p, time.Second) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: web." + testDomain + "\r\n\r\n")
	// The first response tells the size of every later one (same headers, same body).
	if _, err := c.Write(req); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	n, end := 0, -1
	for end < 0 {
		m, err := c.Read(buf[n:])
		if err != nil {
			b.Fatal(err)
		}
		n += m
		end = bytes.Index(buf[:n], []byte("\r\n\r\n"))
	}
	head := string(buf[:end])
	if !strings.HasPrefix(head, "HTTP/1.1 200 ") {
		b.Fatalf("%s: %s", path, head)
	}
	i := strings.Index(head, "Content-Length: ")
	size, err := strconv.Atoi(strings.SplitN(head[i+len("Content-Length: "):], "\r", 2)[0])
	if err != nil {
		b.Fatal(err)
	}
	total := end + 4 + size
	if _, err := io.ReadFull(c, buf[n:total]); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:total]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if !bytes.HasPrefix(buf, []byte("HTTP/1.1 200 ")) {
		b.Fatalf("last response: %.40q", buf)
	}
}

func BenchmarkServeSmall(b *testing.B) { benchServe(b, "/") }
func BenchmarkServeLarge(b *testing.B) { benchServe(b, "/assets/big-5KQ2ZQ3P.js") }
