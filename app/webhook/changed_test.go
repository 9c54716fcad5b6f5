package webhook_test

import (
	"net/http"
	"testing"
)

// TestPushMonorepoRootDirectory: a project with a root directory builds a push only when one of its commits
// added, modified or removed a file under that folder (the real payload's commits, with file lists edited);
// alwaysBuild builds every push; a truncated push (20 commits) builds, asking the compare API first (its
// lists say nothing of the rest).
func TestPushMonorepoRootDirectory(t *testing.T) {
	t.Parallel()
	push := func(t *testing.T, sha string, files ...[]string) []byte {
		return edit(t, payload(t, "push/with-new-branch.payload.json"), func(m map[string]any) {
			m["after"], m["before"] = sha, "4444444444444444444444444444444444444444"
			template := m["commits"].([]any)[0].(map[string]any)
			var commits []any
			for _, f := range files {
				c := map[string]any{}
				for k, v := range template {
					c[k] = v
				}
				c["added"], c["modified"], c["removed"] = []string{}, f, []string{}
				commits = append(commits, c)
			}
			m["commits"] = commits
		})
	}
	for _, tc := range []struct {
		name     string
		settings string
		files    [][]string
		builds   bool
		compare  bool // the build is to ask the compare API (the payload could not tell)
	}{
		{"no root directory", `{}`, [][]string{{"api/main.go"}}, true, false},
		{"outside the root", `{"overrides": {"rootDirectory": "apps/web"}}`, [][]string{{"api/main.go"}, {"README.md"}}, false, false},
		{"a sibling with the same prefix", `{"overrides": {"rootDirectory": "apps/web"}}`, [][]string{{"apps/website/index.html"}}, false, false},
		{"inside the root", `{"overrides": {"rootDirectory": "apps/web/"}}`, [][]string{{"api/main.go"}, {"apps/web/src/App.tsx"}}, true, false},
		{"root written with ./", `{"overrides": {"rootDirectory": "./apps/web"}}`, [][]string{{"apps/web/package.json"}}, true, false},
		{"always build", `{"alwaysBuild": true, "overrides": {"rootDirectory": "apps/web"}}`, [][]string{{"api/main.go"}}, true, false},
		{"truncated push", `{"overrides": {"rootDirectory": "apps/web"}}`, func() [][]string {
			var f [][]string
			for range 20 {
				f = append(f, []string{"api/main.go"})
			}
			return f
		}(), true, true},
		{"a commit without file lists", `{"overrides": {"rootDirectory": "apps/web"}}`, [][]string{{"api/main.go"}, {}}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			p := e.seed(tc.settings)
			e.deliver("push", push(t, "3333333333333333333333333333333333333333", tc.files...), http.StatusAccepted)
			if got := len(e.deployments(p.ID)) == 1; got != tc.builds {
				t.Fatalf("built = %v, want %v", got, tc.builds)
			}
			for _, j := range e.jobs() {
				if j.Kind == "deploy" && (j.Args["compare_base"] == "4444444444444444444444444444444444444444") != tc.compare {
					t.Fatalf("deploy job %+v: compare wanted %v", j.Args, tc.compare)
				}
			}
		})
	}
}
