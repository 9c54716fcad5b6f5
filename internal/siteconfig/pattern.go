package siteconfig

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Limits on what users write. They keep a hostile file from costing the publisher or the proxy more than a
// real site ever needs; each one gives an error that names it.
const (
	// MaxFileBytes caps the size of _redirects, _headers and ferry.json.
	MaxFileBytes = 1 << 20
	// MaxLineBytes caps one line of _redirects or _headers.
	MaxLineBytes = 4 << 10
	// MaxRules caps the rules in one _redirects file, and the path blocks in one _headers file.
	MaxRules = 10000
	// MaxPatternBytes caps one path pattern. _headers patterns match with backtracking, whose worst case grows
	// with the pattern's length; real patterns are far shorter.
	MaxPatternBytes = 512
	// MaxPlaceholders caps the :placeholders in one pattern, so that the proxy captures them on its stack.
	MaxPlaceholders = 16
)

type tokKind uint8

const (
	tokLit  tokKind = iota // literal bytes
	tokSeg                 // :name, exactly one non-empty segment
	tokStar                // *, any run of characters (only last, in _redirects)
)

type token struct {
	kind tokKind
	lit  string
}

// pattern is a compiled path pattern. Patterns are normalized so that "/foo" and "/foo/" are the same: a
// pattern that does not end in * ends in "/", and the request path is matched as if it ended in exactly one "/".
type pattern struct {
	toks []token
	// head is toks up to the first star (literals and placeholders); chunks are the literals between stars,
	// and tail the literal after the last star ("" when the pattern ends in *). stars counts the stars.
	head   []token
	chunks []string
	tail   string
	stars  int
	// names are the placeholder names, in order; a capture index is a position in names.
	names []string
	// splat is true when the pattern ends in *.
	splat bool
	// first is the literal first segment, when bucketed is true; rules are indexed by it.
	first    string
	bucketed bool
	// suffix is the last literal of a pattern with a placeholder and no star ("/page/" in "/:lang/page"): a
	// path that does not end with it is rejected before the walk.
	suffix string
}

// compilePattern parses a path pattern. anyStar allows * anywhere (_headers); otherwise * may only end the
// pattern (_redirects), where its match is the splat.
func compilePattern(p string, anyStar bool) (*pattern, error) {
	if p == "" || p[0] != '/' {
		return nil, fmt.Errorf("path %q must start with \"/\"", p)
	}
	if len(p) > MaxPatternBytes {
		return nil, fmt.Errorf("path pattern is longer than %d bytes", MaxPatternBytes)
	}
	if strings.ContainsAny(p, "?#") {
		return nil, fmt.Errorf("path %q: a fragment, or a query string in a _headers path, is not supported; match the path alone", p)
	}
	if err := checkPathBytes(p, false); err != nil {
		return nil, fmt.Errorf("path %q %w", p, err)
	}
	d, err := decodePath(p)
	if err != nil {
		return nil, fmt.Errorf("path %q %w", p, err)
	}
	p = d
	pt := &pattern{}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			pt.toks = append(pt.toks, token{kind: tokLit, lit: lit.String()})
			lit.Reset()
		}
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		last := i == len(segs)-1
		lit.WriteByte('/')
		switch {
		case s == "" && last:
			// A trailing slash: "/foo/" is "/foo".
		case s == "":
			return nil, fmt.Errorf("path %q has an empty segment (\"//\")", p)
		case s == "." || s == "..":
			return nil, fmt.Errorf("path %q has a %q segment", p, s)
		case s[0] == ':':
			name := s[1:]
			if !isName(name) {
				return nil, fmt.Errorf("path %q: placeholder %q must be a whole segment \":name\" (letters, digits, _)", p, s)
			}
			if name == "splat" {
				return nil, fmt.Errorf("path %q: \":splat\" is reserved for the match of a trailing *", p)
			}
			for _, n := range pt.names {
				if n == name {
					return nil, fmt.Errorf("path %q uses placeholder %q twice", p, s)
				}
			}
			if len(pt.names) == MaxPlaceholders {
				return nil, fmt.Errorf("path %q has more than %d placeholders", p, MaxPlaceholders)
			}
			pt.names = append(pt.names, name)
			flush()
			pt.toks = append(pt.toks, token{kind: tokSeg})
		default:
			for j := 0; j < len(s); j++ {
				if s[j] != '*' {
					lit.WriteByte(s[j])
					continue
				}
				if !anyStar && (!last || j != len(s)-1) {
					return nil, fmt.Errorf("path %q: * is allowed only at the end (\"/blog/*\")", p)
				}
				flush()
				if n := len(pt.toks); n == 0 || pt.toks[n-1].kind != tokStar {
					pt.toks = append(pt.toks, token{kind: tokStar})
				}
			}
		}
	}
	// Normalize the end: a pattern ending in * keeps it (and matches the empty run), any other ends in "/".
	if n := len(pt.toks); n > 0 && pt.toks[n-1].kind == tokStar && lit.Len() == 0 {
		pt.splat = true
	} else if lit.Len() == 0 || !strings.HasSuffix(lit.String(), "/") {
		lit.WriteByte('/')
	}
	flush()
	for i, t := range pt.toks {
		switch {
		case t.kind == tokStar:
			pt.stars++
		case pt.stars == 0:
			pt.head = pt.toks[:i+1]
		case t.kind == tokSeg:
			return nil, fmt.Errorf("path %q: a :placeholder cannot come after a *", p)
		case i == len(pt.toks)-1:
			pt.tail = t.lit
		default:
			pt.chunks = append(pt.chunks, t.lit)
		}
	}
	if last := pt.toks[len(pt.toks)-1]; len(pt.names) > 0 && last.kind == tokLit && pt.stars == 0 {
		pt.suffix = last.lit
	}
	if t := pt.toks[0]; t.kind == tokLit {
		if j := strings.IndexByte(t.lit[1:], '/'); j >= 0 {
			pt.first, pt.bucketed = t.lit[1:1+j], true
		} else if len(pt.toks) == 1 && t.lit == "/" {
			pt.first, pt.bucketed = "", true
		}
	}
	return pt, nil
}

// decodePath decodes a path written with %-escapes ("/some%20page"), because the proxy matches decoded paths.
// An escaped space is fine; escapes that the proxy refuses in requests (slash, backslash, NUL, controls) could
// never match, so they are refused here.
func decodePath(p string) (string, error) {
	if !strings.Contains(p, "%") {
		return p, nil
	}
	d, err := url.PathUnescape(p)
	if err != nil {
		return "", errors.New("has a bad %-escape")
	}
	if strings.Count(d, "/") != strings.Count(p, "/") {
		return "", errors.New("has an escaped slash (%2F), which requests may not contain")
	}
	if err := checkPathBytes(d, true); err != nil {
		return "", fmt.Errorf("decodes to a path that %w", err)
	}
	return d, nil
}

// checkPathBytes rejects bytes that have no business in a URL path pattern or target: NUL and other controls,
// spaces (unless space, for a decoded path: "/some%20page"), backslashes (browsers read "/\evil" as "//evil")
// and invalid UTF-8.
func checkPathBytes(p string, space bool) error {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return errors.New("contains a control character")
		case c == ' ' && !space:
			return errors.New("contains a space")
		case c == '\\':
			return errors.New("contains a backslash")
		}
	}
	if !utf8.ValidString(p) {
		return errors.New("is not valid UTF-8")
	}
	return nil
}

// isName reports whether s is a placeholder name: a letter or _, then letters, digits or _.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9' {
			continue
		}
		return false
	}
	return true
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && '0' <= c && c <= '9'
}

// base strips the one trailing "/" that the matchers treat as virtual: the path is matched as base + "/".
func base(path string) string {
	if n := len(path); n > 0 && path[n-1] == '/' {
		return path[:n-1]
	}
	return path
}

// firstSegment returns the first segment of the virtual text base+"/", the key of the rule index.
func firstSegment(b string) string {
	if b == "" {
		return ""
	}
	s := b[1:]
	if j := strings.IndexByte(s, '/'); j >= 0 {
		return s[:j]
	}
	return s
}

// litAt reports whether lit occurs at pos of the virtual text b+"/".
func litAt(b string, pos int, lit string) bool {
	end := pos + len(lit)
	switch {
	case end <= len(b):
		return b[pos:end] == lit
	case end == len(b)+1:
		return lit[len(lit)-1] == '/' && b[pos:] == lit[:len(lit)-1]
	}
	return false
}

// span is a captured [start, end) of the request path.
type span struct{ start, end int }

// walk matches literals and placeholders from pos of the virtual text b+"/", deterministically: a placeholder
// takes its whole segment. It returns the end position; caps (if not nil) receives the placeholders from ci on.
func walk(b string, pos int, toks []token, caps *[MaxPlaceholders + 1]span) (int, bool) {
	ci := 0
	for _, t := range toks {
		switch t.kind {
		case tokLit:
			if !litAt(b, pos, t.lit) {
				return 0, false
			}
			pos += len(t.lit)
		case tokSeg:
			start := pos
			for pos < len(b) && b[pos] != '/' {
				pos++
			}
			if pos == start {
				return 0, false
			}
			if caps != nil {
				caps[ci] = span{start, pos}
			}
			ci++
		}
	}
	return pos, true
}

// matchSegments matches a _redirects pattern (literals, placeholders, and at most a trailing *) against b+"/".
// caps receives the placeholders, then the splat. plen is the length of the request path, which is b or b+"/":
// the splat runs to its end, so that "/blog/*" on "/blog/a/b/" captures "a/b/" as both upstreams do.
func (pt *pattern) matchSegments(b string, plen int, caps *[MaxPlaceholders + 1]span) bool {
	n := len(b) + 1
	if s := pt.suffix; s != "" && (len(s) > n || b[n-len(s):] != s[:len(s)-1]) {
		return false
	}
	pos, ok := walk(b, 0, pt.head, caps)
	if !ok {
		return false
	}
	if pt.stars == 0 {
		return pos == n
	}
	if pos >= len(b) {
		// Nothing but the trailing slash is left: the splat is empty ("/letters*" on "/letters/"), as on Netlify.
		caps[len(pt.names)] = span{len(b), len(b)}
	} else {
		caps[len(pt.names)] = span{pos, plen}
	}
	return true
}

// matchGlob matches a _headers pattern against b+"/": '*' takes any run (slashes included) and a placeholder
// one whole segment. Placeholders only come before the first star, so the head is walked deterministically,
// each literal between stars is taken at its leftmost occurrence (which leaves the most room for the rest),
// and the tail must end the path. That costs O(len(path)+len(pattern)) whatever the pattern, so a hostile
// _headers file cannot make the proxy backtrack.
//
// caps, when not nil, receives the placeholders and then, as the splat, what the first * took (up to plen, the
// request path's length, when that * runs to the end).
func (pt *pattern) matchGlob(b string, plen int, caps *[MaxPlaceholders + 1]span) bool {
	n := len(b) + 1
	pos, ok := walk(b, 0, pt.head, caps)
	if !ok {
		return false
	}
	if pt.stars == 0 {
		return pos == n
	}
	star := pos
	setSplat := func(end int) {
		if caps != nil {
			if star >= len(b) {
				caps[len(pt.names)] = span{len(b), len(b)}
			} else {
				caps[len(pt.names)] = span{star, min(max(end, star), plen)}
			}
			caps = nil
		}
	}
	for _, c := range pt.chunks {
		if pos <= len(b) {
			if j := strings.Index(b[pos:], c); j >= 0 {
				setSplat(pos + j)
				pos += j + len(c)
				continue
			}
		}
		// The only occurrence that strings.Index cannot see is one that ends with the virtual "/".
		if at := n - len(c); at >= pos && litAt(b, at, c) {
			setSplat(at)
			pos = n
			continue
		}
		return false
	}
	if pt.tail == "" {
		setSplat(plen)
		return true
	}
	at := n - len(pt.tail)
	if at >= pos && litAt(b, at, pt.tail) {
		setSplat(at)
		return true
	}
	return false
}
