package siteconfig

import (
	"fmt"
	"net/url"
	"path"
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
	// %-escaped. It may carry the rule's own query string; the request's query is not in it. The proxy passes
	// the request's query on as Netlify does: it appends "?"+query when To has no "?", and "&"+query otherwise.
	//
	// For 200, 404 and 410 it is always a clean, decoded URL path ("/app/index.html", never with "..", "//" or
	// a query), ready to look up in the manifest with the proxy's usual clean-URL rules.
	To string
	// Line is the rule's line in _redirects, for logs and debugging headers.
	Line int
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
	// to is the final target when parts is nil (no substitutions).
	to    string
	parts []tpart
	// isPath is true when the target is a path on this site rather than an absolute URL.
	isPath bool
}

// tpart is a piece of a target template: a literal, or the capture with index cap (cap >= 0).
type tpart struct {
	lit string
	cap int
}

type headerRule struct {
	pat    *pattern
	values []Header
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
	}
	for _, hr := range s.Headers {
		pt, err := compilePattern(hr.Path, true)
		if err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "_headers:%d: %s", hr.Line, err)
		}
		vals := make([]Header, 0, len(hr.Values))
		for _, h := range hr.Values {
			c, err := checkHeader(h.Name, h.Value)
			if err != nil {
				return nil, ferry.Errorf(ferry.EINVALID, "_headers:%d: %s", hr.Line, err)
			}
			vals = append(vals, c)
		}
		r.hIndex.add(pt, len(r.headers))
		r.headers = append(r.headers, headerRule{pat: pt, values: vals})
	}
	return r, nil
}

// Redirect returns the first _redirects rule that matches path, with its target expanded.
//
// path is the request's decoded, cleaned URL path without the query (what fasthttp's ctx.Path() gives); "/foo"
// and "/foo/" match the same rules. exists reports whether a static file would serve path (with the proxy's
// clean-URL rules); as on Netlify, a rule without "!" does not apply to such a path, while a forced rule does.
// exists is called at most once, and only when a rule without "!" matches; nil means no file exists.
func (r *Rules) Redirect(path string, exists func(string) bool) (Match, bool) {
	if r == nil || len(r.redirects) == 0 {
		return Match{}, false
	}
	b := base(path)
	bucket, wild := r.rIndex.candidates(b)
	var caps [MaxPlaceholders + 1]span
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
		if !rr.pat.matchSegments(b, &caps) {
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
		return Match{Status: rr.status, To: rr.expand(b, &caps), Line: rr.line}, true
	}
}

// Headers calls add for every header of every _headers rule that matches path, rules in file order and
// headers in their order within the rule. path is as for Redirect. The proxy adds each value (it does not
// replace earlier ones), so that values of one name from several rules all reach the response, as on Netlify.
func (r *Rules) Headers(path string, add func(name, value string)) {
	if r == nil || len(r.headers) == 0 {
		return
	}
	b := base(path)
	bucket, wild := r.hIndex.candidates(b)
	for {
		i, ok := next(&bucket, &wild)
		if !ok {
			return
		}
		hr := &r.headers[i]
		if hr.pat.matchGlob(b) {
			for _, h := range hr.values {
				add(h.Name, h.Value)
			}
		}
	}
}

// expand fills the target template with the captures of a match against b.
func (rr *redirectRule) expand(b string, caps *[MaxPlaceholders + 1]span) string {
	if rr.parts == nil {
		return rr.to
	}
	var sb strings.Builder
	sb.Grow(len(rr.to) + len(b))
	for _, p := range rr.parts {
		if p.cap < 0 {
			sb.WriteString(p.lit)
			continue
		}
		v := b[caps[p.cap].start:caps[p.cap].end]
		if rr.status >= 300 && rr.status < 400 {
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
		if err := checkPathBytes(to); err != nil {
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
			d, err := url.PathUnescape(p)
			if err != nil {
				return nil, fmt.Errorf("TO %q has a bad %%-escape", to)
			}
			if err := checkPathBytes(d); err != nil {
				return nil, fmt.Errorf("TO %q %w", to, err)
			}
			if needsClean(d) {
				return nil, fmt.Errorf("TO %q is not a clean path (no \"//\", \".\" or \"..\" segments)", to)
			}
			to = d
		}
	case hasHTTPScheme(to):
		if !redirect {
			return nil, fmt.Errorf("status %d with a full URL (%q) would serve another site's content, which Ferry does not do; use 301 or 302 to redirect, or a path on this site", rd.Status, to)
		}
		if err := checkPathBytes(to); err != nil {
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
	rr.parts = template(to, pt)
	if redirect && rr.isPath && rr.parts == nil && len(pt.names) == 0 && !pt.splat {
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

// template splits a target at its :placeholders and :splat. A ":name" that the pattern does not capture stays
// literal (a port, or text that merely looks like one). It returns nil when nothing is substituted.
func template(to string, pt *pattern) []tpart {
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
		if name == "splat" && pt.splat {
			c = len(pt.names)
		}
		for k, n := range pt.names {
			if n == name {
				c = k
			}
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
