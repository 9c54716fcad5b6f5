package proxy

import (
	"strings"

	"github.com/ferryhq/ferry/internal/siteconfig"
)

// route is what a URL path of a deployment resolves to once the site's rules are applied. Routes are computed
// on first request and cached per deployment, so that user rules are never evaluated on the hot path.
type route struct {
	status int
	// file is the body; nil for redirects, proxied requests and plain pages.
	file *file
	// location is a redirect's target (the request's query string is added when served, unless noQuery).
	location string
	// upstream is the URL a proxy rule (`/api/* https://api.example.com/:splat 200`) fetches.
	upstream string
	// noQuery: the rule matched on query parameters, so the request's query is not passed on.
	noQuery bool
	// page is the body of a plain page (file == nil, location == "" and upstream == "").
	page []byte
	// headers are the _headers values that apply to the request path, applied to every kind of answer.
	headers []header
}

// header is one response header from _headers: set replaces any default (users may override Cache-Control),
// add appends a further value of a name, del removes the name (`! Name`).
type header struct {
	name, value []byte
	op          headerOp
}

type headerOp uint8

const (
	opSet headerOp = iota
	opAdd
	opDel
)

// route returns the cached route for a decoded, normalised request path.
func (d *deployment) route(path []byte) *route {
	d.routesMu.RLock()
	r := d.routes[string(path)]
	d.routesMu.RUnlock()
	if r != nil {
		return r
	}
	p := string(path)
	r = d.computeRoute(p)
	d.routesMu.Lock()
	if len(d.routes) < maxRoutes { // beyond that (path scanning), compute without keeping
		d.routes[p] = r
	}
	d.routesMu.Unlock()
	return r
}

// queryRoute returns the route of a rule with query conditions that matches path and q, or nil when the
// request's route does not depend on its query. It is never cached: only sites with such rules, and only their
// requests with a query, pay for it.
func (d *deployment) queryRoute(path []byte, q siteconfig.Query) *route {
	p := string(path)
	m, ok := d.rules.RedirectQuery(p, q, d.exists)
	if !ok || !m.ByQuery {
		return nil
	}
	return d.matchRoute(p, m)
}

// computeRoute applies, in order: the trailing-slash setting, _redirects, the file itself (with clean URLs and
// directory index), then SPA fallback, the custom 404 page and a plain 404.
func (d *deployment) computeRoute(p string) *route {
	switch d.cfg.TrailingSlash {
	case "add":
		if !strings.HasSuffix(p, "/") && d.files[p] == nil && !strings.Contains(p[strings.LastIndexByte(p, '/'):], ".") {
			return &route{status: 301, location: p + "/", headers: d.headers(p)}
		}
	case "remove":
		if len(p) > 1 && strings.HasSuffix(p, "/") {
			return &route{status: 301, location: strings.TrimRight(p, "/"), headers: d.headers(p)}
		}
	}
	if m, ok := d.rules.Redirect(p, d.exists); ok {
		if rt := d.matchRoute(p, m); rt != nil {
			return rt
		}
	}
	return d.fileRoute(p)
}

// matchRoute is the route of a matched _redirects rule, or nil when the rule rewrites to a file that does not
// exist (then the request is served as if no rule matched).
func (d *deployment) matchRoute(p string, m siteconfig.Match) *route {
	switch {
	case m.Status == 200 && isExternal(m.To):
		return &route{status: 200, upstream: m.To, noQuery: m.ByQuery, headers: d.headers(p)}
	case m.Status == 200:
		if f := d.resolve(pathOnly(m.To)); f != nil {
			return &route{status: 200, file: f, headers: d.headers(p)}
		}
	case m.Status == 404 || m.Status == 410:
		if f := d.resolve(pathOnly(m.To)); f != nil {
			return &route{status: m.Status, file: f, headers: d.headers(p)}
		}
		return &route{status: m.Status, page: pageNotFound, headers: d.headers(p)}
	case m.Status >= 300 && m.Status < 400:
		return &route{status: m.Status, location: m.To, noQuery: m.ByQuery, headers: d.headers(p)}
	}
	return nil
}

// fileRoute serves the file at p, or what stands in for a missing one.
func (d *deployment) fileRoute(p string) *route {
	if f := d.resolve(p); f != nil {
		return &route{status: 200, file: f, headers: d.headers(p)}
	}
	if !d.cfg.CleanURLs && !strings.HasSuffix(p, "/") && d.files[p+"/index.html"] != nil {
		return &route{status: 301, location: p + "/", headers: d.headers(p)}
	}
	// about.html-style output: "/about/" is "/about" with a slash too many, and Next's and SvelteKit's own
	// servers answer it with a permanent redirect rather than a 404 or the home page.
	if d.cfg.CleanURLs && d.cfg.TrailingSlash == "" && len(p) > 1 && strings.HasSuffix(p, "/") {
		if b := strings.TrimRight(p, "/"); b != "" && d.files[b+".html"] != nil {
			return &route{status: 308, location: b, headers: d.headers(p)}
		}
	}
	// A missing asset (a previous deploy's chunk, a broken image link) is a 404, never the SPA's HTML with 200:
	// a browser would run HTML as a JavaScript module, and broken links would not show.
	if d.cfg.SPA && !hasExtension(p) {
		if f := d.files["/index.html"]; f != nil {
			return &route{status: 200, file: f, headers: d.headers(p)}
		}
	}
	if d.cfg.NotFound != "" {
		if f := d.files[d.cfg.NotFound]; f != nil {
			return &route{status: 404, file: f, headers: d.headers(p)}
		}
	}
	return &route{status: 404, page: pageNotFound, headers: d.headers(p)}
}

// hasExtension reports whether the last segment of p has a file extension ("/assets/app.js", "/logo.png").
func hasExtension(p string) bool {
	last := p[strings.LastIndexByte(p, '/')+1:]
	i := strings.LastIndexByte(last, '.')
	return i >= 0 && i < len(last)-1
}

// resolve finds the file for a path: exact, directory index, then clean URLs.
func (d *deployment) resolve(p string) *file {
	if f := d.files[p]; f != nil {
		return f
	}
	if strings.HasSuffix(p, "/") {
		if f := d.files[p+"index.html"]; f != nil || d.cfg.TrailingSlash != "add" || !d.cfg.CleanURLs || len(p) < 2 {
			return f
		}
		// With trailing slashes added, "/about/" is how about.html is reached.
		return d.files[p[:len(p)-1]+".html"]
	}
	if d.cfg.CleanURLs {
		if f := d.files[p+".html"]; f != nil {
			return f
		}
		return d.files[p+"/index.html"]
	}
	return nil
}

// exists tells _redirects whether a file would be served at p, which shadows rules without `!`.
func (d *deployment) exists(p string) bool { return d.resolve(p) != nil }

// headers collects the _headers values for p: a name's first value replaces the proxy's default and later
// ones add to it; `! Name` drops what earlier rules set and removes the proxy's default.
func (d *deployment) headers(p string) []header {
	var hs []header
	d.rules.Headers(p, func(name, value string) {
		op := opSet
		for _, h := range hs {
			if h.op != opDel && strings.EqualFold(string(h.name), name) {
				op = opAdd
			}
		}
		hs = append(hs, header{name: []byte(name), value: []byte(value), op: op})
	}, func(name string) {
		kept := hs[:0]
		for _, h := range hs {
			if !strings.EqualFold(string(h.name), name) {
				kept = append(kept, h)
			}
		}
		hs = append(kept, header{name: []byte(name), op: opDel})
	})
	return hs
}

func pathOnly(to string) string {
	if i := strings.IndexAny(to, "?#"); i >= 0 {
		return to[:i]
	}
	return to
}

func isExternal(to string) bool {
	l := strings.ToLower(to[:min(len(to), 8)])
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "//")
}
