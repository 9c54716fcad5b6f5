package s3test_test

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/storage"
	"github.com/ferryhq/ferry/internal/storage/s3test"
)

func TestServers(t *testing.T) {
	t.Parallel()
	for name, start := range map[string]func(testing.TB) *s3test.Server{
		"gofakes3":  s3test.StartGoFakeS3,
		"versitygw": s3test.StartVersityGW,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := start(t)
			u, err := url.Parse(srv.URL("/sites/"))
			if err != nil {
				t.Fatal(err)
			}
			if u.Host != srv.Bucket || u.Path != "/sites" || u.Query().Get("endpoint") != srv.Endpoint || u.Query().Get("region") != srv.Region {
				t.Fatalf("URL(%q) = %s", "/sites/", u)
			}
			if strings.Contains(u.String(), srv.SecretKey) || strings.Contains(u.String(), srv.AccessKey) {
				t.Fatalf("URL %s carries the keys", u)
			}
			st := srv.Open(t, "sites")
			ctx := context.Background()
			if err := st.Put(ctx, "k", bytes.NewReader([]byte("v")), 1, storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			srv.Stop()
			srv.Stop() // idempotent
			if _, err := st.Stat(ctx, "k"); ferry.ErrorCode(err) != ferry.EUNAVAILABLE {
				t.Fatalf("stat while stopped: %v, want EUNAVAILABLE", err)
			}
			srv.Start(t)
			srv.Start(t) // idempotent
			if info, err := st.Stat(ctx, "k"); err != nil || info.Size != 1 {
				t.Fatalf("stat after restart: %+v, %v; want the object kept", info, err)
			}
		})
	}
}

func TestRefusedEndpoint(t *testing.T) {
	t.Parallel()
	e := s3test.RefusedEndpoint(t)
	u, err := url.Parse(e)
	if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.Port() == "" {
		t.Fatalf("RefusedEndpoint() = %q", e)
	}
}
