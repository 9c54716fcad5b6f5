package proxy

import (
	"errors"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/ferryhq/ferry/internal/ferry"
)

// upstream fetches what a proxy rule (`/api/* https://api.example.com/:splat 200`) names. A site is untrusted,
// so it may only reach the origins the operator lists, through netpolicy's dialer (no loopback, private or
// link-local address, checked on the resolved address right before connecting), with timeouts, capped bodies,
// no redirects followed and no hop-by-hop headers passed either way.
type upstream struct {
	allowed map[string]bool // origins, as normalizeOrigin writes them
	client  *fasthttp.Client
	dial    func(addr string) (net.Conn, error)
	timeout time.Duration
	results *prometheus.CounterVec
	seconds prometheus.Histogram
}

// normalizeOrigin turns "HTTPS://API.example.com:443/" into "https://api.example.com", the form origins are
// compared in. Anything but an http(s) origin is an error that says what to write.
func normalizeOrigin(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return "", ferry.Errorf(ferry.EINVALID, "proxy origin %q: write an origin such as https://api.example.com (scheme, host and optional port, no path)", s)
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if u.Scheme == "https" && port == "443" || u.Scheme == "http" && port == "80" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host, nil
}

func newUpstream(cfg *Config, reg *prometheus.Registry) (*upstream, error) {
	u := &upstream{allowed: map[string]bool{}, timeout: cfg.ProxyTimeout}
	for _, o := range cfg.ProxyOrigins {
		if strings.TrimSpace(o) == "" {
			continue
		}
		n, err := normalizeOrigin(o)
		if err != nil {
			return nil, err
		}
		u.allowed[n] = true
	}
	dialer := cfg.ProxyNetPolicy.Dialer(min(cfg.ProxyTimeout, 10*time.Second))
	u.dial = func(addr string) (net.Conn, error) { return dialer.Dial("tcp", addr) }
	u.client = &fasthttp.Client{
		Dial:                          u.dial,
		Name:                          "ferry",
		NoDefaultUserAgentHeader:      true,
		ReadTimeout:                   cfg.ProxyTimeout,
		WriteTimeout:                  cfg.ProxyTimeout,
		MaxResponseBodySize:           cfg.ProxyMaxResponseBytes,
		MaxConnsPerHost:               256,
		MaxIdleConnDuration:           30 * time.Second,
		MaxIdemponentCallAttempts:     1,
		RetryIfErr:                    func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		DisablePathNormalizing:        true,
		DisableHeaderNamesNormalizing: false,
	}
	u.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_proxy_upstream_requests_total",
		Help: "Requests for _redirects proxy rules (status 200 to a full URL), by result: ok, refused (origin not allowed or address refused), timeout, error.",
	}, []string{"result"})
	u.seconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ferry_proxy_upstream_seconds", Help: "Time to fetch a proxy rule's response from its origin.",
		Buckets: prometheus.DefBuckets,
	})
	reg.MustRegister(u.results, u.seconds)
	return u, nil
}

// hopByHop are the headers that describe one connection, not the message (RFC 9110 7.6.1), plus the ones the
// proxy frames itself.
var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true, "proxy-authenticate": true,
	"proxy-authorization": true, "te": true, "trailer": true, "transfer-encoding": true, "upgrade": true,
	"content-length": true, "host": true,
}

// proxyTo answers a request with what the rule's origin answers.
func (p *Proxy) proxyTo(ctx *fasthttp.RequestCtx, d *deployment, rt *route) {
	u := p.upstream
	target := string(withQuery(nil, rt.upstream, ctx.URI().QueryString(), rt.noQuery))
	target, _, _ = strings.Cut(target, "#")
	origin, err := originOf(target)
	if err != nil || !u.allowed[origin] {
		u.results.WithLabelValues("refused").Inc()
		p.log.Warn("proxy rule refused: origin not in --proxy-origins", "project", d.project, "deployment", d.id, "origin", origin)
		page(ctx, fasthttp.StatusBadGateway, pageProxyRefused)
		return
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(target)
	req.Header.SetMethodBytes(ctx.Method())
	drop := connectionTokens(ctx.Request.Header.Peek(fasthttp.HeaderConnection))
	for k, v := range ctx.Request.Header.All() {
		name := strings.ToLower(string(k))
		// Cookies belong to the preview domain, which every project shares: they never go to an origin.
		if hopByHop[name] || drop[name] || name == "cookie" || strings.HasPrefix(name, "x-forwarded-") {
			continue
		}
		req.Header.AddBytesKV(k, v)
	}
	req.Header.Set("X-Forwarded-Host", string(ctx.Host()))
	req.Header.Set("X-Forwarded-For", ctx.RemoteIP().String())
	proto := "http"
	if ctx.IsTLS() {
		proto = "https"
	}
	req.Header.Set("X-Forwarded-Proto", proto)
	if body := ctx.Request.Body(); len(body) > 0 {
		req.SetBodyRaw(body)
	}
	start := time.Now()
	err = u.client.DoTimeout(req, resp, u.timeout)
	u.seconds.Observe(time.Since(start).Seconds())
	if err != nil {
		result, status := "error", fasthttp.StatusBadGateway
		switch {
		case errors.Is(err, fasthttp.ErrTimeout):
			result, status = "timeout", fasthttp.StatusGatewayTimeout
		case ferry.ErrorCode(err) == ferry.EFORBIDDEN:
			result = "refused"
		}
		u.results.WithLabelValues(result).Inc()
		p.log.Warn("proxy rule failed", "project", d.project, "deployment", d.id, "origin", origin, "result", result, "err", err)
		page(ctx, status, pageProxyFailed)
		return
	}
	u.results.WithLabelValues("ok").Inc()
	h := &ctx.Response.Header
	h.DelBytes(hCacheControl)
	drop = connectionTokens(resp.Header.Peek(fasthttp.HeaderConnection))
	for k, v := range resp.Header.All() {
		name := strings.ToLower(string(k))
		switch {
		case hopByHop[name] || drop[name] || name == "date" || name == "server" || name == "x-content-type-options":
		case name == "set-cookie":
			// A cookie for the shared preview domain could reach every other project's previews.
		case name == "content-type":
			h.SetContentTypeBytes(v)
		default:
			h.AddBytesKV(k, v)
		}
	}
	ctx.SetStatusCode(resp.StatusCode())
	if ctx.IsHead() {
		ctx.Response.SkipBody = true
	} else {
		ctx.Response.SetBody(resp.Body())
	}
	applyHeaders(h, rt.headers, 0)
}

// originOf returns the normalized origin of an absolute URL.
func originOf(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	return normalizeOrigin(u.Scheme + "://" + u.Host)
}

// connectionTokens are the header names a Connection header lists, which are hop-by-hop too.
func connectionTokens(v []byte) map[string]bool {
	if len(v) == 0 {
		return nil
	}
	m := map[string]bool{}
	for t := range strings.SplitSeq(string(v), ",") {
		m[strings.ToLower(strings.TrimSpace(t))] = true
	}
	return m
}
