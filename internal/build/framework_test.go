package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/siteconfig"
)

// TestDetectFrameworks: each framework's preset gives the folder its own tool writes and the build command,
// read from its dependencies and config the way Vercel's presets do, and the reasons say so.
func TestDetectFrameworks(t *testing.T) {
	pkg := func(deps, scripts string) string {
		return `{"scripts":{` + scripts + `},"devDependencies":{` + deps + `}}`
	}
	for _, tc := range []struct {
		name                    string
		files                   map[string]string
		slug, build, output, sp string
		because                 string
	}{
		{"next export", map[string]string{"package.json": pkg(`"next":"16"`, `"build":"next build"`), "next.config.mjs": "export default { output: 'export' }"},
			"nextjs", "npm run build", "out", "pages", "next.config.mjs sets output: 'export'"},
		{"next export dynamic", map[string]string{"package.json": pkg(`"next":"16"`, `"build":"next build"`), "next.config.js": "module.exports = { output: process.env.OUT }"},
			"nextjs", "npm run build", "out", "pages", "expected to be 'export'"},
		{"nuxt generate", map[string]string{"package.json": pkg(`"nuxt":"4"`, `"build":"nuxt generate"`)},
			"nuxt", "npm run build", ".output/public", "pages", "prerenders to .output/public"},
		{"nuxt generate script", map[string]string{"package.json": pkg(`"nuxt":"4"`, `"generate":"nuxt generate"`)},
			"nuxt", "npm run generate", ".output/public", "pages", "scripts.generate"},
		{"nuxt static preset", map[string]string{"package.json": pkg(`"nuxt":"4"`, `"build":"nuxt build"`), "nuxt.config.ts": "export default defineNuxtConfig({ nitro: { preset: 'static' } })"},
			"nuxt", "npm run build", ".output/public", "pages", "static Nitro preset"},
		{"nuxt spa", map[string]string{"package.json": pkg(`"nuxt":"4"`, `"build":"nuxt generate"`), "nuxt.config.ts": "export default defineNuxtConfig({ ssr: false })"},
			"nuxt", "npm run build", ".output/public", "spa", "nuxt"},
		{"angular application builder", map[string]string{"package.json": pkg(`"@angular/core":"22"`, `"build":"ng build"`),
			"angular.json": `{"projects":{"my-app":{"projectType":"application","architect":{"build":{"builder":"@angular/build:application","options":{"outputPath":"dist/my-app"}}}}}}`},
			"angular", "npm run build", "dist/my-app/browser", "spa", "project my-app"},
		{"angular default outputPath", map[string]string{"package.json": pkg(`"@angular/core":"22"`, `"build":"ng build"`),
			"angular.json": `{"projects":{"shop":{"architect":{"build":{"builder":"@angular-devkit/build-angular:application"}}}}}`},
			"angular", "npm run build", "dist/shop/browser", "spa", "shop"},
		{"angular outputPath object", map[string]string{"package.json": pkg(`"@angular/core":"22"`, `"build":"ng build"`),
			"angular.json": `{"projects":{"a":{"architect":{"build":{"builder":"@angular/build:application","options":{"outputPath":{"base":"www","browser":""}}}}}}}`},
			"angular", "npm run build", "www", "spa", "writes www"},
		{"angular browser builder", map[string]string{"package.json": pkg(`"@angular/core":"15"`, `"build":"ng build"`),
			"angular.json": `{"projects":{"a":{"architect":{"build":{"builder":"@angular-devkit/build-angular:browser","options":{"outputPath":"dist/a"}}}}}}`},
			"angular", "npm run build", "dist/a", "spa", "writes dist/a"},
		{"vitepress docs:build", map[string]string{"package.json": pkg(`"vitepress":"1"`, `"docs:build":"vitepress build docs","docs:dev":"vitepress dev docs"`)},
			"vitepress", "npm run docs:build", "docs/.vitepress/dist", "pages", "scripts.docs:build builds docs"},
		{"vitepress build", map[string]string{"package.json": pkg(`"vitepress":"1"`, `"build":"vitepress build"`)},
			"vitepress", "npm run build", ".vitepress/dist", "pages", "vitepress"},
		{"astro", map[string]string{"package.json": pkg(`"astro":"7"`, `"build":"astro build"`)}, "astro", "npm run build", "dist", "pages", "astro build writes dist"},
		{"astro outDir", map[string]string{"package.json": pkg(`"astro":"7"`, `"build":"astro build"`), "astro.config.mjs": "export default { outDir: './site' }"},
			"astro", "npm run build", "site", "pages", `outDir "./site"`},
		{"docusaurus", map[string]string{"package.json": pkg(`"@docusaurus/core":"3","react":"19"`, `"build":"docusaurus build"`)}, "docusaurus-2", "npm run build", "build", "pages", "@docusaurus/core"},
		{"sveltekit static", map[string]string{"package.json": pkg(`"@sveltejs/kit":"3","@sveltejs/adapter-static":"4","vite":"8"`, `"build":"vite build"`),
			"svelte.config.js": "import adapter from '@sveltejs/adapter-static'\nexport default { kit: { adapter: adapter() } }"},
			"sveltekit", "npm run build", "build", "pages", "adapter-static"},
		{"sveltekit static spa", map[string]string{"package.json": pkg(`"@sveltejs/kit":"3","vite":"8"`, `"build":"vite build"`),
			"svelte.config.js": "import adapter from '@sveltejs/adapter-static'\nexport default { kit: { adapter: adapter({ pages: 'www', fallback: '200.html' }) } }"},
			"sveltekit", "npm run build", "www", "spa", "writes www"},
		{"eleventy", map[string]string{"package.json": pkg(`"@11ty/eleventy":"3"`, `"build":"eleventy"`)}, "eleventy", "npm run build", "_site", "pages", "eleventy"},
		{"eleventy output", map[string]string{"package.json": pkg(`"@11ty/eleventy":"3"`, `"build":"eleventy --output=public"`)}, "eleventy", "npm run build", "public", "pages", "eleventy writes public"},
		{"gatsby", map[string]string{"package.json": pkg(`"gatsby":"5","react":"18"`, `"build":"gatsby build"`)}, "gatsby", "npm run build", "public", "pages", "gatsby"},
		{"cra", map[string]string{"package.json": pkg(`"react-scripts":"5","react":"18"`, `"build":"react-scripts build"`)}, "create-react-app", "npm run build", "build", "spa", "react-scripts"},
		{"vite", map[string]string{"package.json": pkg(`"vite":"8","react":"19"`, `"build":"vite build"`)}, "vite", "npm run build", "dist", "", "vite build writes dist"},
		{"vite outDir", map[string]string{"package.json": pkg(`"vite":"8"`, `"build":"vite build"`), "vite.config.ts": "export default { build: { outDir: 'www' } }"},
			"vite", "npm run build", "www", "", `outDir "www"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Detect(writeTree(t, tc.files), nil)
			if err != nil {
				t.Fatal(err)
			}
			if p.Framework == nil || p.Framework.Slug != tc.slug || p.Build != tc.build || p.Output != tc.output || p.Framework.SPA != tc.sp {
				t.Fatalf("got framework %+v, build %q, output %q; want %s, %q, %q, spa %q", p.Framework, p.Build, p.Output, tc.slug, tc.build, tc.output, tc.sp)
			}
			if r := strings.Join(p.Reasons, "\n"); !strings.Contains(r, "framework "+p.Framework.Name) || !strings.Contains(r, tc.because) {
				t.Errorf("reasons do not say %q:\n%s", tc.because, r)
			}
		})
	}
}

// TestDetectServerModes: a framework in a mode that needs a server fails at once, before any install, with the
// one setting to change; outputDirectory (the user knows where their build writes) turns the check off.
func TestDetectServerModes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"next default", map[string]string{"package.json": `{"dependencies":{"next":"16"},"scripts":{"build":"next build"}}`, "next.config.ts": "export default { reactStrictMode: true }"},
			[]string{"Next.js", "default mode", "output: 'export'", "next.config.ts"}},
		{"next without config", map[string]string{"package.json": `{"dependencies":{"next":"16"},"scripts":{"build":"next build"}}`},
			[]string{"output: 'export'", "next.config.mjs"}},
		{"nuxt build", map[string]string{"package.json": `{"dependencies":{"nuxt":"4"},"scripts":{"build":"nuxt build"}}`},
			[]string{"nuxt build", "server app", `"nuxt generate"`, "preset: 'static'"}},
		{"sveltekit adapter-auto", map[string]string{"package.json": `{"devDependencies":{"@sveltejs/kit":"3","@sveltejs/adapter-auto":"7"},"scripts":{"build":"vite build"}}`,
			"svelte.config.js": "import adapter from '@sveltejs/adapter-auto';\nexport default { kit: { adapter: adapter() } };"},
			[]string{"adapter-auto", "Could not detect a supported production environment", "@sveltejs/adapter-static", "prerender = true"}},
		{"sveltekit 3 adapter-auto in vite.config", map[string]string{"package.json": `{"devDependencies":{"@sveltejs/kit":"3"},"scripts":{"build":"vite build"}}`,
			"vite.config.ts": "import adapter from '@sveltejs/adapter-auto';\nexport default { plugins: [sveltekit({ adapter: adapter() })] };"},
			[]string{"adapter-auto", "vite.config.ts", "@sveltejs/adapter-static"}},
		{"sveltekit adapter-node", map[string]string{"package.json": `{"devDependencies":{"@sveltejs/kit":"3"},"scripts":{"build":"vite build"}}`,
			"svelte.config.js": "import adapter from '@sveltejs/adapter-node';"},
			[]string{"adapter-node", "@sveltejs/adapter-static"}},
		{"no build and no framework", map[string]string{"package.json": `{"scripts":{"lint":"x"}}`, "index.html": "x"},
			[]string{"no scripts.build", "never publishes the repository", "outputDirectory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTree(t, tc.files)
			_, err := Detect(dir, nil)
			wantCode(t, err, ferry.EBUILD, tc.want...)
			if _, err := Detect(dir, &siteconfig.File{OutputDirectory: "out", BuildCommand: ptr("true")}); err != nil {
				t.Errorf("with outputDirectory: %v", err)
			}
		})
	}
}

// TestResolveOutputRules: a followed link inside the checkout (Nuxt's dist → .output/public), a tracked source
// folder never picked by default, the framework's hint when its output is missing, node_modules refused.
func TestResolveOutputRules(t *testing.T) {
	dir := writeTree(t, map[string]string{".output/public/index.html": "x", "public/favicon.ico": "x", "node_modules/x/index.html": "x"})
	if err := os.Symlink(".output/public", filepath.Join(dir, "dist")); err != nil {
		t.Fatal(err)
	}
	out, err := Plan{Root: ".", Build: "b", OutputCandidates: DefaultOutputCandidates}.ResolveOutput(dir, nil)
	if err != nil || out != "dist" {
		t.Errorf("symlinked dist: got %q %v, want dist", out, err)
	}
	os.Remove(filepath.Join(dir, "dist"))
	tracked := func(rel string) bool { return rel == "public" }
	_, err = Plan{Root: ".", Build: "b", OutputCandidates: DefaultOutputCandidates}.ResolveOutput(dir, tracked)
	wantCode(t, err, ferry.EBUILD, "public exists but git tracks it", "outputDirectory")
	_, err = Plan{Root: ".", Build: "b", Output: "public"}.ResolveOutput(dir, tracked)
	wantCode(t, err, ferry.EBUILD, "tracked by git", "outputDirectory")
	if out, err := (Plan{Root: ".", Build: "b", Output: "public", outputSet: true}).ResolveOutput(dir, tracked); err != nil || out != "public" {
		t.Errorf("outputDirectory public: got %q %v", out, err)
	}
	_, err = Plan{Root: ".", Build: "b", Output: "node_modules/x"}.ResolveOutput(dir, nil)
	wantCode(t, err, ferry.EBUILD, "node_modules")
	hint := &Framework{Name: "Next.js", serverHint: "set output: 'export'"}
	_, err = Plan{Root: ".", Build: "b", Output: "out", Framework: hint}.ResolveOutput(dir, nil)
	wantCode(t, err, ferry.EBUILD, "output: 'export'")
	wantCode(t, checkHasPage(dir, "public"), ferry.EBUILD, "neither index.html nor 404.html", "outputDirectory")
	if err := checkHasPage(dir, ".output/public"); err != nil {
		t.Error(err)
	}
}

// TestDetectStarterFixtures: the committed starters are detected as their framework, and the node their
// framework package needs is read from the lockfile (Nuxt 4 and Astro 7 need node 22), before any install.
func TestDetectStarterFixtures(t *testing.T) {
	for _, s := range starters {
		dir := filepath.Join("testdata", "starters", s.name)
		var cfg *siteconfig.File
		if s.name == "monorepo" {
			cfg = &siteconfig.File{RootDirectory: "apps/web"}
		}
		p, err := Detect(dir, cfg)
		if err != nil {
			t.Errorf("%s: %v", s.name, err)
			continue
		}
		if p.Framework == nil || p.Framework.Slug != s.slug {
			t.Errorf("%s: framework %+v, want %s", s.name, p.Framework, s.slug)
		}
	}
	for name, want := range map[string]string{"nuxt": "^22.12.0 || ^24.11.0 || >=26.0.0", "astro": ">=22.12.0", "next-export": ">=20.9.0", "monorepo": "^20.19.0 || >=22.12.0"} {
		var cfg *siteconfig.File
		if name == "monorepo" {
			cfg = &siteconfig.File{RootDirectory: "apps/web"}
		}
		p, err := Detect(filepath.Join("testdata", "starters", name), cfg)
		if err != nil || p.FrameworkNode != want {
			t.Errorf("%s: framework node %q %v, want %q", name, p.FrameworkNode, err, want)
		}
	}
}
