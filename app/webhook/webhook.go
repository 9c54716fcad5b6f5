// Package webhook is the GitHub App's webhook intake, POST /webhooks/github. It checks the signature before
// anything else, then records the delivery, the event's changes and the River jobs they need in ONE transaction
// and answers 202 within milliseconds: nothing in the request path talks to GitHub or builds anything.
//
// Each event has a small EventHandler in its own file (palantir/go-githubapp's style): ping.go,
// installation.go, installation_repositories.go, push.go, pull_request.go, repository.go and check_run.go.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
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
)

// DefaultMaxBodyBytes is GitHub's own cap on a webhook payload (25 MB).
const DefaultMaxBodyBytes = 25 << 20

// Outcomes of a delivery, the "outcome" label of ferry_webhooks_total.
const (
	OutcomeAccepted     = "accepted"      // the event changed state or enqueued work (202)
	OutcomeIgnored      = "ignored"       // a known event that needs nothing (202): a tag push, an assigned PR
	OutcomeDuplicate    = "duplicate"     // a redelivery of a recorded X-GitHub-Delivery (200)
	OutcomeUnknown      = "unknown_event" // an event Ferry does not handle (204)
	OutcomeUnauthorized = "unauthorized"  // no or a wrong signature (401)
	OutcomeTooLarge     = "too_large"     // a body over the cap (413)
	OutcomeMalformed    = "malformed"     // headers or JSON that do not parse (400)
	OutcomeError        = "error"         // the database or a handler failed (5xx)
)

// Config configures the intake handler; New turns it into an http.Handler.
type Config struct {
	// Secret is the App's webhook secret. Required: with no secret, go-github would accept unsigned payloads.
	Secret []byte
	// Pool is the database the deliveries, projects and deployments live in. Required.
	Pool *pgxpool.Pool
	// River inserts jobs inside the intake transaction (an insert-only client is enough). Required.
	River *river.Client[pgx.Tx]
	// MaxBodyBytes caps a delivery's body; a larger one gets 413. Default: DefaultMaxBodyBytes.
	MaxBodyBytes int64
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
}

// DefaultHandlers are the events Ferry acts on.
func DefaultHandlers() []EventHandler {
	return []EventHandler{PingHandler{}, InstallationHandler{}, InstallationRepositoriesHandler{}, PushHandler{},
		PullRequestHandler{}, RepositoryHandler{}}
}

// Handler is the intake endpoint.
type Handler struct {
	cfg      Config
	handlers map[string]EventHandler
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

var _ http.Handler = (*Handler)(nil)

// New checks cfg and returns the intake handler.
func New(cfg Config) (*Handler, error) {
	if len(cfg.Secret) == 0 {
		return nil, ferry.Errorf(ferry.EINVALID, "webhook intake: no webhook secret (pass --webhook-secret or set FERRY_WEBHOOK_SECRET or FERRY_WEBHOOK_SECRET_FILE)")
	}
	if cfg.Pool == nil || cfg.River == nil {
		return nil, ferry.Errorf(ferry.EINVALID, "webhook intake: a database pool and a River client are required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
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
	h := &Handler{cfg: cfg, handlers: map[string]EventHandler{}}
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
	body, err := readBody(w, r, h.cfg.MaxBodyBytes)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			log.Warn("webhook refused: body too large", "limit", h.cfg.MaxBodyBytes)
			return http.StatusRequestEntityTooLarge, OutcomeTooLarge, fmt.Sprintf("body larger than %d bytes", h.cfg.MaxBodyBytes)
		}
		log.Warn("webhook refused: read body", "err", err)
		return http.StatusBadRequest, OutcomeMalformed, "could not read the body"
	}
	// The signature comes first: nothing about an unsigned request is trusted, not even its headers.
	sig := r.Header.Get(github.SHA256SignatureHeader)
	if !strings.HasPrefix(sig, "sha256=") {
		log.Warn("webhook refused: no X-Hub-Signature-256")
		return http.StatusUnauthorized, OutcomeUnauthorized, "missing X-Hub-Signature-256"
	}
	if err := github.ValidateSignature(sig, body, h.cfg.Secret); err != nil {
		log.Warn("webhook refused: wrong signature")
		return http.StatusUnauthorized, OutcomeUnauthorized, "signature does not match"
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
	payload, err := github.ValidatePayloadFromBody(ct, bytes.NewReader(body), sig, h.cfg.Secret)
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
			githubURL: h.cfg.GitHubURL}
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
	return http.StatusAccepted, outcome, outcome
}

var errDuplicate = errors.New("duplicate delivery")

// readBody reads at most limit bytes; a longer body is an *http.MaxBytesError (and the server closes the
// connection rather than read the rest).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	return buf.Bytes(), err
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
