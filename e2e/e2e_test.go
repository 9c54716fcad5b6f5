package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium; CI installs it with `apt-get install -y chromium`.
const chromiumPath = "/usr/bin/chromium"

// TestPullRequestPreview is the whole path of issue 8: a real pull_request delivery builds the fixture in the
// sandbox, publishes it to versitygw and reports to GitHub; Chromium renders the preview and a client-side
// route on a full page load; a second commit moves the alias and edits the one comment while the old
// Deployment keeps serving; closing the PR removes the alias and marks the deployments inactive.
func TestPullRequestPreview(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no %s: apt-get install -y chromium", chromiumPath)
		}
		t.Skipf("no %s: apt-get install -y chromium", chromiumPath)
	}
	w := NewWorld(t)
	repo, err := w.Git.CreateRepo(Owner+"/"+RepoName, []map[string]string{
		SiteFixture(t, 0),
		SiteFixture(t, 0, "Hello from Ferry", "Hello again from Ferry", "app.8d3e5b7c.js", "app.5e1f0a9b.js")})
	if err != nil {
		t.Fatal(err)
	}
	w.StartProxy()
	appAddr := FreeAddr(t)
	w.StartApp(appAddr)
	_, proxyPort, _ := net.SplitHostPort(w.ProxyAddr)
	const pr = 2
	aliasHost := fmt.Sprintf("pr-%d--%s.localhost", pr, Project)

	// 1. Opened.
	t0 := time.Now()
	if code := Deliver(t, appAddr, "pull_request", "e2e-opened", w.PRPayload("pull_request/opened.payload.json", PR{Repo: repo, Number: pr, Head: repo.Commits[0]})); code != http.StatusAccepted {
		t.Fatalf("opened: status %d", code)
	}
	ds := w.WaitDeployments(2*time.Minute, "first Deployment ready", func(ds []Deployment) bool {
		return len(ds) == 1 && ds[0].Status != "queued" && ds[0].Status != "building"
	})
	first := ds[0]
	if first.Status != "ready" || first.Alias != fmt.Sprintf("pr-%d", pr) || first.PR != pr {
		t.Fatalf("first Deployment: %+v", first)
	}
	t.Logf("webhook to ready: %s", time.Since(t0).Round(10*time.Millisecond))

	waitReported(t, w, pr, first.ID)
	ghDeps := w.GH.Deployments(Owner, RepoName)
	if len(ghDeps) != 1 || ghDeps[0].SHA != repo.Commits[0] || ghDeps[0].Environment != fmt.Sprintf("preview/pr-%d", pr) || !ghDeps[0].TransientEnvironment {
		t.Fatalf("GitHub deployments: %+v", ghDeps)
	}
	wantAliasURL := fmt.Sprintf("http://%s:%s", aliasHost, proxyPort)
	assertStates(t, w, ghDeps[0].ID, []string{"queued", "in_progress", "success"}, wantAliasURL)
	comments := w.GH.Comments(Owner, RepoName, pr)
	if len(comments) != 1 || !strings.Contains(comments[0].Body, wantAliasURL) || !strings.Contains(comments[0].Body, first.ID) {
		t.Fatalf("PR comments: %+v", comments)
	}
	edits := comments[0].Edits

	// 2. The preview in a real browser: the page, then a client-side route loaded directly (SPA fallback).
	browser := newBrowser(t)
	base := fmt.Sprintf("http://%s:%s", aliasHost, proxyPort)
	if got := render(t, browser, base+"/"); !strings.Contains(got, "Hello from Ferry") {
		t.Fatalf("rendered /: %q", got)
	}
	if got := render(t, browser, base+"/about"); !strings.Contains(got, "Client-side route rendered in the browser") {
		t.Fatalf("rendered /about on a full page load: %q", got)
	}
	if got := render(t, browser, base+"/docs/getting-started"); !strings.Contains(got, "Section: getting-started") {
		t.Fatalf("rendered /docs/getting-started: %q", got)
	}
	if code, _ := w.Get(aliasHost, "/home"); code != http.StatusMovedPermanently {
		t.Errorf("_redirects /home: %d, want 301", code)
	}

	// 3. Synchronize: a second commit.
	if code := Deliver(t, appAddr, "pull_request", "e2e-sync", w.PRPayload("pull_request/synchronize.payload.json", PR{Repo: repo, Number: pr, Head: repo.Commits[1], Before: repo.Commits[0]})); code != http.StatusAccepted {
		t.Fatalf("synchronize: status %d", code)
	}
	ds = w.WaitDeployments(2*time.Minute, "second Deployment ready", func(ds []Deployment) bool {
		return len(ds) == 2 && ds[1].Status != "queued" && ds[1].Status != "building"
	})
	second := ds[1]
	if second.Status != "ready" {
		t.Fatalf("second Deployment: %+v", second)
	}
	waitFor(t, "the alias to move", func() bool { return strings.Contains(render(t, browser, base+"/"), "Hello again from Ferry") })
	oldHost := fmt.Sprintf("%s--%s.localhost", first.ID, Project)
	if got := render(t, browser, fmt.Sprintf("http://%s:%s/", oldHost, proxyPort)); !strings.Contains(got, "Hello from Ferry") || strings.Contains(got, "again") {
		t.Fatalf("old Deployment URL renders %q, want the first commit's page", got)
	}
	waitReported(t, w, pr, second.ID)
	if c := w.GH.Comments(Owner, RepoName, pr); len(c) != 1 || c[0].Edits <= edits {
		t.Fatalf("PR comments after synchronize: %+v, want the one comment edited", c)
	}
	ghDeps = w.GH.Deployments(Owner, RepoName)
	if len(ghDeps) != 2 {
		t.Fatalf("GitHub deployments after synchronize: %+v", ghDeps)
	}
	assertStates(t, w, ghDeps[1].ID, []string{"queued", "in_progress", "success"}, wantAliasURL)

	// 4. Closed: the alias is gone and the Deployment inactive.
	if code := Deliver(t, appAddr, "pull_request", "e2e-closed", w.PRPayload("pull_request/closed.payload.json", PR{Repo: repo, Number: pr, Head: repo.Commits[1]})); code != http.StatusAccepted {
		t.Fatalf("closed: status %d", code)
	}
	waitFor(t, "the alias to answer 404", func() bool { code, _ := w.Get(aliasHost, "/"); return code == http.StatusNotFound })
	waitFor(t, "the GitHub Deployment to be inactive", func() bool {
		st := w.GH.DeploymentStatuses(ghDeps[1].ID)
		return len(st) > 0 && st[len(st)-1].State == "inactive"
	})
	if c := w.GH.Comments(Owner, RepoName, pr); len(c) != 1 {
		t.Errorf("PR comments after close: %d, want the one sticky comment", len(c))
	}
}

// waitReported waits until the pull request's comment shows deployment id as ready: its row names the
// deployment's own host, which only the Ready row carries (the Queued and Building rows link the log, whose URL
// holds the id too). Ferry marks a deployment ready in its database first and then tells GitHub (deployment
// status, commit status, and the comment last), so a test that saw "ready" must wait for GitHub's side before
// it asserts it: reading the comment at once raced the final report, and under load lost.
func waitReported(t *testing.T, w *World, pr int, id string) {
	t.Helper()
	host := id + "--" + Project + ".localhost"
	waitFor(t, "the PR comment to show "+id+" ready", func() bool {
		c := w.GH.Comments(Owner, RepoName, pr)
		return len(c) == 1 && strings.Contains(c[0].Body, host)
	})
}

// assertStates checks the Deployment statuses that Ferry created (GitHub's automatic inactive ones aside).
func assertStates(t *testing.T, w *World, id int64, want []string, envURL string) {
	t.Helper()
	var got []string
	var last string
	for _, s := range w.GH.DeploymentStatuses(id) {
		if s.Auto {
			continue
		}
		got = append(got, s.State)
		last = s.EnvironmentURL
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Deployment %d statuses %v, want %v", id, got, want)
	}
	if !strings.HasPrefix(last, envURL) {
		t.Errorf("success environment_url %q, want %s", last, envURL)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// newBrowser starts headless Chromium for the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// render loads url as a full page load and returns the text the app rendered into #app.
func render(t *testing.T, browser context.Context, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#app h1"))); err != nil {
		t.Fatalf("load %s in chromium: %v", url, err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#app")))
	if err != nil {
		t.Fatalf("load %s in chromium: %v", url, err)
	}
	return text
}
