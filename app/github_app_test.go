package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
	"github.com/ferryhq/ferry/internal/ghwebhooks"
	"github.com/ferryhq/ferry/internal/pgtest"
)

// TestGitHubAppFromManifest: a running server with no GitHub App goes through the manifest flow against the
// fake GitHub (its "create a GitHub App" page included), and then, with no restart, accepts a webhook signed
// with the new App's secret, reports a pull request with an installation token that the fake issued for a JWT
// signed with the new App's key, and offers GitHub sign-in with the new OAuth client. Bad returns (a state of
// another session, a code GitHub no longer knows, GitHub refusing the conversion) show an error page and store
// nothing. The secrets are stored encrypted.
func TestGitHubAppFromManifest(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dbURL := pgtest.NewURL(t)
	gh := ghfake.New(t)
	gh.AddInstallation(1, "Codertocat/Hello-World")
	oldKey := gh.PrivateKeyPEM
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	keyFile := filepath.Join(t.TempDir(), "secret.key")
	if _, err := store.EnsureSecretKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	var signIn, setup string
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Listener: ln, DatabaseURL: dbURL, Storage: "file://" + t.TempDir(), PublicURL: base,
			GitHubAPIURL: gh.URL, GitHubURL: gh.URL, SecretKeyFile: keyFile, ShutdownTimeout: 5 * time.Second,
			DevSignIn:    func(link string) { signIn = link },
			NoGitHubApp:  func(u string) { setup = u },
			Ready:        func(string) { close(ready) },
			BuildCommand: []string{"/bin/sh", "-c", "echo build failed >&2; exit 2", "ferry-build"},
		}, logger)
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run ended early: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the server never got ready")
	}
	if setup != base+"/settings/github-app" {
		t.Fatalf("NoGitHubApp got %q", setup)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	st := store.New(pool)
	stored := func() int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM github_app`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// No App yet: a delivery cannot be checked, and gets 503 (GitHub keeps it for the redelivery job).
	body := ghwebhooks.Payload(t, "ping/payload.json")
	gh.SetWebhook(base+"/webhooks/github", []byte("not-the-apps-secret"))
	gh.Deliver("ping", body)
	if d := gh.HookDeliveries(); len(d) != 1 || d[0].StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a delivery before any App: %v", statuses(d))
	}

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	get := func(u string) (int, string) {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, _ := get(signIn); status != http.StatusOK {
		t.Fatalf("sign-in link: %d", status)
	}
	formRE := regexp.MustCompile(`<form method="post" action="([^"]+)" id="github-app-create">\s*<input type="hidden" name="manifest" value="([^"]+)">`)
	page := func(query string) (action, manifest string) {
		t.Helper()
		resp, err := browser.Get(setup + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' "+gh.URL) {
			t.Fatalf("the page's CSP does not let its form post to GitHub: %s", csp)
		}
		m := formRE.FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("no manifest form on the page (%d):\n%s", resp.StatusCode, b)
		}
		return html.UnescapeString(m[1]), html.UnescapeString(m[2])
	}
	post := func(action, manifest string) (int, string) {
		t.Helper()
		resp, err := browser.PostForm(action, url.Values{"manifest": {manifest}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// The organization's page, a public App: the form says so, and the manifest is Ferry's.
	action, manifest := page("?org=acme-corp&public=on&name=Ferry+test")
	if !strings.HasPrefix(action, gh.URL+"/organizations/acme-corp/settings/apps/new?state=") {
		t.Fatalf("form action %s", action)
	}
	for _, want := range []string{`"public":true`, `"name":"Ferry test"`, `"url":"` + base + `/webhooks/github"`,
		`"redirect_url":"` + base + `/settings/github-app/created"`, `"callback_urls":["` + base + `/auth/github/callback"]`, `"checks":"write"`} {
		if !strings.Contains(manifest, want) {
			t.Errorf("manifest lacks %s: %s", want, manifest)
		}
	}

	// A state that this session did not make: refused before any conversion, nothing stored.
	forged := regexp.MustCompile(`state=[^&]+`).ReplaceAllString(action, "state=forged.9999999999."+base64.RawURLEncoding.EncodeToString(make([]byte, 32)))
	if status, b := post(forged, manifest); status != http.StatusForbidden || !strings.Contains(b, "did not start in this browser session") {
		t.Fatalf("forged state: %d\n%s", status, b)
	}
	// GitHub refuses the conversion: the error page says so, nothing stored.
	gh.FailNext("POST /app-manifests/*/conversions", 1, ghfake.Fault{Status: http.StatusUnprocessableEntity, Body: `{"message":"Validation Failed"}`})
	if status, b := post(action, manifest); status < 400 || !strings.Contains(b, "class=\"error\"") {
		t.Fatalf("failed conversion: %d\n%s", status, b)
	}
	// A code that was used already: GitHub answers 404, the page says to start again, nothing stored.
	used := gh.ManifestCode(map[string]any{"hook_attributes": map[string]any{"url": "http://127.0.0.1:1/"}})
	if _, err := ghreport.ManifestConvert(ctx, ghreport.Config{APIURL: gh.URL}, used); err != nil {
		t.Fatal(err)
	}
	state := action[strings.Index(action, "state=")+len("state="):]
	if status, b := get(base + "/settings/github-app/created?code=" + used + "&state=" + state); status != http.StatusBadRequest || !strings.Contains(b, "used already") {
		t.Fatalf("reused code: %d\n%s", status, b)
	}
	if n := stored(); n != 0 {
		t.Fatalf("%d Apps stored after bad returns", n)
	}
	gh.SetWebhook(base+"/webhooks/github", []byte("not-the-apps-secret")) // the last conversion moved it
	gh.Reset()

	// The real thing, for the personal account: one form post, GitHub sends the browser back, Ferry converts.
	action, manifest = page("")
	if !strings.HasPrefix(action, gh.URL+"/settings/apps/new?state=") || !strings.Contains(manifest, `"public":false`) {
		t.Fatalf("personal form: %s %s", action, manifest)
	}
	status, b := post(action, manifest)
	if status != http.StatusOK || !strings.Contains(b, `id="github-app-in-use"`) || !strings.Contains(b, "ferry-test") {
		t.Fatalf("after the manifest flow: %d\n%s", status, b)
	}
	calls := gh.CallsMatching("POST /app-manifests/*/conversions")
	forms := gh.ManifestForms()
	if len(calls) != 1 || calls[0].Auth != ghfake.AuthNone || calls[0].Status != http.StatusCreated ||
		len(forms) == 0 || calls[0].Path != "/app-manifests/"+forms[len(forms)-1].Code+"/conversions" {
		t.Fatalf("conversion calls: %+v", calls)
	}
	if bytes.Equal(gh.AppKeyPEM(), oldKey) {
		t.Fatal("the fake's App key did not change with the conversion")
	}
	row, err := st.GitHubAppGet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if row.AppID != gh.AppID || row.Slug != "ferry-test" || bytes.Contains(row.PrivateKeySealed, []byte("PRIVATE KEY")) ||
		bytes.Contains(row.ClientSecretSealed, []byte("ghfake-client-secret")) {
		t.Fatalf("stored App: id %d, slug %q, or a secret in plain text", row.AppID, row.Slug)
	}
	// Coming back with the same code again changes nothing.
	if status, b := get(base + "/settings/github-app/created?code=" + forms[len(forms)-1].Code + "&state=" + forms[len(forms)-1].State); status != http.StatusConflict || !strings.Contains(b, "already uses GitHub App") {
		t.Fatalf("second return: %d\n%s", status, b)
	}

	// No restart: the webhook secret is the new App's (the fake signs with it) ...
	gh.Reset()
	gh.Deliver("ping", body)
	if d := gh.HookDeliveries(); len(d) == 0 || d[len(d)-1].StatusCode != http.StatusAccepted {
		t.Fatalf("a delivery signed with the new App's secret: %v", statuses(d))
	}
	// ... the workers report with an installation token for a JWT signed with the new key ...
	if _, err := st.InstallationUpsert(ctx, store.InstallationUpsertParams{ID: 1, AccountLogin: "Codertocat", AccountType: "User", AccountID: 21031067}); err != nil {
		t.Fatal(err)
	}
	gh.Deliver("pull_request", ghwebhooks.Payload(t, "pull_request/opened.payload.json"))
	for deadline := time.Now().Add(60 * time.Second); len(gh.Deployments("Codertocat", "Hello-World")) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the pull request was never reported: %v", ghfake.Lines(gh.Calls()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	tokens := gh.CallsMatching("POST /app/installations/*/access_tokens")
	if len(tokens) == 0 || tokens[0].Auth != ghfake.AuthJWT || tokens[0].Status != http.StatusCreated {
		t.Fatalf("installation token calls: %+v", tokens)
	}
	// ... and GitHub sign-in uses the new OAuth client.
	noFollow := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(base + "/auth/github")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, gh.URL+"/login/oauth/authorize?") || !strings.Contains(loc, "client_id=Iv1.ghfakeferry-test") {
		t.Fatalf("GitHub sign-in after the App was created: %d %s", resp.StatusCode, loc)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// statuses are the answers the fake's delivery attempts got.
func statuses(ds []ghfake.HookDelivery) []int {
	out := make([]int, len(ds))
	for i, d := range ds {
		out[i] = d.StatusCode
	}
	return out
}
