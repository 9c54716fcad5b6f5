package ghreport_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ferryhq/ferry/internal/ghreport"
)

func TestStripANSI(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"\x1b[31mError\x1b[0m: x":                    "Error: x",
		"\x1b[1;33mwarn\x1b[39;22m":                  "warn",
		"\x1b]8;;https://x.test\x07link\x1b]8;;\x07": "link",
		"\x1b[2K\x1b[1Gprogress":                     "progress",
		"plain":                                      "plain",
	} {
		if got := ghreport.StripANSI(in); got != want {
			t.Errorf("StripANSI(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzLogBlock: whatever a build prints, the check run's text is one fenced block within GitHub's limit, valid
// UTF-8 when the lines are, with no escape bytes, and the last line kept when it fits.
func FuzzLogBlock(f *testing.F) {
	f.Add("\x1b[31merror\x1b[0m\nok", 1)
	f.Add("```\nbreak out```", 3)
	f.Add(strings.Repeat("é", 70000), 2)
	f.Fuzz(func(t *testing.T, text string, repeat int) {
		repeat = max(1, min(repeat, 50))
		var lines []string
		for range repeat {
			lines = append(lines, strings.Split(text, "\n")...)
		}
		out := ghreport.LogBlock(lines)
		if n := utf8.RuneCountInString(out); n > ghreport.MaxCheckOutput {
			t.Fatalf("block of %d characters", n)
		}
		fence := out[:strings.IndexByte(out, 't')]
		body, ok := strings.CutPrefix(out, fence+"text\n")
		if len(fence) < 3 || strings.Trim(fence, "`") != "" || !ok || !strings.HasSuffix(body, "\n"+fence) && body != fence ||
			strings.Contains(strings.TrimSuffix(body, fence), fence) {
			t.Fatalf("not one fenced block: %q", out)
		}
		if utf8.ValidString(text) && !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 from valid lines")
		}
		if strings.ContainsRune(out, 0x1b) {
			t.Fatalf("escape kept: %q", out)
		}
	})
}
