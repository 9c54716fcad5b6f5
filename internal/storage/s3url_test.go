package storage

import (
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ferryhq/ferry/internal/ferry"
)

func TestParseS3URL(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	for _, tc := range []struct {
		raw  string
		want s3Location // zero with wantErr
		err  string     // a part of the error message
	}{
		{raw: "s3://my-bucket", want: s3Location{bucket: "my-bucket"}},
		{raw: "s3://my-bucket/", want: s3Location{bucket: "my-bucket"}},
		{raw: "s3://my-bucket/sites", want: s3Location{bucket: "my-bucket", prefix: "sites/"}},
		{raw: "s3://my-bucket/sites/eu/", want: s3Location{bucket: "my-bucket", prefix: "sites/eu/"}},
		{raw: "s3://b.example.com/a%20b", want: s3Location{bucket: "b.example.com", prefix: "a b/"}},
		{
			raw:  "s3://ferry/p?region=eu-west-1&endpoint=http://127.0.0.1:7070&path_style=true",
			want: s3Location{bucket: "ferry", prefix: "p/", region: "eu-west-1", endpoint: "http://127.0.0.1:7070", pathStyle: &yes},
		},
		{raw: "s3://ferry?endpoint=https%3A%2F%2Fs3.example.com%2F&path_style=0", want: s3Location{bucket: "ferry", endpoint: "https://s3.example.com", pathStyle: &no}},
		{raw: "s3://ferry?endpoint=http://[::1]:7070", want: s3Location{bucket: "ferry", endpoint: "http://[::1]:7070"}},

		{raw: "file:///tmp", err: "scheme"},
		{raw: "s3:ferry", err: "missing //"},
		{raw: "s3://", err: "missing bucket"},
		{raw: "s3:///prefix", err: "missing bucket"},
		{raw: "s3://ab", err: "not a valid bucket"},
		{raw: "s3://UPPER", err: "not a valid bucket"},
		{raw: "s3://-bucket", err: "not a valid bucket"},
		{raw: "s3://a..b", err: "not a valid bucket"},
		{raw: "s3://" + strings.Repeat("b", 64), err: "not a valid bucket"},
		{raw: "s3://bucket:7070", err: "port"},
		{raw: "s3://AKIA:secret@bucket", err: "credentials do not belong"},
		{raw: "s3://bucket#frag", err: "fragment"},
		{raw: "s3://bucket/a/../../etc", err: "prefix"},
		{raw: "s3://bucket/a//b", err: "prefix"},
		{raw: "s3://bucket/a%00b", err: "prefix"},
		{raw: "s3://bucket/a%5Cb", err: "prefix"},
		{raw: "s3://bucket//", err: "prefix"},
		{raw: "s3://bucket?region=", err: "region"},
		{raw: "s3://bucket?region=us-east-1%0A", err: "region"},
		{raw: "s3://bucket?region=a&region=b", err: "2 times"},
		{raw: "s3://bucket?endpoint=", err: "endpoint"},
		{raw: "s3://bucket?endpoint=127.0.0.1:7070", err: "endpoint"},
		{raw: "s3://bucket?endpoint=file:///etc/passwd", err: "endpoint"},
		{raw: "s3://bucket?endpoint=http://user:pw@host", err: "endpoint"},
		{raw: "s3://bucket?endpoint=http://host:99999", err: "port"},
		{raw: "s3://bucket?endpoint=http://host?x=1", err: "endpoint"},
		{raw: "s3://bucket?path_style=yes", err: "path_style"},
		{raw: "s3://bucket?pathstyle=true", err: "unknown option"},
		{raw: "s3://bucket?%zz", err: "bad query"},
	} {
		u, err := url.Parse(tc.raw)
		if err != nil {
			t.Fatalf("%s: url.Parse: %v", tc.raw, err)
		}
		got, err := parseS3URL(u)
		if tc.err != "" {
			if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), s3URLForm) {
				t.Errorf("%s: error %v, want EINVALID mentioning %q and the expected form", tc.raw, err, tc.err)
			}
			if strings.Contains(tc.raw, "secret") && strings.Contains(err.Error(), "secret") {
				t.Errorf("%s: error %q shows the secret", tc.raw, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.raw, err)
			continue
		}
		if got.bucket != tc.want.bucket || got.prefix != tc.want.prefix || got.region != tc.want.region || got.endpoint != tc.want.endpoint ||
			(got.pathStyle == nil) != (tc.want.pathStyle == nil) || (got.pathStyle != nil && *got.pathStyle != *tc.want.pathStyle) {
			t.Errorf("%s: got %+v, want %+v", tc.raw, got, tc.want)
		}
	}
}

// FuzzParseS3URL feeds hostile URLs to the parser: it must never panic, and whatever it accepts must be safe to
// hand to the SDK (a valid bucket, a clean prefix, an http(s) endpoint).
func FuzzParseS3URL(f *testing.F) {
	for _, seed := range []string{
		"s3://ferry/sites?region=eu-west-1&endpoint=http://127.0.0.1:7070&path_style=true",
		"s3://ferry", "s3://a..b/..", "s3://ferry/%2e%2e/x", "s3://u:p@ferry", "s3://ferry?endpoint=javascript:alert(1)",
		"s3://ferry?endpoint=http://%5B::1%5D:0", "s3://ferry/\\x", "s3://ferry?region=../../x", "s3://ferry#?",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		loc, err := parseS3URL(u)
		if err != nil {
			if ferry.ErrorCode(err) != ferry.EINVALID {
				t.Fatalf("%q: error code %q, want EINVALID", raw, ferry.ErrorCode(err))
			}
			return
		}
		if !bucketRE.MatchString(loc.bucket) {
			t.Fatalf("%q: accepted bucket %q", raw, loc.bucket)
		}
		if loc.prefix != "" {
			if !strings.HasSuffix(loc.prefix, "/") || checkKey(strings.TrimSuffix(loc.prefix, "/")) != nil {
				t.Fatalf("%q: accepted prefix %q", raw, loc.prefix)
			}
		}
		if loc.endpoint != "" {
			e, err := url.Parse(loc.endpoint)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				t.Fatalf("%q: accepted endpoint %q", raw, loc.endpoint)
			}
		}
		if loc.region != "" && !regionRE.MatchString(loc.region) {
			t.Fatalf("%q: accepted region %q", raw, loc.region)
		}
	})
}

func TestOpenS3WithConfigDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw, cfgRegion, wantRegion string
		wantEndpoint               string
		wantPathStyle              bool
	}{
		{raw: "s3://ferry", wantRegion: "us-east-1"},
		{raw: "s3://ferry", cfgRegion: "eu-central-1", wantRegion: "eu-central-1"},
		{raw: "s3://ferry?region=ap-south-1", cfgRegion: "eu-central-1", wantRegion: "ap-south-1"},
		{raw: "s3://ferry?endpoint=http://127.0.0.1:9", wantRegion: "us-east-1", wantEndpoint: "http://127.0.0.1:9", wantPathStyle: true},
		{raw: "s3://ferry?endpoint=http://127.0.0.1:9&path_style=false", wantRegion: "us-east-1", wantEndpoint: "http://127.0.0.1:9"},
		{raw: "s3://ferry?path_style=true", wantRegion: "us-east-1", wantPathStyle: true},
	} {
		u, _ := url.Parse(tc.raw)
		s, err := OpenS3WithConfig(u, aws.Config{Region: tc.cfgRegion})
		if err != nil {
			t.Fatalf("%s: %v", tc.raw, err)
		}
		o := s.client.Options()
		if o.Region != tc.wantRegion || aws.ToString(o.BaseEndpoint) != tc.wantEndpoint || o.UsePathStyle != tc.wantPathStyle {
			t.Errorf("%s with config region %q: region %q, endpoint %q, path style %v; want %q, %q, %v",
				tc.raw, tc.cfgRegion, o.Region, aws.ToString(o.BaseEndpoint), o.UsePathStyle, tc.wantRegion, tc.wantEndpoint, tc.wantPathStyle)
		}
		if o.Retryer.MaxAttempts() != s3MaxAttempts {
			t.Errorf("%s: %d attempts, want %d", tc.raw, o.Retryer.MaxAttempts(), s3MaxAttempts)
		}
	}
}
