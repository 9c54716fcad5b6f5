package build

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// maskedLog returns a logger that masks secrets the way Run's does, and the buffer it writes to.
func maskedLog(secrets ...string) (*slog.Logger, *masker, *bytes.Buffer) {
	m := &masker{}
	for _, s := range secrets {
		m.add(s)
	}
	var buf bytes.Buffer
	return slog.New(&maskHandler{inner: slog.NewTextHandler(&buf, nil), m: m}), m, &buf
}

func TestMaskOverlappingSecrets(t *testing.T) {
	// The shorter secret is registered first and is a prefix of the longer one.
	_, m, _ := maskedLog("tok-1234", "tok-1234-rest-5678")
	if got := m.mask("value tok-1234-rest-5678 end"); strings.Contains(got, "rest-5678") {
		t.Errorf("a secret that contains another leaked in part: %q", got)
	}
}

func TestMaskMultiLineSecret(t *testing.T) {
	key := "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n"
	log, m, buf := maskedLog(key)
	w := &lineWriter{log: log, budget: &lineBudget{left: 100}, m: m}
	w.Write([]byte("printing the key:\n" + key))
	w.flush()
	if strings.Contains(buf.String(), "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC") {
		t.Errorf("a line of a multi-line secret leaked:\n%s", buf.String())
	}
}

func TestMaskLongLines(t *testing.T) {
	const secret = "sk-live-0123456789abcdef"
	for name, writes := range map[string][]string{
		// The secret straddles the cut at maxLineBytes.
		"across the cut": {strings.Repeat("a", maxLineBytes-6) + secret + " tail\n"},
		// A long line arrives in two writes, split inside the secret.
		"across writes":              {strings.Repeat("a", maxLineBytes+900) + secret[:5], secret[5:] + " tail\n"},
		"across writes near the cut": {strings.Repeat("a", maxLineBytes-3) + secret[:5], secret[5:] + " tail\n"},
	} {
		t.Run(name, func(t *testing.T) {
			log, m, buf := maskedLog(secret)
			w := &lineWriter{log: log, budget: &lineBudget{left: 100}, m: m}
			for _, s := range writes {
				w.Write([]byte(s))
			}
			w.flush()
			out := buf.String()
			for _, part := range []string{secret[:6], secret[5:], secret[len(secret)-8:]} {
				if strings.Contains(out, part) {
					t.Errorf("part %q of the secret leaked:\n%s", part, out)
				}
			}
			if !strings.Contains(out, "aaaa") {
				t.Errorf("the line was not logged:\n%s", out)
			}
		})
	}
}

func TestMaskGroupAttrs(t *testing.T) {
	log, _, buf := maskedLog("hunter2-secret")
	log.Info("x", slog.Group("g", slog.String("k", "hunter2-secret")))
	if strings.Contains(buf.String(), "hunter2-secret") {
		t.Errorf("a secret in a group attribute leaked:\n%s", buf.String())
	}
}
