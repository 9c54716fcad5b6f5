package api_test

import (
	"strings"
	"testing"
)

// TestBadInput sends malformed, oversized and contradictory requests: each gets a 4xx with a message that
// says what to fix, and nothing is left half-created.
func TestBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	u := h.newUser()
	h.must(u, 201, "POST", "/api/v1/projects", map[string]any{"gitUrl": "https://git.example.com/acme/taken.git", "name": "taken"}, nil)
	good := h.repo.Bare
	long := strings.Repeat("x", 3000)
	cases := []struct {
		method, path string
		body         any
		status       int
		code, msg    string
	}{
		{"POST", "/api/v1/projects", "", 400, "invalid", "the body is empty"},
		{"POST", "/api/v1/projects", "{", 400, "invalid", "not valid JSON"},
		{"POST", "/api/v1/projects", `{"gitUrl": 5}`, 400, "invalid", `field "gitUrl" must be a string`},
		{"POST", "/api/v1/projects", `{"gitUrl": "https://a.example/b.git", "colour": "red"}`, 400, "invalid", `unknown field "colour"`},
		{"POST", "/api/v1/projects", `{"gitUrl": "https://a.example/b.git"} {}`, 400, "invalid", "more than one JSON value"},
		{"POST", "/api/v1/projects", `{"gitUrl": "` + strings.Repeat("x", 300<<10) + `"}`, 413, "too_large", "larger than"},
		{"POST", "/api/v1/projects", map[string]any{}, 400, "invalid", "no git URL given"},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": "   "}, 400, "invalid", "no git URL given"},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": "https://github.com/" + long}, 413, "too_large", "longer than 2048"},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": "ftp://example.com/a.git"}, 400, "invalid", "must start with https://"},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": "git@github.com:acme/site.git"}, 400, "invalid", "https://github.com/acme/site.git"},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": "https://me:hunter2@github.com/acme/site.git"}, 400, "invalid", "remove the user name or password"},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": "https://github.com/"}, 400, "invalid", "names no repository"},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": "https://github.com/a b"}, 400, "invalid", "spaces"},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": "just-words"}, 400, "invalid", "is not a git URL"},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": "/no/such/repo"}, 400, "invalid", "does not exist"},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": good, "name": "Bad_Name"}, 400, "invalid", "lowercase letters"},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": good, "name": strings.Repeat("a", 41)}, 400, "invalid", "longer than 40"},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": good, "name": "a--b"}, 400, "invalid", `contains "--"`},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": good, "name": "taken"}, 409, "conflict", `a project named "taken" already exists`},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": good, "productionBranch": "a..b"}, 400, "invalid", "not a valid git branch name"},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": good, "productionBranch": long}, 413, "too_large", "branch name is longer"},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": good, "settings": map[string]any{"requireForkApproval": true}}, 400, "invalid", "requireForkApproval needs buildForks"},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": good, "settings": map[string]any{"buildForks": true, "overrides": map[string]any{"outputDirectory": "../etc"}}}, 400, "invalid", "relative folder inside the repository"},
		{"POST", "/api/v1/projects", map[string]any{"gitUrl": good, "settings": map[string]any{"buildForks": true, "overrides": map[string]any{"buildCommand": strings.Repeat("x", 5000)}}}, 413, "too_large", "buildCommand is longer"},
		{"GET", "/api/v1/projects/nope", nil, 404, "not_found", `project "nope" not found`},
		{"GET", "/api/v1/projects/NOT..VALID", nil, 404, "not_found", "not found"},
		{"PATCH", "/api/v1/projects/taken", map[string]any{"name": "UPPER"}, 400, "invalid", "lowercase letters"},
		{"PATCH", "/api/v1/projects/taken", map[string]any{"productionBranch": ""}, 400, "invalid", "branch name is empty"},
		{"POST", "/api/v1/projects/taken/deployments", map[string]string{"commit": "abc123"}, 400, "invalid", "not a full commit SHA"},
		{"POST", "/api/v1/projects/taken/deployments", map[string]string{"branch": "-x"}, 400, "invalid", "not a valid git branch name"},
		{"GET", "/api/v1/projects/taken/deployments?status=bogus", nil, 400, "invalid", `unknown status "bogus"`},
		{"GET", "/api/v1/projects/taken/deployments?pr=x", nil, 400, "invalid", "whole number"},
		{"GET", "/api/v1/projects/taken/deployments?limit=1000", nil, 400, "invalid", "1 to 100"},
		{"GET", "/api/v1/projects/taken/deployments?cursor=garbage", nil, 400, "invalid", "invalid page cursor"},
		{"GET", "/api/v1/deployments/not-an-id", nil, 404, "not_found", "ids look like dpl-"},
		{"GET", "/api/v1/deployments/dpl-0000000000000000/logs?after=-1", nil, 400, "invalid", "whole number"},
		{"PUT", "/api/v1/projects/taken/env/staging/KEY", map[string]string{"value": "v"}, 400, "invalid", "use production or preview"},
		{"PUT", "/api/v1/projects/taken/env/production/1KEY", map[string]string{"value": "v"}, 400, "invalid", "not starting with a digit"},
		{"PUT", "/api/v1/projects/taken/env/production/FERRY_TOKEN", map[string]string{"value": "v"}, 400, "invalid", "reserved"},
		{"PUT", "/api/v1/projects/taken/env/production/" + strings.Repeat("K", 300), map[string]string{"value": "v"}, 413, "too_large", "longer than 256"},
		{"PUT", "/api/v1/projects/taken/env/production/KEY", map[string]string{"value": "a\nb"}, 400, "invalid", "must be one line"},
		{"PUT", "/api/v1/projects/taken/env/production/KEY", map[string]string{"value": strings.Repeat("v", 65<<10)}, 413, "too_large", "longer than 65536 bytes"},
		{"PUT", "/api/v1/projects/taken/env/production/KEY", map[string]string{}, 400, "invalid", `{"value": "..."}`},
		{"DELETE", "/api/v1/projects/taken/env/production/MISSING", nil, 404, "not_found", "MISSING is not set for production"},
		{"GET", "/api/v1/nope", nil, 404, "not_found", "no API endpoint GET /api/v1/nope"},
		{"POST", "/api/v1/projects", `gitUrl=x`, 400, "invalid", "not valid JSON"},
	}
	for _, c := range cases {
		r := h.do(u, c.method, c.path, c.body)
		code, msg := r.errorCode()
		if r.status != c.status || code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("%s %s %.80v = %d %s %q, want %d %s containing %q", c.method, c.path, c.body, r.status, code, msg, c.status, c.code, c.msg)
		}
	}
	// An unknown branch is found out before anything is stored.
	r := h.do(u, "POST", "/api/v1/projects/taken/deployments", map[string]string{"branch": "main"})
	if code, msg := r.errorCode(); r.status != 400 || code != "invalid" || !strings.Contains(msg, "check the URL and that the App can access it") {
		t.Errorf("deploy of an unreachable repository = %d %s", r.status, r.body)
	}
	h.must(u, 201, "POST", "/api/v1/projects", map[string]any{"gitUrl": good, "name": "real"}, nil)
	r = h.do(u, "POST", "/api/v1/projects/real/deployments", map[string]string{"branch": "no-such-branch"})
	if code, msg := r.errorCode(); r.status != 404 || code != "not_found" || !strings.Contains(msg, `branch "no-such-branch" does not exist`) {
		t.Errorf("deploy of a missing branch = %d %s", r.status, r.body)
	}
	if n := h.count(`SELECT count(*) FROM projects`); n != 2 {
		t.Errorf("%d projects, want the 2 created on purpose", n)
	}
	if n := h.count(`SELECT count(*) FROM deployments`) + h.count(`SELECT count(*) FROM project_env`) + h.count(`SELECT count(*) FROM river_job WHERE kind <> 'deployment_sweep'`); n != 0 {
		t.Errorf("%d deployments, env vars or jobs left by refused requests", n)
	}
}
