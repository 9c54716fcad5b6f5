package site

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// A hash cache remembers, between two publishes of the same folder on the same machine, each file's SHA-256
// and content type together with its fileStamp, so that a republish of unchanged files reads none of them: the
// way git's index and rsync skip unchanged files.
//
// The trade-off is git's: a remembered hash is trusted when the device, inode, size, modification time and
// change time (ctime, which no user can set) all match to the nanosecond. Only a change of content that keeps
// all five would publish stale content, which needs a kernel that does not update ctime on writes, or a clock
// set back to the same nanosecond. Two more guards keep it honest: a file whose ctime is within
// hashCacheRacyWindow of the hash is not remembered (it may still be being written within one timestamp tick,
// git's "racily clean" case), and a file whose stamp changed while it was hashed is not remembered either.
//
// The cache is an optimisation, never a source of truth: a missing, unreadable or corrupt cache file means
// hashing everything again.

// hashCacheVersion is the cache file's format; another version is ignored.
const hashCacheVersion = 1

// hashCacheRacyWindow: files changed this recently are hashed but not remembered.
var hashCacheRacyWindow = 2 * time.Second

// maxHashCacheBytes bounds what is read of a cache file (20,000 entries take about 5 MB).
const maxHashCacheBytes = 32 << 20

// fileStamp identifies one version of a file for the hash cache.
type fileStamp struct {
	Dev   uint64 `json:"dev"`
	Ino   uint64 `json:"ino"`
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime"`
	CTime int64  `json:"ctime"`
}

type hashEntry struct {
	fileStamp
	Sum  string `json:"sum"`
	Type string `json:"type"`
}

type hashCacheFile struct {
	Version int                  `json:"version"`
	Root    string               `json:"root"`
	Files   map[string]hashEntry `json:"files"` // by localFile.cacheKey
}

// hashCache is one folder's cache: what the last publish remembered, and what this one will.
type hashCache struct {
	path string
	root string
	old  map[string]hashEntry
	mu   sync.Mutex
	new  map[string]hashEntry
	hits int
}

// HashCachePath is where `ferry publish` keeps the hash cache of folder root (resolved, absolute): under the
// user's cache folder ($XDG_CACHE_HOME, else ~/.cache), one file per folder. "" if there is no cache folder.
func HashCachePath(root string) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	sum := sha256.Sum256([]byte(root))
	return filepath.Join(dir, "ferry", "publish-hashes", hex.EncodeToString(sum[:16])+".json")
}

// openHashCache reads the cache at path for root. Anything wrong with the file yields an empty cache.
func openHashCache(path, root string) *hashCache {
	c := &hashCache{path: path, root: root, new: map[string]hashEntry{}}
	f, err := os.Open(path)
	if err != nil {
		return c
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxHashCacheBytes+1))
	if err != nil || len(data) > maxHashCacheBytes {
		return c
	}
	var cf hashCacheFile
	if json.Unmarshal(data, &cf) != nil || cf.Version != hashCacheVersion || cf.Root != root {
		return c
	}
	c.old = cf.Files
	return c
}

// lookup returns the remembered hash and type of the file named key whose stamp is st.
func (c *hashCache) lookup(key string, st fileStamp) (sum, contentType string, ok bool) {
	e, ok := c.old[key]
	if !ok || e.fileStamp != st || !isSHA256Hex(e.Sum) || e.Type == "" {
		return "", "", false
	}
	c.mu.Lock()
	c.new[key] = e
	c.hits++
	c.mu.Unlock()
	return e.Sum, e.Type, true
}

// remember records a hash computed now, unless the file changed too recently to trust its stamp.
func (c *hashCache) remember(key string, st fileStamp, sum, contentType string, now time.Time) {
	if now.UnixNano()-st.CTime < int64(hashCacheRacyWindow) || now.UnixNano()-st.MTime < int64(hashCacheRacyWindow) {
		return
	}
	c.mu.Lock()
	c.new[key] = hashEntry{fileStamp: st, Sum: sum, Type: contentType}
	c.mu.Unlock()
}

// save replaces the cache file with what this publish saw (files gone from the folder drop out).
func (c *hashCache) save() error {
	data, err := json.Marshal(hashCacheFile{Version: hashCacheVersion, Root: c.root, Files: c.new})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".hashes-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), c.path); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
