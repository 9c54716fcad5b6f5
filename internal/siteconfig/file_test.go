package siteconfig

import (
	"reflect"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

func TestParseFile(t *testing.T) {
	t.Parallel()
	in := `{
  "$schema": "https://ferry.example/schema.json",
  "rootDirectory": "packages/web",
  "installCommand": "",
  "buildCommand": "npm run build -- --mode=production",
  "outputDirectory": "dist",
  "nodeVersion": "20.11",
  "env": {"VITE_API": "https://api.example.com", "_X1": ""},
  "spa": false,
  "cleanUrls": true,
  "trailingSlash": null
}`
	got, err := ParseFile([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := &File{
		RootDirectory:   "packages/web",
		InstallCommand:  ptr(""),
		BuildCommand:    ptr("npm run build -- --mode=production"),
		OutputDirectory: "dist",
		NodeVersion:     "20.11",
		Env:             map[string]string{"VITE_API": "https://api.example.com", "_X1": ""},
		SPA:             ptr(false),
		CleanURLs:       ptr(true),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for _, ok := range []string{`{}`, "\xef\xbb\xbf{}", `{"rootDirectory": "."}`, `{"nodeVersion": "v20"}`, `{"nodeVersion": "18.x"}`, `{"nodeVersion": "20.11.1"}`, `{"trailingSlash": true}`, `{"protection": "previews"}`} {
		if _, err := ParseFile([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestParseFileErrors(t *testing.T) {
	t.Parallel()
	cases := []errCase{
		{"typo", `{"buildComand": "npm run build"}`, []string{`ferry.json: unknown key "buildComand" (did you mean "buildCommand"?)`}},
		{"case", `{"cleanURLs": true}`, []string{`unknown key "cleanURLs"`, `"cleanUrls"`}},
		{"other tool", `{"publish": "dist"}`, []string{`unknown key "publish"`, `"outputDirectory"`}},
		{"redirects key", `{"redirects": []}`, []string{`unknown key "redirects"`, "_redirects file"}},
		{"unrelated key", `{"zzzzzzzz": 1}`, []string{`unknown key "zzzzzzzz"`}},
		{"spa string", `{"spa": "yes"}`, []string{`ferry.json: "spa" must be true or false, not a string`}},
		{"cleanUrls number", `{"cleanUrls": 1}`, []string{`"cleanUrls" must be true or false, not a number`}},
		{"build array", `{"buildCommand": ["npm", "run"]}`, []string{`"buildCommand" must be a string, not an array`}},
		{"env array", `{"env": ["A=1"]}`, []string{`"env" must be an object of strings, not an array`}},
		{"env number value", `{"env": {"A": 1}}`, []string{`"env" values must be strings`}},
		{"env bad name", `{"env": {"1A": "x"}}`, []string{`"env"`, `"1A" is not a valid environment variable name`}},
		{"env dash", `{"env": {"MY-VAR": "x"}}`, []string{`"MY-VAR" is not a valid`}},
		{"env reserved", `{"env": {"FERRY_STORAGE": "s3://x"}}`, []string{`"FERRY_STORAGE"`, "reserved"}},
		{"env nul", `{"env": {"A": "a\u0000b"}}`, []string{`value of "A" contains a NUL byte`}},
		{"env big", `{"env": {"A": "` + strings.Repeat("x", MaxEnvValueBytes+1) + `"}}`, []string{`value of "A" is longer than`}},
		{"env many", `{"env": {` + manyEnv(MaxEnv+1) + `}}`, []string{`"env" has more than 256 entries`}},
		{"root absolute", `{"rootDirectory": "/etc"}`, []string{`"rootDirectory"`, "relative"}},
		{"root dotdot", `{"rootDirectory": "../other"}`, []string{`"rootDirectory"`, `no ".."`}},
		{"output dotdot inside", `{"outputDirectory": "a/../../b"}`, []string{`"outputDirectory"`, `no ".."`}},
		{"output unclean", `{"outputDirectory": "./dist/"}`, []string{`"outputDirectory" "./dist/" is not a clean path; write "dist"`}},
		{"output backslash", `{"outputDirectory": "a\\b"}`, []string{`"outputDirectory"`, "backslash"}},
		{"output empty", `{"outputDirectory": ""}`, []string{`"outputDirectory" is empty`}},
		{"protection word", `{"protection": "private"}`, []string{`"protection" must be "public", "previews" or "all", not "private"`}},
		{"protection bool", `{"protection": true}`, []string{`"protection" must be "public", "previews" or "all", not a boolean`}},
		{"node lts", `{"nodeVersion": "lts/*"}`, []string{`"nodeVersion" must be a version`}},
		{"node garbage", `{"nodeVersion": "20; rm -rf /"}`, []string{`"nodeVersion" must be a version`}},
		{"command nul", `{"buildCommand": "a\u0000"}`, []string{`"buildCommand" contains a NUL byte`}},
		{"command long", `{"buildCommand": "` + strings.Repeat("x", MaxCommandBytes+1) + `"}`, []string{`"buildCommand" is longer than`}},
		{"duplicate", `{"spa": true, "spa": false}`, []string{`key "spa" appears twice`}},
		{"array", `[]`, []string{"must be a JSON object"}},
		{"string", `"x"`, []string{"must be a JSON object"}},
		{"empty", ``, []string{"ferry.json: empty"}},
		{"syntax", "{\n  \"spa\": true,\n  oops\n}", []string{"ferry.json:3:", "invalid JSON"}},
		{"trailing comma", "{\"spa\": true,}", []string{"ferry.json:1:", "invalid JSON"}},
		{"cut", `{"spa": true`, []string{"ferry.json"}},
		{"trailing text", `{} {}`, []string{"after the closing }"}},
		{"too big", `{"env": {"A": "` + strings.Repeat("x", MaxSettingsBytes) + `"}}`, []string{"ferry.json: larger than"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseFile([]byte(c.in))
			checkErr(t, err, c.want)
		})
	}
}

func manyEnv(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"V` + itoa(i) + `": "x"`)
	}
	return b.String()
}

func TestResolve(t *testing.T) {
	t.Parallel()
	rds := []Redirect{{From: "/a", To: "/b", Status: 301, Line: 1}}
	hrs := []HeaderRule{{Path: "/*", Values: []Header{{"X-A", "b"}}, Line: 1}}
	spa := Output{HasIndex: true, HTMLFiles: 1}
	spa404 := Output{HasIndex: true, Has404: true, HTMLFiles: 2}
	mpa := Output{HasIndex: true, HTMLFiles: 3}
	cases := []struct {
		name string
		f    *File
		out  Output
		want Serving
	}{
		{"one html file", nil, spa, Serving{SPA: true, CleanURLs: true}},
		{"defaults, 404", nil, spa404, Serving{NotFound: "/404.html", CleanURLs: true}},
		{"multi-page, no 404", nil, mpa, Serving{CleanURLs: true}},
		{"multi-page, the build says SPA", &File{SPA: ptr(true)}, mpa, Serving{SPA: true, CleanURLs: true}},
		{"no index", nil, Output{HTMLFiles: 1}, Serving{CleanURLs: true}},
		{"spa off, no 404", &File{SPA: ptr(false)}, spa, Serving{CleanURLs: true}},
		{"spa forced with 404", &File{SPA: ptr(true)}, spa404, Serving{SPA: true, CleanURLs: true}},
		{"clean urls off", &File{CleanURLs: ptr(false)}, spa404, Serving{NotFound: "/404.html"}},
		{"trailing add", &File{TrailingSlash: ptr(true)}, spa, Serving{SPA: true, CleanURLs: true, TrailingSlash: "add"}},
		{"trailing remove", &File{TrailingSlash: ptr(false)}, spa, Serving{SPA: true, CleanURLs: true, TrailingSlash: "remove"}},
	}
	for _, c := range cases {
		got := Resolve(c.f, c.out, rds, hrs)
		c.want.Redirects, c.want.Headers = rds, hrs
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}
