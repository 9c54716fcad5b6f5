package web_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds Debian's chromium; without it the test skips locally and fails in CI.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; CI must apt-get install chromium")
	}
	t.Skip("chromium is not installed: apt-get install chromium")
	return ""
}

// artifacts is where screenshots go: $FERRY_ARTIFACTS, or a temp folder that outlives the test.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FERRY_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "ferry-artifacts-"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// slowBuild is a site whose build prints lines over a few seconds, so a page can watch them arrive.
func slowBuild(version string) map[string]string {
	return map[string]string{
		"ferry.json": `{"buildCommand": "echo compiling ` + version + `; sleep 1; echo step two; sleep 1; echo compiled ` + version + `", "outputDirectory": "."}`,
		"index.html": "<!doctype html><title>site</title><h1>" + version + "</h1>",
	}
}

// TestBrowser drives the dashboard in a real Chromium: sign up, create a project from a git fixture, watch
// queued → building → ready without a reload, see log lines stream, open the preview, deploy a second version
// and roll production back to the first.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: drives Chromium through real builds; run without -short")
	}
	out := artifacts(t)
	s := newStack(t)

	// Each build waits 2s before it starts, so that "queued" is there to be seen (a test-only trigger).
	if _, err := s.pool.Exec(s.ctx, `
		CREATE FUNCTION test_slow_start() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$;
		CREATE TRIGGER test_slow_start BEFORE UPDATE ON deployments FOR EACH ROW
			WHEN (OLD.status = 'queued' AND NEW.status = 'building') EXECUTE FUNCTION test_slow_start();`); err != nil {
		t.Fatal(err)
	}
	r, err := s.git.CreateRepo("acme/browser", []map[string]string{slowBuild("v1")})
	if err != nil {
		t.Fatal(err)
	}
	gitURL := s.gitURL + r.Path

	// Every tab is watched for Content-Security-Policy reports: the dashboard has no inline code to refuse.
	b := newChromium(t, s.ctx)
	defer func() {
		if v := b.csp.violations(); len(v) != 0 {
			t.Errorf("CSP violations on the dashboard: %q", v)
		}
	}()

	// 1. Sign up.
	b.do("sign up",
		chromedp.Navigate(s.appURL+"/signup"),
		chromedp.SendKeys(chromedp.CSS("#email"), "browser@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "correct horse battery"),
		chromedp.Click(chromedp.CSS("form.stack button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/projects/new"]`)),
	)

	// 2. Create a project from the git fixture.
	b.do("create project",
		chromedp.Click(chromedp.CSS(`a[href="/projects/new"]`)),
		chromedp.WaitVisible(chromedp.CSS("#git_url")),
		chromedp.SendKeys(chromedp.CSS("#git_url"), gitURL),
		chromedp.SendKeys(chromedp.CSS("#name"), "browser"),
		chromedp.Click(chromedp.CSS("form.stack button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#deployments-body tr .badge")),
	)

	// 3. Watch the status change on the project page with no reload: a marker on window survives only if the
	// page is never reloaded, and an observer records every badge text.
	b.eval(`window.__noReload = true; window.__seen = [];
		(function () {
			var b = document.querySelector("#deployments-body tr .badge");
			window.__seen.push(b.textContent);
			new MutationObserver(function () {
				var t = document.querySelector("#deployments-body tr .badge").textContent;
				if (window.__seen[window.__seen.length - 1] !== t) window.__seen.push(t);
			}).observe(document.getElementById("deployments-body"), {subtree: true, childList: true, characterData: true, attributes: true});
		})(); true`)
	b.waitJS(`document.querySelector("#deployments-body tr .badge").textContent === "Ready"`, time.Minute)
	seen := b.evalString(`window.__seen.join(",")`)
	if seen != "Queued,Building,Ready" || !b.eval(`window.__noReload === true`) {
		t.Fatalf("statuses seen %s (no reload: %v), want Queued,Building,Ready without a reload", seen, b.eval(`window.__noReload === true`))
	}
	v1 := s.latest("browser")
	// The production line and the aliases follow without a reload: v1 went live as the first production build.
	b.waitJS(`(document.getElementById("production-deployment") || {}).textContent === "`+v1.ID+`" &&
		document.querySelector('#aliases tr[data-alias="production"]') !== null &&
		document.querySelector('#aliases tr[data-alias="production"]').textContent.indexOf("`+v1.ID+`") >= 0 &&
		document.querySelector('#deployments-body tr[data-id="`+v1.ID+`"] .tag') !== null`, 30*time.Second)
	if !b.eval(`window.__noReload === true`) {
		t.Fatal("the project page reloaded to show production")
	}
	b.shot(out, "project.png")
	// The same page at phone width has no sideways scrolling.
	b.do("phone width", chromedp.EmulateViewport(390, 844))
	b.waitJS(`window.innerWidth === 390 && document.documentElement.clientWidth === 390`, 10*time.Second)
	overflow := b.eval(`document.documentElement.scrollWidth > window.innerWidth + 1`)
	wide := b.evalString(`Array.from(document.querySelectorAll("body *")).filter(function (e) {
		return e.getBoundingClientRect().right > window.innerWidth + 1 && !(e.parentElement && e.parentElement.closest(".table-wrap"));
	}).map(function (e) { return e.tagName + "." + e.className + "#" + e.id + "=" + Math.round(e.getBoundingClientRect().right) + "/" + window.innerWidth; }).join(" ")`)
	b.shot(out, "project-phone.png")
	b.do("desktop width", chromedp.EmulateViewport(1280, 1000))
	b.waitJS(`window.innerWidth === 1280`, 10*time.Second)
	if overflow {
		t.Errorf("the project page scrolls sideways at 390px; too wide: %s", wide)
	}

	// 4 and 5. The deployment page has the log; its preview link serves the built page.
	b.do("deployment page",
		chromedp.Click(chromedp.CSS(`#deployments-body tr a[href="/deployments/`+v1.ID+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("#deployment-url a")),
	)
	logText := b.text("#build-log")
	previewURL := b.evalString(`document.querySelector("#deployment-url a").href`)
	if !strings.Contains(logText, "compiled v1") {
		t.Errorf("the deployment page's log lacks the build output: %q", logText)
	}
	b.do("open preview", chromedp.Click(chromedp.CSS("#deployment-url a")), chromedp.WaitVisible(chromedp.CSS("h1")))
	if h1 := b.text("h1"); h1 != "v1" || !strings.Contains(previewURL, v1.ID+"--browser.localhost:"+s.proxyPort) {
		t.Fatalf("preview %s shows %q, want v1", previewURL, h1)
	}

	// Deploy a second version and watch its log lines arrive on the deployment page.
	pushFiles(t, r.Bare, slowBuild("v2"))
	b.do("deploy v2",
		chromedp.Navigate(s.appURL+"/projects/browser"),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/deploy"] button`)),
		chromedp.Click(chromedp.CSS(`form[action$="/deploy"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#build-log-empty, #build-log li")),
	)
	// While it runs, Cancel is offered and Redeploy is not.
	if !b.eval(`document.querySelector('#deployment-actions form[action$="/cancel"]') !== null && document.querySelector('#deployment-actions form[action$="/redeploy"]') === null`) {
		t.Errorf("a running deployment's buttons: %s", b.evalString(`document.getElementById("deployment-actions").innerText`))
	}
	b.eval(`window.__noReload = true; window.__lines = [];
		new MutationObserver(function () {
			var n = document.querySelectorAll("#build-log li").length;
			var st = document.getElementById("deployment-status").textContent;
			window.__lines.push(n + ":" + st);
		}).observe(document.getElementById("build-log"), {childList: true, subtree: true}); true`)
	b.waitJS(`document.getElementById("deployment-status").textContent === "Ready"`, time.Minute)
	lines := b.evalString(`window.__lines.join(" ")`)
	logText = b.text("#build-log")
	streamed := strings.Count(lines, ":Building")
	if streamed < 2 || !b.eval(`window.__noReload === true`) || !strings.Contains(logText, "compiled v2") {
		t.Fatalf("log growth %q (no reload: %v), want lines added batch by batch while building; log %q", lines, b.eval(`window.__noReload === true`), logText)
	}
	// Once ready, without a reload: no Cancel, Redeploy offered, no Promote (it went to production itself).
	buttons := `Array.from(document.querySelectorAll("#deployment-actions form")).map(function (f) { return f.action.split("/").pop(); }).join(",") + "|" + document.getElementById("deployment-production").textContent.trim()`
	b.waitJS(buttons+` === "redeploy|production"`, 20*time.Second)
	b.shot(out, "deployment.png")
	v2 := s.latest("browser")
	if v2.ID == v1.ID {
		t.Fatal("the second deployment was not created")
	}
	prodURL := fmt.Sprintf("http://browser.localhost:%s/", s.proxyPort)

	// 6. Roll back to v1 from another tab, with the project page and v2's page open: both follow without a
	// reload, and production serves v1 again.
	b.eval(`window.__noReload = true`)
	proj := b.tab()
	proj.do("open the project page", chromedp.Navigate(s.appURL+"/projects/browser"), chromedp.WaitVisible(chromedp.CSS("#live.live-on")))
	proj.waitJS(`(document.getElementById("production-deployment") || {}).textContent === "`+v2.ID+`"`, 20*time.Second)
	proj.eval(`window.__noReload = true`)
	other := b.tab()
	other.waitPage(prodURL, "v2")
	other.do("roll back",
		chromedp.Navigate(s.appURL+"/deployments/"+v1.ID),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/deployments/`+v1.ID+`/rollback"] button`)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`document.querySelector('form[action="/deployments/`+v1.ID+`/rollback"] button').click(), true`)(ctx, tg)
			return err
		}),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	other.waitPage(prodURL, "v1")
	proj.waitJS(`document.getElementById("production-deployment").textContent === "`+v1.ID+`" &&
		document.querySelector('#aliases tr[data-alias="production"]').textContent.indexOf("`+v1.ID+`") >= 0 &&
		document.querySelector('#deployments-body tr[data-id="`+v2.ID+`"] form[action$="/promote"]') !== null &&
		document.querySelector('#deployments-body tr[data-id="`+v2.ID+`"] .tag') === null &&
		document.querySelector('#deployments-body tr[data-id="`+v1.ID+`"] .tag') !== null`, 20*time.Second)
	b.waitJS(buttons+` === "redeploy,promote|"`, 20*time.Second)
	if !proj.eval(`window.__noReload === true`) || !b.eval(`window.__noReload === true`) {
		t.Fatal("a page reloaded to follow the rollback")
	}

	// A deployment made elsewhere (Redeploy in the other tab) appears at the top of the project page, and
	// becomes production there when it is ready.
	other.do("redeploy", chromedp.Navigate(s.appURL+"/deployments/"+v1.ID),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/redeploy"] button`)),
		// A click by script finds the button in the DOM as it is now: the live actions fragment may have been
		// swapped in since WaitVisible found it, which leaves a node id that no longer exists.
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`document.querySelector('form[action$="/redeploy"] button').click(), true`)(ctx, tg)
			return err
		}),
		chromedp.WaitVisible(chromedp.CSS(".flash")))
	v3 := s.latest("browser")
	if v3.ID == v2.ID || v3.ID == v1.ID {
		t.Fatal("the redeploy made no deployment")
	}
	proj.waitJS(`document.querySelector("#deployments-body tr").dataset.id === "`+v3.ID+`"`, 20*time.Second)
	proj.waitJS(`document.querySelector("#deployments-body tr .badge").textContent === "Ready" &&
		document.getElementById("production-deployment").textContent === "`+v3.ID+`"`, time.Minute)
	if !proj.eval(`window.__noReload === true`) {
		t.Fatal("the project page reloaded to show the new deployment")
	}
	proj.shot(out, "project-live.png")
}

// tab opens another tab in the same browser (same cookies), closed at the end of the test.
func (b *browser) tab() *browser {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("open a tab: %v", err)
	}
	if b.csp != nil {
		b.csp.watch(b.t, ctx)
	}
	return &browser{t: b.t, ctx: ctx, csp: b.csp}
}

// browser runs steps in one Chromium tab, failing the test on errors.
type browser struct {
	t   *testing.T
	ctx context.Context
	csp *cspWatch // nil: not watched
}

// step bounds one step, so that a page that never shows an element fails the test instead of hanging it.
func (b *browser) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, 90*time.Second)
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		dctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		where, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
		b.t.Fatalf("%s: %v; the page: %.2000s", what, err, where)
	}
}

func (b *browser) eval(expr string) bool {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *browser) evalString(expr string) string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return v
}

func (b *browser) shot(dir, name string) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// waitJS polls a JavaScript condition in the page.
func (b *browser) waitJS(cond string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for !b.eval(cond) {
		if time.Now().After(deadline) {
			ctx, cancel := b.step()
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
			cancel()
			b.t.Fatalf("%s never held; page: %.3000s", cond, html)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitPage opens url until its h1 says want (the proxy trusts an alias for a moment).
func (b *browser) waitPage(url, want string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("h1")))
		var h1 string
		if err == nil {
			h1, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
		}
		cancel()
		if err == nil && h1 == want {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s shows %q (%v), want %q", url, h1, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pushFiles commits files on top of main in the bare repository.
func pushFiles(t *testing.T, bare string, files map[string]string) {
	t.Helper()
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("clone", "-q", "-b", "main", bare, ".")
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("add", "-A")
	git("commit", "-q", "-m", "next version")
	git("push", "-q", "origin", "main")
}
