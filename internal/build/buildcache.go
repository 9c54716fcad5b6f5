package build

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// frameworkCache is a framework's own build cache (Next's .next/cache, .svelte-kit, .astro): restored before the
// build and saved after it, so that what the build wrote survives into the next one. It is a separate archive
// beside the dependency cache and named after it, so it has the same scope (project, lockfile, toolchain) and
// is never shared more widely than the dependency cache is.
type frameworkCache struct {
	key   string
	parts []string // relative to the workspace, like the dependency cache's
}

// buildCacheKey names the framework cache that goes with a dependency cache.
func buildCacheKey(depKey string) string {
	return strings.TrimSuffix(depKey, ".tar.gz") + ".build.tar.gz"
}

// restoreBuildCache unpacks the framework's cache into its folders (which the checkout must not hold already:
// a committed .next/cache is the user's) and returns what to save after the build. Trouble is logged and only
// costs time.
func restoreBuildCache(ctx context.Context, p Params, sb *sandbox, plan Plan, src, depKey string, log *slog.Logger) frameworkCache {
	fc := frameworkCache{key: buildCacheKey(depKey)}
	for _, c := range plan.Framework.Caches {
		rel := path.Join(plan.Root, c)
		real, err := inCheckout(src, rel)
		if err != nil || real != rel {
			continue // behind a link: never unpacked into or packed from
		}
		if _, err := os.Lstat(filepath.Join(src, filepath.FromSlash(rel))); err == nil && !strings.Contains(c, "node_modules/") {
			continue
		}
		fc.parts = append(fc.parts, path.Join("src", rel))
	}
	if len(fc.parts) == 0 {
		return frameworkCache{}
	}
	state, err := cacheRestore(ctx, p.Storage, fc.key, sb.hostRoot, fc.parts)
	switch {
	case err != nil:
		log.Warn("build cache not restored", "err", err.Error())
		return fc
	case state == CacheHit:
		log.Info(fmt.Sprintf("%s build cache restored (%s)", plan.Framework.Name, strings.Join(plan.Framework.Caches, ", ")), "key", fc.key)
	case state == CacheCorrupt:
		log.Warn("build cache is unreadable; building without it", "key", fc.key)
	default:
		log.Info(fmt.Sprintf("no %s build cache yet (%s); it is saved after this build", plan.Framework.Name, strings.Join(plan.Framework.Caches, ", ")))
	}
	if sb.dropUID {
		if err := chownParts(sb.hostRoot, fc.parts, sb.uid); err != nil {
			log.Warn("build cache not handed to the sandbox user", "err", err.Error())
		}
	}
	return fc
}

// saveBuildCache replaces the framework cache with what this build left. The build ran untrusted code, so
// cacheSave refuses parts behind links and keeps only links inside their part.
func saveBuildCache(ctx context.Context, p Params, sb *sandbox, fc frameworkCache, tmp string, log *slog.Logger) {
	present := false
	for _, part := range fc.parts {
		if _, err := os.Lstat(filepath.Join(sb.hostRoot, filepath.FromSlash(part))); err == nil {
			present = true
		}
	}
	if !present {
		return
	}
	if err := p.Storage.Delete(ctx, fc.key); err != nil {
		log.Warn("build cache not saved", "err", err.Error())
		return
	}
	size, err := cacheSave(ctx, p.Storage, fc.key, sb.hostRoot, fc.parts, tmp)
	if err != nil {
		log.Warn("build cache not saved", "err", err.Error())
		return
	}
	log.Info("build cache saved", "key", fc.key, "bytes", size)
}

// spaFor says whether the framework's output is an SPA, and whether that is known: a Vite build is one when it
// wrote a single HTML file.
func (f *Framework) spaFor(outDir string) (spa, known bool) {
	switch f.SPA {
	case "spa":
		return true, true
	case "pages":
		return false, true
	}
	n := 0
	_ = filepath.WalkDir(outDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasSuffix(d.Name(), ".html") {
			n++
		}
		if n > 1 {
			return filepath.SkipAll
		}
		return nil
	})
	if n == 1 {
		return true, true
	}
	return false, false
}

// buildHint turns what a framework prints when it is set up for a server into the one setting to change.
func buildHint(f *Framework, out string) string {
	switch {
	case strings.Contains(out, "Could not detect a supported production environment"):
		return "SvelteKit's adapter-auto found no production environment it knows, since Ferry serves static files: " +
			"install @sveltejs/adapter-static, use it as the adapter (vite.config.js in SvelteKit 3, svelte.config.js in SvelteKit 2), and add export const prerender = true to src/routes/+layout.js"
	case f.Slug == "sveltekit" && strings.Contains(out, "adapter-static") && strings.Contains(out, "dynamic routes"):
		return "adapter-static needs every page prerendered: add export const prerender = true to src/routes/+layout.js, or set fallback: '200.html' for an SPA"
	}
	return ""
}
