package events

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/internal/site"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var nameCounter atomic.Int64

// env is one database with a running Hub on it.
type env struct {
	t    *testing.T
	ctx  context.Context
	pool *pgxpool.Pool
	st   *store.Store
	hub  *Hub
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pool := pgtest.New(t)
	e := &env{t: t, ctx: ctx, pool: pool, st: store.New(pool)}
	e.hub = e.startHub()
	t.Cleanup(cancel)
	return e
}

// startHub runs one more Hub (another "replica") on the env's database and waits until it listens.
func (e *env) startHub() *Hub {
	e.t.Helper()
	h, err := New(Config{ConnConfig: e.pool.Config().ConnConfig, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("hub.Run: %v", err)
		}
	})
	waitListening(e.t, h)
	return h
}

func waitListening(t *testing.T, h *Hub) {
	t.Helper()
	select {
	case <-h.Listening():
	case <-time.After(10 * time.Second):
		t.Fatal("hub did not start listening")
	}
}

func (e *env) project() *store.Project {
	e.t.Helper()
	p, err := e.st.ProjectCreate(e.ctx, store.ProjectCreateParams{
		Name: fmt.Sprintf("ev-%d", nameCounter.Add(1)), CloneURL: "https://example.com/x.git"})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) deployment(p *store.Project) *store.Deployment {
	e.t.Helper()
	d, err := e.st.DeploymentCreate(e.ctx, store.DeploymentCreateParams{
		ID: site.NewDeploymentID(), ProjectID: p.ID, CommitSHA: "abc123", Ref: "main", Kind: store.KindProduction, Alias: "production"})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) status(id string, s store.DeploymentStatus) {
	e.t.Helper()
	if _, err := e.st.DeploymentUpdateStatus(e.ctx, store.DeploymentUpdateStatusParams{ID: id, Status: s}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) log(id string, lines ...string) {
	e.t.Helper()
	ls := make([]store.LogLine, len(lines))
	for i, l := range lines {
		ls[i] = store.LogLine{Step: "build", Line: l}
	}
	if _, err := e.st.DeploymentLogAppend(e.ctx, store.DeploymentLogAppendParams{DeploymentID: id, Lines: ls}); err != nil {
		e.t.Fatal(err)
	}
}

// next waits for the subscription's next batch of events.
func next(t *testing.T, s *Subscription) ([]Event, bool) {
	t.Helper()
	select {
	case <-s.C():
		return s.Take()
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return nil, false
	}
}

// waitFor takes batches until one holds an event that ok accepts.
func waitFor(t *testing.T, s *Subscription, ok func(Event) bool) Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		evs, _ := next(t, s)
		for _, ev := range evs {
			if ok(ev) {
				return ev
			}
		}
	}
	t.Fatal("the awaited event never came")
	return Event{}
}

func TestStatusAndLogsReachSubscriber(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.project()
	projSub := e.hub.SubscribeProject(p.ID)
	defer projSub.Close()
	d := e.deployment(p)
	ev := waitFor(t, projSub, func(ev Event) bool { return ev.DeploymentID == d.ID })
	if ev.Status != "queued" || ev.ProjectID != p.ID {
		t.Fatalf("creation event = %+v, want queued in project %d", ev, p.ID)
	}

	sub := e.hub.SubscribeDeployment(d.ID)
	defer sub.Close()
	other := e.hub.SubscribeDeployment("dpl-0000000000000000")
	defer other.Close()

	e.status(d.ID, store.StatusBuilding)
	waitFor(t, sub, func(ev Event) bool { return ev.Status == "building" })
	e.log(d.ID, "one", "two")
	ev = waitFor(t, sub, func(ev Event) bool { return ev.LogSeq == 2 })
	if ev.DeploymentID != d.ID || ev.ProjectID != p.ID {
		t.Fatalf("log event = %+v", ev)
	}
	waitFor(t, projSub, func(ev Event) bool { return ev.LogSeq == 2 })
	select {
	case <-other.C():
		if evs, _ := other.Take(); len(evs) > 0 {
			t.Fatalf("a subscriber of another deployment got %+v", evs)
		}
	default:
	}

	// The project's own row.
	if _, err := e.pool.Exec(e.ctx, `UPDATE projects SET production_branch = 'trunk' WHERE id = $1`, p.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, projSub, func(ev Event) bool { return ev.DeploymentID == "" && ev.ProjectID == p.ID })

	sub.Close()
	sub.Close()
	projSub.Close()
	other.Close()
	if n := e.hub.subscribers(); n != 0 {
		t.Fatalf("%d subscribers left after Close", n)
	}
}

func TestTwoReplicasBothGetEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	second := e.startHub()
	p := e.project()
	d := e.deployment(p)
	s1, s2 := e.hub.SubscribeDeployment(d.ID), second.SubscribeDeployment(d.ID)
	defer s1.Close()
	defer s2.Close()
	e.status(d.ID, store.StatusBuilding)
	for _, s := range []*Subscription{s1, s2} {
		waitFor(t, s, func(ev Event) bool { return ev.Status == "building" })
	}
}

func TestHubReconnectsAndResyncs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.project()
	d := e.deployment(p)
	sub := e.hub.SubscribeDeployment(d.ID)
	defer sub.Close()
	// Kill the listening connection from the server side, as a database restart or failover would.
	tag, err := e.pool.Exec(e.ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`)
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() != 1 {
		t.Fatalf("terminated %d listening connections, want 1", tag.RowsAffected())
	}
	deadline := time.Now().Add(10 * time.Second)
	for resynced := false; !resynced; {
		if time.Now().After(deadline) {
			t.Fatal("no resync after the connection was killed")
		}
		_, resynced = next(t, sub)
	}
	waitListening(t, e.hub)
	e.status(d.ID, store.StatusBuilding)
	waitFor(t, sub, func(ev Event) bool { return ev.Status == "building" })
}

func TestSubscriptionCoalesces(t *testing.T) {
	t.Parallel()
	h, err := New(Config{ConnConfig: mustConnConfig(t)})
	if err != nil {
		t.Fatal(err)
	}
	s := h.SubscribeProject(7)
	defer s.Close()
	for i := 1; i <= 1000; i++ {
		h.Publish(Event{DeploymentID: "dpl-a", ProjectID: 7, LogSeq: int64(i)})
	}
	h.Publish(Event{DeploymentID: "dpl-b", ProjectID: 7, Status: "queued"})
	h.Publish(Event{DeploymentID: "dpl-c", ProjectID: 8, Status: "queued"})
	evs, _ := next(t, s)
	if len(evs) != 2 || evs[0].LogSeq != 1000 || evs[1].DeploymentID != "dpl-b" {
		t.Fatalf("events = %+v, want dpl-a at 1000 then dpl-b", evs)
	}
}

func mustConnConfig(t *testing.T) *pgx.ConnConfig {
	t.Helper()
	c, err := pgx.ParseConfig("postgres://localhost/x")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	ID, Name, Data string
}

// sseClient reads a stream event by event.
type sseClient struct {
	t    *testing.T
	resp *http.Response
	ch   chan sseEvent
}

func dial(t *testing.T, url, lastEventID string) *sseClient {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, ct)
	}
	c := &sseClient{t: t, resp: resp, ch: make(chan sseEvent, 1000)}
	go func() {
		defer close(c.ch)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Name != "" {
					c.ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.Name = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.Data = line[6:]
			case strings.HasPrefix(line, ":"):
				c.ch <- sseEvent{Name: "comment"}
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *sseClient) close() { c.resp.Body.Close() }

// next returns the next event other than heartbeats.
func (c *sseClient) next() sseEvent {
	c.t.Helper()
	for {
		select {
		case ev, ok := <-c.ch:
			if !ok {
				c.t.Fatal("stream ended")
			}
			if ev.Name != "comment" {
				return ev
			}
		case <-time.After(10 * time.Second):
			c.t.Fatal("no event within 10s")
		}
	}
}

// logs reads events until it has collected want log lines, checking that their ids count up by one from
// first; status events seen on the way are returned.
func (c *sseClient) logs(first int64, want int) (statuses []DeploymentState) {
	c.t.Helper()
	seq := first
	for got := 0; got < want; {
		ev := c.next()
		switch ev.Name {
		case "log":
			var l logEvent
			if err := json.Unmarshal([]byte(ev.Data), &l); err != nil {
				c.t.Fatal(err)
			}
			if l.Seq != seq || ev.ID != strconv.FormatInt(seq, 10) {
				c.t.Fatalf("log event id %s seq %d, want %d (duplicate or gap)", ev.ID, l.Seq, seq)
			}
			if l.Line != fmt.Sprintf("line %d", seq) {
				c.t.Fatalf("line %d = %q", seq, l.Line)
			}
			seq++
			got++
		case "status":
			var s DeploymentState
			if err := json.Unmarshal([]byte(ev.Data), &s); err != nil {
				c.t.Fatal(err)
			}
			statuses = append(statuses, s)
		default:
			c.t.Fatalf("unexpected event %+v", ev)
		}
	}
	return statuses
}

func (c *sseClient) status(want string) DeploymentState {
	c.t.Helper()
	for {
		ev := c.next()
		if ev.Name == "log" {
			c.t.Fatalf("unexpected log event %+v while waiting for status %s", ev, want)
		}
		if ev.Name != "status" {
			continue
		}
		var s DeploymentState
		if err := json.Unmarshal([]byte(ev.Data), &s); err != nil {
			c.t.Fatal(err)
		}
		if s.Status == want {
			return s
		}
	}
}

func lines(from, to int) []string {
	var ls []string
	for i := from; i <= to; i++ {
		ls = append(ls, fmt.Sprintf("line %d", i))
	}
	return ls
}

func (e *env) server(s *Streams) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutPrefix(r.URL.Path, "/deployments/"); ok {
			if _, err := e.st.DeploymentGetByID(r.Context(), id); err != nil {
				http.NotFound(w, r)
				return
			}
			s.Deployment(w, r, id)
			return
		}
		pid, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/projects/"), 10, 64)
		p, err := e.st.ProjectGetByID(r.Context(), pid)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		s.Project(w, r, p.ID)
	}))
	e.t.Cleanup(srv.Close)
	return srv
}

func TestDeploymentStreamResumesWithoutDuplicatesOrGaps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := e.server(&Streams{Hub: e.hub, Store: e.st, Heartbeat: 50 * time.Millisecond})
	p := e.project()
	d := e.deployment(p)
	e.log(d.ID, lines(1, 3)...)

	c := dial(t, srv.URL+"/deployments/"+d.ID, "")
	if st := c.logs(1, 3); len(st) != 0 {
		t.Fatalf("status before the log lines: %+v", st)
	}
	if st := c.status("queued"); st.LogSeq != 3 {
		t.Fatalf("initial status %+v, want log_seq 3", st)
	}
	e.status(d.ID, store.StatusBuilding)
	c.status("building")
	e.log(d.ID, lines(4, 5)...)
	c.logs(4, 2)
	c.close()

	// While the browser is away: more lines, in two batches.
	e.log(d.ID, lines(6, 8)...)
	e.log(d.ID, lines(9, 9)...)

	c = dial(t, srv.URL+"/deployments/"+d.ID, "5")
	c.logs(6, 4)
	c.status("building")
	e.log(d.ID, lines(10, 10)...)
	c.logs(10, 1)
	if _, err := e.st.DeploymentUpdateStatus(e.ctx, store.DeploymentUpdateStatusParams{
		ID: d.ID, Status: store.StatusReady, URL: "http://x.localhost"}); err != nil {
		t.Fatal(err)
	}
	ready := c.status("ready")
	if !ready.Finished || ready.URL != "http://x.localhost" || ready.LogSeq != 10 {
		t.Fatalf("ready state = %+v", ready)
	}

	// The page's first connection says where its rendered log ends with ?after=.
	c = dial(t, srv.URL+"/deployments/"+d.ID+"?after=8", "")
	c.logs(9, 2)
	c.status("ready")
	// Heartbeats keep an idle stream open.
	select {
	case ev := <-c.ch:
		if ev.Name != "comment" {
			t.Fatalf("idle stream sent %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no heartbeat")
	}

	// Deleting the project ends the stream with "deleted".
	if _, err := e.st.ProjectDeleteByID(e.ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if ev := c.next(); ev.Name != "deleted" {
		t.Fatalf("after delete: %+v", ev)
	}
}

func TestProjectStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := e.server(&Streams{Hub: e.hub, Store: e.st})
	p := e.project()
	old := e.deployment(p)
	c := dial(t, srv.URL+"/projects/"+strconv.FormatInt(p.ID, 10), "")
	ev := c.next()
	if ev.Name != "deployment" || !strings.Contains(ev.Data, old.ID) {
		t.Fatalf("first event %+v, want the existing deployment", ev)
	}
	// Then "project": production may have moved before the page connected, so it re-reads it.
	if ev = c.next(); ev.Name != "project" {
		t.Fatalf("second event %+v, want project", ev)
	}
	d := e.deployment(p)
	ev = c.next()
	var s DeploymentState
	if err := json.Unmarshal([]byte(ev.Data), &s); err != nil || ev.Name != "deployment" || s.ID != d.ID || s.Status != "queued" {
		t.Fatalf("new deployment event %+v (%v)", ev, err)
	}
	e.status(d.ID, store.StatusBuilding)
	for {
		ev = c.next()
		if err := json.Unmarshal([]byte(ev.Data), &s); err != nil {
			t.Fatal(err)
		}
		if s.ID == d.ID && s.Status == "building" {
			break
		}
	}
	// Another project's deployment does not show up.
	e.deployment(e.project())
	e.status(d.ID, store.StatusFailed)
	ev = c.next()
	if err := json.Unmarshal([]byte(ev.Data), &s); err != nil || s.ID != d.ID || s.Status != "failed" {
		t.Fatalf("event %+v, want %s failed", ev, d.ID)
	}
	// A finished deployment may have moved an alias: the page re-reads the project's facts.
	if ev = c.next(); ev.Name != "project" {
		t.Fatalf("after a deployment finished: %+v, want project", ev)
	}
}

// TestProductionMovesReachPages: a promote or rollback moves an alias in storage and records a line on the
// deployment, nothing else in the database; the project page and the pages of the project's deployments hear of it.
func TestProductionMovesReachPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := e.server(&Streams{Hub: e.hub, Store: e.st})
	p := e.project()
	a, b := e.deployment(p), e.deployment(p)
	seen := e.hub.SubscribeProject(p.ID)
	for _, d := range []*store.Deployment{a, b} {
		e.status(d.ID, store.StatusBuilding)
		e.status(d.ID, store.StatusReady)
	}
	// The streams start after these notifications arrived, so that only the rollback below reaches them.
	waitFor(t, seen, func(ev Event) bool { return ev.DeploymentID == b.ID && ev.Status == "ready" })
	seen.Close()
	proj := dial(t, srv.URL+"/projects/"+strconv.FormatInt(p.ID, 10), "")
	pageA := dial(t, srv.URL+"/deployments/"+a.ID, "")
	pageB := dial(t, srv.URL+"/deployments/"+b.ID, "")
	for _, c := range []*sseClient{proj, pageA, pageB} {
		for ev := c.next(); ev.Name != "project" && ev.Name != "status"; ev = c.next() {
		}
	}
	e.log(a.ID, "production rolled back to this deployment (it was serving "+b.ID+")")
	for ev := proj.next(); ev.Name != "project"; ev = proj.next() {
		if ev.Name != "deployment" {
			t.Fatalf("project stream after a rollback: %+v", ev)
		}
	}
	// a's own page gets the line and its status again (to re-read its buttons); b's page hears production moved.
	if ev := pageA.next(); ev.Name != "log" {
		t.Fatalf("a's page: %+v, want the log line", ev)
	}
	if st := pageA.status("ready"); st.LogSeq != 1 {
		t.Fatalf("a's status after the line: %+v", st)
	}
	if ev := pageB.next(); ev.Name != "project" {
		t.Fatalf("b's page after a's rollback: %+v, want project", ev)
	}
}
