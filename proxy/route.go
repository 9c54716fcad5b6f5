package proxy

import (
	"strings"
)

// route is what a URL path of a deployment resolves to once the site's rules are applied. Routes are computed
// on first request and cached per deployment, so that user rules are never evaluated on the hot path.
type route struct {
	status int
	// file is the body; nil for redirects and plain pages.
	file *file
	// location is a redirect's target (the request's query string is appended when served).
	location string
	// page is the body of a plain page (file == nil and location == "").
	page []byte
	// headers are the _headers values that apply to the request path.
	headers []header
}

// header is one response header from _headers. add is false for the first value of a name, which replaces any
// default (users may override Cache-Control), and true for the next ones.
type header struct {
	name, value []byte
	add         bool
}

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

// computeRoute applies, in order: the trailing-slash setting, _redirects, the file itself (with clean URLs and
// directory index), then SPA fallback, the custom 404 page and a plain 404.
func (d *deployment) computeRoute(p string) *route {
	switch d.cfg.TrailingSlash {
	case "add":
		if !strings.HasSuffix(p, "/") && d.files[p] == nil && !strings.Contains(p[strings.LastIndexByte(p, '/'):], ".") {
			return &route{status: 301, location: p + "/"}
		}
	case "remove":
		if len(p) > 1 && strings.HasSuffix(p, "/") {
			return &route{status: 301, location: strings.TrimRight(p, "/")}
		}
	}
	if m, ok := d.rules.Redirect(p, d.exists); ok {
		switch {
		case m.Status == 200:
			if f := d.resolve(pathOnly(m.To)); f != nil {
				return &route{status: 200, file: f, headers: d.headers(p)}
			}
			if isExternal(m.To) {
				return &route{status: 502, page: pageExternalRewrite}
			}
		case m.Status == 404 || m.Status == 410:
			if f := d.resolve(pathOnly(m.To)); f != nil {
				return &route{status: m.Status, file: f, headers: d.headers(p)}
			}
			return &route{status: m.Status, page: pageNotFound}
		case m.Status >= 300 && m.Status < 400:
			return &route{status: m.Status, location: m.To}
		}
	}
	if f := d.resolve(p); f != nil {
		return &route{status: 200, file: f, headers: d.headers(p)}
	}
	if !d.cfg.CleanURLs && !strings.HasSuffix(p, "/") && d.files[p+"/index.html"] != nil {
		return &route{status: 301, location: p + "/"}
	}
	if d.cfg.SPA {
		if f := d.files["/index.html"]; f != nil {
			return &route{status: 200, file: f, headers: d.headers(p)}
		}
	}
	if d.cfg.NotFound != "" {
		if f := d.files[d.cfg.NotFound]; f != nil {
			return &route{status: 404, file: f, headers: d.headers(p)}
		}
	}
	return &route{status: 404, page: pageNotFound}
}

// resolve finds the file for a path: exact, directory index, then clean URLs.
func (d *deployment) resolve(p string) *file {
	if f := d.files[p]; f != nil {
		return f
	}
	if strings.HasSuffix(p, "/") {
		return d.files[p+"index.html"]
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

func (d *deployment) headers(p string) []header {
	var hs []header
	seen := map[string]bool{}
	d.rules.Headers(p, func(name, value string) {
		key := strings.ToLower(name)
		hs = append(hs, header{name: []byte(name), value: []byte(value), add: seen[key]})
		seen[key] = true
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
	return strings.HasPrefix(to, "http://") || strings.HasPrefix(to, "https://") || strings.HasPrefix(to, "//")
}
