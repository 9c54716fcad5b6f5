package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/internal/ferry"
)

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

func init() {
	for k, v := range map[string]string{
		"users_email_key":           "an account with this email already exists; log in instead",
		"users_email_check":         "the email must be lowercase and at most 254 characters",
		"users_name_check":          "the name must be at most 100 characters",
		"users_github_id_key":       "this GitHub account is already linked to another Ferry account",
		"sessions_token_hash_key":   "session token collision; try again",
		"sessions_user_id_fkey":     "the user does not exist",
		"api_tokens_name_check":     "the token name must be 1 to 100 characters",
		"api_tokens_token_hash_key": "token collision; try again",
		"api_tokens_user_id_fkey":   "the user does not exist",
		"login_links_user_id_fkey":  "the user does not exist",
		"projects_owner_id_fkey":    "the owner does not exist",
	} {
		constraintMessages[k] = v
	}
}

const userColumns = `u.id, u.email, u.name, u.password_hash, coalesce(u.github_id, 0), u.github_login, u.created_at, u.updated_at`

func scanUser(row pgx.Row, extra ...any) (*User, error) {
	var u User
	dest := append([]any{&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.GitHubID, &u.GitHubLogin, &u.CreatedAt, &u.UpdatedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	return &u, nil
}

// UserCreateParams describes a new user. Email is lowercased here; the caller validates its form.
type UserCreateParams struct {
	Email        string
	Name         string
	PasswordHash string // '' for an account without a password (GitHub-only, or a `ferry dev` link)
}

// UserCreate records a new user. A taken email is ECONFLICT.
func (s *Store) UserCreate(ctx context.Context, p UserCreateParams) (*User, error) {
	u, err := scanUser(s.db.QueryRow(ctx, `
		INSERT INTO users AS u (email, name, password_hash) VALUES ($1, $2, $3)
		RETURNING `+userColumns, strings.ToLower(strings.TrimSpace(p.Email)), p.Name, p.PasswordHash))
	if err != nil {
		return nil, dbError("create user", err)
	}
	return u, nil
}

// UserGetByID returns the user with id id.
func (s *Store) UserGetByID(ctx context.Context, id int64) (*User, error) {
	u, err := scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("user %d not found", id)
	}
	if err != nil {
		return nil, dbError("get user", err)
	}
	return u, nil
}

// UserGetByEmail returns the user with email (compared lowercase). An empty email is never found, so GitHub-only
// users cannot be reached by it.
func (s *Store) UserGetByEmail(ctx context.Context, email string) (*User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return nil, notFound("no user with an empty email")
	}
	u, err := scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.email = $1`, email))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("no user with email %q", email)
	}
	if err != nil {
		return nil, dbError("get user", err)
	}
	return u, nil
}

// UserUpsertGitHubParams is what a GitHub sign-in learns about the person.
type UserUpsertGitHubParams struct {
	// UserID, when not 0, links the GitHub account to this (signed-in) user instead of finding or creating one.
	UserID      int64
	GitHubID    int64
	GitHubLogin string
	Name        string
}

// UserUpsertGitHub finds the user linked to a GitHub account, refreshing their login, or creates a GitHub-only
// user. It never links by email: an email GitHub reports is not proof of owning the Ferry account with it.
// Linking a GitHub account already linked to another user is ECONFLICT.
func (s *Store) UserUpsertGitHub(ctx context.Context, p UserUpsertGitHubParams) (*User, error) {
	if p.GitHubID <= 0 {
		return nil, ferry.Errorf(ferry.EINVALID, "upsert GitHub user: no GitHub user id")
	}
	if len(p.Name) > 100 {
		p.Name = p.Name[:100]
	}
	var row pgx.Row
	if p.UserID != 0 {
		row = s.db.QueryRow(ctx, `
			UPDATE users u SET github_id = $2, github_login = $3, name = CASE WHEN u.name = '' THEN $4 ELSE u.name END,
				updated_at = now()
			WHERE u.id = $1 RETURNING `+userColumns, p.UserID, p.GitHubID, p.GitHubLogin, p.Name)
	} else {
		row = s.db.QueryRow(ctx, `
			INSERT INTO users AS u (github_id, github_login, name) VALUES ($1, $2, $3)
			ON CONFLICT (github_id) DO UPDATE SET github_login = excluded.github_login, updated_at = now()
			RETURNING `+userColumns, p.GitHubID, p.GitHubLogin, p.Name)
	}
	u, err := scanUser(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("user %d not found", p.UserID)
	}
	if err != nil {
		return nil, dbError("upsert GitHub user", err)
	}
	return u, nil
}

// UserSetPassword replaces a user's password hash. The caller signs out their other sessions.
func (s *Store) UserSetPassword(ctx context.Context, userID int64, passwordHash string) error {
	tag, err := s.db.Exec(ctx, `UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1`, userID, passwordHash)
	if err != nil {
		return dbError("set password", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("user %d not found", userID)
	}
	return nil
}

// SessionCreateParams describes a new session.
type SessionCreateParams struct {
	UserID    int64
	TokenHash []byte // SHA-256 of the cookie value
	CSRFToken string
	ExpiresAt time.Time
}

// SessionCreate records a signed-in browser.
func (s *Store) SessionCreate(ctx context.Context, p SessionCreateParams) (*Session, error) {
	var sess Session
	err := s.db.QueryRow(ctx, `
		INSERT INTO sessions (user_id, token_hash, csrf_token, expires_at) VALUES ($1, $2, $3, $4)
		RETURNING id, user_id, csrf_token, created_at, expires_at`, p.UserID, p.TokenHash, p.CSRFToken, p.ExpiresAt).
		Scan(&sess.ID, &sess.UserID, &sess.CSRFToken, &sess.CreatedAt, &sess.ExpiresAt)
	if err != nil {
		return nil, dbError("create session", err)
	}
	return &sess, nil
}

// SessionGetByTokenHash returns the unexpired session whose cookie hashes to hash, with its user, in one query
// (it runs on every request). An unknown or expired session is ENOTFOUND.
func (s *Store) SessionGetByTokenHash(ctx context.Context, hash []byte) (*Session, *User, error) {
	var sess Session
	u, err := scanUser(s.db.QueryRow(ctx, `
		SELECT `+userColumns+`, s.id, s.user_id, s.csrf_token, s.created_at, s.expires_at
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = $1 AND s.expires_at > now()`, hash),
		&sess.ID, &sess.UserID, &sess.CSRFToken, &sess.CreatedAt, &sess.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, notFound("session not found or expired")
	}
	if err != nil {
		return nil, nil, dbError("get session", err)
	}
	return &sess, u, nil
}

// SessionDelete removes one session: logging out. A session already gone is not an error.
func (s *Store) SessionDelete(ctx context.Context, id int64) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM sessions WHERE id = $1`, id); err != nil {
		return dbError("delete session", err)
	}
	return nil
}

// SessionDeleteForUser removes every session of a user except exceptID (0: all), after a password change.
func (s *Store) SessionDeleteForUser(ctx context.Context, userID, exceptID int64) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1 AND id <> $2`, userID, exceptID); err != nil {
		return dbError("delete sessions", err)
	}
	return nil
}

// SessionDeleteExpired removes sessions and sign-in links past their expiry and failed log-ins older than
// before, so that the tables stay small. It returns how many sessions it removed.
func (s *Store) SessionDeleteExpired(ctx context.Context, attemptsBefore time.Time) (int64, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= now()`)
	if err != nil {
		return 0, dbError("delete expired sessions", err)
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM login_links WHERE expires_at <= now()`); err != nil {
		return 0, dbError("delete expired sign-in links", err)
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM login_attempts WHERE at < $1`, attemptsBefore); err != nil {
		return 0, dbError("delete old log-in attempts", err)
	}
	return tag.RowsAffected(), nil
}

// APITokenCreateParams describes a new API token.
type APITokenCreateParams struct {
	UserID    int64
	Name      string
	Prefix    string
	TokenHash []byte // SHA-256 of the token
}

const apiTokenColumns = `t.id, t.user_id, t.name, t.prefix, t.created_at, t.last_used_at`

func scanAPIToken(row pgx.Row) (*APIToken, error) {
	var t APIToken
	var last *time.Time
	err := row.Scan(&t.ID, &t.UserID, &t.Name, &t.Prefix, &t.CreatedAt, &last)
	if err != nil {
		return nil, err
	}
	if last != nil {
		t.LastUsedAt = *last
	}
	return &t, nil
}

// APITokenCreate records a new API token.
func (s *Store) APITokenCreate(ctx context.Context, p APITokenCreateParams) (*APIToken, error) {
	t, err := scanAPIToken(s.db.QueryRow(ctx, `
		INSERT INTO api_tokens AS t (user_id, name, prefix, token_hash) VALUES ($1, $2, $3, $4)
		RETURNING `+apiTokenColumns, p.UserID, p.Name, p.Prefix, p.TokenHash))
	if err != nil {
		return nil, dbError("create API token", err)
	}
	return t, nil
}

// APITokenList returns a user's tokens, newest first.
func (s *Store) APITokenList(ctx context.Context, userID int64) ([]*APIToken, error) {
	rows, err := s.db.Query(ctx, `SELECT `+apiTokenColumns+` FROM api_tokens t WHERE t.user_id = $1 ORDER BY t.id DESC`, userID)
	if err != nil {
		return nil, dbError("list API tokens", err)
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*APIToken, error) { return scanAPIToken(r) })
	if err != nil {
		return nil, dbError("list API tokens", err)
	}
	return ts, nil
}

// APITokenDelete revokes a user's token. Another user's token is ENOTFOUND, as a missing one is.
func (s *Store) APITokenDelete(ctx context.Context, userID, id int64) error {
	tag, err := s.db.Exec(ctx, `DELETE FROM api_tokens WHERE id = $1 AND user_id = $2`, id, userID)
	if err != nil {
		return dbError("delete API token", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("API token %d not found", id)
	}
	return nil
}

// APITokenGetByHash returns the token that hashes to hash, with its user, and records its use (at most once a
// minute, so that a busy script does not write on every request). An unknown token is ENOTFOUND.
func (s *Store) APITokenGetByHash(ctx context.Context, hash []byte) (*APIToken, *User, error) {
	var t APIToken
	var last *time.Time
	u, err := scanUser(s.db.QueryRow(ctx, `
		SELECT `+userColumns+`, t.id, t.user_id, t.name, t.prefix, t.created_at, t.last_used_at
		FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1`, hash),
		&t.ID, &t.UserID, &t.Name, &t.Prefix, &t.CreatedAt, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, notFound("API token not found")
	}
	if err != nil {
		return nil, nil, dbError("get API token", err)
	}
	if last != nil {
		t.LastUsedAt = *last
	}
	if time.Since(t.LastUsedAt) > time.Minute {
		if err := s.db.QueryRow(ctx, `UPDATE api_tokens SET last_used_at = now() WHERE id = $1 RETURNING last_used_at`, t.ID).
			Scan(&t.LastUsedAt); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, nil, dbError("touch API token", err)
		}
	}
	return &t, u, nil
}

// UserInstallationsReplace records the GitHub App installations a user reaches, as GitHub listed them at
// sign-in, replacing the previous list.
func (s *Store) UserInstallationsReplace(ctx context.Context, userID int64, installationIDs []int64) error {
	return s.InTx(ctx, func(st *Store, _ pgx.Tx) error {
		if _, err := st.db.Exec(ctx, `DELETE FROM user_installations WHERE user_id = $1`, userID); err != nil {
			return dbError("replace user installations", err)
		}
		if len(installationIDs) == 0 {
			return nil
		}
		if _, err := st.db.Exec(ctx, `
			INSERT INTO user_installations (user_id, installation_id)
			SELECT $1, i FROM unnest($2::bigint[]) AS i ON CONFLICT DO NOTHING`, userID, installationIDs); err != nil {
			return dbError("replace user installations", err)
		}
		return nil
	})
}

// UserInstallationList returns the installation ids a user reaches, ascending.
func (s *Store) UserInstallationList(ctx context.Context, userID int64) ([]int64, error) {
	rows, err := s.db.Query(ctx, `SELECT installation_id FROM user_installations WHERE user_id = $1 ORDER BY 1`, userID)
	if err != nil {
		return nil, dbError("list user installations", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, dbError("list user installations", err)
	}
	return ids, nil
}

// LoginAttemptRecord records one failed log-in under each key ("account:EMAIL", "ip:ADDR"). Rows live in the
// database so that every replica counts the same failures.
func (s *Store) LoginAttemptRecord(ctx context.Context, keys ...string) error {
	if _, err := s.db.Exec(ctx, `INSERT INTO login_attempts (key) SELECT unnest($1::text[])`, keys); err != nil {
		return dbError("record failed log-in", err)
	}
	return nil
}

// LoginAttemptCount returns how many failed log-ins key has had since since.
func (s *Store) LoginAttemptCount(ctx context.Context, key string, since time.Time) (int, error) {
	var n int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM login_attempts WHERE key = $1 AND at > $2`, key, since).Scan(&n); err != nil {
		return 0, dbError("count failed log-ins", err)
	}
	return n, nil
}

// LoginAttemptClear forgets key's failed log-ins, after a successful one.
func (s *Store) LoginAttemptClear(ctx context.Context, key string) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM login_attempts WHERE key = $1`, key); err != nil {
		return dbError("clear failed log-ins", err)
	}
	return nil
}

// LoginLinkCreate records a one-time sign-in link for a user, by the SHA-256 of its token.
func (s *Store) LoginLinkCreate(ctx context.Context, userID int64, tokenHash []byte, expiresAt time.Time) error {
	if _, err := s.db.Exec(ctx, `INSERT INTO login_links (token_hash, user_id, expires_at) VALUES ($1, $2, $3)`,
		tokenHash, userID, expiresAt); err != nil {
		return dbError("create sign-in link", err)
	}
	return nil
}

// LoginLinkUse consumes a one-time sign-in link and returns its user id. A link used already, expired or unknown
// is ENOTFOUND; two concurrent uses cannot both succeed, because the row is deleted as it is read.
func (s *Store) LoginLinkUse(ctx context.Context, tokenHash []byte) (int64, error) {
	var userID int64
	var live bool
	err := s.db.QueryRow(ctx, `DELETE FROM login_links WHERE token_hash = $1 RETURNING user_id, expires_at > now()`, tokenHash).
		Scan(&userID, &live)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && !live {
		return 0, notFound("this sign-in link is unknown or was used already; run ferry dev again for a new one")
	}
	if err != nil {
		return 0, dbError("use sign-in link", err)
	}
	return userID, nil
}

// projectAccess is the condition under which user $1 reaches project p.
const projectAccess = `(p.owner_id = $1 OR p.installation_id IN (SELECT installation_id FROM user_installations WHERE user_id = $1))`

// ProjectListForUser returns the projects user may reach: those they own, and those of GitHub App installations
// they belong to (user_installations, refreshed at GitHub sign-in). Newest first.
func (s *Store) ProjectListForUser(ctx context.Context, userID int64) ([]*Project, error) {
	ps, err := collectProjects(s.db.Query(ctx, `SELECT `+projectColumns+` FROM projects p
		WHERE `+projectAccess+` ORDER BY p.created_at DESC, p.id DESC`, userID))
	if err != nil {
		return nil, dbError("list projects", err)
	}
	return ps, nil
}

// ProjectGetForUser returns project id if user may reach it, and ENOTFOUND otherwise, so that callers cannot
// tell "exists but not yours" from "does not exist" (no IDOR oracle).
func (s *Store) ProjectGetForUser(ctx context.Context, userID, projectID int64) (*Project, error) {
	p, err := scanProject(s.db.QueryRow(ctx, `SELECT `+projectColumns+` FROM projects p
		WHERE p.id = $2 AND `+projectAccess, userID, projectID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("project %d not found", projectID)
	}
	if err != nil {
		return nil, dbError("get project", err)
	}
	return p, nil
}

// ProjectGetByNameForUser is ProjectGetForUser by project name.
func (s *Store) ProjectGetByNameForUser(ctx context.Context, userID int64, name string) (*Project, error) {
	p, err := scanProject(s.db.QueryRow(ctx, `SELECT `+projectColumns+` FROM projects p
		WHERE p.name = $2 AND `+projectAccess, userID, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("project %q not found", name)
	}
	if err != nil {
		return nil, dbError("get project", err)
	}
	return p, nil
}
