package deploy

import (
	"os"
	"path"
	"regexp"
	"strings"
	"testing"
)

// dockerignore is the subset of .dockerignore rules that Ferry's file uses: paths relative to the context
// root, with *, ? and ** wildcards. A rule that excludes a folder excludes everything under it.
type dockerignore []*regexp.Regexp

func parseDockerignore(src string) (dockerignore, error) {
	var d dockerignore
	for _, l := range strings.Split(src, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "!") || strings.ContainsAny(l, "[]\\") {
			return nil, &unsupportedRule{l}
		}
		l = strings.TrimPrefix(path.Clean("/"+l), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(l); i++ {
			switch c := l[i]; {
			case strings.HasPrefix(l[i:], "**/"):
				re.WriteString("(?:.*/)?")
				i += 2
			case strings.HasPrefix(l[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		d = append(d, regexp.MustCompile(re.String()))
	}
	return d, nil
}

type unsupportedRule struct{ rule string }

func (e *unsupportedRule) Error() string {
	return "rule " + e.rule + " uses ! or [] or \\, which the test's matcher does not implement"
}

// excluded says whether a slash-separated path relative to the root is left out of the context.
func (d dockerignore) excluded(rel string) bool {
	for p := rel; p != "." && p != "/" && p != ""; p = path.Dir(p) {
		for _, re := range d {
			if re.MatchString(p) {
				return true
			}
		}
	}
	return false
}

func loadDockerignore(t testing.TB) dockerignore {
	t.Helper()
	b, err := os.ReadFile(repoRoot + "/.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDockerignore(string(b))
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	return d
}

func TestDockerignore(t *testing.T) {
	d := loadDockerignore(t)
	for p, want := range map[string]bool{
		"main.go":                          false,
		"go.mod":                           false,
		"go.sum":                           false,
		"proxy/serve.go":                   false,
		"migrations/0001_init.sql":         false,
		"internal/site/store.go":           false,
		".git/HEAD":                        true,
		".ferry/storage/x":                 true,
		"web/node_modules/react/index.js":  true,
		"node_modules/x":                   true,
		"internal/build/testdata/a/b.json": true,
		"proxy/serve_test.go":              true,
		"deploy/terraform/main.tf":         true,
		"ferry":                            true,
		"cmd/ferry":                        false,
		"bench/proxy-vs-nginx.sh":          true,
		"Dockerfile":                       true,
	} {
		if got := d.excluded(p); got != want {
			t.Errorf("excluded(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestParseDockerignore(t *testing.T) {
	d, err := parseDockerignore("a/*.go\n/b\n**/c\nd?\n# x\n\n")
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"a/x.go": true, "a/x/y.go": false, "b": true, "b/z": true, "x/b": false,
		"c": true, "x/y/c": true, "x/y/c/z": true, "dd": true, "d": false, "ddd": false,
	} {
		if got := d.excluded(p); got != want {
			t.Errorf("excluded(%q) = %v, want %v", p, got, want)
		}
	}
	for _, bad := range []string{"!keep", "[ab]"} {
		if _, err := parseDockerignore(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
