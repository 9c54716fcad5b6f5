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
// deployment keeps serving; closing the PR removes the alias and marks the deployments inactive.
func TestPullRequestPreview(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no %s: apt-get install -y chromium", chromiumPath)
		}
		t.Skipf("no %s: apt-get install -y chromium", chromiumPath)
	}
	w := newWorld(t)
	repo, err := w.git.CreateRepo(owner+"/"+repoName, []map[string]string{
		siteFixture(t, 0),
		siteFixture(t, 0, "Hello from Ferry", "Hello again from Ferry", "app.8d3e5b7c.js", "app.5e1f0a9b.js")})
	if err != nil {
		t.Fatal(err)
	}
	w.startProxy()
	appAddr := freeAddr(t)
	w.startApp(appAddr)
	_, proxyPort, _ := net.SplitHostPort(w.proxyAddr)
	const pr = 2
	aliasHost := fmt.Sprintf("pr-%d--%s.localhost", pr, project)

	// 1. Opened.
	t0 := time.Now()
	if code := deliver(t, appAddr, "pull_request", "e2e-opened", w.prPayload("pull_request/opened.payload.json", repo, pr, repo.Commits[0], "")); code != http.StatusAccepted {
		t.Fatalf("opened: status %d", code)
	}
	ds := w.waitDeployments(2*time.Minute, "first deployment ready", func(ds []deployment) bool {
		return len(ds) == 1 && ds[0].Status != "queued" && ds[0].Status != "building"
	})
	first := ds[0]
	if first.Status != "ready" || first.Alias != fmt.Sprintf("pr-%d", pr) || first.PR != pr {
		t.Fatalf("first deployment: %+v", first)
	}
	t.Logf("webhook to ready: %s", time.Since(t0).Round(10*time.Millisecond))

	ghDeps := w.gh.Deployments(owner, repoName)
	if len(ghDeps) != 1 || ghDeps[0].SHA != repo.Commits[0] || ghDeps[0].Environment != fmt.Sprintf("preview/pr-%d", pr) || !ghDeps[0].TransientEnvironment {
		t.Fatalf("GitHub deployments: %+v", ghDeps)
	}
	wantAliasURL := fmt.Sprintf("http://%s:%s", aliasHost, proxyPort)
	assertStates(t, w, ghDeps[0].ID, []string{"queued", "in_progress", "success"}, wantAliasURL)
	comments := w.gh.Comments(owner, repoName, pr)
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
	if code, _ := w.get(aliasHost, "/home"); code != http.StatusMovedPermanently {
		t.Errorf("_redirects /home: %d, want 301", code)
	}

	// 3. Synchronize: a second commit.
	if code := deliver(t, appAddr, "pull_request", "e2e-sync", w.prPayload("pull_request/synchronize.payload.json", repo, pr, repo.Commits[1], repo.Commits[0])); code != http.StatusAccepted {
		t.Fatalf("synchronize: status %d", code)
	}
	ds = w.waitDeployments(2*time.Minute, "second deployment ready", func(ds []deployment) bool {
		return len(ds) == 2 && ds[1].Status != "queued" && ds[1].Status != "building"
	})
	second := ds[1]
	if second.Status != "ready" {
		t.Fatalf("second deployment: %+v", second)
	}
	waitFor(t, "the alias to move", func() bool { return strings.Contains(render(t, browser, base+"/"), "Hello again from Ferry") })
	oldHost := fmt.Sprintf("%s--%s.localhost", first.ID, project)
	if got := render(t, browser, fmt.Sprintf("http://%s:%s/", oldHost, proxyPort)); !strings.Contains(got, "Hello from Ferry") || strings.Contains(got, "again") {
		t.Fatalf("old deployment URL renders %q, want the first commit's page", got)
	}
	waitFor(t, "the comment to be edited", func() bool {
		c := w.gh.Comments(owner, repoName, pr)
		return len(c) == 1 && c[0].Edits > edits && strings.Contains(c[0].Body, second.ID)
	})
	ghDeps = w.gh.Deployments(owner, repoName)
	if len(ghDeps) != 2 {
		t.Fatalf("GitHub deployments after synchronize: %+v", ghDeps)
	}
	assertStates(t, w, ghDeps[1].ID, []string{"queued", "in_progress", "success"}, wantAliasURL)

	// 4. Closed: the alias is gone and the deployment inactive.
	if code := deliver(t, appAddr, "pull_request", "e2e-closed", w.prPayload("pull_request/closed.payload.json", repo, pr, repo.Commits[1], "")); code != http.StatusAccepted {
		t.Fatalf("closed: status %d", code)
	}
	waitFor(t, "the alias to answer 404", func() bool { code, _ := w.get(aliasHost, "/"); return code == http.StatusNotFound })
	waitFor(t, "the GitHub deployment to be inactive", func() bool {
		st := w.gh.DeploymentStatuses(ghDeps[1].ID)
		return len(st) > 0 && st[len(st)-1].State == "inactive"
	})
	if c := w.gh.Comments(owner, repoName, pr); len(c) != 1 {
		t.Errorf("PR comments after close: %d, want the one sticky comment", len(c))
	}
}

// assertStates checks the deployment statuses that Ferry created (GitHub's automatic inactive ones aside).
func assertStates(t *testing.T, w *world, id int64, want []string, envURL string) {
	t.Helper()
	var got []string
	var last string
	for _, s := range w.gh.DeploymentStatuses(id) {
		if s.Auto {
			continue
		}
		got = append(got, s.State)
		last = s.EnvironmentURL
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("deployment %d statuses %v, want %v", id, got, want)
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
