package ghfake_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
)

func sign(t *testing.T, pemKey []byte, header, claims map[string]any) string {
	t.Helper()
	block, _ := pem.Decode(pemKey)
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(header) + "." + enc(claims)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func do(t *testing.T, method, url, auth, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestJWTChecks(t *testing.T) {
	t.Parallel()
	s := ghfake.New(t)
	s.AddInstallation(5, "o/r")
	now := time.Now().Unix()
	rs256 := map[string]any{"alg": "RS256", "typ": "JWT"}
	good := map[string]any{"iss": "1", "iat": now - 30, "exp": now + 90}
	url := s.URL + "/app/installations/5/access_tokens"
	for _, tc := range []struct {
		name   string
		auth   string
		status int
	}{
		{"valid", "Bearer " + sign(t, s.PrivateKeyPEM, rs256, good), 201},
		{"iss as a number", "Bearer " + sign(t, s.PrivateKeyPEM, rs256, map[string]any{"iss": 1, "iat": now, "exp": now + 60}), 201},
		{"no auth", "", 401},
		{"token instead of JWT", "token ghs_x", 401},
		{"garbage", "Bearer a.b.c", 401},
		{"alg none", "Bearer " + sign(t, s.PrivateKeyPEM, map[string]any{"alg": "none"}, good), 401},
		{"other app", "Bearer " + sign(t, s.PrivateKeyPEM, rs256, map[string]any{"iss": "2", "iat": now, "exp": now + 60}), 401},
		{"expired", "Bearer " + sign(t, s.PrivateKeyPEM, rs256, map[string]any{"iss": "1", "iat": now - 700, "exp": now - 100}), 401},
		{"too long", "Bearer " + sign(t, s.PrivateKeyPEM, rs256, map[string]any{"iss": "1", "iat": now, "exp": now + 3600}), 401},
		{"issued in the future", "Bearer " + sign(t, s.PrivateKeyPEM, rs256, map[string]any{"iss": "1", "iat": now + 300, "exp": now + 400}), 401},
	} {
		resp, body := do(t, "POST", url, tc.auth, "")
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, resp.StatusCode, tc.status, body)
		}
	}
	resp, _ := do(t, "POST", s.URL+"/app/installations/6/access_tokens", "Bearer "+sign(t, s.PrivateKeyPEM, rs256, good), "")
	if resp.StatusCode != 404 {
		t.Errorf("unknown installation: %d", resp.StatusCode)
	}

	// The token works, as `token X` and as `Bearer X`, for its repositories only.
	_, body := do(t, "POST", url, "Bearer "+sign(t, s.PrivateKeyPEM, rs256, good), "")
	var tok struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(body), &tok); err != nil || time.Until(tok.ExpiresAt) < 50*time.Minute {
		t.Fatalf("token answer %s: %v", body, err)
	}
	for auth, want := range map[string]int{"token " + tok.Token: 200, "Bearer " + tok.Token: 200, "token nope": 401, "": 401} {
		if resp, _ := do(t, "GET", s.URL+"/repos/o/r", auth, ""); resp.StatusCode != want {
			t.Errorf("GET repo with %q: %d, want %d", auth, resp.StatusCode, want)
		}
	}
	if resp, _ := do(t, "GET", s.URL+"/repos/o/other", "token "+tok.Token, ""); resp.StatusCode != 404 {
		t.Errorf("repo outside the installation: %d, want 404", resp.StatusCode)
	}
}

func TestValidationAndPagination(t *testing.T) {
	t.Parallel()
	s := ghfake.New(t)
	s.AddToken("tok", "o/r")
	auth := "token tok"
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
	}{
		{"bad JSON", "POST", "/repos/o/r/deployments", "{", 400},
		{"no ref", "POST", "/repos/o/r/deployments", `{"environment":"production"}`, 422},
		{"deployment", "POST", "/repos/o/r/deployments", `{"ref":"abc","required_contexts":[]}`, 201},
		{"status of a missing deployment", "POST", "/repos/o/r/deployments/1/statuses", `{"state":"success"}`, 404},
		{"unknown commit state", "POST", "/repos/o/r/statuses/abc", `{"state":"done"}`, 422},
		{"long commit description", "POST", "/repos/o/r/statuses/abc", `{"state":"pending","description":"` + strings.Repeat("x", 141) + `"}`, 422},
		{"pending commit status", "POST", "/repos/o/r/statuses/abc", `{"state":"pending","context":"ci"}`, 201},
		{"required_contexts missing while ci pending", "POST", "/repos/o/r/deployments", `{"ref":"abc"}`, 409},
		{"empty comment", "POST", "/repos/o/r/issues/1/comments", `{"body":""}`, 422},
	} {
		if resp, body := do(t, tc.method, s.URL+tc.path, auth, tc.body); resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d (%s)", tc.name, resp.StatusCode, tc.status, body)
		}
	}

	for i := range 5 {
		do(t, "POST", s.URL+"/repos/o/r/issues/2/comments", auth, fmt.Sprintf(`{"body":"c%d"}`, i))
	}
	resp, body := do(t, "GET", s.URL+"/repos/o/r/issues/2/comments?per_page=2&page=2", auth, "")
	var page []ghfake.Comment
	json.Unmarshal([]byte(body), &page)
	if len(page) != 2 || page[0].Body != "c2" || page[1].Body != "c3" {
		t.Errorf("page 2 = %+v", page)
	}
	if l := resp.Header.Get("Link"); !strings.Contains(l, `page=3&per_page=2>; rel="next"`) || !strings.Contains(l, `rel="prev"`) {
		t.Errorf("Link = %s", l)
	}
	if got := len(s.CallsMatching("POST /repos/o/r/issues/*/comments")); got != 6 {
		t.Errorf("comment posts recorded = %d, want 6", got)
	}
	// Another account's comment cannot be edited.
	c := s.AddComment("o", "r", 2, "octocat", "mine")
	if resp, _ := do(t, "PATCH", fmt.Sprintf("%s/repos/o/r/issues/comments/%d", s.URL, c.ID), auth, `{"body":"x"}`); resp.StatusCode != 403 {
		t.Errorf("editing a person's comment: %d, want 403", resp.StatusCode)
	}
}

// recorder stands in for the test, to see the fake fail it.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestUnknownRouteFailsTheTest(t *testing.T) {
	t.Parallel()
	rec := &recorder{TB: t}
	s := ghfake.New(rec)
	s.AddToken("tok", "o/r")
	resp, _ := do(t, "DELETE", s.URL+"/repos/o/r/issues/comments/1", "token tok", "")
	if resp.StatusCode != 404 || len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "DELETE /repos/o/r/issues/comments/1") {
		t.Errorf("status %d, errors %q", resp.StatusCode, rec.errs)
	}
	// Handle is the extension point.
	s.Handle("GET /user/installations", func(w http.ResponseWriter, r *http.Request) {
		kind, _ := ghfake.AuthOf(r)
		fmt.Fprintf(w, `{"total_count":0,"installations":[],"auth":%q}`, kind)
	})
	if resp, body := do(t, "GET", s.URL+"/user/installations", "Bearer tok", ""); resp.StatusCode != 200 || !strings.Contains(body, `"auth":"token"`) {
		t.Errorf("extension route: %d %s", resp.StatusCode, body)
	}
}
