package proxy

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
)

// TLSOptions configures the proxy's HTTPS listener: a certificate from files (reloaded when they change), or
// certificates from an ACME CA (ACME.CA set).
type TLSOptions struct {
	// CertFile and KeyFile are a PEM certificate chain and its key, for operators with their own CA. They are
	// checked for changes every CertReload (default 10s) and swapped in without a restart.
	CertFile, KeyFile string
	CertReload        time.Duration
	// ACME, when ACME.CA is set and no CertFile is, gets certificates from an ACME CA.
	ACME ACMEOptions
	// HTTPSPort is the port HTTP → HTTPS redirects point at; 443 (the default) is left out of the URL.
	HTTPSPort int
	// NoRedirect keeps the plain listener serving sites instead of redirecting them to HTTPS.
	NoRedirect bool
}

// TLS is the HTTPS side of a Proxy: the tls.Config its listener uses, and the handler of the plain listener
// (ACME HTTP-01 challenges, then redirects to HTTPS).
type TLS struct {
	p      *Proxy
	opts   TLSOptions
	config *tls.Config
	acme   *acmeManager
	// challenge answers /.well-known/acme-challenge/ on the plain listener; nil without ACME.
	challenge fasthttp.RequestHandler
	stop      context.CancelFunc
}

var (
	pageMoved     = htmlPage("Moved", "This site is served over HTTPS.")
	acmeChallenge = []byte("/.well-known/acme-challenge/")
	httpsScheme   = []byte("https://")
)

// NewTLS prepares the HTTPS side of p. Without a certificate file it needs opts.ACME.CA. Close stops its
// background work (certificate reloads, renewals).
func NewTLS(ctx context.Context, p *Proxy, opts TLSOptions) (*TLS, error) {
	if opts.CertReload <= 0 {
		opts.CertReload = 10 * time.Second
	}
	if opts.HTTPSPort == 0 {
		opts.HTTPSPort = 443
	}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	t := &TLS{p: p, opts: opts, stop: stop}
	switch {
	case opts.CertFile != "" || opts.KeyFile != "":
		if opts.CertFile == "" || opts.KeyFile == "" {
			stop()
			return nil, ferry.Errorf(ferry.EINVALID, "pass both --tls-cert-file and --tls-key-file, or neither to get certificates from --acme-ca")
		}
		cf := &certFile{certPath: opts.CertFile, keyPath: opts.KeyFile, log: p.log, store: p.store, timeout: p.cfg.StorageTimeout}
		if err := cf.load(); err != nil {
			stop()
			return nil, err
		}
		go cf.watch(bg, opts.CertReload)
		t.config = &tls.Config{GetCertificate: cf.get}
	case opts.ACME.CA != "":
		m, err := newACME(bg, p, opts.ACME)
		if err != nil {
			stop()
			return nil, err
		}
		t.acme, t.challenge = m, m.httpChallengeHandler()
		t.config = m.tlsConfig(opts.ACME.HandshakeTimeout)
	default:
		stop()
		return nil, ferry.Errorf(ferry.EINVALID, "HTTPS needs a certificate: pass --tls-cert-file and --tls-key-file, or --acme-ca")
	}
	t.config.MinVersion = tls.VersionTLS12
	t.config.NextProtos = append(t.config.NextProtos, "http/1.1")
	return t, nil
}

// Config is the tls.Config of the HTTPS listener.
func (t *TLS) Config() *tls.Config { return t.config }

// Close stops certificate reloads and ACME maintenance.
func (t *TLS) Close() {
	t.stop()
	if t.acme != nil {
		t.acme.close()
	}
}

// PlainHandler is the handler of the plain HTTP listener next to an HTTPS one: ACME HTTP-01 challenges are
// answered, site hosts are redirected to HTTPS, and other hosts (health checks on an IP) get the proxy's usual
// answer.
func (t *TLS) PlainHandler(ctx *fasthttp.RequestCtx) {
	if t.challenge != nil && bytes.HasPrefix(ctx.URI().PathOriginal(), acmeChallenge) {
		t.challenge(ctx)
		return
	}
	if t.opts.NoRedirect {
		t.p.Handle(ctx)
		return
	}
	var buf [hostBufLen]byte
	host, ok := normHost(buf[:0], ctx.Request.Header.Host())
	if !ok {
		t.p.Handle(ctx)
		return
	}
	e := t.p.host(host)
	if !e.site || e.custom && t.p.resolve(e).noDomain {
		t.p.Handle(ctx)
		return
	}
	loc := make([]byte, 0, len(httpsScheme)+len(host)+8+len(ctx.URI().RequestURI()))
	loc = append(append(loc, httpsScheme...), host...)
	if t.opts.HTTPSPort != 443 {
		loc = strconv.AppendInt(append(loc, ':'), int64(t.opts.HTTPSPort), 10)
	}
	loc = append(loc, ctx.URI().RequestURI()...)
	ctx.Response.Header.SetCanonical(hLocation, loc)
	status := fasthttp.StatusMovedPermanently
	if !ctx.IsGet() && !ctx.IsHead() {
		status = fasthttp.StatusPermanentRedirect // keeps the method and body
	}
	page(ctx, status, pageMoved)
	t.p.metrics.observe(status)
}

// ServeTLS runs p on a plain listener (which redirects to HTTPS) and an HTTPS listener until ctx is canceled,
// then drains both for up to grace.
func ServeTLS(ctx context.Context, plain, secure net.Listener, p *Proxy, t *TLS, grace time.Duration) error {
	plainSrv := NewServer(p)
	plainSrv.Handler = t.PlainHandler
	tlsSrv := NewServer(p)
	// Bodies reach crypto/tls through fasthttp's buffered writer: a buffer of one full TLS record (16 KiB of
	// payload) or more sends large files in full records, not 4 KiB ones (fewer records, seals and writes).
	tlsSrv.WriteBufferSize = 32 << 10
	if tl, ok := plain.(*net.TCPListener); ok {
		plain = tcpListener{tl}
	}
	done := make(chan error, 2)
	go func() { done <- plainSrv.Serve(plain) }()
	go func() { done <- tlsSrv.Serve(tls.NewListener(secure, t.config)) }()
	var err error
	select {
	case err = <-done:
		if err != nil {
			err = ferry.Errorf(ferry.EUNAVAILABLE, "serve: %w", err)
		}
	case <-ctx.Done():
		p.log.Info("shutting down", "grace", grace)
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	for _, srv := range []*fasthttp.Server{plainSrv, tlsSrv} {
		if serr := srv.ShutdownWithContext(sctx); serr != nil && !errors.Is(serr, context.DeadlineExceeded) && err == nil {
			err = fmt.Errorf("shut down proxy: %w", serr)
		}
	}
	return err
}

// certFile is a certificate and key read from files and read again when either file changes.
type certFile struct {
	certPath, keyPath string
	log               *slog.Logger
	cur               atomic.Pointer[tls.Certificate]
	certMod, keyMod   time.Time
	// store receives acme-status/<host>.json for verified custom domains (report), so that the dashboard says
	// active, or why not, without ACME; nil reports nothing.
	store   *site.Store
	timeout time.Duration
}

func (c *certFile) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }

// load reads both files; a pair that does not parse or match leaves the current certificate in place.
func (c *certFile) load() error {
	cs, err1 := os.Stat(c.certPath)
	ks, err2 := os.Stat(c.keyPath)
	if err := errors.Join(err1, err2); err != nil {
		return ferry.Errorf(ferry.EINVALID, "read TLS certificate: %w; check --tls-cert-file and --tls-key-file", err)
	}
	cert, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		return ferry.Errorf(ferry.EINVALID, "load TLS certificate %s with key %s: %w", c.certPath, c.keyPath, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return ferry.Errorf(ferry.EINVALID, "parse TLS certificate %s: %w", c.certPath, err)
	}
	cert.Leaf = leaf
	c.cur.Store(&cert)
	c.certMod, c.keyMod = cs.ModTime(), ks.ModTime()
	c.log.Info("TLS certificate loaded", "file", c.certPath, "names", leaf.DNSNames, "not_after", leaf.NotAfter)
	return nil
}

// watch reloads the pair when a file's modification time changes, until ctx ends.
func (c *certFile) watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	c.report(ctx)
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if i%6 == 0 { // new domains are verified every 30 s or so: a listing every 6 ticks keeps up
			c.report(ctx)
		}
		cs, err1 := os.Stat(c.certPath)
		ks, err2 := os.Stat(c.keyPath)
		if err1 != nil || err2 != nil || cs.ModTime().Equal(c.certMod) && ks.ModTime().Equal(c.keyMod) {
			continue
		}
		if err := c.load(); err != nil {
			// Half-written files during a renewal are normal; the next tick tries again.
			c.log.Warn("TLS certificate changed but cannot be loaded; keeping the current one", "err", err)
			continue
		}
		c.report(ctx)
	}
}

// report writes each verified custom domain's certificate status as the certificate file sees it: active when
// the file's names cover the host, an error naming the fix when they do not. ACME does this after each
// issuance; with a file nothing else would, and the dashboard would say "issuing" forever. Only changes are
// written.
func (c *certFile) report(ctx context.Context) {
	cert := c.cur.Load()
	if c.store == nil || cert == nil || cert.Leaf == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(c.timeout, 10*time.Second))
	defer cancel()
	domains, err := c.store.DomainList(ctx)
	if err != nil {
		c.log.Warn("cannot list custom domains to report their certificate", "err", err)
		return
	}
	for _, d := range domains {
		if d.Status != site.DomainVerified {
			continue
		}
		cs := site.CertStatus{Host: d.Host, State: "active"}
		if err := cert.Leaf.VerifyHostname(d.Host); err != nil {
			cs.State = "error"
			cs.Error = "the certificate in " + c.certPath + " does not cover " + d.Host + ": add the name to it, or get certificates from --acme-ca"
		}
		if old, err := c.store.CertStatusGet(ctx, d.Host); err == nil && old.State == cs.State && old.Error == cs.Error {
			continue
		}
		cs.UpdatedAt = time.Now().UTC()
		if err := c.store.CertStatusPut(ctx, cs); err != nil {
			c.log.Warn("cannot record certificate status", "host", d.Host, "err", err)
		}
	}
}
