package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ferryhq/ferry/app/builder"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
)

// Log batching tuning. While the database is unreachable, lines wait in memory, up to logBufferLines (as
// many as an ECS build task keeps while the App is unreachable); beyond that they are counted and one line
// says how many were lost, where they were lost.
const (
	logBatchLines  = 500
	logBufferLines = 20000
	logFlushEvery  = 200 * time.Millisecond
	logRetryMax    = 5 * time.Second
)

// logStore is what the batcher needs of the store.
type logStore interface {
	DeploymentLogAppend(ctx context.Context, p store.DeploymentLogAppendParams) (int64, error)
	DeploymentLogList(ctx context.Context, p store.DeploymentLogListParams) ([]store.LogLine, error)
}

// logBatcher appends a build's log lines to the store in order: every logFlushEvery or logBatchLines lines,
// and at close. A batch that fails (the database is down) stays at the head of the queue and is retried with
// backoff, so the lines arrive once each, in order, with gap-free numbers (the store numbers a batch in the
// statement that writes it).
type logBatcher struct {
	st      logStore
	id      string
	log     *slog.Logger
	ctx     context.Context
	max     int           // logBufferLines
	linger  time.Duration // how long close keeps retrying; then what is left is lost, and said so
	mu      sync.Mutex
	buf     []store.LogLine
	dropped int // lines refused since the buffer filled
	lost    int // lines lost for good at close
	kick    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	// last is the number of the last line this batcher stored, or -1 when unknown: after a write whose answer
	// was lost, it tells a batch that did land from one that did not.
	last int64
	// unsure is set after a failed append: it may have committed.
	unsure bool
}

func newLogBatcher(ctx context.Context, st logStore, id string, log *slog.Logger) *logBatcher {
	return startLogBatcher(ctx, st, id, log, logBufferLines, time.Minute)
}

func startLogBatcher(ctx context.Context, st logStore, id string, log *slog.Logger, max int, linger time.Duration) *logBatcher {
	b := &logBatcher{st: st, id: id, log: log, ctx: context.WithoutCancel(ctx), max: max, linger: linger, last: -1,
		kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	qctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	if n, err := st.DeploymentLogAppend(qctx, store.DeploymentLogAppendParams{DeploymentID: id}); err == nil {
		b.last = n // an empty batch answers the current last number
	}
	cancel()
	go b.run()
	return b
}

func (b *logBatcher) add(l builder.LogLine) {
	line := l.Message
	if l.Level != "" && l.Level != "INFO" {
		line = l.Level + ": " + line
	}
	b.mu.Lock()
	if len(b.buf) >= b.max {
		b.dropped++
		b.mu.Unlock()
		return
	}
	b.markDropped()
	b.buf = append(b.buf, store.LogLine{Time: l.Time, Step: l.Step, Line: line})
	full := len(b.buf) >= logBatchLines
	b.mu.Unlock()
	if full {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// markDropped puts the line that says how many lines were refused where they are missing. b.mu is held.
func (b *logBatcher) markDropped() {
	if b.dropped == 0 {
		return
	}
	b.buf = append(b.buf, store.LogLine{Time: time.Now(), Step: "ferry",
		Line: fmt.Sprintf("WARN: %d log lines were lost here: the database was unreachable and %d lines were waiting", b.dropped, b.max)})
	b.dropped = 0
}

func (b *logBatcher) run() {
	defer close(b.done)
	t := time.NewTimer(logFlushEvery)
	defer t.Stop()
	backoff := logFlushEvery
	failing := false
	for {
		select {
		case <-t.C:
		case <-b.kick:
		case <-b.quit:
			b.drain()
			return
		}
		err := b.flush()
		switch {
		case err == nil:
			if failing {
				b.log.InfoContext(b.ctx, "build log lines stored again")
			}
			failing, backoff = false, logFlushEvery
		case !failing:
			b.log.WarnContext(b.ctx, "store build log lines; they wait in memory and are retried", "err", err)
			failing = true
		default:
			backoff = min(2*backoff, logRetryMax)
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		if failing {
			t.Reset(backoff)
		} else {
			t.Reset(logFlushEvery)
		}
	}
}

// flush stores the waiting lines, a batch at a time from the head; it stops at the first failure, which leaves
// that batch and the rest waiting.
func (b *logBatcher) flush() error {
	for {
		b.mu.Lock()
		n := min(len(b.buf), logBatchLines)
		batch := b.buf[:n:n]
		b.mu.Unlock()
		if n == 0 {
			return nil
		}
		if err := b.store(batch); err != nil {
			return err
		}
		b.mu.Lock()
		b.buf = b.buf[n:]
		if len(b.buf) == 0 {
			b.buf = nil // let the backing array go
		}
		b.mu.Unlock()
	}
}

// store writes one batch. After a failure whose cause may have been a lost answer (the write committed, the
// reply did not arrive), the lines after b.last are compared with the batch first, so it is never stored twice.
func (b *logBatcher) store(batch []store.LogLine) error {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if b.unsure && b.last >= 0 {
		got, err := b.st.DeploymentLogList(ctx, store.DeploymentLogListParams{DeploymentID: b.id, AfterSeq: b.last, Limit: len(batch) + 100})
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			return nil // the deployment is gone (its project deleted): nothing to keep the lines for
		}
		if err != nil {
			return err
		}
		if at := landed(got, batch); at >= 0 {
			b.last, b.unsure = got[at+len(batch)-1].Seq, false
			return nil
		}
	}
	last, err := b.st.DeploymentLogAppend(ctx, store.DeploymentLogAppendParams{DeploymentID: b.id, Lines: batch})
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return nil
	}
	if err != nil {
		b.unsure = true
		return err
	}
	b.last, b.unsure = last, false
	return nil
}

// landed returns where batch lies in got (lines after the batcher's last known one; another writer, a user's
// cancel say, may have written lines in between), or -1.
func landed(got, batch []store.LogLine) int {
	for i := 0; i+len(batch) <= len(got); i++ {
		match := true
		for j := range batch {
			if got[i+j].Line != batch[j].Line || got[i+j].Step != batch[j].Step {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return -1
}

// drain is close's flush: it retries with backoff for up to b.linger, then counts what it could not store.
func (b *logBatcher) drain() {
	b.mu.Lock()
	b.markDropped()
	b.mu.Unlock()
	deadline := time.Now().Add(b.linger)
	backoff := logFlushEvery
	for {
		err := b.flush()
		if err == nil {
			return
		}
		if time.Now().Add(backoff).After(deadline) {
			b.mu.Lock()
			b.lost = len(b.buf)
			b.buf = nil
			b.mu.Unlock()
			b.log.ErrorContext(b.ctx, "build log lines lost: the database stayed unreachable", "lines", b.lost, "err", err)
			return
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, logRetryMax)
	}
}

// close stores what is left (retrying while the database is down, within the linger) and stops the batcher.
func (b *logBatcher) close() {
	close(b.quit)
	<-b.done
}
