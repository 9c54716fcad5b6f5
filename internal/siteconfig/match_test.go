package siteconfig

import (
	"reflect"
	"strings"
	"testing"
)

func mustRules(t testing.TB, redirects, headers string) *Rules {
	t.Helper()
	rds, err := ParseRedirects(strings.NewReader(redirects))
	if err != nil {
		t.Fatal(err)
	}
	hrs, err := ParseHeaders(strings.NewReader(headers))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Compile(Serving{Redirects: rds, Headers: hrs})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRedirect(t *testing.T) {
	t.Parallel()
	rules := mustRules(t, `
/old                /new
/home               /                      302
/blog/*             /posts/:splat
/news/:year/:slug   /articles/:year-:slug  301
/docs/:v/*          https://docs.example.com/:v/:splat?from=ferry 302
/shop/*             /shop/index.html       200
/files/*            /store/:splat          200
/u/:name            /people/:name          308
/go/*               /:splat                302
/x/:a/:b            https://example.com:8443/:b/:a 301
/letters*           /abc:splat             301
/missing/*          /404.html              404
/ /landing 302
/static-page        /elsewhere             301
/forced             /forced-target         302!
/*                  /index.html            200
`, "")
	none := func(string) bool { return false }
	cases := []struct {
		path string
		want Match
		ok   bool
	}{
		{"/old", Match{Status: 301, To: "/new", Line: 2}, true},
		{"/old/", Match{Status: 301, To: "/new", Line: 2}, true},
		{"/home", Match{Status: 302, To: "/", Line: 3}, true},
		{"/blog", Match{Status: 301, To: "/posts/", Line: 4}, true},
		{"/blog/", Match{Status: 301, To: "/posts/", Line: 4}, true},
		{"/blog/a", Match{Status: 301, To: "/posts/a", Line: 4}, true},
		{"/blog/a/b/", Match{Status: 301, To: "/posts/a/b/", Line: 4}, true},
		{"/blogger", Match{Status: 200, To: "/index.html", Line: 17}, true},
		{"/news/2024/hello", Match{Status: 301, To: "/articles/2024-hello", Line: 5}, true},
		{"/news/2024/hello/", Match{Status: 301, To: "/articles/2024-hello", Line: 5}, true},
		{"/news/2024", Match{Status: 200, To: "/index.html", Line: 17}, true},
		{"/news/2024/hello/extra", Match{Status: 200, To: "/index.html", Line: 17}, true},
		{"/docs/v2/guide/intro", Match{Status: 302, To: "https://docs.example.com/v2/guide/intro?from=ferry", Line: 6}, true},
		{"/shop/cart/42", Match{Status: 200, To: "/shop/index.html", Line: 7}, true},
		{"/files/a/b.txt", Match{Status: 200, To: "/store/a/b.txt", Line: 8}, true},
		// 3xx targets escape captured (decoded) values; rewrites keep them decoded for the file lookup.
		{"/u/jo é?#%", Match{Status: 308, To: "/people/jo%20%C3%A9%3F%23%25", Line: 9}, true},
		{"/files/jo é.txt", Match{Status: 200, To: "/store/jo é.txt", Line: 8}, true},
		// A splat starting with "/" must not make a protocol-relative Location.
		{"/go//evil.example/x", Match{Status: 302, To: "/evil.example/x", Line: 10}, true},
		{"/go/ok", Match{Status: 302, To: "/ok", Line: 10}, true},
		{"/x/1/2", Match{Status: 301, To: "https://example.com:8443/2/1", Line: 11}, true},
		{"/letters", Match{Status: 301, To: "/abc", Line: 12}, true},
		{"/lettersxyz/q", Match{Status: 301, To: "/abcxyz/q", Line: 12}, true},
		{"/missing/thing", Match{Status: 404, To: "/404.html", Line: 13}, true},
		{"/", Match{Status: 302, To: "/landing", Line: 14}, true},
		{"", Match{Status: 302, To: "/landing", Line: 14}, true},
		{"/anything/else", Match{Status: 200, To: "/index.html", Line: 17}, true},
	}
	for _, c := range cases {
		got, ok := rules.Redirect(c.path, none)
		if ok != c.ok || got != c.want {
			t.Errorf("Redirect(%q) = %+v, %v; want %+v, %v", c.path, got, ok, c.want, c.ok)
		}
	}
	// A nil exists means no file exists.
	if got, ok := rules.Redirect("/old", nil); !ok || got.To != "/new" {
		t.Errorf("nil exists: got %+v, %v", got, ok)
	}
}

func TestRedirectShadowing(t *testing.T) {
	t.Parallel()
	rules := mustRules(t, `
/static-page  /elsewhere 301
/forced       /forced-target 302!
/app/*        /app/index.html 200
/*            /index.html 200
/any/*        /late 301!
`, "")
	files := map[string]bool{"/static-page": true, "/forced": true, "/app/main.js": true, "/any/x": true}
	calls := 0
	exists := func(p string) bool { calls++; return files[p] }
	cases := []struct {
		path  string
		want  Match
		ok    bool
		calls int
	}{
		// A file shadows a rule without "!", and later rules without "!" too; "!" applies anyway.
		{"/static-page", Match{}, false, 1},
		{"/forced", Match{Status: 302, To: "/forced-target", Line: 3}, true, 0},
		{"/app/main.js", Match{}, false, 1},
		{"/app/route", Match{Status: 200, To: "/app/index.html", Line: 4}, true, 1},
		{"/any/x", Match{Status: 301, To: "/late", Line: 6}, true, 1},
		{"/nofile", Match{Status: 200, To: "/index.html", Line: 5}, true, 1},
	}
	for _, c := range cases {
		calls = 0
		got, ok := rules.Redirect(c.path, exists)
		if ok != c.ok || got != c.want {
			t.Errorf("Redirect(%q) = %+v, %v; want %+v, %v", c.path, got, ok, c.want, c.ok)
		}
		if calls != c.calls {
			t.Errorf("Redirect(%q) called exists %d times, want %d", c.path, calls, c.calls)
		}
	}
}

func TestRedirectFirstMatchWins(t *testing.T) {
	t.Parallel()
	rules := mustRules(t, "/a/* /first 301\n/a/b /second 301\n/:x/b /third 301\n/a/b /fourth 301\n", "")
	for _, p := range []string{"/a/b", "/a/b/", "/a/zzz"} {
		if got, _ := rules.Redirect(p, nil); got.To != "/first" {
			t.Errorf("%s: got %+v, want the first rule", p, got)
		}
	}
	if got, _ := rules.Redirect("/c/b", nil); got.To != "/third" {
		t.Errorf("/c/b: got %+v, want the third rule", got)
	}
}

func TestRedirectNoRules(t *testing.T) {
	t.Parallel()
	var nilRules *Rules
	if _, ok := nilRules.Redirect("/a", nil); ok {
		t.Error("nil Rules matched")
	}
	nilRules.Headers("/a", func(string, string) { t.Error("nil Rules added a header") }, nil)
	empty, err := Compile(Serving{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := empty.Redirect("/a", nil); ok {
		t.Error("empty Rules matched")
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	rules := mustRules(t, "", `
/*
  X-Frame-Options: DENY
/assets/*
  Cache-Control: public, max-age=31536000, immutable
/*.js
  X-Js: yes
/blog/:slug
  X-Blog: post
/blog/:slug/comments
  X-Comments: yes
/a*b*c
  X-Glob: abc
/exact
  Link: </1>
  Link: </2>
/*
  X-Last: yes
`)
	cases := []struct {
		path string
		want []string
	}{
		{"/", []string{"X-Frame-Options: DENY", "X-Last: yes"}},
		{"/assets/app.js", []string{"X-Frame-Options: DENY", "Cache-Control: public, max-age=31536000, immutable", "X-Js: yes", "X-Last: yes"}},
		{"/assets", []string{"X-Frame-Options: DENY", "Cache-Control: public, max-age=31536000, immutable", "X-Last: yes"}},
		{"/deep/x/y.js", []string{"X-Frame-Options: DENY", "X-Js: yes", "X-Last: yes"}},
		{"/y.jsx", []string{"X-Frame-Options: DENY", "X-Last: yes"}},
		{"/blog/hello", []string{"X-Frame-Options: DENY", "X-Blog: post", "X-Last: yes"}},
		{"/blog/hello/", []string{"X-Frame-Options: DENY", "X-Blog: post", "X-Last: yes"}},
		{"/blog", []string{"X-Frame-Options: DENY", "X-Last: yes"}},
		{"/blog/hello/comments", []string{"X-Frame-Options: DENY", "X-Comments: yes", "X-Last: yes"}},
		{"/blog/a/b", []string{"X-Frame-Options: DENY", "X-Last: yes"}},
		{"/axxbyyc", []string{"X-Frame-Options: DENY", "X-Glob: abc", "X-Last: yes"}},
		{"/a/b/c/d/c", []string{"X-Frame-Options: DENY", "X-Glob: abc", "X-Last: yes"}},
		{"/acb", []string{"X-Frame-Options: DENY", "X-Last: yes"}},
		{"/exact/", []string{"X-Frame-Options: DENY", "Link: </1>", "Link: </2>", "X-Last: yes"}},
	}
	for _, c := range cases {
		var got []string
		rules.Headers(c.path, func(n, v string) { got = append(got, n+": "+v) }, nil)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Headers(%q) = %q, want %q", c.path, got, c.want)
		}
	}
}

func TestGlob(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pat, path string
		want      bool
	}{
		{"/*", "/", true},
		{"/*", "/a/b/c", true},
		{"/a/*", "/a", true},
		{"/a/*", "/ab", false},
		{"/a*", "/a", true},
		{"/a*", "/abc/d", true},
		{"/*/x", "/a/b/x", true},
		{"/*/x", "/x", false},
		{"/a*/*", "/a", true},
		{"/a*/*", "/ab", true},
		{"/a*/*", "/b", false},
		{"/*/*/*", "/", false},
		{"/*/*/*", "/a/b", true},
		{"/*/x/*", "/x", false},
		{"/*/x/*", "/a/x", true},
		{"/*/x/*", "/x/x", true},
		{"/*x*", "/x", true},
		{"/*x*", "/y", false},
		{"/*ab*abc", "/abab/abc", true},
		{"/*ab*abc", "/abc", false},
		{"/:a/:b/*.js", "/x/y/z/q.js", true},
		{"/:a/:b/*.js", "/x/y.js", false},
		{"/:p", "/a", true},
		{"/:p", "/", false},
		{"/:p/*", "/a/b/c", true},
		{"/*.css", "/a/b.css/", true},
		{"/*a*a*a*b", "/" + strings.Repeat("a", 200), false},
		{"/*a*a*a*b", "/" + strings.Repeat("a", 200) + "b", true},
		{"/**", "/x", true},
	}
	for _, c := range cases {
		pt, err := compilePattern(c.pat, true)
		if err != nil {
			t.Fatal(err)
		}
		if got := pt.matchGlob(base(c.path), len(c.path), nil); got != c.want {
			t.Errorf("%s ~ %s = %v, want %v", c.pat, c.path, got, c.want)
		}
	}
}

func TestCompileRejectsBadManifest(t *testing.T) {
	t.Parallel()
	cases := []struct {
		s    Serving
		want string
	}{
		{Serving{Redirects: []Redirect{{From: "/a", To: "javascript:x", Status: 301, Line: 4}}}, "_redirects:4:"},
		{Serving{Redirects: []Redirect{{From: "a", To: "/b", Status: 301, Line: 2}}}, "_redirects:2:"},
		{Serving{Redirects: []Redirect{{From: "/a", To: "/b", Status: 0, Line: 5}}}, "_redirects:5: unknown status"},
		{Serving{Headers: []HeaderRule{{Path: "/*", Values: []Header{{"Content-Length", "1"}}, Line: 7}}}, "_headers:7:"},
		{Serving{Headers: []HeaderRule{{Path: "/*", Values: []Header{{"X-A", "a\nb"}}, Line: 8}}}, "_headers:8:"},
		{Serving{Headers: []HeaderRule{{Path: "*", Values: []Header{{"X-A", "b"}}, Line: 9}}}, "_headers:9:"},
	}
	for _, c := range cases {
		_, err := Compile(c.s)
		checkErr(t, err, []string{c.want})
	}
}

func TestRedirectAllocs(t *testing.T) {
	rules := benchRules(t, 100)
	exists := func(string) bool { return true }
	for _, p := range []string{"/no/such/page", "/section-50/x", "/", "/static/app.js"} {
		if n := testing.AllocsPerRun(100, func() { rules.Redirect(p, exists) }); n != 0 {
			t.Errorf("Redirect(%q) allocates %v times per call, want 0", p, n)
		}
	}
	n := 0
	add := func(string, string) { n++ }
	if a := testing.AllocsPerRun(100, func() { rules.Headers("/assets/app.js", add, nil) }); a != 0 {
		t.Errorf("Headers allocates %v times per call, want 0", a)
	}
	// A match without substitutions returns the stored target.
	if a := testing.AllocsPerRun(100, func() { rules.Redirect("/old-7", nil) }); a != 0 {
		t.Errorf("literal match allocates %v times per call, want 0", a)
	}
}

func TestRedirectQuery(t *testing.T) {
	t.Parallel()
	rules := mustRules(t, `
/store id=:id /blog/:id 301
/store kind=shoes /shoes 302
/c?x=1&y=:y /d/:y 302
/s a=:a b=:b /t/:b/:a 200
/store /all 301
`, "")
	if !rules.HasQueryRules() {
		t.Fatal("HasQueryRules = false")
	}
	cases := []struct {
		path, query string
		want        Match
	}{
		{"/store", "id=42&utm=x", Match{Status: 301, To: "/blog/42", Line: 2, ByQuery: true}},
		{"/store", "id=a b/c", Match{Status: 301, To: "/blog/a%20b/c", Line: 2, ByQuery: true}},
		{"/store", "kind=shoes", Match{Status: 302, To: "/shoes", Line: 3, ByQuery: true}},
		{"/store", "kind=hats", Match{Status: 301, To: "/all", Line: 6}},
		{"/store", "", Match{Status: 301, To: "/all", Line: 6}},
		{"/c", "x=1&y=2", Match{Status: 302, To: "/d/2", Line: 4, ByQuery: true}},
		{"/c", "x=2&y=2", Match{}},
		{"/s", "b=2&a=1", Match{Status: 200, To: "/t/2/1", Line: 5, ByQuery: true}},
		{"/s", "b=../../x&a=1", Match{Status: 200, To: "/x/1", Line: 5, ByQuery: true}},
	}
	for _, c := range cases {
		var q Query
		if c.query != "" {
			q = mapQuery(c.query)
		}
		got, ok := rules.RedirectQuery(c.path, q, nil)
		if ok != (c.want.Status != 0) || got != c.want {
			t.Errorf("RedirectQuery(%q, %q) = %+v, %v; want %+v", c.path, c.query, got, ok, c.want)
		}
	}
	// Without a query, rules with query conditions never match.
	if got, _ := rules.Redirect("/store", nil); got.Line != 6 {
		t.Errorf("Redirect(/store) = %+v", got)
	}
}

func TestRedirectForwardAndEscapes(t *testing.T) {
	t.Parallel()
	rules := mustRules(t, "  /admin/* 200!\n\t/some%20page /other%20page 302\n/files/* /store/:splat 200\n", "")
	for path, want := range map[string]Match{
		"/admin/a/b":  {Status: 200, To: "/admin/a/b", Line: 1},
		"/some page":  {Status: 302, To: "/other%20page", Line: 2},
		"/files/a/b/": {Status: 200, To: "/store/a/b/", Line: 3},
		"/files/a b":  {Status: 200, To: "/store/a b", Line: 3},
	} {
		if got, ok := rules.Redirect(path, nil); !ok || got != want {
			t.Errorf("Redirect(%q) = %+v, %v; want %+v", path, got, ok, want)
		}
	}
}

func TestHeadersPlaceholdersAndUnset(t *testing.T) {
	t.Parallel()
	rules := mustRules(t, "", `
/*
X-Frame-Options: DENY
X-Both: 1
/assets/:v/*
  Link: </assets/:v/main.js>, </assets/:v/lang.js>
  X-Splat: :splat
  ! X-Frame-Options
/assets/*
  X-Both: 2
/:port
  X-Port: localhost:8080 :port
`)
	type op struct{ name, value string }
	cases := map[string][]op{
		"/assets/js/a b.js": {{"X-Frame-Options", "DENY"}, {"X-Both", "1"}, {"unset", "X-Frame-Options"},
			{"Link", "</assets/js/main.js>, </assets/js/lang.js>"}, {"X-Splat", "a%20b.js"}, {"X-Both", "2"}},
		"/assets/js/d/": {{"X-Frame-Options", "DENY"}, {"X-Both", "1"}, {"unset", "X-Frame-Options"},
			{"Link", "</assets/js/main.js>, </assets/js/lang.js>"}, {"X-Splat", "d/"}, {"X-Both", "2"}},
		"/p": {{"X-Frame-Options", "DENY"}, {"X-Both", "1"}, {"X-Port", "localhost:8080 p"}},
	}
	for path, want := range cases {
		var got []op
		rules.Headers(path, func(n, v string) { got = append(got, op{n, v}) }, func(n string) { got = append(got, op{"unset", n}) })
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Headers(%q) = %q, want %q", path, got, want)
		}
	}
}
