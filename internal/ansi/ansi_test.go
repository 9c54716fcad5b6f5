package ansi

import (
	"strings"
	"testing"
)

func TestStrip(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain", "plain"},
		{"}\x1b[39m", "}"},
		{"\x1b[31m\x1b[1merror\x1b[22m\x1b[39m during build:", "error during build:"},
		{"\x1b[38;5;196mred\x1b[0m", "red"},
		{"\x1b]8;;https://example.com\x07link\x1b]8;;\x07", "link"},
		{"\x1b]0;title\x1b\\text", "text"},
		{"cut \x1b[3", "cut "},
		{"end\x1b", "end"},
		{"\x1b7saved\x1b8", "saved"},
		{"\x1b[2K\x1b[1Gprogress", "progress"},
	} {
		if got := Strip(c.in); got != c.want {
			t.Errorf("Strip(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzStrip(f *testing.F) {
	for _, s := range []string{"}\x1b[39m", "\x1b]8;;u\x07x", "\x1b[", "a\x1b", "\x1b\x1b[1m", "ok"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Strip(s)
		if strings.IndexByte(out, 0x1b) >= 0 {
			t.Fatalf("Strip(%q) = %q keeps an ESC", s, out)
		}
		if len(out) > len(s) {
			t.Fatalf("Strip grew its input")
		}
		if Strip(out) != out {
			t.Fatalf("Strip is not idempotent on %q", s)
		}
	})
}
