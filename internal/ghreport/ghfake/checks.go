package ghfake

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// CheckRun is the wire form of a check run. Updates is every state it went through, oldest first, so that a
// test sees "in_progress" even once the run completed.
type CheckRun struct {
	ID          int64             `json:"id"`
	NodeID      string            `json:"node_id"`
	URL         string            `json:"url"`
	HTMLURL     string            `json:"html_url"`
	HeadSHA     string            `json:"head_sha"`
	Name        string            `json:"name"`
	ExternalID  string            `json:"external_id"`
	DetailsURL  string            `json:"details_url"`
	Status      string            `json:"status"`
	Conclusion  *string           `json:"conclusion"`
	StartedAt   time.Time         `json:"started_at"`
	CompletedAt *time.Time        `json:"completed_at"`
	Output      CheckRunOutput    `json:"output"`
	Actions     []CheckRunAction  `json:"-"`
	App         map[string]any    `json:"app"`
	Updates     []CheckRunVersion `json:"-"`

	Owner string `json:"-"`
	Repo  string `json:"-"`
}

// CheckRunOutput is a check run's output.
type CheckRunOutput struct {
	Title   string `json:"title"`
	Summary string `json:"summary"`
	Text    string `json:"text"`
}

// CheckRunAction is one requested-action button.
type CheckRunAction struct {
	Label       string `json:"label"`
	Description string `json:"description"`
	Identifier  string `json:"identifier"`
}

// CheckRunVersion is a check run as one create or update left it.
type CheckRunVersion struct {
	Status, Conclusion string
	Output             CheckRunOutput
	Actions            []CheckRunAction
}

// DenyChecks makes token (added with AddToken) lack `checks: write`, as an Action's GITHUB_TOKEN does unless
// the workflow grants it: its check-run calls get 403.
func (s *Server) DenyChecks(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ti := s.tokens[token]; ti != nil {
		ti.noChecks = true
	}
}

// CheckRuns returns the check runs of a commit, oldest first.
func (s *Server) CheckRuns(owner, repo, sha string) []CheckRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []CheckRun
	for _, c := range s.checkRuns {
		if c.Owner == owner && c.Repo == repo && c.HeadSHA == sha {
			cp := *c
			cp.Updates = append([]CheckRunVersion(nil), c.Updates...)
			out = append(out, cp)
		}
	}
	return out
}

type checkRunRequest struct {
	Name        *string          `json:"name"`
	HeadSHA     *string          `json:"head_sha"`
	DetailsURL  *string          `json:"details_url"`
	ExternalID  *string          `json:"external_id"`
	Status      *string          `json:"status"`
	Conclusion  *string          `json:"conclusion"`
	CompletedAt *time.Time       `json:"completed_at"`
	Output      *CheckRunOutput  `json:"output"`
	Actions     []CheckRunAction `json:"actions"`
}

var checkStatuses = map[string]bool{"queued": true, "in_progress": true, "completed": true}
var checkConclusions = map[string]bool{"action_required": true, "cancelled": true, "failure": true, "neutral": true,
	"success": true, "skipped": true, "stale": true, "timed_out": true}

// validate applies GitHub's documented rules; a message means 422.
func (req *checkRunRequest) validate() string {
	if req.Status != nil && !checkStatuses[*req.Status] {
		return fmt.Sprintf("Invalid request.\n\n%q is not a member of the status enum.", *req.Status)
	}
	if req.Conclusion != nil && !checkConclusions[*req.Conclusion] {
		return fmt.Sprintf("Invalid request.\n\n%q is not a member of the conclusion enum.", *req.Conclusion)
	}
	if req.Status != nil && *req.Status == "completed" && req.Conclusion == nil {
		return "Invalid request.\n\n\"conclusion\" wasn't supplied."
	}
	if req.Conclusion != nil && req.Status != nil && *req.Status != "completed" {
		return "Invalid request.\n\nA conclusion requires status completed."
	}
	if o := req.Output; o != nil {
		switch {
		case o.Title == "" || o.Summary == "":
			return "Invalid request.\n\n\"title\" and \"summary\" are required in output."
		case utf8.RuneCountInString(o.Summary) > 65535 || utf8.RuneCountInString(o.Text) > 65535:
			return "Invalid request.\n\nOnly 65535 characters are allowed in output.summary and output.text."
		}
	}
	if len(req.Actions) > 3 {
		return "Invalid request.\n\nOnly 3 actions are allowed."
	}
	for _, a := range req.Actions {
		if a.Label == "" || a.Identifier == "" || a.Description == "" || utf8.RuneCountInString(a.Label) > 20 ||
			utf8.RuneCountInString(a.Description) > 40 || utf8.RuneCountInString(a.Identifier) > 20 {
			return fmt.Sprintf("Invalid request.\n\nAction %+v: label (at most 20), description (at most 40) and identifier (at most 20) are required.", a)
		}
	}
	return ""
}

// checksAllowed refuses the check-run calls of tokens without `checks: write` and of people's tokens (GitHub
// accepts check runs from GitHub Apps only; GITHUB_TOKEN is one).
func (s *Server) checksAllowed(w http.ResponseWriter, r *http.Request) bool {
	ti, _ := r.Context().Value(authKey{}).(*tokenInfo)
	if ti == nil || ti.noChecks || (ti.kind != AuthInstallation && ti.kind != AuthToken) {
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "Resource not accessible by integration",
			"documentation_url": "https://docs.github.com/rest/checks/runs#create-a-check-run"})
		return false
	}
	return true
}

func (s *Server) checkRunCreate(w http.ResponseWriter, r *http.Request) {
	if !s.checksAllowed(w, r) {
		return
	}
	var req checkRunRequest
	if !decode(w, r, &req) {
		return
	}
	switch {
	case req.Name == nil || *req.Name == "":
		invalid(w, "Invalid request.\n\n\"name\" wasn't supplied.")
		return
	case req.HeadSHA == nil || *req.HeadSHA == "":
		invalid(w, "Invalid request.\n\n\"head_sha\" wasn't supplied.")
		return
	}
	if msg := req.validate(); msg != "" {
		invalid(w, msg)
		return
	}
	owner, repo := r.PathValue("owner"), r.PathValue("repo")
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &CheckRun{ID: s.id(), HeadSHA: *req.HeadSHA, Name: *req.Name, Status: "queued",
		StartedAt: s.now().UTC().Truncate(time.Second), Owner: owner, Repo: repo,
		App: map[string]any{"id": s.AppID, "slug": s.AppSlug}}
	c.NodeID = fmt.Sprintf("CR_%d", c.ID)
	c.URL = s.apiURL("/repos/%s/%s/check-runs/%d", owner, repo, c.ID)
	c.HTMLURL = fmt.Sprintf("%s/%s/%s/runs/%d", s.URL, owner, repo, c.ID)
	s.applyCheckRunLocked(c, &req)
	s.checkRuns = append(s.checkRuns, c)
	writeJSON(w, http.StatusCreated, c)
}

func (s *Server) checkRunUpdate(w http.ResponseWriter, r *http.Request) {
	if !s.checksAllowed(w, r) {
		return
	}
	var req checkRunRequest
	if !decode(w, r, &req) {
		return
	}
	if msg := req.validate(); msg != "" {
		invalid(w, msg)
		return
	}
	owner, repo := r.PathValue("owner"), r.PathValue("repo")
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.checkRuns {
		if c.ID == id && c.Owner == owner && c.Repo == repo {
			if req.Name != nil && *req.Name != "" {
				c.Name = *req.Name
			}
			s.applyCheckRunLocked(c, &req)
			writeJSON(w, http.StatusOK, c)
			return
		}
	}
	notFound(w)
}

func (s *Server) applyCheckRunLocked(c *CheckRun, req *checkRunRequest) {
	if req.DetailsURL != nil {
		c.DetailsURL = *req.DetailsURL
	}
	if req.ExternalID != nil {
		c.ExternalID = *req.ExternalID
	}
	if req.Status != nil {
		c.Status = *req.Status
	}
	if req.Conclusion != nil {
		// A conclusion completes the run, as on GitHub.
		concl := *req.Conclusion
		c.Conclusion, c.Status = &concl, "completed"
		now := s.now().UTC().Truncate(time.Second)
		c.CompletedAt = &now
	} else if c.Status != "completed" {
		c.Conclusion, c.CompletedAt = nil, nil
	}
	if req.Output != nil {
		c.Output = *req.Output
	}
	if req.Actions != nil {
		c.Actions = req.Actions
	}
	v := CheckRunVersion{Status: c.Status, Output: c.Output, Actions: append([]CheckRunAction(nil), c.Actions...)}
	if c.Conclusion != nil {
		v.Conclusion = *c.Conclusion
	}
	c.Updates = append(c.Updates, v)
}
