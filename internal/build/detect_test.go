package build

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/siteconfig"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, body := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func ptr[T any](v T) *T { return &v }

func TestDetect(t *testing.T) {
	vite := `{"scripts":{"build":"vite build"}}`
	for _, tc := range []struct {
		name    string
		files   map[string]string
		cfg     *siteconfig.File
		want    Plan // Reasons ignored; compared field by field below
		because string
	}{
		{"npm lockfile", map[string]string{"package.json": vite, "package-lock.json": "{}"}, nil,
			Plan{Root: ".", PackageManager: "npm", Lockfile: "package-lock.json", InstallDir: ".", Install: "npm ci", Build: "npm run build", OutputCandidates: DefaultOutputCandidates},
			"found package-lock.json"},
		{"yarn", map[string]string{"package.json": vite, "yarn.lock": ""}, nil,
			Plan{Root: ".", PackageManager: "yarn", Lockfile: "yarn.lock", InstallDir: ".", Install: "yarn install --frozen-lockfile", Build: "yarn run build", OutputCandidates: DefaultOutputCandidates},
			"found yarn.lock"},
		{"yarn berry", map[string]string{"package.json": `{"packageManager":"yarn@4.1.0","scripts":{"build":"x"}}`, "yarn.lock": ""}, nil,
			Plan{Root: ".", PackageManager: "yarn", Lockfile: "yarn.lock", InstallDir: ".", Install: "yarn install --immutable", Build: "yarn run build", OutputCandidates: DefaultOutputCandidates},
			"yarn"},
		{"pnpm", map[string]string{"package.json": vite, "pnpm-lock.yaml": ""}, nil,
			Plan{Root: ".", PackageManager: "pnpm", Lockfile: "pnpm-lock.yaml", InstallDir: ".", Install: "pnpm install --frozen-lockfile", Build: "pnpm run build", OutputCandidates: DefaultOutputCandidates},
			"found pnpm-lock.yaml"},
		{"no lockfile", map[string]string{"package.json": vite}, nil,
			Plan{Root: ".", PackageManager: "npm", InstallDir: ".", Install: "npm install", Build: "npm run build", OutputCandidates: DefaultOutputCandidates},
			"without a lockfile"},
		{"no build script", map[string]string{"package.json": `{"scripts":{"test":"x"}}`, "public/index.html": ""}, nil,
			Plan{Root: ".", PackageManager: "npm", InstallDir: ".", Install: "npm install", Output: "public"},
			"public/index.html exists"},
		{"static", map[string]string{"index.html": ""}, nil,
			Plan{Root: ".", Output: "."}, "plain static site"},
		{"static public", map[string]string{"public/index.html": "", "README.md": ""}, nil,
			Plan{Root: ".", Output: "public"}, "public/index.html exists"},
		{"monorepo with a top lockfile", map[string]string{"package.json": `{"workspaces":["apps/*"]}`, "package-lock.json": "{}", "apps/web/package.json": vite}, &siteconfig.File{RootDirectory: "apps/web/"},
			Plan{Root: "apps/web", PackageManager: "npm", Lockfile: "package-lock.json", InstallDir: ".", Install: "npm ci", Build: "npm run build", OutputCandidates: DefaultOutputCandidates},
			"ferry.json rootDirectory"},
		{"configured", map[string]string{"package.json": vite, "package-lock.json": "{}"},
			&siteconfig.File{InstallCommand: ptr("npm ci --ignore-scripts"), BuildCommand: ptr("npm run export"), OutputDirectory: "./site/"},
			Plan{Root: ".", PackageManager: "npm", Lockfile: "package-lock.json", InstallDir: ".", Install: "npm ci --ignore-scripts", Build: "npm run export", Output: "site"},
			"ferry.json buildCommand"},
		{"build disabled", map[string]string{"package.json": vite}, &siteconfig.File{BuildCommand: ptr("")},
			Plan{Root: ".", PackageManager: "npm", InstallDir: ".", Install: "npm install", Output: "."},
			"ferry.json buildCommand"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Detect(writeTree(t, tc.files), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got.Root != tc.want.Root || got.PackageManager != tc.want.PackageManager || got.Lockfile != tc.want.Lockfile ||
				got.InstallDir != tc.want.InstallDir || got.Install != tc.want.Install || got.Build != tc.want.Build ||
				got.Output != tc.want.Output || !slices.Equal(got.OutputCandidates, tc.want.OutputCandidates) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if !strings.Contains(strings.Join(got.Reasons, "\n"), tc.because) {
				t.Errorf("reasons do not say %q:\n%s", tc.because, strings.Join(got.Reasons, "\n"))
			}
		})
	}
}

func TestDetectErrors(t *testing.T) {
	dir := writeTree(t, map[string]string{"package.json": "{not json", "sub/x": ""})
	for _, cfg := range []*siteconfig.File{nil, {RootDirectory: "../x"}, {RootDirectory: "/etc"}, {RootDirectory: "missing"}, {RootDirectory: "sub", OutputDirectory: "../../etc"}} {
		if _, err := Detect(dir, cfg); ferry.ErrorCode(err) != ferry.EINVALID {
			t.Errorf("%+v: want EINVALID, got %v", cfg, err)
		}
	}
}

func TestResolveOutput(t *testing.T) {
	dir := writeTree(t, map[string]string{"build/index.html": "", "public/index.html": ""})
	out, err := Plan{Root: ".", OutputCandidates: DefaultOutputCandidates}.ResolveOutput(dir, nil)
	if err != nil || out != "build" {
		t.Errorf("got %q %v, want build (dist is absent, build comes before public)", out, err)
	}
	_, err = Plan{Root: ".", Output: "dist"}.ResolveOutput(dir, nil)
	wantCode(t, err, ferry.EBUILD, "dist does not exist")
}

func FuzzCleanRel(f *testing.F) {
	for _, s := range []string{"apps/web", "./a/", "../x", "a/../../b", "/etc", "a\\b", "", ".", "a//b/./c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := cleanRel(s)
		if err != nil {
			return
		}
		if !filepath.IsLocal(c) && c != "." {
			t.Fatalf("cleanRel(%q) = %q escapes", s, c)
		}
	})
}

// TestDetectOverrides: a caller's overrides win over ferry.json key by key (env vars name by name) and over
// detection, and the reasons and errors name the override rather than ferry.json.
func TestDetectOverrides(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"package.json": `{"scripts":{"build":"vite build"}}`, "package-lock.json": "{}",
		"apps/web/package.json": `{"scripts":{"build":"next build"}}`, "apps/docs/package.json": `{}`,
	})
	fromJSON := &siteconfig.File{RootDirectory: "apps/docs", BuildCommand: ptr("make docs"), OutputDirectory: "site", NodeVersion: "20",
		Env: map[string]string{"A": "json", "B": "json"}, SPA: ptr(true)}

	cfg, from := overlay(fromJSON, &siteconfig.File{RootDirectory: "apps/web", BuildCommand: ptr("npm run export"), InstallCommand: ptr(""),
		Env: map[string]string{"B": "override"}, SPA: ptr(false)})
	got, err := detect(dir, cfg, from)
	if err != nil {
		t.Fatal(err)
	}
	want := Plan{Root: "apps/web", PackageManager: "npm", Lockfile: "package-lock.json", InstallDir: ".", Install: "", Build: "npm run export", Output: "site", NodeVersion: "20"}
	if got.Root != want.Root || got.Install != want.Install || got.Build != want.Build || got.Output != want.Output || got.NodeVersion != want.NodeVersion {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got.Env["A"] != "json" || got.Env["B"] != "override" || len(got.Env) != 2 {
		t.Errorf("env = %v, want A from ferry.json and B from the override", got.Env)
	}
	if cfg.SPA == nil || *cfg.SPA || fromJSON.Env["B"] != "json" || fromJSON.RootDirectory != "apps/docs" {
		t.Errorf("serving settings %+v, or ferry.json's settings were changed: %+v", cfg, fromJSON)
	}
	reasons := strings.Join(got.Reasons, "\n")
	for _, s := range []string{"rootDirectory override", "buildCommand override", "installCommand override", "ferry.json outputDirectory"} {
		if !strings.Contains(reasons, s) {
			t.Errorf("reasons do not say %q:\n%s", s, reasons)
		}
	}

	// Without ferry.json, an override still wins over detection.
	cfg, from = overlay(nil, &siteconfig.File{OutputDirectory: "public"})
	if got, err := detect(dir, cfg, from); err != nil || got.Output != "public" || got.Build != "npm run build" {
		t.Errorf("got %+v, %v; want the output override and the detected build", got, err)
	}
	// An empty override is no override: ferry.json stays, and nil stays nil (publish's defaults).
	if cfg, _ := overlay(fromJSON, &siteconfig.File{}); cfg != fromJSON {
		t.Errorf("an empty override changed the settings: %+v", cfg)
	}
	if cfg, _ := overlay(nil, &siteconfig.File{}); cfg != nil {
		t.Errorf("overlay(nil, empty) = %+v, want nil", cfg)
	}
	// Errors name the override the user has to fix.
	cfg, from = overlay(fromJSON, &siteconfig.File{RootDirectory: "apps/missing"})
	_, err = detect(dir, cfg, from)
	wantCode(t, err, ferry.EINVALID, `rootDirectory override "apps/missing"`)
}
