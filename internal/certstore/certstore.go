// Package certstore keeps certmagic's certificates, ACME account keys, challenge tokens and locks in Ferry's
// storage (under acme/), so that every proxy sharing one --storage shares them: N proxies behind a load balancer
// order one certificate per name, not one each, and a challenge started by one proxy is answered by any other.
//
// Locks are lock objects with an expiry, created with "create if absent" and renewed or released with "only if
// unchanged" (storage.Conditional: flock on the file backend, If-None-Match / If-Match on S3). A holder that dies
// leaves its lock to expire after LockTTL; whoever then deletes it does so only if it is still the stale
// version it read, so a fresh lock is never removed by mistake.
package certstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/storage"
)

// Prefix is the storage area that certmagic's keys live under (docs/architecture.md, "Custom domains and
// certificates").
const Prefix = "acme/"

// maxObject bounds one read: certificates, keys and metadata are a few KB.
const maxObject = 1 << 20

// Store is a certmagic.Storage over a storage.Storage. Make it with New.
type Store struct {
	st   storage.Storage
	cond storage.Conditional
	log  *slog.Logger
	// owner tells this process's locks apart from others' in the lock objects, for operators reading them.
	owner string

	// LockTTL is how long a lock is valid without renewal; a holder renews it every LockTTL/3. Default 1 minute.
	LockTTL time.Duration
	// PollInterval is how often Lock checks a held lock again. Default 1 second.
	PollInterval time.Duration

	mu   sync.Mutex
	held map[string]*heldLock
}

var (
	_ certmagic.Storage = (*Store)(nil)
	_ certmagic.Locker  = (*Store)(nil)
)

type heldLock struct {
	tag  string
	stop chan struct{}
	done chan struct{}
}

// New returns a Store over st. st must implement storage.Conditional (both of Ferry's backends do); locks cannot
// be made safe without it.
func New(st storage.Storage, log *slog.Logger) (*Store, error) {
	cond, ok := st.(storage.Conditional)
	if !ok {
		return nil, ferry.Errorf(ferry.EINVALID, "certificate store: storage %T cannot write conditionally, so proxies could not share locks", st)
	}
	if log == nil {
		log = slog.Default()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &Store{st: st, cond: cond, log: log, owner: hex.EncodeToString(b[:]), LockTTL: time.Minute, PollInterval: time.Second, held: map[string]*heldLock{}}, nil
}

// notExist makes ENOTFOUND satisfy errors.Is(err, fs.ErrNotExist), which is what certmagic checks.
func notExist(err error) error {
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	return err
}

// Store writes value at key.
func (s *Store) Store(ctx context.Context, key string, value []byte) error {
	return s.st.Put(ctx, Prefix+key, bytes.NewReader(value), int64(len(value)), storage.PutOptions{})
}

// Load reads key (fs.ErrNotExist if absent).
func (s *Store) Load(ctx context.Context, key string) ([]byte, error) {
	rc, err := s.st.Get(ctx, Prefix+key)
	if err != nil {
		return nil, notExist(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxObject+1))
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", key, err)
	}
	if len(b) > maxObject {
		return nil, ferry.Errorf(ferry.ETOOLARGE, "load %s: more than %d bytes", key, maxObject)
	}
	return b, nil
}

// Delete removes key and, as certmagic wants of a "directory", everything under key/.
func (s *Store) Delete(ctx context.Context, key string) error {
	objs, err := s.st.List(ctx, Prefix+key+"/")
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := s.st.Delete(ctx, o.Key); err != nil {
			return err
		}
	}
	return s.st.Delete(ctx, Prefix+key)
}

// Exists reports whether key is an object or a prefix of objects.
func (s *Store) Exists(ctx context.Context, key string) bool {
	if _, err := s.st.Stat(ctx, Prefix+key); err == nil {
		return true
	}
	objs, err := s.st.List(ctx, Prefix+key+"/")
	return err == nil && len(objs) > 0
}

// List returns the keys under dir: all of them when recursive, else its direct children (objects and
// "directories").
func (s *Store) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	dir = strings.Trim(dir, "/")
	p := Prefix
	if dir != "" {
		p += dir + "/"
	}
	objs, err := s.st.List(ctx, p)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, p)
		if !recursive {
			if i := strings.IndexByte(rel, '/'); i >= 0 {
				rel = rel[:i]
			}
		}
		k := rel
		if dir != "" {
			k = dir + "/" + rel
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("list %s: %w", dir, fs.ErrNotExist)
	}
	sort.Strings(out)
	return out, nil
}

// Stat describes key: an object, or a "directory" when objects sit under key/.
func (s *Store) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	fi, err := s.st.Stat(ctx, Prefix+key)
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: fi.ModTime, Size: fi.Size, IsTerminal: true}, nil
	}
	if ferry.ErrorCode(err) != ferry.ENOTFOUND {
		return certmagic.KeyInfo{}, err
	}
	if objs, lerr := s.st.List(ctx, Prefix+key+"/"); lerr == nil && len(objs) > 0 {
		return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
	}
	return certmagic.KeyInfo{}, notExist(err)
}

// lockInfo is the body of a lock object.
type lockInfo struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

func (s *Store) lockKey(name string) string {
	return Prefix + "locks/" + strings.ReplaceAll(name, "/", "_") + ".lock"
}

func (s *Store) lockBody() []byte {
	b, _ := json.Marshal(lockInfo{Owner: s.owner, Expires: time.Now().Add(s.LockTTL).UTC()})
	return b
}

// Lock blocks until this process holds the lock named name, or ctx ends.
func (s *Store) Lock(ctx context.Context, name string) error {
	key := s.lockKey(name)
	for {
		ok, err := s.tryLock(ctx, name, key)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.PollInterval):
		}
	}
}

// tryLock makes one attempt: create the lock object, or remove it if it expired (and then try again at once).
func (s *Store) tryLock(ctx context.Context, name, key string) (bool, error) {
	for attempt := 0; attempt < 2; attempt++ {
		tag, err := s.cond.PutIf(ctx, key, s.lockBody(), "")
		if err == nil {
			s.hold(name, key, tag)
			return true, nil
		}
		if ferry.ErrorCode(err) != ferry.ECONFLICT {
			return false, fmt.Errorf("lock %s: %w", name, err)
		}
		body, curTag, err := s.cond.GetTagged(ctx, key)
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			continue // released meanwhile
		}
		if err != nil {
			return false, fmt.Errorf("lock %s: %w", name, err)
		}
		var li lockInfo
		if json.Unmarshal(body, &li) == nil && time.Now().Before(li.Expires) {
			return false, nil
		}
		s.log.WarnContext(ctx, "removing an expired certificate lock", "lock", name, "owner", li.Owner, "expired", li.Expires)
		if err := s.cond.DeleteIf(ctx, key, curTag); err != nil && ferry.ErrorCode(err) != ferry.ECONFLICT {
			return false, fmt.Errorf("lock %s: remove expired lock: %w", name, err)
		}
	}
	return false, nil
}

// hold records a lock and renews it until Unlock.
func (s *Store) hold(name, key, tag string) {
	h := &heldLock{tag: tag, stop: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	s.held[name] = h
	s.mu.Unlock()
	go func() {
		defer close(h.done)
		t := time.NewTicker(s.LockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.LockTTL/3)
			s.mu.Lock()
			cur := h.tag
			s.mu.Unlock()
			newTag, err := s.cond.PutIf(ctx, key, s.lockBody(), cur)
			cancel()
			switch {
			case err == nil:
				s.mu.Lock()
				h.tag = newTag
				s.mu.Unlock()
			case ferry.ErrorCode(err) == ferry.ECONFLICT:
				s.log.Error("lost a certificate lock: another proxy took it after it expired", "lock", name)
				return
			default:
				s.log.Warn("could not renew a certificate lock; retrying", "lock", name, "err", err)
			}
		}
	}()
}

// Unlock releases a lock that Lock acquired.
func (s *Store) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("unlock %s: %w", name, errors.New("not held by this process"))
	}
	close(h.stop)
	<-h.done
	if err := s.cond.DeleteIf(ctx, s.lockKey(name), h.tag); err != nil && ferry.ErrorCode(err) != ferry.ECONFLICT {
		return fmt.Errorf("unlock %s: %w", name, err)
	}
	return nil
}

// String names the store in certmagic's logs.
func (s *Store) String() string { return "ferry storage (" + Prefix + ")" }
