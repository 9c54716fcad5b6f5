package ghfake

import (
	"net/http"
	"slices"
	"strings"
)

// The clean-up endpoints: deleting deployments and environments, as GitHub answers them.
//
//   - DELETE /repos/{o}/{r}/deployments/{id}: 204; 404 when it does not exist; 422 while it is active (its latest
//     status is not inactive) and it is not the only deployment of its environment: GitHub's rule.
//   - DELETE /repos/{o}/{r}/environments/{name}: 204; 404 when no deployment ever used the environment (or it was
//     deleted); 403 "Resource not accessible by integration" for an installation without the administration
//     permission (GrantAdministration). Deleting an environment deletes its deployments.

func init() { extraRoutes = append(extraRoutes, retentionRoutes) }

func retentionRoutes(s *Server) {
	s.mux.HandleFunc("DELETE /repos/{owner}/{repo}/deployments/{id}", s.deploymentDelete)
	s.mux.HandleFunc("DELETE /repos/{owner}/{repo}/environments/{name}", s.environmentDelete)
}

// GrantAdministration gives installation the administration permission (write), which deleting an
// environment needs.
func (s *Server) GrantAdministration(installation int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == nil {
		s.admin = map[int64]bool{}
	}
	s.admin[installation] = true
}

// Environments lists the environments of owner/repo that deployments created and nobody deleted.
func (s *Server) Environments(owner, repo string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, d := range s.deployments {
		if d.Owner == owner && d.Repo == repo && !slices.Contains(out, d.Environment) && !s.envDeleted[owner+"/"+repo+"/"+d.Environment] {
			out = append(out, d.Environment)
		}
	}
	for key := range s.envKnown {
		o, r, env := splitEnvKey(key)
		if o == owner && r == repo && !slices.Contains(out, env) && !s.envDeleted[key] {
			out = append(out, env)
		}
	}
	slices.Sort(out)
	return out
}

func (s *Server) deploymentDelete(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deploymentLocked(r)
	if d == nil {
		notFound(w)
		return
	}
	sts := s.statuses[d.ID]
	active := len(sts) == 0 || sts[len(sts)-1].State != "inactive"
	others := 0
	for _, o := range s.deployments {
		if o.ID != d.ID && o.Owner == d.Owner && o.Repo == d.Repo && o.Environment == d.Environment {
			others++
		}
	}
	if active && others > 0 {
		invalid(w, "We cannot delete an active deployment unless it is the only deployment in a given environment.")
		return
	}
	// The environment outlives its deployments, as on GitHub.
	if s.envKnown == nil {
		s.envKnown = map[string]bool{}
	}
	s.envKnown[d.Owner+"/"+d.Repo+"/"+d.Environment] = true
	s.deployments = slices.DeleteFunc(s.deployments, func(o *Deployment) bool { return o.ID == d.ID })
	delete(s.statuses, d.ID)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) environmentDelete(w http.ResponseWriter, r *http.Request) {
	owner, repo, name := r.PathValue("owner"), r.PathValue("repo"), r.PathValue("name")
	ti, _ := r.Context().Value(authKey{}).(*tokenInfo)
	s.mu.Lock()
	defer s.mu.Unlock()
	if ti == nil || ti.kind != AuthInstallation || !s.admin[ti.installation] {
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "Resource not accessible by integration",
			"documentation_url": "https://docs.github.com/rest/deployments/environments#delete-an-environment"})
		return
	}
	key := owner + "/" + repo + "/" + name
	found := s.envKnown[key]
	for _, d := range s.deployments {
		found = found || (d.Owner == owner && d.Repo == repo && d.Environment == name)
	}
	if !found || s.envDeleted[key] {
		notFound(w)
		return
	}
	if s.envDeleted == nil {
		s.envDeleted = map[string]bool{}
	}
	s.envDeleted[key] = true
	s.deployments = slices.DeleteFunc(s.deployments, func(o *Deployment) bool {
		return o.Owner == owner && o.Repo == repo && o.Environment == name
	})
	w.WriteHeader(http.StatusNoContent)
}

func splitEnvKey(key string) (owner, repo, env string) {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) != 3 {
		return "", "", ""
	}
	return parts[0], parts[1], parts[2]
}
