package action

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/sethvargo/go-githubactions"

	"github.com/ferryhq/ferry/internal/ferry"
)

// stsAudience is the audience AWS's GitHub OIDC provider expects (the IAM identity provider's client id).
const stsAudience = "sts.amazonaws.com"

// permissionsBlock is what a job needs for the Action; the error for a missing OIDC token prints it verbatim so
// that users can paste it into their workflow.
const permissionsBlock = "permissions:\n  id-token: write\n  contents: read\n  deployments: write\n  pull-requests: write"

// errNoIDToken explains the one mistake everyone makes first: the job was not given id-token: write.
var errNoIDToken = ferry.Errorf(ferry.EFORBIDDEN, "role-to-assume is set but GitHub gave this job no OIDC token "+
	"(ACTIONS_ID_TOKEN_REQUEST_URL is not set). Add this to the workflow or the job:\n\n%s\n\n"+
	"(Pull requests from forks never get an OIDC token; deploy those from a trusted workflow instead.)", permissionsBlock)

// awsSettings are the AWS knobs the Action reads, from its inputs and the SDK's standard variables.
type awsSettings struct {
	role       string
	region     string
	sessionTag string // becomes part of the role session name, so CloudTrail shows which run it was
	getenv     func(string) string
	httpClient *http.Client
}

// awsConfig returns the config that storage uses: credentials from GitHub OIDC and STS when a role is given,
// else the SDK's default chain (keys in secrets, instance roles, ...). With a role, it fetches credentials once
// before returning so that a bad trust policy fails here, with a clear message, before anything is uploaded.
func awsConfig(ctx context.Context, gha *githubactions.Action, s awsSettings) (aws.Config, error) {
	region := s.region
	for _, name := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if region == "" {
			region = s.getenv(name)
		}
	}
	if region == "" {
		region = "us-east-1"
	}
	if s.role == "" {
		return defaultChainConfig(ctx, region, s)
	}
	if s.getenv("ACTIONS_ID_TOKEN_REQUEST_URL") == "" || s.getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN") == "" {
		return aws.Config{}, errNoIDToken
	}
	opts := sts.Options{
		Region:       region,
		Credentials:  aws.AnonymousCredentials{}, // AssumeRoleWithWebIdentity is authenticated by the token
		BaseEndpoint: stsEndpoint(s.getenv),
	}
	cfg := aws.Config{Region: region}
	if s.httpClient != nil {
		opts.HTTPClient, cfg.HTTPClient = s.httpClient, s.httpClient
	}
	p := &webIdentityProvider{gha: gha, sts: sts.New(opts), role: s.role, session: sessionName(s.sessionTag)}
	cfg.Credentials = aws.NewCredentialsCache(p)
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return aws.Config{}, err
	}
	return cfg, nil
}

// stsEndpoint follows the SDK's rules for service endpoints: AWS_ENDPOINT_URL_STS, then AWS_ENDPOINT_URL, unless
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true. Read through getenv so tests can inject them.
func stsEndpoint(getenv func(string) string) *string {
	if strings.EqualFold(getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"), "true") {
		return nil
	}
	for _, name := range []string{"AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"} {
		if v := getenv(name); v != "" {
			return aws.String(v)
		}
	}
	return nil
}

// defaultChainConfig is the no-role path. Keys given as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (the usual way of
// passing secrets to a step) are read through getenv; everything else is the SDK's default chain.
func defaultChainConfig(ctx context.Context, region string, s awsSettings) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	if s.httpClient != nil {
		opts = append(opts, config.WithHTTPClient(s.httpClient))
	}
	if id, secret := s.getenv("AWS_ACCESS_KEY_ID"), s.getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(id, secret, s.getenv("AWS_SESSION_TOKEN"))))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, ferry.Errorf(ferry.EINVALID, "load AWS configuration: %w", err)
	}
	return cfg, nil
}

// webIdentityProvider trades a fresh GitHub OIDC token for role credentials each time the cache needs them, so
// a long build cannot outlive its credentials.
type webIdentityProvider struct {
	gha     *githubactions.Action
	sts     *sts.Client
	role    string
	session string
}

// Retrieve implements aws.CredentialsProvider.
func (p *webIdentityProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	token, err := p.gha.GetIDToken(ctx, stsAudience)
	if err != nil {
		var failed *githubactions.RequestFailedError
		if errors.As(err, &failed) && (failed.StatusCode == http.StatusUnauthorized || failed.StatusCode == http.StatusForbidden) {
			return aws.Credentials{}, fail(ferry.EFORBIDDEN, err, "GitHub refused an OIDC token; the job needs:\n\n%s\n\n", permissionsBlock)
		}
		return aws.Credentials{}, fail(ferry.EUNAVAILABLE, err, "request a GitHub OIDC token")
	}
	if token == "" {
		return aws.Credentials{}, ferry.Errorf(ferry.EUNAVAILABLE, "request GitHub OIDC token: empty token")
	}
	p.gha.AddMask(token)
	out, err := p.sts.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(p.role),
		RoleSessionName:  aws.String(p.session),
		WebIdentityToken: aws.String(token),
	})
	if err != nil {
		return aws.Credentials{}, stsError(p.role, subject(token), err)
	}
	c := out.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil {
		return aws.Credentials{}, ferry.Errorf(ferry.EUNAVAILABLE, "assume role %s: STS returned no credentials", p.role)
	}
	for _, secret := range []*string{c.SecretAccessKey, c.SessionToken} {
		if aws.ToString(secret) != "" {
			p.gha.AddMask(*secret)
		}
	}
	creds := aws.Credentials{
		AccessKeyID:     aws.ToString(c.AccessKeyId),
		SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken:    aws.ToString(c.SessionToken),
		Source:          "ferry action: GitHub OIDC",
	}
	if c.Expiration != nil {
		creds.CanExpire, creds.Expires = true, *c.Expiration
	}
	return creds, nil
}

// stsError tells a refused trust policy (the user's to fix, with the token's subject to match against) apart
// from STS being unreachable (retry).
func stsError(role, sub string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "AccessDenied", "InvalidIdentityToken", "IDPRejectedClaim", "ExpiredTokenException", "ExpiredToken":
			return fail(ferry.EFORBIDDEN, err, "assume role %s with the GitHub OIDC token (sub %q) was refused. "+
				"Check that the role's trust policy allows this sub and the audience %s (see the README's trust policy)",
				role, sub, stsAudience)
		case "ValidationError", "MalformedPolicyDocument":
			return fail(ferry.EINVALID, err, "assume role %s: STS refused the request (is role-to-assume a role ARN?)", role)
		}
	}
	return fail(ferry.EUNAVAILABLE, err, "assume role %s", role)
}

// subject reads the sub claim of a JWT without verifying it: only to put it into an error message, because the
// sub is exactly what a trust policy has to match.
func subject(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "unknown"
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "unknown"
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(b, &claims) != nil || claims.Sub == "" {
		return "unknown"
	}
	return claims.Sub
}

var sessionUnsafe = regexp.MustCompile(`[^\w+=,.@-]`)

// sessionName builds a RoleSessionName (2 to 64 of [\w+=,.@-]) that says where the session came from.
func sessionName(tag string) string {
	s := sessionUnsafe.ReplaceAllString("ferry-action-"+tag, "-")
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}
