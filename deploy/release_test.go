package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const releaseWorkflow = repoRoot + "/.github/workflows/release.yml"

// TestReleaseWorkflow checks the release workflow's promises without running it: tag trigger, least
// permissions, actions pinned to exact versions, no expression expanded inside a shell script (where a tag or
// branch name could inject commands), and the v1 move.
func TestReleaseWorkflow(t *testing.T) {
	b, err := os.ReadFile(releaseWorkflow)
	if err != nil {
		t.Fatal(err)
	}
	y := string(b)
	if strings.Contains(y, "\t") {
		t.Fatal("release.yml contains a tab, which YAML does not allow for indentation")
	}
	for _, want := range []string{
		"on:\n  push:\n    tags: [\"v*.*.*\"]\n",
		"\npermissions: {}\n",
		"    permissions:\n      contents: write # move the major tag, create the release\n      packages: write # push to GHCR\n      id-token: write # OIDC credentials for ECR, no stored AWS keys\n    env:",
		"git tag -f \"$MAJOR\" \"$GITHUB_SHA\"",
		"git push -f origin \"refs/tags/$MAJOR\"",
		"target: server",
	} {
		if !strings.Contains(y, want) {
			t.Errorf("release.yml lacks %q", want)
		}
	}
	if n := strings.Count(y, "permissions:"); n != 2 {
		t.Errorf("release.yml has %d permissions blocks, want the empty default and the job's", n)
	}
	pin := regexp.MustCompile(`^[a-z0-9-]+/[a-z0-9-]+(/[a-z0-9/-]+)?@(v\d+\.\d+\.\d+|[0-9a-f]{40})$`)
	uses := regexp.MustCompile(`(?m)^\s*(?:- )?uses: (\S+)`).FindAllStringSubmatch(y, -1)
	if len(uses) == 0 {
		t.Fatal("no uses: lines")
	}
	for _, u := range uses {
		if !pin.MatchString(u[1]) {
			t.Errorf("uses: %s is not pinned to an exact version vX.Y.Z or a commit SHA", u[1])
		}
	}
	for _, block := range runBlocks(y) {
		if strings.Contains(block, "${{") {
			t.Errorf("a run: script expands ${{ }} directly; pass it through env: instead:\n%s", block)
		}
	}
}

// runBlocks returns the bodies of `run: |` scripts: the lines indented deeper than the run: key.
func runBlocks(y string) []string {
	var blocks []string
	lines := strings.Split(y, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		trimmed := strings.TrimPrefix(strings.TrimLeft(l, " "), "- ")
		if !strings.HasPrefix(trimmed, "run:") {
			continue
		}
		indent := len(l) - len(trimmed) // the key's column, past any "- "
		if rest := strings.TrimSpace(strings.TrimPrefix(trimmed, "run:")); rest != "|" && rest != ">" {
			blocks = append(blocks, rest)
			continue
		}
		var body []string
		for i+1 < len(lines) {
			n := lines[i+1]
			if strings.TrimSpace(n) != "" && len(n)-len(strings.TrimLeft(n, " ")) <= indent {
				break
			}
			body = append(body, n)
			i++
		}
		blocks = append(blocks, strings.Join(body, "\n"))
	}
	return blocks
}

func TestRunBlocks(t *testing.T) {
	y := "steps:\n  - run: echo ${{ x }}\n  - run: |\n      a\n\n      b\n    env:\n      C: d\n"
	got := runBlocks(y)
	if len(got) != 2 || got[0] != "echo ${{ x }}" || got[1] != "      a\n\n      b" {
		t.Fatalf("runBlocks = %q", got)
	}
}

// releaseScript returns the run: script of release.yml that contains marker.
func releaseScript(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile(releaseWorkflow)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range runBlocks(string(b)) {
		if strings.Contains(s, marker) {
			return s
		}
	}
	t.Fatalf("no run: script contains %q", marker)
	return ""
}

// runScript runs a workflow script with bash, as GitHub does, and returns what it wrote to GITHUB_OUTPUT.
func runScript(t *testing.T, script string, env ...string) (map[string]string, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "output")
	cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "GITHUB_OUTPUT=" + out}, env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%w: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	kv := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		kv[k] = v
	}
	return kv, nil
}

func TestReleaseTagCheck(t *testing.T) {
	script := releaseScript(t, "BASH_REMATCH")
	for tag, want := range map[string]string{
		"v1.2.3":       "major=v1 prerelease=false",
		"v12.0.10":     "major=v12 prerelease=false",
		"v2.0.0-rc.1":  "major=v2 prerelease=true",
		"v1.2":         "error",
		"1.2.3":        "error",
		"v1.2.3;id":    "error",
		"v1.2.3\nv1":   "error",
		"v1.2.3-$(id)": "error",
	} {
		kv, err := runScript(t, script, "TAG="+tag)
		got := "error"
		if err == nil {
			got = "major=" + kv["major"] + " prerelease=" + kv["prerelease"]
		}
		if got != want {
			t.Errorf("tag %q: %s, want %s (%v)", tag, got, want, err)
		}
	}
}

func TestReleaseImageTags(t *testing.T) {
	script := releaseScript(t, "tags+=")
	kv, err := runScript(t, script, "TAG=v1.2.3", "MAJOR=v1", "PRERELEASE=false", "GHCR_IMAGE=ghcr.io/FerryHQ/ferry",
		"ECR_REGISTRY=111122223333.dkr.ecr.eu-west-1.amazonaws.com", "ECR_REPOSITORY=ferry")
	if err != nil {
		t.Fatal(err)
	}
	want := "ghcr.io/ferryhq/ferry:v1.2.3,ghcr.io/ferryhq/ferry:v1," +
		"111122223333.dkr.ecr.eu-west-1.amazonaws.com/ferry:v1.2.3,111122223333.dkr.ecr.eu-west-1.amazonaws.com/ferry:v1"
	if kv["tags"] != want {
		t.Errorf("tags %s\nwant %s", kv["tags"], want)
	}
	// A pre-release, without ECR: only its own tag; v1 stays where it is.
	kv, err = runScript(t, script, "TAG=v2.0.0-rc.1", "MAJOR=v2", "PRERELEASE=true", "GHCR_IMAGE=ghcr.io/ferryhq/ferry")
	if err != nil {
		t.Fatal(err)
	}
	if kv["tags"] != "ghcr.io/ferryhq/ferry:v2.0.0-rc.1" {
		t.Errorf("pre-release tags %s", kv["tags"])
	}
}
