package build

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
)

// starter is one of testdata/starters: the smallest real project of each framework's official starter, with
// its lockfile, and what its build must publish.
type starter struct {
	name string
	ci   bool // built by TestStarters in CI; the rest only by bench/starters.sh
	slug string
	spa  bool
	want []string // paths the manifest must hold; a trailing / means "some file under it"
	not  []string // paths it must not hold
	env  map[string]string
}

var starters = []starter{
	{name: "vite-react", ci: true, slug: "vite", spa: true, want: []string{"/index.html", "/assets/"}},
	{name: "vite-vue", slug: "vite", spa: true, want: []string{"/index.html", "/assets/"}},
	{name: "vite-svelte", slug: "vite", spa: true, want: []string{"/index.html", "/assets/"}},
	{name: "vite-pnpm", slug: "vite", spa: true, want: []string{"/index.html", "/assets/"}, env: corepackEnv()},
	{name: "vite-yarn", slug: "vite", spa: true, want: []string{"/index.html", "/assets/"}, env: corepackEnv()},
	{name: "next-export", ci: true, slug: "nextjs", want: []string{"/index.html", "/about.html", "/404.html", "/next.svg", "/_next/static/"}},
	{name: "nuxt", ci: true, slug: "nuxt", want: []string{"/index.html", "/about/index.html", "/robots.txt", "/_nuxt/"}},
	{name: "astro", ci: true, slug: "astro", want: []string{"/index.html", "/about/index.html", "/favicon.svg"}},
	{name: "sveltekit", ci: true, slug: "sveltekit", want: []string{"/index.html", "/about.html", "/_app/immutable/"}},
	{name: "vitepress", ci: true, slug: "vitepress", want: []string{"/index.html", "/about.html", "/404.html", "/assets/"}, not: []string{"/about.md", "/docs/"}},
	{name: "angular", ci: true, slug: "angular", spa: true, want: []string{"/index.html", "/main-"}, not: []string{"/3rdpartylicenses.txt", "/browser/"}},
	{name: "eleventy", slug: "eleventy", want: []string{"/index.html", "/about/index.html"}, not: []string{"/index.md"}},
	{name: "docusaurus", slug: "docusaurus-2", want: []string{"/index.html", "/about/index.html", "/404.html", "/assets/js/"}},
	// Gatsby's dependency sharp downloads libvips from GitHub in its install script, which this machine cannot
	// reach; the starter's ferry.json skips install scripts (its pages need no sharp).
	{name: "gatsby", slug: "gatsby", want: []string{"/index.html", "/about/index.html", "/404.html"}},
	{name: "cra", slug: "create-react-app", spa: true, want: []string{"/index.html", "/static/js/main."}},
	{name: "monorepo", slug: "vite", spa: true, want: []string{"/index.html", "/assets/"}},
}

// corepackEnv is what corepack needs to fetch pnpm and Yarn from the npm registry this machine uses (Yarn 2+
// comes from its own host otherwise), as a project would set it in its env vars.
func corepackEnv() map[string]string {
	env := map[string]string{"COREPACK_INTEGRITY_KEYS": "0"}
	if out, err := exec.Command("npm", "config", "get", "registry").Output(); err == nil {
		env["COREPACK_NPM_REGISTRY"] = strings.TrimRight(strings.TrimSpace(string(out)), "/")
	}
	return env
}

// readFixture loads testdata/starters/name as the files of a repository.
func readFixture(t testing.TB, name string) map[string]string {
	t.Helper()
	root := filepath.Join("testdata", "starters", name)
	files := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// testToolCache is shared by every test run on this machine, so node releases are fetched once.
func testToolCache() string { return filepath.Join(os.TempDir(), "ferry-test-tools") }

// TestStarters builds the representative starters in testdata/starters with zero config in the real sandbox,
// and checks what each published: the framework's pages at their paths, no sources or node_modules, the SPA
// setting the framework implies, the framework in the manifest's meta. Next.js is then built again to show
// that its build cache survives. The frameworks that need node ≥ 22 get it from the tool cache.
// bench/starters.sh builds them all (FERRY_STARTERS=all), twice each, and reports the times.
func TestStarters(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: installs and builds real framework starters from the npm registry")
	}
	requireBwrap(t)
	all := os.Getenv("FERRY_STARTERS")
	report := os.Getenv("FERRY_STARTERS_REPORT")
	e := newTestEnv(t, "")
	var rows []string
	for _, s := range starters {
		if all == "" && !s.ci || all != "" && all != "all" && !slices.Contains(strings.Split(all, ","), s.name) {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			r := e.repo(readFixture(t, s.name))
			p := e.params(r)
			p.Project = s.name
			p.ToolCache = testToolCache()
			p.Env = s.env
			p.Limits.Timeout = 10 * time.Minute
			first, err := Run(context.Background(), p)
			if err != nil {
				t.Fatalf("build: %v\nlogs:\n%s", err, tailOf(e.logs.String(), 60))
			}
			checkStarter(t, e, s, first)
			if report == "" && s.name != "next-export" {
				return
			}
			e.logs.b.Reset()
			second, err := Run(context.Background(), p)
			if err != nil {
				t.Fatalf("second build: %v", err)
			}
			checkStarter(t, e, s, second)
			if second.Cache != CacheHit {
				t.Errorf("second build: dependency cache %s, want hit", second.Cache)
			}
			logs := e.logs.String()
			if s.name == "next-export" && (!strings.Contains(logs, "Next.js build cache restored") || strings.Contains(logs, "No build cache found")) {
				t.Errorf("second Next.js build did not reuse .next/cache:\n%s", tailOf(logs, 40))
			}
			row := fmt.Sprintf("%-12s %-10s first: install %6.1fs build %6.1fs total %6.1fs | second (%s): install %6.1fs build %6.1fs total %6.1fs | files %d",
				s.name, first.Plan.Framework.Slug, first.StepSeconds[StepInstall], first.StepSeconds[StepBuild], first.BuildSeconds,
				second.Cache, second.StepSeconds[StepInstall], second.StepSeconds[StepBuild], second.BuildSeconds, second.Files)
			rows = append(rows, row)
			if report != "" { // row by row, so that a long run that is stopped still reports what it built
				f, err := os.OpenFile(report, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
				if err == nil {
					_, err = fmt.Fprintln(f, row)
					f.Close()
				}
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	for _, r := range rows {
		t.Log(r)
	}
}

func checkStarter(t *testing.T, e *testEnv, s starter, res *Result) {
	t.Helper()
	m, err := site.NewStore(e.st).ManifestGet(context.Background(), s.name, res.Deployment)
	if err != nil {
		t.Fatal(err)
	}
	paths := make([]string, 0, len(m.Files))
	for p := range m.Files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	has := func(want string) bool {
		for _, p := range paths {
			if p == want || strings.HasSuffix(want, "/") && strings.HasPrefix(p, want) || strings.HasSuffix(want, "-") && strings.HasPrefix(p, want) ||
				strings.HasSuffix(want, ".") && strings.HasPrefix(p, want) {
				return true
			}
		}
		return false
	}
	for _, w := range s.want {
		if !has(w) {
			t.Errorf("published files lack %s: %v", w, paths)
		}
	}
	for _, n := range s.not {
		if has(n) {
			t.Errorf("published %s: %v", n, paths)
		}
	}
	for _, p := range paths {
		base := p[strings.LastIndex(p, "/")+1:]
		if strings.Contains(p, "/node_modules/") || base == "package.json" || base == "package-lock.json" || strings.HasPrefix(p, "/src/") ||
			slices.Contains([]string{".jsx", ".tsx", ".vue", ".svelte", ".astro", ".md", ".ts"}, filepath.Ext(p)) {
			t.Errorf("published a source file %s", p)
		}
	}
	if m.Meta["framework"] != s.slug {
		t.Errorf("manifest meta framework = %q, want %q", m.Meta["framework"], s.slug)
	}
	if m.Config.SPA != s.spa {
		t.Errorf("manifest SPA = %v, want %v", m.Config.SPA, s.spa)
	}
}

// TestStarterServerModes: the starters in their default server modes fail at once, before any install, with
// the one setting to change (Next.js output: 'export', nuxt generate, adapter-static).
func TestStarterServerModes(t *testing.T) {
	requireBwrap(t)
	e := newTestEnv(t, "")
	for _, tc := range []struct {
		name    string
		fixture string
		change  map[string]string
		want    []string
	}{
		{"next default", "next-export", map[string]string{"next.config.mjs": "const nextConfig = {}\n\nexport default nextConfig\n"},
			[]string{"Next.js app in its default mode", "set output: 'export' in next.config.mjs"}},
		{"nuxt build", "nuxt", map[string]string{"package.json": strings.Replace(readFixture(t, "nuxt")["package.json"], `"nuxt generate"`, `"nuxt build"`, 1)},
			[]string{"`nuxt build` makes a server app", `set scripts.build to "nuxt generate"`}},
		{"sveltekit adapter-auto", "sveltekit", map[string]string{"vite.config.js": strings.ReplaceAll(readFixture(t, "sveltekit")["vite.config.js"], "adapter-static", "adapter-auto")},
			[]string{"@sveltejs/adapter-auto", "Could not detect a supported production environment", "install @sveltejs/adapter-static"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := readFixture(t, tc.fixture)
			for k, v := range tc.change {
				files[k] = v
			}
			p := e.params(e.repo(files))
			res, err := Run(context.Background(), p)
			wantCode(t, err, ferry.EBUILD, tc.want...)
			if res != nil || strings.Contains(e.logs.String(), "$ npm ci") {
				t.Errorf("installed before failing:\n%s", e.logs)
			}
		})
	}
}

func tailOf(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
