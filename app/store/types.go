package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/internal/retention"
)

// Installation is a GitHub App installation on a user or organization account.
type Installation struct {
	ID           int64 // GitHub's installation id
	AccountLogin string
	AccountType  string // "User" or "Organization"
	AccountID    int64
	SuspendedAt  time.Time // zero while the installation is active
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Suspended reports whether GitHub has suspended the installation: its webhooks still arrive but nothing builds.
func (i *Installation) Suspended() bool { return !i.SuspendedAt.IsZero() }

// Project is a site Ferry deploys: one repository, one name (its host label and storage prefix).
type Project struct {
	ID               int64
	Name             string
	Repository       string // "owner/name"; empty for a project created from a bare git URL
	CloneURL         string
	GitHubRepoID     int64 // 0 when the project does not come from the GitHub App
	InstallationID   int64 // 0 when no installation reaches the repository
	OwnerID          int64 // 0 until accounts exist; the user who owns the project
	ProductionBranch string
	Settings         json.RawMessage // project settings as JSON, "{}" by default
	CreatedAt        time.Time
	UpdatedAt        time.Time
	// GitHubBlocked says why the project does not build ("" when it does): the GitHub App was uninstalled from
	// its repository. Its site keeps serving.
	GitHubBlocked string
}

// ProjectSettings are a project's build and preview options, stored as JSON in projects.settings. They are
// defined here, next to Project, because three parts read them: app/projects edits them (as
// projects.Settings), webhook intake decides fork builds by them, and the deploy worker hands their overrides
// to the builder.
type ProjectSettings struct {
	// BuildForks builds pull requests from forks (without the project's env vars). Default true.
	BuildForks bool `json:"buildForks"`
	// RequireForkApproval holds fork pull requests until a maintainer adds the ferry:approve label. Default
	// true, as GitHub Actions holds a first-time contributor's workflows: a fork's code runs on the operator's
	// machines and publishes under the project's domain, so a maintainer looks at it first.
	RequireForkApproval bool `json:"requireForkApproval"`
	// Overrides win over the repository's ferry.json.
	Overrides ProjectOverrides `json:"overrides"`
	// Retention is the project's retention policy; zero fields take the server's defaults (--retention-*).
	Retention retention.Policy `json:"retention"`
	// AlwaysBuild builds every push, even one that changed no file under the root directory (a monorepo
	// project that depends on shared folders outside it). Default false.
	AlwaysBuild bool `json:"alwaysBuild"`
}

// ProjectOverrides replace ferry.json's build settings; nil keeps ferry.json's (or the detected) value, and an
// empty BuildCommand or InstallCommand skips that step.
type ProjectOverrides struct {
	RootDirectory   *string `json:"rootDirectory,omitempty"`
	InstallCommand  *string `json:"installCommand,omitempty"`
	BuildCommand    *string `json:"buildCommand,omitempty"`
	OutputDirectory *string `json:"outputDirectory,omitempty"`
}

// DefaultProjectSettings are a new project's settings, and what keys missing from stored settings mean.
func DefaultProjectSettings() ProjectSettings {
	return ProjectSettings{BuildForks: true, RequireForkApproval: true}
}

// ParseProjectSettings reads stored settings over the defaults. Keys it does not know are ignored. Invalid
// JSON gives the defaults and a value of the wrong type leaves that key's default, both with an error, so
// that each caller picks its own safe reading.
func ParseProjectSettings(raw json.RawMessage) (ProjectSettings, error) {
	s := DefaultProjectSettings()
	if len(raw) == 0 {
		return s, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("read project settings: %w", err)
	}
	return s, nil
}

// DeploymentKind says whether a deployment moves the production alias or a preview alias.
type DeploymentKind string

// The deployment kinds.
const (
	KindProduction DeploymentKind = "production"
	KindPreview    DeploymentKind = "preview"
)

// DeploymentStatus is where a deployment is in its lifecycle (docs/architecture.md, "Deployment lifecycle").
type DeploymentStatus string

// The deployment statuses. Failed is the user's build failing (final); Error is infrastructure that failed
// after its retries; Canceled is a deployment superseded or stopped by a user; Inactive is a ready deployment
// retired (its pull request closed).
const (
	StatusQueued   DeploymentStatus = "queued"
	StatusBuilding DeploymentStatus = "building"
	StatusReady    DeploymentStatus = "ready"
	StatusFailed   DeploymentStatus = "failed"
	StatusError    DeploymentStatus = "error"
	StatusCanceled DeploymentStatus = "canceled"
	StatusInactive DeploymentStatus = "inactive"
)

// Finished reports whether a deployment in status s will build no more (ready counts: its build is done).
func (s DeploymentStatus) Finished() bool {
	return s != StatusQueued && s != StatusBuilding
}

// transitions lists, per status, the statuses it may move to. building -> building is a new attempt after an
// infrastructure error or a crash.
var transitions = map[DeploymentStatus][]DeploymentStatus{
	StatusQueued:   {StatusBuilding, StatusFailed, StatusError, StatusCanceled},
	StatusBuilding: {StatusBuilding, StatusReady, StatusFailed, StatusError, StatusCanceled},
	StatusReady:    {StatusInactive},
}

// CanTransition reports whether a deployment may move from one status to another.
func CanTransition(from, to DeploymentStatus) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Deployment is one build of one commit of a project.
type Deployment struct {
	ID                 string // "dpl-" and 16 characters (internal/site.NewDeploymentID)
	ProjectID          int64
	CommitSHA          string
	Ref                string // the branch
	PRNumber           int    // 0 for branch and production deployments
	Kind               DeploymentKind
	Status             DeploymentStatus
	Alias              string // "production", "pr-42", "git-<slug>"
	URL                string // the immutable deployment URL, set when ready
	AliasURL           string
	GitHubDeploymentID int64 // 0 until the GitHub deployment exists
	Error              string
	Attempt            int    // build attempts started so far
	SupersededBy       string // the newer deployment that canceled this one, if any
	CreatedAt          time.Time
	StartedAt          time.Time // zero until the first attempt starts
	FinishedAt         time.Time // zero until the status is final
	UpdatedAt          time.Time
}

// LogLine is one line of a deployment's build log.
type LogLine struct {
	Seq  int64     // 1, 2, 3... per deployment, assigned by DeploymentLogAppend
	Time time.Time // when the line was written; zero in DeploymentLogAppend means now
	Step string    // "clone", "install", "build", "upload"...
	Line string
}
