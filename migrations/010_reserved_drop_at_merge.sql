-- PLACEHOLDER, DROP AT MERGE: this number belongs to another branch's migration. It exists only so that tern,
-- which refuses gaps, loads 011_github_app.sql on the github-manifest branch.

SELECT 1;

---- create above / drop below ----
