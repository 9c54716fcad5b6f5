package storage_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/storage"
	"github.com/ferryhq/ferry/internal/storage/s3test"
)

// testConditional checks create-if-absent, replace-if-unchanged and delete-if-unchanged, and that of many
// concurrent creators exactly one wins.
func testConditional(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	c, ok := s.(storage.Conditional)
	if !ok {
		t.Fatalf("%T does not implement storage.Conditional", s)
	}
	const key = "acme/locks/x.lock"
	tag1, err := c.PutIf(ctx, key, []byte("one"), "")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := c.PutIf(ctx, key, []byte("two"), ""); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Fatalf("second create: got %v, want conflict", err)
	}
	body, tag, err := c.GetTagged(ctx, key)
	if err != nil || string(body) != "one" || tag != tag1 {
		t.Fatalf("GetTagged = %q, %q, %v; want one, %q", body, tag, err, tag1)
	}
	tag2, err := c.PutIf(ctx, key, []byte("two"), tag1)
	if err != nil {
		t.Fatalf("replace with the current tag: %v", err)
	}
	if _, err := c.PutIf(ctx, key, []byte("three"), tag1); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Fatalf("replace with a stale tag: got %v, want conflict", err)
	}
	if err := c.DeleteIf(ctx, key, tag1); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Fatalf("delete with a stale tag: got %v, want conflict", err)
	}
	if b := get(t, s, key); string(b) != "two" {
		t.Fatalf("after refused writes the object is %q, want two", b)
	}
	if err := c.DeleteIf(ctx, key, tag2); err != nil {
		t.Fatalf("delete with the current tag: %v", err)
	}
	if _, err := s.Stat(ctx, key); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Fatalf("after DeleteIf, Stat: %v, want not found", err)
	}
	if err := c.DeleteIf(ctx, key, tag2); err != nil {
		t.Fatalf("delete of a missing object: %v", err)
	}
	if _, _, err := c.GetTagged(ctx, key); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Fatalf("GetTagged of a missing object: %v, want not found", err)
	}
	if infos, err := s.List(ctx, "acme/"); err != nil || len(infos) != 0 {
		t.Fatalf("List after delete = %v, %v; want nothing (no side files)", keysOf(infos), err)
	}

	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.PutIf(ctx, "acme/locks/race.lock", []byte{byte(i)}, "")
			switch ferry.ErrorCode(err) {
			case "":
				wins.Add(1)
			case ferry.ECONFLICT:
			default:
				t.Errorf("racing create: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Fatalf("%d of 8 concurrent creates won; want exactly 1", n)
	}
}

func TestConditionalFile(t *testing.T) {
	t.Parallel()
	testConditional(t, fileBackend(t).store)
}

func TestConditionalVersityGW(t *testing.T) {
	t.Parallel()
	testConditional(t, s3test.StartVersityGW(t).Open(t, "cond"))
}
