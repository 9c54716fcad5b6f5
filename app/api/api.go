// Package api is Ferry's REST API, JSON under /api/v1. Every handler is a thin shell around app/projects (the
// one service layer the dashboard calls too): it decodes the request, calls one Service method with the caller
// from auth.UserFrom, and encodes the result. Errors have one shape, {"error":{"code":...,"message":...}},
// with the status from ferry.HTTPStatus. docs/api.md documents every endpoint.
package api

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/ferryhq/ferry/app/auth"
	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/internal/ferry"
)

// MaxBodyBytes bounds a request body; every field the API takes is far smaller (an env var value is at most
// 64 KiB).
const MaxBodyBytes = 256 << 10

// Config is what the API runs on.
type Config struct {
	// Service does the work. Required.
	Service *projects.Service
	// Logger records internal errors (users see "internal error"). Default slog.Default().
	Logger *slog.Logger
}

// API serves /api/v1. Mount it behind auth.Middleware, which puts the caller into the request context.
type API struct {
	svc *projects.Service
	log *slog.Logger
}

// New returns the API.
func New(cfg Config) (*API, error) {
	if cfg.Service == nil {
		return nil, ferry.Errorf(ferry.EINVALID, "api: a projects service is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &API{svc: cfg.Service, log: cfg.Logger}, nil
}

// Routes registers every endpoint on mux.
func (a *API) Routes(mux *http.ServeMux) {
	h := func(pattern string, fn func(r *http.Request, userID int64) (int, any, error)) {
		mux.Handle(pattern, a.handle(fn))
	}
	h("GET /api/v1/user", a.user)
	h("GET /api/v1/projects", a.projectList)
	h("POST /api/v1/projects", a.projectCreate)
	h("GET /api/v1/projects/{project}", a.projectGet)
	h("PATCH /api/v1/projects/{project}", a.projectUpdate)
	h("DELETE /api/v1/projects/{project}", a.projectDelete)
	h("GET /api/v1/projects/{project}/aliases", a.aliasList)
	h("GET /api/v1/projects/{project}/retention", a.retentionGet)
	h("GET /api/v1/projects/{project}/env", a.envList)
	h("PUT /api/v1/projects/{project}/env/{environment}/{key}", a.envSet)
	h("DELETE /api/v1/projects/{project}/env/{environment}/{key}", a.envDelete)
	h("GET /api/v1/projects/{project}/protection", a.protectionGet)
	h("PATCH /api/v1/projects/{project}/protection", a.protectionSet)
	h("POST /api/v1/projects/{project}/share-links", a.shareLinkCreate)
	h("GET /api/v1/projects/{project}/deployments", a.deploymentList)
	h("POST /api/v1/projects/{project}/deployments", a.deployNow)
	h("GET /api/v1/deployments/{id}", a.deploymentGet)
	h("GET /api/v1/deployments/{id}/logs", a.deploymentLogs)
	h("POST /api/v1/deployments/{id}/redeploy", a.redeploy)
	h("POST /api/v1/deployments/{id}/cancel", a.cancel)
	h("POST /api/v1/deployments/{id}/promote", a.promote)
	h("POST /api/v1/deployments/{id}/rollback", a.rollback)
	a.domainRoutes(h)
	h("/api/", func(r *http.Request, _ int64) (int, any, error) {
		return 0, nil, ferry.Errorf(ferry.ENOTFOUND, "no API endpoint %s %s; see docs/api.md", r.Method, r.URL.Path)
	})
}

// errorBody is the one error shape.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// handle runs fn for a signed-in caller and writes its result or error as JSON.
func (a *API) handle(fn func(r *http.Request, userID int64) (int, any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var userID int64
		if u := auth.UserFrom(r.Context()); u != nil {
			userID = u.ID
		}
		status, body, err := 0, any(nil), error(nil)
		if userID == 0 {
			err = ferry.Errorf(ferry.EUNAUTHORIZED, "sign in, or send an API token as Authorization: Bearer <token> (create one on the account's API tokens page)")
		} else {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
			status, body, err = fn(r, userID)
		}
		w.Header().Set("Cache-Control", "no-store")
		if err != nil {
			writeError(w, r, a.log, err)
			return
		}
		if status == http.StatusNoContent {
			w.WriteHeader(status)
			return
		}
		writeJSON(w, status, body)
	})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(body) // the client went away; nothing to do
}

// writeError writes err in the one error shape. Internal errors are logged here and shown generically.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status := ferry.HTTPStatus(err)
	if status >= 500 {
		log.ErrorContext(r.Context(), "API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	var body errorBody
	body.Error.Code = ferry.ErrorCode(err)
	body.Error.Message = ferry.ErrorMessage(err)
	writeJSON(w, status, body)
}

// decode reads a JSON body into v, refusing unknown fields and trailing data with messages that say what to fix.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return ferry.Errorf(ferry.EINVALID, "send the body as JSON with Content-Type: application/json (got %q)", ct)
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooLarge *http.MaxBytesError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		if dec.More() {
			return ferry.Errorf(ferry.EINVALID, "the body holds more than one JSON value")
		}
		return nil
	case errors.As(err, &tooLarge):
		return ferry.Errorf(ferry.ETOOLARGE, "the body is larger than %d bytes", MaxBodyBytes)
	case errors.Is(err, io.EOF):
		return ferry.Errorf(ferry.EINVALID, "the body is empty; send a JSON object")
	case errors.As(err, &syntaxErr):
		return ferry.Errorf(ferry.EINVALID, "the body is not valid JSON (at byte %d)", syntaxErr.Offset)
	case errors.As(err, &typeErr):
		return ferry.Errorf(ferry.EINVALID, "field %q must be a %s", typeErr.Field, typeErr.Type.String())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return ferry.Errorf(ferry.EINVALID, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return ferry.Errorf(ferry.EINVALID, "the body is not valid JSON: %v", err)
}

// decodeOptional is decode for endpoints whose body may be left out.
func decodeOptional(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	return decode(r, v)
}

func queryInt(r *http.Request, name string) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, ferry.Errorf(ferry.EINVALID, "query parameter %s=%q must be a whole number of 0 or more", name, s)
	}
	return n, nil
}

type userBody struct {
	ID          int64  `json:"id"`
	Email       string `json:"email,omitempty"`
	Name        string `json:"name,omitempty"`
	GitHubLogin string `json:"githubLogin,omitempty"`
}

func (a *API) user(r *http.Request, _ int64) (int, any, error) {
	u := auth.UserFrom(r.Context())
	return http.StatusOK, userBody{ID: u.ID, Email: u.Email, Name: u.Name, GitHubLogin: u.GitHubLogin}, nil
}

func (a *API) projectList(r *http.Request, userID int64) (int, any, error) {
	ps, err := a.svc.ProjectList(r.Context(), userID)
	return http.StatusOK, map[string]any{"projects": ps}, err
}

func (a *API) projectCreate(r *http.Request, userID int64) (int, any, error) {
	var p projects.ProjectCreateParams
	if err := decode(r, &p); err != nil {
		return 0, nil, err
	}
	proj, err := a.svc.ProjectCreate(r.Context(), userID, p)
	return http.StatusCreated, proj, err
}

func (a *API) projectGet(r *http.Request, userID int64) (int, any, error) {
	p, err := a.svc.ProjectGet(r.Context(), userID, r.PathValue("project"))
	return http.StatusOK, p, err
}

func (a *API) retentionGet(r *http.Request, userID int64) (int, any, error) {
	v, err := a.svc.RetentionGet(r.Context(), userID, r.PathValue("project"))
	return http.StatusOK, v, err
}

func (a *API) projectUpdate(r *http.Request, userID int64) (int, any, error) {
	var p projects.ProjectUpdateParams
	if err := decode(r, &p); err != nil {
		return 0, nil, err
	}
	proj, err := a.svc.ProjectUpdateSettings(r.Context(), userID, r.PathValue("project"), p)
	return http.StatusOK, proj, err
}

func (a *API) projectDelete(r *http.Request, userID int64) (int, any, error) {
	q := r.URL.Query()
	params := projects.ProjectDeleteParams{Confirm: q.Get("confirm")}
	switch v := q.Get("purge_storage"); v {
	case "", "false":
	case "true":
		params.PurgeStorage = true
	default:
		return 0, nil, ferry.Errorf(ferry.EINVALID, "purge_storage must be true or false, not %q", v)
	}
	p, err := a.svc.ProjectDelete(r.Context(), userID, r.PathValue("project"), params)
	return http.StatusAccepted, p, err
}

func (a *API) aliasList(r *http.Request, userID int64) (int, any, error) {
	as, err := a.svc.ProjectAliases(r.Context(), userID, r.PathValue("project"))
	return http.StatusOK, map[string]any{"aliases": as}, err
}

func (a *API) protectionGet(r *http.Request, userID int64) (int, any, error) {
	p, err := a.svc.ProtectionGet(r.Context(), userID, r.PathValue("project"))
	return http.StatusOK, p, err
}

func (a *API) protectionSet(r *http.Request, userID int64) (int, any, error) {
	var body projects.ProtectionSetParams
	if err := decode(r, &body); err != nil {
		return 0, nil, err
	}
	p, err := a.svc.ProtectionSet(r.Context(), userID, r.PathValue("project"), body)
	return http.StatusOK, p, err
}

func (a *API) shareLinkCreate(r *http.Request, userID int64) (int, any, error) {
	var body projects.ShareLinkParams
	if err := decode(r, &body); err != nil {
		return 0, nil, err
	}
	l, err := a.svc.ShareLinkCreate(r.Context(), userID, r.PathValue("project"), body)
	return http.StatusCreated, l, err
}

func (a *API) envList(r *http.Request, userID int64) (int, any, error) {
	vs, err := a.svc.EnvList(r.Context(), userID, r.PathValue("project"))
	return http.StatusOK, map[string]any{"env": vs}, err
}

func (a *API) envSet(r *http.Request, userID int64) (int, any, error) {
	var body struct {
		Value *string `json:"value"`
	}
	if err := decode(r, &body); err != nil {
		return 0, nil, err
	}
	if body.Value == nil {
		return 0, nil, ferry.Errorf(ferry.EINVALID, `send the value as {"value": "..."}`)
	}
	v, err := a.svc.EnvSet(r.Context(), userID, r.PathValue("project"), projects.EnvSetParams{
		Environment: r.PathValue("environment"), Key: r.PathValue("key"), Value: *body.Value})
	return http.StatusOK, v, err
}

func (a *API) envDelete(r *http.Request, userID int64) (int, any, error) {
	err := a.svc.EnvDelete(r.Context(), userID, r.PathValue("project"), r.PathValue("environment"), r.PathValue("key"))
	return http.StatusNoContent, nil, err
}

func (a *API) deploymentList(r *http.Request, userID int64) (int, any, error) {
	q := r.URL.Query()
	pr, err := queryInt(r, "pr")
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return 0, nil, err
	}
	p := projects.DeploymentListParams{Project: r.PathValue("project"), Branch: q.Get("branch"), PR: int(pr),
		Limit: int(min(limit, 1<<20)), Cursor: q.Get("cursor")}
	for _, s := range q["status"] {
		for _, one := range strings.Split(s, ",") {
			if one = strings.TrimSpace(one); one != "" {
				p.Status = append(p.Status, one)
			}
		}
	}
	res, err := a.svc.DeploymentList(r.Context(), userID, p)
	return http.StatusOK, res, err
}

func (a *API) deployNow(r *http.Request, userID int64) (int, any, error) {
	var p projects.DeployParams
	if err := decodeOptional(r, &p); err != nil {
		return 0, nil, err
	}
	d, err := a.svc.DeployNow(r.Context(), userID, r.PathValue("project"), p)
	return http.StatusCreated, d, err
}

func (a *API) deploymentGet(r *http.Request, userID int64) (int, any, error) {
	d, err := a.svc.DeploymentGet(r.Context(), userID, r.PathValue("id"))
	return http.StatusOK, d, err
}

// logsBody is a page of log lines; Next is the "after" that continues it (the last seq, or the one given).
type logsBody struct {
	Lines []projects.LogLine `json:"lines"`
	Next  int64              `json:"next"`
}

func (a *API) deploymentLogs(r *http.Request, userID int64) (int, any, error) {
	after, err := queryInt(r, "after")
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return 0, nil, err
	}
	if limit > 10000 {
		return 0, nil, ferry.Errorf(ferry.EINVALID, "limit %d is out of range: ask for at most 10000 lines", limit)
	}
	lines, err := a.svc.DeploymentLogs(r.Context(), userID, r.PathValue("id"), after, int(limit))
	if err != nil {
		return 0, nil, err
	}
	next := after
	if len(lines) > 0 {
		next = lines[len(lines)-1].Seq
	}
	return http.StatusOK, logsBody{Lines: lines, Next: next}, nil
}

func (a *API) redeploy(r *http.Request, userID int64) (int, any, error) {
	d, err := a.svc.Redeploy(r.Context(), userID, r.PathValue("id"))
	return http.StatusCreated, d, err
}

func (a *API) cancel(r *http.Request, userID int64) (int, any, error) {
	d, err := a.svc.Cancel(r.Context(), userID, r.PathValue("id"))
	return http.StatusOK, d, err
}

func (a *API) promote(r *http.Request, userID int64) (int, any, error) {
	d, err := a.svc.Promote(r.Context(), userID, r.PathValue("id"))
	return http.StatusOK, d, err
}

func (a *API) rollback(r *http.Request, userID int64) (int, any, error) {
	d, err := a.svc.Rollback(r.Context(), userID, r.PathValue("id"))
	return http.StatusOK, d, err
}
