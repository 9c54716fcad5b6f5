package dev

import (
	"context"
	"log/slog"
)

// levelHandler keeps ferry dev quiet: Ferry's own records from min up, and River's (the handler that
// app.Run gives River carries component=river) from warn up unless min is debug, so that the queue's
// "Producer job counts" line does not scroll by every minute.
type levelHandler struct {
	inner slog.Handler
	min   slog.Level
	river bool
}

func newLevelHandler(inner slog.Handler, min slog.Level) *levelHandler {
	return &levelHandler{inner: inner, min: min}
}

func (h *levelHandler) least() slog.Level {
	if h.river && h.min > slog.LevelDebug {
		return max(h.min, slog.LevelWarn)
	}
	return h.min
}

func (h *levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.least() && h.inner.Enabled(ctx, l)
}

func (h *levelHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < h.least() {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (h *levelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	for _, a := range attrs {
		if a.Key == "component" && a.Value.String() == "river" {
			c.river = true
		}
	}
	c.inner = h.inner.WithAttrs(attrs)
	return &c
}

func (h *levelHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(name)
	return &c
}
