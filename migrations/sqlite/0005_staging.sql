-- Pages stream into sync_staging as they arrive, so a run never holds the estate in memory.
-- One row per (run, scope, registry id) a walk listed: the run's set of seen ids, from which
-- deletion is decided at the end of a complete run. A registry that differs from the stored
-- row (or is new, retired, or stored under another scope) carries its content, which the
-- scope's transaction copies into registries and registry_history; a registry seen again
-- unchanged carries only its id. Rows of a run are removed when the run ends, and rows of
-- runs that are no longer running when the next run starts.
CREATE TABLE sync_staging (
    run_id                 INTEGER NOT NULL,
    scope_ix               INTEGER NOT NULL,
    id                     TEXT    NOT NULL,
    applied                INTEGER NOT NULL DEFAULT 1,
    deferred               INTEGER NOT NULL DEFAULT 0,
    project_id             TEXT,
    enterprise_project_id  TEXT,
    region                 TEXT,
    registry_name          TEXT,
    registry_type          TEXT,
    api_version            TEXT,
    protocol               TEXT,
    registry_addr          TEXT,
    registry_username      TEXT,
    namespace              TEXT,
    connect_cluster_id     TEXT,
    get_scan_image_channel TEXT,
    status                 TEXT,
    fail_reason            TEXT,
    images_num             INTEGER,
    latest_sync_time       INTEGER,
    raw                    TEXT,
    content_hash           TEXT,
    PRIMARY KEY (run_id, scope_ix, id)
);
CREATE INDEX sync_staging_seen_idx ON sync_staging (run_id, id);

-- What a walk reads of the registries it may find unchanged, and what deciding deletions
-- counts: live rows by scope, answered from this index alone, without reading the rows'
-- content.
CREATE INDEX registries_live_idx ON registries (project_id, enterprise_project_id, region, id, content_hash)
    WHERE deleted_at IS NULL;
