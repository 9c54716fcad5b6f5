package store

import (
	"context"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

// The accounts issue (6) fills these in; the signatures are the contract that the REST API and the dashboard
// are written against meanwhile.

// User is a person who signs in to Ferry, with a password, with GitHub, or both.
type User struct {
	ID           int64
	Email        string // lowercase; unique; empty for a GitHub-only user
	Name         string
	PasswordHash string // argon2id in PHC form; empty for a GitHub-only user
	GitHubID     int64  // 0 when never signed in with GitHub
	GitHubLogin  string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Session is a signed-in browser. Only the SHA-256 of its cookie value is stored, so a database leak signs no
// one in; deleting the row is logging out.
type Session struct {
	ID        int64
	UserID    int64
	CSRFToken string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// APIToken is a long-lived credential for scripts and CI (`Authorization: Bearer ...`), stored hashed.
type APIToken struct {
	ID         int64
	UserID     int64
	Name       string
	Prefix     string // the first characters of the token, shown in lists so people can tell tokens apart
	CreatedAt  time.Time
	LastUsedAt time.Time // zero when never used
}

var errAccountsTODO = ferry.Errorf(ferry.EINTERNAL, "accounts are not implemented yet")

// ProjectListForUser returns the projects user may reach: those they own, and those of GitHub App installations
// they belong to (user_installations, refreshed at GitHub sign-in). Newest first.
func (s *Store) ProjectListForUser(ctx context.Context, userID int64) ([]*Project, error) {
	return nil, errAccountsTODO
}

// ProjectGetForUser returns project id if user may reach it, and ENOTFOUND otherwise, so that callers cannot
// tell "exists but not yours" from "does not exist" (no IDOR oracle).
func (s *Store) ProjectGetForUser(ctx context.Context, userID, projectID int64) (*Project, error) {
	return nil, errAccountsTODO
}

// ProjectGetByNameForUser is ProjectGetForUser by project name.
func (s *Store) ProjectGetByNameForUser(ctx context.Context, userID int64, name string) (*Project, error) {
	return nil, errAccountsTODO
}
