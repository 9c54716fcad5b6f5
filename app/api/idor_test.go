package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/app/store"
)

// endpoint is one API call with what it needs filled in.
type endpoint struct {
	method, path string
	body         any
}

// everyEndpoint lists every endpoint that names a project or a deployment, aimed at project and deployment id.
func everyEndpoint(project, id string) []endpoint {
	return []endpoint{
		{"GET", "/api/v1/projects/" + project, nil},
		{"PATCH", "/api/v1/projects/" + project, map[string]any{"productionBranch": "hijack"}},
		{"DELETE", "/api/v1/projects/" + project, nil},
		{"GET", "/api/v1/projects/" + project + "/aliases", nil},
		{"GET", "/api/v1/projects/" + project + "/retention", nil},
		{"GET", "/api/v1/projects/" + project + "/env", nil},
		{"PUT", "/api/v1/projects/" + project + "/env/production/GREETING", map[string]string{"value": "pwned"}},
		{"DELETE", "/api/v1/projects/" + project + "/env/production/GREETING", nil},
		{"GET", "/api/v1/projects/" + project + "/deployments", nil},
		{"POST", "/api/v1/projects/" + project + "/deployments", map[string]string{"branch": "main"}},
		{"GET", "/api/v1/deployments/" + id, nil},
		{"GET", "/api/v1/deployments/" + id + "/logs", nil},
		{"POST", "/api/v1/deployments/" + id + "/redeploy", nil},
		{"POST", "/api/v1/deployments/" + id + "/cancel", nil},
		{"POST", "/api/v1/deployments/" + id + "/promote", nil},
		{"POST", "/api/v1/deployments/" + id + "/rollback", nil},
	}
}

// TestOtherUsersGet404 tries every endpoint on another user's project and deployments: each answers 404
// not_found, exactly like a project that does not exist, and nothing changes.
func TestOtherUsersGet404(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	alice, mallory := h.newUser(), h.newUser()
	h.must(alice, 201, "POST", "/api/v1/projects", map[string]any{"gitUrl": h.repo.Bare, "name": "alices"}, nil)
	h.must(alice, 200, "PUT", "/api/v1/projects/alices/env/production/GREETING", map[string]string{"value": "secret"}, nil)
	var old, cur projects.Deployment
	h.must(alice, 201, "POST", "/api/v1/projects/alices/deployments", map[string]string{"commit": h.repo.Commits[0], "branch": "main"}, &old)
	h.waitDeployment(alice, old.ID, store.StatusReady)
	h.must(alice, 201, "POST", "/api/v1/projects/alices/deployments", nil, &cur)
	h.waitDeployment(alice, cur.ID, store.StatusReady)
	h.builder.block = make(chan struct{}) // keep the next one building, so cancel has something to stop
	var running projects.Deployment
	h.must(alice, 201, "POST", "/api/v1/projects/alices/deployments", map[string]string{"branch": "feature"}, &running)
	h.waitDeployment(alice, running.ID, store.StatusBuilding)
	before := h.serve("alices", "production")
	deployments := h.count(`SELECT count(*) FROM deployments`)

	// Mallory sees an empty list, and 404 everywhere else: for the existing project and for a made-up one alike.
	var list struct{ Projects []projects.Project }
	h.must(mallory, 200, "GET", "/api/v1/projects", nil, &list)
	if len(list.Projects) != 0 {
		t.Fatalf("mallory lists %+v", list.Projects)
	}
	// The answers for Alice's things say no more than those for things that do not exist.
	answers := map[string]string{}
	for _, target := range []struct{ project, id string }{{"alices", old.ID}, {"alices", running.ID}, {"nobodys", "dpl-0000000000000000"}} {
		for i, e := range everyEndpoint(target.project, target.id) {
			r := h.do(mallory, e.method, e.path, e.body)
			code, msg := r.errorCode()
			if r.status != 404 || code != "not_found" {
				t.Errorf("mallory %s %s = %d %s, want 404 not_found", e.method, e.path, r.status, r.body)
			}
			msg = strings.NewReplacer(target.project, "P", target.id, "ID").Replace(msg)
			key := fmt.Sprint(i)
			if prev, ok := answers[key]; ok && prev != msg {
				t.Errorf("mallory %s %s: %q differs from the answer for a missing one, %q", e.method, e.path, msg, prev)
			}
			answers[key] = msg
		}
	}
	// The owner's things are as they were.
	var p projects.Project
	h.must(alice, 200, "GET", "/api/v1/projects/alices", nil, &p)
	if p.ProductionBranch != "main" || p.Deletion != nil || p.ProductionDeploymentID != cur.ID {
		t.Fatalf("project changed: %+v", p)
	}
	if got := h.serve("alices", "production"); got != before {
		t.Fatalf("production changed to %q", got)
	}
	if d := h.waitDeployment(alice, running.ID, store.StatusBuilding); d.Status != store.StatusBuilding {
		t.Fatalf("running deployment is %s", d.Status)
	}
	if n := h.count(`SELECT count(*) FROM deployments`); n != deployments {
		t.Fatalf("%d deployments, want %d", n, deployments)
	}
	if n := h.count(`SELECT count(*) FROM project_env`); n != 1 {
		t.Fatalf("%d env vars, want 1", n)
	}
	close(h.builder.block)
	h.waitDeployment(alice, running.ID, store.StatusReady)

	// Every endpoint also works for the owner (status < 400), in an order that leaves each one something to do.
	for _, e := range everyEndpoint("alices", running.ID) {
		switch e.method + " " + strings.TrimPrefix(e.path, "/api/v1/") {
		case "DELETE projects/alices", "POST deployments/" + running.ID + "/cancel", "POST deployments/" + running.ID + "/promote",
			"POST deployments/" + running.ID + "/rollback":
			continue // below, once their preconditions hold
		}
		if r := h.do(alice, e.method, e.path, e.body); r.status >= 400 {
			t.Errorf("alice %s %s = %d %s", e.method, e.path, r.status, r.body)
		}
	}
	h.must(alice, 200, "POST", "/api/v1/deployments/"+running.ID+"/promote", nil, nil)
	h.must(alice, 200, "POST", "/api/v1/deployments/"+old.ID+"/rollback", nil, nil)
	h.builder.block = make(chan struct{})
	var again projects.Deployment
	h.must(alice, 201, "POST", "/api/v1/deployments/"+running.ID+"/redeploy", nil, &again)
	h.must(alice, 200, "POST", "/api/v1/deployments/"+again.ID+"/cancel", nil, nil)
	h.must(alice, 202, "DELETE", "/api/v1/projects/alices", nil, nil)
}

// TestAnonymousGet401 checks that nothing answers without credentials, and that a bad token says so.
func TestAnonymousGet401(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	eps := append(everyEndpoint("site", "dpl-0000000000000000"),
		endpoint{"GET", "/api/v1/projects", nil}, endpoint{"POST", "/api/v1/projects", map[string]string{"gitUrl": "https://example.com/a.git"}},
		endpoint{"GET", "/api/v1/user", nil})
	for _, e := range eps {
		r := h.do(nil, e.method, e.path, e.body)
		if code, _ := r.errorCode(); r.status != 401 || code != "unauthorized" {
			t.Errorf("anonymous %s %s = %d %s", e.method, e.path, r.status, r.body)
		}
		r = h.do(&user{token: "ferry_not-a-real-token"}, e.method, e.path, e.body)
		if r.status != 401 {
			t.Errorf("bad token %s %s = %d %s", e.method, e.path, r.status, r.body)
		}
	}
	if n := h.count(`SELECT count(*) FROM projects`); n != 0 {
		t.Fatalf("%d projects created anonymously", n)
	}
}
