package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/internal/ferry"
)

// This file holds the GitHub App that the dashboard created with the App manifest flow (migration 009): one row
// at most. Its secrets are stored only as EnvCipher ciphertext, each bound to its column (SealAppSecret), and
// no page or log shows them: GitHubAppGet returns them sealed, for the one reader that opens them
// (app/githubapp).

// The columns an App secret is sealed for: a value sealed for one does not open as another.
const (
	AppSecretPrivateKey    = "private_key"
	AppSecretWebhookSecret = "webhook_secret"
	AppSecretClientSecret  = "client_secret"
)

// GitHubApp is the stored App, its secrets still sealed.
type GitHubApp struct {
	AppID    int64
	Slug     string
	HTMLURL  string
	ClientID string
	// PrivateKeySealed, WebhookSecretSealed and ClientSecretSealed are EnvCipher.SealAppSecret ciphertexts.
	PrivateKeySealed    []byte
	WebhookSecretSealed []byte
	ClientSecretSealed  []byte
	CreatedBy           int64 // 0 when the user was deleted
	CreatedAt           time.Time
}

// GitHubAppCreate stores the App the manifest flow created. There is one App per server: a second one is
// ECONFLICT and leaves the first in place, so that two browsers finishing the flow at once cannot replace each
// other's credentials.
func (s *Store) GitHubAppCreate(ctx context.Context, a GitHubApp) (*GitHubApp, error) {
	var createdBy *int64
	if a.CreatedBy != 0 {
		createdBy = &a.CreatedBy
	}
	err := s.db.QueryRow(ctx, `
		INSERT INTO github_app (app_id, slug, html_url, client_id, private_key_enc, webhook_secret_enc, client_secret_enc, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (singleton) DO NOTHING
		RETURNING created_at`,
		a.AppID, a.Slug, a.HTMLURL, a.ClientID, a.PrivateKeySealed, a.WebhookSecretSealed, a.ClientSecretSealed, createdBy).Scan(&a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ferry.Errorf(ferry.ECONFLICT, "this server already has a GitHub App; nothing was changed")
	}
	if err != nil {
		return nil, dbError("save the GitHub App", err)
	}
	return &a, nil
}

// GitHubAppGet returns the stored App, ENOTFOUND when the manifest flow has not created one.
func (s *Store) GitHubAppGet(ctx context.Context) (*GitHubApp, error) {
	var a GitHubApp
	var createdBy *int64
	err := s.db.QueryRow(ctx, `
		SELECT app_id, slug, html_url, client_id, private_key_enc, webhook_secret_enc, client_secret_enc, created_by, created_at
		FROM github_app`).Scan(&a.AppID, &a.Slug, &a.HTMLURL, &a.ClientID, &a.PrivateKeySealed, &a.WebhookSecretSealed,
		&a.ClientSecretSealed, &createdBy, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ferry.Errorf(ferry.ENOTFOUND, "no GitHub App has been created from the dashboard")
	}
	if err != nil {
		return nil, dbError("read the GitHub App", err)
	}
	if createdBy != nil {
		a.CreatedBy = *createdBy
	}
	return &a, nil
}

// UserFirstID is the server's owner: its first account (the lowest id, made by the first-account invite or
// ferry dev's dev@localhost). It alone may create the GitHub App from the dashboard. ENOTFOUND without accounts.
func (s *Store) UserFirstID(ctx context.Context) (int64, error) {
	var id int64
	err := s.db.QueryRow(ctx, `SELECT id FROM users ORDER BY id LIMIT 1`).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ferry.Errorf(ferry.ENOTFOUND, "no accounts yet")
	}
	if err != nil {
		return 0, dbError("find the first account", err)
	}
	return id, nil
}

// appSecretEnvironment is the environment App secrets are sealed under, with project id 0: no env var has
// either, so an App secret and an env var never open as each other.
const appSecretEnvironment = "github-app"

// SealAppSecret encrypts one of the App's secrets for its column (AppSecret*), with the env vars' key and
// cipher.
func (c *EnvCipher) SealAppSecret(column, value string) []byte {
	return c.Seal(0, appSecretEnvironment, column, value)
}

// OpenAppSecret decrypts one of the App's secrets. A wrong key or a value moved from another column is
// EINTERNAL, naming --secret-key-file.
func (c *EnvCipher) OpenAppSecret(column string, sealed []byte) (string, error) {
	v, err := c.Open(0, appSecretEnvironment, column, sealed)
	if err != nil {
		return "", ferry.Errorf(ferry.EINTERNAL, "the stored GitHub App's %s cannot be decrypted; was --secret-key-file changed since the App was created?", column)
	}
	return v, nil
}
