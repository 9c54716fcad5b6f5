-- GitHub, all the way (issue 15). Check runs: one per project and commit (ghreport.CheckRunUpsert); each
-- deployment remembers the check run that reports it, and a redeploy of the same commit reuses it, so that
-- GitHub shows one ferry/<project> check per commit however often it is rebuilt.

CREATE TABLE deployment_check_runs (
    deployment_id text PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
    project_id    bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    commit_sha    text NOT NULL,
    check_run_id  bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployment_check_runs_commit ON deployment_check_runs (project_id, commit_sha, created_at DESC);

-- Why a project does not build, shown on the dashboard: set when the GitHub App is uninstalled from its
-- repository (the site keeps serving until the owner deletes the project), cleared when it is installed again.
ALTER TABLE projects ADD COLUMN github_blocked text NOT NULL DEFAULT '';

---- create above / drop below ----

ALTER TABLE projects DROP COLUMN github_blocked;
DROP TABLE deployment_check_runs;
