-- Build events (app/buildevents): a build that runs away from the App (an ECS task) fetches its secrets once and
-- then streams its log and outcome to POST /internal/builds/<id>/events. One row per deployment, replaced by
-- each attempt. Tokens are stored as SHA-256 hashes only; the secrets are sealed with a key derived from the
-- claim token, which the database never holds, and are erased at the claim. Every token dies with its
-- attempt: when the deployment leaves building, moves to a new attempt, or the row is deleted at the build's end.

CREATE TABLE build_tokens (
    deployment_id text PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
    attempt       integer NOT NULL,
    claim_hash    bytea NOT NULL,        -- SHA-256 of the one-time claim token
    sealed        bytea,                 -- AES-GCM sealed secrets; NULL once claimed
    claimed_at    timestamptz,
    events_hash   bytea NOT NULL,        -- SHA-256 of the events token (handed over by the claim)
    last_batch    integer NOT NULL DEFAULT 0,
    result        jsonb,                 -- the build's result event, once sent
    error_code    text NOT NULL DEFAULT '',
    error         text NOT NULL DEFAULT '',
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

---- create above / drop below ----

DROP TABLE build_tokens;
