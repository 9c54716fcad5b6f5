package action

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sethvargo/go-githubactions"

	"github.com/ferryhq/ferry/internal/build"
	"github.com/ferryhq/ferry/internal/ghwebhooks"
	"github.com/ferryhq/ferry/internal/site"
)

// eventFile writes a real payload where GITHUB_EVENT_PATH can point, as the runner does.
func eventFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(p, ghwebhooks.Payload(t, name), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlan(t *testing.T) {
	t.Parallel()
	push := func(ref, def string) *event {
		return &event{Name: "push", Ref: ref, Branch: strings.TrimPrefix(ref, "refs/heads/"), DefaultBranch: def}
	}
	pr := &event{Name: "pull_request", Ref: "refs/pull/7/merge", Branch: "feature", PR: 7, DefaultBranch: "main"}
	for _, tc := range []struct {
		name    string
		ev      *event
		in      Inputs
		prod    bool
		aliases []string
		env     string
	}{
		{"default branch, auto", push("refs/heads/main", "main"), Inputs{Production: "auto"}, true, []string{"production"}, "production"},
		{"a branch named main that is not the default", push("refs/heads/main", "develop"), Inputs{Production: "auto"}, false, []string{"git-main"}, "preview/main"},
		{"other branch", push("refs/heads/feat/x", "main"), Inputs{Production: "auto"}, false, []string{"git-feat-x"}, "preview/feat/x"},
		{"default branch, production false", push("refs/heads/main", "main"), Inputs{Production: "false"}, false, []string{"git-main"}, "preview/main"},
		{"other branch, production true", push("refs/heads/release", "main"), Inputs{Production: "true"}, true, []string{"production"}, "production"},
		{"production-branch input", push("refs/heads/release", "main"), Inputs{Production: "auto", ProductionBranch: "release"}, true, []string{"production"}, "production"},
		{"default branch that is not the production-branch input", push("refs/heads/main", "main"), Inputs{Production: "auto", ProductionBranch: "release"}, false, []string{"git-main"}, "preview/main"},
		{"production-branch input without default_branch", push("refs/heads/release", ""), Inputs{Production: "auto", ProductionBranch: "release"}, true, []string{"production"}, "production"},
		{"payload without default_branch", push("refs/heads/main", ""), Inputs{Production: "auto"}, false, []string{"git-main"}, "preview/main"},
		{"pull request", pr, Inputs{Production: "auto"}, false, []string{"pr-7"}, "preview/pr-7"},
		{"alias input", push("refs/heads/feat", "main"), Inputs{Production: "auto", Alias: "staging"}, false, []string{"staging"}, "preview/feat"},
		{"alias input on production", push("refs/heads/main", "main"), Inputs{Production: "auto", Alias: "v2"}, true, []string{"production", "v2"}, "production"},
		{"environment input", pr, Inputs{Production: "auto", DeploymentEnvironment: "review"}, false, []string{"pr-7"}, "review"},
		{"tag push", &event{Name: "push", Ref: "refs/tags/v1.0", DefaultBranch: "main"}, Inputs{Production: "auto"}, false, nil, "preview/v1.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			r := &run{ev: tc.ev, in: &in, project: "web"}
			r.plan()
			if r.prod != tc.prod || !slices.Equal(r.aliases, tc.aliases) || r.env != tc.env {
				t.Errorf("plan = production %v aliases %v env %q; want %v %v %q", r.prod, r.aliases, r.env, tc.prod, tc.aliases, tc.env)
			}
		})
	}
}

func TestProjectFromRepo(t *testing.T) {
	t.Parallel()
	for repo, want := range map[string]string{
		"Hello-World":                   "hello-world",
		"my_site.io":                    "my-site-io",
		"--web--":                       "web",
		"a--b":                          "a-b",
		"Docs 2024":                     "docs-2024",
		"___":                           "site",
		strings.Repeat("long-name-", 6): "long-name-long-name-long-name-long-name",
	} {
		got := site.ProjectNameFromRepo(repo)
		if got != want {
			t.Errorf("ProjectNameFromRepo(%q) = %q, want %q", repo, got, want)
		}
		if got != "" {
			if err := site.ValidateProjectName(got); err != nil {
				t.Errorf("ProjectNameFromRepo(%q) = %q, not a valid project: %v", repo, got, err)
			}
		}
	}
}

// TestActionYAMLInputs keeps action.yml and the inputs the code reads in step: every input is declared with a
// description and a default (storage is required instead), and the Docker entrypoint runs `ferry action`.
func TestActionYAMLInputs(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join("..", "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var declared []string
	section := ""
	fields := map[string]map[string]bool{}
	sc := bufio.NewScanner(f)
	cur := ""
	var text []string
	for sc.Scan() {
		line := sc.Text()
		text = append(text, line)
		if line != "" && !strings.HasPrefix(line, " ") {
			section = strings.TrimSuffix(line, ":")
			continue
		}
		if section != "inputs" {
			continue
		}
		if strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && strings.HasSuffix(line, ":") {
			cur = strings.TrimSuffix(strings.TrimSpace(line), ":")
			declared = append(declared, cur)
			fields[cur] = map[string]bool{}
		} else if strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     ") {
			k, _, _ := strings.Cut(strings.TrimSpace(line), ":")
			fields[cur][k] = true
		}
	}
	if !slices.Equal(declared, inputNames) {
		t.Errorf("action.yml inputs = %v\ncode reads          %v", declared, inputNames)
	}
	for name, f := range fields {
		if !f["description"] || !(f["default"] || name == "storage" && f["required"]) {
			t.Errorf("input %s lacks a description or a default: %v", name, f)
		}
	}
	all := strings.Join(text, "\n")
	for _, want := range []string{"using: docker", "image: Dockerfile", "    - action", "branding:", "  deployment-url:", "  deployment-id:", "  url:", "  project:", "default: ${{ github.token }}"} {
		if !strings.Contains(all, want) {
			t.Errorf("action.yml lacks %q", want)
		}
	}
}

func TestReadEventRealPayloads(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file, name, ref, sha string
		pr                   int
		action               string
		defaultBranch        bool
	}{
		{"push/with-new-branch", "push", "refs/heads/master", "6113728f27ae82c7b1a177c8d03f9e96e0adf246", 0, "", true},
		{"pull_request/opened", "pull_request", "refs/pull/2/merge", "ec26c3e57ca3a959ca5aad62de7213c562f8c821", 2, "opened", false},
		{"pull_request/closed", "pull_request", "refs/pull/2/merge", "ec26c3e57ca3a959ca5aad62de7213c562f8c821", 2, "closed", false},
	} {
		env := newStrictEnv(t, map[string]string{
			"GITHUB_EVENT_NAME": tc.name, "GITHUB_EVENT_PATH": eventFile(t, tc.file),
			"GITHUB_REPOSITORY": "Codertocat/Hello-World", "GITHUB_REF": tc.ref, "GITHUB_SHA": "1111111111111111111111111111111111111111",
		})
		gctx, err := githubactions.New(githubactions.WithGetenv(env.getenv)).Context()
		if err != nil {
			t.Fatal(err)
		}
		ev, err := readEvent(gctx)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if ev.PR != tc.pr || ev.PRAction != tc.action || ev.onProductionBranch("") != tc.defaultBranch || ev.Owner != "Codertocat" || ev.Repo != "Hello-World" {
			t.Errorf("%s: %+v", tc.file, ev)
		}
		if tc.pr != 0 && (ev.SHA != tc.sha || ev.Branch != "changes") {
			t.Errorf("%s: sha %s branch %s; a PR deploys its head, not the merge commit", tc.file, ev.SHA, ev.Branch)
		}
	}
}

// FuzzReadEvent: any payload either parses or fails with an error; it never panics, and a parsed event always
// has a commit.
func FuzzReadEvent(f *testing.F) {
	for _, name := range []string{"push/with-new-branch", "pull_request/opened"} {
		b := ghwebhooks.Payload(f, name)
		f.Add(string(b), "push", "")
	}
	f.Add(`{"pull_request":{"number":3,"head":{"sha":""}}}`, "pull_request", "")
	f.Add(`{"pull_request":null,"number":"x"}`, "pull_request_target", "abc")
	f.Add(`[]`, "push", "")
	f.Fuzz(func(t *testing.T, payload, name, sha string) {
		var m map[string]any
		if json.Unmarshal([]byte(payload), &m) != nil {
			return // Context() refuses what is not a JSON object before readEvent sees it
		}
		gctx := &githubactions.GitHubContext{EventName: name, Repository: "o/r", SHA: sha, Event: m}
		ev, err := readEvent(gctx)
		if err == nil && ev.SHA == "" {
			t.Errorf("parsed an event without a commit: %+v", ev)
		}
	})
}

// TestReadEventFork: a pull request is a fork's when its head repository is another than its base (or gone),
// read from real payloads; head.repo.fork alone is not the test, since a fork's own pull requests have it too.
func TestReadEventFork(t *testing.T) {
	t.Parallel()
	b := ghwebhooks.Payload(t, "pull_request/opened")
	for name, tc := range map[string]struct {
		edit func(head, base map[string]any)
		fork bool
	}{
		"same repository":      {func(head, base map[string]any) {}, false},
		"head in another repo": {func(head, base map[string]any) { head["repo"].(map[string]any)["full_name"] = "mallory/Hello-World" }, true},
		"head repo deleted":    {func(head, base map[string]any) { head["repo"] = nil }, true},
		"case differs only":    {func(head, base map[string]any) { head["repo"].(map[string]any)["full_name"] = "codertocat/hello-world" }, false},
	} {
		m := map[string]any{}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		pr := m["pull_request"].(map[string]any)
		head, base := pr["head"].(map[string]any), pr["base"].(map[string]any)
		if head["repo"].(map[string]any)["full_name"] != base["repo"].(map[string]any)["full_name"] {
			t.Fatal("fixture: the real payload is expected to be a same-repository pull request")
		}
		tc.edit(head, base)
		ev, err := readEvent(&githubactions.GitHubContext{EventName: "pull_request", Repository: "Codertocat/Hello-World", SHA: "1111", Event: m})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Fork != tc.fork {
			t.Errorf("%s: fork = %v, want %v", name, ev.Fork, tc.fork)
		}
	}
}

// TestCacheScope: the Action's build reads and writes production's dependency cache only for a production
// deploy of the repository's own code, and none at all for a fork's pull request, even one deployed as
// production.
func TestCacheScope(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ev   event
		prod bool
		want string
	}{
		{event{Name: "push"}, true, build.CacheScopeProduction},
		{event{Name: "push"}, false, build.CacheScopePreview},
		{event{Name: "pull_request", PR: 7}, false, build.CacheScopePreview},
		{event{Name: "pull_request", PR: 7, Fork: true}, false, build.CacheScopeFork},
		{event{Name: "pull_request", PR: 7, Fork: true}, true, build.CacheScopeFork},
	} {
		ev := tc.ev
		if got := (&run{ev: &ev, prod: tc.prod}).cacheScope(); got != tc.want {
			t.Errorf("%+v production %v: scope %q, want %q", tc.ev, tc.prod, got, tc.want)
		}
	}
}
