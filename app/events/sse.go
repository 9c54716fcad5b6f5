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
func (s *Streams) Deployment(w http.ResponseWriter, r *http.Request, id string) {
	sub := s.Hub.SubscribeDeployment(id) // before the first read: nothing slips between
	defer sub.Close()
	after := resumePoint(r)
	sw, ok := s.start(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
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
		// New lines alone do not resend the status: LogSeq is left out of the comparison.
		key, _ := json.Marshal(st)
		if string(key) != string(lastState) {
			st.LogSeq = after
			b, _ := json.Marshal(st)
			sw.event("status", "", b)
			lastState = key
		}
		return sw.flush()
	}
	s.loop(ctx, sw, sub, func([]Event, bool) error { return send() }, send)
}

// Project streams a project's deployments: a "deployment" event (DeploymentState) for each of its newest
// deployments at the start and after a resync, then one whenever a deployment is created or changes; a
// "project" event when the project's own row changes (settings, a moved alias), and "deleted" with the id of a
// deleted deployment.
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
	all := func() error {
		res, err := s.Store.DeploymentListByProject(ctx, store.DeploymentListByProjectParams{ProjectID: projectID, Limit: n})
		if err != nil {
			return err
		}
		for i := len(res.Deployments) - 1; i >= 0; i-- { // oldest first, so that new rows stack up in order
			sendOne(res.Deployments[i])
		}
		return sw.flush()
	}
	changed := func(evs []Event, resync bool) error {
		if resync {
			return all()
		}
		for _, ev := range evs {
			if ev.DeploymentID == "" {
				sw.event("project", "", []byte(`{"id":`+strconv.FormatInt(projectID, 10)+`}`))
				continue
			}
			d, err := s.Store.DeploymentGetByID(ctx, ev.DeploymentID)
			if ferry.ErrorCode(err) == ferry.ENOTFOUND {
				delete(last, ev.DeploymentID)
				sw.event("deleted", "", []byte(`{"id":`+strconv.Quote(ev.DeploymentID)+`}`))
				continue
			}
			if err != nil {
				return err
			}
			if d.ProjectID == projectID {
				sendOne(d)
			}
		}
		return sw.flush()
	}
	s.loop(ctx, sw, sub, changed, all)
}

// loop sends the initial state, then changes and heartbeats until the client leaves or a read fails.
func (s *Streams) loop(ctx context.Context, sw *sseWriter, sub *Subscription, changed func([]Event, bool) error, initial func() error) {
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
