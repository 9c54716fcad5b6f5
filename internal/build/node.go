package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/ferryhq/ferry/internal/ferry"
)

// semver is a node version: major, minor, patch.
type semver [3]int

func (v semver) String() string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }

func (v semver) less(w semver) bool {
	for i := range v {
		if v[i] != w[i] {
			return v[i] < w[i]
		}
	}
	return false
}

// parseSemver reads "v22.12.0" or "22.12.0"; a pre-release or build suffix is ignored.
func parseSemver(s string) (semver, bool) {
	v, n, err := parsePartial(strings.TrimPrefix(strings.TrimSpace(s), "v"))
	return v, err == nil && n == 3
}

// comparator is one "op version" test; a nodeRange is an OR of ANDs of them, like npm's semver ranges.
type comparator struct {
	op string // one of < <= > >= =
	v  semver
}

type nodeRange [][]comparator

// maxRangeLen bounds what parseNodeRange reads: engines.node and nodeVersion are short.
const maxRangeLen = 256

// parseNodeRange parses the npm semver range grammar as engines.node uses it: "||" alternatives of
// space-separated comparators (<, <=, >, >=, =), partial versions ("22", "22.x", "*"), tilde and caret ranges
// and hyphen ranges ("18 - 22"). Pre-release tags, which node releases never carry, are ignored.
func parseNodeRange(s string) (nodeRange, error) {
	if len(s) > maxRangeLen {
		return nil, errors.New("too long")
	}
	var r nodeRange
	for _, alt := range strings.Split(s, "||") {
		set, err := parseRangeSet(strings.TrimSpace(alt))
		if err != nil {
			return nil, err
		}
		r = append(r, set)
	}
	return r, nil
}

var opSpaceRe = regexp.MustCompile(`(<=|>=|<|>|=|~>|~|\^)\s+`)

func parseRangeSet(s string) ([]comparator, error) {
	s = opSpaceRe.ReplaceAllString(s, "$1")
	f := strings.Fields(s)
	if len(f) == 3 && f[1] == "-" {
		lo, _, err := parsePartial(f[0])
		if err != nil {
			return nil, err
		}
		hi, n, err := parsePartial(f[2])
		if err != nil {
			return nil, err
		}
		set := []comparator{{">=", lo}}
		return append(set, upper("<=", hi, n)...), nil
	}
	set := []comparator{}
	for _, t := range f {
		c, err := parseComparator(t)
		if err != nil {
			return nil, err
		}
		set = append(set, c...)
	}
	return set, nil
}

// upper is the comparators for "op P" where op is < or <= and P may be partial.
func upper(op string, v semver, n int) []comparator {
	switch {
	case n == 0 && op == "<=":
		return nil
	case n == 0:
		return []comparator{{"<", semver{0, 0, 0}}}
	case n == 3:
		return []comparator{{op, v}}
	case op == "<":
		return []comparator{{"<", v}}
	case n == 2:
		return []comparator{{"<", semver{v[0], v[1] + 1, 0}}}
	}
	return []comparator{{"<", semver{v[0] + 1, 0, 0}}}
}

func parseComparator(t string) ([]comparator, error) {
	op := ""
	for _, o := range []string{"<=", ">=", "~>", "<", ">", "=", "~", "^"} {
		if strings.HasPrefix(t, o) {
			op, t = o, t[len(o):]
			break
		}
	}
	v, n, err := parsePartial(t)
	if err != nil {
		return nil, err
	}
	next := func(i int) semver { // the first version above the partial's last given part
		w := v
		w[i]++
		for j := i + 1; j < 3; j++ {
			w[j] = 0
		}
		return w
	}
	switch op {
	case "", "=":
		if n == 0 {
			return nil, nil
		}
		if n == 3 {
			return []comparator{{"=", v}}, nil
		}
		return []comparator{{">=", v}, {"<", next(n - 1)}}, nil
	case ">=":
		return []comparator{{">=", v}}, nil
	case ">":
		if n == 0 {
			return []comparator{{"<", semver{}}}, nil
		}
		if n == 3 {
			return []comparator{{">", v}}, nil
		}
		return []comparator{{">=", next(n - 1)}}, nil
	case "<", "<=":
		return upper(op, v, n), nil
	case "~", "~>":
		if n == 0 {
			return nil, nil
		}
		if n == 1 {
			return []comparator{{">=", v}, {"<", next(0)}}, nil
		}
		return []comparator{{">=", v}, {"<", next(1)}}, nil
	case "^":
		switch {
		case n == 0:
			return nil, nil
		case v[0] > 0 || n == 1:
			return []comparator{{">=", v}, {"<", next(0)}}, nil
		case v[1] > 0 || n == 2:
			return []comparator{{">=", v}, {"<", next(1)}}, nil
		}
		return []comparator{{">=", v}, {"<", next(2)}}, nil
	}
	return nil, fmt.Errorf("unknown operator in %q", t)
}

// parsePartial reads "22", "22.12", "22.12.0", "22.x", "*", with an optional v; n is how many parts were given.
func parsePartial(s string) (v semver, n int, err error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "v"), "=")
	if i := strings.IndexAny(s, "-+"); i > 0 {
		s = s[:i]
	}
	if s == "" {
		return v, 0, errors.New("empty version")
	}
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return v, 0, fmt.Errorf("version %q has more than three parts", s)
	}
	for i, p := range parts {
		if p == "x" || p == "X" || p == "*" {
			return v, i, nil
		}
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 || x > 1<<20 || (len(p) > 1 && p[0] == '0') {
			return v, 0, fmt.Errorf("version %q: %q is not a number", s, p)
		}
		v[i] = x
		n = i + 1
	}
	return v, n, nil
}

func (r nodeRange) satisfiedBy(v semver) bool {
	for _, set := range r {
		ok := true
		for _, c := range set {
			switch c.op {
			case "<":
				ok = v.less(c.v)
			case "<=":
				ok = !c.v.less(v)
			case ">":
				ok = c.v.less(v)
			case ">=":
				ok = !v.less(c.v)
			case "=":
				ok = v == c.v
			}
			if !ok {
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// best picks from versions the newest release of the oldest major line that the range allows: "^22.19 ||
// >=24" gives the latest 22, the most conservative choice that still gets fixes, and one that most sites share.
func (r nodeRange) best(versions []string) (semver, bool) {
	var top semver
	found := false
	for _, s := range versions {
		v, ok := parseSemver(s)
		if !ok || !r.satisfiedBy(v) {
			continue
		}
		if !found || v[0] < top[0] || v[0] == top[0] && top.less(v) {
			top, found = v, true
		}
	}
	return top, found
}

// allowsMajorBelow tells whether the range may allow a release of a major line older than major, probing the
// first and a far release of each.
func (r nodeRange) allowsMajorBelow(major int) bool {
	for m := 0; m < major; m++ {
		if r.satisfiedBy(semver{m, 0, 0}) || r.satisfiedBy(semver{m, 1 << 20, 1 << 20}) {
			return true
		}
	}
	return false
}

// nodePackage is the npm package that ships this machine's node build (bin/node and nothing else).
func nodePackage() (string, error) {
	arch := map[string]string{"amd64": "x64", "arm64": "arm64", "ppc64le": "ppc64", "s390x": "s390x"}[runtime.GOARCH]
	if runtime.GOOS != "linux" || arch == "" {
		return "", fmt.Errorf("no node package for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	return "node-linux-" + arch, nil
}

// nodeTool is the node that a build runs with.
type nodeTool struct {
	Version string // "22.12.0", or "" when node is not installed
	BinDir  string // the folder to put first on PATH, "" for the host's node
	Prefix  string // the folder to bind read-only into the sandbox, "" for the host's node
}

// resolveNode decides which node runs the build: the builder's own when it satisfies nodeVersion (ferry.json)
// or else engines.node (package.json and the framework's package); otherwise the latest release of the oldest
// major line that does, fetched once into toolCache
// (as the npm package that ships node builds) and reused by later builds. With no toolCache, or when the
// fetch fails, a mismatch fails the build at once, naming the version needed and the one installed.
func resolveNode(ctx context.Context, plan Plan, toolCache string, from origin, log *slog.Logger) (nodeTool, error) {
	have := strings.TrimPrefix(nodeVersion(ctx), "v")
	type need struct {
		what, want string
		r          nodeRange
	}
	var needs []need
	switch {
	case plan.NodeVersion != "":
		// The user's choice wins over what the packages declare.
		needs = append(needs, need{what: from("nodeVersion"), want: plan.NodeVersion})
	default:
		if plan.EnginesNode != "" {
			needs = append(needs, need{what: "package.json engines.node", want: plan.EnginesNode})
		}
		frameworkNode := plan.FrameworkNode
		if frameworkNode == "" && plan.FrameworkVersion != "" && plan.Framework != nil {
			r, err := lookupEngines(ctx, toolCache, plan.Framework.pkg, plan.FrameworkVersion)
			if err != nil {
				// The install still checks what it can (Yarn 1 refuses an engine mismatch), so go on.
				log.Warn(fmt.Sprintf("could not look up engines.node of %s@%s: %v", plan.Framework.pkg, plan.FrameworkVersion, err))
			}
			frameworkNode = r
		}
		if frameworkNode != "" && plan.Framework != nil {
			needs = append(needs, need{what: plan.Framework.pkg + "'s engines.node", want: frameworkNode})
		}
	}
	if len(needs) == 0 {
		if plan.PackageManager != "" && have == "" {
			return nodeTool{}, ferry.Errorf(ferry.EINTERNAL, "node is not installed on this builder")
		}
		if have != "" && plan.PackageManager != "" {
			log.Info("node v" + have)
		}
		return nodeTool{Version: have}, nil
	}
	var all nodeRange // the intersection: each alternative of one range ANDed with each of the others
	var names []string
	for i := range needs {
		r, err := parseNodeRange(needs[i].want)
		if err != nil {
			return nodeTool{}, ferry.Errorf(ferry.EINVALID, "%s %q is not a version range: %v", needs[i].what, needs[i].want, err)
		}
		needs[i].r = r
		names = append(names, fmt.Sprintf("%s %q", needs[i].what, needs[i].want))
		if i == 0 {
			all = r
			continue
		}
		var next nodeRange
		for _, a := range all {
			for _, b := range r {
				next = append(next, append(append([]comparator(nil), a...), b...))
			}
		}
		all = next
	}
	what := strings.Join(names, " and ")
	if v, ok := parseSemver(have); ok && all.satisfiedBy(v) {
		log.Info(fmt.Sprintf("node v%s (satisfies %s)", have, what))
		return nodeTool{Version: have}, nil
	}
	installed := "no node"
	if have != "" {
		installed = "node v" + have
	}
	if toolCache == "" {
		return nodeTool{}, ferry.Errorf(ferry.EINVALID, "%s: this builder has %s and no tool cache to fetch another (ferry build --tool-cache); "+
			"set nodeVersion in ferry.json to a version it has, or give the builder a tool cache", what, installed)
	}
	log.Info(fmt.Sprintf("%s, and this builder has %s: providing a node that satisfies it", what, installed))
	t, err := fetchNode(ctx, toolCache, all, log)
	if err != nil {
		if ferry.ErrorCode(err) == ferry.EBUILD {
			return nodeTool{}, ferry.Errorf(ferry.EINVALID, "%s, which this builder (%s) does not satisfy: %v", what, installed, err)
		}
		return nodeTool{}, err
	}
	log.Info(fmt.Sprintf("node v%s from the tool cache (satisfies %s)", t.Version, what))
	return t, nil
}

// fetchNode returns the node release that r.best picks from toolCache/node/<version>, fetching it with npm
// first when it is not there. npm checks the package's integrity against the registry's.
func fetchNode(ctx context.Context, toolCache string, r nodeRange, log *slog.Logger) (nodeTool, error) {
	pkg, err := nodePackage()
	if err != nil {
		return nodeTool{}, ferry.Errorf(ferry.EBUILD, "%v", err)
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return nodeTool{}, ferry.Errorf(ferry.EINTERNAL, "npm is needed to fetch node builds: %w", err)
	}
	// A release already in the cache is enough when it satisfies the range: no registry round trip.
	var cached []string
	if entries, err := os.ReadDir(filepath.Join(toolCache, "node")); err == nil {
		for _, e := range entries {
			if _, err := os.Stat(filepath.Join(toolCache, "node", e.Name(), "bin", "node")); err == nil {
				cached = append(cached, e.Name())
			}
		}
	}
	v, ok := r.best(cached)
	if ok && r.allowsMajorBelow(v[0]) {
		ok = false // an older major line may be allowed: the registry says which release best picks
	}
	if !ok {
		view := exec.CommandContext(ctx, npm, "view", pkg, "versions", "--json")
		view.Env = npmHostEnv()
		out, err := view.Output()
		if err != nil {
			return nodeTool{}, ferry.Errorf(ferry.EUNAVAILABLE, "list %s versions with npm: %w", pkg, err)
		}
		var versions []string
		if err := json.Unmarshal(out, &versions); err != nil {
			return nodeTool{}, ferry.Errorf(ferry.EUNAVAILABLE, "list %s versions with npm: %w", pkg, err)
		}
		if v, ok = r.best(versions); !ok {
			return nodeTool{}, ferry.Errorf(ferry.EBUILD, "no node release satisfies it")
		}
	}
	dir := filepath.Join(toolCache, "node", v.String())
	t := nodeTool{Version: v.String(), BinDir: filepath.Join(dir, "bin"), Prefix: dir}
	if _, err := os.Stat(filepath.Join(t.BinDir, "node")); err == nil {
		return t, nil
	}
	if err := os.MkdirAll(filepath.Join(toolCache, "node"), 0o755); err != nil {
		return nodeTool{}, ferry.Errorf(ferry.EINTERNAL, "create tool cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Join(toolCache, "node"), ".fetch-")
	if err != nil {
		return nodeTool{}, ferry.Errorf(ferry.EINTERNAL, "create tool cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	log.Info("fetching " + pkg + "@" + v.String() + " into the tool cache")
	cmd := exec.CommandContext(ctx, npm, "pack", pkg+"@"+v.String(), "--pack-destination", tmp, "--silent", "--ignore-scripts")
	cmd.Dir, cmd.Env = tmp, npmHostEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return nodeTool{}, ferry.Errorf(ferry.EUNAVAILABLE, "fetch %s@%s with npm: %w: %s", pkg, v, err, strings.TrimSpace(string(out)))
	}
	tgz := filepath.Join(tmp, pkg+"-"+v.String()+".tgz")
	stage := filepath.Join(tmp, v.String())
	if err := unpackNode(tgz, stage); err != nil {
		return nodeTool{}, ferry.Errorf(ferry.EUNAVAILABLE, "unpack %s@%s: %w", pkg, v, err)
	}
	if err := os.Chmod(stage, 0o755); err != nil {
		return nodeTool{}, ferry.Errorf(ferry.EINTERNAL, "unpack node: %w", err)
	}
	// Another build may have fetched the same release meanwhile: either copy is whole, so keep theirs.
	if err := os.Rename(stage, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(t.BinDir, "node")); serr != nil {
			return nodeTool{}, ferry.Errorf(ferry.EINTERNAL, "install node into the tool cache: %w", err)
		}
	}
	return t, nil
}

// lookupEngines returns engines.node of pkg@version as the npm registry that the builder's npm is configured
// with publishes it ("" when the package declares none). Yarn's lockfiles pin versions but not engines, so
// this is how a Yarn site's framework requirement is known before its install. The answer never changes for
// a published version, so it is kept in toolCache (when there is one) and asked for once.
func lookupEngines(ctx context.Context, toolCache, pkg, version string) (string, error) {
	if _, ok := parseSemver(version); !ok || !validPackageName(pkg) {
		return "", fmt.Errorf("%q@%q is not a package version", pkg, version)
	}
	var cached string
	if toolCache != "" {
		cached = filepath.Join(toolCache, "engines", strings.ReplaceAll(pkg, "/", "+")+"@"+version+".json")
		if b, err := os.ReadFile(cached); err == nil {
			var r string
			if json.Unmarshal(b, &r) == nil {
				return r, nil
			}
		}
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, npm, "view", pkg+"@"+version, "engines", "--json")
	cmd.Env = npmHostEnv()
	out, err := cmd.Output()
	if err != nil {
		// With --json, npm reports its error as JSON on stdout ({"error": {"code": "E404", ...}}).
		var e struct {
			Error struct{ Code, Summary string } `json:"error"`
		}
		if json.Unmarshal(out, &e) == nil && e.Error.Code != "" {
			return "", fmt.Errorf("npm view: %s %s: %w", e.Error.Code, e.Error.Summary, err)
		}
		return "", fmt.Errorf("npm view: %w", err)
	}
	var engines struct {
		Node string `json:"node"`
	}
	if len(bytes.TrimSpace(out)) > 0 {
		if err := json.Unmarshal(out, &engines); err != nil {
			return "", fmt.Errorf("npm view: %w", err)
		}
	}
	r := strings.TrimSpace(engines.Node)
	if cached != "" {
		b, _ := json.Marshal(r)
		// Losing this write only costs another look-up; a partial file is never read as an answer.
		if os.MkdirAll(filepath.Dir(cached), 0o755) == nil {
			if tmp, err := os.CreateTemp(filepath.Dir(cached), ".engines-"); err == nil {
				_, werr := tmp.Write(b)
				if cerr := tmp.Close(); werr == nil && cerr == nil {
					_ = os.Rename(tmp.Name(), cached)
				}
				os.Remove(tmp.Name())
			}
		}
	}
	return r, nil
}

// validPackageName accepts npm package names ("astro", "@sveltejs/kit"): nothing npm would read as a flag,
// a path or a URL.
func validPackageName(s string) bool {
	return packageNameRe.MatchString(s) && len(s) <= 214
}

var packageNameRe = regexp.MustCompile(`^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$`)

// npmHostEnv is the environment of ferry's own npm calls: the operator's npm, proxy and CA settings, and
// nothing else of ferry's environment, which may hold its secrets.
func npmHostEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH" || k == "HOME" || k == "LANG" || k == "TMPDIR",
			strings.HasPrefix(strings.ToLower(k), "npm_config_"),
			strings.EqualFold(k, "https_proxy") || strings.EqualFold(k, "http_proxy") || strings.EqualFold(k, "no_proxy"),
			contains(caEnv, k):
			env = append(env, kv)
		}
	}
	return append(env, "npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false")
}

// unpackNode takes bin/node out of the package tarball into dir/bin/node; nothing else in it is needed.
func unpackNode(tgz, dir string) error {
	f, err := os.Open(tgz)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return errors.New("the package has no bin/node")
		}
		if err != nil {
			return err
		}
		if h.Name != "package/bin/node" || h.Typeflag != tar.TypeReg {
			continue
		}
		if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
			return err
		}
		out, err := os.OpenFile(filepath.Join(dir, "bin", "node"), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, io.LimitReader(tr, 1<<30))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		return err
	}
}

// DefaultToolCache is where ferry build keeps the node releases it fetches: a folder the sandbox user can
// traverse, since bubblewrap binds it as that user.
func DefaultToolCache() string {
	if os.Geteuid() == 0 {
		return "/var/cache/ferry/tools"
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "ferry", "tools")
	}
	return ""
}
