package ghfake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// manifests are the one-time codes the fake hands out as GitHub's "create App from manifest" page would.
type manifests struct {
	mu    sync.Mutex
	codes map[string]map[string]any // code -> the manifest it was issued for
	forms []ManifestForm
}

// ManifestForm is one manifest form post the fake's "create a GitHub App" page received.
type ManifestForm struct {
	// Org is the organization of /organizations/{org}/settings/apps/new, "" for the personal page.
	Org string
	// State is the state query parameter, handed back on the redirect.
	State string
	// Manifest is the decoded manifest field.
	Manifest map[string]any
	// Code is the conversion code the redirect carried.
	Code string
}

func init() {
	extraRoutes = append(extraRoutes, func(s *Server) {
		s.mux.HandleFunc("POST /settings/apps/new", s.manifestPage)
		s.mux.HandleFunc("POST /organizations/{org}/settings/apps/new", s.manifestPage)
	})
}

// ManifestCode issues a one-time conversion code for manifest, as GitHub does when the operator clicks Create
// on the page the manifest form posted to.
func (s *Server) ManifestCode(manifest map[string]any) string {
	s.manifests.mu.Lock()
	defer s.manifests.mu.Unlock()
	if s.manifests.codes == nil {
		s.manifests.codes = map[string]map[string]any{}
	}
	code := newGUID()[:20]
	s.manifests.codes[code] = manifest
	return code
}

// ManifestForms returns the manifest form posts received so far, oldest first.
func (s *Server) ManifestForms() []ManifestForm {
	s.manifests.mu.Lock()
	defer s.manifests.mu.Unlock()
	return append([]ManifestForm(nil), s.manifests.forms...)
}

// manifestPage is GitHub's "create a GitHub App" page (POST /settings/apps/new or the organization's) with the
// operator's click on "Create GitHub App" taken as given: it checks the manifest form the way GitHub reads it
// (a JSON manifest field with a redirect URL and a webhook URL), issues a code, and sends the browser to the
// manifest's redirect_url with the code and the state. A bad form gets GitHub's plain 422 page.
func (s *Server) manifestPage(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "Invalid form", http.StatusUnprocessableEntity)
		return
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.PostForm.Get("manifest")), &m); err != nil {
		http.Error(w, "Invalid GitHub App configuration: the manifest is not JSON", http.StatusUnprocessableEntity)
		return
	}
	redirect, _ := m["redirect_url"].(string)
	hook, _ := m["hook_attributes"].(map[string]any)
	hookURL, _ := hook["url"].(string)
	ru, err := url.Parse(redirect)
	if err != nil || (ru.Scheme != "http" && ru.Scheme != "https") || ru.Host == "" || hookURL == "" {
		http.Error(w, "Invalid GitHub App configuration: redirect_url and hook_attributes.url are required", http.StatusUnprocessableEntity)
		return
	}
	code := s.ManifestCode(m)
	state := r.URL.Query().Get("state")
	s.manifests.mu.Lock()
	s.manifests.forms = append(s.manifests.forms, ManifestForm{Org: r.PathValue("org"), State: state, Manifest: m, Code: code})
	s.manifests.mu.Unlock()
	q := ru.Query()
	q.Set("code", code)
	if state != "" {
		q.Set("state", state)
	}
	ru.RawQuery = q.Encode()
	http.Redirect(w, r, ru.String(), http.StatusFound)
}

// manifestConvert is POST /app-manifests/{code}/conversions: no authentication, each code once. The App it
// returns keeps this fake's AppID but gets a NEW private key, which from then on is the only one the fake's
// JWT check accepts (AppKeyPEM; PrivateKeyPEM goes stale), so that a test sees the client switch to the key
// the conversion gave; the webhook secret is set on the fake's webhook.
func (s *Server) manifestConvert(w http.ResponseWriter, r *http.Request) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "this endpoint takes no credentials"})
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"message": "Content-Type must be application/json"})
		return
	}
	code := r.PathValue("code")
	s.manifests.mu.Lock()
	m, ok := s.manifests.codes[code]
	delete(s.manifests.codes, code)
	s.manifests.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": err.Error()})
		return
	}
	s.mu.Lock()
	s.key = key
	s.mu.Unlock()
	secret := newGUID()
	hook, _ := m["hook_attributes"].(map[string]any)
	hookURL, _ := hook["url"].(string)
	s.SetWebhook(hookURL, []byte(secret))
	name, _ := m["name"].(string)
	if name == "" {
		name = "Ferry"
	}
	now := s.now().UTC().Truncate(time.Second)
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": s.AppID, "slug": s.AppSlug, "node_id": "A_1", "name": name,
		"owner":      map[string]any{"login": "acme", "type": "Organization"},
		"html_url":   s.URL + "/apps/" + s.AppSlug,
		"created_at": now, "updated_at": now,
		"client_id": "Iv1.ghfake" + s.AppSlug, "client_secret": "ghfake-client-secret-" + newGUID(),
		"webhook_secret": secret,
		"pem":            string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})),
	})
}

// AppKeyPEM is the App's private key now: PrivateKeyPEM until a manifest conversion replaces it.
func (s *Server) AppKeyPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(s.appKey())})
}

// appKey is the key App JWTs must be signed with.
func (s *Server) appKey() *rsa.PrivateKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key
}
