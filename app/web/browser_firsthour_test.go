package web_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// brokenSite fails its build the way Vite does on a syntax error: a coloured error line, a code frame with
// the file and line, a stack trace, and a coloured closing brace as its very last line (issue 18: that brace
// was the whole error once).
func brokenSite() map[string]string {
	return map[string]string{
		"ferry.json": `{"buildCommand": "sh build.sh", "outputDirectory": "."}`,
		"build.sh": "echo 'vite v7.3.8 building for production...'\n" +
			"printf '\\033[32m✓\\033[39m 2 modules transformed.\\n'\n" +
			"printf '\\033[31m✗\\033[39m Build failed in 82ms\\n' >&2\n" +
			"printf '\\033[31merror during build:\\n' >&2\n" +
			"printf '\\033[31m[builtin:vite-transform] Error:\\033[0m Unexpected token\\n' >&2\n" +
			"echo '   ╭─[ src/App.jsx:3:3 ]' >&2\n" +
			"echo ' 3 │   }' >&2\n" +
			"for i in 1 2 3 4 5 6; do echo \"    at frame$i (node_modules/rolldown/dist/x.mjs:$i:1)\" >&2; done\n" +
			"printf '}\\033[39m\\n' >&2\nexit 1\n",
		"index.html": "<!doctype html><title>site</title><h1>broken</h1>",
	}
}

// goodSite builds and serves version.
func goodSite(version string) map[string]string {
	return map[string]string{
		"ferry.json": `{"buildCommand": "sh build.sh", "outputDirectory": "."}`,
		"build.sh":   "printf '\\033[36mvite v7.3.8\\033[39m building for production...\\n'\nprintf '\\033[32m✓\\033[39m built in 12ms\\n'\n",
		"index.html": "<!doctype html><title>site</title><h1>" + version + "</h1>",
	}
}

// TestFirstHour walks what a new user does in the first hour, at desktop width and at 390px, and saves a
// screenshot of each screen: sign up, create a project, a build that fails (its error shown above the log and
// the log opened at the error line, highlighted, colours rendered), a fix, a ready build, a second version,
// and a rollback through its confirmation dialog.
func TestFirstHour(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: three builds in Chromium")
	}
	out := artifacts(t)
	s := newStack(t)
	r, err := s.git.CreateRepo("acme/firsthour", []map[string]string{brokenSite()})
	if err != nil {
		t.Fatal(err)
	}
	b := newChromium(t, s.ctx)
	defer func() {
		if v := b.csp.violations(); len(v) != 0 {
			t.Errorf("CSP violations on the dashboard: %q", v)
		}
	}()
	// both takes a screenshot at desktop width and at 390px, and checks that nothing at 390px needs sideways
	// scrolling: the page itself does not scroll, and every button and link is inside the viewport.
	both := func(name string) {
		t.Helper()
		b.shot(out, name+".png")
		b.do("phone width", chromedp.EmulateViewport(390, 844))
		b.waitJS(`window.innerWidth === 390`, 10*time.Second)
		if b.eval(`document.documentElement.scrollWidth > window.innerWidth + 1`) {
			t.Errorf("%s scrolls sideways at 390px", name)
		}
		off := b.evalString(`Array.from(document.querySelectorAll("main button, main a, main input")).filter(function (e) {
			var r = e.getBoundingClientRect();
			return r.width > 0 && (r.right > window.innerWidth + 1 || r.left < -1);
		}).map(function (e) { return e.tagName + ":" + e.textContent.trim().slice(0, 30) + "@" + Math.round(e.getBoundingClientRect().right); }).join(", ")`)
		if off != "" {
			t.Errorf("%s at 390px: controls outside the screen: %s", name, off)
		}
		b.shot(out, name+"-phone.png")
		b.do("desktop width", chromedp.EmulateViewport(1280, 900))
		b.waitJS(`window.innerWidth === 1280`, 10*time.Second)
	}

	b.do("sign up",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(s.appURL+"/signup"),
		chromedp.SendKeys(chromedp.CSS("#email"), "first@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "correct horse battery"),
		chromedp.Click(chromedp.CSS("form.stack button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/projects/new"]`)),
	)
	both("1-projects-empty")
	b.do("new project form", chromedp.Click(chromedp.CSS(`a[href="/projects/new"]`)), chromedp.WaitVisible(chromedp.CSS("#git_url")))
	b.do("create project",
		chromedp.SendKeys(chromedp.CSS("#git_url"), s.gitURL+r.Path),
		chromedp.SendKeys(chromedp.CSS("#name"), "firsthour"),
		chromedp.Click(chromedp.CSS("form.stack button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#deployments-body tr .badge")),
	)
	b.waitJS(`document.querySelector("#deployments-body tr .badge").textContent === "Failed"`, 2*time.Minute)
	if got := b.text("#live"); got != "Live updates on" {
		t.Errorf("the connection line reads %q, want \"Live updates on\"", got)
	}
	both("2-project-failed")

	// The failed deployment explains itself: the error lines above the log, the log opened at them.
	failed := s.latest("firsthour")
	b.do("failed deployment", chromedp.Navigate(s.appURL+"/deployments/"+failed.ID), chromedp.WaitVisible(chromedp.CSS("#deployment-error")))
	box := b.text("#deployment-error")
	if !strings.Contains(box, "[builtin:vite-transform] Error: Unexpected token") || !strings.Contains(box, "src/App.jsx:3:3") ||
		strings.Contains(box, "frame6") || strings.Contains(box, "\x1b") {
		t.Errorf("the error box says %q; want the error line and its location, no stack frames or escapes", box)
	}
	b.waitJS(`document.querySelector("#log-error.log-err-focus") !== null`, 10*time.Second)
	if got := b.text("#log-error .log-line"); !strings.Contains(got, "Unexpected token") {
		t.Errorf("the highlighted line is %q, want the error line", got)
	}
	// Opened at the error: the highlighted line is inside the log's visible area.
	if !b.eval(`(function () { var l = document.getElementById("build-log").getBoundingClientRect(),
		e = document.getElementById("log-error").getBoundingClientRect(); return e.top >= l.top && e.bottom <= l.bottom; })()`) {
		t.Error("the log does not open at its error line")
	}
	if !b.eval(`document.querySelector("#build-log .ansi-red") !== null && document.querySelector("#build-log .ansi-green") !== null`) {
		t.Error("the log's ANSI colours are not rendered as classes")
	}
	logText := b.text("#build-log")
	if strings.Contains(logText, "\x1b") || strings.Contains(logText, "attempt 1 of") {
		t.Errorf("the log shows escapes or 'attempt 1 of': %q", logText)
	}
	if n := strings.Count(logText, "Unexpected token"); n != 2 { // the output line, and the failure line once
		t.Errorf("the error is in the log %d times, want 2 (its output line and the failure summary):\n%s", n, logText)
	}
	// Search finds and counts.
	b.do("search the log", chromedp.SendKeys(chromedp.CSS("#log-search"), "frame"))
	if got := b.text("#log-matches"); got != "6 matches" {
		t.Errorf("searching for frame: %q, want 6 matches", got)
	}
	b.eval(`var q = document.getElementById("log-search"); q.value = ""; q.dispatchEvent(new Event("input")); true`)
	if !b.eval(`document.querySelector('details[data-step="clone"]').open === false && document.querySelector('details[data-step="build"]').open`) {
		t.Error("a cleared search does not fold the log back to its error")
	}
	both("3-deployment-failed")

	// The fix: a second commit, deployed from the project page, ready.
	pushFiles(t, r.Bare, goodSite("v1"))
	b.do("deploy the fix",
		chromedp.Navigate(s.appURL+"/projects/firsthour"),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/deploy"] button`)),
		chromedp.Click(chromedp.CSS(`form[action$="/deploy"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#deployment-status")),
	)
	b.waitJS(`document.getElementById("deployment-status").textContent === "Ready"`, 2*time.Minute)
	b.waitJS(`!document.getElementById("deployment-url").hidden`, 20*time.Second)
	v1 := s.latest("firsthour")
	if b.eval(`document.getElementById("deployment-error").hidden === false`) {
		t.Error("a ready deployment shows an error box")
	}
	both("4-deployment-ready")

	pushFiles(t, r.Bare, goodSite("v2"))
	b.do("deploy v2",
		chromedp.Navigate(s.appURL+"/projects/firsthour"),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/deploy"] button`)),
		chromedp.Click(chromedp.CSS(`form[action$="/deploy"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#deployment-status")),
	)
	b.waitJS(`document.getElementById("deployment-status").textContent === "Ready"`, 2*time.Minute)
	v2 := s.latest("firsthour")
	b.do("project page", chromedp.Navigate(s.appURL+"/projects/firsthour"), chromedp.WaitVisible(chromedp.CSS("#deployments-body tr .badge")))
	b.waitJS(`(document.getElementById("production-deployment") || {}).textContent === "`+v2.ID+`"`, 30*time.Second)
	both("5-project-ready")

	// Roll back to v1: the dialog asks first; Cancel leaves production alone, Roll back moves it.
	rollback := `form[action="/deployments/` + v1.ID + `/rollback"] button`
	b.do("open v1", chromedp.Navigate(s.appURL+"/deployments/"+v1.ID), chromedp.WaitVisible(chromedp.CSS(rollback)))
	both("6-deployment-rollback-offered")
	b.do("ask to roll back", chromedp.Click(chromedp.CSS(rollback)), chromedp.WaitVisible(chromedp.CSS("#confirm-ok")))
	if got := b.text("#confirm-text"); !strings.Contains(got, "Roll production back to "+v1.ID) {
		t.Errorf("the confirmation says %q", got)
	}
	b.shot(out, "7-rollback-confirm.png")
	b.do("cancel", chromedp.Click(chromedp.CSS("#confirm-cancel")))
	b.waitJS(`!document.querySelector("dialog#confirm").open`, 5*time.Second)
	if b.text("#deployment-production") != "" ||
		!b.eval(`document.querySelector('`+rollback+`') !== null && location.pathname === "/deployments/`+v1.ID+`"`) {
		t.Fatal("canceling the dialog did not leave production alone")
	}
	b.do("phone width", chromedp.EmulateViewport(390, 844))
	b.do("roll back at 390px", chromedp.Click(chromedp.CSS(rollback)), chromedp.WaitVisible(chromedp.CSS("#confirm-ok")))
	b.shot(out, "7-rollback-confirm-phone.png")
	b.do("confirm", chromedp.Click(chromedp.CSS("#confirm-ok")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	b.do("desktop width", chromedp.EmulateViewport(1280, 900))
	b.waitJS(`document.getElementById("deployment-production").textContent.trim() === "production"`, 20*time.Second)
	b.waitJS(`document.getElementById("build-log").textContent.indexOf("production rolled back to this deployment") >= 0`, 20*time.Second)
	both("8-rolled-back")

	// Settings: the name is fixed now, and says why; no fork options without a GitHub App.
	b.do("settings", chromedp.Navigate(s.appURL+"/projects/firsthour/settings"), chromedp.WaitVisible(chromedp.CSS("#name")))
	if !b.eval(`document.getElementById("name").disabled && document.getElementById("name-hint").textContent.indexOf("cannot change") >= 0`) {
		t.Error("the name field is not disabled with its reason once deployments exist")
	}
	if b.eval(`document.getElementById("build_forks") !== null`) {
		t.Error("fork options shown for a project without a GitHub App")
	}
	both("9-settings")
	b.do("projects list", chromedp.Navigate(s.appURL+"/projects"), chromedp.WaitVisible(chromedp.CSS(".card .latest")))
	if got := b.text(".card .latest"); !strings.Contains(got, "Ready") || !strings.Contains(got, "main @") {
		t.Errorf("the project card's latest deployment reads %q", got)
	}
	both("10-projects")

	// A token, with its copy button; the page fits 390px.
	b.do("create a token",
		chromedp.Navigate(s.appURL+"/account/tokens"),
		chromedp.WaitVisible(chromedp.CSS("#token-name")),
		chromedp.SendKeys(chromedp.CSS("#token-name"), "laptop"),
		chromedp.Click(chromedp.CSS(`form[action="/account/tokens"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`button[data-copy="new-token"]`)),
		chromedp.Click(chromedp.CSS(`button[data-copy="new-token"]`)),
	)
	b.waitJS(`document.querySelector('button[data-copy="new-token"]').textContent === "Copied" ||
		window.getSelection().toString() === document.getElementById("new-token").textContent.trim()`, 5*time.Second)
	both("11-tokens")
}
