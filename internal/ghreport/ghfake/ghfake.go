// Package ghfake is a strict, recording stand-in for GitHub's REST API, served by httptest. It speaks the real
// wire protocol to the real clients (go-github with its BaseURL set, ghinstallation), checks the App JWT and the
// tokens on every call, and records every call so that tests assert what Ferry told GitHub
// (docs/architecture.md, "Testing").
//
// Auth rules, as on GitHub: paths under /app need the App JWT (RS256, signed with PrivateKeyPEM, iss = AppID);
// paths under /login/ and /app-manifests/ and the manifest form's pages (POST /settings/apps/new) need nothing; every other path needs an installation token issued by this server or a token
// added with AddToken, and /repos/{owner}/{repo}/... answers 404 when that token cannot see the repository.
//
// Routes the fake does not know fail the test. Add more with Handle (GET /user/installations, OAuth, check runs).
package ghfake

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// AuthKind says how a call authenticated.
type AuthKind string

// How calls authenticate.
const (
	AuthNone         AuthKind = "none"
	AuthJWT          AuthKind = "jwt"          // the App's JWT
	AuthInstallation AuthKind = "installation" // an installation token this server issued
	AuthToken        AuthKind = "token"        // a token added with AddToken (the Action's GITHUB_TOKEN)
	AuthInvalid      AuthKind = "invalid"      // credentials were sent but rejected
)

// Call is one recorded request.
type Call struct {
	Method string
	// Path is the URL path without the query.
	Path  string
	Query map[string][]string
	// Body is the decoded JSON body (map[string]any, []any, ...), nil when there was none.
	Body any
	Auth AuthKind
	// Installation is the installation id behind an installation token or the JWT's target, else 0.
	Installation int64
	// Status is the HTTP status the fake answered.
	Status int
}

// String renders "METHOD /path", the form CallsMatching patterns and Lines use.
func (c Call) String() string { return c.Method + " " + c.Path }

// Lines renders calls as "METHOD /path" lines, for comparing sequences.
func Lines(calls []Call) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.String()
	}
	return out
}

// Field reads a top-level field of the call's JSON body, or nil.
func (c Call) Field(name string) any {
	m, _ := c.Body.(map[string]any)
	return m[name]
}

// User is the wire form of a GitHub account.
type User struct {
	Login string `json:"login"`
	ID    int64  `json:"id"`
	Type  string `json:"type"` // "Bot" or "User"
}

// Deployment is the wire form of a GitHub deployment.
type Deployment struct {
	ID                    int64           `json:"id"`
	NodeID                string          `json:"node_id"`
	URL                   string          `json:"url"`
	SHA                   string          `json:"sha"`
	Ref                   string          `json:"ref"`
	Task                  string          `json:"task"`
	Payload               json.RawMessage `json:"payload"`
	Environment           string          `json:"environment"`
	OriginalEnvironment   string          `json:"original_environment"`
	Description           string          `json:"description"`
	Creator               User            `json:"creator"`
	CreatedAt             time.Time       `json:"created_at"`
	UpdatedAt             time.Time       `json:"updated_at"`
	StatusesURL           string          `json:"statuses_url"`
	RepositoryURL         string          `json:"repository_url"`
	TransientEnvironment  bool            `json:"transient_environment"`
	ProductionEnvironment bool            `json:"production_environment"`

	Owner string `json:"-"`
	Repo  string `json:"-"`
}

// DeploymentStatus is the wire form of a deployment status.
type DeploymentStatus struct {
	ID             int64     `json:"id"`
	NodeID         string    `json:"node_id"`
	URL            string    `json:"url"`
	State          string    `json:"state"`
	Creator        User      `json:"creator"`
	Description    string    `json:"description"`
	Environment    string    `json:"environment"`
	EnvironmentURL string    `json:"environment_url"`
	LogURL         string    `json:"log_url"`
	TargetURL      string    `json:"target_url"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	DeploymentURL  string    `json:"deployment_url"`
	RepositoryURL  string    `json:"repository_url"`

	// Auto is true for the inactive statuses GitHub adds itself (auto_inactive), which no call created.
	Auto bool `json:"-"`
}

// Comment is the wire form of an issue (PR) comment.
type Comment struct {
	ID        int64     `json:"id"`
	NodeID    string    `json:"node_id"`
	URL       string    `json:"url"`
	HTMLURL   string    `json:"html_url"`
	IssueURL  string    `json:"issue_url"`
	Body      string    `json:"body"`
	User      User      `json:"user"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	Owner string `json:"-"`
	Repo  string `json:"-"`
	Issue int    `json:"-"`
	// Edits counts PATCHes of this comment.
	Edits int `json:"-"`
}

// CommitStatus is the wire form of a commit status.
type CommitStatus struct {
	ID          int64     `json:"id"`
	NodeID      string    `json:"node_id"`
	URL         string    `json:"url"`
	State       string    `json:"state"`
	Context     string    `json:"context"`
	TargetURL   string    `json:"target_url"`
	Description string    `json:"description"`
	Creator     User      `json:"creator"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`

	Owner string `json:"-"`
	Repo  string `json:"-"`
	SHA   string `json:"-"`
}

// Fault is a canned failure answer.
type Fault struct {
	Status int
	Header http.Header
	Body   string
}

// ServerError is GitHub's 500.
func ServerError() Fault {
	return Fault{Status: http.StatusInternalServerError, Body: `{"message":"Server Error"}`}
}

// BadGateway is the 502 GitHub's front end answers when a backend is down.
func BadGateway() Fault {
	return Fault{Status: http.StatusBadGateway, Body: `{"message":"Server Error"}`}
}

// RateLimited is the primary rate limit: 403 with X-RateLimit-Remaining 0 until reset.
func RateLimited(reset time.Time) Fault {
	h := http.Header{}
	h.Set("X-RateLimit-Limit", "5000")
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Used", "5000")
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	h.Set("X-RateLimit-Resource", "core")
	return Fault{Status: http.StatusForbidden, Header: h,
		Body: `{"message":"API rate limit exceeded for installation.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-the-primary-rate-limit"}`}
}

// SecondaryRateLimited is the secondary (abuse) rate limit: 403 with Retry-After.
func SecondaryRateLimited(retryAfter time.Duration) Fault {
	h := http.Header{}
	h.Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
	return Fault{Status: http.StatusForbidden, Header: h,
		Body: `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`}
}

// Forbidden is the 403 of a missing permission.
func Forbidden() Fault {
	return Fault{Status: http.StatusForbidden,
		Body: `{"message":"Resource not accessible by integration","documentation_url":"https://docs.github.com/rest"}`}
}

type fault struct {
	pattern string
	left    int
	f       Fault
}

type tokenInfo struct {
	kind         AuthKind
	installation int64
	user         User
	repos        map[string]bool // nil: every repository
	expires      time.Time
	noChecks     bool // DenyChecks: the token lacks checks: write
}

// Server is the fake. Create it with New; it closes itself at the test's end.
type Server struct {
	// URL is the API root to give the clients (go-github's BaseURL, ghinstallation's BaseURL).
	URL string
	// AppID and PrivateKeyPEM are the App's credentials the client side signs JWTs with.
	AppID         int64
	PrivateKeyPEM []byte
	// AppSlug names the App's bot account: "<slug>[bot]". Default "ferry-test".
	AppSlug string

	t   testing.TB
	srv *httptest.Server
	key *rsa.PrivateKey
	mux *http.ServeMux

	callMu sync.Mutex // guards calls and from; handlers answer while holding mu, so calls need their own lock
	calls  []Call
	from   int // Reset hides calls before this index; in-flight calls keep their slots

	mu             sync.Mutex
	now            func() time.Time
	installations  map[int64]map[string]bool
	tokens         map[string]*tokenInfo
	repos          map[string]int64  // "owner/repo" -> id
	defaultBranch  map[string]string // "owner/repo" -> its default branch; "main" when unset
	nextID         int64
	deployments    []*Deployment
	statuses       map[int64][]*DeploymentStatus
	comments       []*Comment
	commitStatuses []*CommitStatus
	refs           map[string]string // "owner/repo refs/heads/branch" -> commit SHA
	admin          map[int64]bool    // installations with the administration permission (retention.go)
	envDeleted     map[string]bool   // "owner/repo/env" deleted (retention.go)
	envKnown       map[string]bool   // "owner/repo/env" whose deployments were deleted: the environment stays
	checkRuns      []*CheckRun
	compares       map[string][]string // "owner/repo/base...head" -> changed files
	pulls          map[string]*pull    // "owner/repo#n" (pulls.go)
	faults         []*fault

	hooks     hooks     // the App's webhook: its URL, secret and delivery attempts (deliveries.go)
	manifests manifests // one-time App manifest codes (manifest.go)
}

// extraRoutes are routes that other files of the package add.
var extraRoutes []func(*Server)

// testKey is generated once per test binary: RSA key generation is slow, and every Server may share it.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// New starts a fake with App id 1 and no installations; add them with AddInstallation or AddToken.
func New(t testing.TB) *Server {
	key := testKey()
	s := &Server{
		AppID:         1,
		PrivateKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		AppSlug:       "ferry-test",
		t:             t,
		key:           key,
		mux:           http.NewServeMux(),
		now:           time.Now,
		installations: map[int64]map[string]bool{},
		tokens:        map[string]*tokenInfo{},
		repos:         map[string]int64{},
		defaultBranch: map[string]string{},
		nextID:        1000,
		statuses:      map[int64][]*DeploymentStatus{},
		refs:          map[string]string{},
	}
	s.routes()
	for _, add := range extraRoutes {
		add(s)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// SetRef points a branch of a repository at a commit, as a push does; GET .../git/ref/heads/<branch> then
// answers it. An empty sha deletes the branch.
func (s *Server) SetRef(owner, repo, branch, sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := owner + "/" + repo + " refs/heads/" + branch
	if sha == "" {
		delete(s.refs, key)
		return
	}
	s.refs[key] = sha
}

// Close stops the server early; New already arranges it at cleanup.
func (s *Server) Close() { s.srv.Close() }

// Handle adds a route (a net/http ServeMux pattern such as "GET /user/installations"). The auth rules of the
// package doc apply before h runs; AuthOf tells h who called.
func (s *Server) Handle(pattern string, h http.HandlerFunc) { s.mux.HandleFunc(pattern, h) }

type authKey struct{}

// AuthOf returns who made r, inside a Handle handler.
func AuthOf(r *http.Request) (AuthKind, User) {
	ti, _ := r.Context().Value(authKey{}).(*tokenInfo)
	if ti == nil {
		return AuthNone, User{}
	}
	return ti.kind, ti.user
}

// AddInstallation installs the App on repos ("owner/repo"); its tokens see only those.
func (s *Server) AddInstallation(id int64, repos ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.installations[id]
	if m == nil {
		m = map[string]bool{}
		s.installations[id] = m
	}
	for _, r := range repos {
		m[r] = true
		s.addRepoLocked(r)
	}
}

// AddToken accepts token (as `Authorization: token X` or `Bearer X`) for repos, acting as github-actions[bot],
// the account behind an Action's GITHUB_TOKEN.
func (s *Server) AddToken(token string, repos ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]bool{}
	for _, r := range repos {
		m[r] = true
		s.addRepoLocked(r)
	}
	s.tokens[token] = &tokenInfo{kind: AuthToken, repos: m,
		user: User{Login: "github-actions[bot]", ID: 41898282, Type: "Bot"}}
}

// SetDefaultBranch sets what GET /repos/{owner}/{repo} names as the repository's default branch.
func (s *Server) SetDefaultBranch(fullName, branch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.defaultBranch[fullName] = branch
}

// RevokeTokens forgets every installation token issued so far, as if they expired: the next repo call gets 401.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, ti := range s.tokens {
		if ti.kind == AuthInstallation {
			delete(s.tokens, k)
		}
	}
}

func (s *Server) addRepoLocked(full string) {
	if _, ok := s.repos[full]; !ok {
		s.nextID++
		s.repos[full] = s.nextID
	}
}

// AddComment seeds a comment by a person (or, with login ending in "[bot]", another bot).
func (s *Server) AddComment(owner, repo string, issue int, login, body string) Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	typ := "User"
	if strings.HasSuffix(login, "[bot]") {
		typ = "Bot"
	}
	c := s.newCommentLocked(owner, repo, issue, User{Login: login, ID: int64(len(login)) + 5000, Type: typ}, body)
	return *c
}

// FailNext makes the next n calls whose "METHOD /path" matches pattern (path.Match syntax: "*" is one segment)
// answer with f instead of being served. Auth is checked first.
func (s *Server) FailNext(pattern string, n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{pattern: pattern, left: n, f: f})
}

// Calls returns every call so far, in order.
func (s *Server) Calls() []Call {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	return append([]Call(nil), s.calls[s.from:]...)
}

// CallsMatching returns the calls whose "METHOD /path" matches any of patterns (path.Match syntax, so
// "POST /repos/o/r/deployments/*/statuses" matches every status post and "* /repos/o/r/*" any call one level
// below the repo).
func (s *Server) CallsMatching(patterns ...string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		for _, p := range patterns {
			if ok, _ := path.Match(p, c.String()); ok {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// Reset forgets the recorded calls (not the state), so that a test can assert one phase at a time.
func (s *Server) Reset() {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	s.from = len(s.calls)
}

// Deployments returns the repository's deployments, oldest first.
func (s *Server) Deployments(owner, repo string) []Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Deployment
	for _, d := range s.deployments {
		if d.Owner == owner && d.Repo == repo {
			out = append(out, *d)
		}
	}
	return out
}

// DeploymentStatuses returns a deployment's statuses, oldest first.
func (s *Server) DeploymentStatuses(id int64) []DeploymentStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []DeploymentStatus
	for _, st := range s.statuses[id] {
		out = append(out, *st)
	}
	return out
}

// Comments returns the comments on an issue or PR, oldest first.
func (s *Server) Comments(owner, repo string, issue int) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Comment
	for _, c := range s.comments {
		if c.Owner == owner && c.Repo == repo && c.Issue == issue {
			out = append(out, *c)
		}
	}
	return out
}

// CommitStatuses returns the statuses set on a commit, oldest first.
func (s *Server) CommitStatuses(owner, repo, sha string) []CommitStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []CommitStatus
	for _, c := range s.commitStatuses {
		if c.Owner == owner && c.Repo == repo && c.SHA == sha {
			out = append(out, *c)
		}
	}
	return out
}

// statusWriter fills in the call's status before the answer leaves, so that a client that has its answer
// always finds its call recorded, in order.
type statusWriter struct {
	http.ResponseWriter
	s     *Server
	index int
	done  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.done {
		w.done = true
		w.s.callMu.Lock()
		w.s.calls[w.index].Status = code
		w.s.callMu.Unlock()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// serve authenticates, records, injects faults and dispatches.
func (s *Server) serve(rw http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(raw))
	call := Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Auth: AuthNone}
	var badJSON bool
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/x-www-form-urlencoded" {
		// A browser's form post (the manifest form) or an OAuth token exchange: the body is the form's fields.
		if form, err := url.ParseQuery(string(raw)); err == nil {
			fields := map[string]any{}
			for k, v := range form {
				fields[k] = v[0]
			}
			call.Body = fields
		}
	} else {
		badJSON = len(bytes.TrimSpace(raw)) > 0 && json.Unmarshal(raw, &call.Body) != nil
	}
	ti, status, msg := s.authenticate(r)
	if ti != nil {
		call.Auth, call.Installation = ti.kind, ti.installation
	}
	if status == http.StatusUnauthorized {
		call.Auth = AuthInvalid
	}
	s.callMu.Lock()
	s.calls = append(s.calls, call)
	w := &statusWriter{ResponseWriter: rw, s: s, index: len(s.calls) - 1}
	s.callMu.Unlock()
	s.setRateHeaders(w.Header())

	if badJSON {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Problems parsing JSON"})
		return
	}
	if status != 0 {
		writeJSON(w, status, map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
		return
	}
	if f := s.takeFault(call.String()); f != nil {
		for k, v := range f.Header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(f.Status)
		io.WriteString(w, f.Body)
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.t.Errorf("ghfake: unexpected call %s (no such route in the fake; add one with Handle)", call)
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
		return
	}
	if ti != nil {
		r = r.WithContext(contextWith(r, ti))
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) setRateHeaders(h http.Header) {
	h.Set("X-RateLimit-Limit", "5000")
	h.Set("X-RateLimit-Remaining", "4999")
	h.Set("X-RateLimit-Used", "1")
	h.Set("X-RateLimit-Reset", strconv.FormatInt(s.now().Add(time.Hour).Unix(), 10))
	h.Set("X-RateLimit-Resource", "core")
	h.Set("X-GitHub-Media-Type", "github.v3; format=json")
}

func (s *Server) takeFault(line string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		if ok, _ := path.Match(f.pattern, line); ok && f.left > 0 {
			f.left--
			return &f.f
		}
	}
	return nil
}

// authenticate applies the package's auth rules. It returns the caller, or a status and message to refuse with.
func (s *Server) authenticate(r *http.Request) (*tokenInfo, int, string) {
	p := r.URL.Path
	if strings.HasPrefix(p, "/login/") || strings.HasPrefix(p, "/app-manifests/") || isWebPage(p) {
		return nil, 0, ""
	}
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	scheme = strings.ToLower(scheme)
	if p == "/app" || strings.HasPrefix(p, "/app/") {
		if scheme != "bearer" || cred == "" {
			return nil, http.StatusUnauthorized, "A JSON web token could not be decoded"
		}
		if err := s.verifyJWT(cred); err != nil {
			return nil, http.StatusUnauthorized, "A JSON web token could not be decoded: " + err.Error()
		}
		return &tokenInfo{kind: AuthJWT, user: User{Login: s.AppSlug, Type: "Bot"}}, 0, ""
	}
	if (scheme != "token" && scheme != "bearer") || cred == "" {
		return nil, http.StatusUnauthorized, "Requires authentication"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ti := s.tokens[cred]
	if ti == nil || (!ti.expires.IsZero() && s.now().After(ti.expires)) {
		return nil, http.StatusUnauthorized, "Bad credentials"
	}
	if owner, repo, ok := repoOf(p); ok && ti.repos != nil && !ti.repos[owner+"/"+repo] {
		return ti, http.StatusNotFound, "Not Found"
	}
	return ti, 0, ""
}

// isWebPage reports whether p is one of GitHub's web pages that the fake serves (the manifest form's target),
// which a browser reaches with the operator's own GitHub session rather than API credentials.
func isWebPage(p string) bool {
	return p == "/settings/apps/new" || (strings.HasPrefix(p, "/organizations/") && strings.HasSuffix(p, "/settings/apps/new"))
}

func repoOf(p string) (owner, repo string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(parts) >= 3 && parts[0] == "repos" {
		return parts[1], parts[2], true
	}
	return "", "", false
}

// verifyJWT checks the App JWT the way GitHub does: RS256 signed by the App's key, iss = the App id, issued at
// most a minute in the future, unexpired, and valid for at most ten minutes.
func (s *Server) verifyJWT(tok string) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if hdr.Alg != "RS256" {
		return fmt.Errorf("alg %q, want RS256", hdr.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&s.appKey().PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return errors.New("signature does not match the App's public key")
	}
	var claims struct {
		Iss json.RawMessage `json:"iss"`
		Iat json.Number     `json:"iat"`
		Exp json.Number     `json:"exp"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	if iss := strings.Trim(string(claims.Iss), `"`); iss != strconv.FormatInt(s.AppID, 10) {
		return fmt.Errorf("iss %s is not the App id %d", claims.Iss, s.AppID)
	}
	iat, err1 := claims.Iat.Int64()
	exp, err2 := claims.Exp.Int64()
	if err1 != nil || err2 != nil {
		return errors.New("iat and exp must be integers")
	}
	now := s.now().Unix()
	switch {
	case iat > now+60:
		return errors.New("'Issued at' claim ('iat') must be an Integer representing a time in the past")
	case exp <= now:
		return errors.New("'Expiration time' claim ('exp') is too far in the past")
	case exp-iat > 600:
		return errors.New("'Expiration time' claim ('exp') is too far in the future")
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
