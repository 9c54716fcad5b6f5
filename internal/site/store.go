package site

import (
	"context"
	"errors"

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
