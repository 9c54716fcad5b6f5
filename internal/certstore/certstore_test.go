package certstore_test

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/certstore"
	"github.com/ferryhq/ferry/internal/storage"
	"github.com/ferryhq/ferry/internal/storage/s3test"
)

func backends(t *testing.T, f func(t *testing.T, st storage.Storage)) {
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		st, err := storage.NewFile(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		f(t, st)
	})
	t.Run("versitygw", func(t *testing.T) {
		t.Parallel()
		f(t, s3test.StartVersityGW(t).Open(t, "certs"))
	})
}

func newStore(t *testing.T, st storage.Storage) *certstore.Store {
	s, err := certstore.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.PollInterval = 20 * time.Millisecond
	return s
}

func TestStoreKeys(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st storage.Storage) {
		ctx := context.Background()
		s := newStore(t, st)
		if _, err := s.Load(ctx, "certificates/ca/a.example/a.example.crt"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Load of a missing key: %v, want fs.ErrNotExist", err)
		}
		for _, k := range []string{"certificates/ca/a.example/a.example.crt", "certificates/ca/a.example/a.example.key", "certificates/ca/b.example/b.example.crt", "acme/ca/users/x/x.json"} {
			if err := s.Store(ctx, k, []byte("v:"+k)); err != nil {
				t.Fatal(err)
			}
		}
		if b, err := s.Load(ctx, "certificates/ca/a.example/a.example.key"); err != nil || string(b) != "v:certificates/ca/a.example/a.example.key" {
			t.Fatalf("Load = %q, %v", b, err)
		}
		if _, err := st.Stat(ctx, "acme/certificates/ca/a.example/a.example.crt"); err != nil {
			t.Fatalf("certificates are not under acme/ in Ferry's storage: %v", err)
		}
		got, err := s.List(ctx, "certificates/ca", false)
		if want := []string{"certificates/ca/a.example", "certificates/ca/b.example"}; err != nil || !slices.Equal(got, want) {
			t.Fatalf("List non-recursive = %q, %v; want %q", got, err, want)
		}
		got, err = s.List(ctx, "certificates", true)
		if err != nil || len(got) != 3 {
			t.Fatalf("List recursive = %q, %v", got, err)
		}
		if !s.Exists(ctx, "certificates/ca") || !s.Exists(ctx, "certificates/ca/b.example/b.example.crt") || s.Exists(ctx, "certificates/nope") {
			t.Fatal("Exists is wrong for a directory, a file or a missing key")
		}
		if ki, err := s.Stat(ctx, "certificates/ca/a.example"); err != nil || ki.IsTerminal {
			t.Fatalf("Stat of a directory = %+v, %v", ki, err)
		}
		if ki, err := s.Stat(ctx, "certificates/ca/a.example/a.example.crt"); err != nil || !ki.IsTerminal || ki.Size == 0 {
			t.Fatalf("Stat of a file = %+v, %v", ki, err)
		}
		if err := s.Delete(ctx, "certificates/ca/a.example"); err != nil {
			t.Fatal(err)
		}
		if s.Exists(ctx, "certificates/ca/a.example/a.example.crt") || !s.Exists(ctx, "certificates/ca/b.example") {
			t.Fatal("Delete of a directory removed the wrong keys")
		}
	})
}

// Two stores over one storage stand for two proxies: their critical sections never overlap.
func TestStoreLockMutualExclusion(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st storage.Storage) {
		ctx := context.Background()
		a, b := newStore(t, st), newStore(t, st)
		var inside, overlaps, entries atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 6; i++ {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Lock(ctx, "issue_cert_a.example"); err != nil {
					t.Error(err)
					return
				}
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				entries.Add(1)
				time.Sleep(30 * time.Millisecond)
				inside.Add(-1)
				if err := s.Unlock(ctx, "issue_cert_a.example"); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if overlaps.Load() != 0 || entries.Load() != 6 {
			t.Fatalf("%d overlapping critical sections of %d; want 0 of 6", overlaps.Load(), entries.Load())
		}
	})
}

// A holder that died leaves its lock; after LockTTL another proxy takes it. A live holder keeps it past LockTTL
// by renewing.
func TestStoreLockExpiryAndRenewal(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st storage.Storage) {
		ctx := context.Background()
		live, other := newStore(t, st), newStore(t, st)
		live.LockTTL, other.LockTTL = 300*time.Millisecond, 300*time.Millisecond
		if err := live.Lock(ctx, "renewed"); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := other.Lock(wctx, "renewed"); err == nil {
			t.Fatal("took a lock whose holder is alive and renewing it")
		}
		if err := live.Unlock(ctx, "renewed"); err != nil {
			t.Fatal(err)
		}
		if err := other.Lock(ctx, "renewed"); err != nil {
			t.Fatalf("lock after release: %v", err)
		}
		_ = other.Unlock(ctx, "renewed")

		// A crashed holder: its lock object stays, nobody renews it.
		dead := newStore(t, st)
		dead.LockTTL = 300 * time.Millisecond
		if err := dead.Lock(ctx, "crashed"); err != nil {
			t.Fatal(err)
		}
		dead.Abandon("crashed")
		start := time.Now()
		if err := other.Lock(ctx, "crashed"); err != nil {
			t.Fatalf("lock left by a crashed holder: %v", err)
		}
		if waited := time.Since(start); waited < 150*time.Millisecond {
			t.Fatalf("took a crashed holder's lock after %v, before it expired", waited)
		}
		_ = other.Unlock(ctx, "crashed")
	})
}
