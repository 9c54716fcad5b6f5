package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/flagenv"
	"github.com/ferryhq/ferry/internal/storage"
)

// About is the one-line description `ferry -h` shows for the proxy.
const About = "serve every deployment at its own host name"

const about = `Serves every deployment at its own host name: <project>.DOMAIN is the production alias and
<name>--<project>.DOMAIN an alias (pr-42, git-main) or a deployment id. /healthz and /metrics answer on
any host that is not a site host, such as 127.0.0.1:8081.`

// Command is `ferry proxy`: it serves until ctx is canceled (SIGTERM or Ctrl-C), then drains open requests.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagenv.NewFlagSet("proxy", "ferry proxy [flags]", about, stderr)
	storageURL := fs.String("storage", "", "storage `URL`: file:///var/lib/ferry or s3://BUCKET/PREFIX?region=R (required)")
	domain := fs.String("domain", "localhost", "domain `D` that site host names end in")
	listen := fs.String("listen", ":8081", "`address` to listen on")
	cacheBytes := fs.Int64("cache-bytes", 256<<20, "memory budget for cached files, compressed variants included, in `bytes`")
	cacheDir := fs.String("cache-dir", "", "`folder` for cached large files, sent with sendfile (default: a temporary folder removed on exit)")
	cacheDiskBytes := fs.Int64("cache-disk-bytes", 4<<30, "disk budget for --cache-dir, in `bytes`")
	aliasTTL := fs.Duration("alias-ttl", 2*time.Second, "how long an alias is cached; a promote or rollback shows within it")
	shutdown := fs.Duration("shutdown-timeout", 10*time.Second, "how long to wait for open requests on shutdown")
	if err := flagenv.Parse(fs, args, os.Getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return ferry.Errorf(ferry.EINVALID, "unexpected arguments %q; ferry proxy takes flags only (see ferry proxy -h)", fs.Args())
	}
	if *storageURL == "" {
		return ferry.Errorf(ferry.EINVALID, "no storage: pass --storage file:///path or s3://bucket/prefix (or set FERRY_STORAGE)")
	}
	st, err := storage.Open(ctx, *storageURL)
	if err != nil {
		return err
	}
	log := slog.Default().With("component", "proxy")
	p, err := New(Config{
		Storage:        st,
		Domain:         *domain,
		CacheBytes:     *cacheBytes,
		CacheDir:       *cacheDir,
		CacheDiskBytes: *cacheDiskBytes,
		AliasTTL:       *aliasTTL,
		Log:            log,
	})
	if err != nil {
		return err
	}
	defer p.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return ferry.Errorf(ferry.EINVALID, "listen on %s: %w; pick another --listen address", *listen, err)
	}
	log.Info("serving sites", "listen", ln.Addr().String(), "domain", p.domain, "cache_bytes", p.cfg.CacheBytes, "cache_dir", p.cfg.CacheDir)
	return Serve(ctx, ln, p, *shutdown)
}

// Serve runs p on ln until ctx is canceled, then stops accepting and waits up to grace for open requests.
func Serve(ctx context.Context, ln net.Listener, p *Proxy, grace time.Duration) error {
	srv := NewServer(p)
	if tl, ok := ln.(*net.TCPListener); ok {
		ln = tcpListener{tl}
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		if err != nil {
			return ferry.Errorf(ferry.EUNAVAILABLE, "serve: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	p.log.Info("shutting down", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.ShutdownWithContext(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shut down proxy: %w", err)
	}
	<-done
	return nil
}

// NewServer wraps p in a fasthttp server tuned for serving static files.
func NewServer(p *Proxy) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                       p.Handle,
		Name:                          "ferry",
		ReadTimeout:                   30 * time.Second,
		WriteTimeout:                  2 * time.Minute,
		IdleTimeout:                   2 * time.Minute,
		MaxRequestBodySize:            64 << 10,
		ReadBufferSize:                8 << 10,
		NoDefaultContentType:          true,
		DisablePreParseMultipartForm:  true,
		DisableHeaderNamesNormalizing: false,
		Logger:                        fasthttpLogger{p.log},
	}
}

// fasthttpLogger routes fasthttp's own messages (connection errors) to slog.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn(fmt.Sprintf(format, args...), "source", "fasthttp")
}

// tcpListener hands out tcpConns. fasthttp still reaches the *net.TCPConn's ReadFrom (promoted through the
// embedding), so sendfile keeps working.
type tcpListener struct{ *net.TCPListener }

// Accept wraps each connection with its raw socket, fetched once per connection rather than per response.
func (l tcpListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return c, nil
	}
	return &tcpConn{TCPConn: c, raw: raw}, nil
}

// tcpConn is a client connection whose socket large responses cork while they are sent (see fileStream).
type tcpConn struct {
	*net.TCPConn
	raw syscall.RawConn
}
