package proxy

import (
	"bytes"
	"context"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

// watchSignal polls the alias change signal (site.SignalKey; docs/architecture.md, "Alias change signal") every
// SignalInterval, one small GET for the whole storage, and bumps p.gen when its bytes change, which makes every
// cached alias and custom-domain mapping stale at once. While the signal cannot be read, nothing is bumped and
// aliases fall back to their TTL; serving never waits for the signal.
func (p *Proxy) watchSignal(ctx context.Context) {
	t := time.NewTicker(p.cfg.SignalInterval)
	defer t.Stop()
	timeout := min(p.cfg.StorageTimeout, max(2*p.cfg.SignalInterval, time.Second))
	var last []byte
	seen, failing := false, false
	for {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		b, err := p.store.SignalGet(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		p.metrics.signalReads.Inc()
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			b, err = nil, nil // no alias was written yet: absence is a state like any other
		}
		switch {
		case err != nil:
			p.metrics.signalErrors.Inc()
			if !failing {
				p.log.Warn("cannot read the alias change signal; alias changes show within the alias TTL until it is back", "ttl", p.cfg.AliasTTL, "err", err)
			}
			failing = true
		case !seen || !bytes.Equal(b, last):
			// The first read also bumps: a change between New and now would otherwise wait for the TTL.
			p.gen.Add(1)
			if seen {
				p.metrics.signalChanges.Inc()
				p.log.Debug("alias change signal moved; cached aliases dropped", "signal", string(b))
			}
			last, seen = b, true
			fallthrough
		default:
			if failing {
				p.log.Info("alias change signal readable again")
			}
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
