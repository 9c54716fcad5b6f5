package builder_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/builder"
	"github.com/ferryhq/ferry/app/buildevents"
	"github.com/ferryhq/ferry/internal/ferry"
)

const (
	testDeployment = "dpl-0123456789abcdef"
	testTaskARN    = "arn:aws:ecs:eu-west-1:123456789012:task/ferry/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	testRoleARN    = "arn:aws:iam::123456789012:role/ferry-build"
)

type ecsWorld struct {
	ecs    *ecsFake
	sts    *stsFake
	grants *grantsFake
	b      *builder.ECS
}

func newECSWorld(t *testing.T, mod func(*builder.ECSConfig)) *ecsWorld {
	t.Helper()
	w := &ecsWorld{ecs: newECSFake(t), sts: newSTSFake(t), grants: &grantsFake{attempt: 3}}
	w.ecs.set("RunTask", func(map[string]any) (int, any) {
		return 200, map[string]any{"tasks": []any{task(testTaskARN, "PROVISIONING", nil)}, "failures": []any{}}
	})
	w.ecs.set("StopTask", func(map[string]any) (int, any) {
		return 200, map[string]any{"task": task(testTaskARN, "STOPPING", nil)}
	})
	cfg := builder.ECSConfig{
		Cluster: "ferry", TaskDefinition: "ferry-build", Subnets: []string{"subnet-a", "subnet-b"},
		SecurityGroups: []string{"sg-build"}, AssignPublicIP: true, CPU: "2048", Memory: "4096",
		BuildRoleARN: testRoleARN, EventsURL: "https://ferry.example.com/", Grants: w.grants,
		ECS: w.ecs.client(), STS: w.sts.client(), SessionDuration: 40 * time.Minute,
		StartTimeout: 5 * time.Second, PollMin: time.Millisecond, PollMax: 5 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := builder.NewECS(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.b = b
	return w
}

// describeSequence answers DescribeTasks with the given tasks in turn, repeating the last.
func (w *ecsWorld) describeSequence(tasks ...map[string]any) {
	var n atomic.Int64
	w.ecs.set("DescribeTasks", func(map[string]any) (int, any) {
		i := min(int(n.Add(1))-1, len(tasks)-1)
		return 200, map[string]any{"tasks": []any{tasks[i]}, "failures": []any{}}
	})
}

func testRequest() builder.Request {
	return builder.Request{DeploymentID: testDeployment, Project: "web", CloneURL: "https://github.com/acme/web.git",
		Ref: "0123456789abcdef0123456789abcdef01234567", Token: "ghs_secretinstallationtoken",
		Env: map[string]string{"API_KEY": "env-secret-value"}, Domain: "preview.example.com",
		Storage: "s3://ferry-sites/prod?region=eu-west-1"}
}

// TestECSBuildRunTaskRequest follows a build that publishes: the scoped session, the grant, the exact
// RunTask request, the polling and the result, and checks that no secret is in anything the ECS API shows.
func TestECSBuildRunTaskRequest(t *testing.T) {
	t.Parallel()
	w := newECSWorld(t, nil)
	w.describeSequence(task(testTaskARN, "PROVISIONING", nil), task(testTaskARN, "PENDING", nil),
		task(testTaskARN, "RUNNING", nil), stopped(testTaskARN, "EssentialContainerExited", "Essential container in task exited", 0, ""))
	w.grants.outcome = buildevents.Outcome{Claimed: true, Result: json.RawMessage(
		`{"project":"web","deployment":"dpl-0123456789abcdef","urls":["https://dpl-0123456789abcdef--web.preview.example.com"],"commit":"0123456789abcdef0123456789abcdef01234567","files":3,"build_seconds":12.5}`)}
	var lines []string
	req := testRequest()
	req.Log = func(l builder.LogLine) { lines = append(lines, l.Message) }

	res, err := w.b.Build(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deployment != testDeployment || res.Files != 3 || res.BuildSeconds != 12.5 || len(res.URLs) != 1 {
		t.Errorf("result %+v", res)
	}

	// STS: the build role, a session named for the deployment, the build's lifetime, a session policy.
	f := w.sts.form(0)
	for k, want := range map[string]string{"Action": "AssumeRole", "RoleArn": testRoleARN, "RoleSessionName": "ferry-" + testDeployment,
		"SourceIdentity": testDeployment, "DurationSeconds": "2400"} {
		if got := f.Get(k); got != want {
			t.Errorf("AssumeRole %s = %q, want %q", k, got, want)
		}
	}
	if f.Get("Policy") == "" {
		t.Error("AssumeRole without a session policy")
	}

	// The grant carries the secrets: the task fetches them, they never travel through ECS.
	if len(w.grants.issued) != 1 {
		t.Fatalf("grants issued: %d", len(w.grants.issued))
	}
	sec := w.grants.issued[0].Secrets
	if sec.GitHubToken != req.Token || sec.Env["API_KEY"] != "env-secret-value" || sec.AWS == nil ||
		sec.AWS.AccessKeyID != "ASIASCOPED" || sec.AWS.SecretAccessKey != "scoped-secret-key" || sec.AWS.SessionToken != "scoped-session-token" {
		t.Errorf("granted secrets %+v", sec)
	}
	if !reflect.DeepEqual(w.grants.revoked, []string{testDeployment}) {
		t.Errorf("revoked %v, want the deployment once", w.grants.revoked)
	}

	runs := w.ecs.callsOf("RunTask")
	if len(runs) != 1 {
		t.Fatalf("RunTask calls: %d", len(runs))
	}
	var got map[string]any
	_ = json.Unmarshal([]byte(runs[0].Raw), &got)
	want := map[string]any{
		"cluster": "ferry", "taskDefinition": "ferry-build", "count": 1.0, "launchType": "FARGATE",
		"clientToken": testDeployment + "-3", "startedBy": "ferry-" + testDeployment,
		"networkConfiguration": map[string]any{"awsvpcConfiguration": map[string]any{
			"subnets": []any{"subnet-a", "subnet-b"}, "securityGroups": []any{"sg-build"}, "assignPublicIp": "ENABLED"}},
		"overrides": map[string]any{"cpu": "2048", "memory": "4096", "containerOverrides": []any{map[string]any{
			"name": "build",
			"command": []any{"build", "--repo", "https://github.com/acme/web.git", "--project", "web",
				"--storage", "s3://ferry-sites/prod?region=eu-west-1", "--deployment-id", testDeployment, "--json",
				"--log-format", "json",
				"--events-url", "https://ferry.example.com/internal/builds/" + testDeployment + "/events",
				"--secrets-url", "https://ferry.example.com/internal/builds/" + testDeployment + "/secrets",
				"--ref", req.Ref, "--domain", "preview.example.com"},
			"environment": []any{map[string]any{"name": "FERRY_EVENTS_TOKEN", "value": "fbc_claimtoken"}},
		}}},
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		wj, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("RunTask request:\n%s\nwant:\n%s", g, wj)
	}
	for _, c := range append(runs, w.ecs.callsOf("DescribeTasks")...) {
		for _, secret := range []string{req.Token, "env-secret-value", "scoped-secret-key", "scoped-session-token", "ASIASCOPED"} {
			if strings.Contains(c.Raw, secret) {
				t.Errorf("%s request holds a secret %q", c.Op, secret)
			}
		}
	}
	if d := w.ecs.callsOf("DescribeTasks"); len(d) != 4 || d[0].Body["cluster"] != "ferry" ||
		!reflect.DeepEqual(d[0].Body["tasks"], []any{testTaskARN}) {
		t.Errorf("DescribeTasks calls %+v", d)
	}
	if len(w.ecs.callsOf("StopTask")) != 0 {
		t.Error("StopTask called for a build that ended by itself")
	}
	joined := strings.Join(lines, "\n")
	for _, s := range []string{"ECS task " + testTaskARN + " started", "ECS task RUNNING", "ECS task STOPPED"} {
		if !strings.Contains(joined, s) {
			t.Errorf("log lacks %q:\n%s", s, joined)
		}
	}
}

// TestECSCapacityProvider: a capacity provider strategy replaces the launch type.
func TestECSCapacityProvider(t *testing.T) {
	t.Parallel()
	w := newECSWorld(t, func(c *builder.ECSConfig) { c.CapacityProvider = "FARGATE_SPOT"; c.CPU, c.Memory = "", "" })
	w.describeSequence(stopped(testTaskARN, "EssentialContainerExited", "Essential container in task exited", 0, ""))
	w.grants.outcome.Result = json.RawMessage(`{"deployment":"dpl-0123456789abcdef"}`)
	if _, err := w.b.Build(context.Background(), testRequest()); err != nil {
		t.Fatal(err)
	}
	body := w.ecs.callsOf("RunTask")[0].Body
	if _, ok := body["launchType"]; ok {
		t.Error("launchType sent next to a capacity provider strategy (ECS refuses both)")
	}
	if !reflect.DeepEqual(body["capacityProviderStrategy"], []any{map[string]any{"capacityProvider": "FARGATE_SPOT", "weight": 1.0}}) {
		t.Errorf("capacityProviderStrategy %v", body["capacityProviderStrategy"])
	}
	if o := body["overrides"].(map[string]any); o["cpu"] != nil || o["memory"] != nil {
		t.Errorf("size overrides sent without --ecs-cpu/--ecs-memory: %v", o)
	}
}

// TestECSStopReasons maps every way a task stops to EBUILD (final) or EUNAVAILABLE (retried), through the
// real client and DescribeTasks answers shaped as ECS sends them.
func TestECSStopReasons(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name            string
		stopCode        string
		reason          string
		exit            int
		containerReason string
		reported        string // the build's error event
		wantCode        string
		wantMsg         string
	}{
		{"exit 2 is the user's", "EssentialContainerExited", "Essential container in task exited", 2, "", "build: npm run build exited 1", ferry.EBUILD, "build: npm run build exited 1"},
		{"exit 2 without a report", "EssentialContainerExited", "Essential container in task exited", 2, "", "", ferry.EBUILD, "the build failed"},
		{"exit 1 is infrastructure", "EssentialContainerExited", "Essential container in task exited", 1, "", "upload blob: S3 unavailable", ferry.EUNAVAILABLE, "upload blob: S3 unavailable"},
		{"exit 137 killed", "EssentialContainerExited", "Essential container in task exited", 137, "", "", ferry.EUNAVAILABLE, "exited with code 137"},
		{"out of memory", "EssentialContainerExited", "Essential container in task exited", 137, "OutOfMemoryError: Container killed due to memory usage", "", ferry.EBUILD, "ran out of memory"},
		{"image pull", "TaskFailedToStart", "CannotPullContainerError: pull image manifest has been retried 5 time(s): not found", -1, "", "", ferry.EUNAVAILABLE, "could not be pulled"},
		{"resource init", "TaskFailedToStart", "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed", -1, "", "", ferry.EUNAVAILABLE, "ResourceInitializationError"},
		{"ENI", "TaskFailedToStart", "Timeout waiting for network interface provisioning to complete.", -1, "", "", ferry.EUNAVAILABLE, "network interface"},
		{"ENI limit", "TaskFailedToStart", "ENI limit exceeded for the subnet", -1, "", "", ferry.EUNAVAILABLE, "network interface (ENI)"},
		{"capacity", "TaskFailedToStart", "Capacity is unavailable at this time. Please try again later or in a different availability zone", -1, "", "", ferry.EUNAVAILABLE, "no capacity"},
		{"failed to start", "TaskFailedToStart", "Task failed to start", -1, "", "", ferry.EUNAVAILABLE, "failed to start"},
		{"spot", "SpotInterruption", "Your Spot Task was interrupted.", 143, "", "", ferry.EUNAVAILABLE, "interrupted by AWS"},
		{"spot exit 2 is still spot", "SpotInterruption", "Your Spot Task was interrupted.", 2, "", "", ferry.EUNAVAILABLE, "interrupted by AWS"},
		{"termination notice", "TerminationNotice", "Task stopped due to host termination", -1, "", "", ferry.EUNAVAILABLE, "interrupted by AWS"},
		{"stopped by a user", "UserInitiated", "Task stopped by user", 143, "", "", ferry.EUNAVAILABLE, "stopped from outside Ferry"},
		{"scheduler", "ServiceSchedulerInitiated", "Scaling activity initiated by deployment", 143, "", "", ferry.EUNAVAILABLE, "stopped from outside Ferry"},
		{"host health", "InfrastructureHealth", "Host EC2 instance health check failed", -1, "", "", ferry.EUNAVAILABLE, "host failed"},
		{"never ran", "", "Essential container in task exited", -1, "", "", ferry.EUNAVAILABLE, "before its container ran"},
		{"exit 0 without result", "EssentialContainerExited", "Essential container in task exited", 0, "", "", ferry.EUNAVAILABLE, "result never reached the App"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newECSWorld(t, nil)
			w.describeSequence(stopped(testTaskARN, c.stopCode, c.reason, c.exit, c.containerReason))
			if c.reported != "" {
				w.grants.outcome = buildevents.Outcome{Claimed: true, ErrorCode: ferry.EBUILD, Error: c.reported}
			}
			_, err := w.b.Build(context.Background(), testRequest())
			if got := ferry.ErrorCode(err); got != c.wantCode {
				t.Fatalf("code %q, want %q (err: %v)", got, c.wantCode, err)
			}
			if !strings.Contains(err.Error(), c.wantMsg) {
				t.Errorf("error %q lacks %q", err, c.wantMsg)
			}
			if ferry.IsRetryable(err) != (c.wantCode != ferry.EBUILD) {
				t.Errorf("retryable = %v for %s", ferry.IsRetryable(err), c.wantCode)
			}
		})
	}
}

// TestECSThrottling: ThrottlingException answers are retried by the client, with the same client token, so
// that a retry cannot start a second task.
func TestECSThrottling(t *testing.T) {
	t.Parallel()
	w := newECSWorld(t, nil)
	var runs, describes atomic.Int64
	w.ecs.set("RunTask", func(map[string]any) (int, any) {
		if runs.Add(1) == 1 {
			return 400, awsError("ThrottlingException", "Rate exceeded")
		}
		return 200, map[string]any{"tasks": []any{task(testTaskARN, "PROVISIONING", nil)}}
	})
	w.ecs.set("DescribeTasks", func(map[string]any) (int, any) {
		switch describes.Add(1) {
		case 1, 2, 3, 4, 5: // more than the client's own attempts: the builder keeps polling
			return 400, awsError("ThrottlingException", "Rate exceeded")
		case 6:
			return 200, map[string]any{"tasks": []any{}, "failures": []any{map[string]any{"arn": testTaskARN, "reason": "MISSING"}}}
		}
		return 200, map[string]any{"tasks": []any{stopped(testTaskARN, "EssentialContainerExited", "Essential container in task exited", 0, "")}}
	})
	w.grants.outcome.Result = json.RawMessage(`{"deployment":"dpl-0123456789abcdef"}`)
	if _, err := w.b.Build(context.Background(), testRequest()); err != nil {
		t.Fatal(err)
	}
	calls := w.ecs.callsOf("RunTask")
	if len(calls) != 2 || calls[0].Body["clientToken"] != calls[1].Body["clientToken"] || calls[0].Body["clientToken"] != testDeployment+"-3" {
		t.Errorf("RunTask calls %d with client tokens %v, %v", len(calls), calls[0].Body["clientToken"], calls[len(calls)-1].Body["clientToken"])
	}
	if describes.Load() < 7 {
		t.Errorf("DescribeTasks called %d times", describes.Load())
	}
}

// TestECSTaskNeverStarts: a task stuck in PROVISIONING fails the attempt as an infrastructure error after
// StartTimeout, and is stopped.
func TestECSTaskNeverStarts(t *testing.T) {
	t.Parallel()
	w := newECSWorld(t, func(c *builder.ECSConfig) { c.StartTimeout = 150 * time.Millisecond })
	w.describeSequence(task(testTaskARN, "PROVISIONING", nil))
	t0 := time.Now()
	_, err := w.b.Build(context.Background(), testRequest())
	if ferry.ErrorCode(err) != ferry.EUNAVAILABLE || !strings.Contains(err.Error(), "did not start within") ||
		!strings.Contains(err.Error(), "PROVISIONING") {
		t.Fatalf("err %v, want EUNAVAILABLE: did not start", err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("took %s", d)
	}
	stops := w.ecs.callsOf("StopTask")
	if len(stops) != 1 || stops[0].Body["task"] != testTaskARN || stops[0].Body["cluster"] != "ferry" {
		t.Errorf("StopTask calls %+v", stops)
	}
	if len(w.grants.revoked) != 1 {
		t.Error("tokens not revoked")
	}
}

// TestECSCancelStopsTask: a superseded build (ctx canceled with a cause) stops its task.
func TestECSCancelStopsTask(t *testing.T) {
	t.Parallel()
	w := newECSWorld(t, nil)
	w.describeSequence(task(testTaskARN, "RUNNING", nil))
	ctx, cancel := context.WithCancelCause(context.Background())
	superseded := errors.New("superseded by dpl-1")
	go func() {
		for len(w.ecs.callsOf("DescribeTasks")) < 3 {
			time.Sleep(time.Millisecond)
		}
		cancel(superseded)
	}()
	_, err := w.b.Build(ctx, testRequest())
	if !errors.Is(err, superseded) {
		t.Fatalf("err %v, want the cancel cause", err)
	}
	stops := w.ecs.callsOf("StopTask")
	if len(stops) != 1 || stops[0].Body["task"] != testTaskARN || !strings.Contains(stops[0].Body["reason"].(string), "superseded") {
		t.Errorf("StopTask calls %+v", stops)
	}
}

// TestECSRunTaskFailures: RunTask answering with failures and no task, or with an API error, is retried.
func TestECSRunTaskFailures(t *testing.T) {
	t.Parallel()
	w := newECSWorld(t, nil)
	w.ecs.set("RunTask", func(map[string]any) (int, any) {
		return 200, map[string]any{"tasks": []any{}, "failures": []any{map[string]any{"reason": "RESOURCE:MEMORY", "detail": "no room"}}}
	})
	_, err := w.b.Build(context.Background(), testRequest())
	if ferry.ErrorCode(err) != ferry.EUNAVAILABLE || !strings.Contains(err.Error(), "RESOURCE:MEMORY") {
		t.Errorf("failures: %v", err)
	}
	w.ecs.set("RunTask", func(map[string]any) (int, any) {
		return 400, awsError("AccessDeniedException", "not allowed to run task")
	})
	_, err = w.b.Build(context.Background(), testRequest())
	if ferry.ErrorCode(err) != ferry.EUNAVAILABLE || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("access denied: %v", err)
	}
	if n := len(w.ecs.callsOf("DescribeTasks")); n != 0 {
		t.Errorf("DescribeTasks called %d times without a task", n)
	}
}

// TestNewECSNeedsItsFlags names the flag (and its FERRY_ variable) that is missing.
func TestNewECSNeedsItsFlags(t *testing.T) {
	t.Parallel()
	full := builder.ECSConfig{Cluster: "c", TaskDefinition: "td", Subnets: []string{"s"}, BuildRoleARN: testRoleARN,
		EventsURL: "https://ferry.example.com", Grants: &grantsFake{}, ECS: newECSFake(t).client(), STS: newSTSFake(t).client()}
	for _, c := range []struct {
		mod  func(*builder.ECSConfig)
		want string
	}{
		{func(c *builder.ECSConfig) { c.Cluster = "" }, "FERRY_ECS_CLUSTER"},
		{func(c *builder.ECSConfig) { c.TaskDefinition = "" }, "FERRY_ECS_TASK_DEFINITION"},
		{func(c *builder.ECSConfig) { c.Subnets = nil }, "FERRY_ECS_SUBNETS"},
		{func(c *builder.ECSConfig) { c.BuildRoleARN = "" }, "FERRY_ECS_BUILD_ROLE_ARN"},
		{func(c *builder.ECSConfig) { c.BuildRoleARN = "ferry-build" }, "not a role ARN"},
		{func(c *builder.ECSConfig) { c.EventsURL = "" }, "--public-url"},
	} {
		cfg := full
		c.mod(&cfg)
		_, err := builder.NewECS(context.Background(), cfg)
		if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err %v, want EINVALID naming %s", err, c.want)
		}
	}
	if _, err := builder.NewECS(context.Background(), full); err != nil {
		t.Errorf("full config: %v", err)
	}
}

// policy is a parsed session policy with just enough IAM evaluation (Allow statements, * wildcards in
// resources) to ask what it permits.
type policy struct {
	Version   string
	Statement []struct {
		Effect    string
		Action    []string
		Resource  []string
		Condition map[string]map[string][]string
	}
}

// allows evaluates the policy as IAM does: allowed by some statement and denied by none.
func (p policy) allows(action, resource string) bool {
	allowed := false
	for _, s := range p.Statement {
		for _, a := range s.Action {
			if a != action {
				continue
			}
			for _, r := range s.Resource {
				if wildcard(r, resource) {
					if s.Effect == "Deny" {
						return false
					}
					allowed = allowed || s.Effect == "Allow"
				}
			}
		}
	}
	return allowed
}

// wildcard matches IAM's * (any characters, slashes included).
func wildcard(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(s, p)
		}
		j := strings.Index(s, p)
		if j < 0 {
			return false
		}
		s = s[j+len(p):]
	}
	return true
}

// TestSessionPolicyScope evaluates the session policy the builder sends to STS: its project's keys, its own
// manifest and aliases, nothing of other projects or deployments, and production only when asked.
func TestSessionPolicyScope(t *testing.T) {
	t.Parallel()
	w := newECSWorld(t, nil)
	w.describeSequence(stopped(testTaskARN, "EssentialContainerExited", "Essential container in task exited", 2, ""))
	req := testRequest()
	req.Aliases = []string{"pr-42"}
	_, _ = w.b.Build(context.Background(), req)
	var p policy
	if err := json.Unmarshal([]byte(w.sts.form(0).Get("Policy")), &p); err != nil {
		t.Fatalf("session policy is not JSON: %v", err)
	}
	const b = "arn:aws:s3:::ferry-sites/prod/"
	for _, c := range []struct {
		action, key string
		want        bool
	}{
		{"s3:GetObject", "projects/web/blobs/ab12", true},
		{"s3:GetObject", "projects/web/cache/preview/0f.tar.gz", true},
		{"s3:GetObject", "projects/web/cache/production/0f.tar.gz", false},
		{"s3:GetObject", "projects/web/deployments/dpl-zzzzzzzzzzzzzzzz.json", true},
		{"s3:PutObject", "projects/web/blobs/ab12", true},
		{"s3:PutObject", "projects/web/cache/preview/0f.tar.gz", true},
		{"s3:PutObject", "projects/web/cache/production/0f.tar.gz", false},
		{"s3:PutObject", "projects/web/deployments/" + testDeployment + ".json", true},
		{"s3:PutObject", "projects/web/aliases/pr-42.json", true},
		{"s3:AbortMultipartUpload", "projects/web/blobs/ab12", true},
		{"s3:PutObject", "projects/web/aliases/production.json", false},
		{"s3:PutObject", "projects/web/deployments/dpl-zzzzzzzzzzzzzzzz.json", false},
		{"s3:GetObject", "projects/other/blobs/ab12", false},
		{"s3:GetObject", "projects/webx/blobs/ab12", false},
		{"s3:PutObject", "projects/other/blobs/ab12", false},
		{"s3:DeleteObject", "projects/web/blobs/ab12", false},
		{"s3:PutObject", "projects/web/publishing/" + testDeployment + "-0a1b2c.json", true},
		{"s3:DeleteObject", "projects/web/publishing/" + testDeployment + "-0a1b2c.json", true},
		{"s3:DeleteObject", "projects/web/publishing/dpl-zzzzzzzzzzzzzzzz-0a1b2c.json", false},
		{"s3:DeleteObject", "projects/web/gc/leases/x.json", false},
		{"s3:GetObject", "secrets.json", false},
	} {
		if got := p.allows(c.action, b+c.key); got != c.want {
			t.Errorf("%s %s: allowed=%v, want %v", c.action, c.key, got, c.want)
		}
	}
	if p.allows("s3:GetObject", "arn:aws:s3:::other-bucket/prod/projects/web/blobs/ab12") {
		t.Error("another bucket is readable")
	}
	if !p.allows("s3:ListBucket", "arn:aws:s3:::ferry-sites") {
		t.Error("ListBucket missing: missing keys would answer 403 instead of 404")
	}
	for _, s := range p.Statement {
		if reflect.DeepEqual(s.Action, []string{"s3:ListBucket"}) {
			got := s.Condition["StringLikeIfExists"]["s3:prefix"]
			if !reflect.DeepEqual(got, []string{"prod/projects/web/", "prod/projects/web/*"}) {
				t.Errorf("ListBucket prefix condition %v", got)
			}
		}
	}

	if _, err := builder.SessionPolicy("aws", "file:///var/lib/ferry", "web", testDeployment, "", nil); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("file storage: %v, want EINVALID", err)
	}
	if _, err := builder.SessionPolicy("aws", "s3://b", "web", testDeployment, "", []string{"../x"}); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("bad alias: %v", err)
	}
	if _, err := builder.SessionPolicy("aws", "s3://b", "web", testDeployment, "../production", nil); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("bad cache scope: %v", err)
	}
	cn, _ := builder.SessionPolicy("aws-cn", "s3://b", "web", testDeployment, "", nil)
	if !strings.Contains(cn, "arn:aws-cn:s3:::b/projects/web/") {
		t.Errorf("partition: %s", cn)
	}
}

// TestECSCommandOverrides: the project's overrides reach the build task's command as ferry build's flags.
func TestECSCommandOverrides(t *testing.T) {
	t.Parallel()
	w := newECSWorld(t, nil)
	req := testRequest()
	dir, cmd := "web", "npm run build:prod"
	req.Overrides = builder.Overrides{RootDirectory: &dir, BuildCommand: &cmd}
	got := w.b.Command(req)
	want := []string{"--root-directory=web", "--build-command=npm run build:prod"}
	if !reflect.DeepEqual(got[len(got)-2:], want) {
		t.Fatalf("command %q does not end in %q", got, want)
	}
	req.Overrides = builder.Overrides{}
	if got := w.b.Command(req); strings.Contains(strings.Join(got, " "), "-command") || strings.Contains(strings.Join(got, " "), "-directory") {
		t.Fatalf("command without overrides: %q", got)
	}
}

// TestSessionPolicyCacheScopes: a build's session reads and writes its own trust scope's dependency cache
// alone; a fork's reaches no cache at all, while it can still publish its own deployment.
func TestSessionPolicyCacheScopes(t *testing.T) {
	t.Parallel()
	const b = "arn:aws:s3:::ferry-sites/projects/web/"
	for scope, want := range map[string]map[string]bool{
		"production": {"production": true},
		"preview":    {"preview": true},
		"":           {"preview": true},
		"fork":       {},
	} {
		doc, err := builder.SessionPolicy("aws", "s3://ferry-sites", "web", testDeployment, scope, nil)
		if err != nil {
			t.Fatal(err)
		}
		var p policy
		if err := json.Unmarshal([]byte(doc), &p); err != nil {
			t.Fatal(err)
		}
		for _, other := range []string{"production", "preview", "fork"} {
			for _, action := range []string{"s3:GetObject", "s3:PutObject"} {
				if got := p.allows(action, b+"cache/"+other+"/0f.tar.gz"); got != want[other] {
					t.Errorf("scope %q: %s cache/%s: allowed=%v, want %v", scope, action, other, got, want[other])
				}
			}
		}
		if !p.allows("s3:PutObject", b+"blobs/ab12") || !p.allows("s3:PutObject", b+"deployments/"+testDeployment+".json") {
			t.Errorf("scope %q cannot publish", scope)
		}
		if len(doc) > 2048 {
			t.Errorf("scope %q: session policy is %d bytes; STS takes 2048 packed", scope, len(doc))
		}
	}
}

// TestCommandCacheScope: the request's cache scope reaches both builders' ferry build argv.
func TestCommandCacheScope(t *testing.T) {
	t.Parallel()
	w := newECSWorld(t, nil)
	req := testRequest()
	req.CacheScope = "fork"
	if got := strings.Join(w.b.Command(req), " "); !strings.Contains(got, "--cache-scope fork") {
		t.Errorf("ECS command %q has no --cache-scope fork", got)
	}
}
