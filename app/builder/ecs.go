package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ferryhq/ferry/app/buildevents"
	"github.com/ferryhq/ferry/internal/buildcontract"
	"github.com/ferryhq/ferry/internal/ferry"
)

// ECSAPI is what ECS builds need of the ECS API; *ecs.Client satisfies it.
type ECSAPI interface {
	RunTask(ctx context.Context, in *ecs.RunTaskInput, optFns ...func(*ecs.Options)) (*ecs.RunTaskOutput, error)
	DescribeTasks(ctx context.Context, in *ecs.DescribeTasksInput, optFns ...func(*ecs.Options)) (*ecs.DescribeTasksOutput, error)
	StopTask(ctx context.Context, in *ecs.StopTaskInput, optFns ...func(*ecs.Options)) (*ecs.StopTaskOutput, error)
}

// STSAPI is what ECS builds need of STS; *sts.Client satisfies it.
type STSAPI interface {
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

// Grants hands a build's secrets to its task and hears how it ended; *buildevents.Service satisfies it.
type Grants interface {
	Issue(ctx context.Context, p buildevents.IssueParams) (*buildevents.Grant, error)
	Outcome(ctx context.Context, deploymentID string) (*buildevents.Outcome, error)
	Revoke(ctx context.Context, deploymentID string) error
}

var (
	_ ECSAPI  = (*ecs.Client)(nil)
	_ STSAPI  = (*sts.Client)(nil)
	_ Grants  = (*buildevents.Service)(nil)
	_ Builder = (*ECS)(nil)
)

// ECSConfig configures ECS. The flag names of `ferry app` are in brackets; deploy/terraform sets them.
type ECSConfig struct {
	// EgressAllow and CloneAllow are ferry build's --egress-allow and --clone-allow in the task's command
	// (--build-egress-allow, --build-clone-allow): non-public ranges the task's clone may reach, such as a
	// GitHub Enterprise Server's. Default: none (public addresses only).
	EgressAllow, CloneAllow []string
	// Cluster is the cluster's name or ARN (--ecs-cluster). Required.
	Cluster string
	// TaskDefinition is the build task definition's family, family:revision or ARN (--ecs-task-definition).
	// Required. Its container runs the ferry image; its environment sets FERRY_SANDBOX=none (the task is the
	// sandbox) and may set FERRY_TIMEOUT.
	TaskDefinition string
	// Container is the container whose command becomes `ferry build ...` (--ecs-container). Default "build".
	Container string
	// Subnets and SecurityGroups place the task's network interface (--ecs-subnets, --ecs-security-groups).
	// Subnets are required.
	Subnets        []string
	SecurityGroups []string
	// AssignPublicIP gives the task a public address, for subnets without a NAT gateway (--ecs-assign-public-ip).
	AssignPublicIP bool
	// CapacityProvider, when set, runs tasks with that capacity provider (FARGATE_SPOT, say) instead of launch
	// type FARGATE (--ecs-capacity-provider).
	CapacityProvider string
	// CPU and Memory override the task's size, in ECS units ("1024", "4096"); "" keeps the task definition's
	// (--ecs-cpu, --ecs-memory).
	CPU, Memory string
	// BuildRoleARN is the role assumed per build with a session policy that reaches the project's prefix alone
	// (--ecs-build-role-arn). Required: a task without a session would need a task role that every project's
	// code could read.
	BuildRoleARN string
	// EventsURL is the App's URL as the task reaches it, such as https://ferry.example.com; tasks claim their
	// secrets and send their events under /internal/builds/<id>/. Required (`ferry app` uses --public-url).
	EventsURL string
	// Grants issues the tokens and keeps the outcomes (app/buildevents). Required.
	Grants Grants
	// ECS and STS are the API clients. Default: clients from the SDK's default configuration chain.
	ECS ECSAPI
	STS STSAPI
	// SessionDuration is the storage session's lifetime; keep it above the build's timeout. Default 1h,
	// at least 15m (STS's minimum), at most the build role's maximum session duration.
	SessionDuration time.Duration
	// StartTimeout is how long a task may take to reach RUNNING (image pull, ENI, capacity) before the attempt
	// fails as an infrastructure error. Default 10m.
	StartTimeout time.Duration
	// PollMin and PollMax bound the wait between DescribeTasks calls: it starts at PollMin and grows by half
	// up to PollMax. Defaults 2s and 15s.
	PollMin, PollMax time.Duration
	// Logger receives the builder's own messages. Default slog.Default().
	Logger *slog.Logger
}

// ECS runs each build as one ECS task (Fargate) that runs `ferry build`. The task gets nothing secret in its
// RunTask request: it claims its clone token, env vars and a storage session scoped to its project from the
// App (app/buildevents), and streams its log and outcome back the same way.
type ECS struct {
	cfg ECSConfig
}

// NewECS checks cfg and fills its defaults. Without clients it loads the SDK's default configuration.
func NewECS(ctx context.Context, cfg ECSConfig) (*ECS, error) {
	missing := func(flag string) error {
		return ferry.Errorf(ferry.EINVALID, "the ECS builder needs --%s (or FERRY_%s)", flag,
			strings.ToUpper(strings.ReplaceAll(flag, "-", "_")))
	}
	switch {
	case cfg.Cluster == "":
		return nil, missing("ecs-cluster")
	case cfg.TaskDefinition == "":
		return nil, missing("ecs-task-definition")
	case len(cfg.Subnets) == 0:
		return nil, missing("ecs-subnets")
	case cfg.BuildRoleARN == "":
		return nil, missing("ecs-build-role-arn")
	case cfg.EventsURL == "":
		return nil, ferry.Errorf(ferry.EINVALID, "the ECS builder needs --public-url: build tasks send their logs to it")
	case cfg.Grants == nil:
		return nil, ferry.Errorf(ferry.EINVALID, "the ECS builder needs Grants (app/buildevents)")
	}
	if !strings.HasPrefix(cfg.BuildRoleARN, "arn:") || !strings.Contains(cfg.BuildRoleARN, ":role/") {
		return nil, ferry.Errorf(ferry.EINVALID, "--ecs-build-role-arn %q is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)", cfg.BuildRoleARN)
	}
	if u, err := url.Parse(cfg.EventsURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "build events URL %q is not an http(s) URL", cfg.EventsURL)
	}
	cfg.EventsURL = strings.TrimSuffix(cfg.EventsURL, "/")
	if cfg.Container == "" {
		cfg.Container = "build"
	}
	if cfg.SessionDuration <= 0 {
		cfg.SessionDuration = time.Hour
	}
	cfg.SessionDuration = max(cfg.SessionDuration, 15*time.Minute)
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Minute
	}
	if cfg.PollMin <= 0 {
		cfg.PollMin = 2 * time.Second
	}
	if cfg.PollMax < cfg.PollMin {
		cfg.PollMax = max(15*time.Second, cfg.PollMin)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ECS == nil || cfg.STS == nil {
		awsCfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "load AWS configuration for the ECS builder: %w", err)
		}
		if cfg.ECS == nil {
			cfg.ECS = ecs.NewFromConfig(awsCfg)
		}
		if cfg.STS == nil {
			cfg.STS = sts.NewFromConfig(awsCfg)
		}
	}
	return &ECS{cfg: cfg}, nil
}

// Build runs one build as a task and follows it to its end. Exit code 2 of the container is EBUILD (the
// user's build failed), as is running out of the task's memory; everything else that stops a task (exit 1,
// ENI, capacity, image pull, ResourceInitializationError, TaskFailedToStart, Spot interruptions, a task that
// does not start within StartTimeout) is EUNAVAILABLE, which the queue retries. When ctx ends, the task is
// stopped (StopTask) and the error wraps ctx's cause.
func (e *ECS) Build(ctx context.Context, req Request) (*Result, error) {
	if req.Project == "" || req.CloneURL == "" || req.Storage == "" || req.DeploymentID == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "build %s: deployment id, project, clone URL and storage are required", req.DeploymentID)
	}
	say := func(format string, args ...any) {
		if req.Log != nil {
			req.Log(LogLine{Time: time.Now(), Level: "INFO", Step: "ferry", Message: fmt.Sprintf(format, args...)})
		}
	}
	creds, err := e.session(ctx, req)
	if err != nil {
		return nil, err
	}
	grant, err := e.cfg.Grants.Issue(ctx, buildevents.IssueParams{DeploymentID: req.DeploymentID, TTL: e.cfg.SessionDuration,
		Secrets: buildcontract.Secrets{GitHubToken: req.Token, Env: req.Env, AWS: creds}})
	if err != nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "issue build tokens: %w", err)
	}
	// Whatever happens next, the tokens die with this call: a late or stray task can neither fetch the secrets
	// nor write to the log.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := e.cfg.Grants.Revoke(rctx, req.DeploymentID); err != nil {
			e.cfg.Logger.WarnContext(ctx, "revoke build tokens (they expire with the deployment anyway)", "deployment", req.DeploymentID, "err", err)
		}
	}()

	arn, err := e.run(ctx, req, grant)
	if err != nil {
		return nil, err
	}
	say("ECS task %s started", arn)
	task, err := e.track(ctx, req, arn, say)
	if err != nil {
		return nil, err
	}
	return e.outcome(ctx, req, task)
}

// session gets the build's storage credentials: the build role, narrowed by SessionPolicy.
func (e *ECS) session(ctx context.Context, req Request) (*buildcontract.AWSCredentials, error) {
	partition := strings.SplitN(e.cfg.BuildRoleARN, ":", 3)[1]
	policy, err := SessionPolicy(partition, req.Storage, req.Project, req.DeploymentID, req.CacheScope, req.Aliases)
	if err != nil {
		return nil, err
	}
	out, err := e.cfg.STS.AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn:         aws.String(e.cfg.BuildRoleARN),
		RoleSessionName: aws.String("ferry-" + req.DeploymentID),
		// CloudTrail then names the deployment in every S3 call the task makes.
		SourceIdentity:  aws.String(req.DeploymentID),
		Policy:          aws.String(policy),
		DurationSeconds: aws.Int32(int32(e.cfg.SessionDuration / time.Second)),
	})
	if err != nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "get scoped storage credentials (sts:AssumeRole of %s): %w", e.cfg.BuildRoleARN, err)
	}
	c := out.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil || c.SessionToken == nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "sts:AssumeRole of %s returned no credentials", e.cfg.BuildRoleARN)
	}
	return &buildcontract.AWSCredentials{AccessKeyID: *c.AccessKeyId, SecretAccessKey: *c.SecretAccessKey,
		SessionToken: *c.SessionToken, Expiration: aws.ToTime(c.Expiration)}, nil
}

// Command is the container command of a build task (the image's entrypoint is ferry). It holds no secret:
// the task claims those with FERRY_EVENTS_TOKEN, which dies at the claim.
func (e *ECS) Command(req Request) []string {
	base := e.cfg.EventsURL + "/internal/builds/" + url.PathEscape(req.DeploymentID)
	args := []string{"build", "--repo", req.CloneURL, "--project", req.Project, "--storage", req.Storage,
		"--deployment-id", req.DeploymentID, "--json", "--log-format", "json",
		"--events-url", base + "/events", "--secrets-url", base + "/secrets"}
	for _, r := range e.cfg.EgressAllow {
		args = append(args, "--egress-allow", r)
	}
	for _, r := range e.cfg.CloneAllow {
		args = append(args, "--clone-allow", r)
	}
	return append(args, req.args()...)
}

// run starts the task. The client token makes RunTask idempotent per attempt: the SDK's own retries (after a
// timeout, say) cannot start a second task for the same attempt.
func (e *ECS) run(ctx context.Context, req Request, grant *buildevents.Grant) (string, error) {
	assign := ecstypes.AssignPublicIpDisabled
	if e.cfg.AssignPublicIP {
		assign = ecstypes.AssignPublicIpEnabled
	}
	in := &ecs.RunTaskInput{
		Cluster:        aws.String(e.cfg.Cluster),
		TaskDefinition: aws.String(e.cfg.TaskDefinition),
		Count:          aws.Int32(1),
		ClientToken:    aws.String(fmt.Sprintf("%s-%d", req.DeploymentID, grant.Attempt)),
		StartedBy:      aws.String("ferry-" + req.DeploymentID),
		NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
			Subnets: e.cfg.Subnets, SecurityGroups: e.cfg.SecurityGroups, AssignPublicIp: assign}},
		Overrides: &ecstypes.TaskOverride{
			ContainerOverrides: []ecstypes.ContainerOverride{{
				Name:    aws.String(e.cfg.Container),
				Command: e.Command(req),
				// The claim token only: it fetches the secrets once and is worthless afterwards.
				Environment: []ecstypes.KeyValuePair{{Name: aws.String("FERRY_EVENTS_TOKEN"), Value: aws.String(grant.ClaimToken)}},
			}},
		},
	}
	if e.cfg.CPU != "" {
		in.Overrides.Cpu = aws.String(e.cfg.CPU)
	}
	if e.cfg.Memory != "" {
		in.Overrides.Memory = aws.String(e.cfg.Memory)
	}
	if e.cfg.CapacityProvider != "" {
		in.CapacityProviderStrategy = []ecstypes.CapacityProviderStrategyItem{{CapacityProvider: aws.String(e.cfg.CapacityProvider), Weight: 1}}
	} else {
		in.LaunchType = ecstypes.LaunchTypeFargate
	}
	out, err := e.cfg.ECS.RunTask(ctx, in)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("build %s stopped: %w", req.DeploymentID, context.Cause(ctx))
		}
		return "", ferry.Errorf(ferry.EUNAVAILABLE, "start the build task (ecs:RunTask in %s): %w", e.cfg.Cluster, err)
	}
	if len(out.Tasks) == 0 || out.Tasks[0].TaskArn == nil {
		var why []string
		for _, f := range out.Failures {
			why = append(why, aws.ToString(f.Reason)+" "+aws.ToString(f.Detail))
		}
		return "", ferry.Errorf(ferry.EUNAVAILABLE, "ECS started no build task: %s", strings.TrimSpace(strings.Join(why, "; ")))
	}
	return *out.Tasks[0].TaskArn, nil
}

// track polls the task until it stops, with a growing interval. A task that is not RUNNING within
// StartTimeout is stopped and fails the attempt.
func (e *ECS) track(ctx context.Context, req Request, arn string, say func(string, ...any)) (*ecstypes.Task, error) {
	started := time.Now()
	wait := e.cfg.PollMin
	last := ""
	running := false
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			e.stop(ctx, arn, "ferry: the deployment was canceled or superseded")
			return nil, fmt.Errorf("build %s stopped: %w", req.DeploymentID, context.Cause(ctx))
		case <-time.After(wait):
		}
		wait = min(wait+wait/2, e.cfg.PollMax)

		out, err := e.cfg.ECS.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(e.cfg.Cluster), Tasks: []string{arn}})
		var task *ecstypes.Task
		switch {
		case err != nil:
			lastErr = err // the SDK retried throttling already; keep polling
		case len(out.Tasks) == 0:
			// Just after RunTask the task may be MISSING for a moment (eventual consistency).
			lastErr = fmt.Errorf("task not found: %s", failures(out.Failures))
		default:
			task = &out.Tasks[0]
			lastErr = nil
		}
		if task != nil {
			status := aws.ToString(task.LastStatus)
			if status != last {
				say("ECS task %s", status)
				last = status
			}
			if status == "RUNNING" || status == "DEACTIVATING" || status == "STOPPING" {
				running = true
			}
			if status == "STOPPED" {
				return task, nil
			}
		}
		if !running && time.Since(started) > e.cfg.StartTimeout {
			e.stop(ctx, arn, "ferry: the task did not start in time")
			why := "it stayed " + last
			if last == "" {
				why = fmt.Sprintf("it could not be described: %v", lastErr)
			}
			return nil, ferry.Errorf(ferry.EUNAVAILABLE, "the build task %s did not start within %s (%s); check the cluster's capacity, the subnets and the image", arn, e.cfg.StartTimeout, why)
		}
	}
}

// stop asks ECS to stop the task; it outlives ctx, since a canceled build is exactly when it is needed.
func (e *ECS) stop(ctx context.Context, arn, reason string) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := e.cfg.ECS.StopTask(sctx, &ecs.StopTaskInput{Cluster: aws.String(e.cfg.Cluster), Task: aws.String(arn), Reason: aws.String(reason)})
	if err != nil {
		e.cfg.Logger.WarnContext(ctx, "stop build task", "task", arn, "err", err)
	}
}

// outcome turns a stopped task and what the build reported into a Result or a ferry error.
func (e *ECS) outcome(ctx context.Context, req Request, task *ecstypes.Task) (*Result, error) {
	stop := classifyStop(task, e.cfg.Container)
	o, err := e.cfg.Grants.Outcome(ctx, req.DeploymentID)
	if err != nil {
		o = &buildevents.Outcome{}
	}
	if stop.code == "" {
		if len(o.Result) == 0 {
			return nil, ferry.Errorf(ferry.EUNAVAILABLE, "the build task exited 0 but its result never reached the App (%s)", e.cfg.EventsURL)
		}
		var res Result
		if err := json.Unmarshal(o.Result, &res); err != nil {
			return nil, ferry.Errorf(ferry.EINTERNAL, "read the build task's result: %w", err)
		}
		return &res, nil
	}
	msg := stop.message
	if o.Error != "" {
		msg = o.Error
		if stop.code == ferry.EUNAVAILABLE && stop.exit != 1 {
			msg = stop.message + ": " + o.Error
		}
	}
	return nil, ferry.Errorf(stop.code, "%s", msg)
}

var eniRE = regexp.MustCompile(`\bENI\b`)

// stopResult is what a stopped task means: code "" for success, EBUILD, or EUNAVAILABLE.
type stopResult struct {
	code    string
	exit    int // -1 when the container never exited by itself
	message string
}

// classifyStop maps a STOPPED task to a verdict. The stop code comes first (an interrupted or never started
// task is the infrastructure's doing whatever its exit code), then the container's exit code.
func classifyStop(task *ecstypes.Task, container string) stopResult {
	reason := aws.ToString(task.StoppedReason)
	exit := -1
	creason := ""
	for _, c := range task.Containers {
		if aws.ToString(c.Name) == container || len(task.Containers) == 1 {
			if c.ExitCode != nil {
				exit = int(*c.ExitCode)
			}
			creason = aws.ToString(c.Reason)
		}
	}
	both := reason
	if creason != "" && !strings.Contains(reason, creason) {
		both = strings.TrimSpace(reason + " " + creason)
	}
	infra := func(what string) stopResult {
		return stopResult{code: ferry.EUNAVAILABLE, exit: exit, message: fmt.Sprintf("%s: %s", what, both)}
	}
	switch task.StopCode {
	case ecstypes.TaskStopCodeSpotInterruption, ecstypes.TaskStopCodeTerminationNotice:
		return infra("the build task was interrupted by AWS (Spot capacity reclaimed)")
	case ecstypes.TaskStopCodeServiceSchedulerInitiated, ecstypes.TaskStopCodeUserInitiated:
		return infra("the build task was stopped from outside Ferry")
	case ecstypes.TaskStopCodeInfrastructureHealth:
		return infra("the build task's host failed")
	}
	switch {
	case strings.Contains(both, "CannotPullContainer"):
		return infra("the build image could not be pulled (check the task definition's image and the execution role)")
	case strings.Contains(both, "ResourceInitializationError"):
		return infra("the build task could not be set up (ResourceInitializationError: secrets, logs or the image registry unreachable from its subnets)")
	case strings.Contains(strings.ToLower(both), "network interface") || eniRE.MatchString(both):
		return infra("the build task got no network interface (ENI); check the subnets' free addresses and ENI quota")
	case strings.Contains(strings.ToLower(both), "capacity") || strings.Contains(both, "RESOURCE:"):
		return infra("no capacity for the build task")
	case task.StopCode == ecstypes.TaskStopCodeTaskFailedToStart:
		return infra("the build task failed to start")
	case strings.Contains(creason, "OutOfMemoryError"):
		return stopResult{code: ferry.EBUILD, exit: exit, message: "the build ran out of memory: lower its memory use, or raise the build task's memory (--ecs-memory)"}
	}
	switch exit {
	case 0:
		return stopResult{exit: 0}
	case ferry.ExitUser:
		return stopResult{code: ferry.EBUILD, exit: exit, message: "the build failed"}
	case -1:
		return infra("the build task stopped before its container ran")
	}
	return stopResult{code: ferry.EUNAVAILABLE, exit: exit, message: fmt.Sprintf("the build task exited with code %d (%s)", exit, both)}
}

func failures(fs []ecstypes.Failure) string {
	var s []string
	for _, f := range fs {
		s = append(s, aws.ToString(f.Arn)+" "+aws.ToString(f.Reason))
	}
	if len(s) == 0 {
		return "no failure given"
	}
	return strings.Join(s, "; ")
}
