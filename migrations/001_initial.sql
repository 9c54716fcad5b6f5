-- Ferry's first schema: GitHub installations, projects, deployments with their live logs, and webhook
-- deliveries for idempotency. River's own tables are applied by rivermigrate, not here (see migrations.go).
-- Ids that GitHub owns (installations, repositories, deployments) are bigint; 0 is never used, so the store maps
-- Go's zero value to NULL.

CREATE TABLE installations (
    id            bigint PRIMARY KEY,               -- GitHub's installation id
    account_login text NOT NULL,
    account_type  text NOT NULL,                    -- "User" or "Organization", as GitHub says
    account_id    bigint NOT NULL,
    suspended_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The host label and storage prefix: internal/site.ValidateProjectName's rules, restated for safety.
    name              text NOT NULL
                      CONSTRAINT projects_name_key UNIQUE
                      CONSTRAINT projects_name_check CHECK (name ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(name) <= 40),
    repository        text NOT NULL DEFAULT '',     -- "owner/name" for GitHub repositories
    clone_url         text NOT NULL,
    github_repo_id    bigint CONSTRAINT projects_github_repo_id_key UNIQUE,
    installation_id   bigint REFERENCES installations (id) ON DELETE SET NULL,
    owner_id          bigint,                       -- the user who owns it; the accounts migration adds the key
    production_branch text NOT NULL DEFAULT 'main',
    settings          jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX projects_installation_id_idx ON projects (installation_id);
CREATE INDEX projects_owner_id_idx ON projects (owner_id);

CREATE TABLE deployments (
    id                   text PRIMARY KEY CONSTRAINT deployments_id_check CHECK (id ~ '^dpl-[0-9a-v]{16}$'),
    project_id           bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    commit_sha           text NOT NULL,
    ref                  text NOT NULL DEFAULT '',  -- the branch
    pr_number            integer,
    kind                 text NOT NULL CONSTRAINT deployments_kind_check CHECK (kind IN ('production', 'preview')),
    status               text NOT NULL DEFAULT 'queued'
                         CONSTRAINT deployments_status_check
                         CHECK (status IN ('queued', 'building', 'ready', 'failed', 'error', 'canceled', 'inactive')),
    alias                text NOT NULL DEFAULT '',  -- "production", "pr-42", "git-<slug>"
    url                  text NOT NULL DEFAULT '',  -- the immutable deployment URL
    alias_url            text NOT NULL DEFAULT '',
    github_deployment_id bigint,
    error                text NOT NULL DEFAULT '',
    attempt              integer NOT NULL DEFAULT 0,
    log_seq              bigint NOT NULL DEFAULT 0, -- last deployment_logs.seq; its row lock orders appends
    superseded_by        text REFERENCES deployments (id) ON DELETE SET NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    started_at           timestamptz,
    finished_at          timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Newest first per project, with (created_at, id) as the pagination cursor.
CREATE INDEX deployments_project_created_idx ON deployments (project_id, created_at DESC, id DESC);
-- Superseding looks for the unfinished deployments of one branch or pull request.
CREATE INDEX deployments_active_idx ON deployments (project_id, pr_number, ref) WHERE status IN ('queued', 'building');

CREATE TABLE deployment_logs (
    deployment_id text NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    seq           bigint NOT NULL,
    time          timestamptz NOT NULL DEFAULT now(),
    step          text NOT NULL DEFAULT '',
    line          text NOT NULL,
    PRIMARY KEY (deployment_id, seq)
);

CREATE TABLE webhook_deliveries (
    id              text PRIMARY KEY,               -- X-GitHub-Delivery
    event           text NOT NULL,
    action          text NOT NULL DEFAULT '',
    installation_id bigint,
    received_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_deliveries_received_at_idx ON webhook_deliveries (received_at);

---- create above / drop below ----

DROP TABLE webhook_deliveries;
DROP TABLE deployment_logs;
DROP TABLE deployments;
DROP TABLE projects;
DROP TABLE installations;
