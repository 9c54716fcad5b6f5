package site

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/siteconfig"
)

// Names at the top of an output folder that configure the site instead of being served.
const (
	redirectsFile = "_redirects"
	headersFile   = "_headers"
	settingsFile  = "ferry.json"
)

// maxConfigBytes bounds _redirects and _headers: their rules live in every manifest and in the proxy's memory.
const maxConfigBytes = 1 << 20

// maxDepth stops folder nesting (or symlinked folders inside the folder) from recursing without end.
const maxDepth = 64

// localFile is one file of the folder being published.
type localFile struct {
	urlPath     string // "/assets/app.js"
	real        string // the path to open: the file itself or, for a symlink, its resolved target
	size        int64
	sum         string // lowercase hex SHA-256
	contentType string
}

// cacheKey names the file in the hash cache: the content type depends on the URL path as well as the bytes
// (a symlink may publish one file under two names).
func (f *localFile) cacheKey() string { return f.urlPath + "\x00" + f.real }

func (f *localFile) rel() string { return strings.TrimPrefix(f.urlPath, "/") }

func (f *localFile) open() (*os.File, error) {
	// f.real has no symlink as its last component (the walk resolved it), so O_NOFOLLOW only refuses a file
	// replaced by a link since then.
	r, err := os.OpenFile(f.real, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return nil, ferry.Errorf(ferry.EINVALID, "read %s: %w", f.rel(), err)
	}
	return r, nil
}

// scanned is a hashed output folder.
type scanned struct {
	root      string // resolved, absolute
	files     []localFile
	total     int64
	redirects string // real paths of the configuration files at the top, "" when absent
	headers   string
	// cacheHits counts files whose hash came from the hash cache; cacheErr is why it could not be saved.
	cacheHits int
	cacheErr  error
}

// scanDir lists and hashes every file of dir that will be published. The folder is untrusted: symlinks are
// followed only to targets inside it, hidden names are skipped (except .well-known), and the limits hold.
//
// hashCachePath, if not "", names a hash cache file (hashcache.go) that is read before and rewritten after, so
// that files unchanged since the last scan of this folder are not read again; "auto" picks HashCachePath.
func scanDir(ctx context.Context, dir string, limits Limits, hashCachePath string) (*scanned, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, ferry.Errorf(ferry.EINVALID, "publish folder %q: %w", dir, err)
	}
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ferry.Errorf(ferry.EINVALID, "publish folder %s does not exist; build the site first or check the path", dir)
		}
		return nil, ferry.Errorf(ferry.EINVALID, "publish folder %s: %w", dir, err)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return nil, ferry.Errorf(ferry.EINVALID, "publish folder %s is not a folder", dir)
	}
	w := &walker{s: &scanned{root: root}, limits: limits, active: map[string]bool{}}
	if err := w.walk(ctx, root, "/", 0); err != nil {
		return nil, err
	}
	if hashCachePath == "auto" {
		hashCachePath = HashCachePath(root)
	}
	var cache *hashCache
	if hashCachePath != "" {
		cache = openHashCache(hashCachePath, root)
	}
	if err := w.s.hash(ctx, limits, cache); err != nil {
		return nil, err
	}
	if cache != nil {
		w.s.cacheHits = cache.hits
		w.s.cacheErr = cache.save()
	}
	return w.s, nil
}

type walker struct {
	s      *scanned
	limits Limits
	active map[string]bool // real folders being walked, to refuse symlink loops
}

func (w *walker) walk(ctx context.Context, dir, urlDir string, depth int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if depth > maxDepth {
		return ferry.Errorf(ferry.EINVALID, "%s is nested more than %d folders deep", strings.TrimPrefix(urlDir, "/"), maxDepth)
	}
	if w.active[dir] {
		return ferry.Errorf(ferry.EINVALID, "%s: a symlink makes a loop; remove it", strings.TrimPrefix(urlDir, "/"))
	}
	w.active[dir] = true
	defer delete(w.active, dir)

	entries, err := os.ReadDir(dir)
	if err != nil {
		return ferry.Errorf(ferry.EINVALID, "read folder %s: %w", urlDir, err)
	}
	for _, e := range entries {
		name := e.Name()
		rel := strings.TrimPrefix(urlDir, "/") + name
		if err := checkName(rel, name); err != nil {
			return err
		}
		full := filepath.Join(dir, name)
		if strings.HasPrefix(name, ".") && !(name == ".well-known" && e.IsDir()) {
			continue // .git, .env, .DS_Store, ...; a symlink named .well-known is skipped too
		}
		real, mode := full, e.Type()
		if mode&fs.ModeSymlink != 0 {
			real, mode, err = w.resolve(full, rel)
			if err != nil {
				return err
			}
		}
		switch {
		case mode.IsDir():
			if err := w.walk(ctx, real, urlDir+name+"/", depth+1); err != nil {
				return err
			}
		case mode.IsRegular():
			if urlDir == "/" {
				switch name {
				case redirectsFile:
					w.s.redirects = real
					continue
				case headersFile:
					w.s.headers = real
					continue
				case settingsFile:
					continue // read by `ferry publish` and builds, never served
				}
			}
			fi, err := os.Stat(real)
			if err != nil {
				return ferry.Errorf(ferry.EINVALID, "stat %s: %w", rel, err)
			}
			if err := w.add(localFile{urlPath: urlDir + name, real: real, size: fi.Size()}); err != nil {
				return err
			}
		default:
			return ferry.Errorf(ferry.EINVALID, "%s is not a regular file or folder (%v); remove it from the output", rel, mode.Type())
		}
	}
	return nil
}

// resolve follows a symlink, refusing targets outside the root and hidden targets (a link must not publish
// what the hidden-name rule keeps back, such as .env).
func (w *walker) resolve(full, rel string) (string, fs.FileMode, error) {
	target, err := filepath.EvalSymlinks(full)
	if err != nil {
		return "", 0, ferry.Errorf(ferry.EINVALID, "%s is a broken symlink; remove it or make it point at a file in the folder", rel)
	}
	inside, err := filepath.Rel(w.s.root, target)
	if err != nil || inside == ".." || strings.HasPrefix(inside, ".."+string(filepath.Separator)) || filepath.IsAbs(inside) {
		return "", 0, ferry.Errorf(ferry.EINVALID, "%s is a symlink to %s, outside the folder being published; copy the file into the folder instead", rel, target)
	}
	if inside == "." {
		return "", 0, ferry.Errorf(ferry.EINVALID, "%s: a symlink to the folder itself makes a loop; remove it", rel)
	}
	for _, part := range strings.Split(filepath.ToSlash(inside), "/") {
		if strings.HasPrefix(part, ".") && part != ".well-known" {
			return "", 0, ferry.Errorf(ferry.EINVALID, "%s is a symlink to the hidden file %s, which is not published", rel, filepath.ToSlash(inside))
		}
	}
	fi, err := os.Stat(target)
	if err != nil {
		return "", 0, ferry.Errorf(ferry.EINVALID, "stat %s: %w", rel, err)
	}
	return target, fi.Mode(), nil
}

func (w *walker) add(f localFile) error {
	l := w.limits
	if len(w.s.files) >= l.MaxFiles {
		return ferry.Errorf(ferry.ETOOLARGE, "%s: the folder has more than %d files, the limit per deployment; publish fewer files", f.rel(), l.MaxFiles)
	}
	if f.size > l.MaxFileBytes {
		return ferry.Errorf(ferry.ETOOLARGE, "%s has %d bytes, more than the limit of %d bytes per file; make it smaller or host it elsewhere", f.rel(), f.size, l.MaxFileBytes)
	}
	w.s.total += f.size
	if w.s.total > l.MaxTotalBytes {
		return ferry.Errorf(ferry.ETOOLARGE, "%s: the folder has more than %d bytes, the limit per deployment; publish less", f.rel(), l.MaxTotalBytes)
	}
	w.s.files = append(w.s.files, f)
	return nil
}

// checkName refuses names that cannot be a clean URL path or would read ambiguously in one.
func checkName(rel, name string) error {
	var problem string
	switch {
	case !utf8.ValidString(name):
		problem = "is not valid UTF-8"
	case strings.ContainsRune(name, 0):
		problem = "contains a NUL byte"
	case strings.ContainsRune(name, '\\'):
		problem = "contains a backslash"
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		problem = "contains a control character"
	case path.Clean("/"+name) != "/"+name:
		problem = "is not a clean path segment"
	default:
		return nil
	}
	return ferry.Errorf(ferry.EINVALID, "file name %q %s; rename it", rel, problem)
}

// hash computes every file's SHA-256 and content type in parallel. Sizes are taken from what was read, and the
// limits checked again, in case a file changed since it was listed.
func (s *scanned) hash(ctx context.Context, limits Limits, cache *hashCache) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0) + 2)
	for i := range s.files {
		f := &s.files[i]
		g.Go(func() error { return f.hash(gctx, limits.MaxFileBytes, cache) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	s.total = 0
	for _, f := range s.files {
		s.total += f.size
	}
	if s.total > limits.MaxTotalBytes {
		return ferry.Errorf(ferry.ETOOLARGE, "the folder has more than %d bytes, the limit per deployment; publish less", limits.MaxTotalBytes)
	}
	return nil
}

func (f *localFile) hash(ctx context.Context, maxBytes int64, cache *hashCache) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if cache != nil {
		// A hit costs one lstat and no open: f.real is no symlink (the walk resolved it), and one swapped in
		// since is not a regular file here, and then fails to open below.
		if fi, err := os.Lstat(f.real); err == nil && fi.Mode().IsRegular() {
			if st, ok := fileID(fi); ok && st.Size <= maxBytes {
				if sum, ct, ok := cache.lookup(f.cacheKey(), st); ok {
					f.size, f.sum, f.contentType = st.Size, sum, ct
					return nil
				}
			}
		}
	}
	r, err := f.open()
	if err != nil {
		return err
	}
	defer r.Close()
	var before fileStamp
	stamped := false
	if cache != nil {
		if fi, err := r.Stat(); err == nil && fi.Mode().IsRegular() {
			before, stamped = fileID(fi)
		}
	}
	h := sha256.New()
	var head [512]byte
	n, err := io.ReadFull(r, head[:])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return ferry.Errorf(ferry.EINVALID, "read %s: %w", f.rel(), err)
	}
	h.Write(head[:n])
	rest, err := io.Copy(h, io.LimitReader(r, maxBytes+1-int64(n)))
	if err != nil {
		return ferry.Errorf(ferry.EINVALID, "read %s: %w", f.rel(), err)
	}
	f.size = int64(n) + rest
	if f.size > maxBytes {
		return ferry.Errorf(ferry.ETOOLARGE, "%s has more than %d bytes, the limit per file; make it smaller or host it elsewhere", f.rel(), maxBytes)
	}
	f.sum = hex.EncodeToString(h.Sum(nil))
	f.contentType = ContentType(f.urlPath, head[:n])
	if stamped {
		// Remember the hash only if the file did not change while it was read.
		if fi, err := r.Stat(); err == nil {
			if after, ok := fileID(fi); ok && after == before && after.Size == f.size {
				cache.remember(f.cacheKey(), after, f.sum, f.contentType, time.Now())
			}
		}
	}
	return nil
}

// webTypes pin the types that matter to browsers, because mime.TypeByExtension depends on the machine's
// mime.types and gets some of them wrong (text/plain for .js on old systems, nothing for .webmanifest).
var webTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".cjs":         "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".json":        "application/json",
	".map":         "application/json",
	".webmanifest": "application/manifest+json",
	".txt":         "text/plain; charset=utf-8",
	".md":          "text/markdown; charset=utf-8",
	".csv":         "text/csv; charset=utf-8",
	".xml":         "application/xml",
	".rss":         "application/rss+xml",
	".atom":        "application/atom+xml",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".webp":        "image/webp",
	".avif":        "image/avif",
	".ico":         "image/x-icon",
	".wasm":        "application/wasm",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".ttf":         "font/ttf",
	".otf":         "font/otf",
	".pdf":         "application/pdf",
	".mp4":         "video/mp4",
	".webm":        "video/webm",
	".mp3":         "audio/mpeg",
}

// ContentType is the type a published file is served with: from its extension when known, else sniffed from
// its first bytes (head), as browsers would.
func ContentType(name string, head []byte) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := webTypes[ext]; ok {
		return t
	}
	if ext != "" {
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
	}
	return http.DetectContentType(head)
}

// serving resolves the serving config from the parsed _redirects and _headers and the ferry.json settings.
func (s *scanned) serving(settings *siteconfig.File) (siteconfig.Serving, error) {
	var redirects []siteconfig.Redirect
	var headers []siteconfig.HeaderRule
	var err error
	if s.redirects != "" {
		if redirects, err = parseConfigFile(s.redirects, redirectsFile, siteconfig.ParseRedirects); err != nil {
			return siteconfig.Serving{}, err
		}
	}
	if s.headers != "" {
		if headers, err = parseConfigFile(s.headers, headersFile, siteconfig.ParseHeaders); err != nil {
			return siteconfig.Serving{}, err
		}
	}
	var out siteconfig.Output
	for _, f := range s.files {
		switch {
		case f.urlPath == "/404.html":
			out.Has404 = true
		case f.urlPath == "/index.html":
			out.HasIndex = true
		}
		if strings.HasSuffix(f.urlPath, ".html") {
			out.HTMLFiles++
		}
	}
	cfg := siteconfig.Resolve(settings, out, redirects, headers)
	// The proxy compiles the rules once per manifest; a rule it could not compile must fail here, not there.
	if _, err := siteconfig.Compile(cfg); err != nil {
		if ferry.ErrorCode(err) != ferry.EINTERNAL {
			return siteconfig.Serving{}, err
		}
		return siteconfig.Serving{}, ferry.Errorf(ferry.EINVALID, "serving rules: %w", err)
	}
	return cfg, nil
}

func parseConfigFile[T any](real, name string, parse func(io.Reader) ([]T, error)) ([]T, error) {
	f, err := os.Open(real)
	if err != nil {
		return nil, ferry.Errorf(ferry.EINVALID, "read %s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, ferry.Errorf(ferry.EINVALID, "read %s: %w", name, err)
	}
	if len(data) > maxConfigBytes {
		return nil, ferry.Errorf(ferry.ETOOLARGE, "%s has more than %d bytes, the limit; use fewer rules", name, maxConfigBytes)
	}
	rules, err := parse(bytes.NewReader(data))
	if err != nil {
		if ferry.ErrorCode(err) != ferry.EINTERNAL {
			return nil, err
		}
		return nil, ferry.Errorf(ferry.EINVALID, "parse %s: %w", name, err)
	}
	return rules, nil
}
