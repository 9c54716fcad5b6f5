package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/app/builder/ecsfake"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/build/gitserver"
)

// TestECSPullRequest is issue 7's whole path on the real binaries: a real, signed pull_request delivery reaches
// `ferry app --builder ecs`, whose ECS and STS clients (the SDK's default chain, pointed at the fakes with
// AWS_ENDPOINT_URL_ECS and AWS_ENDPOINT_URL_STS) assume the build role and start a task. The fake ECS runs the
// task's container as a local `ferry build` process with exactly the command and environment RunTask carried,
// plus the build task definition's FERRY_SANDBOX=none, and no credentials at all: it claims its clone token
// and storage session from /internal/builds/<id>/secrets, clones from a git server that wants that token,
// publishes to versitygw with that session, and streams its log to /internal/builds/<id>/events. The deployment
// then serves through `ferry proxy` and GitHub hears about it.
func TestECSPullRequest(t *testing.T) {
	e, repo := newECSWorld(t, SiteFixture(t, 0))
	w, ecs, sts, appAddr, publicURL := e.World, e.ECS, e.STS, e.AppAddr, e.PublicURL
	_, proxyPort, _ := net.SplitHostPort(w.ProxyAddr)
	domain := "localhost:" + proxyPort
	const pr = 7
	alias := fmt.Sprintf("pr-%d", pr)
	aliasHost := fmt.Sprintf("%s--%s.localhost", alias, Project)
	head := repo.Commits[0]

	t0 := time.Now()
	body := w.PRPayload("pull_request/opened.payload.json", PR{Repo: repo, Number: pr, Head: head})
	if code := Deliver(t, appAddr, "pull_request", "e2e-ecs-opened", body); code != http.StatusAccepted {
		t.Fatalf("opened: status %d", code)
	}
	ds := w.WaitDeployments(90*time.Second, "the Deployment to finish", func(ds []Deployment) bool {
		return len(ds) == 1 && ds[0].Status != "queued" && ds[0].Status != "building"
	})
	d := ds[0]
	logText := deploymentLog(t, w, d.ID)
	if d.Status != "ready" || d.Alias != alias || d.PR != pr {
		var out strings.Builder
		for _, task := range ecs.Tasks() {
			fmt.Fprintf(&out, "%s:\n%s\n", task.ARN, tail(task.Output(), 40))
		}
		t.Fatalf("Deployment %+v\nlog:\n%s\ntasks:\n%s", d, logText, out.String())
	}
	t.Logf("webhook to ready through ECS: %s", time.Since(t0).Round(10*time.Millisecond))

	// RunTask: one task, placed and sized as the flags say, idempotent per attempt, running `ferry build` for
	// the PR's head with nothing but a claim token in its environment.
	runs := ecs.Calls("RunTask")
	if len(runs) != 1 {
		t.Fatalf("RunTask calls: %d, want 1", len(runs))
	}
	run := runs[0]
	co := run.Body["overrides"].(map[string]any)["containerOverrides"].([]any)[0].(map[string]any)
	claim, _ := co["environment"].([]any)[0].(map[string]any)["value"].(string)
	if !strings.HasPrefix(claim, "fbc_") {
		t.Errorf("FERRY_EVENTS_TOKEN %q is not a claim token", claim)
	}
	events := publicURL + "/internal/builds/" + d.ID
	want := map[string]any{
		"cluster":        "ferry-builds",
		"taskDefinition": "ferry-build:7",
		"count":          1.0,
		"launchType":     "FARGATE",
		"clientToken":    fmt.Sprintf("%s-%d", d.ID, d.Attempt),
		"startedBy":      "ferry-" + d.ID,
		"networkConfiguration": map[string]any{"awsvpcConfiguration": map[string]any{
			"subnets": []any{"subnet-0a1b2c3d", "subnet-4e5f6a7b"}, "securityGroups": []any{"sg-0123456789abcdef0"},
			"assignPublicIp": "ENABLED"}},
		"overrides": map[string]any{"cpu": "2048", "memory": "4096", "containerOverrides": []any{map[string]any{
			"name": "build",
			"command": strs("build", "--repo", w.GitURL+repo.Path, "--project", Project, "--storage", w.Storage,
				"--deployment-id", d.ID, "--json", "--log-format", "json",
				"--events-url", events+"/events", "--secrets-url", events+"/secrets",
				"--clone-allow", "127.0.0.0/8", // the App's --build-clone-allow (World.StartApp), for the loopback git fixture
				"--ref", head, "--domain", domain, "--cache-scope", "preview"), // no --alias: the App moves the alias once the build is ready
			"environment": []any{map[string]any{"name": "FERRY_EVENTS_TOKEN", "value": claim}},
		}}},
	}
	if !reflect.DeepEqual(run.Body, want) {
		g, _ := json.MarshalIndent(run.Body, "", "  ")
		wj, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("RunTask request:\n%s\nwant:\n%s", g, wj)
	}
	if d.Attempt != 1 {
		t.Errorf("attempt %d, want 1", d.Attempt)
	}
	// Nothing secret went through the ECS API, which anyone with ecs:DescribeTasks (and CloudTrail) reads.
	e.mu.Lock()
	seen := append([]string(nil), e.cloneTokens...)
	e.mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("the task cloned without an installation token")
	}
	secrets := append([]string{w.S3.AccessKey, w.S3.SecretKey, Secret, "-----BEGIN"}, seen...)
	for _, call := range ecs.Calls("") {
		for _, s := range secrets {
			if strings.Contains(call.Raw, s) {
				t.Errorf("ECS %s request holds the secret %q", call.Op, s)
			}
		}
	}
	// The claim token died at the claim: replaying it from the RunTask request gets nothing.
	req, _ := http.NewRequest(http.MethodPost, events+"/secrets", nil)
	req.Header.Set("Authorization", "Bearer "+claim)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusGone {
			t.Errorf("replayed claim token: status %d, want 401 or 410", resp.StatusCode)
		}
	}

	// STS: the build role, narrowed to this project's prefix, named after the deployment.
	assumes := sts.Requests()
	if len(assumes) != 1 {
		t.Fatalf("AssumeRole calls: %d, want 1", len(assumes))
	}
	a := assumes[0]
	if a.Get("RoleArn") != "arn:aws:iam::123456789012:role/ferry-build" || a.Get("SourceIdentity") != d.ID ||
		a.Get("RoleSessionName") != "ferry-"+d.ID || a.Get("DurationSeconds") != "3600" {
		t.Errorf("AssumeRole request: %v", a)
	}
	var policy struct {
		Statement []struct{ Action, Resource []string }
	}
	if err := json.Unmarshal([]byte(a.Get("Policy")), &policy); err != nil || len(policy.Statement) == 0 {
		t.Fatalf("session policy %q: %v", a.Get("Policy"), err)
	}
	bucketARN := "arn:aws:s3:::" + w.S3.Bucket
	projARN := bucketARN + "/sites/projects/" + Project + "/"
	var resources []string
	for _, st := range policy.Statement {
		for _, r := range st.Resource {
			resources = append(resources, r)
			if !strings.HasPrefix(r, projARN) && (r != bucketARN || !reflect.DeepEqual(st.Action, []string{"s3:ListBucket"})) {
				t.Errorf("session policy grants %v on %s, outside %s", st.Action, r, projARN)
			}
		}
	}
	if !contains(resources, projARN+"deployments/"+d.ID+".json") {
		t.Errorf("session policy lacks the deployment's manifest: %v", resources)
	}
	for _, r := range resources {
		if strings.Contains(r, "/aliases/") {
			t.Errorf("session policy lets the PR's code move an alias: %s", r)
		}
	}

	// The log: the task's own lines, which reached the App only over the events endpoint (its stdout and
	// stderr went to the fake's buffer), in order, next to the builder's.
	iClone, iBuild, iPublish := strings.Index(logText, "» clone started"), strings.Index(logText, "» build started"), strings.Index(logText, "» publish started")
	if iClone < 0 || iBuild < iClone || iPublish < iBuild {
		t.Errorf("log lacks the task's progress in order:\n%s", logText)
	}
	for _, line := range []string{"ferry ECS task " + ecs.Tasks()[0].ARN + " started", "ferry ECS task STOPPED", "build > node build.js"} {
		if !strings.Contains(logText, line) {
			t.Errorf("log lacks %q:\n%s", line, logText)
		}
	}
	if tasks := ecs.Tasks(); len(tasks) != 1 || !reflect.DeepEqual(tasks[0].Env, []string{"FERRY_EVENTS_TOKEN=" + claim}) {
		t.Errorf("tasks %+v", tasks)
	}

	// Served: the alias and the immutable deployment host, through the proxy.
	for _, host := range []string{aliasHost, d.ID + "--" + Project + ".localhost"} {
		if code, page := w.Get(host, "/"); code != http.StatusOK || !strings.Contains(page, "<title>Ferry example</title>") {
			t.Errorf("GET %s/: %d %.200q", host, code, page)
		}
		if code, js := w.Get(host, "/assets/app.8d3e5b7c.js"); code != http.StatusOK || !strings.Contains(js, "Hello from Ferry") {
			t.Errorf("GET %s/assets/app.8d3e5b7c.js: %d %.200q", host, code, js)
		}
	}

	// GitHub: one Deployment for the head in the PR's environment, queued → in_progress → success with the
	// live URL and a log link to the dashboard, and one PR comment.
	waitReported(t, w, pr, d.ID)
	ghDeps := w.GH.Deployments(Owner, RepoName)
	if len(ghDeps) != 1 || ghDeps[0].SHA != head || ghDeps[0].Environment != "preview/"+alias || !ghDeps[0].TransientEnvironment {
		t.Fatalf("GitHub deployments: %+v", ghDeps)
	}
	assertStates(t, w, ghDeps[0].ID, []string{"queued", "in_progress", "success"}, fmt.Sprintf("http://%s:%s", aliasHost, proxyPort))
	for _, s := range w.GH.DeploymentStatuses(ghDeps[0].ID) {
		if !s.Auto && !strings.HasPrefix(s.LogURL, publicURL+"/") {
			t.Errorf("%s status log_url %q, want the dashboard under %s", s.State, s.LogURL, publicURL)
		}
	}
	if c := w.GH.Comments(Owner, RepoName, pr); len(c) != 1 || !strings.Contains(c[0].Body, aliasHost) {
		t.Errorf("PR comments: %+v", c)
	}
}

// TestECSSupersede: a new commit on the pull request while its first build runs as an ECS task stops that
// task with StopTask (its process group dies, as a container would), and only the new commit's build, a task
// of its own with its own client token, moves the alias.
func TestECSSupersede(t *testing.T) {
	e, repo := newECSWorld(t, SiteFixture(t, 30),
		SiteFixture(t, 0, "Hello from Ferry", "Hello again from Ferry", "app.8d3e5b7c.js", "app.5e1f0a9b.js"))
	const pr = 8
	alias := fmt.Sprintf("pr-%d", pr)
	if code := Deliver(t, e.AppAddr, "pull_request", "e2e-ecs-slow", e.PRPayload("pull_request/opened.payload.json", PR{Repo: repo, Number: pr, Head: repo.Commits[0]})); code != http.StatusAccepted {
		t.Fatalf("opened: status %d", code)
	}
	// Wait for the first task to sit in its 30-second build step.
	deadline := time.Now().Add(45 * time.Second)
	for {
		if ts := e.ECS.Tasks(); len(ts) == 1 && strings.Contains(ts[0].Output(), `"step":"build"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first task never reached its build step; tasks: %d, deployments: %+v", len(e.ECS.Tasks()), e.Deployments())
		}
		time.Sleep(100 * time.Millisecond)
	}
	first := e.ECS.Tasks()[0]
	next := e.PRPayload("pull_request/synchronize.payload.json", PR{Repo: repo, Number: pr, Head: repo.Commits[1], Before: repo.Commits[0]})
	// GitHub moves the pull request's head before it sends synchronize; the new build supersedes once it says so.
	e.GH.SetPull(Owner, RepoName, pr, repo.Commits[1])
	if code := Deliver(t, e.AppAddr, "pull_request", "e2e-ecs-sync", next); code != http.StatusAccepted {
		t.Fatalf("synchronize: status %d", code)
	}
	ds := e.WaitDeployments(60*time.Second, "both Deployments to finish", func(ds []Deployment) bool {
		return len(ds) == 2 && ds[0].Status != "queued" && ds[0].Status != "building" && ds[1].Status != "queued" && ds[1].Status != "building"
	})
	if ds[0].Status != "canceled" || ds[1].Status != "ready" || ds[1].Alias != alias {
		t.Fatalf("Deployments %+v, want the first canceled and the second ready", ds)
	}
	if _, exited := first.Exited(); !exited {
		t.Error("the superseded task still runs")
	}
	stops := e.ECS.Calls("StopTask")
	if len(stops) != 1 || stops[0].Body["cluster"] != "ferry-builds" || stops[0].Body["task"] != first.ARN ||
		!strings.Contains(fmt.Sprint(stops[0].Body["reason"]), "superseded") {
		t.Errorf("StopTask calls: %+v", stops)
	}
	runs := e.ECS.Calls("RunTask")
	if len(runs) != 2 || runs[0].Body["clientToken"] != ds[0].ID+"-1" || runs[1].Body["clientToken"] != ds[1].ID+"-1" {
		t.Errorf("RunTask client tokens: %d calls %v", len(runs), clientTokens(runs))
	}
	host := alias + "--" + Project + ".localhost"
	if code, js := e.Get(host, "/assets/app.5e1f0a9b.js"); code != http.StatusOK || !strings.Contains(js, "Hello again from Ferry") {
		t.Errorf("GET %s/assets/app.5e1f0a9b.js: %d %.200q", host, code, js)
	}
	manifest := func(id string) error {
		_, err := e.S3.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(e.S3.Bucket),
			Key: aws.String("sites/projects/" + Project + "/deployments/" + id + ".json")})
		return err
	}
	if err := manifest(ds[1].ID); err != nil {
		t.Errorf("the new build's manifest: %v", err)
	}
	if manifest(ds[0].ID) == nil {
		t.Error("the superseded build published a manifest")
	}
}

func clientTokens(calls []ecsfake.Call) []any {
	var out []any
	for _, c := range calls {
		out = append(out, c.Body["clientToken"])
	}
	return out
}

// ecsWorld is a World whose `ferry app` runs builds on the ECS fake, as TestECSPullRequest describes.
type ecsWorld struct {
	*World
	ECS *ecsfake.ECS
	STS *ecsfake.STS
	// AppAddr is the app's address; PublicURL its --public-url, where tasks send their events.
	AppAddr, PublicURL string

	mu          sync.Mutex
	cloneTokens []string
}

// newECSWorld starts the parts, the proxy and `ferry app --builder ecs`, with Owner/RepoName holding commits
// on a git server that wants an installation token.
func newECSWorld(t *testing.T, commits ...map[string]string) (*ecsWorld, *gitserver.Repo) {
	w := NewWorld(t)
	repo, err := w.Git.CreateRepo(Owner+"/"+RepoName, commits)
	if err != nil {
		t.Fatal(err)
	}
	e := &ecsWorld{World: w}
	// The git server accepts only an installation token that the GitHub fake issued for the repository: the
	// task can only have it from its claim.
	gitSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || user != "x-access-token" || !installationToken(w, pass) {
			rw.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(rw, "authentication required", http.StatusUnauthorized)
			return
		}
		e.mu.Lock()
		e.cloneTokens = append(e.cloneTokens, pass)
		e.mu.Unlock()
		w.Git.ServeHTTP(rw, r)
	}))
	// As in NewWorld: keep "401" and "403" out of the URL, which build's fetchError would read as a refusal.
	for strings.Contains(gitSrv.Listener.Addr().String(), "401") || strings.Contains(gitSrv.Listener.Addr().String(), "403") {
		gitSrv.Listener.Close()
		if gitSrv.Listener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	gitSrv.Start()
	t.Cleanup(gitSrv.Close)
	w.GitURL = gitSrv.URL

	// The scoped session STS hands out is versitygw's own key pair: the task has no other keys, so a publish
	// that works went through the claimed session. It carries no session token, since versitygw refuses one
	// with a permanent key (InvalidToken); app/buildevents' end-to-end test covers a token on gofakes3.
	e.STS = ecsfake.NewSTS(t, ecsfake.Credentials{AccessKeyID: w.S3.AccessKey, SecretAccessKey: w.S3.SecretKey})
	taskRoot := t.TempDir()
	e.ECS = ecsfake.New(t, func(task *ecsfake.Task) *exec.Cmd {
		home := filepath.Join(taskRoot, filepath.Base(task.ARN))
		if err := os.MkdirAll(filepath.Join(home, "work"), 0o755); err != nil {
			t.Error(err)
		}
		cmd := exec.Command(w.Bin, task.Command...)
		// The build task definition's environment (deploy/terraform/ecs.tf) and the override's, nothing else.
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + filepath.Join(home, "work"),
			"FERRY_SANDBOX=none", "FERRY_TIMEOUT=120s"}, task.Env...)
		cmd.Dir = home
		return cmd
	})

	w.StartProxy()
	e.AppAddr = FreeAddr(t)
	e.PublicURL = "http://" + e.AppAddr // the task reaches the App here
	w.AppEnv = []string{"AWS_ENDPOINT_URL_ECS=" + e.ECS.URL, "AWS_ENDPOINT_URL_STS=" + e.STS.URL}
	w.StartApp(e.AppAddr, "--public-url", e.PublicURL, "--builder", "ecs", "--ecs-cluster", "ferry-builds",
		"--ecs-task-definition", "ferry-build:7", "--ecs-subnets", "subnet-0a1b2c3d, subnet-4e5f6a7b",
		"--ecs-security-groups", "sg-0123456789abcdef0", "--ecs-assign-public-ip", "--ecs-cpu", "2048",
		"--ecs-memory", "4096", "--ecs-build-role-arn", "arn:aws:iam::123456789012:role/ferry-build")
	return e, repo
}

// installationToken says whether tok is an installation token the GitHub fake issued for the repository.
func installationToken(w *World, tok string) bool {
	req, _ := http.NewRequest(http.MethodGet, w.GH.URL+"/repos/"+Owner+"/"+RepoName, nil)
	req.Header.Set("Authorization", "token "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// deploymentLog is the dashboard's log of a deployment, one "step line" per row.
func deploymentLog(t *testing.T, w *World, id string) string {
	t.Helper()
	lines, err := store.New(w.Pool).DeploymentLogList(context.Background(), store.DeploymentLogListParams{DeploymentID: id, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%s %s\n", l.Step, l.Line)
	}
	return b.String()
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func strs(s ...string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
