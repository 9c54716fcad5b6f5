package api_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/internal/protect"
)

// TestProtectionAPI sets a project's protection, makes a share link, and rotates the key, through the API; the
// result is what the proxy reads from storage.
func TestProtectionAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	alice, mallory := h.newUser(), h.newUser()
	h.must(alice, 201, "POST", "/api/v1/projects", map[string]any{"gitUrl": h.repo.Bare, "name": "site"}, nil)

	var p projects.Protection
	h.must(alice, 200, "GET", "/api/v1/projects/site/protection", nil, &p)
	if p.Mode != protect.Public || p.HasPassword {
		t.Fatalf("default protection %+v", p)
	}
	h.must(alice, 409, "POST", "/api/v1/projects/site/share-links", map[string]any{"alias": "pr-1"}, nil)
	h.must(alice, 200, "PATCH", "/api/v1/projects/site/protection", map[string]any{"mode": "previews", "password": "a good password"}, &p)
	if p.Mode != protect.Previews || !p.HasPassword || !p.Members || p.KeyID == "" {
		t.Fatalf("after PATCH %+v", p)
	}
	r := h.do(alice, "GET", "/api/v1/projects/site/protection", nil)
	if strings.Contains(string(r.body), "a good password") || strings.Contains(string(r.body), "$2") || strings.Contains(string(r.body), `"key"`) {
		t.Fatalf("the API shows the password, its hash or the key: %s", r.body)
	}
	s, err := protect.Get(h.ctx, h.storage, "site")
	if err != nil || s.Mode != protect.Previews || !protect.CheckPassword(s.PasswordHash, "a good password") || s.KeyID != p.KeyID {
		t.Fatalf("protection.json %+v, %v", s, err)
	}
	h.must(alice, 400, "PATCH", "/api/v1/projects/site/protection", map[string]any{"mode": "secret"}, nil)
	h.must(alice, 400, "PATCH", "/api/v1/projects/site/protection", map[string]any{"password": "short"}, nil)
	h.must(alice, 400, "POST", "/api/v1/projects/site/share-links", map[string]any{"alias": "pr-1", "expiresIn": "9000h"}, nil)

	var link projects.ShareLink
	h.must(alice, 201, "POST", "/api/v1/projects/site/share-links", map[string]any{"alias": "pr-1", "expiresIn": "1h"}, &link)
	u, err := url.Parse(link.URL)
	if err != nil || u.Host != "pr-1--site.localhost:8081" {
		t.Fatalf("share link %q", link.URL)
	}
	if !protect.CheckShare(s.Key, "pr-1--site.localhost", u.Query().Get("ferry_share"), time.Now()) || time.Until(link.ExpiresAt) > time.Hour {
		t.Fatalf("share link %q does not check", link.URL)
	}

	// Rotating the key revokes the link.
	var rotated projects.Protection
	h.must(alice, 200, "PATCH", "/api/v1/projects/site/protection", map[string]any{"rotateKey": true}, &rotated)
	s2, _ := protect.Get(h.ctx, h.storage, "site")
	if rotated.KeyID == p.KeyID || protect.CheckShare(s2.Key, "pr-1--site.localhost", u.Query().Get("ferry_share"), time.Now()) || !rotated.HasPassword {
		t.Fatalf("after rotation %+v", rotated)
	}

	// Another user cannot see or change it.
	h.must(mallory, 404, "GET", "/api/v1/projects/site/protection", nil, nil)
	h.must(mallory, 404, "PATCH", "/api/v1/projects/site/protection", map[string]any{"mode": "public"}, nil)
	h.must(mallory, 404, "POST", "/api/v1/projects/site/share-links", map[string]any{}, nil)
	if s3, _ := protect.Get(h.ctx, h.storage, "site"); s3.Mode != protect.Previews {
		t.Fatal("another user changed the protection")
	}
}
