package siteconfig

import (
	"fmt"
	"strings"
	"testing"
)

// benchRules compiles n _redirects rules in the mix real sites have: mostly literal moves, then section
// splats, placeholder routes, and rules whose first segment is a placeholder (tried for every path), plus 20
// _headers blocks. None of them matches "/no/such/page".
func benchRules(tb testing.TB, n int) *Rules {
	tb.Helper()
	var rd, hd strings.Builder
	for i := range n {
		switch i % 10 {
		case 0, 1, 2, 3, 4, 5:
			fmt.Fprintf(&rd, "/old-%d /new-%d 301\n", i, i)
		case 6, 7:
			fmt.Fprintf(&rd, "/section-%d/* /s/%d/:splat 302\n", i, i)
		case 8:
			fmt.Fprintf(&rd, "/p-%d/:id /posts/:id 301\n", i)
		case 9:
			fmt.Fprintf(&rd, "/:lang/page-%d /page-%d?lang=:lang 302\n", i, i)
		}
	}
	hd.WriteString("/*\n  X-Frame-Options: DENY\n  X-Content-Type-Options: nosniff\n")
	hd.WriteString("/assets/*\n  Cache-Control: public, max-age=31536000, immutable\n")
	hd.WriteString("/*.html\n  Cache-Control: no-cache\n")
	for i := range 17 {
		fmt.Fprintf(&hd, "/docs-%d/:page\n  X-Doc: %d\n", i, i)
	}
	return mustRules(tb, rd.String(), hd.String())
}

func BenchmarkRedirectNoMatch100(b *testing.B) {
	rules := benchRules(b, 100)
	exists := func(string) bool { return true }
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := rules.Redirect("/no/such/page", exists); ok {
			b.Fatal("matched")
		}
	}
}

// BenchmarkRedirectShadowed100 matches "/section-7/*", which a file shadows: exists costs nothing extra.
func BenchmarkRedirectShadowed100(b *testing.B) {
	rules := benchRules(b, 100)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := rules.Redirect("/section-7", func(string) bool { return true }); ok {
			b.Fatal("matched")
		}
	}
}

func BenchmarkRedirectLiteralMatch100(b *testing.B) {
	rules := benchRules(b, 100)
	b.ReportAllocs()
	for b.Loop() {
		if m, ok := rules.Redirect("/old-50", nil); !ok || m.To != "/new-50" {
			b.Fatal(m, ok)
		}
	}
}

func BenchmarkRedirectSplatMatch100(b *testing.B) {
	rules := benchRules(b, 100)
	b.ReportAllocs()
	for b.Loop() {
		if m, ok := rules.Redirect("/section-67/a/b/c", nil); !ok || m.To != "/s/67/a/b/c" {
			b.Fatal(m, ok)
		}
	}
}

func BenchmarkHeaders20(b *testing.B) {
	rules := benchRules(b, 100)
	n := 0
	add := func(string, string) { n++ }
	b.ReportAllocs()
	for b.Loop() {
		rules.Headers("/assets/app.3f2a1b.js", add, nil)
	}
	if n == 0 {
		b.Fatal("no headers")
	}
}

func BenchmarkCompile100(b *testing.B) {
	rules := benchRules(b, 100)
	_ = rules
	var rd strings.Builder
	for i := range 100 {
		fmt.Fprintf(&rd, "/old-%d /new-%d 301\n", i, i)
	}
	rds, err := ParseRedirects(strings.NewReader(rd.String()))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(Serving{Redirects: rds}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHeadersWorstCase is the most a hostile _headers block can cost one request: a pattern of the
// maximum length that backtracks on every position of a 2 KiB path and still misses.
func BenchmarkHeadersWorstCase(b *testing.B) {
	pat := "/*" + strings.Repeat("a", MaxPatternBytes-4) + "b*"
	rules := mustRules(b, "", pat+"\n  X-A: b\n")
	path := "/" + strings.Repeat("a", 2047)
	add := func(string, string) { b.Fatal("matched") }
	b.ReportAllocs()
	for b.Loop() {
		rules.Headers(path, add, nil)
	}
}
