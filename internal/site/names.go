// Package site is the site store: it publishes output folders as immutable, content-addressed deployments,
// moves aliases, and knows the host-name rules by which the proxy finds a deployment
// (docs/architecture.md, "Storage" and "Host names and ids").
package site

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

// ProductionAlias is the alias that <project>.D serves.
const ProductionAlias = "production"

const (
	// MaxLabel is the DNS limit on one label; every host name Ferry makes is one label under the domain.
	MaxLabel = 63
	// MaxProjectName leaves room for "<deployment-id>--" in front of the project, so that every deployment
	// of every valid project has a host name (20 + 2 + 41 = 63). It is 40 to keep one spare character.
	MaxProjectName = 40
	// deploymentIDPrefix starts every deployment id and no alias.
	deploymentIDPrefix = "dpl-"
	// deploymentIDLen is "dpl-" plus 16 base32hex characters (10 bytes: 6 of unix-ms time, 4 random).
	deploymentIDLen = len(deploymentIDPrefix) + 16
)

// lowerBase32Hex keeps the sort order of the bytes it encodes, so deployment ids sort by creation time.
var lowerBase32Hex = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// ValidateProjectName checks that name can be a host label and a storage key segment: lowercase letters,
// digits and single hyphens, starting and ending with a letter or digit, at most MaxProjectName characters.
// A project never contains "--", because "--" separates an alias from its project in host names.
func ValidateProjectName(name string) error {
	if reason := labelProblem(name, MaxProjectName); reason != "" {
		return ferry.Errorf(ferry.EINVALID, "project name %q %s (use at most %d lowercase letters, digits and single hyphens, starting and ending with a letter or digit)", name, reason, MaxProjectName)
	}
	return nil
}

// ValidateAlias checks that alias can name a deployment of project in a host name "<alias>--<project>.D":
// the project's rules, no "dpl-" prefix (that form belongs to deployment ids), and a label that fits in 63
// characters together with the project.
func ValidateAlias(project, alias string) error {
	max := MaxLabel - 2 - len(project)
	if reason := labelProblem(alias, max); reason != "" {
		return ferry.Errorf(ferry.EINVALID, "alias %q %s (with project %q an alias has at most %d lowercase letters, digits and single hyphens, starting and ending with a letter or digit)", alias, reason, project, max)
	}
	if strings.HasPrefix(alias, deploymentIDPrefix) {
		return ferry.Errorf(ferry.EINVALID, "alias %q starts with %q, which is reserved for deployment ids; choose another name", alias, deploymentIDPrefix)
	}
	return nil
}

// labelProblem says what is wrong with s as a name of at most max characters, or "" if nothing is. It does
// not allocate, because ParseHost calls it for every request.
func labelProblem(s string, max int) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > max:
		return "is longer than " + strconv.Itoa(max) + " characters"
	case s[0] == '-' || s[len(s)-1] == '-':
		return "starts or ends with a hyphen"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
			if s[i+1] == '-' { // s does not end with '-', so i+1 is in range
				return `contains "--"`
			}
		default:
			return "contains a character other than a-z, 0-9 and -"
		}
	}
	return ""
}

// NewDeploymentID returns a fresh id: "dpl-" and 16 base32hex characters of the unix-millisecond time (6
// bytes) and 4 random bytes. Ids sort by creation time, and no alias can take their form.
func NewDeploymentID() string { return NewDeploymentIDAt(time.Now()) }

// NewDeploymentIDAt is NewDeploymentID for a deployment created at t: for imports of older sites, and for tests
// of what depends on a deployment's age (retention).
func NewDeploymentIDAt(t time.Time) string {
	var b [10]byte
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(b[:6], ms[2:])
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (Go 1.24+)
	return deploymentIDPrefix + lowerBase32Hex.EncodeToString(b[:])
}

// IsDeploymentID reports whether name has the fixed form of a deployment id (no alias can take it).
func IsDeploymentID(name string) bool {
	if len(name) != deploymentIDLen || !strings.HasPrefix(name, deploymentIDPrefix) {
		return false
	}
	for i := len(deploymentIDPrefix); i < len(name); i++ {
		c := name[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'v') {
			return false
		}
	}
	return true
}

// DeploymentTime is the creation time encoded in a deployment id, for listing without reading manifests.
func DeploymentTime(id string) (time.Time, bool) {
	if !IsDeploymentID(id) {
		return time.Time{}, false
	}
	b, err := lowerBase32Hex.DecodeString(id[len(deploymentIDPrefix):])
	if err != nil || len(b) != 10 {
		return time.Time{}, false
	}
	var ms [8]byte
	copy(ms[2:], b[:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(ms[:]))).UTC(), true
}

// PRAlias is the alias of a pull request's latest preview.
func PRAlias(n int) string { return "pr-" + strconv.Itoa(n) }

// BranchAlias is the alias of a branch's latest deployment: "git-" and a slug of the branch (lowercase, runs
// of other characters turned into one "-"). When the slug would not fit in one host label with project, it is
// cut and ends in "-" and 6 hex characters of the branch's SHA-256, so that two long branches sharing a prefix
// still get different aliases, and the same branch always gets the same one.
func BranchAlias(project, branch string) string {
	slug := "git"
	if s := Slug(branch); s != "" {
		slug += "-" + s
	}
	max := MaxLabel - 2 - len(project)
	if len(slug) <= max && slug != "git" { // "git" alone: a branch with no letters or digits gets a hash
		return slug
	}
	sum := sha256.Sum256([]byte(branch))
	suffix := "-" + hex.EncodeToString(sum[:3])
	keep := max - len(suffix)
	if keep < len("git") {
		keep = len("git")
	}
	if keep > len(slug) {
		keep = len(slug)
	}
	return strings.TrimRight(slug[:keep], "-") + suffix
}

// Slug is s in host-label form: lowercase letters and digits, with every run of other characters turned into
// one "-" and no "-" at either end. Branch aliases and project names made from repository names both use it, so
// the two never disagree on what a name becomes.
func Slug(s string) string {
	var b strings.Builder
	dash := true // no leading hyphen
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimRight(b.String(), "-")
}

// ProjectNameFromRepo is the default project name for a repository ("Acme/My_Site" or "My_Site" gives
// "my-site"): the slug of its name, cut to MaxProjectName, or "site" when nothing of it is left. The App and the
// Action both name projects this way, so a repository gets the same name through either.
func ProjectNameFromRepo(repo string) string {
	if i := strings.LastIndex(repo, "/"); i >= 0 {
		repo = repo[i+1:]
	}
	s := Slug(repo)
	if len(s) > MaxProjectName {
		s = strings.TrimRight(s[:MaxProjectName], "-")
	}
	if s == "" {
		s = "site"
	}
	return s
}

// ParseHost maps a request's Host (any port ignored) under domain to a project and the alias or deployment id
// it names: "<project>.D" gives (project, "production"), "<name>--<project>.D" gives (project, name).
// Matching is case-insensitive and tolerates a trailing dot. Anything else (another domain, a deeper subdomain,
// an invalid label) gives ok=false. It allocates only when the host has upper-case letters, because the proxy
// calls it for every request.
func ParseHost(host, domain string) (project, name string, ok bool) {
	host = trimHost(host)
	domain = trimHost(trimScheme(domain))
	if domain == "" || len(host) < len(domain)+2 || host[len(host)-len(domain)-1] != '.' ||
		!strings.EqualFold(host[len(host)-len(domain):], domain) {
		return "", "", false
	}
	label := host[:len(host)-len(domain)-1]
	if len(label) > MaxLabel || strings.IndexByte(label, '.') >= 0 {
		return "", "", false
	}
	if hasUpper(label) {
		label = strings.ToLower(label)
	}
	project, name = label, ProductionAlias
	if i := strings.Index(label, "--"); i >= 0 {
		name, project = label[:i], label[i+2:]
		if labelProblem(name, MaxLabel) != "" {
			return "", "", false
		}
		if strings.HasPrefix(name, deploymentIDPrefix) && !IsDeploymentID(name) {
			return "", "", false
		}
	}
	if labelProblem(project, MaxProjectName) != "" {
		return "", "", false
	}
	return project, name, true
}

// trimHost drops a port and a trailing dot. An IPv6 literal is left alone; it never matches a domain.
func trimHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasPrefix(h, "[") && allDigits(h[i+1:]) {
		h = h[:i]
	}
	return strings.TrimSuffix(h, ".")
}

func trimScheme(d string) string {
	if i := strings.Index(d, "://"); i >= 0 {
		d = d[i+3:]
	}
	return strings.TrimSuffix(d, "/")
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// DeploymentURL is the URL people open for name (an alias or deployment id) of project under domain.
// domain may be "example.com" (https), "localhost:8081" (http, for localhost and loopback addresses), or carry
// its own scheme ("http://preview.internal"). The production alias, or an empty name, gives "<project>.D".
func DeploymentURL(domain, project, name string) string {
	scheme := "https"
	if i := strings.Index(domain, "://"); i >= 0 {
		scheme, domain = strings.ToLower(domain[:i]), domain[i+3:]
	} else if isLoopback(trimHost(domain)) {
		scheme = "http"
	}
	domain = strings.TrimSuffix(domain, "/")
	label := project
	if name != "" && name != ProductionAlias {
		label = name + "--" + project
	}
	return scheme + "://" + label + "." + domain
}

// isLoopback reports whether host only resolves to this machine, where previews are served without TLS.
func isLoopback(host string) bool {
	host = strings.ToLower(host)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	addr, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && addr.IsLoopback()
}
