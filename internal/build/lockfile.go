package build

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// lockedDep is what a lockfile records about one installed dependency: its version, and its engines.node
// where the lockfile keeps it (package-lock.json and pnpm-lock.yaml do; Yarn's lockfiles do not).
type lockedDep struct {
	Version string
	Node    string
}

// maxLockfile bounds what detection reads of a lockfile; real ones are a few MiB.
const maxLockfile = 64 << 20

// errNotLocked says that the lockfile does not hold the dependency.
var errNotLocked = errors.New("not in the lockfile")

// lockedFramework reads what lockfile (relative to the checkout at dir) records about dep as the package in
// root depends on it (spec is the range its package.json asks for, "" when unknown). The lockfile is chosen by
// its name: package-lock.json or npm-shrinkwrap.json (lockfile version 2 and 3), pnpm-lock.yaml (version 6 and
// 9, and 5's keys), or yarn.lock (Yarn 1 and Yarn 2+). A lockfile that cannot be read is an error, so that
// detection can say why the framework's node requirement is unknown; the install then reports it.
func lockedFramework(dir, lockfile, root, dep, spec string) (lockedDep, error) {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(lockfile)))
	if err != nil {
		return lockedDep{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLockfile+1))
	if err != nil {
		return lockedDep{}, err
	}
	if len(b) > maxLockfile {
		return lockedDep{}, fmt.Errorf("larger than %d MiB", maxLockfile>>20)
	}
	// The package's folder relative to the lockfile's: workspaces keep one lockfile at the top.
	rel := root
	if d := path.Dir(lockfile); d != "." {
		rel = strings.TrimPrefix(strings.TrimPrefix(root, d), "/")
	}
	if rel == "" {
		rel = "."
	}
	switch path.Base(lockfile) {
	case "package-lock.json", "npm-shrinkwrap.json":
		return parseNpmLock(b, rel, dep)
	case "pnpm-lock.yaml":
		return parsePnpmLock(b, rel, dep)
	case "yarn.lock":
		if isYarnBerry(b) {
			return parseYarnBerryLock(b, dep, spec)
		}
		return parseYarnV1Lock(b, dep, spec)
	}
	return lockedDep{}, fmt.Errorf("unknown lockfile %s", path.Base(lockfile))
}

// parseNpmLock reads dep from package-lock.json's packages: the copy in the package's own node_modules
// first, then the one hoisted to the lockfile's.
func parseNpmLock(b []byte, rel, dep string) (lockedDep, error) {
	var lock struct {
		LockfileVersion int `json:"lockfileVersion"`
		Packages        map[string]struct {
			Version string          `json:"version"`
			Engines json.RawMessage `json:"engines"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return lockedDep{}, err
	}
	if lock.Packages == nil {
		return lockedDep{}, fmt.Errorf("lockfile version %d has no packages (npm 7 and later write them)", lock.LockfileVersion)
	}
	for _, k := range []string{path.Join(rel, "node_modules", dep), path.Join("node_modules", dep)} {
		pk, ok := lock.Packages[k]
		if !ok {
			continue
		}
		d := lockedDep{Version: pk.Version}
		// engines is an object, but very old packages wrote an array of strings: those say nothing usable.
		var e struct {
			Node string `json:"node"`
		}
		if json.Unmarshal(pk.Engines, &e) == nil {
			d.Node = strings.TrimSpace(e.Node)
		}
		return d, nil
	}
	return lockedDep{}, errNotLocked
}

// pnpmDep is an importer's dependency: {specifier, version} since lockfile version 6, a bare version before.
type pnpmDep struct{ Version string }

func (d *pnpmDep) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		d.Version = n.Value
		return nil
	}
	var v struct {
		Version string `yaml:"version"`
	}
	if err := n.Decode(&v); err != nil {
		return err
	}
	d.Version = v.Version
	return nil
}

type pnpmImporter struct {
	Dependencies         map[string]pnpmDep `yaml:"dependencies"`
	DevDependencies      map[string]pnpmDep `yaml:"devDependencies"`
	OptionalDependencies map[string]pnpmDep `yaml:"optionalDependencies"`
}

// parsePnpmLock reads dep's version from the package's importer (or, for a single project in lockfile
// versions before 9, the top level), and its engines from packages.
func parsePnpmLock(b []byte, rel, dep string) (lockedDep, error) {
	var lock struct {
		pnpmImporter `yaml:",inline"`
		Importers    map[string]pnpmImporter `yaml:"importers"`
		Packages     map[string]struct {
			Engines map[string]string `yaml:"engines"`
		} `yaml:"packages"`
	}
	if err := yaml.Unmarshal(b, &lock); err != nil {
		return lockedDep{}, err
	}
	imp, ok := lock.Importers[rel]
	if !ok && rel == "." && lock.Importers == nil { // before version 9, a single project has no importers
		imp, ok = lock.pnpmImporter, true
	}
	if !ok {
		return lockedDep{}, fmt.Errorf("no importer %q", rel)
	}
	d, ok := imp.Dependencies[dep]
	if !ok {
		if d, ok = imp.DevDependencies[dep]; !ok {
			d, ok = imp.OptionalDependencies[dep]
		}
	}
	if !ok || d.Version == "" {
		return lockedDep{}, errNotLocked
	}
	v := d.Version
	if strings.Contains(strings.TrimPrefix(v, "npm:"), ":") { // link:, file:, workspace: — not from the registry
		return lockedDep{}, errNotLocked
	}
	// "3.2.0(svelte@5.57.3)(vite@8.4.0)": peers, in versions 6 and 9.
	if i := strings.IndexByte(v, '('); i > 0 {
		v = v[:i]
	}
	name := dep
	if i := strings.LastIndex(v, "@"); i > 0 { // an alias: "npm:other@1.0.0" or "other@1.0.0"
		name, v = strings.TrimPrefix(v[:i], "npm:"), v[i+1:]
	} else if i := strings.IndexByte(v, '_'); i > 0 { // "3.2.0_svelte@5.57.3": peers, in version 5
		v = v[:i]
	}
	out := lockedDep{Version: v}
	for _, k := range []string{name + "@" + v, "/" + name + "@" + v, "/" + name + "/" + v} {
		if pk, ok := lock.Packages[k]; ok {
			out.Node = strings.TrimSpace(pk.Engines["node"])
			break
		}
	}
	return out, nil
}

// isYarnBerry tells Yarn 2+'s lockfile (YAML, with __metadata) from Yarn 1's.
func isYarnBerry(b []byte) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		return bytes.HasPrefix(l, []byte("__metadata:"))
	}
	return false
}

// descriptorName is the package name of a lockfile descriptor ("@scope/pkg@npm:^1.2.0" → "@scope/pkg").
func descriptorName(d string) (name, rng string) {
	i := strings.Index(d[min(1, len(d)):], "@")
	if i < 0 {
		return d, ""
	}
	return d[:i+1], d[i+2:]
}

// pickLocked returns the version of the entry that spec resolved to: the one whose descriptors include it,
// or the only version of dep the lockfile holds.
func pickLocked(byDescriptor map[string]string, versions map[string]bool, want string) (lockedDep, error) {
	if v, ok := byDescriptor[want]; ok {
		return lockedDep{Version: v}, nil
	}
	if len(versions) == 1 {
		for v := range versions {
			return lockedDep{Version: v}, nil
		}
	}
	if len(versions) > 1 {
		return lockedDep{}, fmt.Errorf("%d versions and none resolves %q", len(versions), want)
	}
	return lockedDep{}, errNotLocked
}

// parseYarnBerryLock reads dep's version from a Yarn 2+ lockfile, whose keys are descriptors such as
// "astro@npm:^7.3.0" (several joined by ", "). Yarn's lockfile holds no engines.
func parseYarnBerryLock(b []byte, dep, spec string) (lockedDep, error) {
	var lock map[string]struct {
		Version    string `yaml:"version"`
		Resolution string `yaml:"resolution"`
	}
	if err := yaml.Unmarshal(b, &lock); err != nil {
		return lockedDep{}, err
	}
	if !strings.Contains(spec, ":") {
		spec = "npm:" + spec
	}
	byDescriptor, versions := map[string]string{}, map[string]bool{}
	for key, e := range lock {
		if key == "__metadata" {
			continue
		}
		for _, d := range strings.Split(key, ",") {
			d = strings.TrimSpace(d)
			if n, r := descriptorName(d); n == dep && strings.HasPrefix(r, "npm:") && e.Version != "" {
				byDescriptor[d] = e.Version
				versions[e.Version] = true
			}
		}
	}
	return pickLocked(byDescriptor, versions, dep+"@"+spec)
}

// parseYarnV1Lock reads dep's version from a Yarn 1 lockfile: blocks headed by unindented descriptor lines
// (`astro@^7.3.0, astro@^7.0.0:`, names quoted when scoped), each with an indented `version "7.3.5"`. Yarn's
// lockfile holds no engines.
func parseYarnV1Lock(b []byte, dep, spec string) (lockedDep, error) {
	byDescriptor, versions := map[string]string{}, map[string]bool{}
	var current []string // the descriptors of the block being read, when it is dep's
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimRight(sc.Text(), " \r")
		if l == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if l[0] != ' ' {
			if !strings.HasSuffix(l, ":") {
				return lockedDep{}, fmt.Errorf("line %d: %q is neither an entry nor a field", line, l)
			}
			current = current[:0]
			for _, d := range strings.Split(strings.TrimSuffix(l, ":"), ",") {
				d = strings.Trim(strings.TrimSpace(d), `"`)
				if n, _ := descriptorName(d); n == dep {
					current = append(current, d)
				}
			}
			continue
		}
		if len(current) == 0 || strings.HasPrefix(l, "    ") {
			continue
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "version "); ok {
			v = strings.Trim(strings.TrimSpace(v), `"`)
			for _, d := range current {
				byDescriptor[d] = v
			}
			versions[v] = true
		}
	}
	if err := sc.Err(); err != nil {
		return lockedDep{}, fmt.Errorf("line %d: %w", line+1, err)
	}
	return pickLocked(byDescriptor, versions, dep+"@"+spec)
}
