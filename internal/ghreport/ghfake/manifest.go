package ghfake

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"sync"
	"time"
)

// manifests are the one-time codes the fake hands out as GitHub's "create App from manifest" page would.
type manifests struct {
	mu    sync.Mutex
	codes map[string]map[string]any // code -> the manifest it was issued for
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

// manifestConvert is POST /app-manifests/{code}/conversions: no authentication, each code once. The App it
// returns is this fake's own (AppID, PrivateKeyPEM), so the client can go on to act as it here; the webhook
// secret is set on the fake's webhook.
func (s *Server) manifestConvert(w http.ResponseWriter, r *http.Request) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "this endpoint takes no credentials"})
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
		"pem":            string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(s.key)})),
	})
}
