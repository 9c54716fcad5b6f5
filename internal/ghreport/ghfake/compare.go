package ghfake

import (
	"net/http"
	"strings"
)

// SetCompare makes GET /repos/{owner}/{repo}/compare/{base}...{head} list files as changed between the two
// commits (at most 300, as GitHub lists them).
func (s *Server) SetCompare(owner, repo, base, head string, files ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.compares == nil {
		s.compares = map[string][]string{}
	}
	s.compares[owner+"/"+repo+"/"+base+"..."+head] = files
}

func (s *Server) compare(w http.ResponseWriter, r *http.Request) {
	owner, repo, basehead := r.PathValue("owner"), r.PathValue("repo"), r.PathValue("basehead")
	if !strings.Contains(basehead, "...") {
		notFound(w)
		return
	}
	s.mu.Lock()
	files, ok := s.compares[owner+"/"+repo+"/"+basehead]
	s.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	if len(files) > 300 {
		files = files[:300]
	}
	list := make([]map[string]any, len(files))
	for i, f := range files {
		list[i] = map[string]any{"filename": f, "status": "modified", "additions": 1, "deletions": 0, "changes": 1}
	}
	base, head, _ := strings.Cut(basehead, "...")
	writeJSON(w, http.StatusOK, map[string]any{
		"url":    s.apiURL("/repos/%s/%s/compare/%s", owner, repo, basehead),
		"status": "ahead", "ahead_by": 1, "behind_by": 0, "total_commits": 1,
		"base_commit":       map[string]any{"sha": base},
		"merge_base_commit": map[string]any{"sha": base},
		"commits":           []map[string]any{{"sha": head}},
		"files":             list,
	})
}
