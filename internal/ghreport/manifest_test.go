package ghreport_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
)

// TestManifestFlow: Ferry's manifest asks for what the README lists; the code GitHub hands back converts once,
// without credentials, into an App id, key and webhook secret that work against the API at once.
func TestManifestFlow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gh := ghfake.New(t)
	m, err := ghreport.AppManifest("https://ferry.example.test/", "Ferry (acme)", "/github/app/created", false)
	if err != nil {
		t.Fatal(err)
	}
	var wire map[string]any
	if err := json.Unmarshal([]byte(m.JSON()), &wire); err != nil {
		t.Fatal(err)
	}
	hook := wire["hook_attributes"].(map[string]any)
	perms := wire["default_permissions"].(map[string]any)
	if hook["url"] != "https://ferry.example.test/webhooks/github" || wire["redirect_url"] != "https://ferry.example.test/github/app/created" ||
		wire["setup_url"] != "https://ferry.example.test/projects" ||
		perms["checks"] != "write" || perms["deployments"] != "write" || perms["contents"] != "read" || wire["public"] != false {
		t.Fatalf("manifest: %s", m.JSON())
	}
	if events := strings.Join(m.DefaultEvents, ","); events != "push,pull_request,check_run,repository" {
		t.Errorf("events = %s", events)
	}
	if got := ghreport.ManifestFormURL("https://github.com", "acme corp", "s t"); got != "https://github.com/organizations/acme%20corp/settings/apps/new?state=s+t" {
		t.Errorf("org form URL = %s", got)
	}
	if _, err := ghreport.AppManifest("ferry.example.test", "x", "/cb", false); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("manifest without a public URL: %v", err)
	}

	code := gh.ManifestCode(wire)
	creds, err := ghreport.ManifestConvert(ctx, ghreport.Config{APIURL: gh.URL}, code)
	if err != nil {
		t.Fatal(err)
	}
	if creds.ID != gh.AppID || creds.WebhookSecret == "" || creds.ClientID == "" || creds.ClientSecret == "" || !strings.Contains(creds.PrivateKeyPEM, "PRIVATE KEY") {
		t.Fatalf("credentials: id %d, secret %q, client %q", creds.ID, creds.WebhookSecret, creds.ClientID)
	}
	calls := gh.CallsMatching("POST /app-manifests/*/conversions")
	if len(calls) != 1 || calls[0].Auth != ghfake.AuthNone || calls[0].Path != "/app-manifests/"+code+"/conversions" {
		t.Fatalf("conversion calls: %+v", calls)
	}
	// The credentials work at once: the App lists its deliveries with a JWT signed by the returned key.
	app, err := ghreport.NewApp(ghreport.Config{APIURL: gh.URL}, creds.ID, []byte(creds.PrivateKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.HookDeliveries(ctx, ghreport.HookDeliveriesParams{}); err != nil {
		t.Fatalf("list deliveries with the new App: %v", err)
	}
	// ... and only the new key does: the fake's App key was replaced by the conversion.
	old, err := ghreport.NewApp(ghreport.Config{APIURL: gh.URL, Attempts: 1}, creds.ID, gh.PrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.HookDeliveries(ctx, ghreport.HookDeliveriesParams{}); ferry.ErrorCode(err) != ferry.EUNAUTHORIZED {
		t.Errorf("the key from before the conversion still works: %v", err)
	}
	// A code converts once; a malformed one is refused before any call.
	if _, err := ghreport.ManifestConvert(ctx, ghreport.Config{APIURL: gh.URL, Attempts: 1}, code); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("second conversion: %v, want ENOTFOUND", err)
	}
	gh.Reset()
	if _, err := ghreport.ManifestConvert(ctx, ghreport.Config{APIURL: gh.URL}, "../../app/installations"); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("malformed code: %v", err)
	}
	if c := gh.Calls(); len(c) != 0 {
		t.Errorf("a malformed code reached GitHub: %v", ghfake.Lines(c))
	}
}
