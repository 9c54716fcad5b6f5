package ecsfake_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ferryhq/ferry/app/builder/ecsfake"
)

var appCreds = credentials.NewStaticCredentialsProvider("AKIDAPP", "app-secret", "")

// TestECSTasksAreProcesses drives the fake with the real SDK client: a task runs its override's command with
// its override's environment, DescribeTasks follows it to its exit code, and StopTask kills a task and says so.
func TestECSTasksAreProcesses(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	ctx := context.Background()
	fake := ecsfake.New(t, func(task *ecsfake.Task) *exec.Cmd {
		cmd := exec.Command("sh", append([]string{"-c"}, task.Command...)...)
		cmd.Env = task.Env
		return cmd
	})
	client := ecs.New(ecs.Options{Region: "eu-west-1", BaseEndpoint: aws.String(fake.URL), Credentials: appCreds})
	run := func(script string) string {
		t.Helper()
		out, err := client.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("td"),
			ClientToken: aws.String("tok-" + script), Overrides: &ecstypes.TaskOverride{ContainerOverrides: []ecstypes.ContainerOverride{{
				Name: aws.String("build"), Command: []string{script},
				Environment: []ecstypes.KeyValuePair{{Name: aws.String("CODE"), Value: aws.String("3")}}}}}})
		if err != nil || len(out.Tasks) != 1 {
			t.Fatalf("RunTask: %v %+v", err, out)
		}
		return aws.ToString(out.Tasks[0].TaskArn)
	}
	wait := func(arn string) ecstypes.Task {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := client.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("c"), Tasks: []string{arn}})
			if err != nil || len(out.Tasks) != 1 {
				t.Fatalf("DescribeTasks: %v %+v", err, out)
			}
			if aws.ToString(out.Tasks[0].LastStatus) == "STOPPED" {
				return out.Tasks[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s still %s", arn, aws.ToString(out.Tasks[0].LastStatus))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	exited := wait(run(`echo "out $CODE"; exit $CODE`))
	if exited.StopCode != ecstypes.TaskStopCodeEssentialContainerExited || aws.ToInt32(exited.Containers[0].ExitCode) != 3 {
		t.Errorf("exited task: stop code %s, exit %v", exited.StopCode, exited.Containers[0].ExitCode)
	}
	if got := fake.Tasks()[0].Output(); got != "out 3\n" {
		t.Errorf("task output %q", got)
	}

	sleeper := run("sleep 30")
	if _, err := client.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("c"), Task: aws.String(sleeper), Reason: aws.String("superseded")}); err != nil {
		t.Fatal(err)
	}
	stopped := wait(sleeper)
	if stopped.StopCode != ecstypes.TaskStopCodeUserInitiated || aws.ToString(stopped.StoppedReason) != "superseded" {
		t.Errorf("stopped task: %s %q", stopped.StopCode, aws.ToString(stopped.StoppedReason))
	}

	missing, err := client.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("c"), Tasks: []string{"arn:nope"}})
	if err != nil || len(missing.Tasks) != 0 || len(missing.Failures) != 1 || aws.ToString(missing.Failures[0].Reason) != "MISSING" {
		t.Errorf("unknown task: %v %+v", err, missing)
	}
	if n := len(fake.Calls("RunTask")); n != 2 {
		t.Errorf("RunTask calls recorded: %d", n)
	}
	if c := fake.Calls("RunTask")[0]; c.Body["clientToken"] != `tok-echo "out $CODE"; exit $CODE` || !strings.Contains(c.Raw, `"CODE"`) {
		t.Errorf("recorded RunTask %+v", c)
	}
}

// TestSTSAssumeRole: the SDK's AssumeRole gets the fake's credentials, an empty session token included (what a
// test gives when its S3 server takes no session tokens), and the fake keeps the form.
func TestSTSAssumeRole(t *testing.T) {
	for _, token := range []string{"session-token", ""} {
		fake := ecsfake.NewSTS(t, ecsfake.Credentials{AccessKeyID: "AKIDS3", SecretAccessKey: "s3-secret", SessionToken: token})
		client := sts.New(sts.Options{Region: "eu-west-1", BaseEndpoint: aws.String(fake.URL), Credentials: appCreds})
		out, err := client.AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::1:role/b"),
			RoleSessionName: aws.String("s1"), Policy: aws.String(`{"Version":"2012-10-17"}`)})
		if err != nil {
			t.Fatal(err)
		}
		c := out.Credentials
		if aws.ToString(c.AccessKeyId) != "AKIDS3" || aws.ToString(c.SecretAccessKey) != "s3-secret" ||
			c.SessionToken == nil || *c.SessionToken != token || time.Until(aws.ToTime(c.Expiration)) < 50*time.Minute {
			t.Errorf("credentials %+v", c)
		}
		if f := fake.Requests(); len(f) != 1 || f[0].Get("Policy") != `{"Version":"2012-10-17"}` || f[0].Get("RoleSessionName") != "s1" {
			t.Errorf("recorded forms %v", f)
		}
	}
}
