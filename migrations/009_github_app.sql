-- The GitHub App created from the dashboard with the App manifest flow (issue 15): one row at most. The secrets
-- (the private key, the webhook secret and the OAuth client secret) are stored only as AES-256-GCM ciphertext
-- under --secret-key-file, like env vars (store.EnvCipher), each bound to its column so that values cannot be
-- swapped between columns. Flags and FERRY_* variables, when set, win over this row.

CREATE TABLE github_app (
    singleton          boolean PRIMARY KEY DEFAULT true CONSTRAINT github_app_singleton_check CHECK (singleton),
    app_id             bigint NOT NULL CONSTRAINT github_app_app_id_check CHECK (app_id > 0),
    slug               text NOT NULL DEFAULT '',
    html_url           text NOT NULL DEFAULT '',
    client_id          text NOT NULL DEFAULT '',
    private_key_enc    bytea NOT NULL,
    webhook_secret_enc bytea NOT NULL,
    client_secret_enc  bytea NOT NULL,
    created_by         bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);

---- create above / drop below ----

DROP TABLE github_app;
