package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/flagenv"
	"github.com/ferryhq/ferry/internal/protect"
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
	signalInterval := fs.Duration("signal-interval", 250*time.Millisecond, "how often to read the alias change signal (one small GET for the whole storage), so a promote or rollback shows within about this `interval`; 0 turns it off and leaves --alias-ttl")
	shutdown := fs.Duration("shutdown-timeout", 10*time.Second, "how long to wait for open requests on shutdown")
	proxyOrigins := fs.String("proxy-origins", "", "comma-separated `origins` (https://api.example.com,...) that sites' _redirects proxy rules (status 200 to a full URL) may fetch from; other origins get 502 (default: none)")
	proxyTimeout := fs.Duration("proxy-timeout", 30*time.Second, "time limit for one request to a proxy rule's origin")
	tlsf := addTLSFlags(fs)
	keyFile := fs.String("protection-key-file", "", "`file` with the key (32+ bytes) that checks the dashboard's sign-in hand-offs to protected sites; the same file as ferry app's (default: none, members cannot sign in)")
	signInURL := fs.String("sign-in-url", "", "public `URL` of the dashboard (ferry app --public-url) that visitors of members-only sites are sent to (default: none)")
	secureCookies := fs.Bool("secure-cookies", false, "mark protected sites' access cookies Secure on plain-HTTP requests too (behind a TLS-terminating load balancer)")
	memberTTL := fs.Duration("member-ttl", 10*time.Minute, "how long a member's access to a protected site lasts before the dashboard checks it again")
	if err := flagenv.Parse(fs, args, os.Getenv); err != nil {
		return err
	}
	var handoffKey []byte
	if *keyFile != "" {
		data, err := os.ReadFile(*keyFile)
		if err != nil {
			return ferry.Errorf(ferry.EINVALID, "read --protection-key-file: %w", err)
		}
		if handoffKey, err = protect.LoadKeyFile(data); err != nil {
			return err
		}
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
		SignalInterval: signalOff(*signalInterval),
		ProxyOrigins:   strings.Split(*proxyOrigins, ","),
		ProxyTimeout:   *proxyTimeout,
		HandoffKey:     handoffKey,
		SignInURL:      *signInURL,
		SecureCookies:  *secureCookies,
		MemberTTL:      *memberTTL,
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
	if tlsf.listen != "" {
		return tlsf.serve(ctx, p, ln, *shutdown)
	}
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
		MaxRequestBodySize:            p.cfg.ProxyMaxRequestBytes,
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

// tcpListener hands out tcpConns, whose raw socket large responses write to directly (see fileStream).
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
	tc := &tcpConn{TCPConn: c, raw: raw}
	tc.sendMoreFn, tc.sendfileFn = tc.sendMore, tc.sendfileFd
	return tc, nil
}

// tcpConn is a client connection that large responses write to with send(MSG_MORE) and sendfile. fasthttp
// serves one request at a time per connection, so the state of the write in progress can live here; the
// functions handed to RawConn.Write are made once per connection, so that a response allocates nothing.
type tcpConn struct {
	*net.TCPConn
	raw syscall.RawConn

	// more makes Write send with MSG_MORE: more data follows at once, so the kernel waits for it to fill
	// segments (like TCP_CORK for one call).
	more       bool
	wbuf       []byte
	wn         int
	werr       error
	sendMoreFn func(fd uintptr) bool

	sfFd       int
	sfOff      int64
	sfLeft     int64
	sfErr      error
	sendfileFn func(fd uintptr) bool
}

// Write writes p, with MSG_MORE while a fileStream flushes the headers that its file follows.
func (c *tcpConn) Write(p []byte) (int, error) {
	if !c.more {
		return c.TCPConn.Write(p)
	}
	c.wbuf, c.wn, c.werr = p, 0, nil
	err := c.raw.Write(c.sendMoreFn)
	n := c.wn
	c.wbuf = nil
	if err == nil {
		err = c.werr
	}
	return n, err
}

// sendMore is RawConn.Write's function for Write: false asks it to wait until the socket is writable.
func (c *tcpConn) sendMore(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		n, err := syscall.SendmsgN(int(fd), c.wbuf[c.wn:], nil, nil, syscall.MSG_MORE)
		switch {
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			c.werr = os.NewSyscallError("sendmsg", err)
			return true
		default:
			c.wn += n
		}
	}
	return true
}

// sendfile sends n bytes of the file fd from offset off, and reports how many it sent.
func (c *tcpConn) sendfile(fd int, off, n int64) (int64, error) {
	c.sfFd, c.sfOff, c.sfLeft, c.sfErr = fd, off, n, nil
	err := c.raw.Write(c.sendfileFn)
	if err == nil {
		err = c.sfErr
	}
	return n - c.sfLeft, err
}

// maxSendfile bounds one sendfile call, as the runtime's own sendfile loop does.
const maxSendfile = 4 << 20

func (c *tcpConn) sendfileFd(fd uintptr) bool {
	for c.sfLeft > 0 {
		n, err := syscall.Sendfile(int(fd), c.sfFd, &c.sfOff, int(min(c.sfLeft, maxSendfile)))
		switch {
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			c.sfErr = os.NewSyscallError("sendfile", err)
			return true
		case n == 0:
			c.sfErr = io.ErrUnexpectedEOF // the cache file is shorter than its blob
			return true
		default:
			c.sfLeft -= int64(n)
		}
	}
	return true
}

// signalOff maps the flag's 0 (off) to Config's negative.
func signalOff(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
