package api

import (
	"net/http"

	"github.com/ferryhq/ferry/app/projects"
)

// domainRoutes are the custom-domain endpoints (docs/api.md, "Custom domains").
func (a *API) domainRoutes(h func(pattern string, fn func(r *http.Request, userID int64) (int, any, error))) {
	h("GET /api/v1/projects/{project}/domains", a.domainList)
	h("POST /api/v1/projects/{project}/domains", a.domainAttach)
	h("GET /api/v1/projects/{project}/domains/{host}", a.domainGet)
	h("POST /api/v1/projects/{project}/domains/{host}/verify", a.domainVerify)
	h("DELETE /api/v1/projects/{project}/domains/{host}", a.domainDelete)
}

func (a *API) domainList(r *http.Request, userID int64) (int, any, error) {
	ds, err := a.svc.DomainList(r.Context(), userID, r.PathValue("project"))
	return http.StatusOK, map[string]any{"domains": ds}, err
}

func (a *API) domainAttach(r *http.Request, userID int64) (int, any, error) {
	var body projects.DomainAttachParams
	if err := decode(r, &body); err != nil {
		return 0, nil, err
	}
	d, err := a.svc.DomainAttach(r.Context(), userID, r.PathValue("project"), body)
	return http.StatusCreated, d, err
}

func (a *API) domainGet(r *http.Request, userID int64) (int, any, error) {
	d, err := a.svc.DomainGet(r.Context(), userID, r.PathValue("project"), r.PathValue("host"))
	return http.StatusOK, d, err
}

func (a *API) domainVerify(r *http.Request, userID int64) (int, any, error) {
	d, err := a.svc.DomainVerify(r.Context(), userID, r.PathValue("project"), r.PathValue("host"))
	return http.StatusOK, d, err
}

func (a *API) domainDelete(r *http.Request, userID int64) (int, any, error) {
	return http.StatusNoContent, nil, a.svc.DomainDelete(r.Context(), userID, r.PathValue("project"), r.PathValue("host"))
}
