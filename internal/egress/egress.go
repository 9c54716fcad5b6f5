// Package egress is the HTTP proxy that is a build's only way out of its network namespace. A build runs with
// no network but loopback; npm, yarn, pnpm, corepack and git reach the package registries and git hosts
// through this proxy (CONNECT for https, absolute-URL requests for plain http), and the proxy connects only
// where the address policy (internal/netpolicy) allows: never to the host's own services, the cloud metadata
// endpoint or the private network unless the operator allowed that range. The check runs on the resolved
// address right before connect, so a DNS answer that points inside cannot get around it.
//
// The proxy runs in the build's parent (`ferry build`), which serves it on a unix socket that is bound into
// the sandbox; inside, a small forwarder (Forward, reached through ForwardArg) listens on 127.0.0.1 and
// hands each connection to that socket.
package egress

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/netpolicy"
)

// Config configures a Proxy. Every field but Policy has a default.
type Config struct {
	// Policy decides which addresses may be reached. Its zero value refuses every non-public address.
	Policy netpolicy.Policy
	// DialTimeout bounds resolving and connecting to an upstream. Default 15s.
	DialTimeout time.Duration
	// IdleTimeout closes a tunnel or a client connection that moved no byte for this long. Default 2m.
	IdleTimeout time.Duration
	// HeaderTimeout bounds reading a request's header. Default 10s.
	HeaderTimeout time.Duration
	// MaxHeaderBytes caps a request's header. Default 64 KiB.
	MaxHeaderBytes int
	// MaxConns caps the client connections served at once; more wait for a free slot. Default 256, which
	// is well above what npm (16 sockets by default) or pnpm open.
	MaxConns int
	// Token, when set, is the password every request must carry as Proxy-Authorization (Basic, any user
	// name). The proxy that the clone reaches over host loopback needs one, since any host user can connect
	// there; the one on a build's private socket does not.
	Token string
	// Log receives one line per refused request and per upstream failure. nil discards.
	Log *slog.Logger
	// Resolver resolves host names. nil means net.DefaultResolver.
	Resolver *net.Resolver
}

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 15 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.HeaderTimeout <= 0 {
		c.HeaderTimeout = 10 * time.Second
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 256
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Proxy is the egress proxy of one build (or one clone). Create it with New, then Serve a listener.
type Proxy struct {
	cfg         Config
	dialer      *net.Dialer
	dialFunc    func(ctx context.Context, network, addr string) (net.Conn, error) // dialer.DialContext; tests wrap it
	transport   *http.Transport
	srv         *http.Server
	refused     atomic.Int64
	lastRefusal atomic.Value // string: the last refusal's reason
	tunnels     sync.WaitGroup
	mu          sync.Mutex
	open        map[net.Conn]struct{} // hijacked connections, closed by Close
	closed      bool
}

// New returns a proxy that enforces cfg.Policy on every connection it makes.
func New(cfg Config) *Proxy {
	cfg = cfg.withDefaults()
	p := &Proxy{cfg: cfg, open: map[net.Conn]struct{}{}}
	p.dialer = cfg.Policy.Dialer(cfg.DialTimeout)
	if cfg.Resolver != nil {
		p.dialer.Resolver = cfg.Resolver
	}
	p.dialFunc = p.dialer.DialContext
	p.transport = &http.Transport{
		Proxy: nil, // never chain to the host's own proxy settings
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return p.dial(ctx, addr)
		},
		MaxIdleConns:           32,
		IdleConnTimeout:        cfg.IdleTimeout,
		ResponseHeaderTimeout:  2 * cfg.IdleTimeout,
		DisableCompression:     true, // pass bodies through as the upstream sent them
		MaxResponseHeaderBytes: int64(cfg.MaxHeaderBytes) * 4,
	}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: cfg.HeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
	}
	return p
}

// Serve accepts connections on ln until Close. It returns nil after Close.
func (p *Proxy) Serve(ln net.Listener) error {
	err := p.srv.Serve(&limitListener{Listener: ln, sem: make(chan struct{}, p.cfg.MaxConns)})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the proxy and every connection and tunnel it holds.
func (p *Proxy) Close() error {
	err := p.srv.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.tunnels.Wait()
	p.transport.CloseIdleConnections()
	return err
}

// Refused counts the requests the policy refused, for the build's summary line.
func (p *Proxy) Refused() int64 { return p.refused.Load() }

// LastRefusal is the reason of the latest refusal, or "": git and npm show only "403" from a proxy, so the
// caller explains the failure with it.
func (p *Proxy) LastRefusal() string {
	s, _ := p.lastRefusal.Load().(string)
	return s
}

// ServeHTTP handles CONNECT (a tunnel, for https and anything over TLS) and absolute-URL requests (plain
// http); anything else is not a proxy request and gets 400.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.cfg.Token != "" && !p.authorized(r) {
		w.Header().Set("Proxy-Authenticate", `Basic realm="ferry egress"`)
		http.Error(w, "ferry egress proxy: proxy authentication required", http.StatusProxyAuthRequired)
		return
	}
	if r.Method == http.MethodConnect {
		p.connect(w, r)
		return
	}
	if r.URL == nil || !r.URL.IsAbs() || r.URL.Scheme != "http" || r.URL.Host == "" {
		http.Error(w, "ferry egress proxy: send CONNECT host:port, or an absolute http:// URL", http.StatusBadRequest)
		return
	}
	p.forward(w, r)
}

func (p *Proxy) authorized(r *http.Request) bool {
	h := r.Header.Get("Proxy-Authorization")
	enc, ok := strings.CutPrefix(h, "Basic ")
	if !ok {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return false
	}
	_, pass, _ := strings.Cut(string(b), ":")
	return subtle.ConstantTimeCompare([]byte(pass), []byte(p.cfg.Token)) == 1
}

// target checks a CONNECT authority: host:port with a port in 1..65535.
func target(authority string) (string, error) {
	host, port, err := net.SplitHostPort(authority)
	if err != nil || host == "" {
		return "", fmt.Errorf("%q is not host:port", authority)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%q has no valid port", authority)
	}
	return net.JoinHostPort(host, port), nil
}

// dial connects to addr under the policy. A refusal is ferry's EFORBIDDEN, logged once here.
func (p *Proxy) dial(ctx context.Context, addr string) (net.Conn, error) {
	host, _, _ := net.SplitHostPort(addr)
	// Numeric spellings that the resolver would read as an address (2130706433, 0x7f.1) are judged as that
	// address; Go's resolver would look them up as names and fail, but refuse them plainly instead.
	if a, ok := netpolicy.ParseLegacyIPv4(host); ok {
		if err := p.cfg.Policy.Check(a); err != nil {
			return nil, err
		}
	}
	return p.dialFunc(ctx, "tcp", addr)
}

// fail answers a request that could not be served: 403 for the policy's refusal, 502 for the rest.
func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	if ferry.ErrorCode(err) == ferry.EFORBIDDEN {
		p.refused.Add(1)
		p.lastRefusal.Store(what + ": " + ferry.ErrorMessage(err))
		p.cfg.Log.Warn("egress refused", "method", r.Method, "target", what, "reason", ferry.ErrorMessage(err))
		http.Error(w, "ferry egress proxy: "+ferry.ErrorMessage(err), http.StatusForbidden)
		return
	}
	p.cfg.Log.Info("egress upstream failed", "method", r.Method, "target", what, "err", err.Error())
	http.Error(w, "ferry egress proxy: cannot reach "+what+": "+err.Error(), http.StatusBadGateway)
}

func (p *Proxy) connect(w http.ResponseWriter, r *http.Request) {
	addr, err := target(r.RequestURI)
	if err != nil {
		http.Error(w, "ferry egress proxy: CONNECT target "+err.Error(), http.StatusBadRequest)
		return
	}
	up, err := p.dial(r.Context(), addr)
	if err != nil {
		p.fail(w, r, addr, err)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "ferry egress proxy: cannot tunnel on this connection", http.StatusInternalServerError)
		return
	}
	client, rw, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	if !p.track(client) {
		client.Close()
		up.Close()
		return
	}
	p.tunnels.Add(1)
	defer p.tunnels.Done()
	defer p.untrack(client)
	defer client.Close()
	defer up.Close()
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	// Bytes the client sent right after its CONNECT (a TLS ClientHello, often) are already buffered.
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		if _, err := up.Write(b); err != nil {
			return
		}
	}
	p.splice(client, up)
}

// splice copies both ways until one side ends or the tunnel is idle for IdleTimeout.
func (p *Proxy) splice(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		buf := make([]byte, 64<<10)
		// Deadlines are pushed out at most once a second: setting them on every read costs more than the copy.
		var pushed time.Time
		for {
			if now := time.Now(); now.Sub(pushed) > time.Second {
				pushed = now
				_ = src.SetReadDeadline(now.Add(p.cfg.IdleTimeout))
				_ = dst.SetWriteDeadline(now.Add(p.cfg.IdleTimeout))
			}
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		if tc, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.open[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
}

// hopHeaders are per-connection headers that a proxy must not forward (RFC 9110, 7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHop(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// forward relays one plain-http request. The transport dials through the policy, so a redirect the client
// follows comes back here as a new request and is checked again.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request) {
	host := r.URL.Host
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), "80")
	}
	if _, err := target(host); err != nil {
		http.Error(w, "ferry egress proxy: "+err.Error(), http.StatusBadRequest)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.Header = r.Header.Clone()
	removeHop(out.Header)
	if r.ContentLength == 0 {
		out.Body = nil
	}
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		p.fail(w, r, host, err)
		return
	}
	defer resp.Body.Close()
	removeHop(resp.Header)
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// limitListener holds at most cap(sem) connections open: Accept waits for a slot, so a flood of connections
// queues in the kernel's backlog instead of costing the proxy memory.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes the connection when the underlying one can (TCP, unix), so a tunnel ends cleanly.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
