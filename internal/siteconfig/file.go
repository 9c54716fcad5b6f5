package siteconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Limits on ferry.json, which configures builds: generous for real repositories, small enough that a hostile
// one cannot bloat a job row or a build environment.
const (
	// MaxSettingsBytes caps the size of ferry.json.
	MaxSettingsBytes = 256 << 10
	// MaxEnv caps the number of env entries.
	MaxEnv = 256
	// MaxEnvValueBytes caps one env value.
	MaxEnvValueBytes = 32 << 10
	// MaxCommandBytes caps installCommand and buildCommand.
	MaxCommandBytes = 8 << 10
)

// fileKeys are ferry.json's keys with what each must hold, in the words errors use.
var fileKeys = map[string]string{
	"$schema":         "a string",
	"rootDirectory":   "a string",
	"installCommand":  "a string",
	"buildCommand":    "a string",
	"outputDirectory": "a string",
	"nodeVersion":     "a string",
	"env":             "an object of strings",
	"spa":             "true or false",
	"cleanUrls":       "true or false",
	"trailingSlash":   "true or false",
	"protection":      `"public", "previews" or "all"`,
}

// otherToolKeys are keys people bring from other hosts' config files, with where the setting lives in Ferry.
var otherToolKeys = map[string]string{
	"outputDir":       `"outputDirectory"`,
	"publish":         `"outputDirectory"`,
	"distDir":         `"outputDirectory"`,
	"command":         `"buildCommand"`,
	"base":            `"rootDirectory"`,
	"redirects":       "a _redirects file in the output folder",
	"rewrites":        "a _redirects file in the output folder (status 200)",
	"headers":         "a _headers file in the output folder",
	"framework":       `"buildCommand" and "outputDirectory"`,
	"environment":     `"env"`,
	"cleanURLs":       `"cleanUrls"`,
	"singlePageApp":   `"spa"`,
	"trailing_slash":  `"trailingSlash"`,
	"node_version":    `"nodeVersion"`,
	"build_command":   `"buildCommand"`,
	"install_command": `"installCommand"`,
}

// ParseFile parses and validates ferry.json strictly: an unknown key, a wrong type, or a value that could reach
// outside the repository is an error naming the key, because a silently ignored typo ("buildComand") would
// build the wrong thing. A null value counts as not set.
func ParseFile(data []byte) (*File, error) {
	if len(data) > MaxSettingsBytes {
		return nil, ferry.Errorf(ferry.EINVALID, "ferry.json: larger than %d bytes", MaxSettingsBytes)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(data, dec, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, ferry.Errorf(ferry.EINVALID, "ferry.json: must be a JSON object ({...})")
	}
	f := &File{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(data, dec, err)
		}
		key := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, jsonError(data, dec, err)
		}
		want, known := fileKeys[key]
		if !known {
			return nil, ferry.Errorf(ferry.EINVALID, "ferry.json: unknown key %q%s", key, suggest(key))
		}
		if seen[key] {
			return nil, ferry.Errorf(ferry.EINVALID, "ferry.json: key %q appears twice", key)
		}
		seen[key] = true
		if string(raw) == "null" {
			continue
		}
		if err := setKey(f, key, raw); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && key == "env" && raw[0] == '{' {
				return nil, ferry.Errorf(ferry.EINVALID, "ferry.json: \"env\" values must be strings (write \"1\", not 1)")
			}
			if errors.As(err, &te) {
				return nil, ferry.Errorf(ferry.EINVALID, "ferry.json: %q must be %s, not %s", key, want, jsonKind(raw))
			}
			return nil, ferry.Errorf(ferry.EINVALID, "ferry.json: %q %s", key, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, jsonError(data, dec, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, ferry.Errorf(ferry.EINVALID, "ferry.json: unexpected text after the closing }")
	}
	return f, nil
}

// setKey decodes and checks one key's value into f.
func setKey(f *File, key string, raw json.RawMessage) error {
	str := func(dst *string) error { return json.Unmarshal(raw, dst) }
	switch key {
	case "$schema":
		var s string
		return str(&s)
	case "rootDirectory":
		if err := str(&f.RootDirectory); err != nil {
			return err
		}
		return checkDir(f.RootDirectory)
	case "outputDirectory":
		if err := str(&f.OutputDirectory); err != nil {
			return err
		}
		return checkDir(f.OutputDirectory)
	case "installCommand", "buildCommand":
		var s string
		if err := str(&s); err != nil {
			return err
		}
		if len(s) > MaxCommandBytes {
			return fmt.Errorf("is longer than %d bytes; put long scripts in package.json or a script file", MaxCommandBytes)
		}
		if strings.IndexByte(s, 0) >= 0 {
			return errors.New("contains a NUL byte")
		}
		if key == "installCommand" {
			f.InstallCommand = &s
		} else {
			f.BuildCommand = &s
		}
	case "protection":
		if err := str(&f.Protection); err != nil {
			return err
		}
		switch f.Protection {
		case "public", "previews", "all":
		default:
			return fmt.Errorf("must be \"public\", \"previews\" or \"all\", not %q", f.Protection)
		}
	case "nodeVersion":
		if err := str(&f.NodeVersion); err != nil {
			return err
		}
		if !isNodeVersion(f.NodeVersion) {
			return fmt.Errorf("must be a version such as \"20\", \"20.11\" or \"20.11.1\", not %q", f.NodeVersion)
		}
	case "env":
		if err := json.Unmarshal(raw, &f.Env); err != nil {
			return err
		}
		return checkEnv(f.Env)
	case "spa":
		return json.Unmarshal(raw, &f.SPA)
	case "cleanUrls":
		return json.Unmarshal(raw, &f.CleanURLs)
	case "trailingSlash":
		return json.Unmarshal(raw, &f.TrailingSlash)
	}
	return nil
}

// checkDir accepts a clean path relative to the repository ("site", "packages/web/dist", "."), which is all a
// build needs, and refuses anything that could name a place outside it.
func checkDir(d string) error {
	switch {
	case d == "":
		return errors.New("is empty; leave it out, or write \".\" for the repository root")
	case strings.IndexByte(d, 0) >= 0:
		return errors.New("contains a NUL byte")
	case strings.Contains(d, "\\"):
		return fmt.Errorf("%q contains a backslash; use \"/\" between folders", d)
	case path.IsAbs(d):
		return fmt.Errorf("%q must be relative to the repository root, such as \"dist\"", d)
	}
	for _, s := range strings.Split(d, "/") {
		if s == ".." {
			return fmt.Errorf("%q must stay inside the repository (no \"..\")", d)
		}
	}
	if c := path.Clean(d); c != d {
		return fmt.Errorf("%q is not a clean path; write %q", d, c)
	}
	return nil
}

// checkEnv accepts portable environment variable names. FERRY_ names are Ferry's own settings (flag fallbacks)
// and are refused so that a repository cannot steer a Ferry process that runs in its build.
func checkEnv(env map[string]string) error {
	if len(env) > MaxEnv {
		return fmt.Errorf("has more than %d entries", MaxEnv)
	}
	for name, v := range env {
		if !isName(name) {
			return fmt.Errorf("name %q is not a valid environment variable name (letters, digits and _, not starting with a digit)", name)
		}
		if strings.HasPrefix(strings.ToUpper(name), "FERRY_") {
			return fmt.Errorf("name %q: names starting with FERRY_ are reserved for Ferry's own settings", name)
		}
		if len(v) > MaxEnvValueBytes {
			return fmt.Errorf("value of %q is longer than %d bytes", name, MaxEnvValueBytes)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("value of %q contains a NUL byte", name)
		}
	}
	return nil
}

// isNodeVersion accepts "20", "v20", "20.11", "20.x" and "20.11.1": what version managers resolve offline.
func isNodeVersion(s string) bool {
	s = strings.TrimPrefix(s, "v")
	parts := strings.Split(s, ".")
	if len(parts) > 3 || len(s) > 32 {
		return false
	}
	for i, p := range parts {
		if p == "x" && i > 0 {
			continue
		}
		if p == "" {
			return false
		}
		for j := 0; j < len(p); j++ {
			if p[j] < '0' || p[j] > '9' {
				return false
			}
		}
	}
	return true
}

// suggest returns a " (did you mean ...?)" hint for an unknown ferry.json key, or "".
func suggest(key string) string {
	if where, ok := otherToolKeys[key]; ok {
		return fmt.Sprintf(" (in Ferry, use %s)", where)
	}
	best, bestD := "", 4
	for k := range fileKeys {
		if strings.EqualFold(k, key) {
			return fmt.Sprintf(" (did you mean %q?)", k)
		}
		if d := editDistance(strings.ToLower(k), strings.ToLower(key)); d < bestD || d == bestD && k < best {
			best, bestD = k, d
		}
	}
	if best == "" || bestD > len(key)/3 {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// jsonKind names the JSON type of a value for error messages.
func jsonKind(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

// jsonError turns a syntax error into a message with the line and column.
func jsonError(data []byte, dec *json.Decoder, err error) error {
	if err == io.EOF {
		return ferry.Errorf(ferry.EINVALID, "ferry.json: empty or cut short; it must be a JSON object ({...})")
	}
	off := dec.InputOffset()
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = se.Offset
	}
	off = min(max(off, 0), int64(len(data)))
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
	return ferry.Errorf(ferry.EINVALID, "ferry.json:%d:%d: invalid JSON: %s", line, col, strings.TrimPrefix(err.Error(), "json: "))
}

// Output is what Resolve needs to know about a site's output folder.
type Output struct {
	// Has404 is true when the output has /404.html.
	Has404 bool
	// HasIndex is true when the output has /index.html.
	HasIndex bool
	// HTMLFiles counts the output's .html files.
	HTMLFiles int
}

// LooksLikeSPA reports whether an output is a single-page app by its files alone: its only HTML file is
// /index.html. Multi-page output (Astro, Eleventy, prerendered SvelteKit) has more, and answering its unknown
// paths with the home page and 200 would hide every broken link.
func (o Output) LooksLikeSPA() bool { return o.HasIndex && o.HTMLFiles == 1 && !o.Has404 }

// Resolve applies the defaults of docs/architecture.md ("Site serving config") to a site's settings (f may be
// nil) and parsed rules, giving the serving config that publish stores in the manifest.
//
// SPA fallback: "spa" in f decides when it is set, whether the user wrote it in ferry.json or a build filled
// it in because it knows the framework is an SPA (detection fills only what the user left out). When it is
// unset, the output decides: SPA when it LooksLikeSPA. A site that is not an SPA answers unknown paths with its
// 404.html (status 404) when it has one, else with the proxy's plain 404 page. When SPA is on, NotFound is
// empty: a path that matches nothing serves /index.html, so a 404 page could never show.
func Resolve(f *File, out Output, redirects []Redirect, headers []HeaderRule) Serving {
	if f == nil {
		f = &File{}
	}
	s := Serving{SPA: out.LooksLikeSPA(), CleanURLs: true, Redirects: redirects, Headers: headers}
	if f.SPA != nil {
		s.SPA = *f.SPA
	}
	if out.Has404 && !s.SPA {
		s.NotFound = "/404.html"
	}
	if f.CleanURLs != nil {
		s.CleanURLs = *f.CleanURLs
	}
	s.Protection = f.Protection
	if f.TrailingSlash != nil {
		s.TrailingSlash = "remove"
		if *f.TrailingSlash {
			s.TrailingSlash = "add"
		}
	}
	return s
}
