package build

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/ferryhq/ferry/internal/buildcontract"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/storage"
)

// The wire types (Event, Secrets, ...) are internal/buildcontract's; this file is the runner's side of them:
// the flags, the secrets claim, the batching sender and the slog handler that feeds it.

// eventsFlags are `ferry build`'s flags for builds that report to the App over HTTP.
type eventsFlags struct {
	eventsURL  string
	secretsURL string
	token      string
}

func addEventsFlags(fs *flag.FlagSet) *eventsFlags {
	f := &eventsFlags{}
	fs.StringVar(&f.eventsURL, "events-url", "", "`URL` to stream log lines and the outcome to (the App's /internal/builds/<id>/events); default: stderr only")
	fs.StringVar(&f.secretsURL, "secrets-url", "", "`URL` to fetch this build's clone token, env vars and storage credentials from, once, with --events-token (ECS builds)")
	fs.StringVar(&f.token, "events-token", "", "bearer `token` for --events-url and --secrets-url (prefer FERRY_EVENTS_TOKEN or FERRY_EVENTS_TOKEN_FILE)")
	return f
}

// events is a running build's link to the App. A nil *events does nothing, so the command calls it unconditionally.
type events struct {
	send *eventSender
	aws  *buildcontract.AWSCredentials
}

// start fetches the secrets (with --secrets-url) into p and starts streaming p.Log's records (with --events-url).
func (f *eventsFlags) start(ctx context.Context, p *Params, client *http.Client) (*events, error) {
	if f.eventsURL == "" && f.secretsURL == "" {
		return nil, nil
	}
	if f.token == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "--events-url and --secrets-url need a token: set FERRY_EVENTS_TOKEN or FERRY_EVENTS_TOKEN_FILE")
	}
	for _, u := range []string{f.eventsURL, f.secretsURL} {
		if pu, err := url.Parse(u); u != "" && (err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "") {
			return nil, ferry.Errorf(ferry.EINVALID, "%q is not an http(s) URL such as https://ferry.example.com/internal/builds/ID/events", u)
		}
	}
	ev := &events{}
	token := f.token
	if f.secretsURL != "" {
		s, err := ClaimSecrets(ctx, client, f.secretsURL, f.token)
		if err != nil {
			return nil, err
		}
		token = s.EventsToken
		if s.GitHubToken != "" {
			p.Token = s.GitHubToken
		}
		if len(s.Env) > 0 {
			p.Env = s.Env
		}
		ev.aws = s.AWS
	}
	if f.eventsURL != "" {
		ev.send = newEventSender(f.eventsURL, token, client)
		p.Log = slog.New(&eventsHandler{inner: p.Log.Handler(), send: ev.send, step: &stepTracker{}})
	}
	return ev, nil
}

// openStorage opens the storage URL with the claimed session, or with the SDK's default chain without one.
func (e *events) openStorage(ctx context.Context, rawURL string) (storage.Storage, error) {
	if e == nil || e.aws == nil || !strings.HasPrefix(rawURL, "s3:") {
		return storage.Open(ctx, rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, ferry.Errorf(ferry.EINVALID, "storage URL %q: %v", rawURL, err)
	}
	c := e.aws
	cfg := aws.Config{Credentials: credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)}
	s, err := storage.OpenS3WithConfig(u, cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// finish sends the outcome and what is left of the log. The App learns a build's result only from here, so a
// result that cannot be delivered turns success into an infrastructure error (the queue retries, and the
// republish uploads nothing).
func (e *events) finish(ctx context.Context, res *Result, runErr error) error {
	if e == nil || e.send == nil {
		return runErr
	}
	ev := buildcontract.Event{Type: buildcontract.EventResult, Time: time.Now()}
	if runErr != nil {
		ev = buildcontract.Event{Type: buildcontract.EventError, Time: time.Now(), Code: ferry.ErrorCode(runErr), Message: ferry.ErrorMessage(runErr)}
	} else {
		b, err := json.Marshal(res)
		if err != nil {
			return ferry.Errorf(ferry.EINTERNAL, "encode the result: %w", err)
		}
		ev.Result = b
	}
	e.send.add(ev)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := e.send.close(ctx); err != nil {
		if runErr != nil {
			return runErr
		}
		return ferry.Errorf(ferry.EUNAVAILABLE, "report the result to %s: %w", e.send.url, err)
	}
	return runErr
}

// ClaimSecrets fetches a build's secrets with its one-time claim token. Network trouble and 5xx answers are
// retried; a refusal (the token was used or the deployment is over) is EUNAVAILABLE without retries, so
// that the queue starts a fresh attempt with a fresh token.
func ClaimSecrets(ctx context.Context, client *http.Client, secretsURL, token string) (*buildcontract.Secrets, error) {
	var out *buildcontract.Secrets
	err := retryPost(ctx, client, secretsURL, token, nil, nil, func(body []byte) error {
		var s buildcontract.Secrets
		if err := json.Unmarshal(body, &s); err != nil || s.EventsToken == "" {
			return ferry.Errorf(ferry.EUNAVAILABLE, "read build secrets from %s: not a secrets object", secretsURL)
		}
		out = &s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim build secrets: %w", err)
	}
	return out, nil
}

// retry tuning for the App's endpoints: a deploy of the App or a load balancer blip lasts seconds.
var (
	postAttempts = 6
	postBackoff  = 250 * time.Millisecond
	postMaxWait  = 5 * time.Second
)

// retryPost POSTs body until a 2xx answer, which it hands to ok. 4xx answers other than 408 and 429 end it at once.
func retryPost(ctx context.Context, client *http.Client, u, token string, body []byte, hdr http.Header, ok func([]byte) error) error {
	wait := postBackoff
	var last error
	for attempt := 1; ; attempt++ {
		last = postOnce(ctx, client, u, token, body, hdr, ok)
		var perm *permanentError
		if last == nil || errors.As(last, &perm) || attempt >= postAttempts {
			break
		}
		select {
		case <-ctx.Done():
			return ferry.Errorf(ferry.EUNAVAILABLE, "POST %s: %w (last error: %v)", redact(u), context.Cause(ctx), last)
		case <-time.After(wait):
		}
		wait = min(2*wait, postMaxWait)
	}
	return last
}

// permanentError is an answer that a retry would get again.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func postOnce(ctx context.Context, client *http.Client, u, token string, body []byte, hdr http.Header, ok func([]byte) error) error {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return &permanentError{ferry.Errorf(ferry.EINVALID, "POST %s: %w", redact(u), err)}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := client.Do(req)
	if err != nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "POST %s: %w", redact(u), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode/100 == 2:
		if ok == nil {
			return nil
		}
		if err := ok(b); err != nil {
			return &permanentError{err}
		}
		return nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return &permanentError{ferry.Errorf(ferry.EUNAVAILABLE, "POST %s: %s: %s", redact(u), resp.Status, strings.TrimSpace(string(b)))}
	}
	return ferry.Errorf(ferry.EUNAVAILABLE, "POST %s: %s: %s", redact(u), resp.Status, strings.TrimSpace(string(b)))
}

// redact drops a URL's query, which is where a careless operator would put a token.
func redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}

// Batching: a batch goes out every eventsFlushEvery, or sooner once eventsBatchMax events wait. At most
// eventsBufferMax events wait while the App is unreachable; beyond that, log lines are dropped and counted
// (the outcome is never dropped).
const (
	eventsFlushEvery = 500 * time.Millisecond
	eventsBatchMax   = 500
	eventsBufferMax  = 20000
)

// eventSender posts events in numbered batches, one batch in flight at a time, so that the App stores them in
// the order they were logged.
type eventSender struct {
	url    string
	token  string
	client *http.Client

	mu      sync.Mutex
	buf     []buildcontract.Event
	dropped int
	dead    error // set once the App refused the token: nothing more is sent
	batch   int

	kick chan struct{}
	quit chan context.Context // close's deadline for the final flush
	done chan struct{}
	err  error // the final flush's error, read after done
}

func newEventSender(u, token string, client *http.Client) *eventSender {
	s := &eventSender{url: u, token: token, client: client, kick: make(chan struct{}, 1),
		quit: make(chan context.Context, 1), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *eventSender) add(e buildcontract.Event) {
	s.mu.Lock()
	if e.Type == buildcontract.EventLog && len(s.buf) >= eventsBufferMax {
		s.dropped++
		s.mu.Unlock()
		return
	}
	s.buf = append(s.buf, e)
	full := len(s.buf) >= eventsBatchMax
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *eventSender) run() {
	defer close(s.done)
	t := time.NewTicker(eventsFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.kick:
		case ctx := <-s.quit:
			for {
				more, err := s.flush(ctx)
				if err != nil || !more {
					s.err = err
					return
				}
			}
		}
		_, _ = s.flush(context.Background()) // a failed batch stays queued and goes out with the next one
	}
}

// flush sends up to eventsBatchMax waiting events and reports whether more wait.
func (s *eventSender) flush(ctx context.Context) (bool, error) {
	s.mu.Lock()
	if s.dead != nil {
		s.buf = nil
		s.mu.Unlock()
		return false, s.dead
	}
	n := min(len(s.buf), eventsBatchMax)
	evs := append([]buildcontract.Event(nil), s.buf[:n]...)
	if s.dropped > 0 {
		evs = append(evs, buildcontract.Event{Type: buildcontract.EventLog, Time: time.Now(), Level: "WARN", Step: "ferry",
			Message: fmt.Sprintf("%d log lines were dropped while the App was unreachable", s.dropped)})
	}
	dropped := s.dropped
	s.mu.Unlock()
	if len(evs) == 0 {
		return false, nil
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, e := range evs {
		if err := enc.Encode(e); err != nil {
			return false, ferry.Errorf(ferry.EINTERNAL, "encode event: %w", err)
		}
	}
	s.batch++
	hdr := http.Header{buildcontract.BatchHeader: {strconv.Itoa(s.batch)}}
	err := retryPost(ctx, s.client, s.url, s.token, body.Bytes(), hdr, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	var perm *permanentError
	switch {
	case err == nil:
		s.buf = s.buf[n:]
		s.dropped -= dropped
	case errors.As(err, &perm):
		s.dead = err
		s.buf = nil
		return false, err
	default:
		// Not delivered: the same events go out again under a new number. A batch that did arrive but whose
		// answer was lost is stored twice; that is rarer than losing lines, and harmless.
		return len(s.buf) > 0, err
	}
	return len(s.buf) > 0, nil
}

// close sends what is left and stops; its error says whether the last events (the outcome) arrived.
func (s *eventSender) close(ctx context.Context) error {
	s.quit <- ctx
	<-s.done
	return s.err
}

// eventsHandler copies every record that its inner handler takes to the App, and marks each new step with a
// progress event.
type eventsHandler struct {
	inner slog.Handler
	send  *eventSender
	attrs []slog.Attr
	step  *stepTracker
}

type stepTracker struct {
	mu   sync.Mutex
	last string
}

func (h *eventsHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *eventsHandler) Handle(ctx context.Context, r slog.Record) error {
	step := "ferry"
	var extra []string
	add := func(a slog.Attr) bool {
		if a.Key == "step" {
			step = a.Value.String()
			return true
		}
		extra = append(extra, a.Key+"="+a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.step.mu.Lock()
	if step != "ferry" && step != h.step.last {
		h.step.last = step
		h.send.add(buildcontract.Event{Type: buildcontract.EventProgress, Time: r.Time, Step: step, Message: step + " started"})
	}
	h.step.mu.Unlock()
	msg := r.Message
	if len(extra) > 0 {
		msg += " " + strings.Join(extra, " ")
	}
	h.send.add(buildcontract.Event{Type: buildcontract.EventLog, Time: r.Time, Level: r.Level.String(), Step: step, Message: msg})
	return h.inner.Handle(ctx, r)
}

func (h *eventsHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &eventsHandler{inner: h.inner.WithAttrs(attrs), send: h.send, step: h.step,
		attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *eventsHandler) WithGroup(name string) slog.Handler {
	return &eventsHandler{inner: h.inner.WithGroup(name), send: h.send, step: h.step, attrs: h.attrs}
}
