package siteconfig

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ferryhq/ferry/internal/ferry"
)

func TestParseRedirects(t *testing.T) {
	t.Parallel()
	in := "# Netlify-style rules\n" +
		"\n" +
		"/old /new\n" +
		"/home / 302\n" +
		"/blog/* /posts/:splat 301!\n" +
		"  /news/:year/:slug   /articles/:year-:slug  \n" +
		"/app/* /app/index.html 200\n" +
		"/gone /404.html 404 # inline comment\n" +
		"/ext https://example.com/landing?ref=ferry 302\r\n" +
		"/see-other /x 303\n" +
		"/tmp /y 307\n" +
		"/perm /z 308\n" +
		"/dead /410.html 410\n"
	got, err := ParseRedirects(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Redirect{
		{From: "/old", To: "/new", Status: 301, Line: 3},
		{From: "/home", To: "/", Status: 302, Line: 4},
		{From: "/blog/*", To: "/posts/:splat", Status: 301, Force: true, Line: 5},
		{From: "/news/:year/:slug", To: "/articles/:year-:slug", Status: 301, Line: 6},
		{From: "/app/*", To: "/app/index.html", Status: 200, Line: 7},
		{From: "/gone", To: "/404.html", Status: 404, Line: 8},
		{From: "/ext", To: "https://example.com/landing?ref=ferry", Status: 302, Line: 9},
		{From: "/see-other", To: "/x", Status: 303, Line: 10},
		{From: "/tmp", To: "/y", Status: 307, Line: 11},
		{From: "/perm", To: "/z", Status: 308, Line: 12},
		{From: "/dead", To: "/410.html", Status: 410, Line: 13},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseRedirectsEmpty(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "\n\n", "# only a comment\n", "\xef\xbb\xbf# BOM\n"} {
		got, err := ParseRedirects(strings.NewReader(in))
		if err != nil || len(got) != 0 {
			t.Errorf("%q: got %v, %v; want no rules", in, got, err)
		}
	}
}

// errCase is an input that must fail with a user error whose message contains every one of want.
type errCase struct {
	name string
	in   string
	want []string
}

func checkErr(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", want)
	}
	if code := ferry.ErrorCode(err); code != ferry.EINVALID {
		t.Errorf("code %q, want %q (%v)", code, ferry.EINVALID, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestParseRedirectsErrors(t *testing.T) {
	t.Parallel()
	cases := []errCase{
		{"unknown status", "/a /b\n\n/c /d 999\n", []string{`_redirects:3: unknown status "999"`, "301"}},
		{"status word", "/a /b permanent\n", []string{`_redirects:1: unknown status "permanent"`}},
		{"bang alone", "/a /b !\n", []string{`_redirects:1: unknown status "!"`}},
		{"missing to", "# c\n/a\n", []string{"_redirects:2: missing TO"}},
		{"full url from", "https://old.example.com/* https://new.example.com/:splat 301\n", []string{"_redirects:1:", "full URL or a domain", "not supported"}},
		{"domain from", "old.example.com/a /b\n", []string{"_redirects:1:", "not supported"}},
		{"relative from", "a /b\n", []string{"_redirects:1:", `must be a path starting with "/"`}},
		{"query condition without TO", "/store id=:id\n", []string{"_redirects:1:", "missing TO"}},
		{"query placeholder reused", "/s/:id id=:id /b/:id\n", []string{"_redirects:1:", "already used"}},
		{"signed proxy", "/api/* https://api.example.com/:splat 200! Sign=API_SECRET\n", []string{"_redirects:1:", "signed proxy requests", "not supported"}},
		{"forward rule without splat", "/admin 200\n", []string{"_redirects:1:", "missing TO", "/admin/* 200"}},
		{"forward rule with 301", "/admin/* 301\n", []string{"_redirects:1:", "missing TO"}},
		{"country", "/ /uk 302 Country=gb\n", []string{"_redirects:1:", `"Country=gb"`, "not supported"}},
		{"language no status", "/ /fr Language=fr\n", []string{"_redirects:1:", `"Language=fr"`, "not supported"}},
		{"role", "/admin/* /admin/:splat 200! Role=admin\n", []string{"_redirects:1:", "Role=admin", "not supported"}},
		{"extra field", "/a /b 301 extra\n", []string{"_redirects:1:", `unexpected "extra"`}},
		{"javascript", "/a javascript:alert(1)\n", []string{"_redirects:1:", `must be a path starting with "/" or an http:// or https:// URL`}},
		{"data", "/a data:text/html,hi 302\n", []string{"_redirects:1:", "http:// or https://"}},
		{"protocol relative", "/a //evil.example/x 302\n", []string{"_redirects:1:", "protocol-relative"}},
		{"backslash relative", "/a /\\evil.example 302\n", []string{"_redirects:1:", "protocol-relative"}},
		{"relative to", "/a b\n", []string{"_redirects:1:", "http:// or https://"}},
		{"ftp", "/a ftp://x.example/ 301\n", []string{"_redirects:1:", "http:// or https://"}},
		{"dotdot from", "/a/../etc /b\n", []string{"_redirects:1:", `".." segment`}},
		{"dotdot to", "/a /b/../../etc/passwd 200\n", []string{"_redirects:1:", `".." segment`}},
		{"encoded dotdot to", "/a /b/%2e%2e/x 200\n", []string{"_redirects:1:", "not a clean path"}},
		{"encoded dotdot from", "/a/%2e%2e/b /c\n", []string{"_redirects:1:", `".." segment`}},
		{"bad escape", "/a%zz /b\n", []string{"_redirects:1:", "bad %-escape"}},
		{"encoded nul", "/a%00 /b\n", []string{"_redirects:1:", "control character"}},
		{"dot to", "/a /./b\n", []string{"_redirects:1:", `"." segment`}},
		{"empty segment", "/a//b /c\n", []string{"_redirects:1:", "empty segment"}},
		{"star in middle", "/a/*/b /c\n", []string{"_redirects:1:", "* is allowed only at the end"}},
		{"two stars", "/a/** /c\n", []string{"_redirects:1:", "* is allowed only at the end"}},
		{"placeholder part of segment", "/a/:id.html /c\n", []string{"_redirects:1:", "whole segment"}},
		{"empty placeholder", "/a/: /c\n", []string{"_redirects:1:", "whole segment"}},
		{"splat placeholder", "/a/:splat /c\n", []string{"_redirects:1:", "reserved"}},
		{"duplicate placeholder", "/a/:id/:id /c\n", []string{"_redirects:1:", "twice"}},
		{"too many placeholders", "/" + strings.Repeat(":p/", 0) + manyPlaceholders(17) + " /c\n", []string{"_redirects:1:", "more than 16 placeholders"}},
		{"proxy 404", "/api/* https://api.example.com/:splat 404\n", []string{"_redirects:1:", "status 404 with a full URL", "use 200 to proxy"}},
		{"proxy 404", "/x https://example.com/404 404\n", []string{"_redirects:1:", "status 404 with a full URL"}},
		{"userinfo", "/a https://user:pw@example.com/ 301\n", []string{"_redirects:1:", "credentials"}},
		{"placeholder host", "/r/:x https://:x.example.com/ 301\n", []string{"_redirects:1:", "host name"}},
		{"no host", "/a https:///path 301\n", []string{"_redirects:1:", "not a valid URL"}},
		{"self loop", "/about /about/ 301\n", []string{"_redirects:1:", "redirects to itself"}},
		{"self loop same", "/about/ /about 302!\n", []string{"_redirects:1:", "redirects to itself"}},
		{"nul", "/a /b\n/c\x00 /d\n", []string{"_redirects:2:", "NUL"}},
		{"bad utf8", "/a /b\n/\xff /d\n", []string{"_redirects:2:", "UTF-8"}},
		{"long line", "/a /" + strings.Repeat("b", MaxLineBytes) + "\n", []string{"_redirects:1:", "longer than 4096 bytes"}},
		{"long pattern", "/" + strings.Repeat("a", MaxPatternBytes) + " /b\n", []string{"_redirects:1:", "longer than 512 bytes"}},
		{"too big", strings.Repeat("# padding padding padding\n", MaxFileBytes/26+1), []string{"_redirects: larger than"}},
		{"too many rules", manyRules(MaxRules + 1), []string{"_redirects:10001:", "more than 10000 rules"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseRedirects(strings.NewReader(c.in))
			checkErr(t, err, c.want)
		})
	}
}

func manyPlaceholders(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString("/")
		}
		b.WriteString(":p")
		b.WriteString(strings.Repeat("x", i+1))
	}
	return b.String()
}

func manyRules(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("/r")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString("/")
		b.WriteString(itoa(i))
		b.WriteString(" /t\n")
	}
	return b.String()
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var d []byte
	for ; i > 0; i /= 10 {
		d = append([]byte{byte('0' + i%10)}, d...)
	}
	return string(d)
}

func TestParseRedirectsReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk on fire")
	_, err := ParseRedirects(iotest.ErrReader(boom))
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the read error wrapped", err)
	}
}

func TestParseHeaders(t *testing.T) {
	t.Parallel()
	in := "# security headers for everything\n" +
		"/*\n" +
		"  X-Frame-Options: DENY\n" +
		"\tx-content-type-options:   nosniff  \n" +
		"  # a comment inside a block\n" +
		"  Link: </style.css>; rel=preload; as=style\n" +
		"  Link: </app.js>; rel=preload; as=script\n" +
		"\n" +
		"/assets/*\n" +
		"  Cache-Control: public, max-age=31536000, immutable\n" +
		"/blog/:slug/\n" +
		"  Content-Security-Policy: default-src 'self'; img-src https://cdn.example.com:8443\n" +
		"/empty\n" +
		"/*.pdf\r\n" +
		"  Content-Disposition: attachment\r\n"
	got, err := ParseHeaders(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []HeaderRule{
		{Path: "/*", Line: 2, Values: []Header{
			{"X-Frame-Options", "DENY"},
			{"X-Content-Type-Options", "nosniff"},
			{"Link", "</style.css>; rel=preload; as=style"},
			{"Link", "</app.js>; rel=preload; as=script"},
		}},
		{Path: "/assets/*", Line: 9, Values: []Header{{"Cache-Control", "public, max-age=31536000, immutable"}}},
		{Path: "/blog/:slug/", Line: 11, Values: []Header{{"Content-Security-Policy", "default-src 'self'; img-src https://cdn.example.com:8443"}}},
		{Path: "/*.pdf", Line: 14, Values: []Header{{"Content-Disposition", "attachment"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseHeadersErrors(t *testing.T) {
	t.Parallel()
	cases := []errCase{
		{"header before path", "# x\n  X-A: b\n", []string{"_headers:2:", "before any path"}},
		{"unset forbidden", "/*\n  ! Content-Length\n", []string{"_headers:2:", "Content-Length"}},
		{"unset bad name", "/*\n  ! Bad Name\n", []string{"_headers:2:", "not allowed in header names"}},
		{"no colon", "/*\n  X-Frame-Options DENY\n", []string{"_headers:2:", `expected "Name: value"`}},
		{"no name", "/*\n  : DENY\n", []string{"_headers:2:", "no name"}},
		{"bad name", "/*\n  X Frame: DENY\n", []string{"_headers:2:", "not allowed in header names"}},
		{"bad name char", "/*\n  X(Frame): DENY\n", []string{"_headers:2:", "not allowed in header names"}},
		{"empty value", "/*\n  X-A:\n", []string{"_headers:2:", "no value"}},
		{"control in value", "/*\n  X-A: a\rb\n", []string{"_headers:2:", "control character"}},
		{"content-length", "/*\n  content-length: 5\n", []string{"_headers:2:", `"Content-Length" cannot be set`}},
		{"transfer-encoding", "/*\n  Transfer-Encoding: chunked\n", []string{"_headers:2:", "Transfer-Encoding"}},
		{"connection", "/*\n  Connection: close\n", []string{"_headers:2:", "hop-by-hop"}},
		{"content-encoding", "/*\n  Content-Encoding: gzip\n", []string{"_headers:2:", "compresses"}},
		{"etag", "/*\n  ETag: \"x\"\n", []string{"_headers:2:", "Etag"}},
		{"set-cookie", "/*\n  Set-Cookie: a=b; Domain=example.com\n", []string{"_headers:2:", "other projects"}},
		{"basic-auth", "/*\n  Basic-Auth: user:pass\n", []string{"_headers:2:", "Basic-Auth", "not supported"}},
		{"full url", "https://example.com/*\n  X-A: b\n", []string{"_headers:1:", "full-URL", "not supported"}},
		{"relative path", "assets/*\n  X-A: b\n", []string{"_headers:1:", `must start with "/"`}},
		{"header before path", "X-A: b\n/a\n", []string{"_headers:1:", "before any path"}},
		{"path with space", "/a b\n  X-A: b\n", []string{"_headers:1:", "contains a space"}},
		{"dotdot", "/a/../b\n  X-A: b\n", []string{"_headers:1:", `".." segment`}},
		{"query", "/a?x=1\n  X-A: b\n", []string{"_headers:1:", "query string"}},
		{"bad placeholder", "/a/:b.c\n  X-A: b\n", []string{"_headers:1:", "whole segment"}},
		{"placeholder after star", "/*/:id\n  X-A: b\n", []string{"_headers:1:", "cannot come after a *"}},
		{"nul", "/*\n  X-A: b\x00\n", []string{"_headers:2:", "NUL"}},
		{"long line", "/*\n  X-A: " + strings.Repeat("b", MaxLineBytes) + "\n", []string{"_headers:2:", "longer than"}},
		{"too big", strings.Repeat("#\n", MaxFileBytes/2+1), []string{"_headers: larger than"}},
		{"too many blocks", strings.Repeat("/a\n  X-A: b\n", MaxRules+1), []string{"_headers:20001:", "more than 10000 path blocks"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseHeaders(strings.NewReader(c.in))
			checkErr(t, err, c.want)
		})
	}
}
