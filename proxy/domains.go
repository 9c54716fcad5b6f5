package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
)

// errNoDomain marks "this host has no verified custom-domain mapping": the host is then not a site host at all,
// so /healthz and /metrics answer on it as on any operator's host name.
var errNoDomain = errors.New("no verified custom domain")

// customCandidate reports whether a host that is not a preview host could be a custom domain: a DNS name of two
// labels or more, outside the preview domain. IP addresses and single labels (localhost, a machine name) are
// never looked up, so health checks on them cost no storage read.
func (p *Proxy) customCandidate(name string) bool {
	if !strings.Contains(name, ".") || name == p.domain || strings.HasSuffix(name, "."+p.domain) {
		return false
	}
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		return false
	}
	return true
}

// customDomain reads host's mapping from domains/<host>.json. A missing, unverified or unreadable-as-valid
// mapping is ENOTFOUND wrapping errNoDomain.
func (p *Proxy) customDomain(ctx context.Context, host string) (*site.Domain, error) {
	d, err := p.store.DomainGet(ctx, host)
	switch {
	case ferry.ErrorCode(err) == ferry.ENOTFOUND || ferry.ErrorCode(err) == ferry.EINVALID:
		return nil, ferry.Wrap(ferry.ENOTFOUND, fmt.Errorf("%w: %s", errNoDomain, host))
	case err != nil:
		return nil, fmt.Errorf("read custom domain %s: %w", host, err)
	case d.Status != site.DomainVerified:
		return nil, ferry.Wrap(ferry.ENOTFOUND, fmt.Errorf("%w: %s is %s", errNoDomain, host, d.Status))
	}
	return d, nil
}

// customUnresolved answers a custom-domain candidate without a deployment: operator endpoints when the host has
// no mapping, a redirect when the mapping says so. It reports whether it answered.
func (p *Proxy) customUnresolved(ctx *fasthttp.RequestCtx, r *resolution) bool {
	switch {
	case r.noDomain:
		p.serveOps(ctx)
		return true
	case r.redirect != nil:
		u := make([]byte, 0, len(r.redirect)+len(ctx.URI().RequestURI()))
		u = append(append(u, r.redirect...), ctx.URI().RequestURI()...)
		ctx.Response.Header.SetCanonical(hLocation, u)
		page(ctx, fasthttp.StatusMovedPermanently, pageMoved)
		return true
	}
	return false
}

// hostAllowed reports whether name may get a certificate: a verified custom domain, or a preview host whose
// alias or deployment exists. Anything else (a random SNI, a pending domain) gets none, so no order is placed.
func (p *Proxy) hostAllowed(name string) error {
	var buf [hostBufLen]byte
	h, ok := normHost(buf[:0], []byte(name))
	if !ok {
		return fmt.Errorf("%q is not a host name", name)
	}
	e := p.host(h)
	if !e.site {
		return fmt.Errorf("%s is not a site or custom domain served here", name)
	}
	r := p.resolve(e)
	if r.dep == nil && r.redirect == nil {
		if r.err != nil {
			return fmt.Errorf("no certificate for %s: %w", name, r.err)
		}
		return fmt.Errorf("no certificate for %s: nothing is served there", name)
	}
	return nil
}
