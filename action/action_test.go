package action

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
	"github.com/ferryhq/ferry/internal/ghwebhooks"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage/s3test"
)

const (
	owner   = "Codertocat"
	repo    = "Hello-World"
	project = "hello-world" // the default: a slug of the repository name
	domain  = "example.test"
	ghToken = "ghs_actionToken1234567890"
)

// harness is one repository's world: a real versitygw bucket, a fake GitHub, and the OIDC and STS stand-ins.
// Each run gets the environment a runner would give a Docker action step.
type harness struct {
	t    *testing.T
	gw   *s3test.Server
	gh   *ghfake.Server
	oidc *oidcServer
	sts  *stsServer
	ws   string // GITHUB_WORKSPACE
	// storageEndpoint is where the Action's storage URL points: versitygw, or a proxy in front of it.
	storageEndpoint string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, gw: s3test.StartVersityGW(t), gh: ghfake.New(t), ws: t.TempDir()}
	h.storageEndpoint = h.gw.Endpoint
	h.gh.AddToken(ghToken, owner+"/"+repo)
	h.oidc = newOIDCServer(t, "repo:Codertocat/Hello-World:ref:refs/heads/master")
	h.sts = newSTSServer(t, testRole, h.gw.AccessKey, h.gw.SecretKey, func(tok string) bool {
		return slices.Contains(h.oidc.issuedTokens(), tok)
	})
	return h
}

// writeSite puts files (path → contents) into the workspace.
func (h *harness) writeSite(files map[string]string) {
	h.t.Helper()
	for name, body := range files {
		p := filepath.Join(h.ws, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			h.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
}

// runResult is what one step left behind.
type runResult struct {
	err     error
	log     string
	outputs map[string]string
	summary string
}

// runStep runs `ferry action` for a real webhook payload (internal/ghwebhooks), adjusted by edit, with inputs on top
// of the harness's defaults (an empty value removes a default).
func (h *harness) runStep(eventName, payloadFile string, edit func(p map[string]any), inputs map[string]string, envEdit func(map[string]string)) runResult {
	h.t.Helper()
	raw := ghwebhooks.Payload(h.t, payloadFile)
	var payload map[string]any
	if err := json.Unmarshal(raw, &payload); err != nil {
		h.t.Fatal(err)
	}
	if edit != nil {
		edit(payload)
	}
	dir := h.t.TempDir()
	eventPath := filepath.Join(dir, "event.json")
	b, _ := json.Marshal(payload)
	if err := os.WriteFile(eventPath, b, 0o644); err != nil {
		h.t.Fatal(err)
	}
	outPath, summaryPath := filepath.Join(dir, "output"), filepath.Join(dir, "summary")
	for _, p := range []string{outPath, summaryPath} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			h.t.Fatal(err)
		}
	}

	sha, ref := "", ""
	if pr, ok := payload["pull_request"].(map[string]any); ok {
		ref = "refs/pull/" + jsonNum(pr["number"]) + "/merge"
		sha = "0123456789abcdef0123456789abcdef01234567" // the merge commit; the Action must report the head
	} else {
		ref, _ = payload["ref"].(string)
		sha, _ = payload["after"].(string)
	}
	storageURL := (&url.URL{Scheme: "s3", Host: h.gw.Bucket, Path: "/ferry",
		RawQuery: url.Values{"region": {h.gw.Region}, "endpoint": {h.storageEndpoint}, "path_style": {"true"}}.Encode()}).String()
	vars := map[string]string{
		"GITHUB_ACTIONS":                 "true",
		"GITHUB_EVENT_NAME":              eventName,
		"GITHUB_EVENT_PATH":              eventPath,
		"GITHUB_REPOSITORY":              owner + "/" + repo,
		"GITHUB_REPOSITORY_OWNER":        owner,
		"GITHUB_SHA":                     sha,
		"GITHUB_REF":                     ref,
		"GITHUB_API_URL":                 h.gh.URL,
		"GITHUB_SERVER_URL":              "https://github.com",
		"GITHUB_RUN_ID":                  "4242",
		"GITHUB_RUN_ATTEMPT":             "1",
		"GITHUB_WORKSPACE":               h.ws,
		"GITHUB_OUTPUT":                  outPath,
		"GITHUB_STEP_SUMMARY":            summaryPath,
		"ACTIONS_ID_TOKEN_REQUEST_URL":   h.oidc.URL + "/_apis/idtoken?api-version=2.0",
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": h.oidc.requestToken,
		"AWS_ENDPOINT_URL_STS":           h.sts.URL,
		inputEnv("storage"):              storageURL,
		inputEnv("role-to-assume"):       testRole,
		inputEnv("aws-region"):           "us-east-1",
		inputEnv("domain"):               domain,
		inputEnv("github-token"):         ghToken,
		inputEnv("production"):           "auto",
		inputEnv("comment"):              "true",
		inputEnv("directory"):            "dist",
	}
	for k, v := range inputs {
		vars[inputEnv(k)] = v
	}
	if envEdit != nil {
		envEdit(vars)
	}
	env := newStrictEnv(h.t, vars)
	var log bytes.Buffer
	// A hung step fails the test within a minute instead of stalling the whole package.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := Run(ctx, Options{Getenv: env.getenv, Stdout: &log})
	res := runResult{err: err, log: log.String(), outputs: readOutputs(h.t, outPath)}
	s, _ := os.ReadFile(summaryPath)
	res.summary = string(s)
	for _, line := range strings.Split(res.log, "\n") {
		if !strings.HasPrefix(line, "::add-mask::") && (strings.Contains(line, ghToken) || strings.Contains(line, h.gw.SecretKey)) {
			h.t.Errorf("a secret appears in the log unmasked: %s", line)
		}
	}
	return res
}

func jsonNum(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// readOutputs parses GITHUB_OUTPUT's name<<DELIM ... DELIM records.
func readOutputs(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		name, delim, ok := strings.Cut(lines[i], "<<")
		if !ok {
			continue
		}
		var val []string
		for i++; i < len(lines) && lines[i] != delim; i++ {
			val = append(val, lines[i])
		}
		out[name] = strings.Join(val, "\n")
	}
	return out
}

// store opens the bucket the way the proxy would, with versitygw's own keys.
func (h *harness) store() *site.Store { return site.NewStore(h.gw.Open(h.t, "ferry")) }

func (h *harness) alias(name string) (string, error) {
	a, err := h.store().AliasGet(context.Background(), project, name)
	if err != nil {
		return "", err
	}
	return a.Deployment, nil
}

// manifests lists the deployments whose manifests exist, and checks each names only blobs that exist.
func (h *harness) manifests() []string {
	h.t.Helper()
	ctx := context.Background()
	st := h.gw.Open(h.t, "ferry")
	objs, err := st.List(ctx, site.ProjectPrefix(project)+"deployments/")
	if err != nil {
		h.t.Fatalf("list manifests: %v", err)
	}
	var ids []string
	for _, o := range objs {
		id := strings.TrimSuffix(filepath.Base(o.Key), ".json")
		m, err := h.store().ManifestGet(ctx, project, id)
		if err != nil {
			h.t.Fatalf("read manifest %s: %v", id, err)
		}
		for p, f := range m.Files {
			if _, err := st.Stat(ctx, site.BlobKey(project, f.Blob)); err != nil {
				h.t.Errorf("manifest %s names %s with blob %s, which is missing: %v", id, p, f.Blob, err)
			}
		}
		ids = append(ids, id)
	}
	return ids
}

func TestPushToDefaultBranch(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.writeSite(map[string]string{"dist/index.html": "<h1>home</h1>", "dist/app.js": "console.log(1)"})

	res := h.runStep("push", "push/with-new-branch", nil, nil, nil)
	if res.err != nil {
		t.Fatalf("ferry action: %v\nlog:\n%s", res.err, res.log)
	}
	id := res.outputs["deployment-id"]
	if !site.IsDeploymentID(id) {
		t.Fatalf("deployment-id output %q; outputs %v", id, res.outputs)
	}
	want := map[string]string{
		"project":        project,
		"deployment-id":  id,
		"url":            "https://hello-world.example.test",
		"deployment-url": "https://" + id + "--hello-world.example.test",
	}
	for k, v := range want {
		if res.outputs[k] != v {
			t.Errorf("output %s = %q, want %q", k, res.outputs[k], v)
		}
	}
	if got, err := h.alias(site.ProductionAlias); err != nil || got != id {
		t.Errorf("production alias = %q, %v; want %s", got, err, id)
	}
	if got := h.manifests(); !slices.Equal(got, []string{id}) {
		t.Errorf("manifests = %v, want [%s]", got, id)
	}

	deps := h.gh.Deployments(owner, repo)
	if len(deps) != 1 {
		t.Fatalf("GitHub deployments = %d, want 1", len(deps))
	}
	d := deps[0]
	if d.Environment != "production" || !d.ProductionEnvironment || d.TransientEnvironment ||
		d.SHA != "6113728f27ae82c7b1a177c8d03f9e96e0adf246" {
		t.Errorf("deployment = env %q production %v transient %v sha %s", d.Environment, d.ProductionEnvironment, d.TransientEnvironment, d.SHA)
	}
	var states []string
	var last ghfake.DeploymentStatus
	for _, s := range h.gh.DeploymentStatuses(d.ID) {
		states = append(states, s.State)
		last = s
	}
	if !slices.Equal(states, []string{"in_progress", "success"}) {
		t.Errorf("deployment statuses = %v, want [in_progress success]", states)
	}
	if last.EnvironmentURL != "https://hello-world.example.test" || last.LogURL != "https://github.com/Codertocat/Hello-World/actions/runs/4242" {
		t.Errorf("success status: environment_url %q log_url %q", last.EnvironmentURL, last.LogURL)
	}
	if c := h.gh.CallsMatching("* /repos/*/*/issues/*"); len(c) != 0 {
		t.Errorf("a push touched PR comments: %v", ghfake.Lines(c))
	}
	for _, s := range []string{"https://hello-world.example.test", id, "| Uploaded | 2 |", "| Skipped (already stored) | 0 |"} {
		if !strings.Contains(res.summary, s) {
			t.Errorf("summary lacks %q:\n%s", s, res.summary)
		}
	}
	if !strings.Contains(res.log, "::group::Publish hello-world") || !strings.Contains(res.log, "::endgroup::") {
		t.Errorf("publish log is not grouped:\n%s", res.log)
	}

	// The same folder again: a new deployment that uploads nothing.
	res2 := h.runStep("push", "push/with-new-branch", nil, nil, nil)
	if res2.err != nil {
		t.Fatalf("second run: %v\n%s", res2.err, res2.log)
	}
	if !strings.Contains(res2.summary, "| Uploaded | 0 |") || !strings.Contains(res2.summary, "| Skipped (already stored) | 2 |") {
		t.Errorf("republish summary:\n%s", res2.summary)
	}
	if got, _ := h.alias(site.ProductionAlias); got != res2.outputs["deployment-id"] || got == id {
		t.Errorf("production alias = %s after the second run, want %s", got, res2.outputs["deployment-id"])
	}
}

// TestPushToOtherBranch: production auto is decided by the payload's default branch, not the branch's name.
func TestPushToOtherBranch(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.writeSite(map[string]string{"dist/index.html": "feature"})
	res := h.runStep("push", "push/with-new-branch", func(p map[string]any) {
		p["ref"] = "refs/heads/Feature/Login_Page"
		p["repository"].(map[string]any)["default_branch"] = "main"
	}, nil, nil)
	if res.err != nil {
		t.Fatalf("ferry action: %v\n%s", res.err, res.log)
	}
	alias := site.BranchAlias(project, "Feature/Login_Page")
	if res.outputs["url"] != "https://"+alias+"--hello-world.example.test" {
		t.Errorf("url = %q", res.outputs["url"])
	}
	if _, err := h.alias(site.ProductionAlias); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("a branch push set the production alias (err %v)", err)
	}
	if got, err := h.alias(alias); err != nil || got != res.outputs["deployment-id"] {
		t.Errorf("alias %s = %q, %v", alias, got, err)
	}
	d := h.gh.Deployments(owner, repo)
	if len(d) != 1 || d[0].Environment != "preview/Feature/Login_Page" || !d[0].TransientEnvironment {
		t.Errorf("deployments = %+v", d)
	}
}

func TestPullRequestLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.writeSite(map[string]string{"dist/index.html": "v1"})
	const pr = 2
	opened := h.runStep("pull_request", "pull_request/opened", nil, nil, nil)
	if opened.err != nil {
		t.Fatalf("opened: %v\n%s", opened.err, opened.log)
	}
	if got := opened.outputs["url"]; got != "https://pr-2--hello-world.example.test" {
		t.Errorf("url = %q", got)
	}
	if got, err := h.alias("pr-2"); err != nil || got != opened.outputs["deployment-id"] {
		t.Errorf("alias pr-2 = %q, %v", got, err)
	}
	if _, err := h.alias(site.ProductionAlias); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("a PR set the production alias (err %v)", err)
	}
	comments := h.gh.Comments(owner, repo, pr)
	if len(comments) != 1 || !strings.Contains(comments[0].Body, "https://pr-2--hello-world.example.test") || !strings.Contains(comments[0].Body, "Ready") {
		t.Fatalf("comments after opened = %+v", comments)
	}
	deps := h.gh.Deployments(owner, repo)
	if len(deps) != 1 || deps[0].Environment != "preview/pr-2" || !deps[0].TransientEnvironment ||
		deps[0].SHA != "ec26c3e57ca3a959ca5aad62de7213c562f8c821" {
		t.Fatalf("deployments after opened = %+v", deps)
	}

	editsAfterOpened := comments[0].Edits
	h.writeSite(map[string]string{"dist/index.html": "v2"})
	const head2 = "fedcba9876543210fedcba9876543210fedcba98"
	sync := h.runStep("pull_request", "pull_request/synchronize", func(p map[string]any) {
		p["pull_request"].(map[string]any)["head"].(map[string]any)["sha"] = head2
	}, nil, nil)
	if sync.err != nil {
		t.Fatalf("synchronize: %v\n%s", sync.err, sync.log)
	}
	if sync.outputs["deployment-id"] == opened.outputs["deployment-id"] {
		t.Errorf("synchronize reused the deployment id")
	}
	if got, _ := h.alias("pr-2"); got != sync.outputs["deployment-id"] {
		t.Errorf("alias pr-2 = %s, want the new deployment %s", got, sync.outputs["deployment-id"])
	}
	comments = h.gh.Comments(owner, repo, pr)
	if len(comments) != 1 {
		t.Fatalf("comments after synchronize = %d, want the same one edited", len(comments))
	}
	if comments[0].Edits <= editsAfterOpened || !strings.Contains(comments[0].Body, sync.outputs["deployment-id"]) || !strings.Contains(comments[0].Body, head2[:7]) {
		t.Errorf("comment after synchronize (edits %d):\n%s", comments[0].Edits, comments[0].Body)
	}
	if !strings.Contains(sync.summary, "| Uploaded | 1 |") {
		t.Errorf("synchronize summary:\n%s", sync.summary)
	}

	closed := h.runStep("pull_request", "pull_request/closed", nil, nil, nil)
	if closed.err != nil {
		t.Fatalf("closed: %v\n%s", closed.err, closed.log)
	}
	if _, err := h.alias("pr-2"); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("alias pr-2 after close: err %v, want ENOTFOUND", err)
	}
	if got := h.manifests(); len(got) != 2 {
		t.Errorf("deployments after close = %v; both stay reachable by id", got)
	}
	deps = h.gh.Deployments(owner, repo)
	if len(deps) != 2 {
		t.Fatalf("deployments = %d, want 2", len(deps))
	}
	for _, d := range deps {
		st := h.gh.DeploymentStatuses(d.ID)
		if len(st) == 0 || st[len(st)-1].State != "inactive" {
			t.Errorf("deployment %d statuses %+v, want the last inactive", d.ID, st)
		}
	}
	comments = h.gh.Comments(owner, repo, pr)
	if len(comments) != 1 || !strings.Contains(comments[0].Body, "Removed") {
		t.Errorf("comment after close = %+v", comments)
	}
	if closed.outputs["project"] != project || !strings.Contains(closed.summary, "pr-2") {
		t.Errorf("close outputs %v summary %q", closed.outputs, closed.summary)
	}
}

func TestMissingIDTokenPermission(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.writeSite(map[string]string{"dist/index.html": "x"})
	res := h.runStep("push", "push/with-new-branch", nil, nil, func(v map[string]string) {
		delete(v, "ACTIONS_ID_TOKEN_REQUEST_URL")
		delete(v, "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
	})
	if res.err == nil {
		t.Fatal("ferry action succeeded without id-token: write")
	}
	if !strings.Contains(res.err.Error(), "permissions:\n  id-token: write\n  contents: read\n  deployments: write\n  pull-requests: write") {
		t.Errorf("error lacks the permissions block:\n%v", res.err)
	}
	if ferry.ExitCode(res.err) != ferry.ExitUser {
		t.Errorf("exit code %d, want %d", ferry.ExitCode(res.err), ferry.ExitUser)
	}
	if c := h.gh.Calls(); len(c) != 0 {
		t.Errorf("GitHub was called before credentials were checked: %v", ghfake.Lines(c))
	}
	if !strings.Contains(res.summary, "id-token: write") {
		t.Errorf("the job summary does not show the fix:\n%s", res.summary)
	}
	if m := h.manifests(); len(m) != 0 {
		t.Errorf("manifests = %v", m)
	}
	if h.sts.callCount() != 0 {
		t.Errorf("STS was called %d times without an OIDC token", h.sts.callCount())
	}
}

func TestWrongCredentials(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.sts.secretKey = "not-the-secret-versitygw-knows"
	h.writeSite(map[string]string{"dist/index.html": "x", "dist/a.css": "body{}"})
	res := h.runStep("push", "push/with-new-branch", nil, nil, nil)
	if res.err == nil {
		t.Fatal("ferry action succeeded with keys the store refuses")
	}
	if c := ferry.ErrorCode(res.err); c != ferry.EFORBIDDEN && c != ferry.EUNAUTHORIZED {
		t.Errorf("error code %s, want forbidden or unauthorized: %v", c, res.err)
	}
	if !strings.Contains(res.err.Error(), "role-to-assume") {
		t.Errorf("error does not say what to check: %v", res.err)
	}
	if m := h.manifests(); len(m) != 0 {
		t.Errorf("manifests exist after refused credentials: %v", m)
	}
	deps := h.gh.Deployments(owner, repo)
	if len(deps) != 1 {
		t.Fatalf("deployments = %d", len(deps))
	}
	st := h.gh.DeploymentStatuses(deps[0].ID)
	if len(st) == 0 || st[len(st)-1].State != "failure" {
		t.Errorf("statuses = %+v, want the last failure", st)
	}
	if res.outputs["deployment-id"] != "" {
		t.Errorf("outputs after a failure: %v", res.outputs)
	}
}

// TestStorageOutageMidUpload puts a proxy in front of versitygw that lets the first blob through and then
// answers every PUT with 503 SlowDown: the upload is retried, then fails clearly, and no manifest appears.
func TestStorageOutageMidUpload(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	target, _ := url.Parse(h.gw.Endpoint)
	var mu sync.Mutex
	puts := map[string]int{}
	okPuts := 0
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // SigV4 signed the proxy's host
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			mu.Lock()
			puts[r.URL.Path]++
			fail := okPuts >= 1
			if !fail {
				okPuts++
			}
			mu.Unlock()
			if fail {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`))
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	h.storageEndpoint = srv.URL
	h.writeSite(map[string]string{"dist/index.html": "a", "dist/b.js": "b", "dist/c.css": "c"})

	res := h.runStep("push", "push/with-new-branch", nil, nil, nil)
	if res.err == nil {
		t.Fatal("ferry action succeeded while storage refused uploads")
	}
	if ferry.ErrorCode(res.err) != ferry.EUNAVAILABLE || ferry.ExitCode(res.err) != ferry.ExitInfra {
		t.Errorf("error %v: code %s, want unavailable (exit 1, so the job may be re-run)", res.err, ferry.ErrorCode(res.err))
	}
	if !strings.Contains(res.err.Error(), "re-run") {
		t.Errorf("error does not say what to do: %v", res.err)
	}
	mu.Lock()
	retried := false
	for _, n := range puts {
		retried = retried || n > 1
	}
	mu.Unlock()
	if !retried {
		t.Errorf("no PUT was retried: %v", puts)
	}
	if m := h.manifests(); len(m) != 0 {
		t.Errorf("a manifest was written although blobs are missing: %v", m)
	}
	deps := h.gh.Deployments(owner, repo)
	if len(deps) != 1 {
		t.Fatalf("deployments = %d", len(deps))
	}
	if st := h.gh.DeploymentStatuses(deps[0].ID); len(st) == 0 || st[len(st)-1].State != "error" {
		t.Errorf("statuses = %+v, want the last error (an infrastructure failure)", st)
	}
}

// TestBuild leaves directory empty: the Action builds the checked-out repository through the build runner
// (ferry.json's commands, as `ferry build` runs them) and publishes what the build wrote.
func TestBuild(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git is not installed")
		}
		t.Skip("git is not installed (apt-get install git)")
	}
	h := newHarness(t)
	h.writeSite(map[string]string{
		"ferry.json": `{"buildCommand": "mkdir -p out/assets && echo \"<h1>built $CI</h1>\" > out/index.html && echo x > out/assets/a.js", "outputDirectory": "out"}`,
		"README.md":  "a repository, as actions/checkout leaves it",
	})
	for _, args := range [][]string{
		{"init", "-q"}, {"add", "-A"},
		{"-c", "user.name=t", "-c", "user.email=t@example.test", "commit", "-q", "-m", "site"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = h.ws
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if os.Geteuid() == 0 {
		// As on GitHub: the Docker action runs as root, the checkout belongs to the runner's user (1001), and
		// git refuses repositories owned by someone else.
		chownTree(t, h.ws, 1001)
	}
	res := h.runStep("push", "push/with-new-branch", nil, map[string]string{"directory": ""}, nil)
	if res.err != nil {
		t.Fatalf("ferry action: %v\n%s", res.err, res.log)
	}
	id := res.outputs["deployment-id"]
	m, err := h.store().ManifestGet(context.Background(), project, id)
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if _, ok := m.Files["/index.html"]; !ok || len(m.Files) != 2 {
		t.Errorf("published files = %v, want the build's out/ (index.html, assets/a.js)", m.Files)
	}
	rc, err := h.gw.Open(t, "ferry").Get(context.Background(), site.BlobKey(project, m.Files["/index.html"].Blob))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	if string(body) != "<h1>built true</h1>\n" {
		t.Errorf("index.html = %q, want the build's output (with CI=true)", body)
	}
	for _, g := range []string{"::group::clone", "::group::detect", "::group::build", "::group::publish"} {
		if !strings.Contains(res.log, g) {
			t.Errorf("build log lacks %q:\n%s", g, res.log)
		}
	}
	if got, _ := h.alias(site.ProductionAlias); got != id {
		t.Errorf("production alias = %q, want %s", got, id)
	}
}

// TestBuildWithInputs: the build-command, install-command and root-directory inputs win over ferry.json and
// over detection, on a checkout that belongs to the runner's user.
func TestBuildWithInputs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.writeSite(map[string]string{
		"ferry.json":            `{"buildCommand": "echo ferry.json wins; exit 5", "outputDirectory": "out"}`,
		"docs/index.html":       "the wrong root",
		"apps/web/package.json": `{"name":"web","private":true,"scripts":{"build":"exit 6"}}`,
	})
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=t", "-c", "user.email=t@example.test", "commit", "-q", "-m", "x"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = h.ws
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if os.Geteuid() == 0 {
		chownTree(t, h.ws, 1001)
	}
	res := h.runStep("push", "push/with-new-branch", nil, map[string]string{
		"directory":       "",
		"root-directory":  "apps/web",
		"install-command": "echo installing with the input > installed.txt",
		"build-command":   `mkdir -p out && echo "<h1>from the input, $(cat installed.txt)</h1>" > out/index.html`,
	}, nil)
	if res.err != nil {
		t.Fatalf("ferry action: %v\n%s", res.err, res.log)
	}
	m, err := h.store().ManifestGet(context.Background(), project, res.outputs["deployment-id"])
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	f, ok := m.Files["/index.html"]
	if !ok || len(m.Files) != 1 {
		t.Fatalf("published files = %v, want apps/web/out/index.html alone", m.Files)
	}
	rc, err := h.gw.Open(t, "ferry").Get(context.Background(), site.BlobKey(project, f.Blob))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	if string(body) != "<h1>from the input, installing with the input</h1>\n" {
		t.Errorf("index.html = %q, want what the inputs' commands wrote", body)
	}
	if !strings.Contains(res.log, "buildCommand override") {
		t.Errorf("the log does not say the input overrode ferry.json:\n%s", res.log)
	}
}

// TestBuildFailure: the user's failing build command is a failure (final), reported as such on GitHub.
func TestBuildFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.writeSite(map[string]string{"ferry.json": `{"buildCommand": "echo compiling; exit 3", "outputDirectory": "out"}`})
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=t", "-c", "user.email=t@example.test", "commit", "-q", "-m", "x"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = h.ws
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	res := h.runStep("push", "push/with-new-branch", nil, map[string]string{"directory": ""}, nil)
	if ferry.ErrorCode(res.err) != ferry.EBUILD || ferry.ExitCode(res.err) != ferry.ExitUser {
		t.Fatalf("error = %v (code %s), want a build failure", res.err, ferry.ErrorCode(res.err))
	}
	deps := h.gh.Deployments(owner, repo)
	if len(deps) != 1 {
		t.Fatalf("deployments = %d", len(deps))
	}
	if st := h.gh.DeploymentStatuses(deps[0].ID); st[len(st)-1].State != "failure" {
		t.Errorf("last status %s, want failure", st[len(st)-1].State)
	}
	if m := h.manifests(); len(m) != 0 {
		t.Errorf("manifests = %v", m)
	}
}

// TestKeysWithoutRole: with no role-to-assume, keys from the step's env (secrets) are used, and no OIDC token
// is requested.
func TestKeysWithoutRole(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.writeSite(map[string]string{"dist/index.html": "k"})
	res := h.runStep("push", "push/with-new-branch", nil, map[string]string{"role-to-assume": ""}, func(v map[string]string) {
		v["AWS_ACCESS_KEY_ID"] = h.gw.AccessKey
		v["AWS_SECRET_ACCESS_KEY"] = h.gw.SecretKey
	})
	if res.err != nil {
		t.Fatalf("ferry action: %v\n%s", res.err, res.log)
	}
	if got, _ := h.alias(site.ProductionAlias); got != res.outputs["deployment-id"] {
		t.Errorf("production alias = %q, want %s", got, res.outputs["deployment-id"])
	}
	if n := len(h.oidc.issuedTokens()); n != 0 || h.sts.callCount() != 0 {
		t.Errorf("OIDC tokens %d, STS calls %d; want none without a role", n, h.sts.callCount())
	}
}

// TestDeletedBranch: a push that deletes a branch deploys nothing and touches nothing.
func TestDeletedBranch(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	res := h.runStep("push", "push/with-new-branch", func(p map[string]any) {
		p["deleted"] = true
		p["after"] = "0000000000000000000000000000000000000000"
	}, nil, nil)
	if res.err != nil {
		t.Fatalf("ferry action: %v\n%s", res.err, res.log)
	}
	if c := h.gh.Calls(); len(c) != 0 {
		t.Errorf("GitHub calls for a deleted branch: %v", ghfake.Lines(c))
	}
	if m := h.manifests(); len(m) != 0 {
		t.Errorf("manifests = %v", m)
	}
	if h.sts.callCount() != 0 {
		t.Errorf("STS was called %d times for a deleted branch", h.sts.callCount())
	}
}

func chownTree(t *testing.T, dir string, uid int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
	if err != nil {
		t.Fatalf("chown %s: %v", dir, err)
	}
}

// TestMissingPullRequestsPermission: a token that may not comment fails the step before anything is
// published, with the permission to add.
func TestMissingPullRequestsPermission(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.gh.FailNext("GET /repos/*/*/issues/*/comments", 100, ghfake.Forbidden())
	h.writeSite(map[string]string{"dist/index.html": "x"})
	res := h.runStep("pull_request", "pull_request/opened", nil, nil, nil)
	if ferry.ErrorCode(res.err) != ferry.EFORBIDDEN || !strings.Contains(res.err.Error(), "pull-requests: write") {
		t.Fatalf("error = %v (code %s), want forbidden naming pull-requests: write", res.err, ferry.ErrorCode(res.err))
	}
	if m := h.manifests(); len(m) != 0 {
		t.Errorf("published although the run failed first: %v", m)
	}
	deps := h.gh.Deployments(owner, repo)
	if len(deps) != 1 {
		t.Fatalf("deployments = %d", len(deps))
	}
	if st := h.gh.DeploymentStatuses(deps[0].ID); st[len(st)-1].State != "failure" {
		t.Errorf("the GitHub deployment was left %s, want failure", st[len(st)-1].State)
	}
	if !strings.Contains(res.log, "::warning::") {
		t.Errorf("the failed report of the failure is not a warning:\n%s", res.log)
	}
}

// TestCheckRun: with `checks: write` the Action reports the same ferry/<project> check run as the App
// (in_progress, then completed with the URLs); without it, a log line says so and the deploy goes on.
func TestCheckRun(t *testing.T) {
	t.Parallel()
	const sha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
	h := newHarness(t)
	h.writeSite(map[string]string{"dist/index.html": "<h1>home</h1>"})
	res := h.runStep("push", "push/with-new-branch", nil, nil, nil)
	if res.err != nil {
		t.Fatalf("ferry action: %v\n%s", res.err, res.log)
	}
	runs := h.gh.CheckRuns(owner, repo, sha)
	if len(runs) != 1 {
		t.Fatalf("check runs = %+v", runs)
	}
	c := runs[0]
	var states []string
	for _, u := range c.Updates {
		states = append(states, u.Status+"/"+u.Conclusion)
	}
	if !slices.Equal(states, []string{"in_progress/", "completed/success"}) || c.Name != "ferry/"+project ||
		c.ExternalID != res.outputs["deployment-id"] || c.DetailsURL != "https://github.com/Codertocat/Hello-World/actions/runs/4242" {
		t.Errorf("check run %+v, states %v", c, states)
	}
	if !strings.Contains(c.Output.Summary, "https://hello-world.example.test") || !strings.Contains(c.Output.Summary, res.outputs["deployment-url"]) {
		t.Errorf("summary lacks the URLs:\n%s", c.Output.Summary)
	}
	for _, call := range h.gh.CallsMatching("* /repos/*/*/check-runs*") {
		if call.Auth != ghfake.AuthToken {
			t.Errorf("%s with %s, want the workflow's token", call, call.Auth)
		}
	}

	// The token without checks: write.
	h2 := newHarness(t)
	h2.gh.DenyChecks(ghToken)
	h2.writeSite(map[string]string{"dist/index.html": "<h1>home</h1>"})
	res = h2.runStep("push", "push/with-new-branch", nil, nil, nil)
	if res.err != nil {
		t.Fatalf("ferry action without checks: write: %v\n%s", res.err, res.log)
	}
	if !strings.Contains(res.log, "check run skipped") || strings.Contains(res.log, "::warning::ferry/"+project+" check run") {
		t.Errorf("log does not say the check run was skipped (once, without a warning):\n%s", res.log)
	}
	if n := len(h2.gh.CallsMatching("* /repos/*/*/check-runs*")); n != 1 {
		t.Errorf("%d check-run calls, want the one refused attempt", n)
	}
	if d := h2.gh.Deployments(owner, repo); len(d) != 1 {
		t.Errorf("deployments = %d, want 1", len(d))
	}
}
