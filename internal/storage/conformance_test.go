package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/storage"
	"github.com/ferryhq/ferry/internal/storage/s3test"
)

// backend is one Storage under test, in a namespace of its own, plus what the suite can only check with the
// backend's own tools.
type backend struct {
	store storage.Storage
	// sub opens the same backend rooted at prefix inside store's namespace.
	sub func(t *testing.T, prefix string) storage.Storage
	// head returns the Content-Type and base64 x-amz-checksum-sha256 stored with key; nil for backends that
	// keep neither.
	head func(t *testing.T, key string) (contentType, checksum string)
}

func fileBackend(t *testing.T) backend {
	root := t.TempDir()
	open := func(t *testing.T, dir string) storage.Storage {
		s, err := storage.NewFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return backend{
		store: open(t, root),
		sub:   func(t *testing.T, prefix string) storage.Storage { return open(t, filepath.Join(root, prefix)) },
	}
}

// s3Backend gives each test its own prefix on a shared server, so tests run in parallel on one bucket.
func s3Backend(srv *s3test.Server) func(t *testing.T) backend {
	var mu sync.Mutex
	n := 0
	return func(t *testing.T) backend {
		mu.Lock()
		n++
		base := fmt.Sprintf("t%d/%s", n, strings.ReplaceAll(t.Name(), "/", "_"))
		mu.Unlock()
		client := srv.Client()
		return backend{
			store: srv.Open(t, base),
			sub:   func(t *testing.T, prefix string) storage.Storage { return srv.Open(t, base+"/"+prefix) },
			head: func(t *testing.T, key string) (string, string) {
				out, err := client.HeadObject(context.Background(), &s3.HeadObjectInput{
					Bucket: aws.String(srv.Bucket), Key: aws.String(base + "/" + key), ChecksumMode: types.ChecksumModeEnabled,
				})
				if err != nil {
					t.Fatalf("raw HeadObject %s: %v", key, err)
				}
				return aws.ToString(out.ContentType), aws.ToString(out.ChecksumSHA256)
			},
		}
	}
}

func TestConformanceFile(t *testing.T) {
	t.Parallel()
	testConformance(t, fileBackend)
}

func TestConformanceGoFakeS3(t *testing.T) {
	t.Parallel()
	testConformance(t, s3Backend(s3test.StartGoFakeS3(t)))
}

func TestConformanceVersityGW(t *testing.T) {
	t.Parallel()
	testConformance(t, s3Backend(s3test.StartVersityGW(t)))
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func put(t *testing.T, s storage.Storage, key string, body []byte, opts storage.PutOptions) {
	t.Helper()
	if err := s.Put(context.Background(), key, bytes.NewReader(body), int64(len(body)), opts); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func get(t *testing.T, s storage.Storage, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := ferry.ErrorCode(err); got != code {
		t.Fatalf("%s: error code %q (%v), want %q", what, got, err, code)
	}
}

func keysOf(infos []storage.ObjectInfo) []string {
	var keys []string
	for _, o := range infos {
		keys = append(keys, o.Key)
	}
	return keys
}

// testConformance is the one behaviour every Storage backend must show; open returns a fresh, empty namespace.
func testConformance(t *testing.T, open func(t *testing.T) backend) {
	ctx := context.Background()

	t.Run("PutGetStatDelete", func(t *testing.T) {
		t.Parallel()
		b := open(t)
		body := []byte("<h1>hello</h1>")
		key := "projects/web/blobs/" + sum(body)
		before := time.Now().Add(-time.Minute)
		put(t, b.store, key, body, storage.PutOptions{SHA256: sum(body), ContentType: "text/html"})
		if got := get(t, b.store, key); !bytes.Equal(got, body) {
			t.Fatalf("get = %q, want %q", got, body)
		}
		info, err := b.store.Stat(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if info.Key != key || info.Size != int64(len(body)) || info.ModTime.Before(before) || info.ModTime.After(time.Now().Add(time.Minute)) {
			t.Fatalf("stat = %+v, want key %s size %d and a recent time", info, key, len(body))
		}
		if err := b.store.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		_, err = b.store.Get(ctx, key)
		wantCode(t, "get after delete", err, ferry.ENOTFOUND)
		_, err = b.store.Stat(ctx, key)
		wantCode(t, "stat after delete", err, ferry.ENOTFOUND)
		if err := b.store.Delete(ctx, key); err != nil {
			t.Fatalf("delete of a missing key: %v", err)
		}
	})

	t.Run("EmptyBody", func(t *testing.T) {
		t.Parallel()
		b := open(t)
		put(t, b.store, "projects/web/empty", nil, storage.PutOptions{SHA256: sum(nil)})
		if got := get(t, b.store, "projects/web/empty"); len(got) != 0 {
			t.Fatalf("get = %q, want empty", got)
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		t.Parallel()
		b := open(t)
		key := "projects/web/aliases/production.json"
		put(t, b.store, key, []byte(`{"deployment":"one"}`), storage.PutOptions{ContentType: "application/json"})
		v2 := []byte(`{"deployment":"two-longer"}`)
		put(t, b.store, key, v2, storage.PutOptions{SHA256: sum(v2), ContentType: "application/json"})
		if got := get(t, b.store, key); !bytes.Equal(got, v2) {
			t.Fatalf("get = %q, want %q", got, v2)
		}
		if info, err := b.store.Stat(ctx, key); err != nil || info.Size != int64(len(v2)) {
			t.Fatalf("stat = %+v, %v; want size %d", info, err, len(v2))
		}
	})

	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		b := open(t)
		_, err := b.store.Get(ctx, "projects/web/deployments/nope.json")
		wantCode(t, "get", err, ferry.ENOTFOUND)
		_, err = b.store.Stat(ctx, "projects/web/deployments/nope.json")
		wantCode(t, "stat", err, ferry.ENOTFOUND)
		infos, err := b.store.List(ctx, "projects/nope/")
		if err != nil || len(infos) != 0 {
			t.Fatalf("list of an empty prefix = %v, %v; want nothing", infos, err)
		}
	})

	t.Run("WrongSHA256", func(t *testing.T) {
		t.Parallel()
		b := open(t)
		key := "projects/web/blobs/x"
		old := []byte("the old object")
		put(t, b.store, key, old, storage.PutOptions{SHA256: sum(old)})
		bad := []byte("a damaged body")
		err := b.store.Put(ctx, key, bytes.NewReader(bad), int64(len(bad)), storage.PutOptions{SHA256: sum([]byte("what was meant"))})
		wantCode(t, "put with a wrong SHA-256", err, ferry.EINVALID)
		if got := get(t, b.store, key); !bytes.Equal(got, old) {
			t.Fatalf("after a rejected put, get = %q, want the old %q", got, old)
		}
		err = b.store.Put(ctx, "projects/web/blobs/new", bytes.NewReader(bad), int64(len(bad)), storage.PutOptions{SHA256: sum(old)})
		wantCode(t, "put of a new key with a wrong SHA-256", err, ferry.EINVALID)
		_, err = b.store.Stat(ctx, "projects/web/blobs/new")
		wantCode(t, "stat after a rejected put", err, ferry.ENOTFOUND)
	})

	t.Run("BadPutArguments", func(t *testing.T) {
		t.Parallel()
		b := open(t)
		body := []byte("12345")
		err := b.store.Put(ctx, "projects/web/a", bytes.NewReader(body), 10, storage.PutOptions{})
		wantCode(t, "put with a wrong size", err, ferry.EINVALID)
		err = b.store.Put(ctx, "projects/web/a", bytes.NewReader(body), 5, storage.PutOptions{SHA256: "not-hex"})
		wantCode(t, "put with a malformed SHA-256", err, ferry.EINVALID)
		_, err = b.store.Stat(ctx, "projects/web/a")
		wantCode(t, "stat after rejected puts", err, ferry.ENOTFOUND)
	})

	t.Run("BodyFromCurrentOffset", func(t *testing.T) {
		t.Parallel()
		b := open(t)
		r := bytes.NewReader([]byte("skip:kept"))
		if _, err := r.Seek(5, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if err := b.store.Put(ctx, "projects/web/o", r, 4, storage.PutOptions{SHA256: sum([]byte("kept"))}); err != nil {
			t.Fatal(err)
		}
		if got := get(t, b.store, "projects/web/o"); string(got) != "kept" {
			t.Fatalf("get = %q, want %q", got, "kept")
		}
	})

	t.Run("ContentTypeAndChecksumKept", func(t *testing.T) {
		t.Parallel()
		b := open(t)
		if b.head == nil {
			t.Skip("this backend keeps no content type or checksum")
		}
		body := []byte("console.log(1)")
		raw := sha256.Sum256(body)
		put(t, b.store, "projects/web/blobs/js", body, storage.PutOptions{SHA256: sum(body), ContentType: "text/javascript; charset=utf-8"})
		ct, checksum := b.head(t, "projects/web/blobs/js")
		if ct != "text/javascript; charset=utf-8" {
			t.Errorf("stored Content-Type = %q, want the one sent", ct)
		}
		if want := base64.StdEncoding.EncodeToString(raw[:]); checksum != want {
			t.Errorf("stored x-amz-checksum-sha256 = %q, want %q", checksum, want)
		}
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		b := open(t)
		keys := []string{
			"projects/b/aliases/p.json",
			"projects/a/deployments/d.json",
			"projects/ab/blobs/x",
			"projects/a/blobs/2",
			"projects/a/blobs/1",
			// byte order: '-' < '.' < '/', which a folder walk gets wrong
			"order/a/b", "order/a-c", "order/a.b",
		}
		for i, k := range keys {
			put(t, b.store, k, bytes.Repeat([]byte("x"), i), storage.PutOptions{})
		}
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"projects/a/", []string{"projects/a/blobs/1", "projects/a/blobs/2", "projects/a/deployments/d.json"}},
			{"projects/a", []string{"projects/a/blobs/1", "projects/a/blobs/2", "projects/a/deployments/d.json", "projects/ab/blobs/x"}},
			{"projects/a/blobs/", []string{"projects/a/blobs/1", "projects/a/blobs/2"}},
			{"projects/nope/", nil},
			{"order/", []string{"order/a-c", "order/a.b", "order/a/b"}},
			{"", []string{"order/a-c", "order/a.b", "order/a/b", "projects/a/blobs/1", "projects/a/blobs/2", "projects/a/deployments/d.json", "projects/ab/blobs/x", "projects/b/aliases/p.json"}},
		} {
			infos, err := b.store.List(ctx, tc.prefix)
			if err != nil {
				t.Fatalf("list %q: %v", tc.prefix, err)
			}
			if got := keysOf(infos); !slices.Equal(got, tc.want) {
				t.Errorf("list %q = %q, want %q", tc.prefix, got, tc.want)
			}
			for _, o := range infos {
				if want := int64(slices.Index(keys, o.Key)); o.Size != want || o.ModTime.IsZero() {
					t.Errorf("list %q: %s has size %d and time %v, want size %d and a time", tc.prefix, o.Key, o.Size, o.ModTime, want)
				}
			}
		}
	})

	t.Run("Prefix", func(t *testing.T) {
		t.Parallel()
		b := open(t)
		sub := b.sub(t, "tenant/one")
		put(t, sub, "projects/web/blobs/a", []byte("A"), storage.PutOptions{})
		put(t, b.store, "tenant/one/projects/web/blobs/b", []byte("B"), storage.PutOptions{})
		put(t, b.store, "tenant/other/projects/web/blobs/c", []byte("C"), storage.PutOptions{})
		if got := get(t, b.store, "tenant/one/projects/web/blobs/a"); string(got) != "A" {
			t.Fatalf("outer get = %q, want A", got)
		}
		if got := get(t, sub, "projects/web/blobs/b"); string(got) != "B" {
			t.Fatalf("inner get = %q, want B", got)
		}
		infos, err := sub.List(ctx, "projects/")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := keysOf(infos), []string{"projects/web/blobs/a", "projects/web/blobs/b"}; !slices.Equal(got, want) {
			t.Fatalf("inner list = %q, want %q", got, want)
		}
		infos, err = sub.List(ctx, "")
		if err != nil || len(infos) != 2 {
			t.Fatalf("inner list of everything = %q, %v; want the two inner keys", keysOf(infos), err)
		}
	})

	t.Run("HostileKeys", func(t *testing.T) {
		t.Parallel()
		b := open(t)
		for _, key := range []string{"", "/abs", "../up", "a/../../up", "a//b", "a/./b", "a/", ".", "..", "a\\b", "a\x00b"} {
			err := b.store.Put(ctx, key, bytes.NewReader(nil), 0, storage.PutOptions{})
			wantCode(t, fmt.Sprintf("put %q", key), err, ferry.EINVALID)
			_, err = b.store.Get(ctx, key)
			wantCode(t, fmt.Sprintf("get %q", key), err, ferry.EINVALID)
			_, err = b.store.Stat(ctx, key)
			wantCode(t, fmt.Sprintf("stat %q", key), err, ferry.EINVALID)
			err = b.store.Delete(ctx, key)
			wantCode(t, fmt.Sprintf("delete %q", key), err, ferry.EINVALID)
		}
		for _, prefix := range []string{"/abs", "../up/", "a/../../"} {
			_, err := b.store.List(ctx, prefix)
			wantCode(t, fmt.Sprintf("list %q", prefix), err, ferry.EINVALID)
		}
	})

	t.Run("ListManyKeys", func(t *testing.T) {
		t.Parallel()
		b := open(t)
		const n = 1500 // more than S3's 1,000 keys a page
		want := make([]string, n)
		for i := range want {
			want[i] = fmt.Sprintf("projects/many/blobs/%05d", i)
		}
		var wg sync.WaitGroup
		errs := make(chan error, n)
		work := make(chan string)
		for range 16 {
			wg.Go(func() {
				for k := range work {
					errs <- b.store.Put(ctx, k, strings.NewReader(k), int64(len(k)), storage.PutOptions{})
				}
			})
		}
		for _, k := range want {
			work <- k
		}
		close(work)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		put(t, b.store, "projects/other/x", []byte("x"), storage.PutOptions{})
		infos, err := b.store.List(ctx, "projects/many/")
		if err != nil {
			t.Fatal(err)
		}
		if got := keysOf(infos); !slices.Equal(got, want) {
			t.Fatalf("list returned %d keys (first %q), want %d in order", len(got), got[:min(3, len(got))], n)
		}
		for _, o := range infos {
			if d := time.Since(o.ModTime); d < -time.Minute || d > 10*time.Minute {
				t.Fatalf("list gives %s ModTime %v, %v from now", o.Key, o.ModTime, d)
			}
		}

		// DeleteMany in more than one S3 batch, with missing keys among them, leaves exactly the others.
		var gone []string
		var kept []string
		for i, k := range want {
			if i%3 == 0 {
				kept = append(kept, k)
			} else {
				gone = append(gone, k)
			}
		}
		gone = append(gone, "projects/many/blobs/missing-1", "projects/many/blobs/missing-2")
		if err := b.store.DeleteMany(ctx, gone); err != nil {
			t.Fatalf("delete many: %v", err)
		}
		if err := b.store.DeleteMany(ctx, nil); err != nil {
			t.Fatalf("delete none: %v", err)
		}
		infos, err = b.store.List(ctx, "projects/")
		if err != nil {
			t.Fatal(err)
		}
		if got := keysOf(infos); !slices.Equal(got, append(kept, "projects/other/x")) {
			t.Fatalf("after DeleteMany %d keys remain, want %d", len(got), len(kept)+1)
		}
		wantCode(t, "delete many with a hostile key", b.store.DeleteMany(ctx, []string{"projects/many/blobs/00000", "../x"}), ferry.EINVALID)
		if _, err := b.store.Stat(ctx, "projects/many/blobs/00000"); err != nil {
			t.Fatalf("a refused DeleteMany deleted a key before checking the others: %v", err)
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		t.Parallel()
		b := open(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := b.store.Put(cctx, "projects/web/c", strings.NewReader("body"), 4, storage.PutOptions{})
		if err == nil {
			t.Fatal("put with a canceled context succeeded")
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("put with a canceled context: %v, want it to wrap context.Canceled", err)
		}
	})
}
