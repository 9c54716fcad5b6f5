package buildevents_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ferryhq/ferry/app/builder"
	"github.com/ferryhq/ferry/app/builder/ecsfake"
	"github.com/ferryhq/ferry/app/buildevents"
	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/build/buildtest"
	"github.com/ferryhq/ferry/internal/build/gitserver"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage/s3test"
)

// TestECSBuildEndToEnd runs a deployment from its job to ready with the ECS builder: River picks the job up,
// the builder assumes the build role (STS fake) and starts a task (ECS fake), the task (`ferry build` as a
// local process) claims its secrets from the build-events endpoint, clones with the installation token from
// the claim, publishes to S3 (gofakes3) with the scoped session from the claim, and streams its log; the
// worker then moves the alias. The path starts at a job insert as webhook intake makes it (the webhook layer
// itself is covered by app/webhook's tests).
func TestECSBuildEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := pgtest.NewURL(t)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := store.New(pool)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	// S3: the App's storage and, through the session, the task's. gofakes3 refuses any other access key, so
	// a publish proves the task used the claimed session (it has no AWS keys of its own).
	s3 := s3test.StartGoFakeS3(t)
	storageURL := s3.URL("sites")
	siteStore := site.NewStore(s3.Open(t, "sites"))

	// GitHub and git: the clone needs the installation token, which the task only gets from its claim.
	gh := ghfake.New(t)
	gh.AddInstallation(77, "acme/site")
	ghApp, err := ghreport.NewApp(ghreport.Config{APIURL: gh.URL, Backoff: 10 * time.Millisecond}, gh.AppID, gh.PrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	git, err := gitserver.New(t.TempDir(), "")
	if err != nil {
		t.Skipf("git is not installed: apt-get install git (%v)", err)
	}
	gitSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); !ok || user != "x-access-token" || !strings.HasPrefix(pass, "ghs_") {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		git.ServeHTTP(w, r)
	}))
	t.Cleanup(gitSrv.Close)
	repo, err := git.CreateRepo("acme/site", []map[string]string{{"index.html": "<h1>from an ECS task</h1>"}})
	if err != nil {
		t.Fatal(err)
	}

	// The App's build-events endpoint.
	events, err := buildevents.New(buildevents.Config{DB: pool, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	appSrv := httptest.NewServer(events.Handler())
	t.Cleanup(appSrv.Close)

	// STS hands out the gofakes3 keys as the scoped session. ECS runs each task as this test binary acting as
	// ferry (TestMain), with the container override's command and environment plus what the build task
	// definition sets (FERRY_SANDBOX=none), and nothing of this process's environment: no AWS keys, no token.
	stsFake := ecsfake.NewSTS(t, ecsfake.Credentials{AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey, SessionToken: "session"})
	taskHome, taskWork := t.TempDir(), t.TempDir()
	ecsFake := ecsfake.New(t, func(task *ecsfake.Task) *exec.Cmd {
		cmd := exec.Command(os.Args[0], task.Command...)
		cmd.Env = append([]string{buildtest.Env, "PATH=" + os.Getenv("PATH"), "HOME=" + taskHome,
			"FERRY_SANDBOX=none", "FERRY_WORKDIR=" + taskWork}, task.Env...)
		return cmd
	})
	appCreds := credentials.NewStaticCredentialsProvider("AKIDAPP", "app-secret", "")
	b, err := builder.NewECS(ctx, builder.ECSConfig{
		Cluster: "ferry", TaskDefinition: "ferry-build", Subnets: []string{"subnet-a"},
		CloneAllow:   []string{"127.0.0.0/8"}, // the git fixture listens on loopback
		BuildRoleARN: "arn:aws:iam::123456789012:role/ferry-build", EventsURL: appSrv.URL, Grants: events,
		ECS:     ecs.New(ecs.Options{Region: "eu-west-1", BaseEndpoint: aws.String(ecsFake.URL), Credentials: appCreds}),
		STS:     sts.New(sts.Options{Region: "eu-west-1", BaseEndpoint: aws.String(stsFake.URL), Credentials: appCreds}),
		PollMin: 50 * time.Millisecond, PollMax: 200 * time.Millisecond, StartTimeout: time.Minute, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}

	cfg, err := jobs.ClientConfig(jobs.Deps{Store: st, Site: siteStore, Builder: b, GitHub: ghApp, StorageURL: storageURL,
		Domain: "preview.test", Logger: logger, BuildTimeout: 2 * time.Minute, PollInterval: 100 * time.Millisecond,
		RetryBackoff: 50 * time.Millisecond, SweepInterval: time.Hour}, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg.FetchCooldown, cfg.FetchPollInterval, cfg.TestOnly = 10*time.Millisecond, 50*time.Millisecond, true
	rc, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = rc.StopAndCancel(sctx)
	})

	if _, err := st.InstallationUpsert(ctx, store.InstallationUpsertParams{ID: 77, AccountLogin: "acme", AccountType: "Organization", AccountID: 5}); err != nil {
		t.Fatal(err)
	}
	p, err := st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "site", Repository: "acme/site", CloneURL: gitSrv.URL + repo.Path,
		GitHubRepoID: 901, InstallationID: 77, ProductionBranch: "main",
		Settings: json.RawMessage(`{"env":{"SECRET_API_KEY":"env-value-not-in-ecs"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	var d *store.Deployment
	err = st.InTx(ctx, func(st *store.Store, tx pgx.Tx) error {
		if d, err = st.DeploymentCreate(ctx, store.DeploymentCreateParams{ID: site.NewDeploymentID(), ProjectID: p.ID,
			CommitSHA: repo.Commits[0], Ref: "main", Kind: store.KindProduction, Alias: "production"}); err != nil {
			return err
		}
		return jobs.InsertDeploy(ctx, rc, tx, d.ID)
	})
	if err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(90 * time.Second)
	for {
		if d, err = st.DeploymentGetByID(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		if d.Status.Finished() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment still %s after 90s", d.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var taskLog strings.Builder
	for _, task := range ecsFake.Tasks() {
		fmt.Fprintf(&taskLog, "%s:\n%s\n", task.ARN, task.Output())
	}
	runs := ecsFake.Calls("RunTask")
	lines, _ := st.DeploymentLogList(ctx, store.DeploymentLogListParams{DeploymentID: d.ID})
	var logText strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&logText, "%s %s\n", l.Step, l.Line)
	}
	if d.Status != store.StatusReady {
		t.Fatalf("deployment %s (%s)\nlog:\n%s\ntasks:\n%s", d.Status, d.Error, logText.String(), taskLog.String())
	}

	// Served: the alias points at the deployment, whose manifest the task wrote with the scoped session.
	al, err := siteStore.AliasGet(ctx, "site", "production")
	if err != nil || al.Deployment != d.ID {
		t.Fatalf("production alias %+v, %v", al, err)
	}
	if _, err := siteStore.ManifestGet(ctx, "site", d.ID); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	// The dashboard's log holds the task's own lines, streamed over build events, in order.
	text := logText.String()
	iClone, iPublish := strings.Index(text, "» clone started"), strings.Index(text, "» publish started")
	if iClone < 0 || iPublish < 0 || iClone > iPublish {
		t.Errorf("log lacks the task's progress in order:\n%s", text)
	}
	if !strings.Contains(text, "ECS task RUNNING") {
		t.Errorf("log lacks the builder's lines:\n%s", text)
	}
	// Nothing secret went through ECS.
	if len(runs) != 1 {
		t.Fatalf("RunTask calls: %d", len(runs))
	}
	for _, secret := range []string{"ghs_", "env-value-not-in-ecs", s3.SecretKey, s3.AccessKey} {
		if strings.Contains(runs[0].Raw, secret) {
			t.Errorf("RunTask request holds %q", secret)
		}
	}
	if policy := stsFake.Requests()[0].Get("Policy"); !strings.Contains(policy, "sites/projects/site/deployments/"+d.ID+".json") {
		t.Errorf("session policy does not name the deployment's manifest: %s", policy)
	}
	// The tokens died with the build.
	if _, err := events.Outcome(ctx, d.ID); err == nil {
		t.Error("build tokens outlived the build")
	}
}
