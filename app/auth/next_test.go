package auth_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/app/auth"
)

// offSite are ?next= values that a browser would follow to another host (or run as script) if they reached
// Location as they are: browsers drop tabs and newlines, read a backslash as a slash and skip leading control
// characters and spaces.
var offSite = []string{
	"//evil.example/x", "///evil.example/x", "/\t/evil.example/x", "/\n/evil.example/x", "/\r/evil.example/x",
	"/\r\n/evil.example/x", "\t//evil.example/x", " //evil.example/x", "/\\evil.example/x", "\\/evil.example/x",
	"\\\\evil.example/x", "/\\/evil.example/x", "/%2f/evil.example", "/%2F%2Fevil.example", "https://evil.example/x",
	"http:evil.example", "javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,<script>alert(1)</script>",
	"evil.example", "", "/\x00/evil.example", "/\x7f/evil.example", "/\x0b/evil.example", "/\x0c/evil.example",
	"/ /evil.example", "https:/evil.example", "//@evil.example", "/@evil.example/\t/", "//evil.example\\@app/",
}

// onSite are paths of this site that survive, as given or re-encoded.
var onSite = map[string]string{
	"/":                       "/",
	"/account/tokens":         "/account/tokens",
	"/projects/site?tab=logs": "/projects/site?tab=logs",
	"/deployments/d-1#log":    "/deployments/d-1#log",
	"/a%20b":                  "/a%20b",
	"/%09/evil.example/x":     "/%09/evil.example/x", // an encoded tab stays encoded: a path on this host
	"/%5cevil.example":        "/%5cevil.example",
	"/caf\u00e9":              "/caf%C3%A9",
	"/@evil.example":          "/@evil.example",
}

func TestLocalPath(t *testing.T) {
	t.Parallel()
	for _, next := range offSite {
		if got := auth.LocalPath(next); got != "/" {
			t.Errorf("LocalPath(%q) = %q, want /", next, got)
		}
	}
	for next, want := range onSite {
		if got := auth.LocalPath(next); got != want {
			t.Errorf("LocalPath(%q) = %q, want %q", next, got, want)
		}
	}
}

// browserResolve follows what the WHATWG URL parser does to a Location value before resolving it: it strips
// tabs and newlines anywhere and leading and trailing C0 controls and spaces, and reads a backslash as a slash.
func browserResolve(base *url.URL, loc string) (*url.URL, error) {
	loc = strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return -1
		case '\\':
			return '/'
		}
		return r
	}, loc)
	loc = strings.TrimFunc(loc, func(r rune) bool { return r <= ' ' })
	ref, err := url.Parse(loc)
	if err != nil {
		return nil, err
	}
	return base.ResolveReference(ref), nil
}

func FuzzLocalPath(f *testing.F) {
	for _, s := range offSite {
		f.Add(s)
	}
	for s := range onSite {
		f.Add(s)
	}
	base, _ := url.Parse("http://app.localhost:8080/login")
	f.Fuzz(func(t *testing.T, next string) {
		got := auth.LocalPath(next)
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\t\r\n ") {
			t.Fatalf("LocalPath(%.200q) = %.200q: not a plain path", next, got)
		}
		u, err := browserResolve(base, got)
		if err != nil {
			t.Fatalf("LocalPath(%.200q) = %.200q, which does not parse: %v", next, got, err)
		}
		if u.Scheme != "http" || u.Host != base.Host {
			t.Fatalf("LocalPath(%.200q) = %.200q leads to %s", next, got, u)
		}
		if again := auth.LocalPath(got); again != got {
			t.Fatalf("LocalPath is not stable: %.200q -> %.200q -> %.200q", next, got, again)
		}
	})
}

// TestGitHubNext: the GitHub sign-in carries ?next= through its state cookie; an off-site value comes back as
// "/" and an on-site path as itself.
func TestGitHubNext(t *testing.T) {
	t.Parallel()
	gh := newFakeGitHub(t, 31337, "nextuser")
	e := newEnv(t, func(c *auth.Config) {
		c.GitHubClientID, c.GitHubClientSecret = "Iv1.client", "client-secret"
		c.GitHubURL, c.GitHubAPIURL = gh.srv.URL, gh.srv.URL
	})
	for raw, want := range map[string]string{
		"/%09/evil.example/x": "/", "/%5cevil.example": "/", "%2f%2fevil.example": "/", "https://evil.example": "/",
		"/%0d%0a/evil.example": "/", "javascript:alert(1)": "/", "/account?tab=1": "/account?tab=1",
	} {
		a := e.browser().follow("/auth/github?next=" + raw)
		wantStatus(t, a, http.StatusSeeOther)
		if loc := a.header.Get("Location"); loc != want {
			t.Errorf("GitHub sign-in with next=%s: redirect to %q, want %q", raw, loc, want)
		}
	}
}
