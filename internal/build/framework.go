package build

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Framework is what detection knows about the tool that builds a site: its output folder, whether the output
// is a single-page app, and the build caches it keeps between builds. The presets follow Vercel's
// (packages/frameworks in vercel/vercel): a framework is recognised by the package that provides its CLI, and
// its output folder comes from its own config where the user can change it there.
type Framework struct {
	// Slug names the framework in logs, the plan and the manifest's meta ("nextjs", "vite").
	Slug string `json:"slug"`
	// Name is how people write it ("Next.js").
	Name string `json:"name"`
	// Output is the output folder relative to the root directory.
	Output string `json:"output"`
	// SPA says how the output is served when ferry.json does not say: "spa" (unknown paths get /index.html),
	// "pages" (multi-page: unknown paths are 404s), or "" to let the output decide (one HTML file is an SPA).
	SPA string `json:"spa,omitempty"`
	// Caches are folders, relative to the root directory, that the framework reuses between builds (Next's
	// .next/cache). They are saved after the build, so what the build wrote survives into the next one.
	Caches []string `json:"caches,omitempty"`
	// Build is the build script to run when package.json has no scripts.build ("docs:build" for VitePress).
	Script string `json:"script,omitempty"`
	// Why says how it was recognised.
	Why string `json:"why"`
	// pkg is the package that identifies the framework; its engines.node in the lockfile is a requirement too.
	pkg string
	// serverHint, when set, explains how to get static output from a framework whose configured mode needs a
	// server; it is added to the error when the build leaves no output folder.
	serverHint string
}

// configFile returns the first of names (in root) that exists, with its contents, or "", "".
func configFile(dir, root string, names ...string) (name, body string) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, root, n))
		if err == nil {
			return n, string(b)
		}
	}
	return "", ""
}

func withExts(base string, exts ...string) []string {
	out := make([]string, len(exts))
	for i, e := range exts {
		out[i] = base + "." + e
	}
	return out
}

var (
	nextExportRe   = regexp.MustCompile(`\boutput\s*:\s*["'` + "`" + `]export["'` + "`" + `]`)
	nextOutputRe   = regexp.MustCompile(`\boutput\s*:`)
	nextDistDirRe  = regexp.MustCompile(`\bdistDir\s*:\s*["']([^"']+)["']`)
	nuxtStaticRe   = regexp.MustCompile(`\bpreset\s*:\s*["'](static|github[-_]pages|netlify[-_]static|vercel[-_]static|cloudflare[-_]pages[-_]static)["']|\bstatic\s*:\s*true`)
	nuxtSPARe      = regexp.MustCompile(`\bssr\s*:\s*false`)
	svelteAdapter  = regexp.MustCompile(`@sveltejs/adapter-([a-z-]+)`)
	sveltePagesRe  = regexp.MustCompile(`\bpages\s*:\s*["']([^"']+)["']`)
	svelteFallback = regexp.MustCompile(`\bfallback\s*:\s*["']`)
	viteOutDirRe   = regexp.MustCompile(`\boutDir\s*:\s*["']([^"']+)["']`)
	vitepressRe    = regexp.MustCompile(`\bvitepress\s+build(?:\s+([^\s&|;]+))?`)
	eleventyOutRe  = regexp.MustCompile(`(?:--output[= ])["']?([^\s"']+)`)
	astroOutDirRe  = regexp.MustCompile(`\boutDir\s*:\s*["']([^"']+)["']`)
	docusaurusOut  = regexp.MustCompile(`--out-dir[= ]["']?([^\s"']+)`)
)

// detectFramework recognises the framework of the package.json in root (relative to the checkout at dir). It
// returns nil when none is known. An error is a configuration Ferry cannot publish (a framework in server
// mode); its message names the one setting to change.
func detectFramework(dir, root string, pkg *packageJSON) (*Framework, error) {
	fw, err := presetFor(dir, root, pkg)
	if fw != nil {
		fw.pkg = map[string]string{"nuxt": "nuxt", "nextjs": "next", "gatsby": "gatsby", "docusaurus-2": "@docusaurus/core", "astro": "astro",
			"sveltekit": "@sveltejs/kit", "vitepress": "vitepress", "eleventy": "@11ty/eleventy", "angular": "@angular/core",
			"create-react-app": "react-scripts", "vite": "vite"}[fw.Slug]
	}
	return fw, err
}

func presetFor(dir, root string, pkg *packageJSON) (*Framework, error) {
	has := func(dep string) bool { _, ok := pkg.deps()[dep]; return ok }
	build := pkg.Scripts["build"]
	switch {
	case has("nuxt") || has("nuxt3") || has("nuxt-edge"):
		name, cfg := configFile(dir, root, withExts("nuxt.config", "ts", "js", "mjs", "mts")...)
		fw := &Framework{Slug: "nuxt", Name: "Nuxt", Output: ".output/public", SPA: "pages", Caches: []string{".nuxt", "node_modules/.cache"}}
		if nuxtSPARe.MatchString(cfg) {
			fw.SPA = "spa"
		}
		switch {
		case strings.Contains(build, "generate"):
			fw.Why = fmt.Sprintf("package.json depends on nuxt; scripts.build %q prerenders to .output/public", build)
		case build == "" && strings.Contains(pkg.Scripts["generate"], "generate"):
			fw.Script = "generate"
			fw.Why = "package.json depends on nuxt; scripts.generate prerenders to .output/public"
		case nuxtStaticRe.MatchString(cfg):
			fw.Why = fmt.Sprintf("package.json depends on nuxt; %s sets a static Nitro preset, so the build writes .output/public", name)
		default:
			return nil, ferry.Errorf(ferry.EBUILD, "this is a Nuxt app, and `nuxt build` makes a server app that Ferry cannot run: "+
				"set scripts.build to \"nuxt generate\" in %s (or set nitro: { preset: 'static' } in nuxt.config), so that the site is prerendered to .output/public",
				path.Join(root, "package.json"))
		}
		return fw, nil

	case has("next"):
		name, cfg := configFile(dir, root, withExts("next.config", "js", "mjs", "ts", "cjs", "mts")...)
		fw := &Framework{Slug: "nextjs", Name: "Next.js", Output: "out", SPA: "pages", Caches: []string{".next/cache"}}
		if m := nextDistDirRe.FindStringSubmatch(cfg); m != nil {
			fw.Caches = []string{path.Join(m[1], "cache")}
		}
		switch {
		case strings.Contains(build, "next export"):
			fw.Why = fmt.Sprintf("package.json depends on next; scripts.build %q exports to out", build)
		case nextExportRe.MatchString(cfg):
			fw.Why = fmt.Sprintf("package.json depends on next; %s sets output: 'export', so next build writes out", name)
		case nextOutputRe.MatchString(cfg):
			// output is set to something that is not a literal: only the build can tell.
			fw.Why = fmt.Sprintf("package.json depends on next; %s sets output, expected to be 'export' (next build then writes out)", name)
			fw.serverHint = fmt.Sprintf("Next.js wrote no out folder, so output in %s is not 'export': set output: 'export' there (static export), since Ferry serves static files and cannot run a Next.js server", name)
		default:
			cfgName := name
			if cfgName == "" {
				cfgName = "next.config.mjs"
			}
			return nil, ferry.Errorf(ferry.EBUILD, "this is a Next.js app in its default mode, which needs a Node.js server that Ferry does not run: "+
				"set output: 'export' in %s (https://nextjs.org/docs/app/guides/static-exports), so that next build writes a static site to out",
				path.Join(root, cfgName))
		}
		return fw, nil

	case has("gatsby"):
		return &Framework{Slug: "gatsby", Name: "Gatsby", Output: "public", SPA: "pages", Caches: []string{".cache"},
			Why: "package.json depends on gatsby (gatsby build writes public)"}, nil

	case has("@docusaurus/core"):
		out := "build"
		if m := docusaurusOut.FindStringSubmatch(build); m != nil {
			out = m[1]
		}
		return &Framework{Slug: "docusaurus-2", Name: "Docusaurus", Output: out, SPA: "pages", Caches: []string{".docusaurus", "node_modules/.cache"},
			Why: "package.json depends on @docusaurus/core (docusaurus build writes " + out + ")"}, nil

	case has("astro"):
		name, cfg := configFile(dir, root, withExts("astro.config", "mjs", "js", "ts", "mts", "cjs")...)
		out, why := "dist", "package.json depends on astro (astro build writes dist)"
		if m := astroOutDirRe.FindStringSubmatch(cfg); m != nil {
			out, why = cleanDot(m[1]), fmt.Sprintf("package.json depends on astro; %s sets outDir %q", name, m[1])
		}
		return &Framework{Slug: "astro", Name: "Astro", Output: out, SPA: "pages", Caches: []string{"node_modules/.astro"}, Why: why}, nil

	case has("@sveltejs/kit"):
		// SvelteKit 2 configures the adapter in svelte.config.js, SvelteKit 3 in vite.config's sveltekit(...).
		name, cfg := configFile(dir, root, withExts("svelte.config", "js", "mjs", "ts", "cjs")...)
		adapter := ""
		if m := svelteAdapter.FindStringSubmatch(cfg); m != nil {
			adapter = m[1]
		} else if vname, vcfg := configFile(dir, root, withExts("vite.config", "js", "mjs", "ts", "mts", "cjs", "cts")...); svelteAdapter.MatchString(vcfg) {
			name, cfg, adapter = vname, vcfg, svelteAdapter.FindStringSubmatch(vcfg)[1]
		}
		fw := &Framework{Slug: "sveltekit", Name: "SvelteKit", Output: "build", SPA: "pages", Caches: []string{".svelte-kit"}}
		switch {
		case adapter == "static":
			if m := sveltePagesRe.FindStringSubmatch(cfg); m != nil {
				fw.Output = cleanDot(m[1])
			}
			if svelteFallback.MatchString(cfg) {
				fw.SPA = "spa"
			}
			fw.Why = fmt.Sprintf("package.json depends on @sveltejs/kit; %s uses adapter-static, which writes %s", name, fw.Output)
		case adapter == "":
			fw.Why = "package.json depends on @sveltejs/kit (expected adapter-static, which writes build)"
			fw.serverHint = "SvelteKit wrote no build folder: use @sveltejs/adapter-static (npm i -D @sveltejs/adapter-static) as the adapter in vite.config.js (SvelteKit 3) or svelte.config.js (SvelteKit 2), with export const prerender = true in src/routes/+layout.js"
		default:
			return nil, ferry.Errorf(ferry.EBUILD, "this SvelteKit app uses @sveltejs/adapter-%s (%s), which builds for a server platform that Ferry is not "+
				"(adapter-auto says \"Could not detect a supported production environment\"): install @sveltejs/adapter-static, use it in %s, "+
				"and add export const prerender = true to src/routes/+layout.js", adapter, path.Join(root, name), name)
		}
		return fw, nil

	case has("vitepress"):
		script, src := "", "."
		if m := vitepressRe.FindStringSubmatch(build); m != nil {
			script, src = "build", m[1]
		} else {
			for _, k := range sortedKeys(pkg.Scripts) {
				if m := vitepressRe.FindStringSubmatch(pkg.Scripts[k]); m != nil {
					script, src = k, m[1]
					break
				}
			}
		}
		if src == "" {
			src = "."
		}
		fw := &Framework{Slug: "vitepress", Name: "VitePress", Output: path.Join(src, ".vitepress/dist"), SPA: "pages",
			Caches: []string{path.Join(src, ".vitepress/cache")}}
		if script != "build" && script != "" {
			fw.Script = script
		}
		fw.Why = fmt.Sprintf("package.json depends on vitepress; scripts.%s builds %s into %s", script, src, fw.Output)
		if script == "" {
			fw.Why = "package.json depends on vitepress (vitepress build writes .vitepress/dist)"
		}
		return fw, nil

	case has("@11ty/eleventy"):
		out := "_site"
		if m := eleventyOutRe.FindStringSubmatch(build); m != nil && strings.Contains(build, "eleventy") {
			out = cleanDot(m[1])
		}
		return &Framework{Slug: "eleventy", Name: "Eleventy", Output: out, SPA: "pages", Caches: []string{".cache"},
			Why: "package.json depends on @11ty/eleventy (eleventy writes " + out + ")"}, nil

	case has("@angular/core") || has("@angular/cli"):
		out, why, err := angularOutput(dir, root)
		if err != nil {
			return nil, err
		}
		return &Framework{Slug: "angular", Name: "Angular", Output: out, SPA: "spa", Caches: []string{".angular/cache"}, Why: why}, nil

	case has("react-scripts"):
		return &Framework{Slug: "create-react-app", Name: "Create React App", Output: "build", SPA: "spa", Caches: []string{"node_modules/.cache"},
			Why: "package.json depends on react-scripts (react-scripts build writes build)"}, nil

	case has("vite"):
		name, cfg := configFile(dir, root, withExts("vite.config", "js", "mjs", "ts", "mts", "cjs", "cts")...)
		out, why := "dist", "package.json depends on vite (vite build writes dist)"
		if m := viteOutDirRe.FindStringSubmatch(cfg); m != nil {
			out, why = cleanDot(m[1]), fmt.Sprintf("package.json depends on vite; %s sets build.outDir %q", name, m[1])
		}
		return &Framework{Slug: "vite", Name: "Vite", Output: out, Caches: []string{"node_modules/.vite"}, Why: why}, nil
	}
	return nil, nil
}

// angularOutput reads angular.json: the application builder (Angular 17+) writes <outputPath>/browser, the
// older browser builder writes <outputPath> itself. outputPath may also be an object with base and browser.
func angularOutput(dir, root string) (out, why string, err error) {
	b, err := os.ReadFile(filepath.Join(dir, root, "angular.json"))
	if err != nil {
		return "dist", "package.json depends on @angular/core, without angular.json (expected output in dist)", nil
	}
	var a struct {
		DefaultProject string `json:"defaultProject"`
		Projects       map[string]struct {
			ProjectType string `json:"projectType"`
			Architect   map[string]struct {
				Builder string `json:"builder"`
				Options struct {
					OutputPath json.RawMessage `json:"outputPath"`
				} `json:"options"`
			} `json:"architect"`
		} `json:"projects"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return "", "", ferry.Errorf(ferry.EINVALID, "%s: invalid JSON: %v", path.Join(root, "angular.json"), err)
	}
	name := a.DefaultProject
	if _, ok := a.Projects[name]; !ok {
		name = ""
		for _, n := range sortedKeys(a.Projects) {
			if a.Projects[n].ProjectType == "application" || a.Projects[n].ProjectType == "" {
				name = n
				break
			}
		}
	}
	if name == "" {
		return "", "", ferry.Errorf(ferry.EBUILD, "%s has no application project; set outputDirectory in ferry.json", path.Join(root, "angular.json"))
	}
	bt := a.Projects[name].Architect["build"]
	base, browser := "dist/"+name, "browser"
	var s string
	var o struct {
		Base    string  `json:"base"`
		Browser *string `json:"browser"`
	}
	switch {
	case len(bt.Options.OutputPath) == 0:
	case json.Unmarshal(bt.Options.OutputPath, &s) == nil:
		base = s
	case json.Unmarshal(bt.Options.OutputPath, &o) == nil:
		if o.Base != "" {
			base = o.Base
		}
		if o.Browser != nil {
			browser = *o.Browser
		}
	}
	if strings.HasSuffix(bt.Builder, ":browser") || strings.HasSuffix(bt.Builder, ":browser-esbuild") {
		browser = ""
	}
	out = cleanDot(path.Join(base, browser))
	return out, fmt.Sprintf("package.json depends on @angular/core; angular.json project %s (%s) writes %s", name, bt.Builder, out), nil
}

func cleanDot(p string) string {
	c, err := cleanRel(p)
	if err != nil {
		return "dist"
	}
	return c
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
