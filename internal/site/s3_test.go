package site

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ferryhq/ferry/internal/storage"
	"github.com/ferryhq/ferry/internal/storage/s3test"
)

// onS3 runs f against gofakes3 (fast, in-process) and versitygw (real SigV4 and checksums).
func onS3(t *testing.T, f func(t *testing.T, srv *s3test.Server, real bool)) {
	t.Run("gofakes3", func(t *testing.T) {
		t.Parallel()
		f(t, s3test.StartGoFakeS3(t), false)
	})
	t.Run("versitygw", func(t *testing.T) {
		t.Parallel()
		f(t, s3test.StartVersityGW(t), true)
	})
}

func TestPublishS3(t *testing.T) {
	t.Parallel()
	onS3(t, func(t *testing.T, srv *s3test.Server, real bool) {
		ctx := context.Background()
		s := NewStore(srv.Open(t, "ferry"))
		dir := writeTree(t, siteFiles)
		res, err := s.Publish(ctx, PublishParams{Project: "web", Dir: dir, Aliases: []string{"production"}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Uploaded != 8 || res.Files != 9 {
			t.Errorf("first publish = %+v", res)
		}
		again, err := s.Publish(ctx, PublishParams{Project: "web", Dir: dir, Aliases: []string{"production", "pr-2"}})
		if err != nil {
			t.Fatal(err)
		}
		if again.Uploaded != 0 || again.Skipped != 8 {
			t.Errorf("republish = %+v, want 0 uploaded", again)
		}
		m, err := s.ManifestGet(ctx, "web", again.Deployment)
		if err != nil || len(m.Files) != 9 {
			t.Fatalf("manifest = %+v, %v", m, err)
		}
		list, err := s.AliasList(ctx, "web")
		if err != nil || len(list) != 2 || list[1].Name != "production" || list[1].Deployment != again.Deployment {
			t.Errorf("aliases = %+v, %v", list, err)
		}
		if err := s.AliasSet(ctx, "web", "production", res.Deployment); err != nil { // roll back
			t.Fatal(err)
		}
		if err := s.AliasDelete(ctx, "web", "pr-2"); err != nil {
			t.Fatal(err)
		}
		if list, _ := s.AliasList(ctx, "web"); len(list) != 1 || list[0].Deployment != res.Deployment {
			t.Errorf("after rollback and delete: %+v", list)
		}

		// The blob carries its content type and, on a real server, its SHA-256 checksum.
		js := m.Files["/assets/app.3f2a1b.js"]
		head, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{
			Bucket:       aws.String(srv.Bucket),
			Key:          aws.String("ferry/" + BlobKey("web", js.Blob)),
			ChecksumMode: types.ChecksumModeEnabled,
		})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(head.ContentType) != js.ContentType {
			t.Errorf("blob content type = %q, want %q", aws.ToString(head.ContentType), js.ContentType)
		}
		if real && aws.ToString(head.ChecksumSHA256) == "" {
			t.Error("blob has no SHA-256 checksum")
		}
	})
}

// corrupter sends other bytes than the ones hashed, as when a file changes between hashing and upload.
type corrupter struct{ storage.Storage }

func (c corrupter) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts storage.PutOptions) error {
	if strings.Contains(key, "/blobs/") {
		body = strings.NewReader(strings.Repeat("x", int(size)))
	}
	return c.Storage.Put(ctx, key, body, size, opts)
}

func TestPublishS3ChecksumMismatchLeavesNoManifest(t *testing.T) {
	t.Parallel()
	onS3(t, func(t *testing.T, srv *s3test.Server, real bool) {
		ctx := context.Background()
		st := srv.Open(t, "")
		_, err := NewStore(corrupter{st}).Publish(ctx, PublishParams{Project: "web", Dir: writeTree(t, map[string]string{"index.html": "hello"}), Aliases: []string{"production"}})
		if err == nil {
			t.Fatal("publish of a body that does not match its checksum succeeded")
		}
		if !strings.Contains(err.Error(), "checksum") || !strings.Contains(err.Error(), "index.html") {
			t.Errorf("error = %v, want one naming the file and the checksum", err)
		}
		objs, err := st.List(ctx, "projects/web/")
		if err != nil || len(objs) != 0 {
			t.Errorf("after a refused upload the project holds %v (%v)", objs, err)
		}
	})
}
