// Package build is Ferry's build runner: it clones one commit, decides how to build it, runs the install and
// build commands as untrusted code in a bubblewrap sandbox, and publishes the output through the site store.
// `ferry build` is a thin command over Run; the App's local builder runs that command as a sub-process, an ECS
// task runs it in a container, and the GitHub Action calls Run (without the sandbox, with its inputs as Overrides).
package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/netpolicy"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/siteconfig"
	"github.com/ferryhq/ferry/internal/storage"
)

// Step names, as they appear in every log line and in Result.StepSeconds.
const (
	StepClone   = "clone"
	StepDetect  = "detect"
	StepInstall = "install"
	StepBuild   = "build"
	StepPublish = "publish"
	StepCleanup = "cleanup"
)

// Params describes one build. Repo, Project and Storage are required.
type Params struct {
	// Repo is an https clone URL, a file:// URL or a local path.
	Repo string
	// Ref is a full commit SHA, a branch or a tag; "" builds the remote's HEAD.
	Ref string
	// Token authenticates https clones as x-access-token (a GitHub installation token). Never logged.
	Token string
	// Project owns the deployment and the dependency cache.
	Project string
	// Storage receives the deployment and holds the dependency cache.
	Storage storage.Storage
	// CacheScope is how far the commit is trusted, and so which dependency cache the build reads and writes:
	// CacheScopeProduction, CacheScopePreview ("" means preview) or CacheScopeFork (no cache at all).
	CacheScope string
	// Aliases, DeploymentID and Domain are passed to the publish (see site.PublishParams).
	Aliases      []string
	DeploymentID string
	Domain       string
	// Overrides are build and serving settings that win over the repository's ferry.json key by key (env vars
	// name by name): ferry build's --build-command and friends, the Action's inputs. ferry.json is still read
	// from the repository's top, whatever rootDirectory says. nil or zero fields leave ferry.json's (or
	// detection's) choice alone; a non-nil empty BuildCommand or InstallCommand skips that step.
	Overrides *siteconfig.File
	// Env holds the project's env vars. They reach the build commands, and their values are masked in logs.
	Env map[string]string
	// Sandbox is SandboxBwrap (default) or SandboxNone.
	Sandbox string
	// Egress is what the build's egress proxy may reach (bwrap mode, where the build has no other network):
	// the zero value allows public addresses only; Allow adds an internal registry's range.
	Egress netpolicy.Policy
	// CloneAllow adds ranges that only the clone may reach on top of Egress, for example loopback for a git
	// server on the same machine (ferry dev, tests). The clone of an http(s) URL always goes through the policy.
	CloneAllow []netip.Prefix
	// Limits bound the build; zero fields take DefaultLimits.
	Limits Limits
	// WorkDir is where the temporary workspace is made; "" means the system's temp folder.
	WorkDir string
	// ToolCache is where node releases that a site needs (nodeVersion, engines.node) and this builder lacks are
	// kept once fetched; it is bound read-only into the sandbox. "" fetches nothing: a mismatch fails the build.
	ToolCache string
	// Meta is added to the manifest's meta, next to repo, ref and commit.
	Meta map[string]string
	// Log receives every line; Run adds the step to each and masks secrets. nil discards.
	Log *slog.Logger
}

// ErrPublish marks Run's errors from the publish step, which callers may explain as storage trouble; the
// steps before it (a clone outage, say) must not read as one. Test it with errors.Is; ferry.ErrorCode still
// gives the cause's code.
var ErrPublish = errors.New("publish")

// Result is what a successful build did. Its JSON is `ferry publish --json`'s object plus the build's figures.
type Result struct {
	*site.PublishResult
	// Commit is the full id that was built.
	Commit string `json:"commit"`
	// BuildSeconds is the whole run, clone to publish and the workspace's clean-up.
	BuildSeconds float64 `json:"build_seconds"`
	// StepSeconds times each step that ran (clone, install, build, publish, cleanup).
	StepSeconds map[string]float64 `json:"step_seconds"`
	// Cache is the dependency cache's state: none, hit, miss, corrupt or off.
	Cache string `json:"cache"`
	// Plan is what detection decided.
	Plan Plan `json:"plan"`
	// cacheKey is the dependency cache's key, which the framework's build cache is named after.
	cacheKey string
}

// Run clones, detects, installs, builds and publishes. Errors carry ferry codes: the user's failures (a bad
// ref, an invalid ferry.json, a failing command, a missing output folder) are final, while storage or sandbox
// trouble is retryable. A failed command's error names the step, its exit code and its last output lines.
func Run(ctx context.Context, p Params) (*Result, error) {
	start := time.Now()
	if p.Project == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "--project is required")
	}
	if p.Storage == nil {
		return nil, ferry.Errorf(ferry.EINVALID, "--storage is required")
	}
	scope, err := ParseCacheScope(p.CacheScope)
	if err != nil {
		return nil, err
	}
	p.CacheScope = scope
	limits := p.Limits.withDefaults()
	m := &masker{}
	m.add(p.Token)
	for _, v := range p.Env {
		m.add(v)
	}
	base := slog.DiscardHandler
	if p.Log != nil {
		base = p.Log.Handler()
	}
	log := slog.New(&maskHandler{inner: base, m: m})
	stepLog := func(step string) *slog.Logger { return log.With("step", step) }
	res := &Result{StepSeconds: map[string]float64{}, Cache: CacheNone}
	timed := func(step string, f func() error) error {
		t := time.Now()
		err := f()
		res.StepSeconds[step] = round(time.Since(t).Seconds())
		return err
	}

	tmp, err := os.MkdirTemp(p.WorkDir, "ferry-build-")
	if err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "create workspace: %w", err)
	}
	defer os.RemoveAll(tmp)
	// Traversable (not listable) so that the sandbox user can reach its workspace below.
	if err := os.Chmod(tmp, 0o711); err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "create workspace: %w", err)
	}
	ws := filepath.Join(tmp, "ws")
	etc := filepath.Join(tmp, "etc")
	gitHome := filepath.Join(tmp, "git-home")
	if err := os.Mkdir(ws, 0o755); err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "create workspace: %w", err)
	}
	var limitNotes []string
	diskCapped := false
	if p.Sandbox == "" || p.Sandbox == SandboxBwrap {
		unmount, why := workspaceDisk(ws, limits.Disk)
		if unmount != nil {
			defer unmount() // before the RemoveAll above: nothing of the build was ever on disk
			diskCapped = true
			limitNotes = append(limitNotes, fmt.Sprintf("disk: %d MiB for the whole workspace (tmpfs)", limits.Disk>>20))
		} else {
			limitNotes = append(limitNotes, fmt.Sprintf("disk: %d MiB per file only (RLIMIT_FSIZE): %s", limits.FileSize>>20, why))
		}
	}
	for _, d := range []string{ws, etc, gitHome, filepath.Join(ws, "home"), filepath.Join(ws, "cache"), filepath.Join(ws, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, ferry.Errorf(ferry.EINTERNAL, "create workspace: %w", err)
		}
	}
	if err := writeEtc(etc); err != nil {
		return nil, ferry.Wrap(ferry.EINTERNAL, err)
	}
	sb, err := newSandbox(p.Sandbox, ws, etc, limits, stepLog("sandbox"))
	if err != nil {
		return nil, err
	}
	if sb.mode == SandboxBwrap {
		if sb.egress, err = startEgress(tmp, p.Egress, sb.uid, sb.dropUID, stepLog("egress")); err != nil {
			return nil, err
		}
		defer sb.egress.Close()
		var why string
		if sb.cgroup, why = newMemCgroup(limits.TotalMemory, sb.uid, sb.dropUID); sb.cgroup != nil {
			defer sb.cgroup.remove()
			limitNotes = append(limitNotes, fmt.Sprintf("memory: %d MiB for all processes together (%s), %d MiB per process", limits.TotalMemory>>20, sb.cgroup.describe(), limits.Memory>>20))
		} else {
			limitNotes = append(limitNotes, fmt.Sprintf("memory: %d MiB per process only (RLIMIT_DATA): %s", limits.Memory>>20, why))
		}
		limitNotes = append(limitNotes, describeEgress(p.Egress), fmt.Sprintf("time: %s", limits.Timeout), fmt.Sprintf("processes: %d", limits.Processes))
		stepLog("sandbox").Info("limits: " + strings.Join(limitNotes, "; "))
	}
	src := filepath.Join(ws, "src")
	// Resolved now, before any untrusted command runs: the build owns its workspace and may swap src itself
	// for a link, so the checks after the build must not resolve it again.
	realWS, err := filepath.EvalSymlinks(ws)
	if err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "resolve workspace: %w", err)
	}
	realSrc := filepath.Join(realWS, "src")

	// 1. Clone.
	err = timed(StepClone, func() error {
		var err error
		res.Commit, err = clone(ctx, cloneParams{Repo: p.Repo, Ref: p.Ref, Token: p.Token, Dir: src, Home: gitHome,
			Policy: clonePolicy(p.Egress, p.CloneAllow), Log: stepLog(StepClone), Mask: m})
		return err
	})
	if err != nil {
		if diskCapped && diskFull(ws) {
			return nil, ferry.Errorf(ferry.ETOOLARGE, "the repository does not fit in the build's workspace, which is limited to %d MiB (--max-disk-mib)", limits.Disk>>20)
		}
		return nil, err
	}

	// 2. ferry.json, 3. detection.
	dlog := stepLog(StepDetect)
	// What git tracks is read now, before any untrusted command can change .git: a tracked folder is source.
	tracked, err := trackedFolders(ctx, src, gitHome)
	if err != nil {
		return nil, err
	}
	cfg, err := readConfig(src)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		dlog.Info("read ferry.json")
	}
	cfg, from := overlay(cfg, p.Overrides)
	// Detection, the lockfile's hash and the cache restore read and write the checkout as ferry's own user, so
	// a link committed to the repository must not lead them to the host's files.
	root := "."
	if cfg != nil && cfg.RootDirectory != "" {
		if r, err := cleanRel(cfg.RootDirectory); err == nil {
			root = r
		}
	}
	if _, err := inCheckout(realSrc, root); err != nil {
		return nil, ferry.Errorf(ferry.EINVALID, "%s %q leads outside the repository through a link; links in the repository may only point inside it", from("rootDirectory"), cfg.RootDirectory)
	}
	plan, err := detect(src, cfg, from)
	if err != nil {
		return nil, err
	}
	for _, rel := range []string{path.Join(plan.Root, "package.json"), plan.InstallDir, plan.Lockfile} {
		if _, err := inCheckout(realSrc, rel); rel != "" && err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "%s leads outside the repository through a link; links in the repository may only point inside it", rel)
		}
	}
	res.Plan = plan
	for _, r := range plan.Reasons {
		dlog.Info(r)
	}
	node, err := resolveNode(ctx, plan, p.ToolCache, from, dlog)
	if err != nil {
		return nil, err
	}
	sb.useNode(node)
	sb.useCAFiles(dlog)

	// 4. Install and build, inside the sandbox.
	if sb.dropUID {
		if err := chownTree(ws, sb.uid); err != nil {
			return nil, ferry.Errorf(ferry.EINTERNAL, "hand the workspace to the sandbox user: %w", err)
		}
	}
	budget := &lineBudget{left: limits.LogLines}
	out := func(step string) *lineWriter { return &lineWriter{log: stepLog(step), budget: budget, m: m} }
	env := buildEnv(sb, plan.PackageManager, p.Env, plan.Env)
	deadline := time.Now().Add(limits.Timeout)
	runStep := func(step, rel, command string, env []string) error {
		stepLog(step).Info("$ " + command)
		err := sb.run(ctx, deadline, step, rel, command, env, out(step))
		var ce *commandError
		if errors.As(err, &ce) {
			switch {
			case ce.TimedOut:
				return ferry.Errorf(ferry.EBUILD, "build failed: %w (--timeout %s)", ce, limits.Timeout)
			case ce.OutOfMemory:
				return ferry.Errorf(ferry.EBUILD, "build failed: %w (--max-total-memory-mib %d, which counts the files written to the in-memory workspace too)", ce, limits.TotalMemory>>20)
			case diskCapped && diskFull(ws):
				return ferry.Errorf(ferry.ETOOLARGE, "build failed: the build filled its workspace, which is limited to %d MiB (--max-disk-mib; node_modules counts): %w", limits.Disk>>20, ce)
			}
			return ferry.Errorf(ferry.EBUILD, "build failed: %w", ce)
		}
		return err
	}
	if plan.Install != "" {
		err = timed(StepInstall, func() error {
			return install(ctx, p, sb, plan, node.Version, realSrc, tmp, env, res, runStep, stepLog(StepInstall))
		})
		if err != nil {
			return nil, err
		}
	}
	buildCache := frameworkCache{}
	if plan.Build != "" && plan.Framework != nil && res.cacheKey != "" {
		buildCache = restoreBuildCache(ctx, p, sb, plan, realSrc, res.cacheKey, stepLog(StepBuild))
	}
	if plan.Build != "" {
		err = timed(StepBuild, func() error {
			benv := env
			if _, set := lookupEnv(env, "NODE_ENV"); !set {
				benv = append(append([]string(nil), env...), "NODE_ENV=production")
			}
			err := runStep(StepBuild, filepath.Join("src", plan.Root), plan.Build, benv)
			var fe *ferry.Error
			if err != nil && plan.Framework != nil && errors.As(err, &fe) {
				if hint := buildHint(plan.Framework, err.Error()); hint != "" {
					return ferry.Errorf(ferry.EBUILD, "%s\n%w", hint, err)
				}
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}

	// 5. Publish.
	outRel, err := plan.ResolveOutput(src, tracked)
	if err != nil {
		return nil, err
	}
	plog := stepLog(StepPublish)
	outDir := filepath.Join(src, filepath.FromSlash(outRel))
	if err := checkOutput(realSrc, outDir, limits.OutputSize); err != nil {
		return nil, err
	}
	if err := checkHasPage(src, outRel); err != nil {
		return nil, err
	}
	if outRel == "." || outRel == plan.Root {
		// A static site published from the repository itself: git's folder is not part of the site.
		if err := os.RemoveAll(filepath.Join(src, ".git")); err != nil {
			return nil, ferry.Errorf(ferry.EINTERNAL, "remove .git before publishing: %w", err)
		}
	}
	plog.Info("publishing " + outRel)
	meta := map[string]string{"repo": redactURL(p.Repo), "ref": p.Ref, "commit": res.Commit, "builder": "ferry build"}
	if plan.Framework != nil {
		meta["framework"] = plan.Framework.Slug
		if cfg == nil || cfg.SPA == nil {
			// The framework knows whether its output is an SPA; ferry.json's spa, when set, still wins.
			if spa, known := plan.Framework.spaFor(outDir); known {
				c := siteconfig.File{}
				if cfg != nil {
					c = *cfg
				}
				c.SPA = &spa
				cfg = &c
				plog.Info(fmt.Sprintf("serving as %s (%s output)", map[bool]string{true: "a single-page app: unknown paths get /index.html", false: "a multi-page site: unknown paths are 404s"}[spa], plan.Framework.Name))
			}
		}
	}
	for k, v := range p.Meta {
		meta[k] = v
	}
	err = timed(StepPublish, func() error {
		var err error
		res.PublishResult, err = site.NewStore(p.Storage).Publish(ctx, site.PublishParams{
			Project: p.Project, Dir: outDir, DeploymentID: p.DeploymentID, Aliases: p.Aliases,
			Settings: cfg, Domain: p.Domain, Meta: meta, Log: plog,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPublish, err)
	}
	if buildCache.key != "" {
		// After the publish, so that the deployment is live first; a failure costs the next build time only.
		saveBuildCache(ctx, p, sb, buildCache, tmp, stepLog(StepBuild))
	}
	// The workspace clean-up is part of the build's time: node_modules can take seconds to delete.
	_ = timed(StepCleanup, func() error { return os.RemoveAll(tmp) })
	res.BuildSeconds = round(time.Since(start).Seconds())
	return res, nil
}

// install restores the dependency cache, runs the install command, and saves the cache when it was missing.
// A broken cache only costs time: it is logged and the install runs without it. src is the checkout's real path.
//
// The cache is keyed on the lockfile. Without one it is keyed on package.json and holds the package manager's
// download cache only, not node_modules: the install then resolves versions afresh, as it would with no cache,
// and only skips the downloads.
func install(ctx context.Context, p Params, sb *sandbox, plan Plan, nodeVer, src, tmp string, env []string, res *Result,
	runStep func(step, rel, command string, env []string) error, log *slog.Logger) error {
	command := plan.Install
	// The install folder with its in-repository links resolved: the cache is never unpacked through a link.
	instDir, err := inCheckout(src, plan.InstallDir)
	if err != nil {
		return ferry.Errorf(ferry.EINVALID, "%s leads outside the repository through a link", plan.InstallDir)
	}
	// node_modules alone is enough when it can be cached (npm then downloads nothing), and it halves what a
	// restore writes to disk, which is what a cache hit spends its time on.
	modules := path.Join("src", instDir, "node_modules")
	parts := []string{modules, "cache/corepack"}
	if plan.PackageManager == "yarn" && yarnBerry(src, instDir, plan) {
		// Yarn 2+ with Plug'n'Play has no node_modules: its install is the zip cache (in the global folder)
		// plus the .pnp files and unplugged packages it writes next to package.json.
		in := func(f string) string { return path.Join("src", instDir, f) }
		parts = append(parts, "cache/yarn-berry", in(".pnp.cjs"), in(".pnp.loader.mjs"), in(".yarn/unplugged"), in(".yarn/install-state.gz"))
	}
	if plan.PackageManager == "pnpm" {
		// pnpm's node_modules links into its store, and pnpm reinstalls everything when the store is missing.
		parts = append(parts, "cache/pnpm")
	}
	if _, err := os.Lstat(filepath.Join(sb.hostRoot, filepath.FromSlash(modules))); err == nil {
		log.Info("node_modules is in the repository; only the download cache is cached")
		parts = []string{"cache"}
	}
	var keyOf []byte
	switch {
	case p.CacheScope == CacheScopeFork:
		res.Cache = CacheOff
		log.Info("pull request from a fork: the dependency cache is neither read nor written")
	case plan.Lockfile != "":
		keyOf, err = os.ReadFile(filepath.Join(src, filepath.FromSlash(plan.Lockfile)))
		if err != nil {
			return ferry.Errorf(ferry.EBUILD, "read %s: %w", plan.Lockfile, err)
		}
	default:
		if b, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(instDir), "package.json")); err == nil {
			keyOf = append([]byte("no lockfile\n"), b...)
			parts = []string{"cache"}
			log.Info("no lockfile: only the package manager's download cache is kept, keyed on package.json, so that versions are still resolved afresh")
		}
	}
	key := ""
	if keyOf != nil {
		key = cacheKey(p.Project, p.CacheScope, plan.PackageManager+"\n"+plan.Install, majorOf(nodeVer), keyOf)
		res.cacheKey = key
		state, err := cacheRestore(ctx, p.Storage, key, sb.hostRoot, parts)
		if err != nil {
			return ferry.Wrap(ferry.EUNAVAILABLE, err)
		}
		res.Cache = state
		switch state {
		case CacheHit:
			log.Info("dependency cache restored", "key", key, "scope", p.CacheScope)
			if plan.Lockfile != "" {
				env = append(env, "npm_config_prefer_offline=true")
			}
			rest, isCI := strings.CutPrefix(command, "npm ci")
			if _, err := os.Stat(filepath.Join(sb.hostRoot, filepath.FromSlash(modules))); err == nil && isCI && (rest == "" || rest[0] == ' ') {
				// npm ci would delete the restored node_modules; npm install checks it against the lockfile
				// (which the cache key pins) and only fills what is missing. Flags (an installCommand of
				// "npm ci --ignore-scripts") mean the same to both.
				command = "npm install --prefer-offline --no-audit --no-fund" + rest
				log.Info("node_modules restored for this lockfile: running " + command + " instead of npm ci")
			}
		case CacheMiss:
			log.Info("no dependency cache yet; it is saved after this install", "key", key, "scope", p.CacheScope)
		case CacheCorrupt:
			log.Warn("dependency cache is unreadable; installing without it", "key", key)
		}
		if sb.dropUID {
			if err := chownParts(sb.hostRoot, parts, sb.uid); err != nil {
				return ferry.Errorf(ferry.EINTERNAL, "hand the cache to the sandbox user: %w", err)
			}
		}
	}
	if pm := plan.PackageManager; (pm == "yarn" || pm == "pnpm") && !onPath(pm) && onPath("corepack") {
		cmd := "corepack enable --install-directory " + sb.dir("bin") + " yarn pnpm"
		if err := runStep(StepInstall, "src", cmd, env); err != nil {
			return err
		}
	}
	save := key != "" && res.Cache != CacheHit
	err = runStep(StepInstall, filepath.Join("src", plan.InstallDir), command, env)
	if err != nil && command == "npm ci" && lockfileOutOfSync(err) {
		// What users expect, and what Vercel and Netlify run: npm install, which brings the lockfile in line.
		// The result does not match the lockfile the cache is keyed on, so it is not cached.
		command = "npm install --no-audit --no-fund"
		log.Warn("package-lock.json is out of sync with package.json (npm ci refused it, see above); running " + command +
			" instead. Run npm install and commit package-lock.json to get reproducible, cached installs")
		save = false
		err = runStep(StepInstall, filepath.Join("src", plan.InstallDir), command, env)
	}
	if err != nil {
		return err
	}
	if save {
		size, err := cacheSave(ctx, p.Storage, key, sb.hostRoot, parts, tmp)
		switch {
		case err != nil:
			// The build can go on without a cache; the next one will try again.
			log.Warn("dependency cache not saved", "err", err.Error())
		case size > 0:
			log.Info("dependency cache saved", "key", key, "bytes", size)
		}
	}
	return nil
}

// yarnBerry tells Yarn 2+ (packageManager yarn@2 or later, or a .yarnrc.yml) from Yarn 1.
func yarnBerry(src, instDir string, plan Plan) bool {
	if strings.HasPrefix(plan.Install, "yarn install --immutable") {
		return true
	}
	_, err := os.Lstat(filepath.Join(src, filepath.FromSlash(instDir), ".yarnrc.yml"))
	return err == nil
}

// lockfileOutOfSync recognises npm ci's refusal of a lockfile that does not match package.json.
func lockfileOutOfSync(err error) bool {
	var ce *commandError
	if !errors.As(err, &ce) || ce.TimedOut {
		return false
	}
	for _, l := range append(append([]string(nil), ce.Causes...), ce.Tail...) {
		if strings.Contains(l, "can only install packages when your package.json and package-lock.json") ||
			strings.Contains(l, "from lock file") || strings.Contains(l, "does not satisfy") {
			return true
		}
	}
	return false
}

// buildEnv is the whole environment of the build commands: nothing of ferry's own environment (which may hold
// the webhook secret, the database URL or storage credentials) is passed on.
func buildEnv(sb *sandbox, pm string, project, fromConfig map[string]string) []string {
	env := map[string]string{
		"PATH":                            sb.path,
		"HOME":                            sb.dir("home"),
		"TMPDIR":                          "/tmp",
		"LANG":                            "C.UTF-8",
		"CI":                              "true",
		"FERRY":                           "1",
		"npm_config_update_notifier":      "false",
		"npm_config_fund":                 "false",
		"npm_config_audit":                "false",
		"COREPACK_ENABLE_DOWNLOAD_PROMPT": "0",
	}
	if sb.mode == SandboxNone {
		env["TMPDIR"] = sb.dir("tmp")
		_ = os.MkdirAll(env["TMPDIR"], 0o755)
	}
	if sb.egress != nil {
		for k, v := range proxyEnv() {
			env[k] = v
		}
	}
	for _, kv := range cacheEnv(pm, sb.dir("cache")) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for k, v := range sb.extraEnv {
		env[k] = v
	}
	for k, v := range fromConfig {
		env[k] = v
	}
	for k, v := range project {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func lookupEnv(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// readConfig reads ferry.json at the repository's top, if there is one. It may be a link within the
// repository, never one to a host file.
func readConfig(src string) (*siteconfig.File, error) {
	r, err := os.OpenRoot(src)
	if err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "open checkout: %w", err)
	}
	defer r.Close()
	b, err := r.ReadFile("ferry.json")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, ferry.Errorf(ferry.EINVALID, "read ferry.json: %v", err)
	}
	cfg, err := siteconfig.ParseFile(b)
	if err != nil {
		if ferry.ErrorCode(err) == ferry.EINVALID {
			return nil, err
		}
		return nil, ferry.Errorf(ferry.EINVALID, "ferry.json: %v", err)
	}
	return cfg, nil
}

func nodeVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "node", "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func majorOf(version string) string {
	v, _, _ := strings.Cut(version, ".")
	return v
}

func onPath(tool string) bool {
	_, err := exec.LookPath(tool)
	return err == nil
}

// checkOutput refuses an output folder that leaves the repository, holds a link that points outside it (the
// build may have planted a link to /etc/passwd or to the host's secrets), or exceeds the size cap. realSrc is
// the checkout's real path as resolved before the build ran, since the build may have replaced the checkout
// with a link to a host folder.
func checkOutput(realSrc, outDir string, maxBytes int64) error {
	realOut, err := filepath.EvalSymlinks(outDir)
	if err != nil || !within(realSrc, realOut) {
		return ferry.Errorf(ferry.EBUILD, "output folder %s resolves outside the repository", outDir)
	}
	var total int64
	err = filepath.WalkDir(outDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(outDir, p)
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(p)
			if err != nil || !within(realOut, target) {
				return ferry.Errorf(ferry.EBUILD, "output file %s is a link that points outside the output folder; links may only point inside it", rel)
			}
			return nil
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
			if total > maxBytes {
				return ferry.Errorf(ferry.ETOOLARGE, "the output folder is larger than the %d-byte limit", maxBytes)
			}
		}
		return nil
	})
	if err != nil && ferry.ErrorCode(err) == ferry.EINTERNAL {
		return ferry.Errorf(ferry.EINTERNAL, "check output folder: %w", err)
	}
	return err
}

// inCheckout resolves rel (slash-separated, inside the checkout at realSrc) through any links and returns the
// real path relative to realSrc. A path that does not exist comes back as it is; one that leads out is an error.
func inCheckout(realSrc, rel string) (string, error) {
	real, err := filepath.EvalSymlinks(filepath.Join(realSrc, filepath.FromSlash(rel)))
	if errors.Is(err, fs.ErrNotExist) {
		return rel, nil
	}
	if err != nil {
		return "", err
	}
	if !within(realSrc, real) {
		return "", fmt.Errorf("%s resolves to %s, outside the checkout", rel, real)
	}
	r, err := filepath.Rel(realSrc, real)
	if err != nil {
		return "", err
	}
	return filepath.ToSlash(r), nil
}

func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && filepath.IsLocal(rel) || rel == "."
}

// chownParts gives restored cache folders to the sandbox user, with the folders that the restore created above
// them (.next for .next/cache, .yarn for .yarn/unplugged), without following links.
func chownParts(root string, parts []string, uid int) error {
	for _, part := range parts {
		if err := chownTree(filepath.Join(root, filepath.FromSlash(part)), uid); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		for d := path.Dir(part); d != "." && d != "src" && d != "/"; d = path.Dir(d) {
			if err := os.Lchown(filepath.Join(root, filepath.FromSlash(d)), uid, uid); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// chownTree gives the workspace to the sandbox user, without following links.
func chownTree(dir string, uid int) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
}

// trackedFolders lists the files git tracks in the checkout and returns a test for "git tracks a file in this
// folder" (slash-separated, relative to the checkout). A checkout without git (a local folder) tracks nothing.
func trackedFolders(ctx context.Context, src, gitHome string) (func(rel string) bool, error) {
	if _, err := os.Stat(filepath.Join(src, ".git")); err != nil {
		return func(string) bool { return false }, nil
	}
	cmd := exec.CommandContext(ctx, "git", "ls-files", "-z")
	cmd.Dir, cmd.Env = src, gitEnv(gitHome, false) // a local command: no proxy needed
	out, err := cmd.Output()
	if err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "list the files git tracks: %w", err)
	}
	dirs := map[string]bool{}
	for _, f := range strings.Split(string(out), "\x00") {
		for d := path.Dir(f); f != "" && d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	return func(rel string) bool { return rel == "." || dirs[path.Clean(rel)] }, nil
}

func round(s float64) float64 { return float64(int64(s*1000+0.5)) / 1000 }
