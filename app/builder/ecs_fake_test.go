package builder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ferryhq/ferry/app/buildevents"
)

// ecsFake speaks the ECS JSON 1.1 protocol (X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Op>, bodies in
// application/x-amz-json-1.1) to the real SDK client. Each operation is a function field; the fake records
// every call's decoded body.
type ecsFake struct {
	t   *testing.T
	srv *httptest.Server

	mu    sync.Mutex
	calls []ecsCall

	// ops answer an operation: the status and the JSON body. Unset operations answer 400 UnknownOperation.
	ops map[string]func(body map[string]any) (int, any)
}

type ecsCall struct {
	Op   string
	Body map[string]any
	Raw  string
}

const ecsTargetPrefix = "AmazonEC2ContainerServiceV20141113."

func newECSFake(t *testing.T) *ecsFake {
	f := &ecsFake{t: t, ops: map[string]func(map[string]any) (int, any){}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *ecsFake) serve(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	if r.Method != http.MethodPost || !strings.HasPrefix(target, ecsTargetPrefix) ||
		r.Header.Get("Content-Type") != "application/x-amz-json-1.1" || !strings.Contains(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256") {
		f.t.Errorf("ECS fake: unexpected request %s %s target=%q content-type=%q", r.Method, r.URL, target, r.Header.Get("Content-Type"))
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	op := strings.TrimPrefix(target, ecsTargetPrefix)
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		f.t.Errorf("ECS fake: %s body is not JSON: %v", op, err)
	}
	f.mu.Lock()
	f.calls = append(f.calls, ecsCall{Op: op, Body: body, Raw: string(raw)})
	h := f.ops[op]
	f.mu.Unlock()
	status, resp := http.StatusBadRequest, any(awsError("UnknownOperationException", op))
	if h != nil {
		status, resp = h(body)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp)
}

func (f *ecsFake) set(op string, h func(map[string]any) (int, any)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops[op] = h
}

// callsOf returns the recorded calls of one operation.
func (f *ecsFake) callsOf(op string) []ecsCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ecsCall
	for _, c := range f.calls {
		if c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

// awsError is a JSON 1.1 error body.
func awsError(typ, msg string) map[string]any {
	return map[string]any{"__type": typ, "message": msg}
}

// client is the real SDK client pointed at the fake, with fast retries.
func (f *ecsFake) client() *ecs.Client {
	return ecs.New(ecs.Options{
		Region: "eu-west-1", BaseEndpoint: aws.String(f.srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDAPP", "app-secret", ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxBackoff = 20 * time.Millisecond
		}),
	})
}

// task is a DescribeTasks task object.
func task(arn, status string, extra map[string]any) map[string]any {
	t := map[string]any{"taskArn": arn, "lastStatus": status, "desiredStatus": "RUNNING",
		"containers": []any{map[string]any{"name": "build", "lastStatus": status}}}
	for k, v := range extra {
		t[k] = v
	}
	return t
}

// stopped is a STOPPED task; exit < 0 leaves the exit code out (the container never ran).
func stopped(arn, stopCode, reason string, exit int, containerReason string) map[string]any {
	c := map[string]any{"name": "build", "lastStatus": "STOPPED"}
	if exit >= 0 {
		c["exitCode"] = exit
	}
	if containerReason != "" {
		c["reason"] = containerReason
	}
	t := map[string]any{"taskArn": arn, "lastStatus": "STOPPED", "desiredStatus": "STOPPED", "stoppedReason": reason,
		"containers": []any{c}}
	if stopCode != "" {
		t["stopCode"] = stopCode
	}
	return t
}

// stsFake speaks the STS Query protocol: form-encoded Action=AssumeRole&Version=2011-06-15&..., XML answers.
type stsFake struct {
	t     *testing.T
	srv   *httptest.Server
	mu    sync.Mutex
	forms []url.Values
}

func newSTSFake(t *testing.T) *stsFake {
	f := &stsFake{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost ||
			!strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			t.Errorf("STS fake: unexpected request %s %s %q", r.Method, r.URL, r.Header.Get("Content-Type"))
		}
		f.mu.Lock()
		f.forms = append(f.forms, r.PostForm)
		f.mu.Unlock()
		if r.PostForm.Get("Action") != "AssumeRole" || r.PostForm.Get("Version") != "2011-06-15" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>no</Message></Error></ErrorResponse>`)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>%s</SourceIdentity>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/ferry-build/%s</Arn>
      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:%s</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIASCOPED</AccessKeyId>
      <SecretAccessKey>scoped-secret-key</SecretAccessKey>
      <SessionToken>scoped-session-token</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <PackedPolicySize>12</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>`, r.PostForm.Get("SourceIdentity"), r.PostForm.Get("RoleSessionName"), r.PostForm.Get("RoleSessionName"),
			time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *stsFake) client() *sts.Client {
	return sts.New(sts.Options{Region: "eu-west-1", BaseEndpoint: aws.String(f.srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDAPP", "app-secret", "")})
}

func (f *stsFake) form(i int) url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i >= len(f.forms) {
		f.t.Fatalf("STS fake: %d calls, want call %d", len(f.forms), i+1)
	}
	return f.forms[i]
}

// grantsFake is a hand-written Grants with what a test needs to see and steer.
type grantsFake struct {
	mu      sync.Mutex
	issued  []buildevents.IssueParams
	revoked []string
	attempt int
	outcome buildevents.Outcome
}

func (g *grantsFake) Issue(ctx context.Context, p buildevents.IssueParams) (*buildevents.Grant, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.issued = append(g.issued, p)
	return &buildevents.Grant{ClaimToken: "fbc_claimtoken", Attempt: g.attempt}, nil
}

func (g *grantsFake) Outcome(ctx context.Context, id string) (*buildevents.Outcome, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	o := g.outcome
	return &o, nil
}

func (g *grantsFake) Revoke(ctx context.Context, id string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.revoked = append(g.revoked, id)
	return nil
}
