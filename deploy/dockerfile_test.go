package deploy

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the module root, relative to this package.
const repoRoot = ".."

// instruction is one Dockerfile instruction after line continuations are joined.
type instruction struct {
	line int    // 1-based line where it starts
	cmd  string // upper-cased keyword: FROM, RUN, ...
	args string // the rest, continuations joined with a space
}

// parseDockerfile splits a Dockerfile into instructions. It understands comments, blank lines and backslash
// continuations, which is all Ferry's Dockerfile uses; a heredoc (<<EOF) is refused rather than misread.
func parseDockerfile(src string) ([]instruction, error) {
	var out []instruction
	var cur *instruction
	for i, raw := range strings.Split(src, "\n") {
		line := strings.TrimRight(raw, " \t\r")
		trimmed := strings.TrimSpace(line)
		if cur == nil && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur != nil && strings.HasPrefix(trimmed, "#") {
			continue // Docker drops comment lines inside a continued instruction
		}
		cont := strings.HasSuffix(line, "\\")
		if cont {
			line = strings.TrimSuffix(line, "\\")
		}
		if cur == nil {
			kw, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
			if !regexp.MustCompile(`^[A-Za-z]+$`).MatchString(kw) {
				return nil, fmt.Errorf("line %d: %q is not an instruction", i+1, kw)
			}
			cur = &instruction{line: i + 1, cmd: strings.ToUpper(kw), args: strings.TrimSpace(rest)}
		} else if t := strings.TrimSpace(line); t != "" {
			cur.args = strings.TrimSpace(cur.args + " " + t)
		}
		if !cont {
			if strings.Contains(cur.args, "<<") && (cur.cmd == "RUN" || cur.cmd == "COPY") {
				return nil, fmt.Errorf("line %d: heredocs are not supported by this check", cur.line)
			}
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: continuation runs past the end of the file", cur.line)
	}
	return out, nil
}

// stage is one FROM ... [AS name] section.
type stage struct {
	name  string // "" when unnamed
	base  string // the FROM image with build arguments expanded
	steps []instruction
}

// dockerfile is the parsed Dockerfile: the global ARG defaults and the stages in order.
type dockerfile struct {
	args   map[string]string
	stages []stage
}

var argRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

func splitStages(ins []instruction) (*dockerfile, error) {
	d := &dockerfile{args: map[string]string{}}
	for _, in := range ins {
		switch {
		case in.cmd == "ARG" && len(d.stages) == 0:
			name, def, ok := strings.Cut(in.args, "=")
			if !ok {
				return nil, fmt.Errorf("line %d: global ARG %s has no default, so the image it selects is not pinned", in.line, name)
			}
			d.args[name] = def
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			if len(f) != 1 && !(len(f) == 3 && strings.EqualFold(f[1], "AS")) {
				return nil, fmt.Errorf("line %d: FROM %s: want IMAGE [AS NAME]", in.line, in.args)
			}
			var err error
			base := argRef.ReplaceAllStringFunc(f[0], func(m string) string {
				name := argRef.FindStringSubmatch(m)[1]
				v, ok := d.args[name]
				if !ok {
					err = fmt.Errorf("line %d: FROM uses $%s, which no global ARG declares", in.line, name)
				}
				return v
			})
			if err != nil {
				return nil, err
			}
			s := stage{base: base}
			if len(f) == 3 {
				s.name = f[2]
			}
			d.stages = append(d.stages, s)
		case len(d.stages) == 0:
			return nil, fmt.Errorf("line %d: %s before the first FROM", in.line, in.cmd)
		default:
			last := &d.stages[len(d.stages)-1]
			last.steps = append(last.steps, in)
		}
	}
	if len(d.stages) == 0 {
		return nil, errors.New("no FROM")
	}
	return d, nil
}

// stage0 is the index of the stage named name before stage i, or -1: Docker resolves FROM <name> only to
// earlier stages, so following it always ends.
func (d *dockerfile) stage0(name string, i int) int {
	for j := 0; j < i; j++ {
		if d.stages[j].name == name {
			return j
		}
	}
	return -1
}

func (d *dockerfile) stage(name string) (stage, int) {
	for i, s := range d.stages {
		if s.name == name {
			return s, i
		}
	}
	return stage{}, -1
}

// effective returns the last value of instruction cmd in stage i, following FROM <earlier stage> chains, the
// way Docker inherits USER, ENTRYPOINT, CMD and WORKDIR.
func (d *dockerfile) effective(i int, cmd string) (string, bool) {
	for i >= 0 {
		s := d.stages[i]
		for j := len(s.steps) - 1; j >= 0; j-- {
			if s.steps[j].cmd == cmd {
				return s.steps[j].args, true
			}
		}
		j := d.stage0(s.base, i)
		i = j
	}
	return "", false
}

func loadDockerfile(t testing.TB) *dockerfile {
	t.Helper()
	b, err := os.ReadFile(repoRoot + "/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	ins, err := parseDockerfile(string(b))
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	d, err := splitStages(ins)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return d
}

// pinned says whether an image reference names an exact version (at least MAJOR.MINOR.PATCH) or a digest.
var pinned = regexp.MustCompile(`^[a-z0-9./-]+(:\d+\.\d+\.\d+[a-z0-9.-]*)?(@sha256:[0-9a-f]{64})?$`)

func TestDockerfileStages(t *testing.T) {
	d := loadDockerfile(t)
	var names []string
	for _, s := range d.stages {
		names = append(names, s.name)
	}
	if got, want := strings.Join(names, ","), "build,server,action"; got != want {
		t.Fatalf("stages %s, want %s", got, want)
	}
	// GitHub builds the last stage for `image: Dockerfile`; it must be the Action's.
	if last := d.stages[len(d.stages)-1]; last.name != "action" || last.base != "server" {
		t.Errorf("last stage is %q FROM %q, want action FROM server: the Action must run the same image as the servers", last.name, last.base)
	}
	for i, s := range d.stages {
		if d.stage0(s.base, i) >= 0 {
			continue
		}
		if !pinned.MatchString(s.base) || !strings.Contains(s.base, ":") {
			t.Errorf("stage %s: FROM %s is not pinned to an exact version (image:X.Y.Z[-variant]) or digest", s.name, s.base)
		}
		if strings.Contains(s.base, "latest") {
			t.Errorf("stage %s: FROM %s uses a latest tag", s.name, s.base)
		}
	}
	if b, _ := d.stage("build"); !strings.HasPrefix(b.base, "golang:") {
		t.Errorf("build stage FROM %s, want golang", b.base)
	}
	if s, _ := d.stage("server"); !strings.HasPrefix(s.base, "node:") || !strings.HasSuffix(s.base, "-bookworm-slim") {
		t.Errorf("server stage FROM %s, want node:X.Y.Z-bookworm-slim (node and npm for builds; bookworm is what the apt step is checked against)", s.base)
	}
}

func TestDockerfileGoVersionCoversGoMod(t *testing.T) {
	d := loadDockerfile(t)
	gomod, err := os.ReadFile(repoRoot + "/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+(?:\.\d+)?)$`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	img := d.args["GO_VERSION"]
	if compareVersions(img, string(m[1])) < 0 {
		t.Errorf("Dockerfile GO_VERSION %s is older than go.mod's go %s; with GOTOOLCHAIN=local the image build would fail", img, m[1])
	}
	b, _ := d.stage("build")
	if !hasStep(b, "ENV", "GOTOOLCHAIN=local") {
		t.Error("build stage does not set GOTOOLCHAIN=local: a go.mod newer than the image would download a toolchain mid-build")
	}
}

func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < 3; i++ {
		var x, y int
		if i < len(pa) {
			fmt.Sscan(pa[i], &x)
		}
		if i < len(pb) {
			fmt.Sscan(pb[i], &y)
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func hasStep(s stage, cmd, args string) bool {
	for _, in := range s.steps {
		if in.cmd == cmd && in.args == args {
			return true
		}
	}
	return false
}

func TestDockerfileUsersAndEntrypoint(t *testing.T) {
	d := loadDockerfile(t)
	_, server := d.stage("server")
	_, action := d.stage("action")
	if u, ok := d.effective(server, "USER"); !ok || isRoot(u) {
		t.Errorf("server stage runs as %q: app, proxy and build tasks must run as a non-root user", u)
	}
	// GitHub documents that Docker actions must run as root, or they cannot write GITHUB_WORKSPACE.
	if u, ok := d.effective(action, "USER"); !ok || !isRoot(u) {
		t.Errorf("action stage runs as %q, want root: the Action writes /github/workspace and GITHUB_OUTPUT", u)
	}
	for _, i := range []int{server, action} {
		if ep, _ := d.effective(i, "ENTRYPOINT"); ep != `["ferry"]` {
			t.Errorf("stage %s: ENTRYPOINT %s, want the exec form [\"ferry\"] (action.yml's args are passed to it)", d.stages[i].name, ep)
		}
		// The node base image's CMD is ["node"]; without our own CMD, a bare `docker run` would run `ferry node`.
		if cmd, ok := d.effective(i, "CMD"); !ok || strings.Contains(cmd, "node") {
			t.Errorf("stage %s: CMD %q is inherited from the base image", d.stages[i].name, cmd)
		}
	}
	// The non-root user must be the one the useradd step creates.
	u, _ := d.effective(server, "USER")
	uid, _, _ := strings.Cut(u, ":")
	s, _ := d.stage("server")
	found := false
	for _, in := range s.steps {
		if in.cmd == "RUN" && strings.Contains(in.args, "useradd") && strings.Contains(in.args, "--uid "+uid+" ") {
			found = true
		}
	}
	if !found {
		t.Errorf("USER %s: no RUN useradd --uid %s in the server stage", u, uid)
	}
	if !hasStepPrefix(s, "COPY", "--from=build ") {
		t.Error("server stage does not COPY the binary --from=build")
	}
}

func isRoot(user string) bool {
	name, _, _ := strings.Cut(user, ":")
	return name == "root" || name == "0"
}

func hasStepPrefix(s stage, cmd, prefix string) bool {
	for _, in := range s.steps {
		if in.cmd == cmd && strings.HasPrefix(in.args, prefix) {
			return true
		}
	}
	return false
}

func TestDockerfileFetchesNothingUnverified(t *testing.T) {
	d := loadDockerfile(t)
	for _, s := range d.stages {
		for _, in := range s.steps {
			if in.cmd == "ADD" {
				t.Errorf("line %d: ADD; use COPY (ADD fetches URLs and unpacks archives, unverified)", in.line)
			}
			if in.cmd == "RUN" && regexp.MustCompile(`\b(curl|wget)\b`).MatchString(in.args) {
				t.Errorf("line %d: RUN downloads with curl/wget; install from the base image's package manager instead", in.line)
			}
			if strings.Contains(in.args, ":latest") {
				t.Errorf("line %d: a latest tag", in.line)
			}
		}
	}
}

// TestActionYAMLUsesDockerfile ties action.yml to the Dockerfile: GitHub builds the Dockerfile's last stage
// and passes args to its ENTRYPOINT.
func TestActionYAMLUsesDockerfile(t *testing.T) {
	b, err := os.ReadFile(repoRoot + "/action.yml")
	if err != nil {
		t.Fatal(err)
	}
	y := string(b)
	for _, want := range []string{"using: docker", "image: Dockerfile", "args:\n    - action"} {
		if !strings.Contains(y, want) {
			t.Errorf("action.yml lacks %q", want)
		}
	}
}

func TestParseDockerfile(t *testing.T) {
	src := "# comment\nARG A=1\n\nFROM x:${A}.2.3 AS b\nRUN one \\\n  # dropped\n  two \\\n  three\nUSER 1:1\n"
	ins, err := parseDockerfile(src)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(ins)
	want := "[{2 ARG A=1} {4 FROM x:${A}.2.3 AS b} {5 RUN one two three} {9 USER 1:1}]"
	if got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	d, err := splitStages(ins)
	if err != nil {
		t.Fatal(err)
	}
	if d.stages[0].base != "x:1.2.3" || d.stages[0].name != "b" {
		t.Errorf("stage %+v", d.stages[0])
	}
	for _, bad := range []string{"RUN x\n", "FROM a\nRUN cat <<EOF\n", "ARG V\nFROM a:$V\n", "FROM a:$NOPE\n", "FROM a b c d\n", "FROM a\n?? x\n"} {
		ins, err := parseDockerfile(bad)
		if err == nil {
			_, err = splitStages(ins)
		}
		if err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzParseDockerfile(f *testing.F) {
	if b, err := os.ReadFile(repoRoot + "/Dockerfile"); err == nil {
		f.Add(string(b))
	}
	f.Add("FROM a\nRUN b \\\n c\n")
	f.Add("ARG X=1\nFROM a:$X AS s\nFROM s\nUSER 0\n")
	f.Fuzz(func(t *testing.T, src string) {
		ins, err := parseDockerfile(src)
		if err != nil {
			return
		}
		lines := strings.Count(src, "\n") + 1
		for _, in := range ins {
			if in.line < 1 || in.line > lines {
				t.Fatalf("line %d outside 1..%d", in.line, lines)
			}
			if in.cmd == "" || strings.ToUpper(in.cmd) != in.cmd {
				t.Fatalf("keyword %q", in.cmd)
			}
			if strings.Contains(in.args, "\n") {
				t.Fatalf("args span lines: %q", in.args)
			}
		}
		d, err := splitStages(ins)
		if err != nil {
			return
		}
		for i := range d.stages {
			d.effective(i, "USER") // must terminate, even for FROM cycles of stage names
		}
	})
}
