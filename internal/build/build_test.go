package build

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/siteconfig"
)

const nodeScriptBuild = `const fs = require("fs");
fs.mkdirSync("dist", { recursive: true });
fs.writeFileSync("dist/index.html", "<h1>built " + process.env.GREETING + " ci=" + process.env.CI + " env=" + process.env.NODE_ENV + "</h1>");
console.log("wrote dist/index.html");
`

func TestBuildNodeScript(t *testing.T) {
	requireBwrap(t)
	const token = "ghs_buildtoken_abcdef"
	e := newTestEnv(t, token)
	r := e.repo(map[string]string{
		"package.json": `{"name":"s","private":true,"scripts":{"build":"node build.js"}}`,
		"build.js":     nodeScriptBuild,
	})
	p := e.params(r)
	p.Env = map[string]string{"GREETING": "hello-secret-value"}
	p.Aliases = []string{"production"}
	res, err := Run(context.Background(), p)
	if err != nil {
		t.Fatalf("build: %v\nlogs:\n%s", err, e.logs)
	}
	if res.Commit != r.Commits[0] || res.Plan.Build != "npm run build" || res.Plan.Install != "npm install" {
		t.Errorf("result %+v", res)
	}
	body, ok := published(t, e.st, "web", res.Deployment, "/index.html")
	if !ok || body != "<h1>built hello-secret-value ci=true env=production</h1>" {
		t.Errorf("published /index.html = %q, %v", body, ok)
	}
	if paths := manifestPaths(t, e.st, "web", res.Deployment); len(paths) != 1 {
		t.Errorf("published %v, want only /index.html", paths)
	}
	a, err := site.NewStore(e.st).AliasGet(context.Background(), "web", "production")
	if err != nil || a.Deployment != res.Deployment {
		t.Errorf("alias production = %+v, %v", a, err)
	}
	logs := e.logs.String()
	for _, want := range []string{" clone ", " detect ", "package.json scripts.build", " build ", "wrote dist/index.html", " publish "} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, token) {
		t.Error("token in logs")
	}
	if res.BuildSeconds <= 0 || res.StepSeconds[StepBuild] <= 0 {
		t.Errorf("timings %v %v", res.BuildSeconds, res.StepSeconds)
	}
}

func TestBuildStaticSite(t *testing.T) {
	requireBwrap(t)
	e := newTestEnv(t, "")
	r := e.repo(map[string]string{"index.html": "<h1>static</h1>", "about/index.html": "about", "css/site.css": "body{}"})
	res, err := Run(context.Background(), e.params(r))
	if err != nil {
		t.Fatalf("build: %v\nlogs:\n%s", err, e.logs)
	}
	paths := manifestPaths(t, e.st, "web", res.Deployment)
	slices.Sort(paths)
	if want := []string{"/about/index.html", "/css/site.css", "/index.html"}; !slices.Equal(paths, want) {
		t.Errorf("published %v, want %v (and no .git)", paths, want)
	}
	if _, ok := res.StepSeconds[StepInstall]; ok {
		t.Error("a static site ran an install")
	}
}

func TestBuildMonorepoRootDirectory(t *testing.T) {
	requireBwrap(t)
	e := newTestEnv(t, "")
	r := e.repo(map[string]string{
		"ferry.json":            `{"rootDirectory": "apps/web", "env": {"GREETING": "from-ferry-json"}}`,
		"apps/web/package.json": `{"name":"web","private":true,"scripts":{"build":"node build.js"}}`,
		"apps/web/build.js":     nodeScriptBuild,
		"apps/other/index.html": "not me",
		"index.html":            "not me either",
	})
	res, err := Run(context.Background(), e.params(r))
	if err != nil {
		t.Fatalf("build: %v\nlogs:\n%s", err, e.logs)
	}
	body, ok := published(t, e.st, "web", res.Deployment, "/index.html")
	if !ok || !strings.Contains(body, "built from-ferry-json") {
		t.Errorf("published /index.html = %q", body)
	}
	if res.Plan.Root != "apps/web" {
		t.Errorf("plan root %q", res.Plan.Root)
	}
}

// TestBuildDependencyCache builds a fixture with one real dependency from the npm registry twice: the first
// build fills the cache, the second restores it.
// TestBuildOverrides: the caller's overrides (ferry build's flags, the Action's inputs) win over ferry.json
// and over detection: another root folder, build command and output folder, no install although a
// package.json is there, and one env var replaced.
func TestBuildOverrides(t *testing.T) {
	requireBwrap(t)
	e := newTestEnv(t, "")
	r := e.repo(map[string]string{
		"ferry.json": `{"rootDirectory": "a", "buildCommand": "mkdir -p out && echo ferry.json > out/index.html", "outputDirectory": "out",
			"env": {"FROM_JSON": "kept", "WHO": "ferry.json"}}`,
		"a/index.html":   "a",
		"b/package.json": `{"name":"b","private":true,"scripts":{"build":"node -e 'process.exit(9)'"}}`,
	})
	p := e.params(r)
	p.Overrides = &siteconfig.File{
		RootDirectory:   "b",
		InstallCommand:  ptr(""),
		BuildCommand:    ptr(`mkdir -p site && echo "override $FROM_JSON $WHO" > site/index.html`),
		OutputDirectory: "site",
		Env:             map[string]string{"WHO": "caller"},
	}
	res, err := Run(context.Background(), p)
	if err != nil {
		t.Fatalf("build: %v\nlogs:\n%s", err, e.logs)
	}
	if body, ok := published(t, e.st, "web", res.Deployment, "/index.html"); body != "override kept caller\n" {
		t.Errorf("published /index.html = %q, %v; want the override's build", body, ok)
	}
	if _, ok := res.StepSeconds[StepInstall]; ok || res.Plan.Root != "b" {
		t.Errorf("plan %+v, steps %v: want root b and no install", res.Plan, res.StepSeconds)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "buildCommand override") || !strings.Contains(logs, "rootDirectory override") {
		t.Errorf("the log does not say what was overridden:\n%s", logs)
	}
}

func TestBuildDependencyCache(t *testing.T) {
	skipShort(t, "installs from the npm registry three times")
	requireBwrap(t)
	requireTool(t, "npm", "install nodejs and npm")
	e := newTestEnv(t, "")
	files := map[string]string{
		"build.js": `const ms = require("ms");
require("fs").mkdirSync("build", { recursive: true });
require("fs").writeFileSync("build/index.html", "two days is " + ms("2 days") + " ms");
`,
	}
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "dep", f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = string(b)
	}
	r := e.repo(files)
	first, err := Run(context.Background(), e.params(r))
	if err != nil {
		t.Fatalf("first build: %v\nlogs:\n%s", err, e.logs)
	}
	if first.Cache != CacheMiss || first.Plan.Install != "npm ci" || first.Plan.PackageManager != "npm" {
		t.Errorf("first build: cache %s, plan %+v", first.Cache, first.Plan)
	}
	if body, _ := published(t, e.st, "web", first.Deployment, "/index.html"); body != "two days is 172800000 ms" {
		t.Errorf("published %q", body)
	}
	keys, err := e.st.List(context.Background(), site.ProjectPrefix("web")+"cache/")
	if err != nil || len(keys) != 1 || !strings.HasSuffix(keys[0].Key, ".tar.gz") {
		t.Fatalf("cache objects %v, %v", keys, err)
	}
	second, err := Run(context.Background(), e.params(r))
	if err != nil {
		t.Fatalf("second build: %v\nlogs:\n%s", err, e.logs)
	}
	if second.Cache != CacheHit {
		t.Errorf("second build: cache %s, want hit", second.Cache)
	}
	t.Logf("install seconds: first %.2f, second (cache hit) %.2f", first.StepSeconds[StepInstall], second.StepSeconds[StepInstall])

	// A corrupt cache falls back to a plain install.
	if err := os.WriteFile(filepath.Join(strings.TrimPrefix(e.stURL, "file://"), filepath.FromSlash(keys[0].Key)), []byte("not a tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	third, err := Run(context.Background(), e.params(r))
	if err != nil {
		t.Fatalf("build with a corrupt cache: %v\nlogs:\n%s", err, e.logs)
	}
	if third.Cache != CacheCorrupt || !strings.Contains(e.logs.String(), "dependency cache is unreadable") {
		t.Errorf("third build: cache %s", third.Cache)
	}
}

func TestBuildBadInput(t *testing.T) {
	skipShort(t, "runs a sandboxed build per bad input")
	requireBwrap(t)
	e := newTestEnv(t, "")
	run := func(files map[string]string) error {
		_, err := Run(context.Background(), e.params(e.repo(files)))
		return err
	}
	t.Run("failing build", func(t *testing.T) {
		err := run(map[string]string{
			"package.json": `{"name":"s","private":true,"scripts":{"build":"node build.js"}}`,
			"build.js":     `console.log("compiling page 1"); console.error("Error: cannot find module ./missing"); process.exit(3)`,
		})
		wantCode(t, err, ferry.EBUILD, "step build", "exited with code 3", "cannot find module ./missing")
		if strings.Contains(err.Error(), "compiling page 1") { // in the log already: the error names the error line
			t.Errorf("error %q repeats output that is not an error", err)
		}
		if ferry.ExitCode(err) != ferry.ExitUser {
			t.Errorf("exit code %d", ferry.ExitCode(err))
		}
	})
	t.Run("failing install", func(t *testing.T) {
		err := run(map[string]string{
			"ferry.json": `{"installCommand": "echo installing; exit 7", "outputDirectory": "."}`,
			"index.html": "x",
		})
		wantCode(t, err, ferry.EBUILD, "step install", "exited with code 7", "installing")
	})
	t.Run("missing output folder", func(t *testing.T) {
		err := run(map[string]string{"package.json": `{"name":"s","private":true,"scripts":{"build":"echo nothing"}}`})
		wantCode(t, err, ferry.EBUILD, "dist, build, out, public", "outputDirectory")
	})
	t.Run("configured output folder missing", func(t *testing.T) {
		err := run(map[string]string{"ferry.json": `{"buildCommand": "true", "outputDirectory": "site"}`})
		wantCode(t, err, ferry.EBUILD, "output folder site does not exist")
	})
	t.Run("invalid ferry.json", func(t *testing.T) {
		err := run(map[string]string{"ferry.json": `{"buildComand": "npm run build"}`, "index.html": "x"})
		wantCode(t, err, ferry.EINVALID, "buildComand")
	})
	t.Run("ferry.json wrong type", func(t *testing.T) {
		err := run(map[string]string{"ferry.json": `{"env": ["A=1"]}`, "index.html": "x"})
		wantCode(t, err, ferry.EINVALID, "env")
	})
	t.Run("rootDirectory escapes", func(t *testing.T) {
		err := run(map[string]string{"ferry.json": `{"rootDirectory": "../.."}`, "index.html": "x"})
		wantCode(t, err, ferry.EINVALID, "rootDirectory")
	})
	t.Run("nodeVersion mismatch", func(t *testing.T) {
		err := run(map[string]string{"ferry.json": `{"nodeVersion": "12"}`, "package.json": `{"scripts":{"build":"true"}}`})
		wantCode(t, err, ferry.EINVALID, "nodeVersion", "this builder has node")
	})
	t.Run("missing repo", func(t *testing.T) {
		p := e.params(e.repo(map[string]string{"index.html": "x"}))
		p.Repo = e.url + "/acme/does-not-exist.git"
		_, err := Run(context.Background(), p)
		wantCode(t, err, ferry.ENOTFOUND, "not found")
	})
	t.Run("bad ref", func(t *testing.T) {
		p := e.params(e.repo(map[string]string{"index.html": "x"}))
		p.Ref = "nope"
		_, err := Run(context.Background(), p)
		wantCode(t, err, ferry.ENOTFOUND, `ref "nope" not found`)
	})
	t.Run("output too large", func(t *testing.T) {
		p := e.params(e.repo(map[string]string{"ferry.json": `{"buildCommand": "mkdir out && head -c 3000000 /dev/zero > out/big.bin"}`}))
		p.Limits.OutputSize = 1 << 20
		_, err := Run(context.Background(), p)
		wantCode(t, err, ferry.ETOOLARGE, "limit")
	})
}

func TestBuildLogCap(t *testing.T) {
	requireBwrap(t)
	e := newTestEnv(t, "")
	p := e.params(e.repo(map[string]string{"ferry.json": `{"buildCommand": "i=0; while [ $i -lt 500 ]; do echo line $i; i=$((i+1)); done; mkdir dist; echo ok > dist/index.html"}`}))
	p.Limits.LogLines = 50
	if _, err := Run(context.Background(), p); err != nil {
		t.Fatalf("build: %v", err)
	}
	logs := e.logs.String()
	if strings.Contains(logs, "line 100\n") || !strings.Contains(logs, "log line cap reached") {
		t.Errorf("log cap not applied:\n%s", logs)
	}
}

func TestBuildRefusesWithoutBwrap(t *testing.T) {
	e := newTestEnv(t, "")
	p := e.params(e.repo(map[string]string{"index.html": "x"}))
	t.Setenv("PATH", t.TempDir())
	_, err := Run(context.Background(), p)
	wantCode(t, err, ferry.EINTERNAL, "apt-get install bubblewrap", "--sandbox=none")
}

func TestBuildSandboxNone(t *testing.T) {
	e := newTestEnv(t, "")
	p := e.params(e.repo(map[string]string{
		"package.json": `{"name":"s","private":true,"scripts":{"build":"node build.js"}}`,
		"build.js":     nodeScriptBuild,
	}))
	p.Sandbox = SandboxNone
	t.Setenv("FERRY_WEBHOOK_SECRET", "canary-none-mode")
	res, err := Run(context.Background(), p)
	if err != nil {
		t.Fatalf("build: %v\nlogs:\n%s", err, e.logs)
	}
	if !strings.Contains(e.logs.String(), "SANDBOX DISABLED") {
		t.Error("no loud warning for --sandbox=none")
	}
	if body, _ := published(t, e.st, "web", res.Deployment, "/index.html"); !strings.Contains(body, "ci=true") {
		t.Errorf("published %q", body)
	}
	_ = time.Second
}
