package proxy

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseByteRange holds parseByteRange to RFC 9110's rules for one range on any input: a satisfiable range
// lies inside the body, a last position past the end is clamped, and nothing panics or overflows.
func FuzzParseByteRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=0-", "bytes=-5", "bytes=-0", "bytes=5-1", "bytes=0-99999999999999999999999",
		"bytes=99999999999999999999-", "bytes=-99999999999999999999", "bytes= 1 - 2 ", "bytes=a-b", "bytes=1-2-3", "bytes=", "items=0-1"} {
		f.Add(s, 100)
	}
	f.Fuzz(func(t *testing.T, rng string, size int) {
		if size < 0 || size > 1<<40 {
			return
		}
		start, end, ok := parseByteRange([]byte(rng), size)
		if !ok {
			return
		}
		if start < 0 || start > end || end >= size {
			t.Fatalf("parseByteRange(%q, %d) = %d-%d: outside the body", rng, size, start, end)
		}
		spec := strings.TrimSpace(strings.TrimPrefix(rng, "bytes="))
		first, last, _ := strings.Cut(spec, "-")
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		if first != "" {
			if n, err := strconv.ParseUint(first, 10, 63); err == nil && int(n) != start {
				t.Fatalf("parseByteRange(%q, %d) starts at %d", rng, size, start)
			}
			if n, err := strconv.ParseUint(last, 10, 63); last != "" && err == nil && min(int(n), size-1) != end {
				t.Fatalf("parseByteRange(%q, %d) ends at %d", rng, size, end)
			}
		}
	})
}

func TestParseByteRangeAllocs(t *testing.T) {
	rng := []byte("bytes=0-99999999999999999999999")
	if n := testing.AllocsPerRun(100, func() { parseByteRange(rng, 1000) }); n != 0 {
		t.Fatalf("parseByteRange allocates %v times", n)
	}
}
