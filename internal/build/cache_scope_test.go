package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/site"
)

// TestBuildCacheTrustScopes performs the attack of issue 11 item 6 with real npm installs: a build of less
// trusted code whose postinstall writes a canary into node_modules (into a package, and into
// node_modules/.cache) must not make the canary appear in a later build of more trusted code. A fork's build
// writes no cache at all; a preview's cache is never read by production; production's own cache still hits.
func TestBuildCacheTrustScopes(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: five npm installs")
	}
	requireBwrap(t)
	requireTool(t, "npm", "install nodejs and npm")
	e := newTestEnv(t, "")
	// The page says what the build found in node_modules.
	build := `const fs = require("fs"), ms = require("ms");
const read = p => { try { return fs.readFileSync(p, "utf8").trim() } catch { return "clean" } };
fs.mkdirSync("build", { recursive: true });
fs.writeFileSync("build/index.html", ms("2 days") + " pkg=" + read("node_modules/ms/canary.txt") + " scratch=" + read("node_modules/.cache/canary"));
`
	clean := map[string]string{"build.js": build}
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "dep", f))
		if err != nil {
			t.Fatal(err)
		}
		clean[f] = string(b)
	}
	// The hostile branch changes package.json's scripts only, so its lockfile, and the cache key of old, is
	// the same as production's.
	hostile := map[string]string{}
	for k, v := range clean {
		hostile[k] = v
	}
	hostile["package.json"] = strings.Replace(clean["package.json"], `"build": "node build.js"`,
		`"build": "node build.js", "postinstall": "node -e \"const fs=require('fs');fs.writeFileSync('node_modules/ms/canary.txt','CANARY');fs.mkdirSync('node_modules/.cache',{recursive:true});fs.writeFileSync('node_modules/.cache/canary','CANARY')\""`, 1)
	if hostile["package.json"] == clean["package.json"] {
		t.Fatal("fixture: postinstall not added")
	}
	cleanRepo, hostileRepo := e.repo(clean), e.repo(hostile)
	ctx := context.Background()
	buildAs := func(what, r, scope string) *Result {
		t.Helper()
		repo := cleanRepo
		if r == "hostile" {
			repo = hostileRepo
		}
		p := e.params(repo)
		p.CacheScope = scope
		res, err := Run(ctx, p)
		if err != nil {
			t.Fatalf("%s: %v\nlogs:\n%s", what, err, e.logs)
		}
		return res
	}
	page := func(res *Result) string {
		t.Helper()
		body, _ := published(t, e.st, "web", res.Deployment, "/index.html")
		return body
	}
	cacheKeys := func() []string {
		t.Helper()
		objs, err := e.st.List(ctx, site.ProjectPrefix("web")+"cache/")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range objs {
			keys = append(keys, o.Key)
		}
		return keys
	}

	// A fork's hostile build: the canary is in its own page, and no cache is written anywhere.
	fork := buildAs("fork build", "hostile", CacheScopeFork)
	if got := page(fork); got != "172800000 pkg=CANARY scratch=CANARY" {
		t.Fatalf("fork page %q: the fixture's postinstall did not run", got)
	}
	if fork.Cache != CacheOff || len(cacheKeys()) != 0 {
		t.Fatalf("fork build: cache %s, objects %v; want off and none", fork.Cache, cacheKeys())
	}

	// A same-repository preview's hostile build fills the preview cache.
	preview := buildAs("preview build", "hostile", CacheScopePreview)
	if preview.Cache != CacheMiss {
		t.Errorf("preview build: cache %s, want miss (the fork wrote nothing)", preview.Cache)
	}
	keys := cacheKeys()
	if len(keys) != 1 || !strings.HasPrefix(keys[0], "projects/web/cache/preview/") {
		t.Errorf("cache objects after the preview: %v; want one under projects/web/cache/preview/", keys)
	}

	// Production builds the clean commit: it must not read the preview's cache.
	prod := buildAs("production build", "clean", CacheScopeProduction)
	if got := page(prod); got != "172800000 pkg=clean scratch=clean" {
		t.Errorf("production page %q: a preview's postinstall reached production through the cache", got)
	}
	if prod.Cache != CacheMiss {
		t.Errorf("production build: cache %s, want miss", prod.Cache)
	}
	// And production's own cache still speeds production up.
	e.logs.mu.Lock()
	e.logs.b.Reset()
	e.logs.mu.Unlock()
	again := buildAs("second production build", "clean", CacheScopeProduction)
	if again.Cache != CacheHit || !strings.Contains(e.logs.String(), "dependency cache restored") ||
		!strings.Contains(e.logs.String(), "scope=production") {
		t.Errorf("second production build: cache %s; want a logged hit in scope production:\n%s", again.Cache, e.logs)
	}
	if got := page(again); got != "172800000 pkg=clean scratch=clean" {
		t.Errorf("second production page %q", got)
	}
	t.Logf("install seconds: production miss %.2f, production hit %.2f", prod.StepSeconds[StepInstall], again.StepSeconds[StepInstall])

	// A clean preview reads the preview cache, which its own kind wrote; what the postinstall put in
	// node_modules/.cache is not in it.
	later := buildAs("clean preview build", "clean", CacheScopePreview)
	if later.Cache != CacheHit {
		t.Errorf("clean preview build: cache %s, want hit", later.Cache)
	}
	if got := page(later); strings.Contains(got, "scratch=CANARY") {
		t.Errorf("clean preview page %q: node_modules/.cache came back from the cache", got)
	}
}

// TestParseCacheScope: ferry build's --cache-scope takes three names; "" is preview, never production.
func TestParseCacheScope(t *testing.T) {
	for in, want := range map[string]string{"": CacheScopePreview, "production": CacheScopeProduction, "preview": CacheScopePreview, "fork": CacheScopeFork} {
		if got, err := ParseCacheScope(in); err != nil || got != want {
			t.Errorf("ParseCacheScope(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"Production", "prod", "../production", "fork/x"} {
		if _, err := ParseCacheScope(bad); err == nil {
			t.Errorf("ParseCacheScope(%q) accepted", bad)
		}
	}
}

// TestCacheArchiveDropsScratch: node_modules/.cache is neither packed nor unpacked.
func TestCacheArchiveDropsScratch(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t, "")
	root := t.TempDir()
	for name, body := range map[string]string{
		"src/node_modules/ms/index.js":         "ok",
		"src/node_modules/.cache/babel/x.json": "CANARY",
		"src/node_modules/ms/.cache/keep":      "nested .cache of a package is the package's",
	} {
		p := filepath.Join(root, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body), 0o644)
	}
	parts := []string{"src/node_modules"}
	key := site.ProjectPrefix("web") + "cache/preview/x.tar.gz"
	if _, err := cacheSave(ctx, e.st, key, root, parts, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if state, err := cacheRestore(ctx, e.st, key, out, parts); err != nil || state != CacheHit {
		t.Fatalf("restore: %s %v", state, err)
	}
	if _, err := os.Stat(filepath.Join(out, "src/node_modules/.cache")); err == nil {
		t.Error("node_modules/.cache was saved and restored")
	}
	for _, keep := range []string{"src/node_modules/ms/index.js", "src/node_modules/ms/.cache/keep"} {
		if _, err := os.Stat(filepath.Join(out, keep)); err != nil {
			t.Errorf("%s not restored: %v", keep, err)
		}
	}
	// An archive written by hand (or by an older Ferry) with node_modules/.cache in it: skipped on restore.
	data := archive(t,
		entry{name: "src/node_modules/.cache/canary", body: "CANARY", typ: '0'},
		entry{name: "src/node_modules/ms/index.js", body: "ok", typ: '0'})
	out2 := t.TempDir()
	if err := untar(strings.NewReader(string(data)), out2, parts); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out2, "src/node_modules/.cache/canary")); err == nil {
		t.Error("node_modules/.cache unpacked from an archive")
	}
}
