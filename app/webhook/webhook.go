// Package webhook is the GitHub App's webhook intake, POST /webhooks/github. It checks the signature before
// anything else, then records the delivery, the event's changes and the River jobs they need in ONE transaction
// and answers 202 within milliseconds: nothing in the request path talks to GitHub or builds anything.
//
// Each event has a small EventHandler in its own file (palantir/go-githubapp's style): ping.go,
// installation.go, installation_repositories.go, push.go, pull_request.go, repository.go and check_run.go.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-github/v66/github"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
)

// DefaultMaxBodyBytes caps a delivery's body. GitHub's own cap is 25 MB, but what it sends is far smaller (a
// push lists at most 20 commits in full, a pull request is about 30 KB), and every byte of a body is held in
// memory before its signature can be checked; an operator whose deliveries are larger raises --max-body-bytes.
const DefaultMaxBodyBytes = 8 << 20

// DefaultPendingBytes bounds the memory that bodies not yet verified hold all together, whatever the number
// of connections: an unauthenticated sender can make the intake hold this much and no more.
const DefaultPendingBytes = 32 << 20

// DefaultReadTimeout bounds the time a sender has to send a body, so that slow senders cannot hold buffers.
const DefaultReadTimeout = 10 * time.Second

// RetryAfterSeconds is the Retry-After of a 503 sent while the pending-body budget is spent.
const RetryAfterSeconds = 5

// Outcomes of a delivery, the "outcome" label of ferry_webhooks_total.
const (
	OutcomeAccepted  = "accepted"  // the event changed state or enqueued work (202)
	OutcomeIgnored   = "ignored"   // a known event that needs nothing (202): a tag push, an assigned PR
	OutcomeDuplicate = "duplicate" // a redelivery of a recorded X-GitHub-Delivery (200)
	// OutcomeAlreadyDeployed is a push of the commit its alias already has (200): a replay, or a repeat.
	OutcomeAlreadyDeployed = "already_deployed"
	// OutcomeStale is a push of a commit older than what its alias has had since (200): nothing is built.
	OutcomeStale        = "stale"
	OutcomeUnknown      = "unknown_event" // an event Ferry does not handle (204)
	OutcomeUnauthorized = "unauthorized"  // no or a wrong signature (401)
	OutcomeTooLarge     = "too_large"     // a body over the cap (413)
	OutcomeBusy         = "busy"          // the budget for unverified bodies is spent (503)
	OutcomeSlow         = "slow"          // the body did not arrive within ReadTimeout (408)
	OutcomeMalformed    = "malformed"     // headers or JSON that do not parse (400)
	OutcomeError        = "error"         // the database or a handler failed (5xx)
)

// Config configures the intake handler; New turns it into an http.Handler.
type Config struct {
	// Secret is the App's webhook secret. Required unless SecretFunc is set: with no secret, go-github would
	// accept unsigned payloads.
	Secret []byte
	// SecretFunc, when set, gives the secret per delivery instead of Secret, so that a GitHub App created from
	// the dashboard is checked with its own secret without a restart (app/githubapp). While it returns nothing,
	// deliveries get 503 (GitHub keeps them, and the redelivery job asks for them once the App exists).
	SecretFunc func() []byte
	// Pool is the database the deliveries, projects and deployments live in. Required.
	Pool *pgxpool.Pool
	// River inserts jobs inside the intake transaction (an insert-only client is enough). Required.
	River *river.Client[pgx.Tx]
	// Site is the storage builds publish to: a new repository's project does not take a name that storage holds
	// for another repository (site.Occupant). Required.
	Site *site.Store
	// MaxBodyBytes caps a delivery's body; a larger one gets 413, before any of it is read when its
	// Content-Length says so. Default: DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// PendingBytes bounds the memory held by all bodies whose signature is not checked yet. A body is read in
	// fixed chunks taken from this budget (its first SmallBodyBytes from a quarter kept for small bodies, so that
	// large bodies cannot crowd out ordinary deliveries); a delivery that finds it spent gets 503 with
	// Retry-After at once. Default: DefaultPendingBytes; it must hold 4/3 × MaxBodyBytes.
	PendingBytes int64
	// ReadTimeout bounds the time to receive a body, from the end of its headers. Default: DefaultReadTimeout.
	ReadTimeout time.Duration
	// GitHubURL is GitHub's web root. Default: https://github.com. Clone URLs are no longer made from it: a
	// payload's clone_url is used, or the repo_sync job reads it from the API.
	GitHubURL string
	// Logger receives one line per delivery. Default: slog.Default().
	Logger *slog.Logger
	// Registerer receives ferry_webhooks_total and ferry_webhook_duration_seconds. Default: none.
	Registerer prometheus.Registerer
	// Actions carries out the buttons of Ferry's check runs (CheckRunHandler). Default: none, and check_run
	// events are ignored.
	Actions DeploymentActions
	// Handlers handle the events; an event with none gets 204. Default: DefaultHandlers() and a
	// CheckRunHandler with Actions.
	Handlers []EventHandler
}

// EventHandler handles one or more webhook event types. Handle runs inside the intake transaction, after the
// delivery is recorded: everything it does through d commits together with the delivery, or not at all. It
// must not call GitHub or do slow work; it stores state and enqueues jobs.
type EventHandler interface {
	// Handles lists the X-GitHub-Event values this handler takes.
	Handles() []string
	// Handle applies one delivery. It returns OutcomeAccepted or OutcomeIgnored; an error rolls everything
	// back and answers with the error's ferry status.
	Handle(ctx context.Context, d *Delivery) (outcome string, err error)
}

// Delivery is one verified, parsed delivery as an EventHandler sees it.
type Delivery struct {
	ID    string // X-GitHub-Delivery
	Event string // X-GitHub-Event
	// Payload is what github.ParseWebHook made of the body: *github.PushEvent, *github.PullRequestEvent...
	Payload any
	// Store and Tx are the intake transaction; jobs go in with jobs.InsertDeploy(ctx, d.River, d.Tx, ...).
	Store *store.Store
	Tx    pgx.Tx
	River *river.Client[pgx.Tx]
	// Log carries the delivery id and event; handlers add project and deployment.
	Log *slog.Logger

	githubURL string
	site      *site.Store
}

// DefaultHandlers are the events Ferry acts on.
func DefaultHandlers() []EventHandler {
	return []EventHandler{PingHandler{}, InstallationHandler{}, InstallationRepositoriesHandler{}, PushHandler{},
		PullRequestHandler{}, RepositoryHandler{}}
}

// Handler is the intake endpoint.
type Handler struct {
	cfg      Config
	small    *chunkPool // the first SmallBodyBytes of every body
	large    *chunkPool // the rest of bodies larger than that
	handlers map[string]EventHandler
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

var _ http.Handler = (*Handler)(nil)

// New checks cfg and returns the intake handler.
func New(cfg Config) (*Handler, error) {
	if cfg.SecretFunc == nil && len(cfg.Secret) == 0 {
		return nil, ferry.Errorf(ferry.EINVALID, "webhook intake: no webhook secret (pass --webhook-secret or set FERRY_WEBHOOK_SECRET or FERRY_WEBHOOK_SECRET_FILE)")
	}
	if cfg.Pool == nil || cfg.River == nil || cfg.Site == nil {
		return nil, ferry.Errorf(ferry.EINVALID, "webhook intake: a database pool, a River client and the site store are required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.PendingBytes <= 0 {
		cfg.PendingBytes = max(DefaultPendingBytes, cfg.MaxBodyBytes*4/3)
	}
	if cfg.PendingBytes/4*3 < cfg.MaxBodyBytes {
		return nil, ferry.Errorf(ferry.EINVALID, "webhook intake: --webhook-pending-bytes (%d) cannot hold one body of --max-body-bytes (%d); raise it to at least %d", cfg.PendingBytes, cfg.MaxBodyBytes, cfg.MaxBodyBytes*4/3+chunkSize)
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.SecretFunc == nil {
		secret := cfg.Secret
		cfg.SecretFunc = func() []byte { return secret }
	}
	if cfg.GitHubURL == "" {
		cfg.GitHubURL = "https://github.com"
	}
	cfg.GitHubURL = strings.TrimSuffix(cfg.GitHubURL, "/")
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Handlers == nil {
		cfg.Handlers = append(DefaultHandlers(), CheckRunHandler{Actions: cfg.Actions})
	}
	smallChunks := int(cfg.PendingBytes / 4 / chunkSize)
	h := &Handler{cfg: cfg, handlers: map[string]EventHandler{}, small: newChunkPool(max(smallChunks, 1)),
		large: newChunkPool(int(cfg.PendingBytes/chunkSize) - smallChunks)}
	for _, eh := range cfg.Handlers {
		for _, ev := range eh.Handles() {
			h.handlers[ev] = eh
		}
	}
	h.total = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_webhooks_total",
		Help: "GitHub webhook deliveries received, by event and outcome.",
	}, []string{"event", "outcome"})
	h.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ferry_webhook_duration_seconds",
		Help:    "Time to verify, record and enqueue one GitHub webhook delivery.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"event"})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{h.total, h.duration} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register webhook metrics: %w", err)
			}
		}
	}
	return h, nil
}

// ServeHTTP takes one delivery: cap, verify, parse, then record and enqueue in one transaction.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	event := r.Header.Get("X-GitHub-Event")
	delivery := r.Header.Get("X-GitHub-Delivery")
	log := h.cfg.Logger.With("delivery", delivery, "event", event)
	status, outcome, msg := h.serve(w, r, event, delivery, log)

	label := event
	if _, known := h.handlers[event]; !known {
		label = "other" // the label set stays bounded whatever senders put in the header
	}
	h.total.WithLabelValues(label, outcome).Inc()
	h.duration.WithLabelValues(label).Observe(time.Since(start).Seconds())
	if status == http.StatusServiceUnavailable && outcome == OutcomeBusy {
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

// serve returns the response status, the outcome label and a short message for the sender.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, event, delivery string, log *slog.Logger) (int, string, string) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, OutcomeMalformed, "POST webhook deliveries here"
	}
	// Nothing of an unsigned request is read, and nothing of any request before its size is known to fit.
	if r.ContentLength > h.cfg.MaxBodyBytes {
		log.Warn("webhook refused: body too large", "limit", h.cfg.MaxBodyBytes, "content_length", r.ContentLength)
		return http.StatusRequestEntityTooLarge, OutcomeTooLarge, fmt.Sprintf("body larger than %d bytes", h.cfg.MaxBodyBytes)
	}
	sig := r.Header.Get(github.SHA256SignatureHeader)
	want, ok := strings.CutPrefix(sig, "sha256=")
	wantMAC, err := hex.DecodeString(want)
	if !ok || err != nil || len(wantMAC) != sha256.Size {
		log.Warn("webhook refused: no valid X-Hub-Signature-256")
		return http.StatusUnauthorized, OutcomeUnauthorized, "missing or malformed X-Hub-Signature-256"
	}
	secret := h.cfg.SecretFunc()
	if len(secret) == 0 {
		log.Warn("webhook refused: no GitHub App configured yet, so no secret to check it with")
		return http.StatusServiceUnavailable, OutcomeUnauthorized, "no GitHub App is configured on this server yet; create it from the dashboard"
	}
	// The signature comes first: nothing about an unsigned request is trusted, not even its headers.
	body, err := h.readSigned(w, r, secret, wantMAC)
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case err == nil:
	case errors.Is(err, errBusy):
		log.Warn("webhook refused: too many bodies being received", "budget_bytes", h.cfg.PendingBytes)
		return http.StatusServiceUnavailable, OutcomeBusy, "too many deliveries in flight; retry shortly"
	case errors.Is(err, errBadSignature):
		log.Warn("webhook refused: wrong signature")
		return http.StatusUnauthorized, OutcomeUnauthorized, "signature does not match"
	case errors.As(err, &tooLarge):
		log.Warn("webhook refused: body too large", "limit", h.cfg.MaxBodyBytes)
		return http.StatusRequestEntityTooLarge, OutcomeTooLarge, fmt.Sprintf("body larger than %d bytes", h.cfg.MaxBodyBytes)
	case errors.As(err, &netErr) && netErr.Timeout():
		log.Warn("webhook refused: body too slow", "timeout", h.cfg.ReadTimeout)
		return http.StatusRequestTimeout, OutcomeSlow, fmt.Sprintf("body not received within %s", h.cfg.ReadTimeout)
	default:
		log.Warn("webhook refused: read body", "err", err)
		return http.StatusBadRequest, OutcomeMalformed, "could not read the body"
	}
	if event == "" || delivery == "" {
		log.Warn("webhook refused: missing X-GitHub-Event or X-GitHub-Delivery")
		return http.StatusBadRequest, OutcomeMalformed, "missing X-GitHub-Event or X-GitHub-Delivery"
	}
	eh, ok := h.handlers[event]
	if !ok {
		log.Debug("webhook event not handled")
		return http.StatusNoContent, OutcomeUnknown, ""
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	payload, err := payloadOf(ct, body)
	if err != nil {
		log.Warn("webhook refused: unreadable payload", "content_type", ct, "err", err)
		return http.StatusBadRequest, OutcomeMalformed, "unsupported Content-Type (use application/json)"
	}
	parsed, err := github.ParseWebHook(event, payload)
	if err != nil {
		log.Warn("webhook refused: malformed JSON", "err", err)
		return http.StatusBadRequest, OutcomeMalformed, "malformed JSON payload"
	}

	action, installation := describe(parsed)
	log = log.With("action", action)
	outcome := OutcomeAccepted
	err = store.New(h.cfg.Pool).InTx(r.Context(), func(st *store.Store, tx pgx.Tx) error {
		inserted, err := st.WebhookDeliveryInsert(r.Context(), store.WebhookDeliveryInsertParams{
			ID: delivery, Event: event, Action: action, InstallationID: installation,
		})
		if err != nil {
			return err
		}
		if !inserted {
			outcome = OutcomeDuplicate
			return errDuplicate // roll back: a redelivery changes nothing
		}
		d := &Delivery{ID: delivery, Event: event, Payload: parsed, Store: st, Tx: tx, River: h.cfg.River, Log: log,
			githubURL: h.cfg.GitHubURL, site: h.cfg.Site}
		outcome, err = eh.Handle(r.Context(), d)
		return err
	})
	switch {
	case errors.Is(err, errDuplicate):
		log.Info("webhook redelivery acknowledged, nothing changed")
		return http.StatusOK, OutcomeDuplicate, "already received"
	case err != nil:
		status := ferry.HTTPStatus(err)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
			// A data exception: the payload holds text PostgreSQL refuses (a NUL byte), not an outage.
			status = http.StatusBadRequest
		}
		if status < 500 {
			log.Warn("webhook refused", "err", err)
			return status, OutcomeMalformed, ferry.ErrorMessage(err)
		}
		log.Error("webhook failed", "err", err)
		return status, OutcomeError, "could not record the delivery; redeliver it later"
	}
	if outcome == OutcomeAlreadyDeployed || outcome == OutcomeStale {
		return http.StatusOK, outcome, strings.ReplaceAll(outcome, "_", " ")
	}
	return http.StatusAccepted, outcome, outcome
}

var errDuplicate = errors.New("duplicate delivery")

var (
	errBusy         = errors.New("the budget for unverified bodies is spent")
	errBadSignature = errors.New("signature does not match")
)

// chunkSize is the unit unverified bodies are read and budgeted in.
const chunkSize = 32 << 10

// SmallBodyBytes is how much of each body comes from the small bodies' share of the budget: ordinary deliveries
// (a push is about 8 KB, a pull request 30 KB) fit in it whole.
const SmallBodyBytes = 4 * chunkSize

// chunkPool hands out at most n chunks at once and keeps the returned ones for reuse: the memory of unverified
// bodies never exceeds n chunks, and reading them makes no garbage for the collector to let pile up.
type chunkPool struct {
	tokens chan struct{} // one per chunk that may be out
	free   chan []byte
}

func newChunkPool(n int) *chunkPool {
	return &chunkPool{tokens: make(chan struct{}, n), free: make(chan []byte, n)}
}

// get returns a chunk, or false at once when n are out.
func (p *chunkPool) get() ([]byte, bool) {
	select {
	case p.tokens <- struct{}{}:
	default:
		return nil, false
	}
	select {
	case c := <-p.free:
		return c, true
	default:
		return make([]byte, chunkSize), true
	}
}

func (p *chunkPool) put(c []byte) {
	p.free <- c[:chunkSize]
	<-p.tokens
}

// readSigned reads the body in budgeted chunks under a short read deadline, computing its HMAC with secret as it
// goes, and returns it only when the HMAC is wantMAC. It never sizes a buffer from the sender's Content-Length.
// A body over MaxBodyBytes is an *http.MaxBytesError (and the server closes the connection rather than read the
// rest); a spent budget is errBusy.
func (h *Handler) readSigned(w http.ResponseWriter, r *http.Request, secret, wantMAC []byte) ([]byte, error) {
	// Unsupported only off a real connection (tests' recorders); the server's own ReadTimeout still holds.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.cfg.ReadTimeout))
	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)
	mac := hmac.New(sha256.New, secret)
	type held struct {
		pool *chunkPool
		b    []byte
	}
	var chunks []held
	defer func() {
		for _, c := range chunks {
			c.pool.put(c.b)
		}
	}()
	var n int
	for {
		pool := h.small
		if n >= SmallBodyBytes {
			pool = h.large
		}
		c, ok := pool.get()
		if !ok {
			return nil, errBusy
		}
		chunks = append(chunks, held{pool, c})
		m, err := io.ReadFull(body, c)
		mac.Write(c[:m])
		chunks[len(chunks)-1].b = c[:m]
		n += m
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if !hmac.Equal(mac.Sum(nil), wantMAC) {
		return nil, errBadSignature
	}
	// Verified: only now is memory taken in one piece.
	out := make([]byte, 0, n)
	for _, c := range chunks {
		out = append(out, c.b...)
	}
	return out, nil
}

// payloadOf returns the JSON payload of a body whose signature readSigned has already checked: the body itself,
// or its "payload" form field, as GitHub sends them. (go-github's ValidatePayloadFromBody would copy the body
// and compute its HMAC a second time.)
func payloadOf(contentType string, body []byte) ([]byte, error) {
	switch contentType {
	case "application/json":
		return body, nil
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, err
		}
		return []byte(form.Get("payload")), nil
	}
	return nil, fmt.Errorf("webhook request has unsupported Content-Type %q", contentType)
}

// describe pulls the action and installation id that every delivery row records.
func describe(parsed any) (action string, installation int64) {
	if a, ok := parsed.(interface{ GetAction() string }); ok {
		action = a.GetAction()
	}
	if i, ok := parsed.(interface{ GetInstallation() *github.Installation }); ok {
		installation = i.GetInstallation().GetID()
	}
	return action, installation
}

// payloadError is the error for a payload that parsed but lacks what its event must carry.
func payloadError(format string, args ...any) error {
	return ferry.Errorf(ferry.EINVALID, "webhook payload: "+format, args...)
}
