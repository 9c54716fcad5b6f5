package site

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// shortRacyWindow lets a test trust files it just wrote after a short sleep instead of two seconds. Tests that
// use it do not run in parallel.
func shortRacyWindow(t *testing.T) {
	old := hashCacheRacyWindow
	hashCacheRacyWindow = 20 * time.Millisecond
	t.Cleanup(func() { hashCacheRacyWindow = old })
}

// TestHashCacheReusesAndNoticesChange: a republish of an unchanged folder reads no file again, and a file whose
// content changed while its size and mtime were put back is hashed again (its ctime moved), so the manifest
// names the new content.
func TestHashCacheReusesAndNoticesChange(t *testing.T) {
	shortRacyWindow(t)
	s, _ := newFileStore(t)
	ctx := context.Background()
	dir := writeTree(t, map[string]string{"index.html": "<p>one</p>", "app.js": "console.log(1)", "a/b.css": "b{}"})
	if err := os.Symlink("app.js", filepath.Join(dir, "copy.txt")); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(t.TempDir(), "hashes.json")
	time.Sleep(50 * time.Millisecond)
	publish := func() (*scanned, *Manifest) {
		t.Helper()
		sc, err := scanDir(ctx, dir, DefaultLimits, cache)
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Publish(ctx, PublishParams{Project: "web", Dir: dir, HashCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.ManifestGet(ctx, "web", res.Deployment)
		if err != nil {
			t.Fatal(err)
		}
		return sc, m
	}
	sc, m := publish()
	if sc.cacheHits != 0 {
		t.Fatalf("first scan: %d cache hits with no cache", sc.cacheHits)
	}
	sc, m2 := publish()
	if sc.cacheHits != 4 {
		t.Fatalf("unchanged folder: %d of 4 files from the cache", sc.cacheHits)
	}
	for p, f := range m.Files {
		if m2.Files[p] != f {
			t.Errorf("%s: %+v from the cache, %+v hashed", p, m2.Files[p], f)
		}
	}
	if m2.Files["/copy.txt"].ContentType == m2.Files["/app.js"].ContentType {
		t.Errorf("a symlink under another name took the target's content type from the cache: %q", m2.Files["/copy.txt"].ContentType)
	}

	// Same size, same mtime, different bytes: only ctime tells.
	js := filepath.Join(dir, "app.js")
	fi, err := os.Stat(js)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(js, []byte("console.log(2)"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(js, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	sc, m3 := publish()
	if got, want := m3.Files["/app.js"].Blob, sha("console.log(2)"); got != want {
		t.Fatalf("changed file published as %s, want %s (stale cache entry trusted)", got, want)
	}
	if sc.cacheHits != 2 { // index.html and a/b.css; app.js and its symlink are read again
		t.Errorf("after one change: %d cache hits, want 2", sc.cacheHits)
	}
}

// TestHashCacheRacyAndCorrupt: a file changed within the racy window is not remembered, and a corrupt or
// foreign cache file is ignored rather than trusted or fatal.
func TestHashCacheRacyAndCorrupt(t *testing.T) {
	ctx := context.Background()
	dir := writeTree(t, map[string]string{"index.html": "fresh"})
	cache := filepath.Join(t.TempDir(), "hashes.json")
	for range 2 { // written just now: within the default two-second window both times
		sc, err := scanDir(ctx, dir, DefaultLimits, cache)
		if err != nil {
			t.Fatal(err)
		}
		if sc.cacheHits != 0 {
			t.Fatalf("a file changed %v ago came from the cache", hashCacheRacyWindow)
		}
	}
	for _, garbage := range []string{"{not json", `{"version":99,"files":{}}`, `{"version":1,"root":"/elsewhere","files":{}}`} {
		if err := os.WriteFile(cache, []byte(garbage), 0o600); err != nil {
			t.Fatal(err)
		}
		sc, err := scanDir(ctx, dir, DefaultLimits, cache)
		if err != nil {
			t.Fatalf("cache %q: %v", garbage, err)
		}
		if sc.files[0].sum != sha("fresh") {
			t.Fatalf("cache %q: sum %s", garbage, sc.files[0].sum)
		}
	}
	// A forged entry for the right stamp but a bad hash is refused.
	c := openHashCache(cache, "/x")
	c.old = map[string]hashEntry{"k": {fileStamp: fileStamp{Ino: 1}, Sum: "zz", Type: "text/plain"}}
	if _, _, ok := c.lookup("k", fileStamp{Ino: 1}); ok {
		t.Error("a malformed hash was trusted")
	}
}
