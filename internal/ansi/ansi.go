// Package ansi removes terminal escape sequences from tool output. Build tools colour their output; the
// dashboard renders those colours (app/web/static/dashboard.js), and every plain-text place (the command line,
// GitHub statuses and comments, a deployment's error) shows the text without them through Strip, the one
// stripper.
package ansi

import "strings"

// Strip returns s without ANSI escape sequences: CSI sequences (colours, cursor moves: ESC [ ... final byte),
// OSC sequences (titles, links: ESC ] ... BEL or ESC \), and other two-byte escapes. A lone ESC at the end is
// dropped too, so a cut line never leaves half a sequence behind.
func Strip(s string) string {
	i := strings.IndexByte(s, 0x1b)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		b.WriteString(s[:i])
		s = s[i+1:]
		s = skipEscape(s)
		i = strings.IndexByte(s, 0x1b)
	}
	b.WriteString(s)
	return b.String()
}

// skipEscape returns s past the escape sequence whose ESC was just removed.
func skipEscape(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '[': // CSI: parameter and intermediate bytes 0x20-0x3f, then one final byte 0x40-0x7e
		for j := 1; j < len(s); j++ {
			if c := s[j]; c >= 0x40 && c <= 0x7e {
				return s[j+1:]
			} else if c < 0x20 || c > 0x3f {
				return s[j:]
			}
		}
		return ""
	case ']': // OSC: up to BEL or ST (ESC \)
		for j := 1; j < len(s); j++ {
			if s[j] == 0x07 {
				return s[j+1:]
			}
			if s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\' {
				return s[j+2:]
			}
		}
		return ""
	}
	return s[1:] // ESC plus one byte (ESC 7, ESC =, ...)
}
