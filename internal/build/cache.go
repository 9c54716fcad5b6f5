package build

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// Cache states reported in Result.Cache.
const (
	CacheNone    = "none"    // nothing to cache (no lockfile)
	CacheHit     = "hit"     // restored before install
	CacheMiss    = "miss"    // no cache yet; saved after install
	CacheCorrupt = "corrupt" // unreadable; ignored, plain install
)

// maxCacheEntry bounds one file unpacked from a cache archive, so that a hostile archive cannot fill the disk.
const maxCacheEntry = 1 << 30

// cacheKey names a project's dependency cache: the package manager, the node major version and the lockfile's
// hash, so a changed lockfile or toolchain starts a fresh cache instead of growing an old one.
func cacheKey(project, pm, nodeVersion string, lockfile []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", pm, nodeVersion)
	h.Write(lockfile)
	return site.ProjectPrefix(project) + "cache/" + hex.EncodeToString(h.Sum(nil))[:32] + ".tar.gz"
}

// cacheRestore unpacks the archive at key into dir. It returns CacheHit, CacheMiss, or CacheCorrupt (after
// emptying dir again); only a storage outage is an error.
func cacheRestore(ctx context.Context, st storage.Storage, key, dir string) (string, error) {
	rc, err := st.Get(ctx, key)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return CacheMiss, nil
	}
	if err != nil {
		return "", fmt.Errorf("read dependency cache: %w", err)
	}
	defer rc.Close()
	if err := untar(rc, dir); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if ferry.ErrorCode(err) == ferry.EUNAVAILABLE {
			return "", fmt.Errorf("read dependency cache: %w", err)
		}
		if err := emptyDir(dir); err != nil {
			return "", fmt.Errorf("clear corrupt dependency cache: %w", err)
		}
		return CacheCorrupt, nil
	}
	return CacheHit, nil
}

// untar unpacks regular files and folders only; links and paths that leave dir are refused (the archive was
// written from a build's workspace, so it is untrusted).
func untar(r io.Reader, dir string) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("open cache archive: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read cache archive: %w", err)
		}
		name := filepath.FromSlash(h.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("cache archive entry %q leaves the cache folder", h.Name)
		}
		target := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if h.Size > maxCacheEntry {
				return fmt.Errorf("cache archive entry %q is too large", h.Name)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, io.LimitReader(tr, maxCacheEntry))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("unpack %q: %w", h.Name, err)
			}
		default:
			// Symlinks and devices are skipped: a package manager's cache holds files and folders.
		}
	}
}

// cacheSave packs dir into a tar.gz and stores it at key unless an archive is already there. Links are
// skipped: only files and folders that the package manager wrote are kept.
func cacheSave(ctx context.Context, st storage.Storage, key, dir, tmpDir string) (int64, error) {
	if _, err := st.Stat(ctx, key); err == nil {
		return 0, nil
	} else if ferry.ErrorCode(err) != ferry.ENOTFOUND {
		return 0, fmt.Errorf("check dependency cache: %w", err)
	}
	f, err := os.CreateTemp(tmpDir, "cache-*.tar.gz")
	if err != nil {
		return 0, fmt.Errorf("create cache archive: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	zw := gzip.NewWriter(io.MultiWriter(f, h))
	tw := tar.NewWriter(zw)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.IsDir() && !info.Mode().IsRegular() {
			return nil
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: info.Size(), ModTime: info.ModTime(), Typeflag: tar.TypeReg}
		if info.IsDir() {
			hdr = &tar.Header{Name: filepath.ToSlash(rel) + "/", Mode: 0o755, ModTime: info.ModTime(), Typeflag: tar.TypeDir}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, io.LimitReader(src, info.Size()))
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return 0, fmt.Errorf("pack dependency cache: %w", err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return 0, fmt.Errorf("pack dependency cache: %w", err)
	}
	if err := st.Put(ctx, key, f, size, storage.PutOptions{SHA256: hex.EncodeToString(h.Sum(nil)), ContentType: "application/gzip"}); err != nil {
		return 0, fmt.Errorf("store dependency cache: %w", err)
	}
	return size, nil
}

func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// cacheEnv points the package manager's download cache (and corepack's) into the one cached folder. Each
// manager gets only its own variables: npm warns about settings it does not know.
func cacheEnv(pm, cacheDir string) []string {
	env := []string{
		"npm_config_cache=" + filepath.Join(cacheDir, "npm"),
		"COREPACK_HOME=" + filepath.Join(cacheDir, "corepack"),
	}
	switch pm {
	case "yarn":
		env = append(env, "YARN_CACHE_FOLDER="+filepath.Join(cacheDir, "yarn"))
	case "pnpm":
		env = append(env, "pnpm_config_store_dir="+filepath.Join(cacheDir, "pnpm"), "npm_config_store_dir="+filepath.Join(cacheDir, "pnpm"))
	}
	return env
}
