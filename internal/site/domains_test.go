package site

import (
	"strings"
	"testing"
)

func TestValidateCustomHost(t *testing.T) {
	for host, want := range map[string]string{
		"www.example.com":       "www.example.com",
		"Example.COM.":          "example.com",
		" shop.example.co.uk ":  "shop.example.co.uk",
		"xn--bcher-kva.example": "xn--bcher-kva.example",
		"a-b.c-d.example":       "a-b.c-d.example",
	} {
		got, err := ValidateCustomHost(host, "preview.example.net")
		if err != nil || got != want {
			t.Errorf("ValidateCustomHost(%q) = %q, %v; want %q", host, got, err, want)
		}
	}
	for _, host := range []string{
		"", "localhost", "1.2.3.4", "::1", "[::1]", "*.example.com", "www.*.com", "preview.example.net",
		"web.preview.example.net", "pr-1--web.preview.example.net", "-a.example.com", "a-.example.com",
		"a..example.com", "example.123", "http://example.com", "example.com:443", "example.com/x", "a_b.example.com",
		strings.Repeat("a", 64) + ".com", strings.Repeat("abcdefghi.", 26) + "com", "é.example.com",
	} {
		if got, err := ValidateCustomHost(host, "preview.example.net"); err == nil {
			t.Errorf("ValidateCustomHost(%q) = %q, want an error", host, got)
		}
	}
}

func FuzzValidateCustomHost(f *testing.F) {
	for _, s := range []string{"www.example.com", "1.2.3.4", "*.a.b", "a.localhost", "xn--x.y", "A.B.", strings.Repeat("a.", 130)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ValidateCustomHost(s, "localhost")
		if err != nil {
			return
		}
		// Whatever is accepted is a clean storage key segment and a host the proxy can parse.
		if len(h) > MaxHostLen || strings.ContainsAny(h, "/\\*:[] ") || h != strings.ToLower(h) || strings.HasSuffix(h, ".") || h == "localhost" || strings.HasSuffix(h, ".localhost") {
			t.Fatalf("accepted %q as %q", s, h)
		}
		if again, err := ValidateCustomHost(h, "localhost"); err != nil || again != h {
			t.Fatalf("not idempotent: %q → %q → %q, %v", s, h, again, err)
		}
	})
}
