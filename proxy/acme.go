package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ferryhq/ferry/internal/certstore"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
)

// LetsEncrypt is the default ACME CA.
const LetsEncrypt = certmagic.LetsEncryptProductionCA

// ACMEOptions configures certificates from an ACME CA. Certificates, account keys, challenge tokens and locks
// are kept in the proxy's storage under acme/ (internal/certstore), so proxies sharing a storage share them.
type ACMEOptions struct {
	// CA is the ACME directory URL, for example LetsEncrypt.
	CA string
	// Email is given to the CA for expiry notices; optional.
	Email string
	// Roots, when set, are the roots that the CA's own HTTPS certificate is checked against (a private CA or
	// Pebble); default the system's.
	Roots *x509.CertPool
	// DisableHTTP01 and DisableTLSALPN01 turn off a challenge type; both are on by default.
	DisableHTTP01, DisableTLSALPN01 bool
	// HTTPAddr and TLSAddr are where the proxy's plain and HTTPS listeners are (host:port), so that certmagic
	// knows challenges arriving there are answered by the proxy and does not try to listen itself.
	HTTPAddr, TLSAddr string
	// DNS01, when set, gets the certificate for *.D and D through DNS records in D's zone (custom domains keep
	// HTTP-01 and TLS-ALPN-01: their DNS is not Ferry's).
	DNS01 certmagic.DNSProvider
	// DNSPropagationTimeout bounds the wait for a DNS-01 record to show on the zone's name servers before the
	// CA is asked to look; -1 skips the check. Default certmagic's (2 minutes).
	DNSPropagationTimeout time.Duration
	// DNSResolvers are the DNS servers that DNS-01 propagation is checked against (host:port); default the
	// system's.
	DNSResolvers []string
	// Wildcard asks for the certificate for *.D and D; it needs DNS01, and DNS01 implies it.
	Wildcard bool
	// RenewCheck is how often certificates are checked for renewal. Default certmagic's (10 minutes).
	RenewCheck time.Duration
	// LockTTL is how long a certificate lock lasts without renewal. Default 1 minute.
	LockTTL time.Duration
	// HandshakeTimeout bounds how long a handshake waits for a certificate being issued for its name (the CA
	// down or slow); the handshake then fails and the next one tries again. Default 30s.
	HandshakeTimeout time.Duration
}

// acmeManager is certmagic set up for the proxy: on-demand certificates for hosts that the storage mapping
// allows, events turned into metrics and acme-status/<host>.json.
type acmeManager struct {
	p      *Proxy
	magic  *certmagic.Config
	issuer *certmagic.ACMEIssuer
	cache  *certmagic.Cache
	events *prometheus.CounterVec
	// wild manages the certificate for *.D and D over DNS-01; nil without --acme-dns.
	wild *certmagic.Config
}

// decide is the on-demand policy: a served host, except preview hosts when the wildcard covers them (ordering
// one per preview would only burn the CA's rate limit while the wildcard is on its way).
func (m *acmeManager) decide(name string) error {
	if m.wild != nil {
		n := strings.ToLower(strings.TrimSuffix(name, "."))
		if n == m.p.domain || strings.HasSuffix(n, "."+m.p.domain) {
			return fmt.Errorf("%s is covered by the wildcard certificate for *.%s, which is not issued yet", name, m.p.domain)
		}
	}
	return m.p.hostAllowed(name)
}

func newACME(ctx context.Context, p *Proxy, opts ACMEOptions) (*acmeManager, error) {
	store, err := certstore.New(p.cfg.Storage, p.log)
	if err != nil {
		return nil, err
	}
	if opts.LockTTL > 0 {
		store.LockTTL = opts.LockTTL
	}
	zl := zap.New(&slogCore{h: p.log.With("source", "certmagic").Handler()})
	m := &acmeManager{p: p}
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_proxy_certificates_total",
		Help: "Certificate issuance and renewal attempts that ended, by kind (issue, renew) and result (obtained, failed).",
	}, []string{"kind", "result"})
	for _, k := range []string{"issue", "renew"} {
		for _, r := range []string{"obtained", "failed"} {
			m.events.WithLabelValues(k, r)
		}
	}
	if err := p.cfg.Registry.Register(m.events); err != nil {
		return nil, fmt.Errorf("register certificate metrics: %w", err)
	}
	wildNames := []string{"*." + p.domain, p.domain}
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(c certmagic.Certificate) (*certmagic.Config, error) {
			if m.wild != nil && slices.Contains(c.Names, wildNames[0]) {
				return m.wild, nil
			}
			return m.magic, nil
		},
		RenewCheckInterval: opts.RenewCheck,
		Logger:             zl,
	})
	tmpl := certmagic.ACMEIssuer{
		CA:                      opts.CA,
		Email:                   opts.Email,
		Agreed:                  true,
		TrustedRoots:            opts.Roots,
		DisableHTTPChallenge:    opts.DisableHTTP01,
		DisableTLSALPNChallenge: opts.DisableTLSALPN01,
		Logger:                  zl,
	}
	if host, port, err := net.SplitHostPort(opts.HTTPAddr); err == nil {
		tmpl.ListenHost = host
		tmpl.AltHTTPPort, _ = strconv.Atoi(port)
	}
	if _, port, err := net.SplitHostPort(opts.TLSAddr); err == nil {
		tmpl.AltTLSALPNPort, _ = strconv.Atoi(port)
	}
	// On demand: custom domains and (without a wildcard) preview hosts, over HTTP-01 or TLS-ALPN-01. Their
	// DNS is not ours, so never DNS-01.
	m.magic = certmagic.New(m.cache, certmagic.Config{
		Storage: store,
		Logger:  zl,
		OnEvent: m.onEvent,
		OnDemand: &certmagic.OnDemandConfig{
			DecisionFunc: func(ctx context.Context, name string) error { return m.decide(name) },
		},
	})
	m.issuer = certmagic.NewACMEIssuer(m.magic, tmpl)
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	if opts.Wildcard || opts.DNS01 != nil {
		if opts.DNS01 == nil {
			return nil, ferry.Errorf(ferry.EINVALID, "a wildcard certificate for *.%s needs DNS-01: pass --acme-dns", p.domain)
		}
		// Managed up front, in a config of its own (certmagic defers every name of an on-demand config to
		// the first handshake), over DNS-01 in D's zone.
		m.wild = certmagic.New(m.cache, certmagic.Config{Storage: store, Logger: zl, OnEvent: m.onEvent})
		wt := tmpl
		wt.DNS01Solver = &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
			DNSProvider: opts.DNS01, Resolvers: opts.DNSResolvers, PropagationTimeout: opts.DNSPropagationTimeout, Logger: zl,
		}}
		m.wild.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(m.wild, wt)}
		if err := m.wild.ManageAsync(ctx, wildNames); err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "manage the wildcard certificate for %v: %w", wildNames, err)
		}
	}
	return m, nil
}

func (m *acmeManager) close() { m.cache.Stop() }

// tlsConfig is certmagic's, with issuance during a handshake bounded by timeout.
func (m *acmeManager) tlsConfig(timeout time.Duration) *tls.Config {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	c := m.magic.TLSConfig()
	c.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		ctx, cancel := context.WithTimeout(hello.Context(), timeout)
		defer cancel()
		return m.magic.GetCertificateWithContext(ctx, hello)
	}
	return c
}

// httpChallengeHandler answers HTTP-01 challenges from storage, whichever proxy started them.
func (m *acmeManager) httpChallengeHandler() fasthttp.RequestHandler {
	return fasthttpadaptor.NewFastHTTPHandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !m.issuer.HandleHTTPChallenge(w, r) {
			http.NotFound(w, r)
		}
	})
}

// onEvent counts issuances, renewals and failures, and records each outcome for the dashboard.
func (m *acmeManager) onEvent(ctx context.Context, event string, data map[string]any) error {
	var result string
	switch event {
	case "cert_obtained":
		result = "obtained"
	case "cert_failed":
		result = "failed"
	default:
		return nil
	}
	renewal, _ := data["renewal"].(bool)
	kind := "issue"
	if renewal {
		kind = "renew"
	}
	m.events.WithLabelValues(kind, result).Inc()
	name, _ := data["identifier"].(string)
	cs := site.CertStatus{Host: name, State: "active", Renewal: renewal, UpdatedAt: time.Now().UTC()}
	if result == "failed" {
		cs.State = "error"
		if err, ok := data["error"].(error); ok {
			cs.Error = err.Error()
		}
	}
	if name == "" || name[0] == '*' {
		return nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.p.cfg.StorageTimeout)
	defer cancel()
	if err := m.p.store.CertStatusPut(sctx, cs); err != nil {
		m.p.log.Warn("cannot record certificate status", "host", name, "err", err)
	}
	return nil
}

// slogCore sends certmagic's zap logs to the proxy's slog logger.
type slogCore struct {
	h      slog.Handler
	fields []zapcore.Field
}

func zapToSlog(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), zapToSlog(l))
}

func (c *slogCore) With(fs []zapcore.Field) zapcore.Core {
	return &slogCore{h: c.h, fields: append(append([]zapcore.Field(nil), c.fields...), fs...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fs {
		f.AddTo(enc)
	}
	r := slog.NewRecord(e.Time, zapToSlog(e.Level), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	for k, v := range enc.Fields {
		r.AddAttrs(slog.Any(k, v))
	}
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }
