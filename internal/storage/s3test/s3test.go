// Package s3test starts real S3-compatible servers for tests: versitygw (a separate process speaking real SigV4,
// for integration tests) and gofakes3 (in-process, for fast unit tests). Each Server hands out its own keys and
// opens storage with them directly, so tests can run in parallel without touching process environment variables.
// Stop and Start simulate an outage on the same address, with the data kept.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/internal/storage"
)

// Server is one running S3-compatible server with one bucket.
type Server struct {
	// Endpoint is the server's base URL, such as http://127.0.0.1:41234.
	Endpoint string
	// AccessKey and SecretKey are the server's root credentials, random per server.
	AccessKey, SecretKey string
	// Bucket exists and is empty when the Server is returned.
	Bucket string
	// Region is what the server expects in signatures.
	Region string

	mu      sync.Mutex
	running bool
	start   func(t testing.TB) // serve on Endpoint's address
	stop    func()             // close the listener and every connection
}

// URL returns the storage URL for this server's bucket under prefix (which may be empty).
func (s *Server) URL(prefix string) string {
	u := url.URL{Scheme: "s3", Host: s.Bucket, Path: "/" + strings.Trim(prefix, "/")}
	q := url.Values{"region": {s.Region}, "endpoint": {s.Endpoint}, "path_style": {"true"}}
	u.RawQuery = q.Encode()
	return u.String()
}

// Config returns an aws.Config holding this server's keys and region and nothing from the environment.
// Change its Credentials to test refused keys.
func (s *Server) Config() aws.Config {
	return aws.Config{
		Region:      s.Region,
		Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	}
}

// Env returns the environment a child process (`ferry proxy`, `ferry publish`) needs to reach this server with
// the storage URL from URL: the keys and region, for the SDK's default chain.
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region,
	}
}

// Open returns a storage backend for this server under prefix, the same one `--storage s3://...` gives.
func (s *Server) Open(t testing.TB, prefix string) *storage.S3 {
	t.Helper()
	return s.OpenWith(t, prefix, s.Config())
}

// OpenWith is Open with a caller's aws.Config, for example one with wrong keys.
func (s *Server) OpenWith(t testing.TB, prefix string, cfg aws.Config) *storage.S3 {
	t.Helper()
	u, err := url.Parse(s.URL(prefix))
	if err != nil {
		t.Fatalf("parse storage URL: %v", err)
	}
	st, err := storage.OpenS3WithConfig(u, cfg)
	if err != nil {
		t.Fatalf("open S3 storage: %v", err)
	}
	return st
}

// Client returns a raw S3 client for this server, for asserting what the server stored (headers, checksums)
// beyond what storage.Storage exposes.
func (s *Server) Client() *s3.Client {
	return s3.NewFromConfig(s.Config(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint)
		o.UsePathStyle = true
	})
}

// Stop makes the server refuse connections, as in an outage; stored objects survive for Start. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		s.stop()
		s.running = false
	}
}

// Start serves again on the same address after Stop. Call it from the test's goroutine: it fails t when the
// server cannot come back.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		s.start(t)
		s.running = true
	}
}

// createBucket makes s.Bucket through the S3 API, as a user would.
func (s *Server) createBucket(t testing.TB) {
	t.Helper()
	if _, err := s.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &s.Bucket}); err != nil {
		t.Fatalf("create bucket %s at %s: %v", s.Bucket, s.Endpoint, err)
	}
}

// RefusedEndpoint returns a loopback http:// URL where nothing listens, for tests of an unreachable store.
func RefusedEndpoint(t testing.TB) string {
	t.Helper()
	return "http://" + freeAddr(t)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	return addr
}

// randomHex returns n random bytes as hex, for keys and bucket names.
func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}
