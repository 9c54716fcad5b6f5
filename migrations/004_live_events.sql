-- Live dashboard updates (app/events): every change to a deployment that a page shows (its status, URLs, error,
-- a new batch of log lines, which bumps log_seq) sends a small NOTIFY on channel ferry_events. The payload
-- carries ids and the log sequence only; listeners re-read the rows. NOTIFY goes through PostgreSQL and is
-- delivered at commit, so every app replica sees every change, and never before the rows are visible.

CREATE FUNCTION ferry_notify_deployment() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        r := OLD;
    ELSE
        r := NEW;
    END IF;
    PERFORM pg_notify('ferry_events', json_build_object(
        'd', r.id, 'p', r.project_id, 's', CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE r.status END,
        'l', r.log_seq)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER deployments_notify_insert_delete AFTER INSERT OR DELETE ON deployments
    FOR EACH ROW EXECUTE FUNCTION ferry_notify_deployment();

CREATE TRIGGER deployments_notify_update AFTER UPDATE ON deployments
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.log_seq IS DISTINCT FROM NEW.log_seq
        OR OLD.url IS DISTINCT FROM NEW.url OR OLD.alias_url IS DISTINCT FROM NEW.alias_url
        OR OLD.error IS DISTINCT FROM NEW.error OR OLD.attempt IS DISTINCT FROM NEW.attempt)
    EXECUTE FUNCTION ferry_notify_deployment();

-- A project's own changes (settings, the production alias moving) reach its page too.
CREATE FUNCTION ferry_notify_project() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ferry_events', json_build_object('p', NEW.id)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER projects_notify_update AFTER UPDATE ON projects
    FOR EACH ROW EXECUTE FUNCTION ferry_notify_project();

---- create above / drop below ----

DROP TRIGGER projects_notify_update ON projects;
DROP FUNCTION ferry_notify_project();
DROP TRIGGER deployments_notify_update ON deployments;
DROP TRIGGER deployments_notify_insert_delete ON deployments;
DROP FUNCTION ferry_notify_deployment();
