-- The reporting layer (issue 11): project and enterprise project names, structured scope
-- errors, four views that are the public contract for SQL users and BI tools, and
-- registries_as_of(timestamptz), the estate at a point in time. docs/reporting.md documents
-- them column by column; the tables may change, the views keep their columns. The SQLite
-- migration of the same name builds the same views, with the same column names.
--
-- Time columns of the views are timestamptz, and each has an *_ms twin in epoch milliseconds,
-- as in SQLite.

-- Projects as IAM lists them (and ids given on the command line, with a NULL name), refreshed
-- at the start of every run.
CREATE TABLE projects (
    id            TEXT PRIMARY KEY,
    name          TEXT,
    region        TEXT NOT NULL,
    parent_id     TEXT,
    status        TEXT CHECK (status IN ('enabled', 'disabled')),
    first_seen_at TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL
);

-- Enterprise projects as EPS lists them (and ids a run used without a listing, with a NULL
-- name), refreshed at the start of every run.
CREATE TABLE enterprise_projects (
    id            TEXT PRIMARY KEY,
    name          TEXT,
    status        TEXT CHECK (status IN ('enabled', 'disabled')),
    first_seen_at TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL
);

-- Huawei's error code, the HTTP status and the request id of a failed scope, beside the
-- message in error.
ALTER TABLE sync_run_scopes ADD COLUMN error_code TEXT;
ALTER TABLE sync_run_scopes ADD COLUMN http_status INTEGER;
ALTER TABLE sync_run_scopes ADD COLUMN request_id TEXT;

-- Present registries, with names, readable times, whether the connection fails and since when.
CREATE VIEW registries_current AS
WITH seen AS (
    -- When each scope last completed its walk: its registries were seen then.
    SELECT region, project_id, enterprise_project_id, max(finished_at) AS finished_at
    FROM sync_run_scopes
    WHERE status IN ('succeeded', 'held') AND finished_at IS NOT NULL
    GROUP BY region, project_id, enterprise_project_id
),
live AS (
    SELECT
        r.*,
        CASE WHEN r.status = 'fail' THEN (
            SELECT min(h.valid_from)
            FROM registry_history h
            WHERE h.registry_id = r.id
              AND h.version > coalesce((
                  SELECT max(b.version)
                  FROM registry_history b
                  WHERE b.registry_id = r.id
                    AND (b.status IS NULL OR b.status <> 'fail' OR b.change_kind = 'deleted')
              ), 0)
        ) END AS failing_since_ts,
        greatest(r.last_seen_at, seen_ep.finished_at, seen_all.finished_at) AS seen_at_ts
    FROM registries r
    LEFT JOIN seen seen_ep
        ON seen_ep.region = r.region
       AND seen_ep.project_id = r.project_id
       AND seen_ep.enterprise_project_id = r.enterprise_project_id
    LEFT JOIN seen seen_all
        ON seen_all.region = r.region
       AND seen_all.project_id = r.project_id
       AND seen_all.enterprise_project_id = 'all_granted_eps'
    WHERE r.deleted_at IS NULL
)
SELECT
    c.id,
    c.registry_name,
    c.registry_type,
    c.status,
    coalesce(c.status = 'fail', false) AS failing,
    c.fail_reason,
    c.failing_since_ts AS failing_since,
    (extract(epoch FROM c.failing_since_ts) * 1000)::bigint AS failing_since_ms,
    c.region,
    c.project_id,
    p.name AS project_name,
    c.enterprise_project_id,
    e.name AS enterprise_project_name,
    c.api_version,
    c.protocol,
    c.registry_addr,
    c.registry_username,
    c.namespace,
    c.connect_cluster_id,
    c.get_scan_image_channel,
    c.images_num,
    c.latest_sync_time,
    CASE WHEN c.latest_sync_time > 0
        THEN timestamptz 'epoch' + c.latest_sync_time * interval '1 millisecond' END AS latest_sync_at,
    c.version,
    c.first_seen_at,
    (extract(epoch FROM c.first_seen_at) * 1000)::bigint AS first_seen_at_ms,
    c.last_changed_at,
    (extract(epoch FROM c.last_changed_at) * 1000)::bigint AS last_changed_at_ms,
    c.seen_at_ts AS last_seen_at,
    (extract(epoch FROM c.seen_at_ts) * 1000)::bigint AS last_seen_at_ms,
    c.raw
FROM live c
LEFT JOIN projects p ON p.id = c.project_id
LEFT JOIN enterprise_projects e ON e.id = c.enterprise_project_id;

-- One row per change (per history version), with the version's content and, for updates and
-- restores, the old and new value of each changed field.
CREATE VIEW registry_changes AS
SELECT
    h.sync_run_id,
    h.registry_id,
    h.version,
    h.change_kind,
    h.changed_fields,
    CASE WHEN prev.registry_id IS NOT NULL AND jsonb_array_length(h.changed_fields) > 0 THEN (
        SELECT jsonb_object_agg(f.name, CASE f.name
            WHEN 'project_id' THEN to_jsonb(prev.project_id)
            WHEN 'enterprise_project_id' THEN to_jsonb(prev.enterprise_project_id)
            WHEN 'region' THEN to_jsonb(prev.region)
            ELSE prev.raw -> f.name
        END)
        FROM jsonb_array_elements_text(h.changed_fields) AS f (name)
    ) END AS old_values,
    CASE WHEN prev.registry_id IS NOT NULL AND jsonb_array_length(h.changed_fields) > 0 THEN (
        SELECT jsonb_object_agg(f.name, CASE f.name
            WHEN 'project_id' THEN to_jsonb(h.project_id)
            WHEN 'enterprise_project_id' THEN to_jsonb(h.enterprise_project_id)
            WHEN 'region' THEN to_jsonb(h.region)
            ELSE h.raw -> f.name
        END)
        FROM jsonb_array_elements_text(h.changed_fields) AS f (name)
    ) END AS new_values,
    h.valid_from,
    (extract(epoch FROM h.valid_from) * 1000)::bigint AS valid_from_ms,
    h.valid_to,
    (extract(epoch FROM h.valid_to) * 1000)::bigint AS valid_to_ms,
    h.region,
    h.project_id,
    p.name AS project_name,
    h.enterprise_project_id,
    e.name AS enterprise_project_name,
    h.registry_name,
    h.registry_type,
    h.status,
    coalesce(h.status = 'fail', false) AS failing,
    h.fail_reason,
    h.api_version,
    h.protocol,
    h.registry_addr,
    h.registry_username,
    h.namespace,
    h.connect_cluster_id,
    h.get_scan_image_channel,
    h.images_num,
    h.latest_sync_time,
    CASE WHEN h.latest_sync_time > 0
        THEN timestamptz 'epoch' + h.latest_sync_time * interval '1 millisecond' END AS latest_sync_at,
    h.raw
FROM registry_history h
LEFT JOIN registry_history prev
    ON prev.registry_id = h.registry_id AND prev.version = h.version - 1
LEFT JOIN projects p ON p.id = h.project_id
LEFT JOIN enterprise_projects e ON e.id = h.enterprise_project_id;

-- Present registries counted by region, project, enterprise project, type and status.
CREATE VIEW registry_inventory_summary AS
SELECT
    r.region,
    r.project_id,
    p.name AS project_name,
    r.enterprise_project_id,
    e.name AS enterprise_project_name,
    r.registry_type,
    r.status,
    count(*) AS n_registries,
    count(*) FILTER (WHERE r.status = 'fail') AS n_failing,
    coalesce(sum(r.images_num), 0)::bigint AS n_images
FROM registries r
LEFT JOIN projects p ON p.id = r.project_id
LEFT JOIN enterprise_projects e ON e.id = r.enterprise_project_id
WHERE r.deleted_at IS NULL
GROUP BY r.region, r.project_id, p.name, r.enterprise_project_id, e.name, r.registry_type, r.status;

-- One row per run: how it ended, how long it took, what it asked and changed, and its error
-- (with the code, HTTP status and request id of its first failed scope).
CREATE VIEW sync_health AS
WITH first_failure AS (
    SELECT
        s.sync_run_id,
        (SELECT f.id FROM sync_run_scopes f
         WHERE f.sync_run_id = s.sync_run_id AND f.status = 'failed'
         ORDER BY CASE WHEN f.error_code IS NULL THEN 1 ELSE 0 END, f.id
         LIMIT 1) AS scope_id,
        count(*) FILTER (WHERE s.status = 'held') AS n_scopes_held
    FROM sync_run_scopes s
    GROUP BY s.sync_run_id
)
SELECT
    r.id AS run_id,
    r.status,
    r.trigger,
    r.started_at,
    (extract(epoch FROM r.started_at) * 1000)::bigint AS started_at_ms,
    r.finished_at,
    (extract(epoch FROM r.finished_at) * 1000)::bigint AS finished_at_ms,
    round(extract(epoch FROM (r.finished_at - r.started_at)), 3)::double precision AS duration_seconds,
    r.scheduled_at,
    r.n_scopes,
    r.n_scopes_failed,
    coalesce(ff.n_scopes_held, 0) AS n_scopes_held,
    r.n_pages,
    r.n_requests,
    r.n_throttled,
    r.n_retries,
    r.n_fetched,
    r.n_inserted,
    r.n_updated,
    r.n_unchanged,
    r.n_deleted,
    r.n_restored,
    r.n_held,
    r.n_inserted + r.n_updated + r.n_deleted + r.n_restored AS n_rows_changed,
    r.error,
    fs.error_code,
    fs.http_status,
    fs.request_id,
    r.hostname,
    r.version AS hss_sync_version
FROM sync_runs r
LEFT JOIN first_failure ff ON ff.sync_run_id = r.id
LEFT JOIN sync_run_scopes fs ON fs.id = ff.scope_id;

-- The estate at a point in time: every registry present then, with its content at that
-- version (the rows of registry_changes whose version was current at point_in_time).
-- SECURITY DEFINER, so a reader granted EXECUTE needs no access to the tables; the search
-- path is pinned to the one the migration ran with.
CREATE FUNCTION registries_as_of(point_in_time timestamptz)
RETURNS TABLE (
    id                      text,
    registry_name           text,
    registry_type           text,
    status                  text,
    failing                 boolean,
    fail_reason             text,
    region                  text,
    project_id              text,
    project_name            text,
    enterprise_project_id   text,
    enterprise_project_name text,
    api_version             text,
    protocol                text,
    registry_addr           text,
    registry_username       text,
    namespace               text,
    connect_cluster_id      text,
    get_scan_image_channel  text,
    images_num              bigint,
    latest_sync_time        bigint,
    latest_sync_at          timestamptz,
    version                 bigint,
    valid_from              timestamptz,
    valid_from_ms           bigint,
    valid_to                timestamptz,
    valid_to_ms             bigint,
    sync_run_id             bigint,
    raw                     jsonb
)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
    SELECT c.registry_id, c.registry_name, c.registry_type, c.status, c.failing, c.fail_reason,
           c.region, c.project_id, c.project_name, c.enterprise_project_id,
           c.enterprise_project_name, c.api_version, c.protocol, c.registry_addr,
           c.registry_username, c.namespace, c.connect_cluster_id, c.get_scan_image_channel,
           c.images_num, c.latest_sync_time, c.latest_sync_at, c.version, c.valid_from,
           c.valid_from_ms, c.valid_to, c.valid_to_ms, c.sync_run_id, c.raw
    FROM registry_changes c
    WHERE c.valid_from <= point_in_time
      AND (c.valid_to IS NULL OR c.valid_to > point_in_time)
      AND c.change_kind <> 'deleted'
    ORDER BY c.registry_id
$$;
REVOKE ALL ON FUNCTION registries_as_of(timestamptz) FROM PUBLIC;
