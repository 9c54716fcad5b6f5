package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/site"
)

// TestOwnerWorkflow walks one owner through everything the API does, with real builds through the real deploy
// worker: create, env vars, deploy now (branch, commit), filters and pages, promote, rollback, cancel,
// redeploy, a failing build, settings, and deletion in the background.
func TestOwnerWorkflow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	alice := h.newUser()

	var p projects.Project
	h.must(alice, 201, "POST", "/api/v1/projects", map[string]any{"gitUrl": h.repo.Bare, "name": "site"}, &p)
	if p.Name != "site" || p.URL != "http://site.localhost:8081" || p.ProductionBranch != "main" || !p.Settings.BuildForks || p.OwnerID != alice.id {
		t.Fatalf("created %+v", p)
	}
	var list struct{ Projects []projects.Project }
	h.must(alice, 200, "GET", "/api/v1/projects", nil, &list)
	if len(list.Projects) != 1 || list.Projects[0].Name != "site" {
		t.Fatalf("list = %+v", list)
	}

	// Env vars: saved encrypted, shown masked, given to builds of their environment.
	for env, v := range map[string]string{"production": "hello-prod", "preview": "hello-preview"} {
		var ev projects.EnvVar
		h.must(alice, 200, "PUT", "/api/v1/projects/site/env/"+env+"/GREETING", map[string]string{"value": v}, &ev)
		if ev.Value != projects.Mask || ev.Key != "GREETING" || ev.Environment != env {
			t.Fatalf("set env = %+v", ev)
		}
	}
	h.must(alice, 200, "PUT", "/api/v1/projects/site/env/preview/DROP_ME", map[string]string{"value": "x"}, nil)
	r := h.do(alice, "GET", "/api/v1/projects/site/env", nil)
	if r.status != 200 || bytes.Contains(r.body, []byte("hello-")) || strings.Count(string(r.body), projects.Mask) != 3 {
		t.Fatalf("env list = %d %s", r.status, r.body)
	}
	if n := h.count(`SELECT count(*) FROM project_env WHERE position('hello'::bytea in value_enc) > 0`); n != 0 {
		t.Fatalf("%d env values stored in clear", n)
	}
	h.must(alice, 204, "DELETE", "/api/v1/projects/site/env/preview/DROP_ME", nil, nil)
	h.must(alice, 404, "DELETE", "/api/v1/projects/site/env/preview/DROP_ME", nil, nil)

	// Deploy now: the production branch at its head.
	var d1 projects.Deployment
	h.must(alice, 201, "POST", "/api/v1/projects/site/deployments", nil, &d1)
	if d1.Branch != "main" || d1.Commit != h.repo.Commits[1] || d1.Kind != store.KindProduction || d1.Status != store.StatusQueued ||
		d1.LogURL != "http://ferry.localhost:8080/deployments/"+d1.ID {
		t.Fatalf("deploy now = %+v", d1)
	}
	d1 = h.waitDeployment(alice, d1.ID, store.StatusReady)
	if got, want := h.serve("site", "production"), "commit "+h.repo.Commits[1]+" greeting hello-prod"; got != want {
		t.Fatalf("production serves %q, want %q", got, want)
	}
	if !d1.Production || d1.URL != "http://"+d1.ID+"--site.localhost:8081" || d1.AliasURL != "http://site.localhost:8081" {
		t.Fatalf("ready deployment %+v", d1)
	}
	var logs struct {
		Lines []projects.LogLine
		Next  int64
	}
	h.must(alice, 200, "GET", "/api/v1/deployments/"+d1.ID+"/logs", nil, &logs)
	if len(logs.Lines) == 0 || logs.Next != logs.Lines[len(logs.Lines)-1].Seq || !strings.Contains(fmt.Sprint(logs.Lines), "building "+h.repo.Commits[1]) {
		t.Fatalf("logs = %+v", logs)
	}
	var tail struct{ Lines []projects.LogLine }
	h.must(alice, 200, "GET", fmt.Sprintf("/api/v1/deployments/%s/logs?after=%d", d1.ID, logs.Next), nil, &tail)
	if len(tail.Lines) != 0 {
		t.Fatalf("lines after the last one: %+v", tail)
	}

	// A branch goes to its preview alias with the preview env vars.
	var d2 projects.Deployment
	h.must(alice, 201, "POST", "/api/v1/projects/site/deployments", map[string]string{"branch": "feature"}, &d2)
	d2 = h.waitDeployment(alice, d2.ID, store.StatusReady)
	if d2.Kind != store.KindPreview || d2.Alias != site.BranchAlias("site", "feature") {
		t.Fatalf("branch deployment %+v", d2)
	}
	if got := h.serve("site", d2.Alias); !strings.HasSuffix(got, "greeting hello-preview") {
		t.Fatalf("preview serves %q", got)
	}
	// A commit of the production branch.
	var d3 projects.Deployment
	h.must(alice, 201, "POST", "/api/v1/projects/site/deployments", map[string]string{"branch": "main", "commit": h.repo.Commits[0]}, &d3)
	d3 = h.waitDeployment(alice, d3.ID, store.StatusReady)
	if got := h.serve("site", "production"); !strings.HasPrefix(got, "commit "+h.repo.Commits[0]) {
		t.Fatalf("production serves %q after deploying commit 0", got)
	}

	// A fork's build (as intake enqueues it) gets no env vars at all.
	var fork *store.Deployment
	err := h.st.InTx(h.ctx, func(st *store.Store, tx pgx.Tx) error {
		var err error
		fork, _, err = projects.Enqueue(h.ctx, st, tx, h.svcRiver(), projects.EnqueueParams{Fork: true,
			DeploymentCreateParams: store.DeploymentCreateParams{ProjectID: p.ID, CommitSHA: h.repo.Commits[1], Ref: "fork-branch",
				PRNumber: 9, Kind: store.KindPreview, Alias: site.PRAlias(9)}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	h.waitDeployment(alice, fork.ID, store.StatusReady)
	if got := h.serve("site", "pr-9"); !strings.HasSuffix(got, "greeting ") {
		t.Fatalf("fork build got env vars: %q", got)
	}

	// Rollback and promote move the production alias only.
	var moved projects.Deployment
	h.must(alice, 200, "POST", "/api/v1/deployments/"+d1.ID+"/rollback", nil, &moved)
	if !moved.Production || h.serve("site", "production") != "commit "+h.repo.Commits[1]+" greeting hello-prod" {
		t.Fatalf("rollback to d1: %+v serves %q", moved, h.serve("site", "production"))
	}
	r = h.do(alice, "POST", "/api/v1/deployments/"+d3.ID+"/rollback", nil)
	if code, msg := r.errorCode(); r.status != 409 || code != "conflict" || !strings.Contains(msg, "promote it instead") {
		t.Fatalf("rollback to a newer deployment = %d %s", r.status, r.body)
	}
	h.must(alice, 409, "POST", "/api/v1/deployments/"+d1.ID+"/promote", nil, nil) // already in production
	h.must(alice, 200, "POST", "/api/v1/deployments/"+d2.ID+"/promote", nil, nil)
	if got := h.serve("site", "production"); !strings.HasSuffix(got, "greeting hello-preview") {
		t.Fatalf("production after promoting the preview serves %q", got)
	}
	var got projects.Project
	h.must(alice, 200, "GET", "/api/v1/projects/site", nil, &got)
	if got.ProductionDeploymentID != d2.ID {
		t.Fatalf("productionDeploymentId = %q, want %q", got.ProductionDeploymentID, d2.ID)
	}
	h.must(alice, 200, "POST", "/api/v1/deployments/"+d1.ID+"/rollback", nil, nil)
	var aliases struct{ Aliases []projects.Alias }
	h.must(alice, 200, "GET", "/api/v1/projects/site/aliases", nil, &aliases)
	if len(aliases.Aliases) != 3 || aliases.Aliases[2].Name != "production" || aliases.Aliases[2].DeploymentID != d1.ID {
		t.Fatalf("aliases = %+v", aliases)
	}

	// Cancel a running build; a finished one cannot be.
	h.builder.block = make(chan struct{})
	var d4 projects.Deployment
	h.must(alice, 201, "POST", "/api/v1/projects/site/deployments", map[string]string{"branch": "feature"}, &d4)
	h.waitDeployment(alice, d4.ID, store.StatusBuilding)
	h.must(alice, 200, "POST", "/api/v1/deployments/"+d4.ID+"/cancel", nil, &d4)
	if d4.Status != store.StatusCanceled {
		t.Fatalf("canceled = %+v", d4)
	}
	r = h.do(alice, "POST", "/api/v1/deployments/"+d4.ID+"/cancel", nil)
	if code, msg := r.errorCode(); r.status != 409 || code != "conflict" || !strings.Contains(msg, "is canceled") {
		t.Fatalf("second cancel = %d %s", r.status, r.body)
	}
	h.builder.block = nil
	h.must(alice, 409, "POST", "/api/v1/deployments/"+d4.ID+"/promote", nil, nil) // not ready

	// Redeploy builds the same commit of the same line again.
	var d5 projects.Deployment
	h.must(alice, 201, "POST", "/api/v1/deployments/"+d3.ID+"/redeploy", nil, &d5)
	if d5.ID == d3.ID || d5.Commit != d3.Commit || d5.Branch != "main" || d5.Kind != store.KindProduction {
		t.Fatalf("redeploy = %+v", d5)
	}
	h.waitDeployment(alice, d5.ID, store.StatusReady)

	// A failing build ends failed with its reason.
	h.builder.fail.Store(true)
	var d6 projects.Deployment
	h.must(alice, 201, "POST", "/api/v1/projects/site/deployments", map[string]string{"branch": "feature"}, &d6)
	d6 = h.waitDeployment(alice, d6.ID, store.StatusFailed)
	if !strings.Contains(d6.Error, "npm run build exited with 1") {
		t.Fatalf("failed deployment error = %q", d6.Error)
	}
	h.builder.fail.Store(false)

	// Filters and pages.
	var page projects.DeploymentList
	h.must(alice, 200, "GET", "/api/v1/projects/site/deployments?branch=feature", nil, &page)
	if len(page.Deployments) != 3 {
		t.Fatalf("branch=feature gave %d deployments", len(page.Deployments))
	}
	h.must(alice, 200, "GET", "/api/v1/projects/site/deployments?pr=9", nil, &page)
	if len(page.Deployments) != 1 || page.Deployments[0].ID != fork.ID {
		t.Fatalf("pr=9 gave %+v", page.Deployments)
	}
	h.must(alice, 200, "GET", "/api/v1/projects/site/deployments?status=failed,canceled", nil, &page)
	if len(page.Deployments) != 2 || page.Deployments[0].ID != d6.ID || page.Deployments[1].ID != d4.ID {
		t.Fatalf("status=failed,canceled gave %+v", page.Deployments)
	}
	seen := map[string]bool{}
	cursor := ""
	for {
		page = projects.DeploymentList{}
		h.must(alice, 200, "GET", "/api/v1/projects/site/deployments?limit=2&cursor="+cursor, nil, &page)
		for _, d := range page.Deployments {
			if seen[d.ID] {
				t.Fatalf("deployment %s on two pages", d.ID)
			}
			seen[d.ID] = true
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != 7 {
		t.Fatalf("paging saw %d deployments, want 7", len(seen))
	}

	// Settings; the name is fixed once deployed.
	var upd projects.Project
	h.must(alice, 200, "PATCH", "/api/v1/projects/site", map[string]any{"productionBranch": "release",
		"settings": map[string]any{"buildForks": true, "requireForkApproval": true, "overrides": map[string]any{"buildCommand": "npm run build:prod", "outputDirectory": "out"}}}, &upd)
	if upd.ProductionBranch != "release" || !upd.Settings.RequireForkApproval || *upd.Settings.Overrides.BuildCommand != "npm run build:prod" {
		t.Fatalf("updated %+v", upd)
	}
	// Retention: the project's fields over the server's defaults; a value that would delete too much is refused.
	h.must(alice, 200, "PATCH", "/api/v1/projects/site", map[string]any{"settings": map[string]any{"buildForks": true,
		"requireForkApproval": true, "retention": map[string]any{"rollbackWindow": 3, "previewGraceDays": 2}}}, &upd)
	var ret projects.Retention
	h.must(alice, 200, "GET", "/api/v1/projects/site/retention", nil, &ret)
	if ret.Policy.RollbackWindow != 3 || ret.Policy.PreviewGraceDays != 2 || ret.Policy.MinAgeHours != 24 || ret.Last != nil {
		t.Fatalf("retention = %+v", ret)
	}
	r = h.do(alice, "PATCH", "/api/v1/projects/site", map[string]any{"settings": map[string]any{"buildForks": true, "retention": map[string]any{"minAgeHours": -5}}})
	if code, msg := r.errorCode(); r.status != 400 || code != "invalid" || !strings.Contains(msg, "minAgeHours") {
		t.Fatalf("negative min age = %d %s", r.status, r.body)
	}
	r = h.do(alice, "PATCH", "/api/v1/projects/site", map[string]any{"name": "renamed"})
	if code, msg := r.errorCode(); r.status != 409 || code != "conflict" || !strings.Contains(msg, "cannot be renamed") {
		t.Fatalf("rename = %d %s", r.status, r.body)
	}

	// Deletion runs in the background; the project answers with its progress until it is gone.
	var del projects.Project
	h.must(alice, 202, "DELETE", "/api/v1/projects/site", nil, &del)
	if del.Deletion == nil {
		t.Fatalf("delete answered %+v", del)
	}
	h.must(alice, 409, "POST", "/api/v1/projects/site/deployments", nil, nil) // being deleted
	waitFor(t, "the project to be deleted", func() bool {
		r := h.do(alice, "GET", "/api/v1/projects/site", nil)
		return r.status == http.StatusNotFound
	})
	objs, err := h.storage.List(h.ctx, site.ProjectPrefix("site"))
	if err != nil || len(objs) != 0 {
		t.Fatalf("storage left after deletion: %v %v", objs, err)
	}
	if n := h.count(`SELECT count(*) FROM deployments`) + h.count(`SELECT count(*) FROM project_env`); n != 0 {
		t.Fatalf("%d rows left after deletion", n)
	}
	// The name is free again.
	h.must(alice, 201, "POST", "/api/v1/projects", map[string]any{"gitUrl": h.repo.Bare, "name": "site"}, nil)
}
