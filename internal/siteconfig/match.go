package siteconfig

import (
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Rules is a site's _redirects and _headers, compiled once per manifest for the proxy's request path. Matching
// does no parsing, uses no regexp and allocates nothing unless a redirect matches (then only its target). A
// Rules is immutable and safe for concurrent use; a nil *Rules matches nothing.
type Rules struct {
	redirects []redirectRule
	rIndex    index
	headers   []headerRule
	hIndex    index
	hasQuery  bool
}

// Match is the _redirects rule that applies to a request.
type Match struct {
	// Status is the rule's status: 200 serves To's file in place of the request (a rewrite, applied once: the
	// proxy must not match rules again on To); 3xx redirects to To (the Location header); 404 and 410 serve To's
	// file with that status.
	Status int
	// To is the target with :placeholders and :splat filled in.
	//
	// For 3xx it is a URL: an absolute http(s) URL or a path starting with one "/", with the captured values
	// %-escaped. It may carry the rule's own query string and fragment; the request's query is not in it. The
	// proxy passes the request's query on as both upstreams do: only when To has no query of its own (and
	// KeepQuery is true), placed before any "#fragment".
	//
	// For 200 with an absolute http(s) URL (a proxy rule) it is that URL, with captured values %-escaped.
	//
	// For 200, 404 and 410 to a path it is always a clean, decoded URL path ("/app/index.html", never with "..",
	// "//" or a query), ready to look up in the manifest with the proxy's usual clean-URL rules.
	To string
	// Line is the rule's line in _redirects, for logs and debugging headers.
	Line int
	// ByQuery is true when the rule matched on query parameters (`/store id=:id /blog/:id`). Such a match
	// depends on more than the path, so the proxy must not cache it by path; and the request's query is not
	// passed on, since the rule consumed it.
	ByQuery bool
}

// Query is what rules with query conditions read from a request: fasthttp's Args, behind a small interface.
type Query interface {
	// Get returns the decoded value of the first parameter named key, and whether there is one.
	Get(key string) (string, bool)
}

// index finds the rules that may match a path without trying every rule: rules whose pattern starts with a
// literal segment are filed under it, and the rest are tried for every path. Both lists are in file order.
type index struct {
	byFirst map[string][]int32
	wild    []int32
}

func (ix *index) add(pt *pattern, i int) {
	if !pt.bucketed {
		ix.wild = append(ix.wild, int32(i))
		return
	}
	if ix.byFirst == nil {
		ix.byFirst = make(map[string][]int32)
	}
	ix.byFirst[pt.first] = append(ix.byFirst[pt.first], int32(i))
}

// candidates returns the two file-ordered lists of rule indexes to merge for the path with base b.
func (ix *index) candidates(b string) (bucket, wild []int32) {
	if len(ix.byFirst) > 0 {
		bucket = ix.byFirst[firstSegment(b)]
	}
	return bucket, ix.wild
}

// next pops the smaller head of two file-ordered lists: the next candidate in file order.
func next(a, b *[]int32) (int32, bool) {
	switch {
	case len(*a) == 0 && len(*b) == 0:
		return 0, false
	case len(*b) == 0 || len(*a) > 0 && (*a)[0] < (*b)[0]:
		i := (*a)[0]
		*a = (*a)[1:]
		return i, true
	default:
		i := (*b)[0]
		*b = (*b)[1:]
		return i, true
	}
}

type redirectRule struct {
	pat    *pattern
	status int
	force  bool
	line   int
	// query are the rule's query conditions; a capture's index is into the query values.
	query []queryCond
	// to is the final target when parts is nil (no substitutions).
	to    string
	parts []tpart
	// isPath is true when the target is a path on this site rather than an absolute URL.
	isPath bool
}

// queryCond is one `key=value` condition: the parameter must be present, and equal lit unless it is captured.
type queryCond struct {
	key, lit string
	capture  bool
}

// tpart is a piece of a target template: a literal, or the capture with index cap (cap >= 0). Captures
// 0..len(names)-1 are the path's placeholders, len(names) the splat, and the rest the query captures.
type tpart struct {
	lit string
	cap int
}

type headerRule struct {
	pat    *pattern
	values []headerValue
	unset  []string
}

// headerValue is a header with its value template (nil parts: no substitution).
type headerValue struct {
	Header
	parts []tpart
}

// Compile turns a manifest's serving config into Rules. The manifest was checked when it was published, but
// Compile checks every rule again because it trusts nothing read from storage; its errors name the line.
func Compile(s Serving) (*Rules, error) {
	r := &Rules{}
	for _, rd := range s.Redirects {
		rr, err := compileRedirect(rd)
		if err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "_redirects:%d: %s", rd.Line, err)
		}
		r.rIndex.add(rr.pat, len(r.redirects))
		r.redirects = append(r.redirects, *rr)
		r.hasQuery = r.hasQuery || len(rr.query) > 0
	}
	for _, hr := range s.Headers {
		pt, err := compilePattern(hr.Path, true)
		if err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "_headers:%d: %s", hr.Line, err)
		}
		vals := make([]headerValue, 0, len(hr.Values))
		for _, h := range hr.Values {
			c, err := checkHeader(h.Name, h.Value)
			if err != nil {
				return nil, ferry.Errorf(ferry.EINVALID, "_headers:%d: %s", hr.Line, err)
			}
			vals = append(vals, headerValue{Header: c, parts: template(c.Value, pt.names, pt.stars > 0, nil)})
		}
		unset := make([]string, 0, len(hr.Unset))
		for _, name := range hr.Unset {
			c, err := checkHeaderName(name)
			if err != nil {
				return nil, ferry.Errorf(ferry.EINVALID, "_headers:%d: %s", hr.Line, err)
			}
			unset = append(unset, c)
		}
		r.hIndex.add(pt, len(r.headers))
		r.headers = append(r.headers, headerRule{pat: pt, values: vals, unset: unset})
	}
	return r, nil
}

// HasQueryRules reports whether some rule has query conditions, so that the proxy knows whether a request's
// query can change its route.
func (r *Rules) HasQueryRules() bool { return r != nil && r.hasQuery }

// Redirect returns the first _redirects rule that matches path, with its target expanded.
//
// path is the request's decoded, cleaned URL path without the query (what fasthttp's ctx.Path() gives); "/foo"
// and "/foo/" match the same rules. exists reports whether a static file would serve path (with the proxy's
// clean-URL rules); as on Netlify, a rule without "!" does not apply to such a path, while a forced rule does.
// exists is called at most once, and only when a rule without "!" matches; nil means no file exists.
func (r *Rules) Redirect(path string, exists func(string) bool) (Match, bool) {
	return r.RedirectQuery(path, nil, exists)
}

// RedirectQuery is Redirect for a request with query parameters q: rules with query conditions are tried too
// (they never match when q is nil). As on Netlify, every condition's parameter must be present; `key=:name`
// captures its value and `key=value` requires that value.
func (r *Rules) RedirectQuery(path string, q Query, exists func(string) bool) (Match, bool) {
	if r == nil || len(r.redirects) == 0 {
		return Match{}, false
	}
	b := base(path)
	bucket, wild := r.rIndex.candidates(b)
	var caps [MaxPlaceholders + 1]span
	var qvals [MaxPlaceholders]string
	checked, shadowed := false, false
	for {
		i, ok := next(&bucket, &wild)
		if !ok {
			return Match{}, false
		}
		rr := &r.redirects[i]
		if shadowed && !rr.force {
			continue
		}
		if len(rr.query) > 0 && (q == nil || !rr.matchQuery(q, &qvals)) {
			continue
		}
		if !rr.pat.matchSegments(b, len(path), &caps) {
			continue
		}
		if !rr.force {
			if !checked {
				checked = true
				shadowed = exists != nil && exists(path)
			}
			if shadowed {
				continue
			}
		}
		return Match{Status: rr.status, To: rr.expand(path, &caps, &qvals), Line: rr.line, ByQuery: len(rr.query) > 0}, true
	}
}

// matchQuery checks the rule's query conditions and stores the captured values in qvals, in order.
func (rr *redirectRule) matchQuery(q Query, qvals *[MaxPlaceholders]string) bool {
	n := 0
	for _, c := range rr.query {
		v, ok := q.Get(c.key)
		if !ok || !c.capture && v != c.lit {
			return false
		}
		if c.capture {
			qvals[n] = v
			n++
		}
	}
	return true
}

// Headers calls add for every header of every _headers rule that matches path, rules in file order and
// headers in their order within the rule. path is as for Redirect. The proxy adds each value (it does not
// replace earlier ones), so that values of one name from several rules all reach the response, as on Netlify.
//
// A rule's `! Name` lines call unset (when not nil) before its headers are added: the response loses that
// header, whether the proxy or an earlier rule set it. :placeholders and :splat (what the first * matched) in
// values are filled in from the path, %-escaped as in a URL.
func (r *Rules) Headers(path string, add func(name, value string), unset func(name string)) {
	if r == nil || len(r.headers) == 0 {
		return
	}
	b := base(path)
	bucket, wild := r.hIndex.candidates(b)
	var caps [MaxPlaceholders + 1]span
	for {
		i, ok := next(&bucket, &wild)
		if !ok {
			return
		}
		hr := &r.headers[i]
		if !hr.pat.matchGlob(b, len(path), &caps) {
			continue
		}
		if unset != nil {
			for _, name := range hr.unset {
				unset(name)
			}
		}
		for _, h := range hr.values {
			if h.parts == nil {
				add(h.Name, h.Value)
				continue
			}
			var sb strings.Builder
			for _, p := range h.parts {
				if p.cap < 0 {
					sb.WriteString(p.lit)
				} else {
					writeEscaped(&sb, path[caps[p.cap].start:caps[p.cap].end])
				}
			}
			add(h.Name, sb.String())
		}
	}
}

// expand fills the target template with the captures of a match against path.
func (rr *redirectRule) expand(reqPath string, caps *[MaxPlaceholders + 1]span, qvals *[MaxPlaceholders]string) string {
	if rr.parts == nil {
		return rr.to
	}
	var sb strings.Builder
	sb.Grow(len(rr.to) + len(reqPath))
	qbase := len(rr.pat.names) + 1
	for _, p := range rr.parts {
		if p.cap < 0 {
			sb.WriteString(p.lit)
			continue
		}
		var v string
		if p.cap >= qbase {
			v = qvals[p.cap-qbase]
		} else {
			v = reqPath[caps[p.cap].start:caps[p.cap].end]
		}
		if rr.status >= 300 && rr.status < 400 || !rr.isPath {
			writeEscaped(&sb, v)
		} else {
			sb.WriteString(v)
		}
	}
	s := sb.String()
	if !rr.isPath {
		return s
	}
	if rr.status >= 300 && rr.status < 400 {
		// A splat that starts with "/" ("/go//evil.example") must not turn "/:splat" into "//evil.example",
		// which browsers read as another host.
		if len(s) > 1 && s[1] == '/' {
			s = "/" + strings.TrimLeft(s, "/")
		}
		return s
	}
	if needsClean(s) {
		s = path.Clean(s)
	}
	return s
}

// needsClean reports whether a rewrite target has an empty, "." or ".." segment.
func needsClean(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '/' {
			continue
		}
		rest := s[i+1:]
		if strings.HasPrefix(rest, "/") || rest == "." || rest == ".." ||
			strings.HasPrefix(rest, "./") || strings.HasPrefix(rest, "../") {
			return true
		}
	}
	return false
}

// writeEscaped writes a captured (decoded) value into a URL, %-escaping every byte that may not appear
// literally in a URL path. "/" stays, so a splat keeps its segments.
func writeEscaped(sb *strings.Builder, v string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0 {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hex[c>>4])
		sb.WriteByte(hex[c&15])
	}
}

// compileRedirect checks one rule and compiles it. Its errors carry no line; callers add it.
func compileRedirect(rd Redirect) (*redirectRule, error) {
	if !statuses[rd.Status] {
		return nil, fmt.Errorf("unknown status \"%d\" (%s)", rd.Status, statusHint)
	}
	pt, err := compilePattern(rd.From, false)
	if err != nil {
		return nil, err
	}
	rr := &redirectRule{pat: pt, status: rd.Status, force: rd.Force, line: rd.Line}
	var qnames []string
	if len(rd.Query) > MaxPlaceholders {
		return nil, fmt.Errorf("more than %d query conditions", MaxPlaceholders)
	}
	for _, qp := range rd.Query {
		c, err := checkQueryParam(qp)
		if err != nil {
			return nil, err
		}
		if c.capture {
			name := qp.Value[1:]
			if slices.Contains(pt.names, name) || slices.Contains(qnames, name) || name == "splat" {
				return nil, fmt.Errorf("query condition %s=%s: placeholder %q is already used", qp.Key, qp.Value, qp.Value)
			}
			qnames = append(qnames, name)
		}
		rr.query = append(rr.query, c)
	}
	if len(pt.names)+len(qnames) > MaxPlaceholders {
		return nil, fmt.Errorf("more than %d placeholders in the path and the query conditions", MaxPlaceholders)
	}
	to := rd.To
	if len(to) > MaxLineBytes {
		return nil, fmt.Errorf("TO is longer than %d bytes", MaxLineBytes)
	}
	redirect := rd.Status >= 300 && rd.Status < 400
	switch {
	case strings.HasPrefix(to, "//") || strings.HasPrefix(to, "/\\"):
		return nil, fmt.Errorf("TO %q is protocol-relative; write a path (/page) or a full URL (https://example.com/page)", to)
	case strings.HasPrefix(to, "/"):
		rr.isPath = true
		if err := checkPathBytes(to, false); err != nil {
			return nil, fmt.Errorf("TO %q %w", to, err)
		}
		p, _, _ := strings.Cut(to, "#")
		p, _, _ = strings.Cut(p, "?")
		for _, seg := range strings.Split(p, "/") {
			if seg == "." || seg == ".." {
				return nil, fmt.Errorf("TO %q has a %q segment", to, seg)
			}
		}
		if !redirect {
			// A rewrite serves a file: its target is a decoded path, and a query means nothing to a static file.
			d, err := decodePath(p)
			if err != nil {
				return nil, fmt.Errorf("TO %q %w", to, err)
			}
			if needsClean(d) {
				return nil, fmt.Errorf("TO %q is not a clean path (no \"//\", \".\" or \"..\" segments)", to)
			}
			to = d
		}
	case hasHTTPScheme(to):
		if !redirect && rd.Status != 200 {
			return nil, fmt.Errorf("status %d with a full URL (%q) is not supported; use 200 to proxy to that origin, 301 or 302 to redirect, or a path on this site", rd.Status, to)
		}
		if err := checkPathBytes(to, false); err != nil {
			return nil, fmt.Errorf("TO %q %w", to, err)
		}
		authority := to[strings.Index(to, "://")+3:]
		if j := strings.IndexAny(authority, "/?#"); j >= 0 {
			authority = authority[:j]
		}
		if strings.Contains(authority, "@") {
			return nil, fmt.Errorf("TO %q carries credentials (user@); remove them", to)
		}
		for j := 0; j+1 < len(authority); j++ {
			if authority[j] == ':' && isNameByte(authority[j+1], true) {
				return nil, fmt.Errorf("TO %q: placeholders are not allowed in the host name", to)
			}
		}
		u, err := url.Parse(to)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("TO %q is not a valid URL", to)
		}
		if u.User != nil {
			return nil, fmt.Errorf("TO %q carries credentials (user@); remove them", to)
		}
	default:
		return nil, fmt.Errorf("TO %q must be a path starting with \"/\" or an http:// or https:// URL", to)
	}
	rr.to = to
	rr.parts = template(to, pt.names, pt.splat, qnames)
	if redirect && rr.isPath && rr.parts == nil && len(pt.names) == 0 && !pt.splat && len(rd.Query) == 0 {
		tp, _, _ := strings.Cut(to, "?")
		if tp, _, _ = strings.Cut(tp, "#"); base(tp) == base(unescapeOr(rd.From)) {
			return nil, fmt.Errorf("%s redirects to itself (\"/a\" and \"/a/\" match the same rules), which would loop", rd.From)
		}
	}
	return rr, nil
}

func unescapeOr(s string) string {
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	return s
}

func hasHTTPScheme(s string) bool {
	l := strings.ToLower(s[:min(len(s), 8)])
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// checkQueryParam checks one query condition: a key, and a literal value or a :placeholder.
func checkQueryParam(qp QueryParam) (queryCond, error) {
	if qp.Key == "" {
		return queryCond{}, fmt.Errorf("query condition %q has no parameter name before \"=\"", "="+qp.Value)
	}
	for _, s := range []string{qp.Key, qp.Value} {
		if strings.ContainsAny(s, "&=#") || checkPathBytes(s, false) != nil {
			return queryCond{}, fmt.Errorf("query condition %s=%s: a name or value may not contain &, =, #, spaces or control characters", qp.Key, qp.Value)
		}
	}
	if strings.HasPrefix(qp.Value, ":") {
		if !isName(qp.Value[1:]) {
			return queryCond{}, fmt.Errorf("query condition %s=%s: placeholder must be \":name\" (letters, digits, _)", qp.Key, qp.Value)
		}
		return queryCond{key: qp.Key, capture: true}, nil
	}
	return queryCond{key: qp.Key, lit: qp.Value}, nil
}

// template splits a target at its :placeholders and :splat. A ":name" that the pattern does not capture stays
// literal (a port, or text that merely looks like one). It returns nil when nothing is substituted. Capture
// indexes follow tpart's numbering: names, then the splat (when splat is true), then qnames.
func template(to string, names []string, splat bool, qnames []string) []tpart {
	var parts []tpart
	lit := 0
	for i := 0; i < len(to); i++ {
		if to[i] != ':' || i+1 >= len(to) || !isNameByte(to[i+1], true) {
			continue
		}
		j := i + 1
		for j < len(to) && isNameByte(to[j], false) {
			j++
		}
		name, c := to[i+1:j], -1
		if name == "splat" && splat {
			c = len(names)
		}
		if k := slices.Index(names, name); k >= 0 {
			c = k
		}
		if k := slices.Index(qnames, name); k >= 0 {
			c = len(names) + 1 + k
		}
		if c < 0 {
			i = j - 1
			continue
		}
		if lit < i {
			parts = append(parts, tpart{lit: to[lit:i], cap: -1})
		}
		parts = append(parts, tpart{cap: c})
		lit = j
		i = j - 1
	}
	if parts == nil {
		return nil
	}
	if lit < len(to) {
		parts = append(parts, tpart{lit: to[lit:], cap: -1})
	}
	return parts
}
