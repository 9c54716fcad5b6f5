package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
)

// Store is what the streams read: the rows that notifications point at. *store.Store is one.
type Store interface {
	DeploymentGetByID(ctx context.Context, id string) (*store.Deployment, error)
	DeploymentLogList(ctx context.Context, p store.DeploymentLogListParams) ([]store.LogLine, error)
	DeploymentListByProject(ctx context.Context, p store.DeploymentListByProjectParams) (*store.DeploymentListResult, error)
}

var _ Store = (*store.Store)(nil)

// Streams serves Server-Sent Events for deployments and projects. Authorization is the caller's: the handlers
// get a deployment or project the caller already may see.
type Streams struct {
	Hub   *Hub
	Store Store
	// Heartbeat is how often an idle stream sends a comment, so proxies keep it open and a dead client is
	// noticed. Default 15s.
	Heartbeat time.Duration
	// ProjectDeployments is how many of a project's newest deployments a project stream sends when it starts
	// or resyncs. Default 20.
	ProjectDeployments int
	Logger             *slog.Logger
}

// DeploymentState is the "status" event's data: what a deployment page shows besides the log.
type DeploymentState struct {
	ID         string    `json:"id"`
	ProjectID  int64     `json:"project_id"`
	Status     string    `json:"status"`
	Finished   bool      `json:"finished"`
	Kind       string    `json:"kind"`
	Ref        string    `json:"ref"`
	PRNumber   int       `json:"pr_number,omitempty"`
	CommitSHA  string    `json:"commit_sha"`
	Alias      string    `json:"alias,omitempty"`
	URL        string    `json:"url,omitempty"`
	AliasURL   string    `json:"alias_url,omitempty"`
	Error      string    `json:"error,omitempty"`
	Attempt    int       `json:"attempt"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	LogSeq     int64     `json:"log_seq"`
}

// StateOf renders d for the wire.
func StateOf(d *store.Deployment) DeploymentState {
	return DeploymentState{
		ID: d.ID, ProjectID: d.ProjectID, Status: string(d.Status), Finished: d.Status.Finished(), Kind: string(d.Kind),
		Ref: d.Ref, PRNumber: d.PRNumber, CommitSHA: d.CommitSHA, Alias: d.Alias, URL: d.URL, AliasURL: d.AliasURL,
		Error: d.Error, Attempt: d.Attempt, CreatedAt: d.CreatedAt, StartedAt: d.StartedAt, FinishedAt: d.FinishedAt,
	}
}

// logEvent is the "log" event's data; the event id is its Seq, so a reconnecting EventSource sends it back as
// Last-Event-ID.
type logEvent struct {
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	Step string    `json:"step,omitempty"`
	Line string    `json:"line"`
}

// errGone ends a stream whose deployment was deleted.
var errGone = errors.New("deployment deleted")

// Deployment streams one deployment: first a "status" event with its current state and a "log" event for each
// line after the client's position (the Last-Event-ID header, or the "after" query parameter for the first
// connection of a page that rendered the log so far), then every change as it happens. A deleted deployment
// gets a "deleted" event and the stream ends.
//
// The stream also follows the deployment's project: when another deployment of it finishes or changes after
// finishing (a promote or rollback records a line on it), or the project's row changes, it sends a "project"
// event, because where production points (this deployment's tag and the move it offers) may have changed.
func (s *Streams) Deployment(w http.ResponseWriter, r *http.Request, id string) {
	ctx := r.Context()
	sub := s.Hub.SubscribeDeployment(id) // before the first read: nothing slips between
	defer sub.Close()
	var others *Subscription
	if d, err := s.Store.DeploymentGetByID(ctx, id); err == nil {
		others = s.Hub.SubscribeProject(d.ProjectID)
		defer others.Close()
	}
	after := resumePoint(r)
	sw, ok := s.start(w, r)
	if !ok {
		return
	}
	var lastState []byte
	send := func() error {
		cur, err := s.Store.DeploymentGetByID(ctx, id)
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			sw.event("deleted", "", []byte(`{"id":`+strconv.Quote(id)+`}`))
			return errGone
		}
		if err != nil {
			return err
		}
		st := StateOf(cur)
		for {
			lines, err := s.Store.DeploymentLogList(ctx, store.DeploymentLogListParams{DeploymentID: id, AfterSeq: after, Limit: 1000})
			if err != nil {
				return err
			}
			for _, l := range lines {
				b, _ := json.Marshal(logEvent{Seq: l.Seq, Time: l.Time, Step: l.Step, Line: l.Line})
				sw.event("log", strconv.FormatInt(l.Seq, 10), b)
				after = l.Seq
			}
			if len(lines) < 1000 {
				break
			}
		}
		// The status goes after the lines, so a page that sees "ready" has every line already.
		// New lines alone do not resend the status while it builds: LogSeq is left out of the comparison then.
		// Once finished, a new line means something happened to the deployment (a promote or rollback records
		// one), so the status is sent again for the page to re-read what depends on production.
		if st.Finished {
			st.LogSeq = after
		}
		key, _ := json.Marshal(st)
		if string(key) != string(lastState) {
			st.LogSeq = after
			b, _ := json.Marshal(st)
			sw.event("status", "", b)
			lastState = key
		}
		return sw.flush()
	}
	changed := func([]Event, bool) error { return send() }
	if others == nil {
		s.loop(ctx, sw, sub, nil, changed, send)
		return
	}
	othersChanged := func(evs []Event, resync bool) error {
		moved := resync
		for _, ev := range evs {
			if ev.DeploymentID != id && (ev.DeploymentID == "" || ev.Status == "deleted" || store.DeploymentStatus(ev.Status).Finished()) {
				moved = true
			}
		}
		if moved {
			sw.event("project", "", []byte(`{"id":`+strconv.FormatInt(others.project, 10)+`}`))
		}
		return sw.flush()
	}
	s.loop(ctx, sw, sub, &also{others, othersChanged}, changed, send)
}

// also is a second subscription that a stream follows, with what to do when it has events.
type also struct {
	sub     *Subscription
	changed func([]Event, bool) error
}

// Project streams a project's deployments: a "deployment" event (DeploymentState) for each of its newest
// deployments at the start and after a resync, then one whenever a deployment is created or changes, and
// "deleted" with the id of a deleted deployment. A "project" event says that project-level facts (where
// production points, the aliases) may have moved, so the page re-reads them: it comes at the start and after a
// resync (they may have moved while nobody listened), when the project's own row changes, and when a
// deployment finishes or changes after finishing (a build that goes ready moves its alias first; a promote or
// rollback moves production and records a line on the deployment). Aliases live in storage, not in the
// database, so these are the signals that reach every replica.
func (s *Streams) Project(w http.ResponseWriter, r *http.Request, projectID int64) {
	sub := s.Hub.SubscribeProject(projectID)
	defer sub.Close()
	sw, ok := s.start(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	n := s.ProjectDeployments
	if n <= 0 {
		n = 20
	}
	last := map[string]string{} // deployment id -> the state sent last, to send changes only
	sendOne := func(d *store.Deployment) {
		b, _ := json.Marshal(StateOf(d))
		if last[d.ID] != string(b) {
			sw.event("deployment", "", b)
			last[d.ID] = string(b)
		}
	}
	projectEvent := []byte(`{"id":` + strconv.FormatInt(projectID, 10) + `}`)
	all := func() error {
		res, err := s.Store.DeploymentListByProject(ctx, store.DeploymentListByProjectParams{ProjectID: projectID, Limit: n})
		if err != nil {
			return err
		}
		for i := len(res.Deployments) - 1; i >= 0; i-- { // oldest first, so that new rows stack up in order
			sendOne(res.Deployments[i])
		}
		sw.event("project", "", projectEvent)
		return sw.flush()
	}
	changed := func(evs []Event, resync bool) error {
		if resync {
			return all()
		}
		moved := false
		for _, ev := range evs {
			if ev.DeploymentID == "" {
				moved = true
				continue
			}
			d, err := s.Store.DeploymentGetByID(ctx, ev.DeploymentID)
			if ferry.ErrorCode(err) == ferry.ENOTFOUND {
				delete(last, ev.DeploymentID)
				sw.event("deleted", "", []byte(`{"id":`+strconv.Quote(ev.DeploymentID)+`}`))
				moved = true
				continue
			}
			if err != nil {
				return err
			}
			if d.ProjectID == projectID {
				sendOne(d)
				moved = moved || d.Status.Finished()
			}
		}
		if moved {
			sw.event("project", "", projectEvent)
		}
		return sw.flush()
	}
	s.loop(ctx, sw, sub, nil, changed, all)
}

// loop sends the initial state, then changes and heartbeats until the client leaves or a read fails. extra,
// if not nil, is a second subscription the stream follows.
func (s *Streams) loop(ctx context.Context, sw *sseWriter, sub *Subscription, extra *also, changed func([]Event, bool) error, initial func() error) {
	logger := s.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if err := initial(); err != nil {
		s.end(ctx, logger, sw, err)
		return
	}
	hb := s.Heartbeat
	if hb <= 0 {
		hb = 15 * time.Second
	}
	t := time.NewTicker(hb)
	defer t.Stop()
	var extraC <-chan struct{} // nil blocks for ever: no second subscription
	if extra != nil {
		extraC = extra.sub.C()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.Hub.Stopped():
			return
		case <-sub.C():
			evs, resync := sub.Take()
			if err := changed(evs, resync); err != nil {
				s.end(ctx, logger, sw, err)
				return
			}
		case <-extraC:
			evs, resync := extra.sub.Take()
			if err := extra.changed(evs, resync); err != nil {
				s.end(ctx, logger, sw, err)
				return
			}
		case <-t.C:
			sw.comment("ping")
			if err := sw.flush(); err != nil {
				return
			}
		}
	}
}

// end closes a stream after err. A failed read is logged and the client is told to come back later (the
// browser's EventSource reconnects by itself with Last-Event-ID).
func (s *Streams) end(ctx context.Context, logger *slog.Logger, sw *sseWriter, err error) {
	if errors.Is(err, errGone) || ctx.Err() != nil {
		_ = sw.flush()
		return
	}
	logger.WarnContext(ctx, "live events: stream ended", "err", err)
	sw.event("error", "", []byte(`{"message":"live updates paused; reconnecting"}`))
	_ = sw.flush()
}

// start writes the stream's headers. A stream outlives the server's WriteTimeout, so its deadline is lifted.
func (s *Streams) start(w http.ResponseWriter, r *http.Request) (*sseWriter, bool) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // not every ResponseWriter supports deadlines; then none applies anyway
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	sw := &sseWriter{w: w, rc: rc}
	fmt.Fprint(w, "retry: 2000\n\n")
	if err := sw.flush(); err != nil {
		return nil, false
	}
	return sw, true
}

// resumePoint is the last log line the client has: Last-Event-ID on a reconnect, else ?after=N.
func resumePoint(r *http.Request) int64 {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("after")
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// sseWriter writes the text/event-stream format.
type sseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// event writes one event. data is JSON, so it holds no newline.
func (sw *sseWriter) event(name, id string, data []byte) {
	var b strings.Builder
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	b.WriteString("event: " + name + "\ndata: ")
	b.Write(data)
	b.WriteString("\n\n")
	_, _ = sw.w.Write([]byte(b.String())) // a failed write shows in the next flush
}

func (sw *sseWriter) comment(text string) { _, _ = fmt.Fprintf(sw.w, ": %s\n\n", text) }

func (sw *sseWriter) flush() error { return sw.rc.Flush() }
