package storage_test

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/storage"
	"github.com/ferryhq/ferry/internal/storage/s3test"
)

// s3Servers runs f against both harness servers: gofakes3 for speed, versitygw for real SigV4.
func s3Servers(t *testing.T, f func(t *testing.T, srv *s3test.Server)) {
	t.Run("gofakes3", func(t *testing.T) {
		t.Parallel()
		f(t, s3test.StartGoFakeS3(t))
	})
	t.Run("versitygw", func(t *testing.T) {
		t.Parallel()
		f(t, s3test.StartVersityGW(t))
	})
}

func openS3(t *testing.T, rawURL string, srv *s3test.Server) *storage.S3 {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := storage.OpenS3WithConfig(u, srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestS3UnreachableFailsFast(t *testing.T) {
	t.Parallel()
	srv := s3test.StartGoFakeS3(t) // only for its keys
	s := openS3(t, "s3://bucket/p?endpoint="+url.QueryEscape(s3test.RefusedEndpoint(t)), srv)
	ctx := context.Background()
	start := time.Now()
	_, err := s.Get(ctx, "projects/web/a")
	wantCode(t, "get", err, ferry.EUNAVAILABLE)
	err = s.Put(ctx, "projects/web/a", strings.NewReader("x"), 1, storage.PutOptions{})
	wantCode(t, "put", err, ferry.EUNAVAILABLE)
	_, err = s.List(ctx, "projects/")
	wantCode(t, "list", err, ferry.EUNAVAILABLE)
	if !ferry.IsRetryable(err) {
		t.Errorf("an unreachable store must be retryable: %v", err)
	}
	// Bounded retries: three calls of three attempts each, with backoff capped at a second.
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("three calls to a refused endpoint took %v; retries are not bounded", d)
	}
}

func TestS3OutageAndRecovery(t *testing.T) {
	t.Parallel()
	s3Servers(t, func(t *testing.T, srv *s3test.Server) {
		ctx := context.Background()
		s := srv.Open(t, "outage")
		put(t, s, "projects/web/a", []byte("kept"), storage.PutOptions{})
		srv.Stop()
		_, err := s.Stat(ctx, "projects/web/a")
		wantCode(t, "stat during the outage", err, ferry.EUNAVAILABLE)
		if ferry.HTTPStatus(err) != 503 {
			t.Errorf("an outage maps to HTTP %d, want 503", ferry.HTTPStatus(err))
		}
		srv.Start(t)
		if got := get(t, s, "projects/web/a"); string(got) != "kept" {
			t.Fatalf("after the outage get = %q, want %q", got, "kept")
		}
	})
}

func TestS3BadCredentials(t *testing.T) {
	t.Parallel()
	s3Servers(t, func(t *testing.T, srv *s3test.Server) {
		ctx := context.Background()
		for name, creds := range map[string]credentials.StaticCredentialsProvider{
			"unknown key":  credentials.NewStaticCredentialsProvider("AKNOBODY", srv.SecretKey, ""),
			"wrong secret": credentials.NewStaticCredentialsProvider(srv.AccessKey, "wrong-secret", ""),
		} {
			if name == "wrong secret" && strings.Contains(t.Name(), "gofakes3") {
				continue // gofakes3 checks no signatures; versitygw does
			}
			cfg := srv.Config()
			cfg.Credentials = creds
			s := srv.OpenWith(t, "creds", cfg)
			err := s.Put(ctx, "projects/web/a", bytes.NewReader([]byte("x")), 1, storage.PutOptions{})
			wantCode(t, name+": put", err, ferry.EFORBIDDEN)
			if !strings.Contains(err.Error(), "check the credentials") {
				t.Errorf("%s: error %q does not tell the user to check the credentials", name, err)
			}
			_, err = s.Get(ctx, "projects/web/a")
			wantCode(t, name+": get", err, ferry.EFORBIDDEN)
			_, err = s.List(ctx, "projects/")
			wantCode(t, name+": list", err, ferry.EFORBIDDEN)
		}
	})
}

func TestS3MissingBucket(t *testing.T) {
	t.Parallel()
	s3Servers(t, func(t *testing.T, srv *s3test.Server) {
		s := openS3(t, "s3://no-such-bucket-here?endpoint="+url.QueryEscape(srv.Endpoint), srv)
		err := s.Put(context.Background(), "projects/web/a", strings.NewReader("x"), 1, storage.PutOptions{})
		wantCode(t, "put into a missing bucket", err, ferry.EINVALID)
		if !strings.Contains(err.Error(), "no-such-bucket-here") {
			t.Errorf("error %q does not name the bucket", err)
		}
	})
}

func TestOpenS3URLErrors(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"s3://",
		"s3://ab",
		"s3://Bucket",
		"s3://key:secret@bucket/p",
		"s3://bucket:9000/p",
		"s3://bucket/../p",
		"s3://bucket/p?endpoint=ftp://x",
		"s3://bucket/p?endpoint=127.0.0.1:7070",
		"s3://bucket/p?path_style=maybe",
		"s3://bucket/p?regoin=us-east-1",
		"s3://bucket/p?region=us-east-1&region=eu-west-1",
		"s3:bucket",
	} {
		_, err := storage.Open(context.Background(), raw)
		wantCode(t, raw, err, ferry.EINVALID)
		if !strings.Contains(err.Error(), "s3://BUCKET/PREFIX?region=R&endpoint=") {
			t.Errorf("%s: error %q does not show the expected form", raw, err)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error %q shows the secret", raw, err)
		}
	}
}

func TestOpenS3FromURL(t *testing.T) {
	// Not parallel: it sets the process environment, which is what `--storage s3://...` reads.
	srv := s3test.StartVersityGW(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	s, err := storage.Open(context.Background(), srv.URL("env"))
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "projects/web/a", []byte("via env"), storage.PutOptions{})

	// With no endpoint in the URL, the SDK's standard AWS_ENDPOINT_URL_S3 applies (and so does path style).
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
	s, err = storage.Open(context.Background(), "s3://"+srv.Bucket+"/env")
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "projects/web/a"); string(got) != "via env" {
		t.Fatalf("get through AWS_ENDPOINT_URL_S3 = %q", got)
	}
}
