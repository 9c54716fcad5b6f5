package build

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

// writeLockfile puts testdata/lockfiles/snippet into a temporary checkout as name (a path such as
// "pnpm-lock.yaml") and returns the checkout.
func writeLockfile(t *testing.T, snippet, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "lockfiles", snippet))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLockedFramework reads the framework's version and engines.node from real lockfiles: pnpm's (lockfile
// versions 6 and 9, a workspace importer, peer suffixes) and Yarn's (1 and 4, which record no engines), cut
// down from what pnpm 8.15.9 and 10.34.8 and Yarn 1.22.22 and 4.18.1 wrote for the Astro 7 and SvelteKit 3
// starters; and npm's from the committed starters.
func TestLockedFramework(t *testing.T) {
	for _, tc := range []struct {
		snippet, name, root, dep, spec string
		want                           lockedDep
	}{
		{"pnpm-v9.yaml", "pnpm-lock.yaml", ".", "astro", "^7.3.0", lockedDep{"7.3.5", ">=22.12.0"}},
		{"pnpm-v9-workspace.yaml", "pnpm-lock.yaml", "apps/web", "astro", "^7.3.0", lockedDep{"7.3.5", ">=22.12.0"}},
		// A monorepo whose lockfile sits below the repository root.
		{"pnpm-v9-workspace.yaml", "site/pnpm-lock.yaml", "site/apps/web", "astro", "^7.3.0", lockedDep{"7.3.5", ">=22.12.0"}},
		{"pnpm-v9-peers.yaml", "pnpm-lock.yaml", ".", "@sveltejs/kit", "3.2.0", lockedDep{"3.2.0", ">=22.17"}},
		{"pnpm-v6.yaml", "pnpm-lock.yaml", ".", "astro", "^7.3.0", lockedDep{"7.3.5", ">=22.12.0"}},
		{"yarn-berry.lock", "yarn.lock", ".", "astro", "^7.3.0", lockedDep{Version: "7.3.5"}},
		{"yarn-berry.lock", "yarn.lock", ".", "astro", "", lockedDep{Version: "7.3.5"}}, // the only version
		{"yarn-v1.lock", "yarn.lock", ".", "astro", "^7.3.0", lockedDep{Version: "7.3.5"}},
		{"yarn-v1.lock", "yarn.lock", ".", "@astrojs/compiler-binding-android-arm64", "0.5.1", lockedDep{Version: "0.5.1"}},
		{"../starters/astro/package-lock.json", "package-lock.json", ".", "astro", "7.3.5", lockedDep{"7.3.5", ">=22.12.0"}},
		{"../starters/monorepo/package-lock.json", "package-lock.json", "apps/web", "vite", "", lockedDep{"8.4.0", "^20.19.0 || >=22.12.0"}},
	} {
		dir := writeLockfile(t, tc.snippet, tc.name)
		got, err := lockedFramework(dir, tc.name, tc.root, tc.dep, tc.spec)
		if err != nil || got != tc.want {
			t.Errorf("%s as %s, %s in %s: %+v %v, want %+v", tc.snippet, tc.name, tc.dep, tc.root, got, err, tc.want)
		}
	}

	// What the lockfile does not hold is errNotLocked; a lockfile that cannot be read is a clear error.
	for _, tc := range []struct{ snippet, name, root, dep string }{
		{"pnpm-v9.yaml", "pnpm-lock.yaml", ".", "nuxt"},
		{"pnpm-v9-workspace.yaml", "pnpm-lock.yaml", ".", "astro"}, // the workspace root does not depend on it
		{"yarn-berry.lock", "yarn.lock", ".", "nuxt"},
		{"yarn-v1.lock", "yarn.lock", ".", "nuxt"},
	} {
		dir := writeLockfile(t, tc.snippet, tc.name)
		if got, err := lockedFramework(dir, tc.name, tc.root, tc.dep, ""); !errors.Is(err, errNotLocked) {
			t.Errorf("%s: %s: %+v %v, want errNotLocked", tc.snippet, tc.dep, got, err)
		}
	}
	for _, tc := range []struct{ name, body, want string }{
		{"pnpm-lock.yaml", "lockfileVersion: '9.0'\nimporters: [\n", "yaml"},
		{"pnpm-lock.yaml", "lockfileVersion: '9.0'\nimporters:\n  apps/other: {}\n", `no importer "."`},
		{"yarn.lock", "# yarn lockfile v1\n\nastro@^7.3.0\n  version \"7.3.5\"\n", `line 3: "astro@^7.3.0" is neither an entry nor a field`},
		{"yarn.lock", "__metadata:\n  version: 8\n\"astro@npm:^7\": [\n", "yaml"},
		{"package-lock.json", `{"lockfileVersion": 1, "dependencies": {}}`, "lockfile version 1 has no packages"},
		{"package-lock.json", `{"packages": `, "unexpected end of JSON"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, tc.name), []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := lockedFramework(dir, tc.name, ".", "astro", "^7.3.0")
		if err == nil || errors.Is(err, errNotLocked) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: %v, want an error with %q", tc.name, tc.body, err, tc.want)
		}
	}
	// Yarn 1 with two versions of the framework: the one the site's range resolved to.
	dir := t.TempDir()
	two := "# yarn lockfile v1\n\n\nastro@^6.0.0:\n  version \"6.4.1\"\n\nastro@^7.3.0, astro@^7.0.0:\n  version \"7.3.5\"\n  dependencies:\n    version \"1.0.0\"\n"
	if err := os.WriteFile(filepath.Join(dir, "yarn.lock"), []byte(two), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := lockedFramework(dir, "yarn.lock", ".", "astro", "^7.0.0"); err != nil || got.Version != "7.3.5" {
		t.Errorf("two versions: %+v %v", got, err)
	}
	if _, err := lockedFramework(dir, "yarn.lock", ".", "astro", "^5"); err == nil || !strings.Contains(err.Error(), `2 versions and none resolves "astro@^5"`) {
		t.Errorf("two versions, neither asked for: %v", err)
	}
}

// TestDetectLockfileEngines: detection reads the framework's engines.node from the pnpm starter's lockfile,
// and from the Yarn starter's the version whose engines the build looks up.
func TestDetectLockfileEngines(t *testing.T) {
	p, err := Detect(filepath.Join("testdata", "starters", "vite-pnpm"), nil)
	if err != nil || p.FrameworkNode != "^20.19.0 || >=22.12.0" || p.FrameworkVersion != "" {
		t.Errorf("pnpm: framework node %q version %q %v", p.FrameworkNode, p.FrameworkVersion, err)
	}
	p, err = Detect(filepath.Join("testdata", "starters", "vite-yarn"), nil)
	if err != nil || p.FrameworkNode != "" || p.FrameworkVersion != "8.4.0" {
		t.Errorf("yarn: framework node %q version %q %v", p.FrameworkNode, p.FrameworkVersion, err)
	}
	if !strings.Contains(strings.Join(p.Reasons, "\n"), "Vite vite 8.4.0 (yarn.lock, which does not record engines") {
		t.Errorf("reasons: %q", p.Reasons)
	}
	// An unreadable lockfile is said in the reasons, and detection goes on.
	dir := writeLockfile(t, "pnpm-v9.yaml", "pnpm-lock.yaml")
	if err := os.WriteFile(filepath.Join(dir, "pnpm-lock.yaml"), []byte("importers: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"scripts":{"build":"astro build"},"dependencies":{"astro":"^7.3.0"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err = Detect(dir, nil)
	if err != nil || !strings.Contains(strings.Join(p.Reasons, "\n"), "Astro's node requirement is unknown: pnpm-lock.yaml: yaml:") {
		t.Errorf("broken lockfile: %q %v", p.Reasons, err)
	}
}

// TestYarnFrameworkEngines: for a Yarn site the framework's engines.node is looked up in the registry before
// the install, and a builder whose node does not satisfy it fails at once, naming both. The answer is kept in
// the tool cache and not asked for again.
func TestYarnFrameworkEngines(t *testing.T) {
	if testing.Short() {
		t.Skip("asks the npm registry")
	}
	ctx := context.Background()
	have := strings.TrimPrefix(nodeVersion(ctx), "v")
	if v, ok := parseSemver(have); !ok || v[0] >= 22 {
		t.Skip("needs a builder node older than 22, which Astro 7 refuses")
	}
	dir := writeLockfile(t, "yarn-berry.lock", "yarn.lock")
	pkg := `{"packageManager":"yarn@4.18.1","scripts":{"build":"astro build"},"dependencies":{"astro":"^7.3.0"}}`
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(pkg), 0o644); err != nil {
		t.Fatal(err)
	}
	plan, err := Detect(dir, nil)
	if err != nil || plan.FrameworkVersion != "7.3.5" {
		t.Fatalf("detect: %+v %v", plan, err)
	}
	_, err = resolveNode(ctx, plan, "", fromFerryJSON, slog.New(slog.DiscardHandler))
	wantCode(t, err, ferry.EINVALID, `astro's engines.node ">=22.12.0"`, "this builder has node v"+have)

	cache := t.TempDir()
	if got, err := lookupEngines(ctx, cache, "astro", "7.3.5"); err != nil || got != ">=22.12.0" {
		t.Fatalf("lookup: %q %v", got, err)
	}
	if got, err := lookupEngines(ctx, cache, "tslib", "2.9.1"); err != nil || got != "" {
		t.Errorf("a package without engines: %q %v", got, err)
	}
	t.Setenv("PATH", "") // no npm: only the tool cache can answer now
	if got, err := lookupEngines(ctx, cache, "astro", "7.3.5"); err != nil || got != ">=22.12.0" {
		t.Errorf("lookup from the tool cache: %q %v", got, err)
	}
	if _, err := lookupEngines(ctx, "", "astro", "7.3.5"); err == nil {
		t.Error("no npm and no tool cache: no error")
	}
	for _, bad := range [][2]string{{"--registry=x", "1.0.0"}, {"astro", "latest"}, {"../x", "1.0.0"}, {"Astro", "1.0.0"}} {
		if _, err := lookupEngines(ctx, cache, bad[0], bad[1]); err == nil || !strings.Contains(err.Error(), "is not a package version") {
			t.Errorf("lookupEngines(%q, %q): %v", bad[0], bad[1], err)
		}
	}
}

// FuzzLockfiles: no input makes the lockfile parsers panic, and a version they return is one the input holds.
func FuzzLockfiles(f *testing.F) {
	for _, s := range []string{"yarn-v1.lock", "yarn-berry.lock", "pnpm-v9.yaml", "pnpm-v6.yaml", "pnpm-v9-peers.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", "lockfiles", s))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "astro", "^7.3.0")
	}
	f.Add([]byte("\"@a/b@^1\", \"@a/b@npm:2\":\n  version \"1.0.0\"\n"), "@a/b", "^1")
	f.Fuzz(func(t *testing.T, b []byte, dep, spec string) {
		tm := time.AfterFunc(3*time.Second, func() { panic(fmt.Sprintf("slow input %q", b)) })
		defer tm.Stop()
		for name, parse := range map[string]func() (lockedDep, error){
			"yarn1": func() (lockedDep, error) { return parseYarnV1Lock(b, dep, spec) },
			"berry": func() (lockedDep, error) { return parseYarnBerryLock(b, dep, spec) },
			"pnpm":  func() (lockedDep, error) { return parsePnpmLock(b, ".", dep) },
		} {
			d, err := parse()
			if err == nil && d.Version != "" && !strings.Contains(string(b), d.Version) {
				t.Fatalf("%s: version %q is not in the input", name, d.Version)
			}
		}
	})
}
