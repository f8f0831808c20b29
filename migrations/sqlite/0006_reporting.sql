-- The reporting layer (issue 11): project and enterprise project names, structured scope
-- errors, and four views that are the public contract for SQL users and BI tools
-- (docs/reporting.md documents them column by column; the tables may change, the views keep
-- their columns). The PostgreSQL migration of the same name builds the same views.
--
-- Time columns of the views are ISO-8601 UTC text with milliseconds ('2026-11-28T05:03:02.123Z'),
-- normalised with strftime so that they compare correctly with a literal normalised the same
-- way, and each has an *_ms twin in epoch milliseconds (an integer that compares correctly
-- whatever the text looks like).
-- The views use only functions of SQLite 3.25 and later (json_each, json_group_object,
-- julianday, strftime), so older sqlite3 shells can read the file too.

-- Projects as IAM lists them (and ids given on the command line, with a NULL name), refreshed
-- at the start of every run.
CREATE TABLE projects (
    id            TEXT PRIMARY KEY,
    name          TEXT,
    region        TEXT NOT NULL,
    parent_id     TEXT,
    status        TEXT CHECK (status IN ('enabled', 'disabled')),
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL
);

-- Enterprise projects as EPS lists them (and ids a run used without a listing, with a NULL
-- name), refreshed at the start of every run.
CREATE TABLE enterprise_projects (
    id            TEXT PRIMARY KEY,
    name          TEXT,
    status        TEXT CHECK (status IN ('enabled', 'disabled')),
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL
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
        ) END AS failing_since_text,
        max(
            r.last_seen_at,
            coalesce(seen_ep.finished_at, r.last_seen_at),
            coalesce(seen_all.finished_at, r.last_seen_at)
        ) AS seen_at_text
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
    CASE WHEN c.status = 'fail' THEN 1 ELSE 0 END AS failing,
    c.fail_reason,
    strftime('%Y-%m-%dT%H:%M:%fZ', c.failing_since_text) AS failing_since,
    CAST(round((julianday(c.failing_since_text) - 2440587.5) * 86400000.0) AS INTEGER) AS failing_since_ms,
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
        THEN strftime('%Y-%m-%dT%H:%M:%fZ', c.latest_sync_time / 1000.0, 'unixepoch') END AS latest_sync_at,
    c.version,
    strftime('%Y-%m-%dT%H:%M:%fZ', c.first_seen_at) AS first_seen_at,
    CAST(round((julianday(c.first_seen_at) - 2440587.5) * 86400000.0) AS INTEGER) AS first_seen_at_ms,
    strftime('%Y-%m-%dT%H:%M:%fZ', c.last_changed_at) AS last_changed_at,
    CAST(round((julianday(c.last_changed_at) - 2440587.5) * 86400000.0) AS INTEGER) AS last_changed_at_ms,
    strftime('%Y-%m-%dT%H:%M:%fZ', c.seen_at_text) AS last_seen_at,
    CAST(round((julianday(c.seen_at_text) - 2440587.5) * 86400000.0) AS INTEGER) AS last_seen_at_ms,
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
    CASE WHEN prev.registry_id IS NOT NULL AND json_array_length(h.changed_fields) > 0 THEN (
        SELECT json_group_object(f.value, CASE f.value
            WHEN 'project_id' THEN prev.project_id
            WHEN 'enterprise_project_id' THEN prev.enterprise_project_id
            WHEN 'region' THEN prev.region
            ELSE CASE o.type
                WHEN 'true' THEN json('true')
                WHEN 'false' THEN json('false')
                WHEN 'object' THEN json(o.value)
                WHEN 'array' THEN json(o.value)
                ELSE o.value
            END
        END)
        FROM json_each(h.changed_fields) f
        LEFT JOIN json_each(prev.raw) o ON o.key = f.value
    ) END AS old_values,
    CASE WHEN prev.registry_id IS NOT NULL AND json_array_length(h.changed_fields) > 0 THEN (
        SELECT json_group_object(f.value, CASE f.value
            WHEN 'project_id' THEN h.project_id
            WHEN 'enterprise_project_id' THEN h.enterprise_project_id
            WHEN 'region' THEN h.region
            ELSE CASE n.type
                WHEN 'true' THEN json('true')
                WHEN 'false' THEN json('false')
                WHEN 'object' THEN json(n.value)
                WHEN 'array' THEN json(n.value)
                ELSE n.value
            END
        END)
        FROM json_each(h.changed_fields) f
        LEFT JOIN json_each(h.raw) n ON n.key = f.value
    ) END AS new_values,
    strftime('%Y-%m-%dT%H:%M:%fZ', h.valid_from) AS valid_from,
    CAST(round((julianday(h.valid_from) - 2440587.5) * 86400000.0) AS INTEGER) AS valid_from_ms,
    strftime('%Y-%m-%dT%H:%M:%fZ', h.valid_to) AS valid_to,
    CAST(round((julianday(h.valid_to) - 2440587.5) * 86400000.0) AS INTEGER) AS valid_to_ms,
    h.region,
    h.project_id,
    p.name AS project_name,
    h.enterprise_project_id,
    e.name AS enterprise_project_name,
    h.registry_name,
    h.registry_type,
    h.status,
    CASE WHEN h.status = 'fail' THEN 1 ELSE 0 END AS failing,
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
        THEN strftime('%Y-%m-%dT%H:%M:%fZ', h.latest_sync_time / 1000.0, 'unixepoch') END AS latest_sync_at,
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
    sum(CASE WHEN r.status = 'fail' THEN 1 ELSE 0 END) AS n_failing,
    coalesce(sum(r.images_num), 0) AS n_images
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
        sum(CASE WHEN s.status = 'held' THEN 1 ELSE 0 END) AS n_scopes_held
    FROM sync_run_scopes s
    GROUP BY s.sync_run_id
)
SELECT
    r.id AS run_id,
    r.status,
    r.trigger,
    strftime('%Y-%m-%dT%H:%M:%fZ', r.started_at) AS started_at,
    CAST(round((julianday(r.started_at) - 2440587.5) * 86400000.0) AS INTEGER) AS started_at_ms,
    strftime('%Y-%m-%dT%H:%M:%fZ', r.finished_at) AS finished_at,
    CAST(round((julianday(r.finished_at) - 2440587.5) * 86400000.0) AS INTEGER) AS finished_at_ms,
    round((julianday(r.finished_at) - julianday(r.started_at)) * 86400.0, 3) AS duration_seconds,
    strftime('%Y-%m-%dT%H:%M:%fZ', r.scheduled_at) AS scheduled_at,
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
