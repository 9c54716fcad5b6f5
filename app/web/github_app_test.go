package web_test

import (
	"html"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ferryhq/ferry/app"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
	"github.com/ferryhq/ferry/proxy"
)

// appStack is a stack with no GitHub App, the fake GitHub as both its API and its web pages (--github-url),
// and a secret key to store a created App with.
func appStack(t *testing.T) (*stack, *ghfake.Server) {
	t.Helper()
	gh := ghfake.New(t)
	keyFile := filepath.Join(t.TempDir(), "secret.key")
	if _, err := store.EnsureSecretKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	s := newStackWith(t, func(_ string, _ *proxy.Config, ac *app.Config) {
		ac.GitHubAPIURL, ac.GitHubURL, ac.SecretKeyFile, ac.WebhookSecret = gh.URL, gh.URL, keyFile, ""
	})
	return s, gh
}

var manifestFormRE = regexp.MustCompile(`<form method="post" action="([^"]+)" id="github-app-create">`)

// TestGitHubAppPageOwnerOnly: only the server's first account sees the manifest form and may finish the flow;
// another signed-in user gets 403 on both, and nothing is stored.
func TestGitHubAppPageOwnerOnly(t *testing.T) {
	s, gh := appStack(t)
	owner := s.signup()
	other := s.signup()
	resp, body := owner.get("/settings/github-app")
	m := manifestFormRE.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("owner: %d\n%s", resp.StatusCode, body)
	}
	action, _ := url.Parse(html.UnescapeString(m[1]))
	if !strings.HasPrefix(action.String(), gh.URL+"/settings/apps/new?state=") {
		t.Fatalf("form action %s", action)
	}
	if resp, body := other.get("/settings/github-app"); resp.StatusCode != http.StatusForbidden || strings.Contains(body, "github-app-create") ||
		!strings.Contains(body, "owner") {
		t.Fatalf("another user: %d\n%s", resp.StatusCode, body)
	}
	// The owner's state in another user's session is refused too, before GitHub is asked anything.
	code := gh.ManifestCode(map[string]any{"hook_attributes": map[string]any{"url": s.appURL + "/webhooks/github"}})
	if resp, _ := other.get("/settings/github-app/created?code=" + code + "&state=" + url.QueryEscape(action.Query().Get("state"))); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another user's return: %d", resp.StatusCode)
	}
	if resp, body := owner.get("/settings/github-app/created?code=" + code + "&state=" + url.QueryEscape(action.Query().Get("state")+"x")); resp.StatusCode != http.StatusForbidden ||
		!strings.Contains(body, "nothing was stored") {
		t.Fatalf("a tampered state: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := owner.get("/settings/github-app/created?state=" + url.QueryEscape(action.Query().Get("state"))); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(body, "code") {
		t.Fatalf("no code: %d\n%s", resp.StatusCode, body)
	}
	if c := gh.CallsMatching("POST /app-manifests/*/conversions"); len(c) != 0 {
		t.Fatalf("GitHub was asked to convert: %v", ghfake.Lines(c))
	}
	if _, err := s.st.GitHubAppGet(s.ctx); err == nil {
		t.Fatal("an App was stored")
	}
}

// TestBrowserGitHubApp clicks through the page in Chromium: the owner picks an organization, the manifest form
// posts to GitHub (the fake, whose "create" page answers at once) within the page's CSP, GitHub sends the
// browser back, and the page shows the App in use with its install link.
func TestBrowserGitHubApp(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: drives Chromium")
	}
	s, gh := appStack(t)
	b := newChromium(t, s.ctx)
	b.do("sign up and open the GitHub App page",
		chromedp.Navigate(s.appURL+"/signup"),
		chromedp.SendKeys(chromedp.CSS("#email"), "owner@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "correct horse battery"),
		chromedp.Click(chromedp.CSS("form.stack button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/projects/new"]`)),
		chromedp.Navigate(s.appURL+"/settings/github-app"),
		chromedp.WaitVisible(chromedp.CSS("#app-org")),
		chromedp.SendKeys(chromedp.CSS("#app-org"), "acme-corp"),
		chromedp.Click(chromedp.CSS("#github-app-options button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(`#github-app-create[action*="/organizations/acme-corp/settings/apps/new"]`)),
		chromedp.Click(chromedp.CSS("#github-app-submit")),
		chromedp.WaitVisible(chromedp.CSS("#github-app-in-use")),
	)
	if got := b.text("#github-app-install"); !strings.Contains(got, "Install") {
		t.Errorf("install link: %q", got)
	}
	if href := b.evalString(`document.querySelector("#github-app-install").href`); href != gh.URL+"/apps/ferry-test/installations/new" {
		t.Errorf("install link goes to %s", href)
	}
	forms := gh.ManifestForms()
	if len(forms) != 1 || forms[0].Org != "acme-corp" || forms[0].State == "" || forms[0].Manifest["redirect_url"] != s.appURL+"/settings/github-app/created" {
		t.Fatalf("GitHub's page got: %+v", forms)
	}
	if c := gh.CallsMatching("POST /app-manifests/*/conversions"); len(c) != 1 || c[0].Auth != ghfake.AuthNone || c[0].Status != http.StatusCreated {
		t.Fatalf("conversions: %+v", c)
	}
	if a, err := s.st.GitHubAppGet(s.ctx); err != nil || a.AppID != gh.AppID {
		t.Fatalf("stored App: %+v, %v", a, err)
	}
	if v := b.csp.violations(); len(v) > 0 {
		t.Errorf("CSP violations: %v", v)
	}
}
