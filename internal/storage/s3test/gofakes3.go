package s3test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// StartGoFakeS3 serves gofakes3 with its in-memory backend on a loopback port inside the test process: fast, and
// good for unit tests of code above storage. gofakes3 verifies neither SigV4 signatures nor
// x-amz-checksum-sha256, so the Server adds what tests rely on, the way S3 does it: a request signed with another
// access key gets 403 InvalidAccessKeyId, and a body that does not match its SHA-256 gets 400 BadDigest and is
// not stored. Signatures themselves are only checked by StartVersityGW.
func StartGoFakeS3(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		AccessKey: "AK" + strings.ToUpper(randomHex(t, 9)),
		SecretKey: randomHex(t, 20),
		Bucket:    "ferry-" + randomHex(t, 4),
		Region:    "us-east-1",
	}
	backend := s3mem.New()
	if err := backend.CreateBucket(s.Bucket); err != nil {
		t.Fatalf("gofakes3: create bucket: %v", err)
	}
	handler := s.checkRequests(gofakes3.New(backend).Server())
	var srv *http.Server
	s.start = func(t testing.TB) {
		t.Helper()
		addr := strings.TrimPrefix(s.Endpoint, "http://")
		var l net.Listener
		var err error
		for try := 0; try < 10; try++ {
			if addr == "" {
				addr = "127.0.0.1:0"
			}
			if l, err = net.Listen("tcp", addr); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond) // a restart waits for the old port to be free
		}
		if err != nil {
			t.Fatalf("gofakes3: listen: %v", err)
		}
		s.Endpoint = "http://" + l.Addr().String()
		srv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				panic(fmt.Sprintf("gofakes3: serve: %v", err))
			}
		}()
	}
	s.stop = func() { srv.Close() }
	s.Start(t)
	t.Cleanup(s.Stop)
	return s
}

// checkRequests adds to gofakes3 the two checks of S3 that tests rely on: the access key, and the body's
// x-amz-checksum-sha256.
func (s *Server) checkRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Authorization"), "Credential="+s.AccessKey+"/") {
			s3Error(w, http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
			return
		}
		want := r.Header.Get("X-Amz-Checksum-Sha256")
		if r.Method == http.MethodPut && want != "" && !strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				s3Error(w, http.StatusBadRequest, "IncompleteBody", "read body: "+err.Error())
				return
			}
			sum := sha256.Sum256(body)
			if base64.StdEncoding.EncodeToString(sum[:]) != want {
				s3Error(w, http.StatusBadRequest, "BadDigest", "The SHA256 you specified did not match the calculated checksum.")
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

// s3Error writes an error in S3's XML form, which the SDK parses into a smithy.APIError.
func s3Error(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, html.EscapeString(message))
}
