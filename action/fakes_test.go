package action

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// oidcServer stands in for the Actions runtime's token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL). It checks the
// bearer token and the audience the way GitHub does and mints an unsigned JWT with the sub a trust policy sees.
type oidcServer struct {
	*httptest.Server
	requestToken string
	sub          string

	mu       sync.Mutex
	issued   []string
	requests int
}

func newOIDCServer(t *testing.T, sub string) *oidcServer {
	t.Helper()
	s := &oidcServer{requestToken: "runtime-request-token-" + fmt.Sprint(time.Now().UnixNano()), sub: sub}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requests++
		if r.Method != http.MethodGet || r.Header.Get("Authorization") != "Bearer "+s.requestToken {
			t.Errorf("OIDC request: method %s, Authorization %q; want GET with the request token", r.Method, r.Header.Get("Authorization"))
			http.Error(w, `{"message":"bad credentials"}`, http.StatusUnauthorized)
			return
		}
		if got := r.URL.Query().Get("audience"); got != "sts.amazonaws.com" {
			t.Errorf("OIDC audience = %q, want sts.amazonaws.com", got)
			http.Error(w, `{"message":"bad audience"}`, http.StatusBadRequest)
			return
		}
		claims, _ := json.Marshal(map[string]any{"sub": s.sub, "aud": "sts.amazonaws.com", "iss": "https://token.actions.githubusercontent.com", "n": len(s.issued)})
		tok := "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(claims) + ".c2ln"
		s.issued = append(s.issued, tok)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"value": tok})
	}))
	t.Cleanup(s.Close)
	return s
}

// issuedTokens returns the tokens handed out so far.
func (s *oidcServer) issuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// stsServer speaks STS's Query protocol (form-encoded POST, XML answers) for AssumeRoleWithWebIdentity. It
// accepts only a token the OIDC server issued and only the configured role, and answers with the configured
// keys (versitygw's, so that storage accepts them, or wrong ones).
type stsServer struct {
	*httptest.Server
	role, accessKey, secretKey string
	// sessionToken is what real STS always returns. versitygw has no STS sessions and refuses any
	// X-Amz-Security-Token, so the end-to-end tests that reach it set it empty.
	sessionToken string
	validToken   func(string) bool

	mu       sync.Mutex
	calls    int
	sessions []string
}

func newSTSServer(t *testing.T, role, accessKey, secretKey string, validToken func(string) bool) *stsServer {
	t.Helper()
	s := &stsServer{role: role, accessKey: accessKey, secretKey: secretKey, validToken: validToken}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve(t)))
	t.Cleanup(s.Close)
	return s
}

// callCount is how many AssumeRoleWithWebIdentity calls arrived.
func (s *stsServer) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *stsServer) serve(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.calls++
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
			t.Errorf("STS request: method %s, form error %v", r.Method, err)
			stsFail(w, http.StatusBadRequest, "InvalidAction", "bad request")
			return
		}
		if auth := r.Header.Get("Authorization"); auth != "" {
			t.Errorf("AssumeRoleWithWebIdentity was signed (Authorization %q); it must be anonymous", auth)
		}
		f := r.PostForm
		if f.Get("Action") != "AssumeRoleWithWebIdentity" || f.Get("Version") != "2011-06-15" {
			t.Errorf("STS Action=%q Version=%q", f.Get("Action"), f.Get("Version"))
			stsFail(w, http.StatusBadRequest, "InvalidAction", "unknown action")
			return
		}
		s.sessions = append(s.sessions, f.Get("RoleSessionName"))
		if !s.validToken(f.Get("WebIdentityToken")) {
			stsFail(w, http.StatusBadRequest, "InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider")
			return
		}
		if f.Get("RoleArn") != s.role {
			stsFail(w, http.StatusForbidden, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
			return
		}
		type creds struct {
			AccessKeyID     string `xml:"AccessKeyId"`
			SecretAccessKey string `xml:"SecretAccessKey"`
			SessionToken    string `xml:"SessionToken"`
			Expiration      string `xml:"Expiration"`
		}
		type result struct {
			Credentials                 creds  `xml:"Credentials"`
			SubjectFromWebIdentityToken string `xml:"SubjectFromWebIdentityToken"`
			Audience                    string `xml:"Audience"`
			AssumedRoleUser             struct {
				Arn           string `xml:"Arn"`
				AssumedRoleID string `xml:"AssumedRoleId"`
			} `xml:"AssumedRoleUser"`
			Provider string `xml:"Provider"`
		}
		type response struct {
			XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleWithWebIdentityResponse"`
			Result  result   `xml:"AssumeRoleWithWebIdentityResult"`
			Meta    struct {
				RequestID string `xml:"RequestId"`
			} `xml:"ResponseMetadata"`
		}
		var out response
		out.Result.Credentials = creds{s.accessKey, s.secretKey, s.sessionToken, time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
		out.Result.Audience = "sts.amazonaws.com"
		out.Result.Provider = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
		out.Result.AssumedRoleUser.Arn = strings.Replace(s.role, ":role/", ":assumed-role/", 1) + "/" + f.Get("RoleSessionName")
		out.Result.AssumedRoleUser.AssumedRoleID = "AROAEXAMPLE:" + f.Get("RoleSessionName")
		out.Meta.RequestID = "c6104cbe-af31-11e0-8154-cbc7ccf896c7"
		w.Header().Set("Content-Type", "text/xml")
		w.Write([]byte(xml.Header))
		xml.NewEncoder(w).Encode(out)
	}
}

func stsFail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>`, code, msg)
}

// strictEnv is the getenv the tests inject: it answers only the variables a test declared, and fails the test
// on any other, so that the Action cannot quietly depend on the machine's environment. Variables that the
// go-githubactions Context reads on every run and that a runner may leave unset are allowed and empty.
type strictEnv struct {
	t    *testing.T
	mu   sync.Mutex
	vars map[string]string
}

// contextVars are read by githubactions.Context() whether or not the Action uses them.
var contextVars = []string{
	"GITHUB_ACTION", "GITHUB_ACTION_PATH", "GITHUB_ACTION_REPOSITORY", "GITHUB_ACTIONS", "GITHUB_ACTOR",
	"GITHUB_ACTOR_ID", "GITHUB_API_URL", "GITHUB_BASE_REF", "GITHUB_ENV", "GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH",
	"GITHUB_GRAPHQL_URL", "GITHUB_HEAD_REF", "GITHUB_JOB", "GITHUB_PATH", "GITHUB_REF", "GITHUB_REF_NAME",
	"GITHUB_REF_PROTECTED", "GITHUB_REF_TYPE", "GITHUB_REPOSITORY", "GITHUB_REPOSITORY_OWNER",
	"GITHUB_RETENTION_DAYS", "GITHUB_RUN_ATTEMPT", "GITHUB_RUN_ID", "GITHUB_RUN_NUMBER", "GITHUB_SERVER_URL",
	"GITHUB_SHA", "GITHUB_STEP_SUMMARY", "GITHUB_TRIGGERING_ACTOR", "GITHUB_WORKFLOW", "GITHUB_WORKSPACE",
	"GITHUB_OUTPUT",
}

// optionalVars may be asked for and be unset: the inputs, the OIDC pair and the SDK's endpoint and key settings.
var optionalVars = append([]string{
	"ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
	"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
}, contextVars...)

func newStrictEnv(t *testing.T, vars map[string]string) *strictEnv {
	e := &strictEnv{t: t, vars: map[string]string{}}
	for _, k := range optionalVars {
		e.vars[k] = ""
	}
	for _, name := range inputNames {
		e.vars[inputEnv(name)] = ""
	}
	for k, v := range vars {
		e.vars[k] = v
	}
	return e
}

func (e *strictEnv) getenv(key string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.vars[key]
	if !ok {
		e.t.Errorf("ferry action read env var %s, which the test does not expect", key)
	}
	return v
}
