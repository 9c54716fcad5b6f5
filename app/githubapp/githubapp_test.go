package githubapp_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/ferryhq/ferry/app/githubapp"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
	"github.com/ferryhq/ferry/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestPrecedence: each group of credentials given by flags wins over the stored App's; the rest come from the
// stored App, which a second holder (another replica) reads on Reload; a second App is refused and stores
// nothing; without a secret key nothing can be saved.
func TestPrecedence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))
	gh := ghfake.New(t)
	cipher, err := store.NewEnvCipher(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	cfg := githubapp.Config{Store: st, Cipher: cipher, GitHub: ghreport.Config{APIURL: gh.URL},
		Static: githubapp.Static{WebhookSecret: "flag-secret", FallbackWebhookSecret: "dev-secret"}}
	live, err := githubapp.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c := live.Current(); c.App != nil || string(c.WebhookSecret) != "flag-secret" || live.Reporter(1) != nil {
		t.Fatalf("before any App: %+v", c)
	}
	if _, err := live.InstallationToken(ctx, 1); ferry.ErrorCode(err) != ferry.EUNAVAILABLE {
		t.Errorf("a token without an App: %v", err)
	}
	if d, err := live.HookDeliveries(ctx, ghreport.HookDeliveriesParams{}); err != nil || d != nil {
		t.Errorf("deliveries without an App: %v %v", d, err)
	}
	creds := &ghreport.AppCredentials{ID: gh.AppID, Slug: "ferry-test", PrivateKeyPEM: string(gh.PrivateKeyPEM),
		WebhookSecret: "app-secret", ClientID: "Iv1.x", ClientSecret: "client-secret"}
	if err := live.Save(ctx, &ghreport.AppCredentials{ID: 5, PrivateKeyPEM: "not a key", WebhookSecret: "s"}, 0); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("a bad key: %v", err)
	}
	if _, err := st.GitHubAppGet(ctx); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Fatalf("a bad key was stored: %v", err)
	}
	if err := live.Save(ctx, creds, 0); err != nil {
		t.Fatal(err)
	}
	c := live.Current()
	if c.App == nil || c.AppID != gh.AppID || !c.FromDashboard || string(c.WebhookSecret) != "flag-secret" || c.ClientID != "Iv1.x" {
		t.Fatalf("after Save: id %d, from dashboard %t, secret %q, client %q", c.AppID, c.FromDashboard, c.WebhookSecret, c.ClientID)
	}
	if err := live.Save(ctx, creds, 0); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("a second App: %v", err)
	}
	// Another replica: flags give the App id (theirs wins), the OAuth client; the secret comes from the row.
	other := cfg
	other.Static = githubapp.Static{AppID: 42, PrivateKey: gh.PrivateKeyPEM, ClientID: "flag-client", ClientSecret: "flag-client-secret", FallbackWebhookSecret: "dev-secret"}
	replica, err := githubapp.New(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	rc := replica.Current()
	if rc.AppID != 42 || rc.FromDashboard || string(rc.WebhookSecret) != "app-secret" || rc.ClientID != "flag-client" {
		t.Fatalf("replica: id %d, from dashboard %t, secret %q, client %q", rc.AppID, rc.FromDashboard, rc.WebhookSecret, rc.ClientID)
	}
	// Without the key, the stored App is ignored and nothing can be saved.
	noKey := cfg
	noKey.Cipher = nil
	nk, err := githubapp.New(ctx, noKey)
	if err != nil {
		t.Fatal(err)
	}
	if nk.Current().App != nil || nk.CanStore() {
		t.Fatal("a holder without the secret key uses or stores an App")
	}
	if err := nk.Save(ctx, creds, 0); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("Save without a key: %v", err)
	}
	// A key other than the one it was sealed with: a clear error at start.
	wrong := cfg
	wrong.Cipher, _ = store.NewEnvCipher(bytes.Repeat([]byte{4}, 32))
	if _, err := githubapp.New(ctx, wrong); ferry.ErrorCode(err) != ferry.EINTERNAL {
		t.Errorf("another secret key: %v", err)
	}
}
