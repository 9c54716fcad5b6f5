package proxy

import (
	"bytes"
	"context"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Header names and values, as bytes so that setting them does not allocate.
var (
	hETag          = []byte(fasthttp.HeaderETag)
	hCacheControl  = []byte(fasthttp.HeaderCacheControl)
	hXCTO          = []byte(fasthttp.HeaderXContentTypeOptions)
	hVary          = []byte(fasthttp.HeaderVary)
	hIfNoneMatch   = []byte(fasthttp.HeaderIfNoneMatch)
	hIfRange       = []byte(fasthttp.HeaderIfRange)
	hRange         = []byte(fasthttp.HeaderRange)
	hAcceptRanges  = []byte(fasthttp.HeaderAcceptRanges)
	hContentEnc    = []byte(fasthttp.HeaderContentEncoding)
	hContentRange  = []byte(fasthttp.HeaderContentRange)
	hLocation      = []byte(fasthttp.HeaderLocation)
	hAllow         = []byte(fasthttp.HeaderAllow)
	vNosniff       = []byte("nosniff")
	vAcceptEnc     = []byte("Accept-Encoding")
	vBytes         = []byte("bytes")
	vBr            = []byte("br")
	vGzip          = []byte("gzip")
	vGetHead       = []byte("GET, HEAD")
	vNoStore       = []byte("no-store")
	ctHTML         = []byte("text/html; charset=utf-8")
	ctText         = []byte("text/plain; charset=utf-8")
	pathHealthz    = []byte("/healthz")
	pathMetrics    = []byte("/metrics")
	healthOK       = []byte("ok\n")
	encodingTokens = [numEnc][]byte{nil, vBr, vGzip}
)

// Handle is the fasthttp handler: it routes by Host, then serves the deployment's file for the path.
func (p *Proxy) Handle(ctx *fasthttp.RequestCtx) {
	p.handle(ctx)
	p.metrics.observe(ctx.Response.StatusCode())
}

func (p *Proxy) handle(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetCanonical(hXCTO, vNosniff)
	var buf [hostBufLen]byte
	host, ok := normHost(buf[:0], ctx.Request.Header.Host())
	if !ok {
		page(ctx, fasthttp.StatusBadRequest, pageBadHost)
		return
	}
	e := p.host(host)
	if !e.site {
		p.serveOps(ctx)
		return
	}
	if status, body := checkPath(ctx.URI().PathOriginal()); status != 0 {
		page(ctx, status, body)
		return
	}
	path := ctx.Path()
	for _, c := range path {
		if c < 0x20 || c == 0x7f || c == '\\' {
			page(ctx, fasthttp.StatusBadRequest, pageBadPath)
			return
		}
	}
	r := p.resolve(e)
	if r.dep == nil {
		if e.custom && p.customUnresolved(ctx, r) {
			return
		}
		if ferry.ErrorCode(r.err) == ferry.ENOTFOUND {
			page(ctx, fasthttp.StatusNotFound, r.page)
		} else {
			page(ctx, fasthttp.StatusServiceUnavailable, pageUnavailable)
		}
		return
	}
	if pe := r.dep.prot; pe != nil {
		st := p.protection(pe)
		if st == nil {
			page(ctx, fasthttp.StatusServiceUnavailable, pageUnavailable)
			return
		}
		s := st.s
		if project, alias := siteOf(r); s != nil && s.Mode.Protects(alias) || r.dep.mode.Protects(alias) {
			if s == nil || len(s.Key) < 32 {
				// ferry.json asks for protection, but the project has no protection.json (so no key to
				// sign access with): closed rather than open.
				page(ctx, fasthttp.StatusForbidden, pageClosed)
				return
			}
			if p.gate(ctx, project, host, s, &st.ok) {
				p.serveSite(ctx, r.dep, path)
			}
			markPrivate(ctx)
			return
		}
	}
	p.serveSite(ctx, r.dep, path)
}

// serveSite answers a request for a deployment's path by its rules.
func (p *Proxy) serveSite(ctx *fasthttp.RequestCtx, dep *deployment, path []byte) {
	rt := dep.route(path)
	if dep.rules.HasQueryRules() && len(ctx.URI().QueryString()) > 0 {
		if qr := dep.queryRoute(path, queryArgs{ctx.QueryArgs()}); qr != nil {
			rt = qr
		}
	}
	if rt.upstream == "" && !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.SetCanonical(hAllow, vGetHead)
		page(ctx, fasthttp.StatusMethodNotAllowed, pageMethod)
		return
	}
	switch {
	case rt.upstream != "":
		p.proxyTo(ctx, dep, rt)
	case rt.location != "":
		p.redirect(ctx, rt)
	case rt.file == nil:
		page(ctx, rt.status, rt.page)
		applyHeaders(&ctx.Response.Header, rt.headers, rt.status)
	default:
		p.serveFile(ctx, rt)
	}
}

// queryArgs lets rules with query conditions read a request's query parameters.
type queryArgs struct{ a *fasthttp.Args }

func (q queryArgs) Get(key string) (string, bool) {
	if !q.a.Has(key) {
		return "", false
	}
	return string(q.a.Peek(key)), true
}

// applyHeaders applies a route's _headers values to a response. An error answer keeps the proxy's own
// Cache-Control, as Cloudflare's does: a site's "cache for a week" rule for /* must not pin its 404s.
func applyHeaders(h *fasthttp.ResponseHeader, hs []header, status int) {
	for i := range hs {
		hd := &hs[i]
		if status >= 400 && bytes.EqualFold(hd.name, hCacheControl) {
			continue
		}
		switch hd.op {
		case opDel:
			h.DelBytes(hd.name)
		case opAdd:
			h.AddBytesKV(hd.name, hd.value)
		default:
			h.SetBytesKV(hd.name, hd.value)
		}
	}
}

// serveOps answers on hosts that are not site hosts: health and metrics for operators, else the unknown-host
// page.
func (p *Proxy) serveOps(ctx *fasthttp.RequestCtx) {
	switch {
	case bytes.Equal(ctx.Path(), pathHealthz):
		ctx.Response.Header.SetContentTypeBytes(ctText)
		ctx.Response.Header.SetCanonical(hCacheControl, vNoStore)
		ctx.Response.SetBodyRaw(healthOK)
	case bytes.Equal(ctx.Path(), pathMetrics):
		p.ops(ctx)
	default:
		page(ctx, fasthttp.StatusNotFound, pageUnknownHost)
	}
}

// checkPath refuses raw request paths that could name something outside the deployment or confuse a later
// decoder: dot segments (plain or percent-encoded), encoded slashes and backslashes, NUL, and overlong paths.
func checkPath(raw []byte) (int, []byte) {
	if len(raw) > maxPathLen {
		return fasthttp.StatusRequestURITooLong, pageTooLong
	}
	if len(raw) == 0 || raw[0] != '/' {
		return fasthttp.StatusBadRequest, pageBadPath
	}
	seg := 1
	for i := 1; i <= len(raw); i++ {
		if i == len(raw) || raw[i] == '/' {
			if isDotSegment(raw[seg:i]) {
				return fasthttp.StatusBadRequest, pageBadPath
			}
			seg = i + 1
			continue
		}
		switch c := raw[i]; c {
		case 0, '\\':
			return fasthttp.StatusBadRequest, pageBadPath
		case '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return fasthttp.StatusBadRequest, pageBadPath
			}
			switch unhex(raw[i+1])<<4 | unhex(raw[i+2]) {
			case 0, '/', '\\':
				return fasthttp.StatusBadRequest, pageBadPath
			}
		}
	}
	return 0, nil
}

// isDotSegment reports whether a raw segment decodes to "." or "..".
func isDotSegment(s []byte) bool {
	dots := 0
	for i := 0; i < len(s); {
		switch {
		case s[i] == '.':
			i++
		case s[i] == '%' && i+2 < len(s) && s[i+1] == '2' && (s[i+2] == 'e' || s[i+2] == 'E'):
			i += 3
		default:
			return false
		}
		dots++
	}
	return dots == 1 || dots == 2
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// redirect sends a _redirects or trailing-slash redirect. The request's query string is passed on, before any
// #fragment, unless the target has a query of its own or the rule matched on query parameters: both upstreams
// keep the target's query alone.
func (p *Proxy) redirect(ctx *fasthttp.RequestCtx, rt *route) {
	loc := withQuery(make([]byte, 0, 256), rt.location, ctx.URI().QueryString(), rt.noQuery)
	ctx.Response.Header.SetCanonical(hLocation, loc)
	ctx.Response.Header.SetCanonical(hCacheControl, ccRevalidate)
	applyHeaders(&ctx.Response.Header, rt.headers, rt.status)
	ctx.SetStatusCode(rt.status)
}

// withQuery appends target to dst with the request's query q placed as redirect describes.
func withQuery(dst []byte, target string, q []byte, noQuery bool) []byte {
	frag := strings.IndexByte(target, '#')
	if frag < 0 {
		frag = len(target)
	}
	if len(q) == 0 || noQuery || strings.IndexByte(target[:frag], '?') >= 0 {
		return append(dst, target...)
	}
	dst = append(dst, target[:frag]...)
	dst = append(dst, '?')
	dst = append(dst, q...)
	return append(dst, target[frag:]...)
}

// serveFile writes a file with its caching headers, honouring If-None-Match, Range and Accept-Encoding.
func (p *Proxy) serveFile(ctx *fasthttp.RequestCtx, rt *route) {
	f := rt.file
	b := p.blobs.lookup(f)
	var err error
	if b == nil {
		sctx, cancel := context.WithTimeout(p.base, p.cfg.StorageTimeout)
		b, err = p.blobs.load(sctx, p.cfg.Storage, f)
		cancel()
	}
	if err != nil {
		if ferry.ErrorCode(err) == ferry.EUNAVAILABLE {
			p.log.Error("storage failed; cannot serve file", "blob", f.blobKey, "err", err)
			page(ctx, fasthttp.StatusServiceUnavailable, pageUnavailable)
			return
		}
		p.log.Error("cannot serve file", "blob", f.blobKey, "err", err)
		page(ctx, fasthttp.StatusBadGateway, pageBrokenDeployment)
		return
	}
	h := &ctx.Response.Header
	h.SetContentTypeBytes(f.contentType)
	h.SetCanonical(hCacheControl, f.cacheControl)
	compressed := b.variants[encBrotli].ok || b.variants[encGzip].ok
	if compressed {
		h.SetCanonical(hVary, vAcceptEnc)
	}
	applyHeaders(h, rt.headers, rt.status)
	if rt.status != fasthttp.StatusOK {
		ctx.SetStatusCode(rt.status)
		p.writeVariant(ctx, b, p.pickEncoding(ctx, b))
		return
	}
	h.SetCanonical(hETag, f.etag)
	h.SetCanonical(hAcceptRanges, vBytes)
	if inm := ctx.Request.Header.PeekBytes(hIfNoneMatch); len(inm) > 0 && etagMatch(inm, f.etag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	if rng := ctx.Request.Header.PeekBytes(hRange); len(rng) > 0 && bytes.HasPrefix(rng, vBytes) && bytes.IndexByte(rng, ',') < 0 {
		if ir := ctx.Request.Header.PeekBytes(hIfRange); len(ir) == 0 || bytes.Equal(ir, f.etag) {
			p.serveRange(ctx, b, rng)
			return
		}
	}
	p.writeVariant(ctx, b, p.pickEncoding(ctx, b))
}

func (p *Proxy) pickEncoding(ctx *fasthttp.RequestCtx, b *blob) int {
	for enc := encBrotli; enc < numEnc; enc++ {
		if b.variants[enc].ok && ctx.Request.Header.HasAcceptEncodingBytes(encodingTokens[enc]) {
			return enc
		}
	}
	return encIdentity
}

func (p *Proxy) writeVariant(ctx *fasthttp.RequestCtx, b *blob, enc int) {
	v := &b.variants[enc]
	if enc != encIdentity {
		ctx.Response.Header.SetCanonical(hContentEnc, encodingTokens[enc])
	}
	if v.disk == nil {
		ctx.Response.SetBodyRaw(v.mem)
		return
	}
	if ctx.IsHead() {
		ctx.Response.Header.SetContentLength(int(v.size))
		ctx.Response.SkipBody = true
		return
	}
	s, err := v.disk.open(0, v.size)
	if err != nil { // evicted between lookup and open: rare, and the next request fetches it again
		p.log.Warn("cache file vanished", "blob", b.key, "err", err)
		page(ctx, fasthttp.StatusServiceUnavailable, pageUnavailable)
		return
	}
	s.conn, _ = ctx.Conn().(*tcpConn)
	ctx.Response.SetBodyStream(s, int(v.size))
}

// serveRange answers a single byte range from the identity encoding (Range disables compression).
func (p *Proxy) serveRange(ctx *fasthttp.RequestCtx, b *blob, rng []byte) {
	v := &b.variants[encIdentity]
	ctx.Response.Header.DelBytes(hVary)
	start, end, ok := parseByteRange(rng, int(v.size))
	if !ok {
		ctx.Response.Header.SetCanonical(hContentRange, append([]byte("bytes */"), strconv.FormatInt(v.size, 10)...))
		page(ctx, fasthttp.StatusRequestedRangeNotSatisfiable, pageRange)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusPartialContent)
	ctx.Response.Header.SetContentRange(start, end, int(v.size))
	n := end - start + 1
	if v.disk == nil {
		ctx.Response.SetBodyRaw(v.mem[start : end+1])
		return
	}
	if ctx.IsHead() {
		ctx.Response.Header.SetContentLength(n)
		ctx.Response.SkipBody = true
		return
	}
	s, err := v.disk.open(int64(start), int64(n))
	if err != nil {
		p.log.Warn("cache file vanished", "blob", b.key, "err", err)
		page(ctx, fasthttp.StatusServiceUnavailable, pageUnavailable)
		return
	}
	s.conn, _ = ctx.Conn().(*tcpConn)
	ctx.Response.SetBodyStream(s, n)
}

// parseByteRange reads one "bytes=" range against a body of size bytes and returns its first and last byte,
// or ok false when it is malformed or unsatisfiable (416). Positions past the end are clamped to it, however
// many digits they have (RFC 9110 14.1.2: "bytes=0-<huge>" is the whole file, not an error); a first position
// at or past the end, a reversed range and "bytes=-0" are unsatisfiable. It allocates nothing.
func parseByteRange(rng []byte, size int) (start, end int, ok bool) {
	b, found := bytes.CutPrefix(rng, []byte("bytes="))
	if !found || size <= 0 {
		return 0, 0, false
	}
	b = bytes.TrimSpace(b)
	first, last, found := bytes.Cut(b, []byte("-"))
	if !found {
		return 0, 0, false
	}
	first, last = bytes.TrimSpace(first), bytes.TrimSpace(last)
	if len(first) == 0 { // a suffix: the last N bytes
		n, ok := rangeNumber(last, size)
		if !ok || n == 0 {
			return 0, 0, false
		}
		return size - n, size - 1, true
	}
	start, ok = rangeNumber(first, size)
	if !ok || start >= size {
		return 0, 0, false
	}
	end = size - 1
	if len(last) > 0 {
		n, ok := rangeNumber(last, size)
		if !ok || n < start {
			return 0, 0, false
		}
		end = min(n, size-1)
	}
	return start, end, true
}

// rangeNumber reads decimal digits, saturating at limit so that no number overflows.
func rangeNumber(b []byte, limit int) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < limit {
			n = n*10 + int(c-'0')
		}
	}
	return min(n, limit), true
}

// etagMatch implements If-None-Match's weak comparison against one strong ETag: a list of tags, or "*".
func etagMatch(inm, etag []byte) bool {
	for len(inm) > 0 {
		inm = bytes.TrimLeft(inm, " \t,")
		if len(inm) == 0 {
			return false
		}
		if inm[0] == '*' {
			return true
		}
		inm = bytes.TrimPrefix(inm, []byte("W/"))
		if len(inm) == 0 || inm[0] != '"' {
			return false
		}
		end := bytes.IndexByte(inm[1:], '"')
		if end < 0 {
			return false
		}
		if bytes.Equal(inm[:end+2], etag) {
			return true
		}
		inm = inm[end+2:]
	}
	return false
}

// page writes a fixed HTML page (error pages are static, so they never echo request input).
func page(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.Response.Header.DelBytes(hETag)
	ctx.Response.Header.DelBytes(hContentEnc)
	ctx.Response.Header.SetContentTypeBytes(ctHTML)
	ctx.Response.Header.SetCanonical(hCacheControl, vNoStore)
	ctx.SetStatusCode(status)
	ctx.Response.SetBodyRaw(body)
}
