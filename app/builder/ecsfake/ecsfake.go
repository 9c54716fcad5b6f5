// Package ecsfake stands in for the two AWS control planes an ECS build needs and that cannot run here: an
// ECS API (JSON 1.1, X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Op>) whose tasks are local processes,
// and an STS API (the Query protocol) that answers AssumeRole with credentials the test chooses. Both speak
// the wire protocol to the real aws-sdk-go-v2 clients, whether the client is in the test (BaseEndpoint) or in a
// child process such as `ferry app` (AWS_ENDPOINT_URL_ECS, AWS_ENDPOINT_URL_STS), and record what they were
// sent so that tests can assert it. Unit tests that script each answer use app/builder's own fake instead.
package ecsfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TargetPrefix starts the X-Amz-Target header of every ECS API call.
const TargetPrefix = "AmazonEC2ContainerServiceV20141113."

// Call is one recorded API request.
type Call struct {
	// Op is the operation, such as "RunTask".
	Op string
	// Body is the decoded JSON request and Raw the request as sent, for searching it for secrets.
	Body map[string]any
	Raw  string
}

// Task is one task that RunTask started: its first container override, which is all a Ferry build task
// carries, and the local process standing in for that container.
type Task struct {
	// ARN is the task's ARN as RunTask answered it.
	ARN string
	// Container, Command and Env are the container override: its name, its command (the image's entrypoint is
	// ferry, so this is ferry's arguments) and its environment as NAME=value.
	Container string
	Command   []string
	Env       []string

	cmd    *exec.Cmd
	out    syncBuffer
	done   chan struct{}
	exit   int
	reason string // StopTask's reason, when the task was stopped
}

// Output is what the task's process wrote to stdout and stderr so far (what CloudWatch Logs would hold).
func (t *Task) Output() string { return t.out.String() }

// Exited reports whether the task's process has ended, and its exit code (-1 when it was killed).
func (t *Task) Exited() (code int, ok bool) {
	select {
	case <-t.done:
		return t.exit, true
	default:
		return 0, false
	}
}

// Launch turns a task into the command for its container process. The command's environment must be set in
// full: what the task definition sets plus t.Env, and nothing of the test's own (a real task has none of the
// App's credentials). The fake sets Stdout and Stderr, puts it in its own process group (unless it sets
// SysProcAttr) and starts it.
type Launch func(t *Task) *exec.Cmd

// ECS is the ECS API. RunTask starts a process with Launch; DescribeTasks reports it RUNNING until it exits,
// then STOPPED with stop code EssentialContainerExited and the process's exit code as the container's; StopTask
// kills it and reports UserInitiated with the reason given.
type ECS struct {
	// URL is the endpoint to give the SDK.
	URL string

	t      testing.TB
	launch Launch

	mu    sync.Mutex
	calls []Call
	tasks []*Task
}

// New starts an ECS API for the test; at the test's end it kills the tasks still running and waits for them.
func New(t testing.TB, launch Launch) *ECS {
	e := &ECS{t: t, launch: launch}
	srv := httptest.NewServer(http.HandlerFunc(e.serve))
	e.URL = srv.URL
	t.Cleanup(func() {
		srv.Close()
		e.mu.Lock()
		tasks := append([]*Task(nil), e.tasks...)
		e.mu.Unlock()
		for _, task := range tasks {
			kill(task.cmd)
			select {
			case <-task.done:
			case <-time.After(10 * time.Second):
				t.Errorf("ECS fake: task %s did not exit after a kill", task.ARN)
			}
		}
	})
	return e
}

// Calls returns the recorded calls of op, oldest first; op "" returns every call.
func (e *ECS) Calls(op string) []Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Call
	for _, c := range e.calls {
		if op == "" || c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

// Tasks returns the tasks RunTask started, oldest first.
func (e *ECS) Tasks() []*Task {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*Task(nil), e.tasks...)
}

func (e *ECS) serve(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	if r.Method != http.MethodPost || !strings.HasPrefix(target, TargetPrefix) ||
		r.Header.Get("Content-Type") != "application/x-amz-json-1.1" || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		e.t.Errorf("ECS fake: not an ECS JSON 1.1 call: %s %s target=%q content-type=%q", r.Method, r.URL, target, r.Header.Get("Content-Type"))
		answer(w, http.StatusBadRequest, awsError("SerializationException", "not an ECS JSON 1.1 request"))
		return
	}
	op := strings.TrimPrefix(target, TargetPrefix)
	raw, _ := io.ReadAll(r.Body)
	var in map[string]any
	if err := json.Unmarshal(raw, &in); err != nil {
		answer(w, http.StatusBadRequest, awsError("SerializationException", err.Error()))
		return
	}
	e.mu.Lock()
	e.calls = append(e.calls, Call{Op: op, Body: in, Raw: string(raw)})
	e.mu.Unlock()
	switch op {
	case "RunTask":
		e.runTask(w, in)
	case "DescribeTasks":
		e.describeTasks(w, in)
	case "StopTask":
		e.stopTask(w, in)
	default:
		answer(w, http.StatusBadRequest, awsError("UnknownOperationException", op))
	}
}

func (e *ECS) runTask(w http.ResponseWriter, in map[string]any) {
	task := &Task{done: make(chan struct{})}
	overrides, _ := in["overrides"].(map[string]any)
	cos, _ := overrides["containerOverrides"].([]any)
	if len(cos) > 0 {
		co, _ := cos[0].(map[string]any)
		task.Container, _ = co["name"].(string)
		for _, a := range list(co["command"]) {
			s, _ := a.(string)
			task.Command = append(task.Command, s)
		}
		for _, kv := range list(co["environment"]) {
			m, _ := kv.(map[string]any)
			name, _ := m["name"].(string)
			value, _ := m["value"].(string)
			task.Env = append(task.Env, name+"="+value)
		}
	}
	e.mu.Lock()
	task.ARN = fmt.Sprintf("arn:aws:ecs:eu-west-1:123456789012:task/%s/%032x", in["cluster"], len(e.tasks)+1)
	e.mu.Unlock()
	cmd := e.launch(task)
	cmd.Stdout, cmd.Stderr = &task.out, &task.out
	// A grandchild that outlives the task must not hold Wait (and so the task's STOPPED) on its output.
	cmd.WaitDelay = time.Second
	isolate(cmd)
	if err := cmd.Start(); err != nil {
		e.t.Errorf("ECS fake: start task %s: %v", task.ARN, err)
		answer(w, http.StatusInternalServerError, awsError("ServerException", "the fake could not start the task"))
		return
	}
	task.cmd = cmd
	e.mu.Lock()
	e.tasks = append(e.tasks, task)
	e.mu.Unlock()
	go func() {
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		e.mu.Lock()
		task.exit = code
		e.mu.Unlock()
		close(task.done)
	}()
	answer(w, http.StatusOK, map[string]any{"tasks": []any{map[string]any{
		"taskArn": task.ARN, "lastStatus": "PROVISIONING", "desiredStatus": "RUNNING",
		"containers": []any{map[string]any{"name": task.Container, "lastStatus": "PENDING"}}}}, "failures": []any{}})
}

func (e *ECS) describeTasks(w http.ResponseWriter, in map[string]any) {
	var tasks, failures []any
	for _, a := range list(in["tasks"]) {
		arn, _ := a.(string)
		task := e.task(arn)
		if task == nil {
			failures = append(failures, map[string]any{"arn": arn, "reason": "MISSING"})
			continue
		}
		select {
		case <-task.done:
			e.mu.Lock()
			exit, reason := task.exit, task.reason
			e.mu.Unlock()
			t := map[string]any{"taskArn": arn, "lastStatus": "STOPPED", "desiredStatus": "STOPPED",
				"stopCode": "EssentialContainerExited", "stoppedReason": "Essential container in task exited",
				"containers": []any{map[string]any{"name": task.Container, "lastStatus": "STOPPED", "exitCode": exit}}}
			if reason != "" {
				t["stopCode"], t["stoppedReason"] = "UserInitiated", reason
			}
			tasks = append(tasks, t)
		default:
			tasks = append(tasks, map[string]any{"taskArn": arn, "lastStatus": "RUNNING", "desiredStatus": "RUNNING",
				"containers": []any{map[string]any{"name": task.Container, "lastStatus": "RUNNING"}}})
		}
	}
	answer(w, http.StatusOK, map[string]any{"tasks": nonNil(tasks), "failures": nonNil(failures)})
}

func (e *ECS) stopTask(w http.ResponseWriter, in map[string]any) {
	arn, _ := in["task"].(string)
	task := e.task(arn)
	if task == nil {
		answer(w, http.StatusBadRequest, awsError("InvalidParameterException", "The referenced task was not found."))
		return
	}
	reason, _ := in["reason"].(string)
	if reason == "" {
		reason = "Task stopped by user"
	}
	select {
	case <-task.done: // it stopped by itself: that stays its story
	default:
		e.mu.Lock()
		if task.reason == "" {
			task.reason = reason
		}
		e.mu.Unlock()
		kill(task.cmd)
	}
	answer(w, http.StatusOK, map[string]any{"task": map[string]any{"taskArn": arn, "lastStatus": "RUNNING", "desiredStatus": "STOPPED"}})
}

func (e *ECS) task(arn string) *Task {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.tasks {
		if t.ARN == arn {
			return t
		}
	}
	return nil
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func nonNil(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}

// awsError is a JSON 1.1 error body.
func awsError(typ, msg string) map[string]any {
	return map[string]any{"__type": typ, "message": msg}
}

func answer(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Credentials are what the STS fake hands out as every AssumeRole session. Tests give an S3 server's own keys
// here, so that a publish that works proves the task used its session.
type Credentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// STS is the STS API's AssumeRole.
type STS struct {
	// URL is the endpoint to give the SDK.
	URL string

	mu       sync.Mutex
	requests []url.Values
}

// NewSTS starts an STS API for the test that answers every AssumeRole with creds, valid for an hour.
func NewSTS(t testing.TB, creds Credentials) *STS {
	s := &STS{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost ||
			!strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") ||
			!strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
			t.Errorf("STS fake: not an STS Query call: %s %s %q", r.Method, r.URL, r.Header.Get("Content-Type"))
		}
		s.mu.Lock()
		s.requests = append(s.requests, r.PostForm)
		s.mu.Unlock()
		if r.PostForm.Get("Action") != "AssumeRole" || r.PostForm.Get("Version") != "2011-06-15" {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>only AssumeRole is faked</Message></Error></ErrorResponse>`)
			return
		}
		name := r.PostForm.Get("RoleSessionName")
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/ferry-build/%s</Arn>
      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:%s</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>%s</AccessKeyId>
      <SecretAccessKey>%s</SecretAccessKey>
      <SessionToken>%s</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>`, name, name, creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken,
			time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	}))
	s.URL = srv.URL
	t.Cleanup(srv.Close)
	return s
}

// Requests returns the form of every call, oldest first.
func (s *STS) Requests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.requests...)
}
