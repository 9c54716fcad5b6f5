package dev

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestLevelHandler: ferry dev shows Ferry's info lines but River's only from warn, and everything with
// --log-level debug.
func TestLevelHandler(t *testing.T) {
	for _, c := range []struct {
		min        slog.Level
		want, hide []string
	}{
		{slog.LevelInfo, []string{"app info", "river warn"}, []string{"river info", "app debug"}},
		{slog.LevelDebug, []string{"app info", "river info", "app debug"}, nil},
		{slog.LevelError, nil, []string{"app info", "river warn"}},
	} {
		var b bytes.Buffer
		log := slog.New(newLevelHandler(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug}), c.min))
		river := log.With("component", "river")
		log.Info("app info")
		log.Debug("app debug")
		river.Info("river info")
		river.Warn("river warn")
		for _, w := range c.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("level %v: %q missing from\n%s", c.min, w, b.String())
			}
		}
		for _, h := range c.hide {
			if strings.Contains(b.String(), h) {
				t.Errorf("level %v: %q shown:\n%s", c.min, h, b.String())
			}
		}
	}
	cfg, err := parseFlags([]string{"--log-level", "debug"}, &bytes.Buffer{}, func(string) string { return "" })
	if err != nil || cfg.LogLevel != slog.LevelDebug {
		t.Fatalf("--log-level debug: %v %v", cfg.LogLevel, err)
	}
}
