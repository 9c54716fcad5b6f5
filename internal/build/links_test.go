package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/storage"
)

// linkRepo makes a local git repository with files and symlinks (name to target) in one commit.
func linkRepo(t *testing.T, files, links map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "links"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	return dir
}

// TestRootDirectoryLinkOutOfRepo: a repository whose rootDirectory is a link to a host folder must not make
// ferry (root, on the host) read that folder's files or unpack the dependency cache into it.
func TestRootDirectoryLinkOutOfRepo(t *testing.T) {
	requireBwrap(t)
	e := newTestEnv(t, "")
	host := t.TempDir()
	lock := `{"name":"host","lockfileVersion":3,"requires":true,"packages":{"":{"name":"host"}}}`
	for name, body := range map[string]string{
		"package.json":      `{"name":"host","scripts":{"build":"canary-host-script-8e1f"}}`,
		"package-lock.json": lock,
	} {
		if err := os.WriteFile(filepath.Join(host, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	repo := linkRepo(t, map[string]string{"ferry.json": `{"rootDirectory": "app"}`}, map[string]string{"app": host})
	// A cache that an earlier build of this project saved: the build writes what goes in it.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "src/app/node_modules/evil.js", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4})
	tw.Write([]byte("evil"))
	tw.Close()
	zw.Close()
	key := cacheKey("web", CacheScopePreview, "npm\nnpm ci", majorOf(strings.TrimPrefix(nodeVersion(context.Background()), "v")), []byte(lock))
	if err := e.st.Put(context.Background(), key, bytes.NewReader(buf.Bytes()), int64(buf.Len()), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	p := e.params(e.repo(map[string]string{"x": "x"}))
	p.Repo, p.Ref = repo, "main"
	_, err := Run(context.Background(), p)
	if _, err := os.Lstat(filepath.Join(host, "node_modules")); err == nil {
		t.Errorf("the cache was unpacked into the host folder %s", host)
	}
	if strings.Contains(e.logs.String(), "canary-host-script-8e1f") {
		t.Errorf("the host's package.json was read:\n%s", e.logs.String())
	}
	wantCode(t, err, ferry.EINVALID, "rootDirectory", "outside")
}

// TestFerryJSONLinkOutOfRepo: ferry.json may not be a link to a host file.
func TestFerryJSONLinkOutOfRepo(t *testing.T) {
	host := filepath.Join(t.TempDir(), "secret.json")
	if err := os.WriteFile(host, []byte(`{"canary-host-key-4b2d": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	src := linkRepo(t, nil, map[string]string{"ferry.json": host})
	_, err := readConfig(src)
	if err == nil || strings.Contains(err.Error(), "canary-host-key-4b2d") {
		t.Fatalf("ferry.json followed a link out of the repository: %v", err)
	}
}

// TestCacheSaveRefusesLinkedParts: the build owns its workspace and may replace a folder on the way to a cached
// part with a link to a host folder; the cache must not pack the host's files.
func TestCacheSaveRefusesLinkedParts(t *testing.T) {
	host := t.TempDir()
	for _, p := range []string{"node_modules/secret.txt", "corepack/secret.txt"} {
		os.MkdirAll(filepath.Join(host, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(host, p), []byte("canary-cache-6a90"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir()
	if err := os.Symlink(host, filepath.Join(root, "src")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(root, "cache")); err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(context.Background(), "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = cacheSave(context.Background(), st, "projects/web/cache/k.tar.gz", root, []string{"src/node_modules", "cache/corepack"}, t.TempDir())
	if rc, gerr := st.Get(context.Background(), "projects/web/cache/k.tar.gz"); gerr == nil {
		zr, _ := gzip.NewReader(rc)
		b, _ := io.ReadAll(zr)
		rc.Close()
		if bytes.Contains(b, []byte("canary-cache-6a90")) {
			t.Fatalf("the cache packed host files through a link (err %v)", err)
		}
	}
	if err == nil {
		t.Errorf("cacheSave saved parts behind links without an error")
	}
}
