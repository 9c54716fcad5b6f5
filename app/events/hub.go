// Package events carries live changes of deployments from PostgreSQL to browsers. Database triggers (migration
// live_events) NOTIFY channel ferry_events with a small payload (ids, status and the log sequence number) on
// every change a page shows. Each app process holds ONE listening connection (a Hub), which fans the
// notifications out to its subscribers by deployment and by project; the Server-Sent Events handlers then
// re-read the rows, so a payload never has to carry data and a coalesced or missed notification loses nothing.
// NOTIFY goes through PostgreSQL, so every replica of the app sees every change, wherever it was written.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// Channel is the NOTIFY channel that the triggers write to.
const Channel = "ferry_events"

// Event is one notification: a deployment changed (DeploymentID set), or a project's own row did (only
// ProjectID set). It names what changed; the rows say how.
type Event struct {
	DeploymentID string `json:"d,omitempty"`
	ProjectID    int64  `json:"p,omitempty"`
	// Status is the deployment's status after the change, or "deleted".
	Status string `json:"s,omitempty"`
	// LogSeq is the sequence number of the deployment's last log line.
	LogSeq int64 `json:"l,omitempty"`
}

// Config is what a Hub listens with.
type Config struct {
	// ConnConfig opens the Hub's own connection (not a pool's: LISTEN holds its connection for good). Required;
	// pool.Config().ConnConfig does.
	ConnConfig *pgx.ConnConfig
	// Logger gets connection losses and reconnects. Default slog.Default().
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between reconnect attempts, doubling from one to the other.
	// Defaults 100ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// PingInterval is how long a quiet connection waits before it checks that the server still answers, so a
	// silently dropped connection is noticed. Default 30s.
	PingInterval time.Duration
}

// Hub is one process's listener and its subscribers. Make it with New, run it with Run.
type Hub struct {
	cfg    Config
	logger *slog.Logger

	mu           sync.Mutex
	byDeployment map[string]map[*Subscription]struct{}
	byProject    map[int64]map[*Subscription]struct{}
	listening    bool
	listenCh     chan struct{} // closed while listening; replaced when the connection drops
	stopped      chan struct{} // closed when Run returns, which ends every stream
	stopOnce     sync.Once
}

// New checks cfg and returns a Hub that is not listening yet.
func New(cfg Config) (*Hub, error) {
	if cfg.ConnConfig == nil {
		return nil, errors.New("events: no ConnConfig")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(10*time.Second, cfg.MinBackoff)
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 30 * time.Second
	}
	cc := cfg.ConnConfig.Copy()
	// Waiting for a notification times out every PingInterval on purpose; a deadline (rather than pgx's default
	// cancel request) keeps the connection usable afterwards.
	cc.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	cfg.ConnConfig = cc
	return &Hub{
		cfg: cfg, logger: cfg.Logger,
		byDeployment: map[string]map[*Subscription]struct{}{},
		byProject:    map[int64]map[*Subscription]struct{}{},
		listenCh:     make(chan struct{}),
		stopped:      make(chan struct{}),
	}, nil
}

// Run listens until ctx ends, reconnecting with backoff whenever the connection is lost; it returns nil then.
// After every (re)connect all subscribers are told to resync, because notifications sent while no connection
// listened are gone.
func (h *Hub) Run(ctx context.Context) error {
	defer h.stopOnce.Do(func() { close(h.stopped) })
	backoff := h.cfg.MinBackoff
	for {
		start := time.Now()
		err := h.listen(ctx)
		h.setListening(false)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > h.cfg.MaxBackoff {
			backoff = h.cfg.MinBackoff // the connection was good for a while: this is a new outage
		}
		h.logger.WarnContext(ctx, "live events: listening connection lost; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, h.cfg.MaxBackoff)
	}
}

// Stopped is closed once Run has returned: streams end then, so that a server shutting down is not held open by
// browsers that never hang up.
func (h *Hub) Stopped() <-chan struct{} { return h.stopped }

// Listening returns a channel that is closed while the Hub listens (tests wait on it; so may a readiness check).
func (h *Hub) Listening() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.listenCh
}

func (h *Hub) setListening(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if on == h.listening {
		return
	}
	h.listening = on
	if on {
		close(h.listenCh)
		for _, subs := range h.byDeployment {
			for s := range subs {
				s.markResync()
			}
		}
		for _, subs := range h.byProject {
			for s := range subs {
				s.markResync()
			}
		}
	} else {
		h.listenCh = make(chan struct{})
	}
}

// listen holds one connection until it fails or ctx ends.
func (h *Hub) listen(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := pgx.ConnectConfig(cctx, h.cfg.ConnConfig)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	h.setListening(true)
	for {
		wctx, cancel := context.WithTimeout(ctx, h.cfg.PingInterval)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(err, context.DeadlineExceeded) && !pgconn.Timeout(err) {
				return fmt.Errorf("wait for notification: %w", err)
			}
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
			continue
		}
		var ev Event
		if err := json.Unmarshal([]byte(n.Payload), &ev); err != nil {
			h.logger.WarnContext(ctx, "live events: unreadable notification", "payload", n.Payload, "err", err)
			continue
		}
		h.Publish(ev)
	}
}

// Publish hands ev to its subscribers: those of its deployment and those of its project. The listener calls it
// for every notification; tests may call it directly.
func (h *Hub) Publish(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ev.DeploymentID != "" {
		for s := range h.byDeployment[ev.DeploymentID] {
			s.add(ev)
		}
	}
	if ev.ProjectID != 0 {
		for s := range h.byProject[ev.ProjectID] {
			s.add(ev)
		}
	}
}

// SubscribeDeployment follows one deployment. Subscribe before reading the current state, so that nothing
// changes unseen in between. Close the subscription when done.
func (h *Hub) SubscribeDeployment(id string) *Subscription {
	s := newSubscription(h)
	s.deployment = id
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byDeployment[id] == nil {
		h.byDeployment[id] = map[*Subscription]struct{}{}
	}
	h.byDeployment[id][s] = struct{}{}
	return s
}

// SubscribeProject follows every deployment of one project, and the project's own row.
func (h *Hub) SubscribeProject(id int64) *Subscription {
	s := newSubscription(h)
	s.project = id
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byProject[id] == nil {
		h.byProject[id] = map[*Subscription]struct{}{}
	}
	h.byProject[id][s] = struct{}{}
	return s
}

// subscribers counts the live subscriptions, for tests of Close.
func (h *Hub) subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.byDeployment {
		n += len(m)
	}
	for _, m := range h.byProject {
		n += len(m)
	}
	return n
}

// Subscription receives the changes of one deployment or project. Events are coalesced per deployment (the
// latest wins) rather than queued, so a slow reader never blocks the Hub and memory stays bounded; readers
// re-read the rows, so the latest event is all they need.
type Subscription struct {
	hub        *Hub
	deployment string
	project    int64

	mu      sync.Mutex
	pending map[string]Event // by deployment id; "" for the project's own row
	order   []string
	resync  bool
	wake    chan struct{}
	closed  bool
}

func newSubscription(h *Hub) *Subscription {
	return &Subscription{hub: h, pending: map[string]Event{}, wake: make(chan struct{}, 1)}
}

// C receives a value whenever Take has something new.
func (s *Subscription) C() <-chan struct{} { return s.wake }

// Take returns the events since the last Take, oldest first with one per deployment, and whether the reader
// must resync (re-read everything) because notifications may have been lost while the Hub reconnected.
func (s *Subscription) Take() (evs []Event, resync bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.order {
		evs = append(evs, s.pending[k])
	}
	resync = s.resync
	clear(s.pending)
	s.order = s.order[:0]
	s.resync = false
	return evs, resync
}

// Close stops the subscription. It is safe to call twice.
func (s *Subscription) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if s.deployment != "" {
		delete(h.byDeployment[s.deployment], s)
		if len(h.byDeployment[s.deployment]) == 0 {
			delete(h.byDeployment, s.deployment)
		}
	} else {
		delete(h.byProject[s.project], s)
		if len(h.byProject[s.project]) == 0 {
			delete(h.byProject, s.project)
		}
	}
}

func (s *Subscription) add(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if _, ok := s.pending[ev.DeploymentID]; !ok {
		s.order = append(s.order, ev.DeploymentID)
	}
	s.pending[ev.DeploymentID] = ev
	s.signal()
}

func (s *Subscription) markResync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resync = true
	s.signal()
}

// signal wakes the reader without blocking; one pending wake-up is enough.
func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
