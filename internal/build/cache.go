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
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ferryhq/ferry/internal/buildcontract"
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
	CacheOff     = "off"     // a fork's build: the cache is neither read nor written
)

// Cache scopes: how far the code of a build is trusted, and so which dependency cache it may read and write.
// A cache archive is what an install produced, and an install runs the repository's own scripts (postinstall)
// with the environment's env vars, so an archive is as trusted as the least trusted build that wrote it and
// may hold what that build's env vars held. Each scope therefore reads and writes its own cache alone:
//   - production: the production branch; its env vars are production's.
//   - preview: branches and pull requests of the repository itself (people with write access); a preview
//     never reads production's cache (an install script may have written production's env vars into it)
//     and never writes what production reads.
//   - fork: pull requests from other repositories. No cache is read or written: the only cache a fork could
//     read safely is one written by other outside contributors, which would let one of them plant code in
//     another's preview.
const (
	CacheScopeProduction = buildcontract.CacheScopeProduction
	CacheScopePreview    = buildcontract.CacheScopePreview
	CacheScopeFork       = buildcontract.CacheScopeFork
)

// ParseCacheScope is the contract's: "" is CacheScopePreview.
var ParseCacheScope = buildcontract.ParseCacheScope

// maxCacheEntry bounds one file unpacked from a cache archive, so that a hostile archive cannot fill the disk.
const maxCacheEntry = 1 << 30

// cacheKey names a project's dependency cache: the scope (see CacheScopeProduction), then the package manager,
// the node major version and the lockfile's hash, so a changed lockfile or toolchain starts a fresh cache
// instead of growing an old one: projects/<project>/cache/<scope>/<hash>.tar.gz.
func cacheKey(project, scope, pm, nodeVersion string, lockfile []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", pm, nodeVersion)
	h.Write(lockfile)
	return site.ProjectPrefix(project) + "cache/" + scope + "/" + hex.EncodeToString(h.Sum(nil))[:32] + ".tar.gz"
}

// scratchDir is the folder, inside node_modules, where build tools (babel-loader, terser, eslint) and install
// scripts keep their own files. None of it is an installed package, and an install script that writes there is
// exactly what must not reach a later build, so it is neither saved nor restored.
const scratchDir = ".cache"

// scratch reports whether name (slash-separated, relative to the archive's root) lies in a node_modules/.cache.
func scratch(name, part string) bool {
	if path.Base(part) != "node_modules" {
		return false
	}
	d := part + "/" + scratchDir
	return name == d || strings.HasPrefix(name, d+"/")
}

// cacheRestore unpacks the archive at key into root, where it may only fill the folders in parts (relative to
// root: the package manager's cache, and node_modules). Those folders must not exist yet or be empty. It returns
// CacheHit, CacheMiss, or CacheCorrupt (after emptying the parts again); only a storage outage is an error.
func cacheRestore(ctx context.Context, st storage.Storage, key, root string, parts []string) (string, error) {
	rc, err := st.Get(ctx, key)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return CacheMiss, nil
	}
	if err != nil {
		return "", fmt.Errorf("read dependency cache: %w", err)
	}
	defer rc.Close()
	if err := untar(rc, root, parts); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if ferry.ErrorCode(err) == ferry.EUNAVAILABLE {
			return "", fmt.Errorf("read dependency cache: %w", err)
		}
		for _, part := range parts {
			if err := os.RemoveAll(filepath.Join(root, part)); err != nil {
				return "", fmt.Errorf("clear corrupt dependency cache: %w", err)
			}
		}
		return CacheCorrupt, nil
	}
	return CacheHit, nil
}

// partOf returns the part that name (slash-separated, relative to the archive's root) lies in, or "".
func partOf(name string, parts []string) string {
	for _, p := range parts {
		if name == p || strings.HasPrefix(name, p+"/") {
			return p
		}
	}
	return ""
}

// untar unpacks folders, regular files and symlinks (node_modules/.bin and pnpm's store need them). The archive
// was written from a build's workspace, so it is untrusted: every entry must lie in one of parts, a link may
// only point inside its part (lexically, with a relative target), and links are made last, each only where no
// folder on its path is itself a link, so no entry is ever written through a link.
func untar(r io.Reader, root string, parts []string) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("open cache archive: %w", err)
	}
	tr := tar.NewReader(zr)
	type link struct{ path, target string }
	var links []link
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read cache archive: %w", err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		part := partOf(name, parts)
		if !filepath.IsLocal(filepath.FromSlash(name)) || part == "" {
			return fmt.Errorf("cache archive entry %q is outside the cached folders", h.Name)
		}
		if scratch(name, part) {
			continue // an older archive's node_modules/.cache: see scratchDir
		}
		target := filepath.Join(root, filepath.FromSlash(name))
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
			mode := os.FileMode(0o644)
			if h.Mode&0o111 != 0 {
				mode = 0o755
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, mode)
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
		case tar.TypeSymlink:
			resolved := path.Join(path.Dir(name), h.Linkname)
			if path.IsAbs(h.Linkname) || partOf(resolved, []string{part}) == "" {
				return fmt.Errorf("cache archive link %q points outside its folder", h.Name)
			}
			links = append(links, link{target, h.Linkname})
		default:
			// Devices, fifos and hard links have no place in a package cache.
		}
	}
	for _, l := range links {
		if err := noLinkOnPath(root, filepath.Dir(l.path)); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(l.target, l.path); err != nil {
			return fmt.Errorf("unpack link: %w", err)
		}
	}
	return nil
}

// noLinkOnPath fails when any folder from root down to dir, dir included, is a symlink.
func noLinkOnPath(root, dir string) error {
	rel, err := filepath.Rel(root, dir)
	if err != nil {
		return err
	}
	cur := root
	for _, c := range strings.Split(rel, string(filepath.Separator)) {
		if c == "." {
			continue
		}
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("%s is a link; the dependency cache is never read or written through links", cur)
		}
	}
	return nil
}

// cacheSave packs the parts of root into a tar.gz and stores it at key unless an archive is already there.
// Links are kept only when they point inside their part, which is all a package manager makes. The build has
// just run and owns root, so a part behind a link (src or cache swapped for a link to a host folder) is refused
// rather than packed.
func cacheSave(ctx context.Context, st storage.Storage, key, root string, parts []string, tmpDir string) (int64, error) {
	for _, part := range parts {
		if err := noLinkOnPath(root, filepath.Join(root, filepath.FromSlash(part))); err != nil {
			return 0, fmt.Errorf("pack dependency cache: %w", err)
		}
	}
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
	zw, _ := gzip.NewWriterLevel(io.MultiWriter(f, h), gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	for _, part := range parts {
		if _, err := os.Lstat(filepath.Join(root, part)); err != nil {
			continue
		}
		err = filepath.WalkDir(filepath.Join(root, part), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			name := filepath.ToSlash(rel)
			if scratch(name, part) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			switch {
			case info.IsDir():
				return tw.WriteHeader(&tar.Header{Name: name + "/", Mode: 0o755, ModTime: info.ModTime(), Typeflag: tar.TypeDir})
			case info.Mode()&os.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil || path.IsAbs(target) || partOf(path.Join(path.Dir(name), target), []string{part}) == "" {
					return nil
				}
				return tw.WriteHeader(&tar.Header{Name: name, Linkname: target, Mode: 0o777, ModTime: info.ModTime(), Typeflag: tar.TypeSymlink})
			case !info.Mode().IsRegular():
				return nil
			}
			mode := int64(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: info.Size(), ModTime: info.ModTime(), Typeflag: tar.TypeReg}); err != nil {
				return err
			}
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			defer src.Close()
			_, err = io.Copy(tw, io.LimitReader(src, info.Size()))
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("pack dependency cache: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return 0, fmt.Errorf("pack dependency cache: %w", err)
	}
	if err := zw.Close(); err != nil {
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

// cacheEnv points the package manager's download cache (and corepack's) into the one cached folder. Each
// manager gets only its own variables: npm warns about settings it does not know.
func cacheEnv(pm, cacheDir string) []string {
	env := []string{
		"npm_config_cache=" + filepath.Join(cacheDir, "npm"),
		"COREPACK_HOME=" + filepath.Join(cacheDir, "corepack"),
	}
	switch pm {
	case "yarn":
		// Yarn 1 reads YARN_CACHE_FOLDER; Yarn 2+ keeps its zip cache in the global folder by default.
		env = append(env, "YARN_CACHE_FOLDER="+filepath.Join(cacheDir, "yarn"), "YARN_GLOBAL_FOLDER="+filepath.Join(cacheDir, "yarn-berry"))
	case "pnpm":
		env = append(env, "pnpm_config_store_dir="+filepath.Join(cacheDir, "pnpm"), "npm_config_store_dir="+filepath.Join(cacheDir, "pnpm"))
	}
	return env
}
