-- Sign-up and log-in hardening (issue 11): invite links for --signup invite; known devices, whose long-lived
-- cookie lets an account's own browser past a per-account lock-out; and an id on each log-in attempt, which is
-- now recorded before the password is checked and forgotten again when the password was right.

CREATE TABLE invites (
    token_hash bytea PRIMARY KEY,                                   -- SHA-256 of the link's token
    created_by bigint REFERENCES users (id) ON DELETE CASCADE,      -- NULL: made by the operator
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE TABLE known_devices (
    token_hash   bytea PRIMARY KEY,                                 -- SHA-256 of the device cookie
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX known_devices_user_id_idx ON known_devices (user_id);

ALTER TABLE login_attempts ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;

---- create above / drop below ----

ALTER TABLE login_attempts DROP COLUMN id;
DROP TABLE known_devices;
DROP TABLE invites;
