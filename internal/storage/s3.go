package storage

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ferryhq/ferry/internal/ferry"
)

// S3 stores objects in a bucket of AWS S3 or any S3-compatible server, under an optional key prefix that callers
// never see: they use the same "projects/..." keys as with the file backend.
type S3 struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or ends in "/"
	endpoint string // for error messages only
}

var _ Storage = (*S3)(nil)

// s3URLForm is what every URL error shows, so a user can fix the URL without reading docs.
const s3URLForm = "s3://BUCKET/PREFIX?region=R&endpoint=http://127.0.0.1:7070&path_style=true"

// S3 tuning. An outage must fail within seconds so that the proxy can answer 503 and the queue can back off,
// rather than every caller hanging in SDK retries for minutes.
const (
	s3MaxAttempts           = 3
	s3MaxBackoff            = time.Second
	s3DialTimeout           = 2 * time.Second
	s3ResponseHeaderTimeout = 10 * time.Second // a hung server, not a slow body: S3's first byte takes well under 1s
	s3DefaultRegion         = "us-east-1"
)

// s3Location is an s3:// URL taken apart and checked.
type s3Location struct {
	bucket    string
	prefix    string // "" or ends in "/"
	region    string
	endpoint  string
	pathStyle *bool // nil: path style when an endpoint is set, virtual-host style on AWS
}

var (
	bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$`)
	regionRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// parseS3URL checks every part of an s3:// URL. The URL comes from flags and environment variables, so each
// mistake gets its own message that shows the expected form.
func parseS3URL(u *url.URL) (s3Location, error) {
	var loc s3Location
	if u == nil {
		return loc, ferry.Errorf(ferry.EINVALID, "storage URL is empty; want %s", s3URLForm)
	}
	bad := func(format string, args ...any) error {
		return ferry.Errorf(ferry.EINVALID, "storage URL %q: %s; want %s", u.Redacted(), fmt.Sprintf(format, args...), s3URLForm)
	}
	if u.Scheme != "s3" {
		return loc, bad("scheme %q is not s3", u.Scheme)
	}
	if u.Opaque != "" {
		return loc, bad("missing // after s3:")
	}
	if u.User != nil {
		return loc, bad("credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or use a role) instead")
	}
	if u.Fragment != "" || strings.HasSuffix(u.String(), "#") {
		return loc, bad("a storage URL has no #fragment")
	}
	if u.Host == "" {
		return loc, bad("missing bucket name")
	}
	if strings.Contains(u.Host, ":") {
		return loc, bad("the bucket %q cannot have a port; put a custom server in ?endpoint=", u.Host)
	}
	if !bucketRE.MatchString(u.Host) || strings.Contains(u.Host, "..") {
		return loc, bad("bucket %q is not a valid bucket name (3-63 lowercase letters, digits, '.', '-', '_')", u.Host)
	}
	loc.bucket = u.Host

	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		if p = strings.TrimSuffix(p, "/"); p == "" || checkKey(p) != nil {
			return loc, bad("prefix %q is not a clean relative path", p)
		}
		loc.prefix = p + "/"
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return loc, bad("bad query: %v", err)
	}
	for name, vals := range q {
		if len(vals) != 1 {
			return loc, bad("option %q is given %d times", name, len(vals))
		}
		v := vals[0]
		switch name {
		case "region":
			if !regionRE.MatchString(v) {
				return loc, bad("region %q is not a region name such as us-east-1", v)
			}
			loc.region = v
		case "endpoint":
			e, err := url.Parse(v)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Hostname() == "" || e.User != nil || e.RawQuery != "" || e.Fragment != "" || e.Opaque != "" {
				return loc, bad("endpoint %q is not an http:// or https:// URL such as http://127.0.0.1:7070", v)
			}
			if port := e.Port(); port != "" {
				if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
					return loc, bad("endpoint %q has a bad port", v)
				}
			}
			loc.endpoint = strings.TrimSuffix(e.String(), "/")
		case "path_style":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return loc, bad("path_style %q is not true or false", v)
			}
			loc.pathStyle = &b
		default:
			return loc, bad("unknown option %q (known: region, endpoint, path_style)", name)
		}
	}
	return loc, nil
}

// OpenS3 opens an s3:// URL with credentials and settings from the SDK's default chain (environment,
// shared config files, web identity, ECS and EC2 roles), which is what servers and build tasks have.
func OpenS3(ctx context.Context, u *url.URL) (*S3, error) {
	if _, err := parseS3URL(u); err != nil {
		return nil, err
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, ferry.Errorf(ferry.EINVALID, "load AWS configuration: %w", err)
	}
	return OpenS3WithConfig(u, cfg)
}

// OpenS3WithConfig opens an s3:// URL with credentials the caller already holds, such as the GitHub Action's
// role session from STS AssumeRoleWithWebIdentity, or a test server's keys (no process environment involved).
// The URL's region and endpoint win over cfg's; with neither, the SDK's standard endpoint settings
// (AWS_ENDPOINT_URL_S3) apply when cfg came from config.LoadDefaultConfig. Path-style addressing is the default
// whenever an endpoint is set, since S3-compatible servers rarely serve BUCKET.host; path_style=false overrides.
func OpenS3WithConfig(u *url.URL, cfg aws.Config) (*S3, error) {
	loc, err := parseS3URL(u)
	if err != nil {
		return nil, err
	}
	cfg = cfg.Copy()
	switch {
	case loc.region != "":
		cfg.Region = loc.region
	case cfg.Region == "":
		cfg.Region = s3DefaultRegion
	}
	if b, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok || cfg.HTTPClient == nil {
		if b == nil {
			b = awshttp.NewBuildableClient()
		}
		cfg.HTTPClient = b.
			WithDialerOptions(func(d *net.Dialer) { d.Timeout = s3DialTimeout }).
			WithTransportOptions(func(t *http.Transport) {
				t.ResponseHeaderTimeout = s3ResponseHeaderTimeout
				t.MaxIdleConnsPerHost = 64 // publishes upload in parallel
			})
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if loc.endpoint != "" {
			o.BaseEndpoint = aws.String(loc.endpoint)
		}
		switch {
		case loc.pathStyle != nil:
			o.UsePathStyle = *loc.pathStyle
		case o.BaseEndpoint != nil:
			// S3-compatible servers on an IP or a single host name cannot serve BUCKET.host.
			o.UsePathStyle = true
		}
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = s3MaxAttempts
			so.MaxBackoff = s3MaxBackoff
			// The token bucket would turn a long outage into "retry quota exceeded"; attempts are few anyway.
			so.RateLimiter = ratelimit.None
		})
	})
	endpoint := "S3"
	if e := client.Options().BaseEndpoint; e != nil {
		endpoint = *e
	}
	return &S3{client: client, bucket: loc.bucket, prefix: loc.prefix, endpoint: endpoint}, nil
}

// Get opens the object at key. Read errors on the body come back as EUNAVAILABLE.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil {
		return nil, s.err("get", key, err)
	}
	return &s3Body{rc: out.Body, key: key}, nil
}

// Stat asks S3 for the object's size and modification time.
func (s *S3) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil {
		return ObjectInfo{}, s.err("stat", key, err)
	}
	return ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// Put uploads body in one request. With opts.SHA256 it sends x-amz-checksum-sha256, so S3 itself rejects a body
// that was damaged on the way and keeps the old object. The body is sent from its current offset; the SDK seeks
// back to that offset to retry.
func (s *S3) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts PutOptions) error {
	if err := checkKey(key); err != nil {
		return err
	}
	in := &s3.PutObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key), Body: body}
	if opts.SHA256 != "" {
		raw, err := hex.DecodeString(opts.SHA256)
		if err != nil || len(raw) != sha256.Size {
			return ferry.Errorf(ferry.EINVALID, "put %s: SHA-256 %q is not 64 hex digits", key, opts.SHA256)
		}
		in.ChecksumSHA256 = aws.String(base64.StdEncoding.EncodeToString(raw))
	}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	// Measure the body: a wrong ContentLength would otherwise surface as a transport error and be retried.
	start, err := body.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("put %s: seek body: %w", key, err)
	}
	end, err := body.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("put %s: seek body: %w", key, err)
	}
	if _, err := body.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("put %s: seek body: %w", key, err)
	}
	if n := end - start; size >= 0 && n != size {
		return ferry.Errorf(ferry.EINVALID, "put %s: body has %d bytes, expected %d", key, n, size)
	}
	in.ContentLength = aws.Int64(end - start)
	if _, err := s.client.PutObject(ctx, in); err != nil {
		return s.err("put", key, err)
	}
	return nil
}

// Delete removes key; S3 answers a missing key with success, which is the contract.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)}); err != nil {
		if err := s.err("delete", key, err); ferry.ErrorCode(err) != ferry.ENOTFOUND {
			return err
		}
	}
	return nil
}

// s3DeleteBatch is the most keys one DeleteObjects request may name.
const s3DeleteBatch = 1000

// DeleteMany sends DeleteObjects in batches of 1,000 keys (quiet mode: only failures come back). A per-key
// failure fails the call with the first one named; keys S3 reports missing are not failures.
func (s *S3) DeleteMany(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return err
		}
	}
	for len(keys) > 0 {
		n := min(len(keys), s3DeleteBatch)
		batch := keys[:n]
		keys = keys[n:]
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, k := range batch {
			ids[i] = types.ObjectIdentifier{Key: aws.String(s.prefix + k)}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &s.bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return s.err("delete", fmt.Sprintf("%d objects from %s", len(batch), batch[0]), err)
		}
		for _, e := range out.Errors {
			if s3NotFound[aws.ToString(e.Code)] {
				continue
			}
			key := strings.TrimPrefix(aws.ToString(e.Key), s.prefix)
			return ferry.Errorf(ferry.EUNAVAILABLE, "delete %s: %s: %s", key, aws.ToString(e.Code), aws.ToString(e.Message))
		}
	}
	return nil
}

// List pages through ListObjectsV2 and returns keys relative to the URL's prefix, in lexical order.
func (s *S3) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	var out []ObjectInfo
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.err("list", prefix, err)
		}
		for _, o := range page.Contents {
			key, ok := strings.CutPrefix(aws.ToString(o.Key), s.prefix)
			if !ok || key == "" || strings.HasSuffix(key, "/") { // folder markers are not objects
				continue
			}
			out = append(out, ObjectInfo{Key: key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	// S3 lists in byte order, but S3-compatible servers backed by folders may not.
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// S3 error codes grouped by what a caller does about them.
var (
	s3NotFound  = map[string]bool{"NoSuchKey": true, "NotFound": true}
	s3Forbidden = map[string]bool{
		"AccessDenied": true, "Forbidden": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
		"AllAccessDisabled": true, "ExpiredToken": true, "InvalidToken": true, "TokenRefreshRequired": true,
		"AccountProblem": true, "InvalidSecurity": true, "Unauthorized": true,
		"XAdminUserNotFound": true, // versitygw's InvalidAccessKeyId, sent with status 404
	}
	s3BadBody = map[string]bool{
		"BadDigest": true, "InvalidDigest": true, "XAmzContentSHA256Mismatch": true, "InvalidChecksum": true,
		"IncompleteBody": true, "EntityTooLarge": true,
	}
	s3Unavailable = map[string]bool{
		"SlowDown": true, "Throttling": true, "ThrottlingException": true, "RequestLimitExceeded": true,
		"ServiceUnavailable": true, "InternalError": true, "RequestTimeout": true,
	}
)

// err maps an SDK error to Ferry's codes: absent, refused, rejected body, or down.
func (s *S3) err(op, key string, err error) error {
	var apiErr smithy.APIError
	code := ""
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	status := 0
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		status = respErr.HTTPStatusCode()
	}
	switch {
	case s3NotFound[code] || (status == http.StatusNotFound && code == ""):
		return ferry.Errorf(ferry.ENOTFOUND, "%s %s: no such object", op, key)
	case code == "NoSuchBucket":
		return ferry.Errorf(ferry.EINVALID, "%s %s: bucket %q does not exist at %s; create it or fix the storage URL: %w", op, key, s.bucket, s.endpoint, err)
	case s3Forbidden[code] || status == http.StatusForbidden || status == http.StatusUnauthorized:
		return ferry.Errorf(ferry.EFORBIDDEN, "%s %s: %s refused the request; check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or the role) and their access to bucket %q: %w", op, key, s.endpoint, s.bucket, err)
	case s3BadBody[code]:
		return ferry.Errorf(ferry.EINVALID, "%s %s: S3 rejected the body (it does not match its checksum or length): %w", op, key, err)
	case s3Unavailable[code] || status == http.StatusTooManyRequests || status >= 500:
		return ferry.Errorf(ferry.EUNAVAILABLE, "%s %s: %s is unavailable: %w", op, key, s.endpoint, err)
	case status != 0:
		return ferry.Errorf(ferry.EINVALID, "%s %s: %s rejected the request: %w", op, key, s.endpoint, err)
	case strings.Contains(err.Error(), "get identity:"):
		return ferry.Errorf(ferry.EUNAUTHORIZED, "%s %s: no usable AWS credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give the process a role: %w", op, key, err)
	}
	// No HTTP response at all: refused, reset, timed out, DNS, or ctx canceled.
	return ferry.Errorf(ferry.EUNAVAILABLE, "%s %s: cannot reach %s: %w", op, key, s.endpoint, err)
}

// s3Body turns a failure in the middle of a download into EUNAVAILABLE, like any other outage.
type s3Body struct {
	rc  io.ReadCloser
	key string
}

func (b *s3Body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		err = ferry.Errorf(ferry.EUNAVAILABLE, "read %s: %w", b.key, err)
	}
	return n, err
}

func (b *s3Body) Close() error { return b.rc.Close() }
