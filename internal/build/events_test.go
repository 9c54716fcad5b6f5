package build

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/buildcontract"
	"github.com/ferryhq/ferry/internal/ferry"
)

// eventsSink is an App stand-in that stores batches by number (a repeated number is dropped, as the App does)
// and fails the first failures requests with 503.
type eventsSink struct {
	mu       sync.Mutex
	failures int
	requests int
	batches  map[int][]buildcontract.Event
	status   int // answer after the failures; 0 = 200
}

func (s *eventsSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if r.Header.Get("Authorization") != "Bearer fbe_token" {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	if s.failures > 0 {
		s.failures--
		http.Error(w, "deploying", http.StatusServiceUnavailable)
		return
	}
	if s.status != 0 {
		http.Error(w, "over", s.status)
		return
	}
	n, _ := strconv.Atoi(r.Header.Get(buildcontract.BatchHeader))
	body, _ := io.ReadAll(r.Body)
	var evs []buildcontract.Event
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var e buildcontract.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		evs = append(evs, e)
	}
	if _, dup := s.batches[n]; !dup {
		s.batches[n] = evs
	}
}

func (s *eventsSink) all() []buildcontract.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []buildcontract.Event
	for i := 1; i <= len(s.batches); i++ {
		out = append(out, s.batches[i]...)
	}
	return out
}

func fastRetries(t *testing.T) {
	old := postBackoff
	postBackoff = time.Millisecond
	t.Cleanup(func() { postBackoff = old })
}

// TestEventsStreamInOrderWithRetries logs more lines than one batch holds through a flaky App: every line
// arrives once, in order, with progress marks, and the result last.
func TestEventsStreamInOrderWithRetries(t *testing.T) {
	fastRetries(t)
	sink := &eventsSink{failures: 3, batches: map[int][]buildcontract.Event{}}
	srv := httptest.NewServer(sink)
	defer srv.Close()

	f := &eventsFlags{eventsURL: srv.URL + "/internal/builds/dpl-x/events", token: "fbe_token"}
	var stderr bytes.Buffer
	p := Params{Log: slog.New(slog.NewJSONHandler(&stderr, nil))}
	ev, err := f.start(context.Background(), &p, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	const n = 1200
	for i := range n {
		step := "install"
		if i >= n/2 {
			step = "build"
		}
		p.Log.Info(fmt.Sprintf("line %d", i), "step", step)
	}
	if err := ev.finish(context.Background(), &Result{Commit: "abc"}, nil); err != nil {
		t.Fatal(err)
	}
	got := sink.all()
	var logs []string
	var progress []string
	for _, e := range got {
		switch e.Type {
		case buildcontract.EventLog:
			logs = append(logs, e.Message)
		case buildcontract.EventProgress:
			progress = append(progress, e.Step)
		}
	}
	if len(logs) != n {
		t.Fatalf("%d log lines arrived, want %d", len(logs), n)
	}
	for i, l := range logs {
		if l != fmt.Sprintf("line %d", i) {
			t.Fatalf("line %d is %q: out of order", i, l)
		}
	}
	if strings.Join(progress, ",") != "install,build" {
		t.Errorf("progress %v", progress)
	}
	last := got[len(got)-1]
	if last.Type != buildcontract.EventResult || !strings.Contains(string(last.Result), `"commit":"abc"`) {
		t.Errorf("last event %+v, want the result", last)
	}
	if !strings.Contains(stderr.String(), "line 1199") {
		t.Error("stderr lost the log: events must add to it, not replace it")
	}
}

// TestEventsFailureAndRefusal: a failed build sends its error; an App that refuses the token (the deployment
// is over) makes the build's own outcome stand, and a success whose result cannot be delivered becomes an
// infrastructure error.
func TestEventsFailureAndRefusal(t *testing.T) {
	fastRetries(t)
	sink := &eventsSink{batches: map[int][]buildcontract.Event{}}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	start := func(token string) (*events, *Params) {
		f := &eventsFlags{eventsURL: srv.URL + "/e", token: token}
		p := &Params{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		ev, err := f.start(context.Background(), p, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		return ev, p
	}

	ev, _ := start("fbe_token")
	userErr := ferry.Errorf(ferry.EBUILD, "build: npm run build exited 1")
	if err := ev.finish(context.Background(), nil, userErr); !errors.Is(err, userErr) {
		t.Errorf("finish returned %v, want the build's error", err)
	}
	got := sink.all()
	if len(got) != 1 || got[0].Type != buildcontract.EventError || got[0].Code != ferry.EBUILD || got[0].Message != userErr.Error() {
		t.Errorf("events %+v", got)
	}

	ev, _ = start("fbe_wrong")
	err := ev.finish(context.Background(), &Result{}, nil)
	if ferry.ErrorCode(err) != ferry.EUNAVAILABLE || !strings.Contains(err.Error(), "401") {
		t.Errorf("undeliverable result: %v, want EUNAVAILABLE", err)
	}

	sink.mu.Lock()
	before := sink.requests
	sink.mu.Unlock()
	ev, _ = start("fbe_wrong")
	_ = ev.finish(context.Background(), nil, userErr)
	sink.mu.Lock()
	if sink.requests-before != 1 {
		t.Errorf("a refused token was retried: %d requests", sink.requests-before)
	}
	sink.mu.Unlock()
}

// TestEventsFlagsNeedAToken: --events-url without a token says where to put one.
func TestEventsFlagsNeedAToken(t *testing.T) {
	f := &eventsFlags{eventsURL: "https://ferry.example.com/internal/builds/x/events"}
	_, err := f.start(context.Background(), &Params{Log: slog.Default()}, http.DefaultClient)
	if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), "FERRY_EVENTS_TOKEN") {
		t.Errorf("err %v", err)
	}
	f = &eventsFlags{eventsURL: "ftp://x", token: "t"}
	if _, err := f.start(context.Background(), &Params{Log: slog.Default()}, http.DefaultClient); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("ftp URL: %v", err)
	}
}
