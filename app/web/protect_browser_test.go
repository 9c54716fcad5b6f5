package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/ferryhq/ferry/app"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/protect"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/proxy"
)

// oauthFake is GitHub's OAuth web flow and the two REST calls the members' sign-in makes, for one user whose
// readable repositories the test changes.
type oauthFake struct {
	srv   *httptest.Server
	mu    sync.Mutex
	repos []string
	// authorizes counts visits of the authorize page: each is one sign-in.
	authorizes atomic.Int32
}

func (f *oauthFake) setRepos(r ...string) { f.mu.Lock(); f.repos = r; f.mu.Unlock() }

func newOAuthFake(t *testing.T, login string) *oauthFake {
	f := &oauthFake{}
	const code, token = "the-code", "ghu_member"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		f.authorizes.Add(1)
		q := r.URL.Query()
		if q.Get("client_id") != "Iv1.client" || q.Get("state") == "" {
			http.Error(w, "bad authorize request", http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.PostFormValue("client_secret") != "client-secret" || r.PostFormValue("code") != code {
			fmt.Fprint(w, `{"error":"bad_verification_code"}`)
			return
		}
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"bearer","scope":""}`, token)
	})
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"message":"Bad credentials"}`)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			h(w, r)
		}
	}
	mux.HandleFunc("GET /user", authed(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"login":%q,"id":4242,"type":"User"}`, login)
	}))
	mux.HandleFunc("GET /repos/{owner}/{repo}", authed(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		name := r.PathValue("owner") + "/" + r.PathValue("repo")
		for _, rp := range f.repos {
			if rp == name {
				fmt.Fprintf(w, `{"full_name":%q,"private":true}`, rp)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not Found"}`)
	}))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// TestBrowserProtectedPreview protects a project's previews from the dashboard and visits them in Chromium: an
// anonymous visitor is sent to sign in with (fake) GitHub, comes back to the exact preview path as a member and
// sees it; production stays public; logging out ends access; a visitor who cannot read the repository gets a
// clear 403; the password page lets a wrong password fail and the right one in.
func TestBrowserProtectedPreview(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a full stack and Chromium")
	}
	gh := newOAuthFake(t, "octocat")
	gh.setRepos("org/mine")
	key := []byte("a protection key shared by app and proxy, 0123456789")
	keyFile := filepath.Join(t.TempDir(), "protection.key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	s := newStackWith(t, func(appURL string, pc *proxy.Config, ac *app.Config) {
		pc.HandoffKey, pc.SignInURL = key, appURL
		ac.GitHubClientID, ac.GitHubClientSecret, ac.GitHubAPIURL = "Iv1.client", "client-secret", gh.srv.URL
		ac.ProtectionKeyFile = keyFile
	})
	owner := s.signup()
	if resp := owner.post("/projects", url.Values{"git_url": {s.repo("<h1>production v1</h1>")}, "name": {"mine"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create project: %d", resp.StatusCode)
	}
	s.waitStatus(s.latest("mine").ID, store.StatusReady)
	// Members are the readers of the project's GitHub repository; this project comes from a plain git URL, so
	// link it as the App would.
	if _, err := s.pool.Exec(s.ctx, `UPDATE projects SET repository = 'org/mine' WHERE name = 'mine'`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, body := range map[string]string{"index.html": "<h1>preview home</h1>", "deep/page.html": "<h1>deep preview</h1>"} {
		_ = os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := site.NewStore(s.storage).Publish(s.ctx, site.PublishParams{Project: "mine", Dir: dir, Aliases: []string{"pr-1"}}); err != nil {
		t.Fatal(err)
	}

	// The dashboard's Protection section: previews for members only.
	if _, body := owner.get("/projects/mine/settings"); !strings.Contains(body, `id="mode-previews"`) {
		t.Fatal("the settings page has no Protection section")
	}
	if resp := owner.post("/projects/mine/protection", url.Values{"mode": {"previews"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save protection: %d %.300s", resp.StatusCode, resp.Header.Get("X-Test-Body"))
	}
	if ps, err := protect.Get(s.ctx, s.storage, "mine"); err != nil || ps.Mode != protect.Previews || !ps.Members {
		t.Fatalf("protection.json %+v, %v", ps, err)
	}

	b := newChromium(t, s.ctx)
	pr := "http://pr-1--mine.localhost:" + s.proxyPort
	// 1. A member: sent to sign in, back on the exact path, sees the preview.
	b.do("member opens a protected preview",
		chromedp.Navigate(pr+"/deep/page?x=1#top"),
		chromedp.WaitVisible(chromedp.CSS("h1")),
	)
	if h1, href := b.text("h1"), b.evalString("location.href"); h1 != "deep preview" || href != pr+"/deep/page?x=1#top" {
		t.Fatalf("after signing in: %q at %s", h1, href)
	}
	if n := gh.authorizes.Load(); n != 1 {
		t.Fatalf("the anonymous visitor went through GitHub's sign-in %d times, want 1", n)
	}
	// 2. Production stays public.
	b.do("production", chromedp.Navigate("http://mine.localhost:"+s.proxyPort+"/"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if h1 := b.text("h1"); h1 != "production v1" {
		t.Fatalf("production shows %q", h1)
	}
	// 3. Logging out ends access: the next visit signs in again, and GitHub now says this user cannot read the
	// repository, so the dashboard answers with a clear 403.
	b.do("log out", chromedp.Navigate(pr+"/__ferry/logout"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if h1 := b.text("h1"); h1 != "Signed out" {
		t.Fatalf("logout page: %q", h1)
	}
	gh.setRepos()
	b.do("non-member", chromedp.Navigate(pr+"/deep/page"), chromedp.WaitVisible(chromedp.CSS("main")))
	if body := b.evalString("document.body.innerText"); !strings.Contains(body, "cannot read org/mine") || strings.Contains(body, "deep preview") {
		t.Fatalf("non-member sees: %.1000s", body)
	}
	if href := b.evalString("location.href"); !strings.HasPrefix(href, s.appURL+"/protect/callback") {
		t.Fatalf("non-member ends at %s", href)
	}

	// 4. A shared password for people outside GitHub.
	if resp := owner.post("/projects/mine/protection", url.Values{"mode": {"previews"}, "password": {"let me in please"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("set password: %d %.300s", resp.StatusCode, resp.Header.Get("X-Test-Body"))
	}
	b.do("clear cookies", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{})
		return err
	}))
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.do("password page", chromedp.Navigate(pr+"/deep/page"), chromedp.WaitVisible(chromedp.CSS("h1")))
		if b.eval(`document.querySelector("input[name=password]") !== null`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // the proxy reads protection.json again within its alias TTL
	}
	b.do("wrong password",
		chromedp.SendKeys(chromedp.CSS("input[name=password]"), "not the password"),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("p[role=alert]")),
	)
	if msg := b.text("p[role=alert]"); msg != "Wrong password." {
		t.Fatalf("after a wrong password: %q", msg)
	}
	b.do("right password",
		chromedp.SendKeys(chromedp.CSS("input[name=password]"), "let me in please"),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("h1")),
	)
	b.waitJS(`document.querySelector("h1").textContent === "deep preview"`, 10*time.Second)
	if href := b.evalString("location.href"); href != pr+"/deep/page" {
		t.Fatalf("after the password: %s", href)
	}
}
