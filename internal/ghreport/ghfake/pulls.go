package ghfake

import (
	"fmt"
	"net/http"
	"strconv"
)

// The pull request endpoints a build asks at its end and intake's jobs ask for changed files:
//
//   - GET /repos/{o}/{r}/pulls/{n}: the pull request, with head.sha where SetPull last put it. A pull request
//     never set is the one Ferry reported: its head is the commit of the newest deployment in environment
//     preview/pr-<n> (the tests that deliver pull_request webhooks need not mirror each one); with neither, 404.
//   - GET /repos/{o}/{r}/pulls/{n}/files: its changed files, paged (per_page default 30, at most 100, Link
//     header), at most 3000 as on GitHub.

func init() { extraRoutes = append(extraRoutes, pullRoutes) }

func pullRoutes(s *Server) {
	s.mux.HandleFunc("GET /repos/{owner}/{repo}/pulls/{number}", s.pullGet)
	s.mux.HandleFunc("GET /repos/{owner}/{repo}/pulls/{number}/files", s.pullFiles)
}

type pull struct {
	head  string
	files []string
}

// SetPull makes pull request n of owner/repo have head commit head and, when files are given, those changed
// files (a later SetPull with files replaces them; without, keeps them).
func (s *Server) SetPull(owner, repo string, n int, head string, files ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pulls == nil {
		s.pulls = map[string]*pull{}
	}
	key := fmt.Sprintf("%s/%s#%d", owner, repo, n)
	p := s.pulls[key]
	if p == nil {
		p = &pull{}
		s.pulls[key] = p
	}
	p.head = head
	if files != nil {
		p.files = files
	}
}

func (s *Server) pullLocked(r *http.Request) (*pull, int) {
	n, err := strconv.Atoi(r.PathValue("number"))
	if err != nil {
		return nil, 0
	}
	return s.pulls[fmt.Sprintf("%s/%s#%d", r.PathValue("owner"), r.PathValue("repo"), n)], n
}

func (s *Server) pullGet(w http.ResponseWriter, r *http.Request) {
	owner, repo := r.PathValue("owner"), r.PathValue("repo")
	s.mu.Lock()
	p, n := s.pullLocked(r)
	var head string
	found := p != nil
	if found {
		head = p.head
	} else {
		env := "preview/pr-" + strconv.Itoa(n)
		for _, d := range s.deployments {
			if d.Owner == owner && d.Repo == repo && d.Environment == env {
				head, found = d.SHA, true // oldest first: the last one wins
			}
		}
	}
	s.mu.Unlock()
	if !found {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"url": s.apiURL("/repos/%s/%s/pulls/%d", owner, repo, n),
		"id":  900000 + n, "number": n, "state": "open",
		"head": map[string]any{"sha": head, "ref": "feature", "label": owner + ":feature"},
		"base": map[string]any{"ref": "main", "label": owner + ":main"},
	})
}

func (s *Server) pullFiles(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p, _ := s.pullLocked(r)
	var files []string
	if p != nil {
		files = p.files
	}
	s.mu.Unlock()
	if p == nil {
		notFound(w)
		return
	}
	if len(files) > 3000 {
		files = files[:3000]
	}
	list := make([]map[string]any, len(files))
	for i, f := range files {
		list[i] = map[string]any{"sha": "0000000", "filename": f, "status": "modified", "additions": 1, "deletions": 0, "changes": 1}
	}
	writeJSON(w, http.StatusOK, paginate(s, w, r, list))
}
