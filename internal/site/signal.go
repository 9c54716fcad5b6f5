package site

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

// SignalKey is the alias change signal (docs/architecture.md, "Alias change signal"): one small object for the
// whole storage, rewritten after every alias or custom-domain write, that proxies poll so that a promote or a
// rollback shows at every proxy within a poll interval instead of within the alias TTL. Its content only has
// to differ from what a proxy last read; proxies never trust anything in it.
const SignalKey = "generation.json"

// maxSignalBytes bounds what SignalGet reads.
const maxSignalBytes = 4 << 10

// Signal is what SignalKey holds. Project and Alias name the last change, for logs; a proxy that sees a new
// signal forgets every cached alias, because two changes between two polls leave only the last one visible.
type Signal struct {
	ChangedAt time.Time `json:"changedAt"`
	Project   string    `json:"project"`
	Name      string    `json:"name"`
	// Nonce makes two changes within one clock tick differ.
	Nonce string `json:"nonce"`
}

// SignalGet returns the signal object's bytes (ENOTFOUND while no alias was ever written through a Store that
// signals). Callers compare them with what they read last.
func (s *Store) SignalGet(ctx context.Context) ([]byte, error) {
	data, err := s.read(ctx, SignalKey, maxSignalBytes)
	if err != nil {
		return nil, fmt.Errorf("get alias change signal: %w", err)
	}
	return data, nil
}

// signal rewrites SignalKey after an alias or domain write. It is best effort: the change itself is done, and a
// proxy that misses the signal still sees it within its alias TTL, so a failure is logged, not returned.
func (s *Store) signal(ctx context.Context, project, name string) {
	if s.signalRefused.Load() {
		return
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	data, err := json.Marshal(Signal{ChangedAt: time.Now().UTC(), Project: project, Name: name, Nonce: hex.EncodeToString(nonce[:])})
	if err == nil {
		err = s.putBytes(ctx, SignalKey, data)
	}
	if err == nil {
		return
	}
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	if ferry.ErrorCode(err) == ferry.EFORBIDDEN {
		s.signalRefused.Store(true)
		log.InfoContext(ctx, "these credentials may not write the alias change signal; proxies see alias changes within their alias TTL", "key", SignalKey, "err", err)
		return
	}
	log.WarnContext(ctx, "alias change signal not written; proxies see this change within their alias TTL", "project", project, "name", name, "err", err)
}
