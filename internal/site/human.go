package site

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// HumanAttr is a slog ReplaceAttr function that writes numbers for people: durations as "12 ms" or "1.0 s",
// sizes (a key "bytes" or ending in "_bytes") as "26.9 MB", other integers from 1,000 up with thousands
// separators. Build logs are read by people, and slog's JSON wrote durations as nanoseconds (took=1e+06 once
// a reader parsed them back as floats); every handler that writes a build or publish log uses it.
func HumanAttr(_ []string, a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindDuration:
		return slog.String(a.Key, HumanDuration(v.Duration()))
	case slog.KindInt64:
		if isBytesKey(a.Key) {
			return slog.String(a.Key, HumanBytes(v.Int64()))
		}
		if n := v.Int64(); n >= 1000 || n <= -1000 {
			return slog.String(a.Key, HumanCount(n))
		}
	case slog.KindUint64:
		if n := v.Uint64(); n <= 1<<62 {
			if isBytesKey(a.Key) {
				return slog.String(a.Key, HumanBytes(int64(n)))
			}
			if n >= 1000 {
				return slog.String(a.Key, HumanCount(int64(n)))
			}
		}
	}
	return a
}

func isBytesKey(k string) bool { return k == "bytes" || k == "size" || strings.HasSuffix(k, "_bytes") }

// HumanDuration is "850 ms" under a second, "1.0 s" under a minute and "2 min 5 s" above.
func HumanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Round(time.Millisecond).Milliseconds(), 10) + " ms"
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	d = d.Round(time.Second)
	return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
}

// HumanBytes is a size in decimal units, as file managers show them: "512 B", "1.5 kB", "26.9 MB".
func HumanBytes(n int64) string {
	if n < 1000 && n > -1000 {
		return strconv.FormatInt(n, 10) + " B"
	}
	f := float64(n)
	for _, u := range []string{"kB", "MB", "GB", "TB"} {
		f /= 1000
		if f < 999.95 && f > -999.95 || u == "TB" {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return ""
}

// HumanCount writes n with a comma between thousands: "1,000", "-12,345".
func HumanCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
