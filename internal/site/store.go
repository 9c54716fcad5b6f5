package site

import (
	"context"
	"errors"
	"log/slog"

	"github.com/ferryhq/ferry/internal/siteconfig"

	"github.com/ferryhq/ferry/internal/storage"
)

// TODO(issue 2): bodies are replaced by the real implementation.
var errTODO = errors.New("not implemented yet")

// Store is the site store over one Storage: publishing, manifests and aliases.
type Store struct {
	Storage storage.Storage
}

// NewStore returns a site store over st.
func NewStore(st storage.Storage) *Store { return &Store{Storage: st} }

// ManifestGet reads a deployment's manifest (ENOTFOUND if it does not exist).
func (s *Store) ManifestGet(ctx context.Context, project, deployment string) (*Manifest, error) {
	return nil, errTODO
}

// AliasGet reads an alias (ENOTFOUND if it does not exist).
func (s *Store) AliasGet(ctx context.Context, project, alias string) (*Alias, error) {
	return nil, errTODO
}

// ParseHost maps a request's Host (any port ignored) under domain to a project and the alias or deployment id
// it names: "<project>.D" gives (project, "production"), "<name>--<project>.D" gives (project, name).
func ParseHost(host, domain string) (project, name string, ok bool) { return "", "", false }

// IsDeploymentID reports whether name has the fixed form of a deployment id (no alias can take it).
func IsDeploymentID(name string) bool { return false }

// PublishParams describes one publish. Only Project and Dir are required.
type PublishParams struct {
	// Project is the DNS-safe project name that owns the deployment.
	Project string
	// Dir is the output folder to publish. It is untrusted input.
	Dir string
	// DeploymentID is used when the caller has already assigned one (the app does); otherwise a new id is made.
	DeploymentID string
	// Aliases are pointed at the new deployment after its manifest is written.
	Aliases []string
	// Settings are the serving settings from the repository's ferry.json, if any (nil: defaults).
	Settings *siteconfig.File
	// Domain, if set, fills PublishResult.URLs ("localhost:8081", "example.com", "https://example.com").
	Domain string
	// Meta is copied into the manifest (commit, ref, ...).
	Meta map[string]string
	// Log receives progress lines; nil discards them.
	Log *slog.Logger
}

// PublishResult is what a publish did. Its JSON form is the `ferry publish --json` output contract.
type PublishResult struct {
	Project    string   `json:"project"`
	Deployment string   `json:"deployment"`
	URLs       []string `json:"urls"`
	Uploaded   int      `json:"uploaded"`
	Skipped    int      `json:"skipped"`
	Files      int      `json:"files"`
	Bytes      int64    `json:"bytes"`
}

// Publish hashes Dir, uploads the missing blobs in parallel with their checksums, writes the manifest last, and
// then points the aliases at it.
func (s *Store) Publish(ctx context.Context, p PublishParams) (*PublishResult, error) {
	return nil, errTODO
}
