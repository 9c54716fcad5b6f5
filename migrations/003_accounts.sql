-- Accounts (issue 6): users who sign in with a password, with GitHub, or both; browser sessions; API tokens;
-- which GitHub App installations a user reaches (refreshed at each GitHub sign-in); failed log-ins for rate
-- limiting across replicas; one-time sign-in links for `ferry dev`. Secrets are never stored: sessions, tokens
-- and links keep only the SHA-256 of the value the user holds, and passwords only their argon2id hash.

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text NOT NULL DEFAULT ''        -- lowercase; '' for a GitHub-only user
                  CONSTRAINT users_email_check CHECK (email = lower(email) AND length(email) <= 254),
    name          text NOT NULL DEFAULT '' CONSTRAINT users_name_check CHECK (length(name) <= 100),
    password_hash text NOT NULL DEFAULT '',       -- argon2id in PHC form; '' when none is set
    github_id     bigint CONSTRAINT users_github_id_key UNIQUE,
    github_login  text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_email_key ON users (email) WHERE email <> '';

CREATE TABLE sessions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL CONSTRAINT sessions_token_hash_key UNIQUE, -- SHA-256 of the cookie value
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL CONSTRAINT api_tokens_name_check CHECK (length(name) BETWEEN 1 AND 100),
    prefix       text NOT NULL,                 -- the token's first characters, to tell tokens apart
    token_hash   bytea NOT NULL CONSTRAINT api_tokens_token_hash_key UNIQUE, -- SHA-256 of the token
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);

CREATE INDEX api_tokens_user_id_idx ON api_tokens (user_id);

-- No key to installations: GitHub may tell a user about an installation before its webhook arrives here.
CREATE TABLE user_installations (
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    installation_id bigint NOT NULL,
    PRIMARY KEY (user_id, installation_id)
);

CREATE INDEX user_installations_installation_id_idx ON user_installations (installation_id);

-- One row per failed log-in per key ("account:EMAIL", "ip:ADDR"); counted over a sliding window.
CREATE TABLE login_attempts (
    key text NOT NULL,
    at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX login_attempts_key_at_idx ON login_attempts (key, at);

CREATE TABLE login_links (
    token_hash bytea PRIMARY KEY,               -- SHA-256 of the link's token
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL
);

ALTER TABLE projects
    ADD CONSTRAINT projects_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE SET NULL;

---- create above / drop below ----

ALTER TABLE projects DROP CONSTRAINT projects_owner_id_fkey;
DROP TABLE login_links;
DROP TABLE login_attempts;
DROP TABLE user_installations;
DROP TABLE api_tokens;
DROP TABLE sessions;
DROP TABLE users;
