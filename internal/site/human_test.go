package site

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestHumanNumbers(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{HumanBytes(26869897), "26.9 MB"}, {HumanBytes(512), "512 B"}, {HumanBytes(1500), "1.5 kB"},
		{HumanBytes(999_999), "1.0 MB"}, {HumanBytes(3 << 40), "3.3 TB"},
		{HumanDuration(time.Second), "1.0 s"}, {HumanDuration(1e6), "1 ms"}, {HumanDuration(125 * time.Second), "2 min 5 s"},
		{HumanCount(1000), "1,000"}, {HumanCount(-1234567), "-1,234,567"}, {HumanCount(999), "999"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	// Through a JSON handler, as `ferry build --log-format json` writes for the App.
	var b bytes.Buffer
	slog.New(slog.NewJSONHandler(&b, &slog.HandlerOptions{ReplaceAttr: HumanAttr})).Info("files hashed",
		"files", 1000, "bytes", int64(26869897), "took", time.Second, "uploaded", 3)
	for _, want := range []string{`"files":"1,000"`, `"bytes":"26.9 MB"`, `"took":"1.0 s"`, `"uploaded":3`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("record %s lacks %s", b.String(), want)
		}
	}
}
