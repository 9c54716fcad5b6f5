package jobs_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// TestRetentionJob runs the periodic retention job on a project with old production history, a closed pull
// request, a stale one and old logs (PostgreSQL, file storage, the fake GitHub): storage loses what the policy
// says, the database marks it inactive and drops old log lines, GitHub's deployments of the stale PR become
// inactive, and the closed PR's GitHub deployments and environment are deleted with the installation's token.
func TestRetentionJob(t *testing.T) {
	t.Parallel()
	h := newHarness(t, opts{})
	p, _ := h.newProject("web")
	settings, _ := json.Marshal(map[string]any{"retention": map[string]any{"rollbackWindow": 2}})
	if _, err := h.st.ProjectUpdate(h.ctx, store.ProjectUpdateParams{ID: p.ID, Settings: settings}); err != nil {
		t.Fatal(err)
	}
	h.gh.GrantAdministration(installationID)
	rep := h.app.Reporter(installationID)
	old := time.Now().Add(-60 * 24 * time.Hour)

	// deployment publishes a site under an id dated at, records its row as ready, and reports it to GitHub.
	deployment := func(at time.Time, name string, pr int, alias string) *store.Deployment {
		t.Helper()
		id := site.NewDeploymentIDAt(at)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>"+name+"</h1>"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := h.site.Publish(h.ctx, site.PublishParams{Project: p.Name, Dir: dir, DeploymentID: id, Aliases: []string{alias}}); err != nil {
			t.Fatal(err)
		}
		kind := store.KindPreview
		if alias == "production" {
			kind = store.KindProduction
		}
		d, err := h.st.DeploymentCreate(h.ctx, store.DeploymentCreateParams{ID: id, ProjectID: p.ID, CommitSHA: strings.Repeat("a", 40), Ref: "main", PRNumber: pr, Kind: kind, Alias: alias})
		if err != nil {
			t.Fatal(err)
		}
		env := ghreport.Environment(alias == "production", pr, "")
		ghID, err := rep.DeploymentCreate(h.ctx, ghreport.DeploymentCreateParams{Owner: owner, Repo: repoName, SHA: d.CommitSHA, Environment: env, Production: alias == "production", Project: p.Name, DeploymentID: id})
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.DeploymentStatusCreate(h.ctx, ghreport.DeploymentStatusCreateParams{Owner: owner, Repo: repoName, DeploymentID: ghID, State: ghreport.StateSuccess}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.pool.Exec(h.ctx, `UPDATE deployments SET status = 'ready', github_deployment_id = $2 WHERE id = $1`, id, ghID); err != nil {
			t.Fatal(err)
		}
		return d
	}
	var prod []*store.Deployment
	for i := range 5 {
		prod = append(prod, deployment(old.Add(time.Duration(i)*time.Hour), fmt.Sprintf("prod%d", i), 0, "production"))
	}
	closed := deployment(old, "pr5", 5, "pr-5")
	stale := deployment(old, "pr6", 6, "pr-6")
	// PR 5 closed 10 days ago (what prclose leaves behind: alias gone, rows inactive).
	if err := h.site.AliasDelete(h.ctx, p.Name, "pr-5"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.pool.Exec(h.ctx, `UPDATE deployments SET status = 'inactive', updated_at = now() - interval '10 days' WHERE id = $1`, closed.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := rep.DeploymentsDeactivate(h.ctx, owner, repoName, "preview/pr-5"); err != nil {
		t.Fatal(err)
	}
	// PR 6 is open but nobody pushed for 60 days: its alias says so.
	aliasJSON, _ := json.Marshal(site.Alias{Deployment: stale.ID, UpdatedAt: old})
	if err := h.storage.Put(h.ctx, site.AliasKey(p.Name, "pr-6"), bytes.NewReader(aliasJSON), int64(len(aliasJSON)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// Every object is 60 days old, so the minimum age protects none of it.
	root := strings.TrimPrefix(h.stURL, "file://")
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			_ = os.Chtimes(path, old, old)
		}
		return nil
	})
	// Log lines: one from 40 days ago, one from now.
	if _, err := h.st.DeploymentLogAppend(h.ctx, store.DeploymentLogAppendParams{DeploymentID: prod[4].ID, Lines: []store.LogLine{
		{Time: time.Now().Add(-40 * 24 * time.Hour), Step: "build", Line: "old line"}, {Step: "build", Line: "new line"}}}); err != nil {
		t.Fatal(err)
	}

	h.gh.Reset()
	if _, err := h.client.Insert(h.ctx, jobs.RetentionArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	h.waitJobs()

	// Storage: the current production and the 2 before it stay; the previews are in their grace.
	var left []string
	for _, d := range mustList(t, h) {
		left = append(left, d.ID)
	}
	// The closed PR's deployment lost its alias before this first run: its 7-day grace starts now.
	want := []string{prod[2].ID, prod[3].ID, prod[4].ID, stale.ID, closed.ID}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("deployments in storage %v, want %v", left, want)
	}
	if got := h.aliasTarget(p, "pr-6"); got != "" {
		t.Errorf("stale pr-6 alias still points at %s", got)
	}
	for _, d := range []*store.Deployment{prod[0], prod[1], stale} {
		got, err := h.st.DeploymentGetByID(h.ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != store.StatusInactive {
			t.Errorf("deployment %s is %s in the database, want inactive", d.ID, got.Status)
		}
	}
	if got, _ := h.st.DeploymentGetByID(h.ctx, prod[2].ID); got.Status != store.StatusReady {
		t.Errorf("a deployment inside the window is %s, want ready", got.Status)
	}
	if log := h.logText(prod[4].ID); strings.Contains(log, "old line") || !strings.Contains(log, "new line") {
		t.Errorf("build log after pruning:\n%s", log)
	}

	// GitHub: PR 6's deployment inactive; PR 5's deployment and environment gone; calls with the installation.
	ghStale := ghDeployment(t, h, "preview/pr-6")
	if sts := h.gh.DeploymentStatuses(ghStale); len(sts) == 0 || sts[len(sts)-1].State != "inactive" {
		t.Errorf("stale PR's GitHub deployment statuses %+v, want inactive last", sts)
	}
	if envs := h.gh.Environments(owner, repoName); slices.Contains(envs, "preview/pr-5") || !slices.Contains(envs, "preview/pr-6") {
		t.Errorf("GitHub environments %v: want preview/pr-5 deleted, preview/pr-6 kept", envs)
	}
	deletes := 0
	for _, c := range h.gh.Calls() {
		if c.Method == "DELETE" {
			deletes++
			if c.Auth != ghfake.AuthInstallation || c.Installation != installationID || c.Status != 204 {
				t.Errorf("%s: auth %v installation %d status %d", c, c.Auth, c.Installation, c.Status)
			}
		}
	}
	if deletes != 2 {
		t.Errorf("%d DELETE calls to GitHub, want 2 (PR 5's deployment, its environment)", deletes)
	}
	if n := counter(t, h.reg, "ferry_gc_deleted_objects_total", "deployment"); n != 2 {
		t.Errorf("ferry_gc_deleted_objects_total{kind=deployment} = %v, want 2", n)
	}

	// A second run finds nothing more to do on GitHub.
	h.gh.Reset()
	if _, err := h.client.Insert(h.ctx, jobs.RetentionArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	h.waitJobs()
	for _, c := range h.gh.Calls() {
		if c.Method == "DELETE" {
			t.Errorf("second run: %s", c)
		}
	}
}

func mustList(t *testing.T, h *harness) []site.DeploymentInfo {
	t.Helper()
	l, err := h.site.DeploymentList(h.ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func ghDeployment(t *testing.T, h *harness, env string) int64 {
	t.Helper()
	for _, d := range h.gh.Deployments(owner, repoName) {
		if d.Environment == env {
			return d.ID
		}
	}
	t.Fatalf("no GitHub deployment in %s", env)
	return 0
}
