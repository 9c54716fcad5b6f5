package build

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/siteconfig"
)

// Plan is what a build will do in one checked-out repository: where it runs, which commands, and where the
// output lands. Detect fills it from ferry.json first and from the repository's files for the rest; Reasons
// says why each choice was made, and the build logs them so that users can tell what to configure.
type Plan struct {
	// Root is the folder the build runs in, relative to the repository ("." or rootDirectory).
	Root string `json:"root"`
	// PackageManager is "npm", "yarn", "pnpm", or "" for a site with no package.json.
	PackageManager string `json:"packageManager,omitempty"`
	// Lockfile is the lockfile's path relative to the repository ("" if none); its hash keys the dependency cache.
	Lockfile string `json:"lockfile,omitempty"`
	// InstallDir is where the install command runs, relative to the repository: the lockfile's folder, which in
	// a workspace monorepo is above Root.
	InstallDir string `json:"installDir,omitempty"`
	// Install is a shell command ("" to skip).
	Install string `json:"install,omitempty"`
	// Build is a shell command run in Root ("" to skip).
	Build string `json:"build,omitempty"`
	// Output is the output folder relative to Root, or "" to look for OutputCandidates after the build.
	Output string `json:"output,omitempty"`
	// OutputCandidates are tried in order once the build is done when Output is empty.
	OutputCandidates []string `json:"outputCandidates,omitempty"`
	// Env is ferry.json's env (not secret; the project's secret env vars come from the caller).
	Env map[string]string `json:"env,omitempty"`
	// NodeVersion is ferry.json's nodeVersion, checked against the builder's node by the build.
	NodeVersion string `json:"nodeVersion,omitempty"`
	// EnginesNode is package.json's engines.node: the node versions the site says it needs, used when
	// nodeVersion is not set.
	EnginesNode string `json:"enginesNode,omitempty"`
	// FrameworkNode is engines.node of the framework's own package as the lockfile records it (Nuxt 4 needs
	// node 22): a build on an older node would fail half-way through its install.
	FrameworkNode string `json:"frameworkNode,omitempty"`
	// FrameworkVersion is the version of the framework's package that yarn.lock pins. Yarn's lockfiles do not
	// record engines, so the build looks up that version's engines.node before installing.
	FrameworkVersion string `json:"frameworkVersion,omitempty"`
	// Framework is the detected framework, or nil.
	Framework *Framework `json:"framework,omitempty"`
	// outputSet says that Output came from the user (outputDirectory), who may publish any folder.
	outputSet bool
	// Reasons are human sentences, one per decision, in the order they were made.
	Reasons []string `json:"reasons"`
}

// DefaultOutputCandidates are the folders that common tools build into when no framework is recognised: Vite
// and Astro (dist), Create React App (build), Next.js export (out), Gatsby and Hugo (public). A candidate that
// git tracks is source (Next's public/), not output, and is passed over.
var DefaultOutputCandidates = []string{"dist", "build", "out", "public"}

// packageJSON is the part of package.json that detection reads.
type packageJSON struct {
	Scripts         map[string]string `json:"scripts"`
	PackageManager  string            `json:"packageManager"`
	Dependencies    map[string]any    `json:"dependencies"`
	DevDependencies map[string]any    `json:"devDependencies"`
	Engines         map[string]any    `json:"engines"`
}

// deps is dependencies and devDependencies together: frameworks sit in either.
func (p *packageJSON) deps() map[string]any {
	m := make(map[string]any, len(p.Dependencies)+len(p.DevDependencies))
	for k, v := range p.Dependencies {
		m[k] = v
	}
	for k, v := range p.DevDependencies {
		m[k] = v
	}
	return m
}

// Detect decides how to build the repository checked out at dir. cfg is its parsed ferry.json, or nil.
// Errors are the user's (EINVALID): a rootDirectory that escapes or does not exist, an unreadable package.json.
// It reads files only and runs nothing.
func Detect(dir string, cfg *siteconfig.File) (Plan, error) {
	return detect(dir, cfg, fromFerryJSON)
}

// origin names where a setting came from ("ferry.json buildCommand", "buildCommand override"), for the
// reasons and errors that detection writes, so that users know which one to change.
type origin func(key string) string

func fromFerryJSON(key string) string { return "ferry.json " + key }

// overlay returns base with every field that over sets put in its place: a caller's overrides (ferry build's
// flags, the Action's inputs) win over ferry.json key by key, and env vars name by name. Either may be nil; the
// result is nil only when both are. It also returns the origin of each key, for detection's messages.
func overlay(base, over *siteconfig.File) (*siteconfig.File, origin) {
	if over == nil {
		return base, fromFerryJSON
	}
	var c siteconfig.File
	if base != nil {
		c = *base
	}
	set := map[string]bool{}
	str := func(key string, dst *string, v string) {
		if v != "" {
			*dst, set[key] = v, true
		}
	}
	str("rootDirectory", &c.RootDirectory, over.RootDirectory)
	str("outputDirectory", &c.OutputDirectory, over.OutputDirectory)
	str("nodeVersion", &c.NodeVersion, over.NodeVersion)
	strp := func(key string, dst **string, v *string) {
		if v != nil {
			*dst, set[key] = v, true
		}
	}
	strp("installCommand", &c.InstallCommand, over.InstallCommand)
	strp("buildCommand", &c.BuildCommand, over.BuildCommand)
	boolp := func(key string, dst **bool, v *bool) {
		if v != nil {
			*dst, set[key] = v, true
		}
	}
	boolp("spa", &c.SPA, over.SPA)
	boolp("cleanUrls", &c.CleanURLs, over.CleanURLs)
	boolp("trailingSlash", &c.TrailingSlash, over.TrailingSlash)
	if len(over.Env) > 0 {
		env := make(map[string]string, len(c.Env)+len(over.Env))
		for k, v := range c.Env {
			env[k] = v
		}
		for k, v := range over.Env {
			env[k] = v
		}
		c.Env, set["env"] = env, true
	}
	if len(set) == 0 {
		return base, fromFerryJSON
	}
	return &c, func(key string) string {
		if set[key] {
			return key + " override"
		}
		return fromFerryJSON(key)
	}
}

func detect(dir string, cfg *siteconfig.File, from origin) (Plan, error) {
	if cfg == nil {
		cfg = &siteconfig.File{}
	}
	p := Plan{Root: ".", Env: cfg.Env, NodeVersion: cfg.NodeVersion}
	why := func(format string, args ...any) { p.Reasons = append(p.Reasons, fmt.Sprintf(format, args...)) }

	if cfg.RootDirectory != "" {
		root, err := cleanRel(cfg.RootDirectory)
		if err != nil {
			return p, ferry.Errorf(ferry.EINVALID, "%s %q: %v", from("rootDirectory"), cfg.RootDirectory, err)
		}
		if fi, err := os.Stat(filepath.Join(dir, root)); err != nil || !fi.IsDir() {
			return p, ferry.Errorf(ferry.EINVALID, "%s %q: no such folder in the repository", from("rootDirectory"), cfg.RootDirectory)
		}
		p.Root = root
		why("root directory %s (%s)", root, from("rootDirectory"))
	}

	var pkg *packageJSON
	if b, err := os.ReadFile(filepath.Join(dir, p.Root, "package.json")); err == nil {
		pkg = &packageJSON{}
		if err := json.Unmarshal(b, pkg); err != nil {
			return p, ferry.Errorf(ferry.EINVALID, "%s: invalid JSON: %v", path.Join(p.Root, "package.json"), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return p, ferry.Errorf(ferry.EINVALID, "read %s: %v", path.Join(p.Root, "package.json"), err)
	}

	if pkg != nil {
		if v, ok := pkg.Engines["node"].(string); ok && strings.TrimSpace(v) != "" {
			p.EnginesNode = strings.TrimSpace(v)
		}
		fw, err := detectFramework(dir, p.Root, pkg)
		if err != nil && cfg.OutputDirectory == "" {
			return p, err
		}
		if fw != nil {
			p.Framework = fw
			why("framework %s (%s)", fw.Name, fw.Why)
		}
	}

	// The package manager comes from the nearest lockfile at or above Root: workspace monorepos keep one
	// lockfile at the top and install from there.
	if pkg != nil {
		p.PackageManager, p.Lockfile, p.InstallDir = findLockfile(dir, p.Root)
		switch {
		case p.Lockfile != "":
			why("package manager %s (found %s)", p.PackageManager, p.Lockfile)
		default:
			p.PackageManager, p.InstallDir = "npm", p.Root
			if strings.HasPrefix(pkg.PackageManager, "yarn@") || strings.HasPrefix(pkg.PackageManager, "pnpm@") {
				p.PackageManager = strings.SplitN(pkg.PackageManager, "@", 2)[0]
			}
			why("package manager %s (package.json without a lockfile)", p.PackageManager)
		}
	}

	if p.Framework != nil && p.Lockfile != "" {
		spec, _ := pkg.deps()[p.Framework.pkg].(string)
		d, err := lockedFramework(dir, p.Lockfile, p.Root, p.Framework.pkg, spec)
		switch {
		case errors.Is(err, errNotLocked):
		case err != nil:
			why("%s's node requirement is unknown: %s: %v", p.Framework.Name, p.Lockfile, err)
		case d.Node != "":
			p.FrameworkNode = d.Node
			why("%s needs node %s (engines.node of %s %s in %s)", p.Framework.Name, d.Node, p.Framework.pkg, d.Version, p.Lockfile)
		case path.Base(p.Lockfile) == "yarn.lock":
			p.FrameworkVersion = d.Version
			why("%s %s %s (%s, which does not record engines: its engines.node is looked up before the install)",
				p.Framework.Name, p.Framework.pkg, d.Version, p.Lockfile)
		}
	}

	switch {
	case cfg.InstallCommand != nil:
		p.Install = *cfg.InstallCommand
		why("install command %q (%s)", p.Install, from("installCommand"))
		if p.InstallDir == "" {
			p.InstallDir = p.Root
		}
	case pkg == nil:
		why("no install (no package.json in %s: a static site)", p.Root)
	default:
		p.Install = installCommand(p.PackageManager, p.Lockfile != "", pkg.PackageManager)
		why("install command %q (default for %s)", p.Install, p.PackageManager)
	}

	switch {
	case cfg.BuildCommand != nil:
		p.Build = *cfg.BuildCommand
		why("build command %q (%s)", p.Build, from("buildCommand"))
	case pkg != nil && pkg.Scripts["build"] != "":
		p.Build = p.PackageManager + " run build"
		why("build command %q (package.json scripts.build: %q)", p.Build, pkg.Scripts["build"])
	case pkg != nil && p.Framework != nil && p.Framework.Script != "":
		p.Build = p.PackageManager + " run " + p.Framework.Script
		why("build command %q (package.json has no scripts.build; %s builds with scripts.%s: %q)", p.Build, p.Framework.Name, p.Framework.Script, pkg.Scripts[p.Framework.Script])
	case pkg != nil:
		why("no build command (package.json has no scripts.build)")
	default:
		why("no build command (no package.json)")
	}

	switch {
	case cfg.OutputDirectory != "":
		out, err := cleanRel(cfg.OutputDirectory)
		if err != nil {
			return p, ferry.Errorf(ferry.EINVALID, "%s %q: %v", from("outputDirectory"), cfg.OutputDirectory, err)
		}
		p.Output, p.outputSet = out, true
		why("output folder %s (%s)", out, from("outputDirectory"))
	case p.Build != "" && p.Framework != nil:
		p.Output = p.Framework.Output
		why("output folder %s (%s)", p.Output, p.Framework.Name)
	case p.Build == "" && pkg != nil && cfg.BuildCommand == nil:
		// A package.json with nothing to build: after the install, the root holds node_modules and the
		// lockfile, so it is never published by default.
		if fileExists(filepath.Join(dir, p.Root, "public", "index.html")) {
			p.Output = "public"
			why("output folder public (no build; public/index.html exists)")
			break
		}
		return p, ferry.Errorf(ferry.EBUILD, "%s has no scripts.build and no framework Ferry knows, and Ferry never publishes the repository itself "+
			"(it would hold node_modules and your sources) by default: set buildCommand and outputDirectory in ferry.json "+
			"(or the dashboard's overrides); outputDirectory \".\" publishes %s as it is", path.Join(p.Root, "package.json"), p.Root)
	case p.Build == "":
		// Nothing is built and there is no package.json, so the output is what the repository holds: public/
		// if it has a site there, else the root itself (a plain static site).
		if fileExists(filepath.Join(dir, p.Root, "public", "index.html")) {
			p.Output = "public"
			why("output folder public (no build; public/index.html exists)")
		} else {
			p.Output = "."
			why("output folder %s itself (no build: a plain static site)", p.Root)
		}
	default:
		p.OutputCandidates = DefaultOutputCandidates
		why("output folder: the first of %s that the build creates", strings.Join(DefaultOutputCandidates, ", "))
	}
	return p, nil
}

// findLockfile looks for a lockfile in root and then in each parent up to the repository's top.
func findLockfile(dir, root string) (manager, lockfile, installDir string) {
	for d := root; ; d = path.Dir(d) {
		for _, c := range []struct{ file, pm string }{
			{"pnpm-lock.yaml", "pnpm"}, {"yarn.lock", "yarn"}, {"package-lock.json", "npm"}, {"npm-shrinkwrap.json", "npm"},
		} {
			if fileExists(filepath.Join(dir, d, c.file)) {
				return c.pm, path.Join(d, c.file), d
			}
		}
		if d == "." {
			return "", "", ""
		}
	}
}

// installCommand is each package manager's reproducible install: it installs exactly the lockfile, and fails
// when package.json and the lockfile disagree rather than silently changing versions.
func installCommand(pm string, locked bool, packageManagerField string) string {
	switch pm {
	case "pnpm":
		if locked {
			return "pnpm install --frozen-lockfile"
		}
		return "pnpm install"
	case "yarn":
		berry := strings.HasPrefix(packageManagerField, "yarn@") && !strings.HasPrefix(packageManagerField, "yarn@1")
		switch {
		case locked && berry:
			return "yarn install --immutable"
		case locked:
			return "yarn install --frozen-lockfile"
		}
		return "yarn install"
	}
	if locked {
		return "npm ci"
	}
	return "npm install"
}

// ResolveOutput returns the output folder relative to the repository once the build has run. Links are
// followed (Nuxt's dist is a link to .output/public); checkOutput then refuses any that lead out of the
// checkout. tracked reports whether git tracks files under a folder of the checkout (nil: nothing is tracked):
// such a folder is the user's source (Next's public/), so it is never picked by default.
func (p Plan) ResolveOutput(dir string, tracked func(rel string) bool) (string, error) {
	if tracked == nil {
		tracked = func(string) bool { return false }
	}
	isDir := func(rel string) bool {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel)))
		return err == nil && fi.IsDir()
	}
	var out string
	switch {
	case p.Output != "":
		out = path.Join(p.Root, p.Output)
		if !isDir(out) {
			if p.Framework != nil && p.Framework.serverHint != "" && !p.outputSet {
				return "", ferry.Errorf(ferry.EBUILD, "%s", p.Framework.serverHint)
			}
			return "", ferry.Errorf(ferry.EBUILD, "output folder %s does not exist after the build; set outputDirectory in ferry.json (or the dashboard's Output directory override) to the folder your build writes", out)
		}
		if !p.outputSet && p.Build != "" && tracked(out) {
			return "", ferry.Errorf(ferry.EBUILD, "output folder %s is tracked by git, so it is source, not what the build wrote; "+
				"set outputDirectory in ferry.json (or the dashboard's Output directory override) to the folder your build writes", out)
		}
	default:
		var skipped []string
		for _, c := range p.OutputCandidates {
			rel := path.Join(p.Root, c)
			if !isDir(rel) {
				continue
			}
			if tracked(rel) {
				skipped = append(skipped, rel)
				continue
			}
			out = rel
			break
		}
		if out == "" {
			msg := fmt.Sprintf("the build created none of the usual output folders (%s) in %s", strings.Join(p.OutputCandidates, ", "), p.Root)
			if len(skipped) > 0 {
				msg += fmt.Sprintf(" (%s exists but git tracks it: it is source, not build output)", strings.Join(skipped, ", "))
			}
			return "", ferry.Errorf(ferry.EBUILD, "%s; set outputDirectory in ferry.json (or the dashboard's Output directory override) to the folder your build writes", msg)
		}
	}
	if !p.outputSet && strings.Contains("/"+out+"/", "/node_modules/") {
		return "", ferry.Errorf(ferry.EBUILD, "output folder %s is inside node_modules; set outputDirectory in ferry.json to the folder your build writes", out)
	}
	return out, nil
}

// checkHasPage fails when the output folder out (relative to dir) holds neither index.html nor 404.html: the
// site would answer every request with a 404, which is never what the user meant to publish.
func checkHasPage(dir, out string) error {
	if !fileExists(filepath.Join(dir, filepath.FromSlash(out), "index.html")) && !fileExists(filepath.Join(dir, filepath.FromSlash(out), "404.html")) {
		return ferry.Errorf(ferry.EBUILD, "output folder %s has neither index.html nor 404.html, so the site would have no page to show; "+
			"set outputDirectory in ferry.json (or the dashboard's Output directory override) to the folder your build writes", out)
	}
	return nil
}

// cleanRel accepts a slash-separated path inside the repository and returns it cleaned.
func cleanRel(p string) (string, error) {
	p = strings.TrimSuffix(strings.TrimPrefix(p, "./"), "/")
	if p == "" {
		return ".", nil
	}
	if path.IsAbs(p) || strings.Contains(p, "\\") {
		return "", errors.New("must be a relative path inside the repository")
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", errors.New("must stay inside the repository")
	}
	return c, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
