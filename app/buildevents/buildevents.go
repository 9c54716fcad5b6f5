// Package buildevents is the App's end of build events (internal/build/events.go has the wire format): builds
// that run away from the App, in ECS tasks, fetch their secrets once and stream their log and outcome back over
// HTTP, authenticated with tokens that belong to one attempt of one deployment.
//
//	POST /internal/builds/{id}/secrets   the claim token, once: the clone token, env vars, scoped AWS session
//	                                     and the events token
//	POST /internal/builds/{id}/events    the events token: JSON lines, appended to deployment_logs in order
//
// Why a claim at all: RunTask's overrides are visible to anyone allowed ecs:DescribeTasks and are recorded by
// CloudTrail, so the task's command and environment must hold nothing worth stealing. They hold only the
// claim token, which is dead once the task has used it (the events token it receives never shows in the ECS
// API). A claim that comes too late, because someone raced the task to it, is refused with 410; the task then
// fails as an infrastructure error, the queue retries with fresh tokens, and the warning in the App's log
// shows that it happened.
//
// The rows live in PostgreSQL (build_tokens), so whichever replica of the App receives a task's request can
// answer it. Tokens are stored as SHA-256 hashes; the secrets are sealed with AES-GCM under a key derived from
// the claim token, so a database dump holds nothing usable either.
package buildevents

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/buildcontract"
	"github.com/ferryhq/ferry/internal/ferry"
)

// Config configures a Service. DB is required.
type Config struct {
	// DB is the App's database (a *pgxpool.Pool).
	DB store.DBTX
	// Logger receives refused claims and similar events worth an operator's eye. Default slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes caps one events request. Default 4 MiB (ferry build sends at most 500 lines of 4 KiB).
	MaxBodyBytes int64
	// TTL is how long a grant lives at most, whatever becomes of its deployment. Default 2h.
	TTL time.Duration
}

// Service issues build tokens, serves the two endpoints and tells the builder how a build ended.
type Service struct {
	db     store.DBTX
	log    *slog.Logger
	maxB   int64
	ttl    time.Duration
	mux    *http.ServeMux
	random io.Reader
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil {
		return nil, ferry.Errorf(ferry.EINVALID, "buildevents: DB is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 2 * time.Hour
	}
	s := &Service{db: cfg.DB, log: cfg.Logger, maxB: cfg.MaxBodyBytes, ttl: cfg.TTL, random: rand.Reader}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /internal/builds/{id}/events", s.events)
	s.mux.HandleFunc("POST /internal/builds/{id}/secrets", s.secrets)
	return s, nil
}

// Handler serves POST /internal/builds/{id}/events and /secrets; mount it at /internal/builds/.
func (s *Service) Handler() http.Handler { return s.mux }

// IssueParams is one grant: the secrets one attempt's task may fetch once.
type IssueParams struct {
	DeploymentID string
	// Secrets holds the clone token, env vars and AWS session; its EventsToken is made here.
	Secrets buildcontract.Secrets
	// TTL bounds the grant; 0 or more than the Service's TTL means the Service's.
	TTL time.Duration
}

// Grant is what a builder hands the task: the claim token (FERRY_EVENTS_TOKEN), and the attempt it belongs to,
// which also makes RunTask's idempotency token.
type Grant struct {
	ClaimToken string
	Attempt    int
}

// Issue makes the tokens of the deployment's current attempt, replacing those of any earlier attempt. The
// deployment must be building: ENOTFOUND for an unknown one, ECONFLICT for one that is not building.
func (s *Service) Issue(ctx context.Context, p IssueParams) (*Grant, error) {
	var status string
	var attempt int
	err := s.db.QueryRow(ctx, `SELECT status, attempt FROM deployments WHERE id = $1`, p.DeploymentID).Scan(&status, &attempt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ferry.Errorf(ferry.ENOTFOUND, "issue build tokens: deployment %q not found", p.DeploymentID)
	}
	if err != nil {
		return nil, dbErr("issue build tokens", err)
	}
	if store.DeploymentStatus(status) != store.StatusBuilding {
		return nil, ferry.Errorf(ferry.ECONFLICT, "issue build tokens: deployment %s is %s, not building", p.DeploymentID, status)
	}
	claim, err := s.token("fbc_")
	if err != nil {
		return nil, err
	}
	sec := p.Secrets
	if sec.EventsToken, err = s.token("fbe_"); err != nil {
		return nil, err
	}
	plain, err := json.Marshal(sec)
	if err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "encode build secrets: %w", err)
	}
	sealed, err := s.seal(claim, plain)
	if err != nil {
		return nil, err
	}
	ttl := s.ttl
	if p.TTL > 0 && p.TTL < ttl {
		ttl = p.TTL
	}
	_, err = s.db.Exec(ctx, `
		INSERT INTO build_tokens (deployment_id, attempt, claim_hash, sealed, events_hash, expires_at)
		VALUES ($1, $2, $3, $4, $5, now() + $6 * interval '1 second')
		ON CONFLICT (deployment_id) DO UPDATE SET attempt = EXCLUDED.attempt, claim_hash = EXCLUDED.claim_hash,
			sealed = EXCLUDED.sealed, claimed_at = NULL, events_hash = EXCLUDED.events_hash, last_batch = 0,
			result = NULL, error_code = '', error = '', expires_at = EXCLUDED.expires_at, created_at = now()`,
		p.DeploymentID, attempt, hash(claim), sealed, hash(sec.EventsToken), ttl.Seconds())
	if err != nil {
		return nil, dbErr("store build tokens", err)
	}
	return &Grant{ClaimToken: claim, Attempt: attempt}, nil
}

// Outcome is what a build reported about its end.
type Outcome struct {
	// Claimed says whether the task fetched its secrets, that is whether it started at all.
	Claimed bool
	// Result is `ferry build --json`'s object, set when the build published.
	Result json.RawMessage
	// ErrorCode and Error are the ferry error the build ended with, set when it failed.
	ErrorCode string
	Error     string
}

// Outcome reads what the deployment's current grant has received. ENOTFOUND when there is no grant.
func (s *Service) Outcome(ctx context.Context, deploymentID string) (*Outcome, error) {
	var o Outcome
	var claimed *time.Time
	var result []byte
	err := s.db.QueryRow(ctx, `SELECT claimed_at, result, error_code, error FROM build_tokens WHERE deployment_id = $1`,
		deploymentID).Scan(&claimed, &result, &o.ErrorCode, &o.Error)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ferry.Errorf(ferry.ENOTFOUND, "no build tokens for deployment %q", deploymentID)
	}
	if err != nil {
		return nil, dbErr("read build outcome", err)
	}
	o.Claimed = claimed != nil
	if len(result) > 0 {
		o.Result = result
	}
	return &o, nil
}

// Revoke ends the deployment's grant at once: the builder calls it when the build is over, so that its
// tokens die with it.
func (s *Service) Revoke(ctx context.Context, deploymentID string) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM build_tokens WHERE deployment_id = $1`, deploymentID); err != nil {
		return dbErr("revoke build tokens", err)
	}
	return nil
}

// grant is a build_tokens row with its deployment's state, read under the row's lock.
type grant struct {
	attempt, curAttempt int
	status              store.DeploymentStatus
	claimHash, evHash   []byte
	sealed              []byte
	lastBatch           int
	expired             bool
}

// errGone and errAuth are the two refusals; their messages are all a caller learns.
var (
	errAuth = &httpError{http.StatusUnauthorized, "invalid or unknown build token"}
	errGone = &httpError{http.StatusGone, "this build attempt is over; its tokens no longer work"}
)

type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// authorize locks the grant of id and checks tok against it: unknown id or wrong token is errAuth, a build
// attempt that is over (deployment no longer building, a newer attempt, past expiry) errGone.
func authorize(ctx context.Context, tx pgx.Tx, id, tok string, claim bool) (*grant, error) {
	var g grant
	var status string
	err := tx.QueryRow(ctx, `
		SELECT t.attempt, d.attempt, d.status, t.claim_hash, t.events_hash, t.sealed, t.last_batch, t.expires_at < now()
		FROM build_tokens t JOIN deployments d ON d.id = t.deployment_id
		WHERE t.deployment_id = $1 FOR UPDATE OF t`, id).
		Scan(&g.attempt, &g.curAttempt, &status, &g.claimHash, &g.evHash, &g.sealed, &g.lastBatch, &g.expired)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errAuth
	}
	if err != nil {
		return nil, dbErr("read build tokens", err)
	}
	g.status = store.DeploymentStatus(status)
	want := g.evHash
	if claim {
		want = g.claimHash
	}
	if tok == "" || subtle.ConstantTimeCompare(hash(tok), want) != 1 {
		return nil, errAuth
	}
	if g.status != store.StatusBuilding || g.attempt != g.curAttempt || g.expired {
		return nil, errGone
	}
	return &g, nil
}

// secrets hands the sealed secrets over, once.
func (s *Service) secrets(w http.ResponseWriter, r *http.Request) {
	id, tok := r.PathValue("id"), bearer(r)
	var plain []byte
	err := s.inTx(r.Context(), func(tx pgx.Tx) error {
		g, err := authorize(r.Context(), tx, id, tok, true)
		if err != nil {
			return err
		}
		if g.sealed == nil {
			s.log.WarnContext(r.Context(), "build secrets claimed twice: a lost answer, or someone who read the task's RunTask request raced it; the attempt fails and is retried with new tokens",
				"deployment", id, "remote", r.RemoteAddr)
			return &httpError{http.StatusGone, "this build's secrets were already claimed"}
		}
		if plain, err = open(tok, g.sealed); err != nil {
			return err
		}
		_, err = tx.Exec(r.Context(), `UPDATE build_tokens SET sealed = NULL, claimed_at = now() WHERE deployment_id = $1`, id)
		return dbErr("mark build secrets claimed", err)
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(plain)
}

// events stores one batch of events: log and progress lines go to deployment_logs in order, and the outcome
// to the grant.
func (s *Service) events(w http.ResponseWriter, r *http.Request) {
	id, tok := r.PathValue("id"), bearer(r)
	batch := 0
	if h := r.Header.Get(buildcontract.BatchHeader); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n < 1 {
			s.fail(w, r, &httpError{http.StatusBadRequest, buildcontract.BatchHeader + " must be a positive number"})
			return
		}
		batch = n
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxB))
	if err != nil {
		s.fail(w, r, &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("an events batch is at most %d bytes", s.maxB)})
		return
	}
	evs, err := parseEvents(body)
	if err != nil {
		s.fail(w, r, &httpError{http.StatusBadRequest, err.Error()})
		return
	}
	var lines []store.LogLine
	var result *buildcontract.Event
	var failure *buildcontract.Event
	for i := range evs {
		e := &evs[i]
		switch e.Type {
		case buildcontract.EventLog, buildcontract.EventProgress:
			lines = append(lines, logLine(e))
		case buildcontract.EventResult:
			result = e
		case buildcontract.EventError:
			failure = e
		}
	}
	dup := false
	err = s.inTx(r.Context(), func(tx pgx.Tx) error {
		g, err := authorize(r.Context(), tx, id, tok, false)
		if err != nil {
			return err
		}
		if batch > 0 && batch <= g.lastBatch {
			dup = true // a retry of a batch that arrived: already stored
			return nil
		}
		if len(lines) > 0 {
			if _, err := store.New(tx).DeploymentLogAppend(r.Context(), store.DeploymentLogAppendParams{DeploymentID: id, Lines: lines}); err != nil {
				return err
			}
		}
		var res []byte
		code, msg := "", ""
		if result != nil {
			res = result.Result
		}
		if failure != nil {
			code, msg = failure.Code, failure.Message
			if code == "" {
				code = ferry.EINTERNAL
			}
		}
		_, err = tx.Exec(r.Context(), `
			UPDATE build_tokens SET last_batch = greatest(last_batch, $2),
				result = coalesce($3::jsonb, result),
				error_code = CASE WHEN $4 = '' THEN error_code ELSE $4 END,
				error = CASE WHEN $4 = '' THEN error ELSE $5 END
			WHERE deployment_id = $1`, id, batch, res, code, msg)
		return dbErr("store build outcome", err)
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"stored": len(lines), "duplicate": dup})
}

// maxEventLine caps one JSON line; ferry build cuts log lines at 4 KiB, and a result is a few KiB.
const maxEventLine = 1 << 20

// parseEvents reads JSON lines; blank lines are skipped, anything else must be an event of a known type.
func parseEvents(body []byte) ([]buildcontract.Event, error) {
	var evs []buildcontract.Event
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), maxEventLine)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e buildcontract.Event
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("line %d: not a JSON event: %v", n, err)
		}
		switch e.Type {
		case buildcontract.EventLog, buildcontract.EventProgress, buildcontract.EventError:
		case buildcontract.EventResult:
			if len(e.Result) == 0 || e.Result[0] != '{' {
				return nil, fmt.Errorf("line %d: a result event needs a result object", n)
			}
		default:
			return nil, fmt.Errorf("line %d: unknown event type %q (want log, progress, result or error)", n, e.Type)
		}
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read events: %v", err)
	}
	return evs, nil
}

// logLine renders an event as the dashboard shows local builds' lines (app/jobs' logBatcher): the level in
// front of anything but INFO.
func logLine(e *buildcontract.Event) store.LogLine {
	line := e.Message
	if e.Type == buildcontract.EventProgress {
		line = "» " + line
	} else if e.Level != "" && e.Level != "INFO" {
		line = e.Level + ": " + line
	}
	return store.LogLine{Time: e.Time, Step: e.Step, Line: strings.ToValidUTF8(line, "\uFFFD")}
}

func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	status, msg := http.StatusInternalServerError, "internal error"
	switch {
	case errors.As(err, &he):
		status, msg = he.status, he.msg
	default:
		status, msg = ferry.HTTPStatus(err), ferry.ErrorMessage(err)
		if status >= 500 {
			// Details (database hosts) are for the operator; the task only needs to know to retry.
			s.log.ErrorContext(r.Context(), "build events", "deployment", r.PathValue("id"), "path", r.URL.Path, "err", err)
			msg = "temporarily unavailable; retry"
		}
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ferry builds"`)
	}
	http.Error(w, msg, status)
}

func (s *Service) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return dbErr("begin transaction", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := fn(tx); err != nil {
		return err
	}
	return dbErr("commit", tx.Commit(ctx))
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// token makes a 256-bit random token with a prefix that says what it is (and lets secret scanners find it).
func (s *Service) token(prefix string) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(s.random, b); err != nil {
		return "", ferry.Errorf(ferry.EINTERNAL, "make a build token: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

func hash(tok string) []byte {
	h := sha256.Sum256([]byte("ferry build token\x00" + tok))
	return h[:]
}

// sealKey derives the secrets' key from the claim token; it is separate from the stored hash by its label.
func sealKey(claim string) []byte {
	k := sha256.Sum256([]byte("ferry build secrets\x00" + claim))
	return k[:]
}

func (s *Service) seal(claim string, plain []byte) ([]byte, error) {
	gcm, err := newGCM(claim)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := io.ReadFull(s.random, nonce); err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "seal build secrets: %w", err)
	}
	return gcm.Seal(nonce, nonce, plain, nil), nil
}

func open(claim string, sealed []byte) ([]byte, error) {
	gcm, err := newGCM(claim)
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize() {
		return nil, ferry.Errorf(ferry.EINTERNAL, "open build secrets: too short")
	}
	plain, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], nil)
	if err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "open build secrets: %w", err)
	}
	return plain, nil
}

func newGCM(claim string) (cipher.AEAD, error) {
	block, err := aes.NewCipher(sealKey(claim))
	if err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "build secrets cipher: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "build secrets cipher: %w", err)
	}
	return gcm, nil
}

// dbErr wraps a database error as EUNAVAILABLE (nil stays nil): the task retries, and so does the builder.
func dbErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if ferry.ErrorCode(err) != ferry.EINTERNAL {
		return err // already a ferry error with a code of its own
	}
	return ferry.Errorf(ferry.EUNAVAILABLE, "%s: %w", what, err)
}
