package proxy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/protect"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/siteconfig"
)

// hostEntry is what a Host name resolves to. It is cached by host name, so that the request path neither
// parses the host again nor allocates.
type hostEntry struct {
	// site is false for hosts that are not site hosts (an IP address, the bare domain, another domain): those
	// get /healthz, /metrics and the unknown-host page.
	site bool
	// project and name come from site.ParseHost; name is an alias or a deployment id.
	project, name string
	// pinned: name is a deployment id, whose manifest never changes, so the entry never expires.
	pinned    bool
	flightKey string
	// custom: the host is not under the domain but may be a custom domain (domains/<host>.json), whose mapping
	// is read and cached like an alias; host is its name.
	custom bool
	host   string

	refreshing atomic.Bool
	cur        atomic.Pointer[resolution]
}

// resolution is a host's deployment at one moment, or why there is none.
type resolution struct {
	dep *deployment
	// alias is the name the host serves in dep's project: the preview host's alias (or deployment id), or the
	// alias a custom domain's mapping names. Protection decides by it (siteOf).
	alias   string
	err     error  // set when dep is nil: ENOTFOUND (cached for the alias TTL) or an outage (not cached)
	page    []byte // for ENOTFOUND: which of the "no such site" pages applies
	expires int64  // Proxy.now() after which the alias is read again
	// redirect is set for a custom domain that redirects (apex → www): the scheme and host to send visitors to.
	redirect []byte
	// noDomain: a custom-domain candidate that has no verified mapping, so the host is not a site host.
	noDomain bool
	// gen is the alias change signal's generation (Proxy.gen) when the alias was read; a newer signal makes the
	// resolution stale before it expires. -1 for a deployment id, which never changes.
	gen int64
}

// fresh reports whether r may be served without reading the alias again: neither its TTL nor a change signal
// seen since it was read says otherwise.
func (p *Proxy) fresh(r *resolution) bool {
	return p.now() < r.expires && (r.gen < 0 || r.gen == p.gen.Load())
}

// hostBufLen bounds a Host header (a DNS name is at most 253 bytes, plus a port).
const hostBufLen = 262

// normHost validates a Host header and appends its lowercase name, without port or trailing dot, to dst.
// Anything but a DNS name or an IP literal is refused, so that odd hosts never reach the caches.
func normHost(dst, h []byte) ([]byte, bool) {
	if len(h) == 0 || len(h) > hostBufLen {
		return dst, false
	}
	if h[0] == '[' { // IPv6 literal: never a site host, but /healthz must answer on it
		end := -1
		for i, c := range h {
			if c == ']' {
				end = i
				break
			}
			if !(c == '[' && i == 0 || c == ':' || c == '.' || isHex(c)) {
				return dst, false
			}
		}
		if end < 0 || !isPort(h[end+1:]) {
			return dst, false
		}
		return append(dst, h[:end+1]...), true
	}
	name := h
	for i := len(h) - 1; i >= 0; i-- {
		if h[i] == ':' {
			if !isPort(h[i:]) {
				return dst, false
			}
			name = h[:i]
			break
		}
	}
	if n := len(name); n > 0 && name[n-1] == '.' {
		name = name[:n-1]
	}
	if len(name) == 0 {
		return dst, false
	}
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.':
			dst = append(dst, c)
		case c >= 'A' && c <= 'Z':
			dst = append(dst, c+'a'-'A')
		default:
			return dst, false
		}
	}
	return dst, true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// isPort accepts "" or ":" followed by 1 to 5 digits.
func isPort(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if b[0] != ':' || len(b) < 2 || len(b) > 6 {
		return false
	}
	for _, c := range b[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// host returns the cached entry for a normalised host name, parsing it on first sight.
func (p *Proxy) host(h []byte) *hostEntry {
	p.hostsMu.RLock()
	e := p.hosts[string(h)]
	p.hostsMu.RUnlock()
	if e != nil {
		return e
	}
	name := string(h)
	e = &hostEntry{}
	if project, alias, ok := site.ParseHost(name, p.domain); ok {
		e.site, e.project, e.name = true, project, alias
		e.pinned = site.IsDeploymentID(alias)
		e.flightKey = "host\x00" + project + "\x00" + alias
	} else if p.customCandidate(name) {
		e.site, e.custom, e.host = true, true, name
		e.flightKey = "domain\x00" + name
	}
	p.hostsMu.Lock()
	if len(p.hosts) >= maxHosts {
		clear(p.hosts) // hostile traffic: start over rather than grow; live hosts come back on their next request
	}
	if old := p.hosts[name]; old != nil {
		e = old
	} else {
		p.hosts[name] = e
	}
	p.hostsMu.Unlock()
	return e
}

// resolve returns the deployment a site host serves. A fresh entry costs two atomic loads. When the alias TTL
// has passed, one request reads it again while the others keep serving what is cached; with nothing cached,
// concurrent requests share one read.
func (p *Proxy) resolve(e *hostEntry) *resolution {
	r := e.cur.Load()
	if r != nil && p.fresh(r) {
		return r
	}
	if r != nil && r.dep != nil {
		if !e.refreshing.CompareAndSwap(false, true) {
			return r
		}
		defer e.refreshing.Store(false)
		return p.refresh(e)
	}
	v, _, _ := p.flight.Do(e.flightKey, func() (any, error) { return p.refresh(e), nil })
	return v.(*resolution)
}

// refresh reads the alias (unless the name is a deployment id) and the manifest it points to. While storage
// fails, a deployment that was already resolved keeps being served, whatever its age.
func (p *Proxy) refresh(e *hostEntry) *resolution {
	old := e.cur.Load()
	if old != nil && p.fresh(old) {
		return old // another request refreshed it meanwhile
	}
	// Read the generation before the alias: a signal that arrives while the alias is read marks this resolution
	// stale at once, so it never outlives a change it may have missed.
	gen := p.gen.Load()
	now := p.now()
	ctx, cancel := context.WithTimeout(p.base, p.cfg.StorageTimeout)
	defer cancel()
	project, id := e.project, e.name
	var customAlias string
	if e.custom {
		d, err := p.customDomain(ctx, e.host)
		if err != nil {
			return p.refreshFailed(ctx, e, old, gen, err)
		}
		if d.RedirectTo != "" {
			r := &resolution{redirect: []byte("https://" + d.RedirectTo), expires: now + int64(p.cfg.AliasTTL), gen: gen}
			e.cur.Store(r)
			return r
		}
		project, id = d.Project, d.Alias
		customAlias = d.Alias
	}
	if !e.pinned {
		a, err := p.store.AliasGet(ctx, project, id)
		if err != nil {
			return p.refreshFailed(ctx, e, old, gen, fmt.Errorf("read alias %s of project %s: %w", id, project, err))
		}
		id = a.Deployment
	}
	dep, err := p.deployment(ctx, project, id)
	if err != nil {
		return p.refreshFailed(ctx, e, old, gen, err)
	}
	alias := e.name
	if e.custom {
		alias = customAlias
	}
	r := &resolution{dep: dep, alias: alias, expires: now + int64(p.cfg.AliasTTL), gen: gen}
	if e.pinned {
		r.expires, r.gen = math.MaxInt64, -1
	}
	e.cur.Store(r)
	if old != nil && old.dep != nil && old.dep != dep {
		p.log.Info("alias moved", "project", e.project, "alias", e.name, "from", old.dep.id, "to", dep.id)
	}
	return r
}

func (p *Proxy) refreshFailed(ctx context.Context, e *hostEntry, old *resolution, gen int64, err error) *resolution {
	now := p.now()
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		r := &resolution{err: err, page: p.missingPage(ctx, e), expires: now + int64(p.cfg.AliasTTL), noDomain: errors.Is(err, errNoDomain), gen: gen}
		e.cur.Store(r)
		return r
	}
	p.metrics.storageErrors.Inc()
	if old != nil && old.dep != nil {
		// Serve the last known deployment and look again after a short pause rather than on every request.
		p.log.Warn("storage failed; serving the cached deployment", "project", e.project, "alias", e.name, "deployment", old.dep.id, "err", err)
		r := &resolution{dep: old.dep, alias: old.alias, expires: now + int64(min(p.cfg.AliasTTL, time.Second)), gen: gen}
		e.cur.Store(r)
		return r
	}
	p.log.Error("storage failed; cannot resolve site", "project", e.project, "alias", e.name, "err", err)
	return &resolution{err: ferry.Wrap(ferry.EUNAVAILABLE, err)}
}

// missingPage picks the page for a site host whose alias or deployment does not exist: the project itself may
// not exist, may have no production deployment yet, or the preview was removed. One listing tells them apart,
// and the answer is cached with the host's resolution.
func (p *Proxy) missingPage(ctx context.Context, e *hostEntry) []byte {
	if e.custom { // an unmapped custom domain, or one whose project or alias is gone: no project to ask about
		return pageNoSuchSite
	}
	objs, err := p.cfg.Storage.List(ctx, site.ProjectPrefix(e.project)+"deployments/")
	switch {
	case err != nil:
		p.log.Warn("cannot tell whether a project exists", "project", e.project, "err", err)
		return pagePreviewRemoved
	case len(objs) == 0:
		return pageNoSuchSite
	case e.name == "production":
		return pageNoProduction
	}
	return pagePreviewRemoved
}

// deployment returns the compiled deployment, reading and compiling its manifest once: manifests are immutable.
func (p *Proxy) deployment(ctx context.Context, project, id string) (*deployment, error) {
	key := project + "/" + id
	p.depsMu.Lock()
	d := p.deps[key]
	p.depsMu.Unlock()
	if d != nil {
		return d, nil
	}
	v, err, _ := p.flight.Do("manifest\x00"+key, func() (any, error) {
		m, err := p.store.ManifestGet(ctx, project, id)
		if err != nil {
			return nil, fmt.Errorf("read manifest %s of project %s: %w", id, project, err)
		}
		d, err := compileDeployment(project, id, m)
		if err != nil {
			return nil, err
		}
		d.prot = p.protEntryFor(project)
		p.depsMu.Lock()
		if len(p.deps) >= maxDeployments {
			for k := range p.deps { // evict an arbitrary one; hosts that use it keep their pointer
				delete(p.deps, k)
				break
			}
		}
		p.deps[key] = d
		p.depsMu.Unlock()
		return d, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*deployment), nil
}

// deployment is a manifest prepared for serving: files with their precomputed response headers, compiled
// rules, and a cache of routes by URL path.
type deployment struct {
	project, id string
	files       map[string]*file
	cfg         siteconfig.Serving
	rules       *siteconfig.Rules
	// prot is the project's protection, shared by its deployments.
	prot *protEntry
	// mode is the protection the deployment's own ferry.json asks for, on top of the project's.
	mode protect.Mode

	routesMu sync.RWMutex
	routes   map[string]*route
}

// file is one manifest entry with the header values it is served with, as bytes ready to write.
type file struct {
	path         string
	blobKey      string
	sha          string
	size         int64
	contentType  []byte
	etag         []byte
	cacheControl []byte
	compressible bool
	// blob caches the blob last served for this file, so that a hit skips the blob cache's map and lock.
	blob atomic.Pointer[blob]
}

func compileDeployment(project, id string, m *site.Manifest) (*deployment, error) {
	if m.Version != site.ManifestVersion {
		return nil, ferry.Errorf(ferry.EINTERNAL, "manifest %s of project %s has version %d; this proxy reads version %d: upgrade ferry", id, project, m.Version, site.ManifestVersion)
	}
	rules, err := siteconfig.Compile(m.Config)
	if err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "compile serving config of deployment %s of project %s: %w", id, project, err)
	}
	mode, err := protect.ParseMode(m.Config.Protection)
	if err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "deployment %s of project %s: %w", id, project, err)
	}
	d := &deployment{
		mode:    mode,
		project: project,
		id:      id,
		files:   make(map[string]*file, len(m.Files)),
		cfg:     m.Config,
		rules:   rules,
		routes:  map[string]*route{},
	}
	for path, f := range m.Files {
		if !strings.HasPrefix(path, "/") || !isSHA256(f.Blob) || f.Size < 0 {
			return nil, ferry.Errorf(ferry.EINTERNAL, "manifest %s of project %s: bad entry %q", id, project, path)
		}
		ct := f.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		d.files[path] = &file{
			path:         path,
			blobKey:      site.BlobKey(project, f.Blob),
			sha:          f.Blob,
			size:         f.Size,
			contentType:  []byte(ct),
			etag:         []byte(`"` + f.Blob + `"`),
			cacheControl: cacheControl(path, ct),
			compressible: compressible(ct),
		}
	}
	return d, nil
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

var (
	ccImmutable   = []byte("public, max-age=31536000, immutable")
	ccRevalidate  = []byte("public, max-age=0, must-revalidate")
	compressTypes = []string{
		"text/", "application/javascript", "application/x-javascript", "application/json", "application/ld+json",
		"application/manifest+json", "application/xml", "application/xhtml+xml", "application/rss+xml",
		"application/atom+xml", "application/wasm", "application/vnd.ms-fontobject", "image/svg+xml",
		"image/x-icon", "image/vnd.microsoft.icon", "font/ttf", "font/otf", "application/x-font-ttf",
	}
)

// compressible reports whether a content type is worth compressing (already-compressed formats are not).
func compressible(contentType string) bool {
	ct := strings.ToLower(contentType)
	for _, t := range compressTypes {
		if strings.HasPrefix(ct, t) {
			return true
		}
	}
	return false
}

// cacheControl is immutable for hashed asset names (their URL changes whenever their content does) and for
// the folders frameworks fill with hashed files only, and revalidation for HTML and everything else.
func cacheControl(path, contentType string) []byte {
	if strings.HasPrefix(strings.ToLower(contentType), "text/html") || !immutablePath(path) {
		return ccRevalidate
	}
	return ccImmutable
}

// immutableDirs are the folders that frameworks write only content-hashed files into, by design: Next.js
// (_next/static/, whose build-id subfolder changes with each build), SvelteKit (_app/immutable/), Nuxt (_nuxt/,
// except its builds/ metadata, which is rewritten in place) and Astro (_astro/).
var immutableDirs = []string{"/_next/static/", "/_app/immutable/", "/_nuxt/", "/_astro/"}

// immutablePath reports whether a file can be cached for a year: it sits in a framework's immutable folder,
// or its name carries a content hash.
func immutablePath(path string) bool {
	for _, d := range immutableDirs {
		if strings.HasPrefix(path, d) {
			return !strings.HasPrefix(path, "/_nuxt/builds/")
		}
	}
	if hashedName(path) {
		return true
	}
	base := path[strings.LastIndexByte(path, '/')+1:]
	dot := strings.IndexByte(base, '.')
	if dot <= 0 {
		return false
	}
	// Create React App: static/js|css|media/<name>.<8+ hex>[.chunk].<ext>, where the hex may be all digits or
	// all letters.
	if strings.HasPrefix(path, "/static/js/") || strings.HasPrefix(path, "/static/css/") || strings.HasPrefix(path, "/static/media/") {
		for part := range strings.SplitSeq(base[dot+1:], ".") {
			if len(part) >= 8 && isLowerHex(part) {
				return true
			}
		}
	}
	// Vite: assets/<name>-<8 chars of base64url>.<ext>. Its hashes may have no digit ("hero-CLDdwZDr.png") or be
	// all digits; an all-lowercase run is more likely a word, and is left to revalidate.
	if strings.Contains(path, "/assets/") {
		name := base[:strings.LastIndexByte(base, '.')]
		if n := len(name); n > 9 && name[n-9] == '-' && isViteHash(name[n-8:]) {
			return true
		}
	}
	return false
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func isViteHash(s string) bool {
	lower := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z':
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			lower = false
		default:
			return false
		}
	}
	return !lower
}

// hashedName reports whether a file name carries a content hash, as bundlers write them: app.3f2a1b9c.js
// (webpack), chunk-5KQ2ZQ3P.js (esbuild), index-B2xk9aQ7.js (Vite), main.3f2a1b9c.chunk.js (CRA).
//
// The rule: after dropping the extension, the base name splits on '.', '-' and '~' into parts, and some part
// other than the first is 8 to 64 characters of [A-Za-z0-9_] with at least one digit and at least one letter.
// Requiring a digit and a letter keeps words ("bootstrap", "Dashboard") and plain numbers out; calling a file
// immutable wrongly would pin it in browsers for a year, while missing a hash only costs a revalidation. The
// framework folders and Vite's assets/ get the looser rules of immutablePath.
func hashedName(path string) bool {
	base := path[strings.LastIndexByte(path, '/')+1:]
	dot := strings.LastIndexByte(base, '.')
	if dot <= 0 {
		return false
	}
	base = base[:dot]
	first := true
	for part := range strings.FieldsFuncSeq(base, func(r rune) bool { return r == '.' || r == '-' || r == '~' }) {
		if !first && isHashPart(part) {
			return true
		}
		first = false
	}
	return false
}

func isHashPart(s string) bool {
	if len(s) < 8 || len(s) > 64 {
		return false
	}
	digit, letter := false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letter = true
		case c == '_':
		default:
			return false
		}
	}
	return digit && letter
}
