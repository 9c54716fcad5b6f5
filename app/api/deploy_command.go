package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ansi"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/flagenv"
	"github.com/ferryhq/ferry/internal/site"
)

// DeployAbout is the one line `ferry -h` shows for `ferry deploy`.
const DeployAbout = "deploy a git repository through a running Ferry (its REST API) and follow the build"

// DeployCommand is `ferry deploy <git-url|path>`: it creates the project (or reuses the one of that name and
// repository), starts a deployment, prints the build log as it grows, and prints the site's URL on stdout when
// the deployment is ready. A failed build exits 2 (the user's), an infrastructure error 1.
func DeployCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return deployCommand(ctx, args, stdout, stderr, os.Getenv)
}

func deployCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flagenv.NewFlagSet("deploy", "ferry deploy [flags] <git-url|path>",
		"Deploys a repository through a running Ferry: creates the project (or reuses it), starts a build of the\nbranch or commit, streams its log to stderr and prints the URL on stdout once it is live. A local path\nworks with `ferry dev` only.", stderr)
	server := fs.String("server", "http://localhost:8080", "the Ferry app's `URL`")
	token := fs.String("token", "", "API `token` (create one on the account's API tokens page; prefer FERRY_TOKEN or FERRY_TOKEN_FILE)")
	project := fs.String("project", "", "project `name` (default: made from the repository's name)")
	branch := fs.String("branch", "", "`branch` to build (default: the project's production branch)")
	commit := fs.String("commit", "", "full commit `SHA` to build instead of the branch's head")
	poll := fs.Duration("poll", time.Second, "how often to check the build")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up waiting after this long (the build goes on)")
	if err := flagenv.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return ferry.Errorf(ferry.EINVALID, "%w", err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return ferry.Errorf(ferry.EINVALID, "give exactly one repository: a git URL (https://github.com/owner/site.git) or, with ferry dev, a local path")
	}
	c, err := newClient(*server, *token)
	if err != nil {
		return err
	}
	if *poll <= 0 {
		*poll = time.Second
	}
	repo := fs.Arg(0)
	if fi, err := os.Stat(repo); err == nil && fi.IsDir() && !strings.Contains(repo, "://") {
		abs, err := filepath.Abs(repo)
		if err != nil {
			return ferry.Errorf(ferry.EINVALID, "local repository %s: %w", repo, err)
		}
		repo = abs
		// Checked here, before anything is created: a project that cannot clone would only fail its build.
		if out, err := exec.CommandContext(ctx, "git", "-C", abs, "rev-parse", "--verify", "--quiet", "HEAD").Output(); err != nil || len(out) == 0 {
			return ferry.Errorf(ferry.EINVALID, "%s is not a git repository with a commit; Ferry builds commits: run git init, git add -A and git commit there first, or pass a git URL", fs.Arg(0))
		}
	}
	name := *project
	if name == "" {
		base := repo
		if u, err := url.Parse(repo); err == nil && u.Scheme != "" {
			base = u.Path
		}
		name = site.ProjectNameFromRepo(strings.TrimSuffix(strings.TrimRight(filepath.ToSlash(base), "/"), ".git"))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var p projects.Project
	err = c.do(ctx, "GET", "/projects/"+url.PathEscape(name), nil, &p)
	switch {
	case ferry.ErrorCode(err) == ferry.ENOTFOUND:
		if err := c.do(ctx, "POST", "/projects", projects.ProjectCreateParams{GitURL: repo, Name: name}, &p); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "created project %s (%s)\n", p.Name, p.URL)
	case err != nil:
		return err
	case p.GitURL != repo && strings.TrimSuffix(p.GitURL, ".git") != strings.TrimSuffix(repo, ".git"):
		return ferry.Errorf(ferry.ECONFLICT, "project %s builds %s, not %s; pass --project with another name", p.Name, p.GitURL, repo)
	}

	var d projects.Deployment
	if err := c.do(ctx, "POST", "/projects/"+url.PathEscape(p.Name)+"/deployments", projects.DeployParams{Branch: *branch, Commit: *commit}, &d); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "deployment %s of %s at %.12s\n", d.ID, d.Branch, d.Commit)
	if d.LogURL != "" {
		fmt.Fprintf(stderr, "log: %s\n", d.LogURL)
	}

	var after int64
	for {
		var logs logsBody
		if err := c.do(ctx, "GET", fmt.Sprintf("/deployments/%s/logs?after=%d", d.ID, after), nil, &logs); err != nil {
			return waitError(ctx, err, d.ID)
		}
		for _, l := range logs.Lines {
			fmt.Fprintf(stderr, "%-8s %s\n", l.Step, ansi.Strip(l.Line))
		}
		after = logs.Next
		if d.Status.Finished() && len(logs.Lines) == 0 {
			break // the last lines are in
		}
		if !d.Status.Finished() {
			select {
			case <-ctx.Done():
				return waitError(ctx, ctx.Err(), d.ID)
			case <-time.After(*poll):
			}
			if err := c.do(ctx, "GET", "/deployments/"+d.ID, nil, &d); err != nil {
				return waitError(ctx, err, d.ID)
			}
		}
	}
	switch d.Status {
	case store.StatusReady:
		u := d.AliasURL
		if u == "" {
			u = d.URL
		}
		fmt.Fprintln(stdout, u)
		return nil
	case store.StatusFailed:
		return ferry.Errorf(ferry.EBUILD, "deployment %s failed: %s", d.ID, d.Error)
	case store.StatusCanceled:
		return ferry.Errorf(ferry.ECONFLICT, "deployment %s was canceled: %s", d.ID, d.Error)
	}
	return ferry.Errorf(ferry.EUNAVAILABLE, "deployment %s ended %s: %s", d.ID, d.Status, d.Error)
}

// waitError explains an interrupted wait: the deployment itself goes on.
func waitError(ctx context.Context, err error, id string) error {
	if ctx.Err() != nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "stopped waiting for deployment %s (it goes on; see it in the dashboard): %w", id, ctx.Err())
	}
	return err
}

// client speaks the API with a bearer token and turns error bodies back into ferry errors, so that exit codes
// follow the server's verdict.
type client struct {
	base  string
	token string
	http  *http.Client
}

// newClient is the REST API client of the command-line subcommands (ferry deploy, ferry domains): the app's
// URL and an API token, which it requires with a message saying where to make one.
func newClient(server, token string) (*client, error) {
	server = strings.TrimSuffix(server, "/")
	if token == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "no API token: pass --token or set FERRY_TOKEN (create one at %s/account/tokens)", server)
	}
	return &client{base: server + "/api/v1", token: token, http: &http.Client{Timeout: time.Minute}}, nil
}

func (c *client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return ferry.Errorf(ferry.EINVALID, "--server: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "reach Ferry at %s (is it running? check --server): %w", strings.TrimSuffix(c.base, "/api/v1"), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "read Ferry's answer: %w", err)
	}
	if resp.StatusCode >= 400 {
		var e errorBody
		if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
			return &ferry.Error{Code: e.Error.Code, Message: e.Error.Message}
		}
		code := ferry.EUNAVAILABLE
		if resp.StatusCode < 500 {
			code = ferry.EINVALID
		}
		return ferry.Errorf(code, "%s %s: HTTP %d: %.200s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return ferry.Errorf(ferry.EUNAVAILABLE, "%s %s: the answer is not the API's JSON (is --server a Ferry app?): %v", method, path, err)
		}
	}
	return nil
}

// DeployCommandWithEnv is DeployCommand with the environment read through getenv, for tests and for `ferry
// dev`, which runs it in-process.
func DeployCommandWithEnv(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	return deployCommand(ctx, args, stdout, stderr, getenv)
}
