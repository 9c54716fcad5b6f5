package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/ferry"
)

// openTempDir is a t.TempDir under /tmp that the sandbox user may read (MkdirTemp makes 0700 folders).
func openTempDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// TestToolchainUnderTmp: a node on ferry's PATH under /tmp (setup-node's tool cache, a tool cache) is the one
// the build runs, although the sandbox has a private /tmp. Before the fix the bind was hidden by the tmpfs
// and the build silently ran /usr/bin/node instead.
func TestToolchainUnderTmp(t *testing.T) {
	requireBwrap(t)
	dir := openTempDir(t)
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "node"), []byte("#!/bin/sh\necho v99.0.0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	e := newTestEnv(t, "")
	p := e.params(e.repo(map[string]string{"ferry.json": `{"buildCommand": "mkdir out && node --version > out/index.html", "outputDirectory": "out"}`}))
	res, err := Run(context.Background(), p)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, e.logs)
	}
	if body, _ := published(t, e.st, "web", res.Deployment, "/index.html"); strings.TrimSpace(body) != "v99.0.0" {
		t.Errorf("the build ran node %q, want the v99.0.0 on PATH under /tmp", body)
	}
}

// TestCAFilesReachBuilds: the operator's NODE_EXTRA_CA_CERTS (a TLS-inspecting proxy's CA, here under /tmp)
// reaches the build commands with its file readable, so corepack can fetch through such a proxy.
func TestCAFilesReachBuilds(t *testing.T) {
	requireBwrap(t)
	ca := filepath.Join(openTempDir(t), "proxy-ca.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NODE_EXTRA_CA_CERTS", ca)
	e := newTestEnv(t, "")
	p := e.params(e.repo(map[string]string{"ferry.json": `{"buildCommand": "mkdir out && echo \"$NODE_EXTRA_CA_CERTS\" > out/index.html && cat \"$NODE_EXTRA_CA_CERTS\" >> out/index.html", "outputDirectory": "out"}`}))
	res, err := Run(context.Background(), p)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, e.logs)
	}
	if body, _ := published(t, e.st, "web", res.Deployment, "/index.html"); !strings.HasPrefix(body, ca+"\n-----BEGIN CERTIFICATE-----") {
		t.Errorf("the build saw %q", body)
	}
}

// TestFailureCause: the line that states why a step failed is in the error even when pages of output follow it
// (npm ci's usage text after "Missing: … from lock file").
func TestFailureCause(t *testing.T) {
	requireBwrap(t)
	e := newTestEnv(t, "")
	script := `echo "npm error code EUSAGE"; echo "npm error"; echo "npm error Missing: left-pad@1.3.0 from lock file"; ` +
		`i=0; while [ $i -lt 60 ]; do echo "npm error   --flag-$i  usage text"; i=$((i+1)); done; exit 1`
	p := e.params(e.repo(map[string]string{"ferry.json": `{"installCommand": "` + strings.ReplaceAll(script, `"`, `\"`) + `", "outputDirectory": "."}`, "index.html": "x"}))
	_, err := Run(context.Background(), p)
	wantCode(t, err, ferry.EBUILD, "the cause, from earlier in its output", "npm error Missing: left-pad@1.3.0 from lock file", "npm error code EUSAGE")
	if strings.Contains(err.Error(), "--flag-59") {
		t.Errorf("the usage text that followed the cause is in the error: %v", err)
	}
}

// TestNpmCiOutOfSync: npm ci refuses a lockfile that does not match package.json; the build then runs npm
// install with a warning, as Vercel and Netlify do, and does not cache what the lockfile does not pin.
func TestNpmCiOutOfSync(t *testing.T) {
	requireBwrap(t)
	e := newTestEnv(t, "")
	p := e.params(e.repo(map[string]string{
		"package.json":      `{"name":"s","private":true,"version":"1.0.0","scripts":{"build":"node build.js"},"dependencies":{"ms":"2.1.3"}}`,
		"package-lock.json": `{"name":"s","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"s","version":"1.0.0"}}}`,
		"build.js":          `require("fs").mkdirSync("dist"); require("fs").writeFileSync("dist/index.html", require("ms")(60000));`,
	}))
	res, err := Run(context.Background(), p)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, e.logs)
	}
	logs := e.logs.String()
	for _, want := range []string{"$ npm ci", "Missing: ms@2.1.3 from lock file", "out of sync", "$ npm install --no-audit --no-fund"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "dependency cache saved") {
		t.Error("cached an install that the lockfile does not pin")
	}
	if body, _ := published(t, e.st, "web", res.Deployment, "/index.html"); body != "1m" {
		t.Errorf("published %q", body)
	}
}

// TestCachesWithoutLockfileAndFrameworkCache: with no lockfile the download cache is kept (keyed on package.json);
// a framework's build cache (.next/cache here) written by one build is there for the next; the clean-up counts
// in build_seconds.
func TestCachesWithoutLockfileAndFrameworkCache(t *testing.T) {
	requireBwrap(t)
	e := newTestEnv(t, "")
	build := `const fs = require("fs"); const had = fs.existsSync(".next/cache/marker"); ` +
		`fs.mkdirSync(".next/cache", {recursive: true}); fs.writeFileSync(".next/cache/marker", "x"); fs.writeFileSync(".next/trace", "x"); ` +
		`fs.mkdirSync("out"); fs.writeFileSync("out/index.html", had ? "had cache" : "no cache"); console.log(had ? "HAD CACHE" : "NO CACHE");`
	p := e.params(e.repo(map[string]string{
		"package.json":    `{"name":"s","private":true,"scripts":{"build":"node build.js"},"dependencies":{"ms":"2.1.3"},"devDependencies":{"next":"file:./nonext"}}`,
		"next.config.mjs": "export default { output: 'export' }",
		"ferry.json":      `{"installCommand": "npm install --no-save ms@2.1.3"}`,
		"build.js":        build,
	}))
	first, err := Run(context.Background(), p)
	if err != nil {
		t.Fatalf("first build: %v\n%s", err, e.logs)
	}
	if first.Cache != CacheMiss || first.Plan.Framework == nil || first.Plan.Framework.Slug != "nextjs" {
		t.Errorf("first: cache %s, plan %+v", first.Cache, first.Plan)
	}
	if _, ok := first.StepSeconds[StepCleanup]; !ok {
		t.Errorf("no cleanup step in %v", first.StepSeconds)
	}
	var sum float64
	for _, s := range first.StepSeconds {
		sum += s
	}
	if first.BuildSeconds < sum-0.01 {
		t.Errorf("build_seconds %.3f < the steps' %.3f", first.BuildSeconds, sum)
	}
	e.logs.b.Reset()
	second, err := Run(context.Background(), p)
	if err != nil {
		t.Fatalf("second build: %v\n%s", err, e.logs)
	}
	logs := e.logs.String()
	if second.Cache != CacheHit || !strings.Contains(logs, "only the package manager's download cache is kept") {
		t.Errorf("second: cache %s:\n%s", second.Cache, logs)
	}
	if body, _ := published(t, e.st, "web", second.Deployment, "/index.html"); body != "had cache" || !strings.Contains(logs, "Next.js build cache restored") {
		t.Errorf("second build saw %q:\n%s", body, logs)
	}
}

// TestNpmCiFlagsOnCacheHit: an installCommand of "npm ci" with flags keeps the restored node_modules too (npm ci
// would delete it and download everything again), keeping its flags.
func TestNpmCiFlagsOnCacheHit(t *testing.T) {
	requireBwrap(t)
	e := newTestEnv(t, "")
	files := map[string]string{
		"ferry.json": `{"installCommand": "npm ci --ignore-scripts"}`,
		"build.js":   `require("fs").mkdirSync("build"); require("fs").writeFileSync("build/index.html", String(require("ms")("1s")));`,
	}
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "dep", f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = string(b)
	}
	p := e.params(e.repo(files))
	if _, err := Run(context.Background(), p); err != nil {
		t.Fatalf("first build: %v\n%s", err, e.logs)
	}
	e.logs.b.Reset()
	second, err := Run(context.Background(), p)
	if err != nil {
		t.Fatalf("second build: %v\n%s", err, e.logs)
	}
	if second.Cache != CacheHit || !strings.Contains(e.logs.String(), "$ npm install --prefer-offline --no-audit --no-fund --ignore-scripts") {
		t.Errorf("second build: cache %s:\n%s", second.Cache, e.logs)
	}
}
