package siteconfig

import (
	"bytes"
	"fmt"
	"io"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ferryhq/ferry/internal/ferry"
)

// statuses are the _redirects statuses Ferry serves: 200 rewrites, 3xx redirect, 404 and 410 serve TO with that
// status.
var statuses = map[int]bool{200: true, 301: true, 302: true, 303: true, 307: true, 308: true, 404: true, 410: true}

const statusHint = "use 200 (rewrite), 301, 302, 303, 307, 308, 404 or 410"

// ParseRedirects parses a Netlify-format _redirects file: one `FROM [QUERY...] TO [STATUS][!]` rule a line,
// "#" comments, surrounding spaces trimmed. Every rule it returns compiles; errors name the line
// ("_redirects:3: ..."). QUERY conditions (`id=:id`) are kept; Netlify's country, language, role, cookie and
// signing conditions are refused rather than ignored, so that a rule never applies more widely than its author
// meant.
func ParseRedirects(r io.Reader) ([]Redirect, error) {
	lines, err := readLines(r, "_redirects")
	if err != nil {
		return nil, err
	}
	var out []Redirect
	for i, line := range lines {
		n := i + 1
		fields := strings.Fields(line)
		for j, f := range fields {
			if strings.HasPrefix(f, "#") {
				fields = fields[:j]
				break
			}
		}
		if len(fields) == 0 {
			continue
		}
		rd, err := parseRedirectFields(fields)
		if err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "_redirects:%d: %s", n, err)
		}
		rd.Line = n
		if _, err := compileRedirect(rd); err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "_redirects:%d: %s", n, err)
		}
		if len(out) == MaxRules {
			return nil, ferry.Errorf(ferry.EINVALID, "_redirects:%d: more than %d rules; use splats (/blog/*) or placeholders (/blog/:slug) to cover many paths with one rule", n, MaxRules)
		}
		out = append(out, rd)
	}
	return out, nil
}

func parseRedirectFields(fields []string) (Redirect, error) {
	rd := Redirect{From: fields[0], Status: 301}
	if strings.Contains(rd.From, "://") || rd.From[0] != '/' && strings.Contains(rd.From, ".") {
		return rd, fmt.Errorf("redirects from a full URL or a domain (%q) are not supported; FROM must be a path such as /old-page", rd.From)
	}
	if rd.From[0] != '/' {
		return rd, fmt.Errorf("FROM %q must be a path starting with \"/\"", rd.From)
	}
	if from, q, ok := strings.Cut(rd.From, "?"); ok {
		// "/page?id=1 /to": the query is a condition, as if written "/page id=1 /to".
		rd.From = from
		for _, kv := range strings.Split(q, "&") {
			if kv != "" {
				rd.Query = append(rd.Query, queryParam(kv))
			}
		}
	}
	i := 1
	for i < len(fields) && isCondition(fields[i]) {
		rd.Query = append(rd.Query, queryParam(fields[i]))
		i++
	}
	if i == len(fields) {
		return rd, fmt.Errorf("missing TO after %q (write FROM TO [STATUS])", strings.Join(fields, " "))
	}
	if st, _, ok := parseStatus(fields[i]); ok {
		// A forward rule: "/admin/* 200" means "/admin/* /admin/:splat 200", as on Netlify.
		if !strings.HasSuffix(rd.From, "/*") || st != 200 {
			return rd, fmt.Errorf("missing TO before the status %q; only a rule such as \"/admin/* 200\" may leave TO out", fields[i])
		}
		rd.To = strings.TrimSuffix(rd.From, "*") + ":splat"
	} else {
		rd.To = fields[i]
		if hasHTTPScheme(rd.To) {
			// "https://example.com:8080" is "https://example.com:8080/", as URL parsers (and Cloudflare) write it.
			if u, err := url.Parse(rd.To); err == nil && u.Host != "" && u.Path == "" && u.RawQuery == "" && u.Fragment == "" && !strings.HasSuffix(rd.To, "?") && !strings.HasSuffix(rd.To, "#") {
				rd.To += "/"
			}
		}
		i++
	}
	if i < len(fields) && !isCondition(fields[i]) {
		st, force, ok := parseStatus(fields[i])
		if !ok {
			return rd, fmt.Errorf("unknown status %q (%s)", fields[i], statusHint)
		}
		rd.Status, rd.Force = st, force
		i++
	}
	if i < len(fields) {
		if k, _, _ := strings.Cut(fields[i], "="); isCondition(fields[i]) && (strings.EqualFold(k, "sign") || strings.EqualFold(k, "signed")) {
			return rd, fmt.Errorf("signed proxy requests (%q) are not supported", fields[i])
		}
		if isCondition(fields[i]) {
			return rd, fmt.Errorf("conditions such as %q (country, language, role, cookie) are not supported: every visitor gets the same rules", fields[i])
		}
		return rd, fmt.Errorf("unexpected %q after the status (write FROM TO [STATUS][!])", fields[i])
	}
	return rd, nil
}

// parseStatus reads "301" or "200!".
func parseStatus(s string) (status int, force, ok bool) {
	t, force := strings.CutSuffix(s, "!")
	st, err := strconv.Atoi(t)
	if err != nil || !statuses[st] || t[0] == '+' || t[0] == '-' {
		return 0, false, false
	}
	return st, force, true
}

func queryParam(kv string) QueryParam {
	k, v, _ := strings.Cut(kv, "=")
	return QueryParam{Key: k, Value: v}
}

// isCondition reports whether a _redirects field is a Netlify `key=value` condition rather than a TO.
func isCondition(f string) bool {
	return strings.Contains(f, "=") && !strings.HasPrefix(f, "/") && !strings.Contains(f, "://")
}

// ParseHeaders parses a Netlify-format _headers file: a path pattern, then `Name: value` lines, and
// `! Name` lines that remove a header; "#" comments. Like both upstreams, it trims every line, so indentation
// is optional: a line starting with "/" is a path, any other is a header line. Errors name the line
// ("_headers:7: ..."). Headers that the proxy must own, because they frame the response or decide caching
// correctness, are refused (see forbiddenHeaders).
func ParseHeaders(r io.Reader) ([]HeaderRule, error) {
	lines, err := readLines(r, "_headers")
	if err != nil {
		return nil, err
	}
	var out []HeaderRule
	cur := -1
	for i, line := range lines {
		n := i + 1
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' {
			continue
		}
		if t[0] != '/' && !isURLLine(t) {
			if cur < 0 && !strings.Contains(t, ":") {
				return nil, ferry.Errorf(ferry.EINVALID, "_headers:%d: %q is not a path: a path must start with \"/\"", n, t)
			}
			if cur < 0 {
				return nil, ferry.Errorf(ferry.EINVALID, "_headers:%d: header line before any path; start with a path such as /*", n)
			}
			if name, ok := strings.CutPrefix(t, "!"); ok && !strings.Contains(name, ":") {
				c, err := checkHeaderName(strings.TrimSpace(name))
				if err != nil {
					return nil, ferry.Errorf(ferry.EINVALID, "_headers:%d: ! %s", n, err)
				}
				out[cur].Unset = append(out[cur].Unset, c)
				continue
			}
			name, value, ok := strings.Cut(t, ":")
			if !ok {
				return nil, ferry.Errorf(ferry.EINVALID, "_headers:%d: expected \"Name: value\" (or \"! Name\" to remove a header), got %q", n, t)
			}
			h, err := checkHeader(strings.TrimSpace(name), strings.TrimSpace(value))
			if err != nil {
				return nil, ferry.Errorf(ferry.EINVALID, "_headers:%d: %s", n, err)
			}
			out[cur].Values = append(out[cur].Values, h)
			continue
		}
		if strings.Contains(t, "://") || strings.HasPrefix(t, "//") {
			return nil, ferry.Errorf(ferry.EINVALID, "_headers:%d: full-URL paths (%q) are not supported; write a path such as /*", n, t)
		}
		if strings.ContainsAny(t, " \t") {
			return nil, ferry.Errorf(ferry.EINVALID, "_headers:%d: path %q contains a space; write it as %%20", n, t)
		}
		if _, err := compilePattern(t, true); err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "_headers:%d: %s", n, err)
		}
		if len(out) == MaxRules {
			return nil, ferry.Errorf(ferry.EINVALID, "_headers:%d: more than %d path blocks; use * to cover many paths with one block", n, MaxRules)
		}
		out = append(out, HeaderRule{Path: t, Line: n})
		cur = len(out) - 1
	}
	// A path with no headers under it does nothing; leave it out of the manifest.
	kept := out[:0]
	for _, hr := range out {
		if len(hr.Values) > 0 || len(hr.Unset) > 0 {
			kept = append(kept, hr)
		}
	}
	return kept, nil
}

// isURLLine reports whether a _headers line is a full URL ("https://example.com/*"), which is a path line that
// Ferry refuses, rather than a header.
func isURLLine(t string) bool {
	i := strings.Index(t, "://")
	return i > 0 && !strings.ContainsAny(t[:i], " \t:")
}

// forbiddenHeaders are the headers a site may not set, with the reason the user sees. The proxy owns message
// framing (a wrong length or encoding corrupts the response), connection management, and the validators its
// 304 and Range answers rely on. Set-Cookie is refused because every site shares the preview domain: a cookie
// set with Domain=<domain> would reach every other project's previews.
var forbiddenHeaders = map[string]string{
	"Content-Length":    "the proxy sets it from the file",
	"Transfer-Encoding": "the proxy frames responses itself",
	"Content-Encoding":  "the proxy compresses responses itself",
	"Content-Range":     "the proxy answers Range requests itself",
	"Accept-Ranges":     "the proxy answers Range requests itself",
	"Etag":              "the proxy sets it to the file's hash and answers If-None-Match with it",
	"Connection":        "it is a hop-by-hop header the proxy manages",
	"Keep-Alive":        "it is a hop-by-hop header the proxy manages",
	"Proxy-Connection":  "it is a hop-by-hop header the proxy manages",
	"Upgrade":           "it is a hop-by-hop header the proxy manages",
	"Te":                "it is a hop-by-hop header the proxy manages",
	"Trailer":           "it is a hop-by-hop header the proxy manages",
	"Date":              "the proxy sets it",
	"Set-Cookie":        "sites share the preview domain, so a cookie could reach other projects' sites",
	"Basic-Auth":        "password protection (Netlify's Basic-Auth) is not supported",
}

// checkHeaderName validates a header name and returns it in canonical form.
func checkHeaderName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("header line has no name before \":\"")
	}
	for i := 0; i < len(name); i++ {
		if !isTokenByte(name[i]) {
			return "", fmt.Errorf("header name %q has a character not allowed in header names (%q)", name, name[i])
		}
	}
	canon := textproto.CanonicalMIMEHeaderKey(name)
	if why, ok := forbiddenHeaders[canon]; ok {
		return "", fmt.Errorf("header %q cannot be set or removed in _headers: %s", canon, why)
	}
	return canon, nil
}

// checkHeader validates one `Name: value` line and returns it with the name in canonical form.
func checkHeader(name, value string) (Header, error) {
	canon, err := checkHeaderName(name)
	if err != nil {
		return Header{}, err
	}
	if value == "" {
		return Header{}, fmt.Errorf("header %q has no value", canon)
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return Header{}, fmt.Errorf("header %q value has a control character", canon)
		}
	}
	if !utf8.ValidString(value) {
		return Header{}, fmt.Errorf("header %q value is not valid UTF-8", canon)
	}
	return Header{Name: canon, Value: value}, nil
}

// isTokenByte reports whether c may appear in an HTTP header name (RFC 9110 tchar).
func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// readLines reads a whole rules file under the size limits and splits it into lines, refusing NUL bytes,
// invalid UTF-8 and overlong lines with the line's number.
func readLines(r io.Reader, file string) ([]string, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if len(data) > MaxFileBytes {
		return nil, ferry.Errorf(ferry.EINVALID, "%s: larger than %d bytes", file, MaxFileBytes)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		lines[i] = l
		switch {
		case len(l) > MaxLineBytes:
			return nil, ferry.Errorf(ferry.EINVALID, "%s:%d: line longer than %d bytes", file, i+1, MaxLineBytes)
		case strings.IndexByte(l, 0) >= 0:
			return nil, ferry.Errorf(ferry.EINVALID, "%s:%d: contains a NUL byte", file, i+1)
		case !utf8.ValidString(l):
			return nil, ferry.Errorf(ferry.EINVALID, "%s:%d: not valid UTF-8", file, i+1)
		}
	}
	return lines, nil
}
