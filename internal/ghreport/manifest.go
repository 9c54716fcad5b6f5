package ghreport

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"

	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Manifest is a GitHub App manifest (the App manifest flow): what GitHub fills in on its "create a GitHub App"
// page, so that the operator only names the App and clicks Create.
type Manifest struct {
	Name               string            `json:"name,omitempty"`
	URL                string            `json:"url"`
	HookAttributes     map[string]any    `json:"hook_attributes"`
	RedirectURL        string            `json:"redirect_url"`
	CallbackURLs       []string          `json:"callback_urls"`
	SetupURL           string            `json:"setup_url,omitempty"`
	Public             bool              `json:"public"`
	DefaultPermissions map[string]string `json:"default_permissions"`
	DefaultEvents      []string          `json:"default_events"`
	RequestOAuth       bool              `json:"request_oauth_on_install"`
}

// AppManifest is Ferry's App for a server at publicURL: the permissions and events the README lists, the
// webhook at /webhooks/github, GitHub sign-in's callback, redirectPath for the code GitHub hands back, and the
// dashboard's projects page as the setup URL, where GitHub sends the operator after installing the App.
func AppManifest(publicURL, name, redirectPath string, public bool) (Manifest, error) {
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return Manifest{}, ferry.Errorf(ferry.EINVALID, "the App manifest needs the server's public URL (--public-url), got %q", publicURL)
	}
	root := strings.TrimSuffix(publicURL, "/")
	return Manifest{
		Name: name, URL: root,
		HookAttributes: map[string]any{"url": root + "/webhooks/github", "active": true},
		RedirectURL:    root + redirectPath,
		CallbackURLs:   []string{root + "/auth/github/callback"},
		SetupURL:       root + "/projects",
		Public:         public,
		DefaultPermissions: map[string]string{
			"contents": "read", "metadata": "read", "deployments": "write", "pull_requests": "write",
			"issues": "write", "statuses": "write", "checks": "write",
		},
		DefaultEvents: []string{"push", "pull_request", "check_run", "repository"},
	}, nil
}

// ManifestFormURL is where the dashboard's form posts the manifest: the personal page, or the organization's.
func ManifestFormURL(githubURL, org, state string) string {
	root := strings.TrimSuffix(githubURL, "/")
	if root == "" {
		root = "https://github.com"
	}
	p := root + "/settings/apps/new"
	if org != "" {
		p = root + "/organizations/" + url.PathEscape(org) + "/settings/apps/new"
	}
	return p + "?state=" + url.QueryEscape(state)
}

// JSON renders the manifest for the form's hidden field.
func (m Manifest) JSON() string {
	b, _ := json.Marshal(m)
	return string(b)
}

// AppCredentials is what GitHub returns once it has created the App from the manifest: everything Ferry needs to
// act as it. Keep them as secrets (encrypted at rest).
type AppCredentials struct {
	ID            int64
	Slug          string
	HTMLURL       string
	PrivateKeyPEM string
	WebhookSecret string
	ClientID      string
	ClientSecret  string
}

// ManifestConvert exchanges the one-time code GitHub redirected back with for the new App's credentials
// (POST /app-manifests/{code}/conversions, unauthenticated; the code is good for an hour, once).
func ManifestConvert(ctx context.Context, cfg Config, code string) (*AppCredentials, error) {
	if code == "" || strings.ContainsAny(code, "/?#% ") || len(code) > 200 {
		return nil, ferry.Errorf(ferry.EINVALID, "the App manifest code is missing or malformed: start the App creation again")
	}
	cfg, root, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := newReporter(cfg, newClient(cfg, root, cfg.Transport))
	var ac *github.AppConfig
	err = r.retry(ctx, "create the GitHub App from its manifest", permNone, func(ctx context.Context) error {
		var err error
		ac, _, err = r.client.Apps.CompleteAppManifest(ctx, code)
		return err
	})
	if err != nil {
		return nil, err
	}
	creds := &AppCredentials{ID: ac.GetID(), Slug: ac.GetSlug(), HTMLURL: ac.GetHTMLURL(), PrivateKeyPEM: ac.GetPEM(),
		WebhookSecret: ac.GetWebhookSecret(), ClientID: ac.GetClientID(), ClientSecret: ac.GetClientSecret()}
	if creds.ID <= 0 || creds.PrivateKeyPEM == "" || creds.WebhookSecret == "" {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "GitHub's answer to the App manifest conversion lacks the App id, key or webhook secret")
	}
	if _, err := parseRSAKey([]byte(creds.PrivateKeyPEM)); err != nil {
		return nil, err
	}
	return creds, nil
}
