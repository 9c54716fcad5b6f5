package action

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/sethvargo/go-githubactions"

	"github.com/ferryhq/ferry/internal/ferry"
)

const testRole = "arn:aws:iam::123456789012:role/ferry-deploy"

func TestAWSConfigAssumesRoleWithOIDCToken(t *testing.T) {
	t.Parallel()
	oidc := newOIDCServer(t, "repo:Codertocat/Hello-World:ref:refs/heads/master")
	sts := newSTSServer(t, testRole, "AKIDEXAMPLE", "secret-example", func(tok string) bool {
		return slices.Contains(oidc.issuedTokens(), tok)
	})
	sts.sessionToken = "FwoGZXIvYXdzEXAMPLE"
	env := newStrictEnv(t, map[string]string{
		"ACTIONS_ID_TOKEN_REQUEST_URL":   oidc.URL + "/token?api-version=2.0",
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": oidc.requestToken,
		"AWS_ENDPOINT_URL_STS":           sts.URL,
	})
	var out bytes.Buffer
	gha := githubactions.New(githubactions.WithGetenv(env.getenv), githubactions.WithWriter(&out))
	cfg, err := awsConfig(context.Background(), gha, awsSettings{role: testRole, region: "eu-west-1", sessionTag: "run 42/1", getenv: env.getenv})
	if err != nil {
		t.Fatalf("awsConfig: %v", err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatalf("retrieve: %v", err)
	}
	if creds.AccessKeyID != "AKIDEXAMPLE" || creds.SecretAccessKey != "secret-example" || creds.SessionToken != "FwoGZXIvYXdzEXAMPLE" || !creds.CanExpire {
		t.Errorf("credentials = %+v, want the STS keys with an expiry", creds)
	}
	if cfg.Region != "eu-west-1" {
		t.Errorf("region = %q", cfg.Region)
	}
	if sts.callCount() != 1 || len(oidc.issuedTokens()) != 1 {
		t.Errorf("STS calls %d, OIDC requests %d; want 1 each (credentials are cached)", sts.callCount(), len(oidc.issuedTokens()))
	}
	if got := sts.sessions[0]; got != "ferry-action-run-42-1" {
		t.Errorf("RoleSessionName = %q", got)
	}
	// The OIDC token and the secret keys never reach the log unmasked.
	for _, secret := range append(oidc.issuedTokens(), "secret-example", "FwoGZXIvYXdzEXAMPLE") {
		if !strings.Contains(out.String(), "::add-mask::"+secret) {
			t.Errorf("%q was not masked; log:\n%s", secret, out.String())
		}
	}
}

func TestAWSConfigWithoutIDTokenPermission(t *testing.T) {
	t.Parallel()
	env := newStrictEnv(t, nil)
	gha := githubactions.New(githubactions.WithGetenv(env.getenv), githubactions.WithWriter(&bytes.Buffer{}))
	_, err := awsConfig(context.Background(), gha, awsSettings{role: testRole, getenv: env.getenv})
	if err == nil {
		t.Fatal("awsConfig succeeded without an OIDC token")
	}
	if !strings.Contains(err.Error(), "permissions:\n  id-token: write\n  contents: read\n  deployments: write\n  pull-requests: write") {
		t.Errorf("error does not give the permissions block:\n%v", err)
	}
	if ferry.ExitCode(err) != ferry.ExitUser {
		t.Errorf("exit code %d, want %d (the user's workflow must change)", ferry.ExitCode(err), ferry.ExitUser)
	}
}

func TestAWSConfigRoleRefused(t *testing.T) {
	t.Parallel()
	oidc := newOIDCServer(t, "repo:Codertocat/Hello-World:pull_request")
	sts := newSTSServer(t, "arn:aws:iam::123456789012:role/other", "AKID", "secret", func(tok string) bool {
		return slices.Contains(oidc.issuedTokens(), tok)
	})
	env := newStrictEnv(t, map[string]string{
		"ACTIONS_ID_TOKEN_REQUEST_URL":   oidc.URL,
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": oidc.requestToken,
		"AWS_ENDPOINT_URL":               sts.URL,
	})
	gha := githubactions.New(githubactions.WithGetenv(env.getenv), githubactions.WithWriter(&bytes.Buffer{}))
	_, err := awsConfig(context.Background(), gha, awsSettings{role: testRole, getenv: env.getenv})
	if err == nil {
		t.Fatal("awsConfig succeeded with a role the trust policy refuses")
	}
	if ferry.ErrorCode(err) != ferry.EFORBIDDEN || !strings.Contains(err.Error(), `sub "repo:Codertocat/Hello-World:pull_request"`) ||
		!strings.Contains(err.Error(), "trust policy") {
		t.Errorf("error = %v (code %s); want EFORBIDDEN naming the token's sub and the trust policy", err, ferry.ErrorCode(err))
	}
}
