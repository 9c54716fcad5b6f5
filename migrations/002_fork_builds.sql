-- Pull requests from forks build untrusted code that the project's maintainers did not write. Webhook intake
-- marks such deployments fork = true, and the deploy worker then withholds the project's secret env vars. When
-- the project's settings say {"requireForkApproval": true}, a fork deployment is stored awaiting_approval with no
-- job, until a maintainer adds the ferry:approve label to the pull request (intake then clears the flag and
-- enqueues the build).

ALTER TABLE deployments
    ADD COLUMN fork boolean NOT NULL DEFAULT false,
    ADD COLUMN awaiting_approval boolean NOT NULL DEFAULT false;

---- create above / drop below ----

ALTER TABLE deployments
    DROP COLUMN awaiting_approval,
    DROP COLUMN fork;
