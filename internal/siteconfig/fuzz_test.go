package siteconfig

import (
	"encoding/json"
	"fmt"
	"net/textproto"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var redirectSeeds = []string{
	"/old /new\n/blog/* /posts/:splat 301!\n",
	"/news/:year/:slug /articles/:year-:slug 302\n# c\n\n/app/* /app/index.html 200\n",
	"/docs/:v/* https://docs.example.com/:v/:splat?x=1 302\n/gone /404.html 404\n",
	"/go/* /:splat 302\n/letters* /abc:splat\n/ /landing 302\n",
	"/store id=:id /blog/:id 301\n",
	"/ /uk 302 Country=gb\n",
	"/a //evil\n/a javascript:alert(1)\n",
	"/a/%2e%2e/b /c\n/a%00 /b\n",
	"/a /b 999\n/a\n",
	"/r/:x https://:x.example.com/ 301\n",
	"/admin/* 200!\n/c?x=1&y=:y /d/:y\n/api/* https://api.example.com/:splat 200\n/some%20page /other%20page\n",
	"/s id=:id q=:q /p/:id?q=:q 302\n/t k=v /u#frag 301\n/x/* 301\n",
}

var headerSeeds = []string{
	"/*\n  X-Frame-Options: DENY\n  Link: </a>\n",
	"/assets/*\n\tCache-Control: public, max-age=31536000, immutable\n/*.js\n  X-Js: 1\n",
	"/blog/:slug/\n  X-A: b\n/a*b*c\n  X-B: c\n",
	"  X-A: b\n",
	"/*\n  Set-Cookie: a=b\n",
	"/*\nX-A: b\n",
	"/a\n  X A: b\n/b\n  X-A:\n",
	"/a/:x/*\n  Link: </:x/:splat>\n  ! X-Frame-Options\n!Server\n/b\n! Content-Length\n",
}

func FuzzParseRedirects(f *testing.F) {
	for _, s := range redirectSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		rds, err := ParseRedirects(strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "_redirects") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		var again strings.Builder
		for _, rd := range rds {
			if !strings.HasPrefix(rd.From, "/") || !statuses[rd.Status] || rd.Line < 1 {
				t.Fatalf("bad rule %+v", rd)
			}
			if !strings.HasPrefix(rd.To, "/") && !hasHTTPScheme(rd.To) || strings.HasPrefix(rd.To, "//") {
				t.Fatalf("bad target %+v", rd)
			}
			bang := ""
			if rd.Force {
				bang = "!"
			}
			fmt.Fprintf(&again, "%s", rd.From)
			for _, q := range rd.Query {
				fmt.Fprintf(&again, " %s=%s", q.Key, q.Value)
			}
			fmt.Fprintf(&again, " %s %d%s\n", rd.To, rd.Status, bang)
		}
		if _, err := Compile(Serving{Redirects: rds}); err != nil {
			t.Fatalf("Compile failed on parser output: %v", err)
		}
		// Writing the rules out again and parsing them gives the same rules.
		rds2, err := ParseRedirects(strings.NewReader(again.String()))
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		for i := range rds2 {
			rds2[i].Line = rds[i].Line
		}
		if !reflect.DeepEqual(rds, rds2) && len(rds) > 0 {
			t.Fatalf("round trip:\n%+v\n%+v", rds, rds2)
		}
	})
}

func FuzzParseHeaders(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		hrs, err := ParseHeaders(strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "_headers") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		var again strings.Builder
		for _, hr := range hrs {
			if !strings.HasPrefix(hr.Path, "/") || hr.Line < 1 || len(hr.Values) == 0 && len(hr.Unset) == 0 {
				t.Fatalf("bad rule %+v", hr)
			}
			fmt.Fprintf(&again, "%s\n", hr.Path)
			for _, h := range hr.Values {
				if h.Name != textproto.CanonicalMIMEHeaderKey(h.Name) || forbiddenHeaders[h.Name] != "" {
					t.Fatalf("bad header %+v", h)
				}
				if h.Value == "" || strings.ContainsAny(h.Value, "\r\n\x00") {
					t.Fatalf("bad value %+v", h)
				}
				fmt.Fprintf(&again, "  %s: %s\n", h.Name, h.Value)
			}
			for _, u := range hr.Unset {
				if u != textproto.CanonicalMIMEHeaderKey(u) || forbiddenHeaders[u] != "" {
					t.Fatalf("bad unset %q", u)
				}
				fmt.Fprintf(&again, "  ! %s\n", u)
			}
		}
		if _, err := Compile(Serving{Headers: hrs}); err != nil {
			t.Fatalf("Compile failed on parser output: %v", err)
		}
		hrs2, err := ParseHeaders(strings.NewReader(again.String()))
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		if len(hrs2) != len(hrs) {
			t.Fatalf("round trip: %d rules, then %d", len(hrs), len(hrs2))
		}
		for i := range hrs2 {
			if hrs2[i].Path != hrs[i].Path || !reflect.DeepEqual(hrs2[i].Values, hrs[i].Values) || !reflect.DeepEqual(hrs2[i].Unset, hrs[i].Unset) {
				t.Fatalf("round trip:\n%+v\n%+v", hrs[i], hrs2[i])
			}
		}
	})
}

func FuzzParseFile(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"rootDirectory": "web", "outputDirectory": "dist", "buildCommand": "npm run build", "installCommand": "", "nodeVersion": "20", "env": {"A": "1"}, "spa": true, "cleanUrls": false, "trailingSlash": true}`,
		`{"buildComand": "x"}`,
		`{"spa": "yes"}`,
		`{"outputDirectory": "../x"}`,
		`{"env": {"A": 1}}`,
		`[1]`,
		`{"spa": true,}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseFile(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ferry.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, d := range []string{file.RootDirectory, file.OutputDirectory} {
			if d != "" && checkDir(d) != nil {
				t.Fatalf("accepted directory %q", d)
			}
		}
		out, err := json.Marshal(file)
		if err != nil {
			t.Fatal(err)
		}
		file2, err := ParseFile(out)
		if err != nil {
			t.Fatalf("reparse of %s: %v", out, err)
		}
		if len(file.Env) == 0 {
			file.Env = nil
		}
		if !reflect.DeepEqual(file, file2) {
			t.Fatalf("round trip:\n%+v\n%+v", file, file2)
		}
	})
}

func FuzzMatch(f *testing.F) {
	for i, s := range redirectSeeds {
		f.Add(s, headerSeeds[i%len(headerSeeds)], "/blog/a/b", false)
	}
	for _, p := range []string{"/", "", "/go//evil.example", "/news/2024/x/", "/u/a b?#%", "/a/../b", "//", "/\xff", "/docs/v1/a"} {
		f.Add(redirectSeeds[1]+redirectSeeds[2]+redirectSeeds[3], headerSeeds[1]+headerSeeds[2], p, true)
	}
	f.Fuzz(func(t *testing.T, redirects, headers, path string, fileExists bool) {
		rds, err := ParseRedirects(strings.NewReader(redirects))
		if err != nil {
			rds = nil
		}
		hrs, err := ParseHeaders(strings.NewReader(headers))
		if err != nil {
			hrs = nil
		}
		rules, err := Compile(Serving{Redirects: rds, Headers: hrs})
		if err != nil {
			t.Fatalf("Compile failed on parser output: %v", err)
		}
		calls := 0
		// The path's last segment doubles as a query: "id=5&q=x" gives the query conditions something to match.
		var q Query
		if i := strings.LastIndexByte(path, '/'); strings.Contains(path[i+1:], "=") {
			q = mapQuery(path[i+1:])
		}
		m, ok := rules.RedirectQuery(path, q, func(string) bool { calls++; return fileExists })
		if calls > 1 {
			t.Fatalf("exists called %d times", calls)
		}
		if ok {
			if !statuses[m.Status] || m.Line < 1 {
				t.Fatalf("bad match %+v", m)
			}
			if m.Status >= 300 && m.Status < 400 {
				// To becomes a Location header: one line, no spaces, never protocol-relative.
				for i := 0; i < len(m.To); i++ {
					if c := m.To[i]; c <= ' ' || c == 0x7f || c == '\\' || c >= 0x80 {
						t.Fatalf("Location %q has byte %q", m.To, c)
					}
				}
				if strings.HasPrefix(m.To, "//") || !strings.HasPrefix(m.To, "/") && !hasHTTPScheme(m.To) {
					t.Fatalf("Location %q", m.To)
				}
			} else if m.Status == 200 && hasHTTPScheme(m.To) {
				// A proxy rule: the URL becomes a request line, and keeps the rule's host.
				for i := 0; i < len(m.To); i++ {
					if c := m.To[i]; c <= ' ' || c == 0x7f || c == '\\' || c >= 0x80 {
						t.Fatalf("proxy URL %q has byte %q", m.To, c)
					}
				}
			} else {
				if !strings.HasPrefix(m.To, "/") || needsClean(m.To) || strings.ContainsAny(m.To, "?#") && !strings.ContainsAny(path, "?#") {
					t.Fatalf("rewrite target %q for path %q", m.To, path)
				}
			}
			if fileExists && !rds[indexOfLine(rds, m.Line)].Force {
				t.Fatalf("a file shadows rule %d but it matched", m.Line)
			}
		}
		rules.Headers(path, func(name, value string) {
			if forbiddenHeaders[name] != "" || strings.ContainsAny(value, "\r\n") {
				t.Fatalf("header %q: %q", name, value)
			}
		}, func(name string) {
			if forbiddenHeaders[name] != "" {
				t.Fatalf("unset %q", name)
			}
		})
	})
}

func indexOfLine(rds []Redirect, line int) int {
	for i, rd := range rds {
		if rd.Line == line {
			return i
		}
	}
	return -1
}

// FuzzGlob checks both matchers against a regexp built from the same tokens: the reference semantics.
func FuzzGlob(f *testing.F) {
	for _, s := range [][2]string{
		{"/*", "/a"}, {"/a*/*", "/a"}, {"/*ab*abc", "/abab/abc"}, {"/:a/:b/*.js", "/x/y/z/q.js"},
		{"/blog/:slug/", "/blog/x/"}, {"/news/*", "/news"}, {"/letters*", "/lettersx/y"}, {"/*x*", "/y/"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, path string) {
		for _, anyStar := range []bool{true, false} {
			pt, err := compilePattern(pat, anyStar)
			if err != nil {
				continue
			}
			var re strings.Builder
			re.WriteString(`(?s)^`)
			for _, tk := range pt.toks {
				switch tk.kind {
				case tokLit:
					re.WriteString(regexp.QuoteMeta(tk.lit))
				case tokSeg:
					re.WriteString(`[^/]+`)
				case tokStar:
					re.WriteString(`.*`)
				}
			}
			re.WriteString(`$`)
			b := base(path)
			want := regexp.MustCompile(re.String()).MatchString(b + "/")
			if got := pt.matchGlob(b, len(path), nil); got != want {
				t.Fatalf("matchGlob(%q, %q) = %v, regexp %s says %v", pat, path, got, re.String(), want)
			}
			if !anyStar {
				var caps [MaxPlaceholders + 1]span
				if got := pt.matchSegments(b, len(path), &caps); got != want {
					t.Fatalf("matchSegments(%q, %q) = %v, regexp %s says %v", pat, path, got, re.String(), want)
				}
			}
		}
	})
}

// mapQuery is a Query read from "a=1&b=2".
type mapQuery string

func (m mapQuery) Get(key string) (string, bool) {
	for kv := range strings.SplitSeq(string(m), "&") {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}
