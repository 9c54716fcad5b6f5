// Package action is `ferry action`, the entrypoint of the GitHub Action (uses: ferryhq/ferry@v1). It runs inside
// the user's own workflow: it reads the step's inputs and the event, gets AWS credentials through GitHub OIDC,
// builds the site if asked, publishes it through the shared site store, and reports to GitHub through the shared
// reporter, so that a workflow deploys exactly as the Ferry App would, without a Ferry server.
package action

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sethvargo/go-githubactions"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/flagenv"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/siteconfig"
	"github.com/ferryhq/ferry/internal/storage"
)

// About is the one-line description `ferry -h` shows.
const About = "the GitHub Action's entrypoint (reads INPUT_* and GITHUB_* from the runner)"

// Command is `ferry action`. It takes no flags: the runner passes the step's inputs as INPUT_<NAME> variables.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagenv.NewFlagSet("action", "ferry action",
		"Deploys a site from a GitHub Actions job. It is meant to run as `uses: ferryhq/ferry@v1`; the inputs\n"+
			"come from the step's `with:` as INPUT_<NAME> variables (see action.yml):\n  "+
			strings.Join(inputNames, ", ")+"\n"+
			"Credentials: role-to-assume uses GitHub OIDC (the job needs `id-token: write`); without it the default\n"+
			"AWS credential chain applies.", stderr)
	if err := flagenv.Parse(fs, args, os.Getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return ferry.Errorf(ferry.EINVALID, "ferry action takes no arguments (got %q); set inputs under `with:`", fs.Args())
	}
	return Run(ctx, Options{Getenv: os.Getenv, Stdout: stdout})
}

// Options are what the runner provides. Tests inject all of them, so a run never reads the real environment.
type Options struct {
	// Getenv reads the runner's variables (INPUT_*, GITHUB_*, ACTIONS_ID_TOKEN_*, AWS_*).
	Getenv func(string) string
	// Stdout is the job log: progress lines and workflow commands (::group::, ::add-mask::) go here.
	Stdout io.Writer
	// HTTPClient carries the OIDC token request, STS and S3; nil means the SDK's defaults.
	HTTPClient *http.Client
	// GitHubTransport carries GitHub API calls; nil means http.DefaultTransport.
	GitHubTransport http.RoundTripper
}

// run is one invocation: the parsed inputs and event plus the clients built from them.
type run struct {
	opts    Options
	gha     *githubactions.Action
	log     *slog.Logger
	in      *Inputs
	ev      *event
	gctx    *githubactions.GitHubContext
	project string
	prod    bool
	aliases []string
	env     string // GitHub deployment environment
	rep     *ghreport.Reporter
	// checkRun is the ferry/<project> check run of this run, 0 when none was created (the token lacks
	// `checks: write`, which the job's permissions grant).
	checkRun        int64
	checkRunSkipped bool
	store           *site.Store
	workdir         string // GITHUB_WORKSPACE, where the repository is checked out
}

// Run deploys (or, for a closed pull request, cleans up) as the inputs and event say. Every failure comes back
// as a *ferry.Error whose message says what to change.
func Run(ctx context.Context, opts Options) error {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	ghOpts := []githubactions.Option{githubactions.WithGetenv(opts.Getenv), githubactions.WithWriter(opts.Stdout)}
	if opts.HTTPClient != nil {
		ghOpts = append(ghOpts, githubactions.WithHTTPClient(opts.HTTPClient))
	}
	r := &run{opts: opts, gha: githubactions.New(ghOpts...)}
	r.log = slog.New(slog.NewTextHandler(opts.Stdout, nil))
	err := r.run(ctx)
	if err != nil && opts.Getenv("GITHUB_STEP_SUMMARY") != "" {
		// The run's page shows the summary first; the error itself is printed by the caller.
		r.gha.AddStepSummary("### Ferry\n\nThe deployment failed:\n\n```\n" + ferry.ErrorMessage(err) + "\n```\n")
	}
	return err
}

func (r *run) run(ctx context.Context) error {
	if err := r.setup(); err != nil {
		return err
	}
	if r.ev.Deleted {
		r.gha.Noticef("%s was deleted: nothing to deploy", r.ev.Ref)
		return nil
	}
	if err := r.connect(ctx); err != nil {
		return err
	}
	if r.ev.closedPR() {
		return r.cleanup(ctx)
	}
	return r.deploy(ctx)
}

// setup reads the inputs and the event and decides what to deploy where, without touching the network.
func (r *run) setup() error {
	var err error
	r.gctx, err = r.gha.Context()
	if err != nil {
		return ferry.Errorf(ferry.EINVALID, "read the GitHub Actions context: %w", err)
	}
	if r.in, err = readInputs(r.gha); err != nil {
		return err
	}
	if r.in.GitHubToken != "" {
		r.gha.AddMask(r.in.GitHubToken)
	}
	if r.ev, err = readEvent(r.gctx); err != nil {
		return err
	}
	r.workdir = r.gctx.Workspace
	if r.workdir == "" {
		if r.workdir, err = os.Getwd(); err != nil {
			return fmt.Errorf("find the workspace: %w", err)
		}
	}

	r.project = r.in.Project
	if r.project == "" {
		r.project = site.ProjectNameFromRepo(r.ev.Repo)
	}
	if err := site.ValidateProjectName(r.project); err != nil {
		if r.in.Project == "" {
			return ferry.Errorf(ferry.EINVALID, "the repository name %q gives no valid project name; set the project input: %w", r.ev.Repo, err)
		}
		return err
	}
	r.plan()
	for _, a := range r.aliases {
		if err := site.ValidateAlias(r.project, a); err != nil {
			return err
		}
	}

	return nil
}

// connect builds the GitHub reporter and opens the storage with fresh credentials. Nothing is written yet, so a
// refused role or a missing permission fails before any deployment exists.
func (r *run) connect(ctx context.Context) error {
	var err error
	if r.in.GitHubToken == "" {
		r.gha.Warningf("github-token is empty: no GitHub deployment, status or PR comment will be written")
	} else {
		r.rep, err = ghreport.NewTokenReporter(ghreport.Config{APIURL: r.gctx.APIURL, Transport: r.opts.GitHubTransport, Logger: r.log}, r.in.GitHubToken)
		if err != nil {
			return err
		}
	}

	st, err := r.openStorage(ctx, r.gctx)
	if err != nil {
		return err
	}
	r.store = site.NewStore(st)
	return nil
}

// plan decides the production flag, the aliases and the GitHub environment. Production is explicit: true,
// false, or auto meaning "the event's ref is the production-branch input, or when that is empty the default
// branch named in the event payload".
func (r *run) plan() {
	ev, in := r.ev, r.in
	switch in.Production {
	case "true":
		r.prod = true
	case "auto":
		r.prod = ev.onProductionBranch(in.ProductionBranch)
	}
	if r.prod {
		r.aliases = append(r.aliases, site.ProductionAlias)
	}
	switch {
	case in.Alias != "":
		r.aliases = append(r.aliases, in.Alias)
	case r.prod:
	case ev.PR != 0:
		r.aliases = append(r.aliases, site.PRAlias(ev.PR))
	case ev.Branch != "":
		r.aliases = append(r.aliases, site.BranchAlias(r.project, ev.Branch))
	}
	name := ev.Branch
	if name == "" {
		name = strings.TrimPrefix(strings.TrimPrefix(ev.Ref, "refs/tags/"), "refs/heads/")
	}
	r.env = ghreport.Environment(r.prod, ev.PR, name)
	if in.DeploymentEnvironment != "" {
		r.env = in.DeploymentEnvironment
	}
}

// openStorage opens the storage URL with the credentials the inputs call for. s3:// gets the OIDC role or the
// default chain; file:// is accepted for self-hosted runners that write to a shared disk.
func (r *run) openStorage(ctx context.Context, gctx *githubactions.GitHubContext) (storage.Storage, error) {
	u, err := url.Parse(r.in.Storage)
	if err != nil || u.Scheme != "s3" {
		if err == nil && u.Scheme == "file" {
			return storage.Open(ctx, r.in.Storage)
		}
		return nil, ferry.Errorf(ferry.EINVALID, "input storage %q: want s3://BUCKET/PREFIX?region=REGION", r.in.Storage)
	}
	region := r.in.AWSRegion
	if region == "" {
		region = u.Query().Get("region")
	}
	tag := r.ev.Repo
	if gctx.RunID != 0 {
		tag = strconv.FormatInt(gctx.RunID, 10) + "-" + strconv.FormatInt(gctx.RunAttempt, 10)
	}
	cfg, err := awsConfig(ctx, r.gha, awsSettings{
		role: r.in.RoleToAssume, region: region, sessionTag: tag, getenv: r.opts.Getenv, httpClient: r.opts.HTTPClient,
	})
	if err != nil {
		return nil, err
	}
	return storage.OpenS3WithConfig(u, cfg)
}

// settings reads ferry.json at the repository root, if there is one, for the serving settings of a prebuilt
// directory (spa, cleanUrls, trailingSlash).
func (r *run) settings() (*siteconfig.File, error) {
	b, err := os.ReadFile(filepath.Join(r.workdir, "ferry.json"))
	switch {
	case os.IsNotExist(err):
		return nil, nil
	case err != nil:
		return nil, ferry.Errorf(ferry.EINVALID, "read ferry.json: %w", err)
	}
	cfg, err := siteconfig.ParseFile(b)
	if err != nil {
		return nil, fail(ferry.ErrorCode(err), err, "ferry.json in the repository root is not valid")
	}
	return cfg, nil
}
