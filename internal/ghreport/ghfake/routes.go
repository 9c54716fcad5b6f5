package ghfake

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

func contextWith(r *http.Request, ti *tokenInfo) context.Context {
	return context.WithValue(r.Context(), authKey{}, ti)
}

func (s *Server) routes() {
	s.mux.HandleFunc("POST /app/installations/{id}/access_tokens", s.accessToken)
	s.mux.HandleFunc("POST /app-manifests/{code}/conversions", s.manifestConvert)
	s.mux.HandleFunc("GET /app/hook/deliveries", s.hookDeliveryList)
	s.mux.HandleFunc("POST /app/hook/deliveries/{id}/attempts", s.hookRedeliver)
	s.mux.HandleFunc("GET /repos/{owner}/{repo}", s.repoGet)
	s.mux.HandleFunc("GET /repos/{owner}/{repo}/compare/{basehead}", s.compare)
	s.mux.HandleFunc("POST /repos/{owner}/{repo}/deployments", s.deploymentCreate)
	s.mux.HandleFunc("GET /repos/{owner}/{repo}/deployments", s.deploymentList)
	s.mux.HandleFunc("GET /repos/{owner}/{repo}/deployments/{id}", s.deploymentGet)
	s.mux.HandleFunc("POST /repos/{owner}/{repo}/deployments/{id}/statuses", s.deploymentStatusCreate)
	s.mux.HandleFunc("GET /repos/{owner}/{repo}/deployments/{id}/statuses", s.deploymentStatusList)
	s.mux.HandleFunc("GET /repos/{owner}/{repo}/issues/{number}/comments", s.commentList)
	s.mux.HandleFunc("POST /repos/{owner}/{repo}/issues/{number}/comments", s.commentCreate)
	s.mux.HandleFunc("PATCH /repos/{owner}/{repo}/issues/comments/{id}", s.commentEdit)
	s.mux.HandleFunc("POST /repos/{owner}/{repo}/statuses/{sha}", s.commitStatusCreate)
	s.mux.HandleFunc("GET /repos/{owner}/{repo}/git/ref/{ref...}", s.refGet)
	s.mux.HandleFunc("POST /repos/{owner}/{repo}/check-runs", s.checkRunCreate)
	s.mux.HandleFunc("PATCH /repos/{owner}/{repo}/check-runs/{id}", s.checkRunUpdate)
}

func caller(r *http.Request) User {
	_, u := AuthOf(r)
	return u
}

func invalid(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": msg,
		"documentation_url": "https://docs.github.com/rest"})
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found",
		"documentation_url": "https://docs.github.com/rest"})
}

// decode reads the JSON object body into v; false (with 400 or 422 written) when it is not one.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		invalid(w, "Invalid request.\n\nFor 'links/0/schema', "+err.Error()+" is not an object.")
		return false
	}
	return true
}

func (s *Server) apiURL(format string, args ...any) string {
	return s.URL + fmt.Sprintf(format, args...)
}

func (s *Server) id() int64 {
	s.nextID++
	return s.nextID
}

func randomToken() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 36)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "ghs_" + string(b)
}

func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	repos, ok := s.installations[id]
	if !ok {
		s.mu.Unlock()
		notFound(w)
		return
	}
	tok := randomToken()
	exp := s.now().Add(time.Hour).UTC().Truncate(time.Second)
	s.tokens[tok] = &tokenInfo{kind: AuthInstallation, installation: id, repos: repos, expires: exp,
		user: User{Login: s.AppSlug + "[bot]", ID: 9000 + s.AppID, Type: "Bot"}}
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"token":                tok,
		"expires_at":           exp.Format(time.RFC3339),
		"permissions":          map[string]string{"checks": "write", "deployments": "write", "pull_requests": "write", "statuses": "write", "contents": "read", "metadata": "read"},
		"repository_selection": "selected",
	})
}

func (s *Server) repoGet(w http.ResponseWriter, r *http.Request) {
	owner, repo := r.PathValue("owner"), r.PathValue("repo")
	s.mu.Lock()
	id, ok := s.repos[owner+"/"+repo]
	branch := s.defaultBranch[owner+"/"+repo]
	s.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	if branch == "" {
		branch = "main"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": id, "node_id": fmt.Sprintf("R_%d", id), "name": repo, "full_name": owner + "/" + repo,
		"owner":   map[string]any{"login": owner, "type": "Organization"},
		"private": false, "default_branch": branch,
		"url":       s.apiURL("/repos/%s/%s", owner, repo),
		"clone_url": s.URL + "/" + owner + "/" + repo + ".git",
		"html_url":  s.URL + "/" + owner + "/" + repo,
	})
}

// refGet is GET /repos/{owner}/{repo}/git/ref/{ref}: one branch (SetRef), as GitHub answers it; only
// heads/<branch> refs exist here, and an unknown one is 404 as on GitHub.
func (s *Server) refGet(w http.ResponseWriter, r *http.Request) {
	owner, repo, ref := r.PathValue("owner"), r.PathValue("repo"), r.PathValue("ref")
	if !strings.HasPrefix(ref, "heads/") {
		notFound(w)
		return
	}
	s.mu.Lock()
	_, known := s.repos[owner+"/"+repo]
	sha, ok := s.refs[owner+"/"+repo+" refs/"+ref]
	s.mu.Unlock()
	if !known || !ok {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"ref": "refs/" + ref, "node_id": "REF_" + sha[:7],
		"url":    s.apiURL("/repos/%s/%s/git/refs/%s", owner, repo, ref),
		"object": map[string]any{"type": "commit", "sha": sha, "url": s.apiURL("/repos/%s/%s/git/commits/%s", owner, repo, sha)},
	})
}

func (s *Server) deploymentCreate(w http.ResponseWriter, r *http.Request) {
	owner, repo := r.PathValue("owner"), r.PathValue("repo")
	var req struct {
		Ref                   *string          `json:"ref"`
		Task                  *string          `json:"task"`
		AutoMerge             *bool            `json:"auto_merge"`
		RequiredContexts      *[]string        `json:"required_contexts"`
		Payload               *json.RawMessage `json:"payload"`
		Environment           *string          `json:"environment"`
		Description           *string          `json:"description"`
		TransientEnvironment  *bool            `json:"transient_environment"`
		ProductionEnvironment *bool            `json:"production_environment"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Ref == nil || *req.Ref == "" {
		invalid(w, "Invalid request.\n\n\"ref\" wasn't supplied.")
		return
	}
	if req.Description != nil && utf8.RuneCountInString(*req.Description) > 140 {
		invalid(w, "Validation Failed: description is too long (maximum is 140 characters)")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// GitHub checks every commit status context of the ref when required_contexts is absent, so a pending
	// ferry/<project> status would block the deployment. Mirror that.
	if req.RequiredContexts == nil {
		latest := map[string]string{}
		for _, c := range s.commitStatuses {
			if c.Owner == owner && c.Repo == repo && c.SHA == *req.Ref {
				latest[c.Context] = c.State
			}
		}
		for ctx, st := range latest {
			if st != "success" {
				writeJSON(w, http.StatusConflict, map[string]any{
					"message":           "Conflict: Commit status checks failed for " + *req.Ref + ".",
					"errors":            []map[string]any{{"contexts": []map[string]string{{"context": ctx, "state": st}}, "resource": "Deployment", "field": "required_contexts", "code": "invalid"}},
					"documentation_url": "https://docs.github.com/rest/deployments/deployments#create-a-deployment",
				})
				return
			}
		}
	}
	env := "production"
	if req.Environment != nil && *req.Environment != "" {
		env = *req.Environment
	}
	d := &Deployment{
		ID: s.id(), SHA: *req.Ref, Ref: *req.Ref, Task: "deploy", Environment: env, OriginalEnvironment: env,
		Creator: caller(r), CreatedAt: s.now().UTC().Truncate(time.Second), Owner: owner, Repo: repo,
		Payload:               json.RawMessage(`{}`),
		ProductionEnvironment: env == "production",
	}
	d.UpdatedAt = d.CreatedAt
	d.NodeID = fmt.Sprintf("DE_%d", d.ID)
	d.URL = s.apiURL("/repos/%s/%s/deployments/%d", owner, repo, d.ID)
	d.StatusesURL = d.URL + "/statuses"
	d.RepositoryURL = s.apiURL("/repos/%s/%s", owner, repo)
	if req.Task != nil {
		d.Task = *req.Task
	}
	if req.Payload != nil {
		d.Payload = *req.Payload
	}
	if req.Description != nil {
		d.Description = *req.Description
	}
	if req.TransientEnvironment != nil {
		d.TransientEnvironment = *req.TransientEnvironment
	}
	if req.ProductionEnvironment != nil {
		d.ProductionEnvironment = *req.ProductionEnvironment
	}
	s.deployments = append(s.deployments, d)
	writeJSON(w, http.StatusCreated, d)
}

func (s *Server) deploymentLocked(r *http.Request) *Deployment {
	owner, repo := r.PathValue("owner"), r.PathValue("repo")
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	for _, d := range s.deployments {
		if d.ID == id && d.Owner == owner && d.Repo == repo {
			return d
		}
	}
	return nil
}

func (s *Server) deploymentGet(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deploymentLocked(r)
	if d == nil {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) deploymentList(w http.ResponseWriter, r *http.Request) {
	owner, repo := r.PathValue("owner"), r.PathValue("repo")
	q := r.URL.Query()
	s.mu.Lock()
	var out []*Deployment
	for i := len(s.deployments) - 1; i >= 0; i-- { // newest first, as GitHub lists them
		d := s.deployments[i]
		if d.Owner != owner || d.Repo != repo ||
			(q.Get("sha") != "" && d.SHA != q.Get("sha")) ||
			(q.Get("ref") != "" && d.Ref != q.Get("ref")) ||
			(q.Get("task") != "" && d.Task != q.Get("task")) ||
			(q.Get("environment") != "" && d.Environment != q.Get("environment")) {
			continue
		}
		out = append(out, d)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, paginate(s, w, r, out))
}

var deploymentStates = map[string]bool{"error": true, "failure": true, "inactive": true, "in_progress": true,
	"queued": true, "pending": true, "success": true}

func (s *Server) deploymentStatusCreate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		State          string  `json:"state"`
		TargetURL      string  `json:"target_url"`
		LogURL         string  `json:"log_url"`
		Description    *string `json:"description"`
		Environment    string  `json:"environment"`
		EnvironmentURL string  `json:"environment_url"`
		AutoInactive   *bool   `json:"auto_inactive"`
	}
	if !decode(w, r, &req) {
		return
	}
	if !deploymentStates[req.State] {
		invalid(w, fmt.Sprintf("Invalid request.\n\nNo subschema in \"anyOf\" matched.\n%q is not a member of the state enum.", req.State))
		return
	}
	if req.Description != nil && utf8.RuneCountInString(*req.Description) > 140 {
		invalid(w, "Validation Failed: description is too long (maximum is 140 characters)")
		return
	}
	for _, u := range []string{req.LogURL, req.EnvironmentURL, req.TargetURL} {
		if p, err := url.Parse(u); u != "" && (err != nil || p.Scheme == "" || p.Host == "") {
			invalid(w, fmt.Sprintf("Validation Failed: %q is not a valid URL", u))
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deploymentLocked(r)
	if d == nil {
		notFound(w)
		return
	}
	if req.Environment != "" {
		d.Environment = req.Environment
	}
	st := s.addStatusLocked(d, caller(r), req.State)
	if req.Description != nil {
		st.Description = *req.Description
	}
	st.EnvironmentURL, st.LogURL, st.TargetURL = req.EnvironmentURL, req.LogURL, req.TargetURL
	if st.LogURL == "" {
		st.LogURL = st.TargetURL
	}
	// auto_inactive (default true): a new success makes the environment's older successful deployments inactive.
	if req.State == "success" && (req.AutoInactive == nil || *req.AutoInactive) {
		for _, old := range s.deployments {
			if old.ID == d.ID || old.Owner != d.Owner || old.Repo != d.Repo || old.Environment != d.Environment {
				continue
			}
			if sts := s.statuses[old.ID]; len(sts) > 0 && sts[len(sts)-1].State == "success" {
				s.addStatusLocked(old, st.Creator, "inactive").Auto = true
			}
		}
	}
	writeJSON(w, http.StatusCreated, st)
}

func (s *Server) addStatusLocked(d *Deployment, creator User, state string) *DeploymentStatus {
	st := &DeploymentStatus{ID: s.id(), State: state, Creator: creator, Environment: d.Environment,
		CreatedAt: s.now().UTC().Truncate(time.Second), DeploymentURL: d.URL, RepositoryURL: d.RepositoryURL}
	st.UpdatedAt = st.CreatedAt
	st.NodeID = fmt.Sprintf("DES_%d", st.ID)
	st.URL = fmt.Sprintf("%s/statuses/%d", d.URL, st.ID)
	s.statuses[d.ID] = append(s.statuses[d.ID], st)
	d.UpdatedAt = st.CreatedAt
	return st
}

func (s *Server) deploymentStatusList(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	d := s.deploymentLocked(r)
	if d == nil {
		s.mu.Unlock()
		notFound(w)
		return
	}
	sts := s.statuses[d.ID]
	out := make([]*DeploymentStatus, 0, len(sts))
	for i := len(sts) - 1; i >= 0; i-- { // newest first
		out = append(out, sts[i])
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, paginate(s, w, r, out))
}

func (s *Server) newCommentLocked(owner, repo string, issue int, u User, body string) *Comment {
	c := &Comment{ID: s.id(), Body: body, User: u, CreatedAt: s.now().UTC().Truncate(time.Second),
		Owner: owner, Repo: repo, Issue: issue}
	c.UpdatedAt = c.CreatedAt
	c.NodeID = fmt.Sprintf("IC_%d", c.ID)
	c.URL = s.apiURL("/repos/%s/%s/issues/comments/%d", owner, repo, c.ID)
	c.IssueURL = s.apiURL("/repos/%s/%s/issues/%d", owner, repo, issue)
	c.HTMLURL = fmt.Sprintf("%s/%s/%s/pull/%d#issuecomment-%d", s.URL, owner, repo, issue, c.ID)
	s.comments = append(s.comments, c)
	return c
}

func commentBody(w http.ResponseWriter, r *http.Request) (string, bool) {
	var req struct {
		Body *string `json:"body"`
	}
	if !decode(w, r, &req) {
		return "", false
	}
	switch {
	case req.Body == nil || *req.Body == "":
		invalid(w, "Invalid request.\n\n\"body\" wasn't supplied.")
		return "", false
	case utf8.RuneCountInString(*req.Body) > 65536:
		invalid(w, "Validation Failed: body is too long (maximum is 65536 characters)")
		return "", false
	}
	return *req.Body, true
}

func (s *Server) commentList(w http.ResponseWriter, r *http.Request) {
	owner, repo := r.PathValue("owner"), r.PathValue("repo")
	n, _ := strconv.Atoi(r.PathValue("number"))
	s.mu.Lock()
	var out []*Comment
	for _, c := range s.comments {
		if c.Owner == owner && c.Repo == repo && c.Issue == n {
			out = append(out, c)
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, paginate(s, w, r, out))
}

func (s *Server) commentCreate(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("number"))
	if err != nil || n <= 0 {
		notFound(w)
		return
	}
	body, ok := commentBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.newCommentLocked(r.PathValue("owner"), r.PathValue("repo"), n, caller(r), body)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, c)
}

func (s *Server) commentEdit(w http.ResponseWriter, r *http.Request) {
	owner, repo := r.PathValue("owner"), r.PathValue("repo")
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	body, ok := commentBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.comments {
		if c.ID != id || c.Owner != owner || c.Repo != repo {
			continue
		}
		if c.User.Login != caller(r).Login {
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "Resource not accessible by integration"})
			return
		}
		c.Body = body
		c.Edits++
		c.UpdatedAt = s.now().UTC().Truncate(time.Second)
		writeJSON(w, http.StatusOK, c)
		return
	}
	notFound(w)
}

var commitStates = map[string]bool{"error": true, "failure": true, "pending": true, "success": true}

func (s *Server) commitStatusCreate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		State       string  `json:"state"`
		TargetURL   string  `json:"target_url"`
		Description *string `json:"description"`
		Context     string  `json:"context"`
	}
	if !decode(w, r, &req) {
		return
	}
	if !commitStates[req.State] {
		invalid(w, fmt.Sprintf("Validation Failed: state %q is not included in the list", req.State))
		return
	}
	if req.Description != nil && utf8.RuneCountInString(*req.Description) > 140 {
		invalid(w, "Validation Failed: description is too long (maximum is 140 characters)")
		return
	}
	if req.Context == "" {
		req.Context = "default"
	}
	owner, repo := r.PathValue("owner"), r.PathValue("repo")
	s.mu.Lock()
	c := &CommitStatus{ID: s.id(), State: req.State, Context: req.Context, TargetURL: req.TargetURL,
		Creator: caller(r), CreatedAt: s.now().UTC().Truncate(time.Second), Owner: owner, Repo: repo, SHA: r.PathValue("sha")}
	if req.Description != nil {
		c.Description = *req.Description
	}
	c.UpdatedAt = c.CreatedAt
	c.NodeID = fmt.Sprintf("SC_%d", c.ID)
	c.URL = s.apiURL("/repos/%s/%s/statuses/%s", owner, repo, c.SHA)
	s.commitStatuses = append(s.commitStatuses, c)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, c)
}

// paginate cuts items to the requested page (per_page default 30, at most 100, as on GitHub) and sets the Link
// header that go-github reads NextPage from.
func paginate[T any](s *Server, w http.ResponseWriter, r *http.Request, items []T) []T {
	q := r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 30
	}
	per = min(per, 100)
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	last := max((len(items)+per-1)/per, 1)
	link := func(p int, rel string) string {
		q2 := url.Values{}
		for k, v := range q {
			q2[k] = v
		}
		q2.Set("page", strconv.Itoa(p))
		q2.Set("per_page", strconv.Itoa(per))
		return fmt.Sprintf(`<%s%s?%s>; rel="%s"`, s.URL, r.URL.Path, q2.Encode(), rel)
	}
	var links []string
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"), link(page-1, "prev"))
	}
	if len(links) > 0 {
		h := links[0]
		for _, l := range links[1:] {
			h += ", " + l
		}
		w.Header().Set("Link", h)
	}
	start := (page - 1) * per
	if start >= len(items) {
		return []T{}
	}
	return items[start:min(start+per, len(items))]
}
