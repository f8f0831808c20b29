-- Pages stream into sync_staging as they arrive, so a run never holds the estate in memory.
-- One row per registry a walk listed, appended in arrival order: the run's listing, from
-- which deletion is decided once every walk has ended. A registry that may differ from the
-- stored row (new, changed, retired, or stored under another scope) carries its content,
-- which the scope's transaction copies into registries and registry_history; a registry
-- seen as stored carries only its id. Rows are only appended while walks run (no index on
-- the id, which would take random writes); the run builds sync_staging_id_idx once its walks
-- have ended, and drops it with the run's rows when it ends.
-- UNLOGGED: scratch space, not worth WAL; a server crash empties it, which costs only the
-- run it interrupted.
CREATE UNLOGGED TABLE sync_staging (
    seq                    BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id                 BIGINT  NOT NULL,
    scope_ix               BIGINT  NOT NULL,
    id                     TEXT    NOT NULL,
    deferred               BIGINT  NOT NULL DEFAULT 0,
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
    images_num             BIGINT,
    latest_sync_time       BIGINT,
    raw                    JSONB,
    content_hash           TEXT
);
CREATE INDEX sync_staging_scope_idx ON sync_staging (run_id, scope_ix, seq);

-- What a walk reads of the registries it may find unchanged, and what deciding deletions
-- counts: live rows by scope, answered from this index alone, without reading the rows'
-- content.
CREATE INDEX registries_live_idx ON registries (project_id, enterprise_project_id, region, id, content_hash)
    WHERE deleted_at IS NULL;
