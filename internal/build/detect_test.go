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
		{"no build script", map[string]string{"package.json": `{"scripts":{"test":"x"}}`, "index.html": ""}, nil,
			Plan{Root: ".", PackageManager: "npm", InstallDir: ".", Install: "npm install", Output: "."},
			"no scripts.build"},
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
	out, err := Plan{Root: ".", OutputCandidates: DefaultOutputCandidates}.ResolveOutput(dir)
	if err != nil || out != "build" {
		t.Errorf("got %q %v, want build (dist is absent, build comes before public)", out, err)
	}
	_, err = Plan{Root: ".", Output: "dist"}.ResolveOutput(dir)
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
