package build

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestErrorLines runs the picker on real tool output (testdata/errorlines: Vite 7 with esbuild and
// rolldown-vite failing on a syntax error, captured with FORCE_COLOR=1) and on shapes of npm and shell
// failures. The last output line alone ("}\x1b[39m", a stack frame) is what the summary used to be.
func TestErrorLines(t *testing.T) {
	file := func(name string) []string {
		b, err := os.ReadFile("testdata/errorlines/" + name)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > tailLines { // what lineWriter keeps
			lines = lines[len(lines)-tailLines:]
		}
		return lines
	}
	for _, c := range []struct {
		name string
		tail []string
		want []string
	}{
		{"vite esbuild", file("vite-esbuild.txt"), []string{
			"[vite:build-html] Transform failed with 1 error:",
			`/ferry/work/src/App.jsx:3:2: ERROR: Unexpected "}"`,
			`Unexpected "}"`,
		}},
		{"rolldown-vite", file("rolldown-vite.txt"), []string{
			"[builtin:transform] Error: Unexpected token",
			"at src/App.jsx:3:3",
		}},
		{"npm ci out of sync", []string{
			"npm error code EUSAGE",
			"npm error",
			"npm error `npm ci` can only install packages when your package.json and package-lock.json are in sync.",
			"npm error Missing: left-pad@1.3.0 from lock file",
			"npm error",
			"npm error Clean install a project",
			"npm error A complete log of this run can be found in: /tmp/x.log",
		}, []string{
			"npm error `npm ci` can only install packages when your package.json and package-lock.json are in sync.",
			"npm error Missing: left-pad@1.3.0 from lock file",
		}},
		{"command not found", []string{"> build", "> vitee build", "sh: 1: vitee: not found"}, []string{"sh: 1: vitee: not found"}},
		{"nothing like an error", []string{"step one", "\x1b[32mdone\x1b[39m", "   at thing (x.js:1:1)"}, []string{"step one", "done"}},
		{"empty", nil, nil},
	} {
		got := ErrorLines(c.tail)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: ErrorLines =\n  %q\nwant\n  %q", c.name, got, c.want)
		}
	}
}
