// Package builder runs one deployment's build somewhere: on this machine (Local, which runs `ferry build` as a
// sub-process) or, later, in an ECS task. The interface is narrow on purpose: a builder gets everything a build
// needs in one Request and answers with a Result or a ferry error whose code says whether to retry.
package builder

import (
	"context"
	"time"
)

// Builder builds and publishes one commit. Errors carry ferry codes: EBUILD means the user's build failed and a
// retry would fail the same way; any other code is the infrastructure's and worth a retry. A canceled ctx stops
// the build and everything it started.
type Builder interface {
	Build(ctx context.Context, req Request) (*Result, error)
}

// Request is one build. Secrets (Token, Env) never reach argv or an environment the server shares: a builder
// hands them over through files (Local) or a secret channel (ECS).
type Request struct {
	// DeploymentID is the id the build publishes under (site.NewDeploymentID's form).
	DeploymentID string
	// Project is the project name: the storage prefix and the host label.
	Project string
	// CloneURL is the repository's https clone URL (or a file:// URL or local path in tests and dev).
	CloneURL string
	// Ref is the commit SHA to build (a branch or tag works too).
	Ref string
	// Token is a GitHub installation token for the clone; "" clones anonymously.
	Token string
	// Aliases are pointed at the deployment once it is published. The App leaves this empty and moves aliases
	// itself, after checking that the deployment was not superseded meanwhile.
	Aliases []string
	// Env holds the project's env vars for the build commands. The App leaves it empty for fork builds.
	Env map[string]string
	// Domain is used to print the deployment's URLs.
	Domain string
	// Storage is the storage URL the build publishes to (credentials come from the builder's environment).
	Storage string
	// Overrides are the project's build settings that win over the repository's ferry.json.
	Overrides Overrides
	// CacheScope is ferry build's --cache-scope: buildcontract.CacheScopeProduction for the production branch,
	// CacheScopePreview for the repository's own branches and pull requests, CacheScopeFork for a pull request
	// from another repository. "" leaves ferry build's default (preview).
	CacheScope string
	// Log receives each log line as the build writes it; nil discards. It is called from one goroutine.
	Log func(LogLine)
}

// args are ferry build's flags for what a request says about the build itself, the same for every builder so
// that none of them forgets one: the ref, the domain, the aliases, the cache scope and the overrides.
func (r Request) args() []string {
	var args []string
	if r.Ref != "" {
		args = append(args, "--ref", r.Ref)
	}
	if r.Domain != "" {
		args = append(args, "--domain", r.Domain)
	}
	for _, a := range r.Aliases {
		args = append(args, "--alias", a)
	}
	if r.CacheScope != "" {
		args = append(args, "--cache-scope", r.CacheScope)
	}
	return append(args, r.Overrides.Args()...)
}

// Overrides replace ferry.json's build settings for one build: the project's settings.overrides, edited in
// the dashboard. nil keeps ferry.json's (or the detected) value; an empty InstallCommand or BuildCommand skips
// that step; an empty RootDirectory or OutputDirectory keeps ferry.json's. Build commands are not secrets:
// they travel in argv and in the ECS task's command.
type Overrides struct {
	RootDirectory   *string
	InstallCommand  *string
	BuildCommand    *string
	OutputDirectory *string
}

// Args are ferry build's flags for o. They use the --flag=value form, so that a command starting with "-"
// stays a value.
func (o Overrides) Args() []string {
	var args []string
	for _, f := range []struct {
		name      string
		v         *string
		keepEmpty bool
	}{
		{"root-directory", o.RootDirectory, false},
		{"install-command", o.InstallCommand, true},
		{"build-command", o.BuildCommand, true},
		{"output-directory", o.OutputDirectory, false},
	} {
		if f.v != nil && (*f.v != "" || f.keepEmpty) {
			args = append(args, "--"+f.name+"="+*f.v)
		}
	}
	return args
}

// LogLine is one line of a build's log.
type LogLine struct {
	Time    time.Time
	Level   string // "INFO", "WARN", "ERROR"
	Step    string // "clone", "install", "build", "publish", ...; "ferry" for the runner's own lines
	Message string
}

// Result is what a successful build published: `ferry build --json`'s object, the fields the App uses.
type Result struct {
	Project      string             `json:"project"`
	Deployment   string             `json:"deployment"`
	URLs         []string           `json:"urls"`
	Commit       string             `json:"commit"`
	Files        int                `json:"files"`
	Uploaded     int                `json:"uploaded"`
	Bytes        int64              `json:"bytes"`
	BuildSeconds float64            `json:"build_seconds"`
	StepSeconds  map[string]float64 `json:"step_seconds"`
	Cache        string             `json:"cache"`
}
