-- Projects through the REST API and the dashboard (issue 6): env vars per project and environment, encrypted
-- at rest by the app (AES-256-GCM, key from --secret-key-file; the database never sees a plaintext value), and
-- the progress of a project's deletion, which runs in the background (River job project_delete) and removes the
-- row last.

CREATE TABLE project_env (
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    environment text NOT NULL
                CONSTRAINT project_env_environment_check CHECK (environment IN ('production', 'preview')),
    key         text NOT NULL
                CONSTRAINT project_env_key_check CHECK (key ~ '^[A-Za-z_][A-Za-z0-9_]*$' AND length(key) <= 256),
    value_enc   bytea NOT NULL,                     -- version byte, nonce, AES-256-GCM ciphertext and tag
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, environment, key)
);

ALTER TABLE projects
    ADD COLUMN deleting_at  timestamptz,            -- set when a deletion is requested; the row goes last
    ADD COLUMN delete_total integer NOT NULL DEFAULT 0,
    ADD COLUMN delete_done  integer NOT NULL DEFAULT 0;

---- create above / drop below ----

ALTER TABLE projects
    DROP COLUMN delete_done,
    DROP COLUMN delete_total,
    DROP COLUMN deleting_at;
DROP TABLE project_env;
