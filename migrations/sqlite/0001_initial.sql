-- hss-sync schema, SQLite flavour.
-- Timestamps are ISO-8601 UTC text ('2026-11-28T05:03:02.123Z') so they sort and read naturally.
-- JSON columns hold JSON text; query them with SQLite's json_* functions.

CREATE TABLE sync_runs (
    id              INTEGER PRIMARY KEY,
    started_at      TEXT    NOT NULL,
    finished_at     TEXT,
    status          TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'interrupted')),
    trigger         TEXT    NOT NULL,
    n_scopes        INTEGER NOT NULL DEFAULT 0,
    n_scopes_failed INTEGER NOT NULL DEFAULT 0,
    n_pages         INTEGER NOT NULL DEFAULT 0,
    n_requests      INTEGER NOT NULL DEFAULT 0,
    n_fetched       INTEGER NOT NULL DEFAULT 0,
    n_inserted      INTEGER NOT NULL DEFAULT 0,
    n_updated       INTEGER NOT NULL DEFAULT 0,
    n_unchanged     INTEGER NOT NULL DEFAULT 0,
    n_deleted       INTEGER NOT NULL DEFAULT 0,
    n_restored      INTEGER NOT NULL DEFAULT 0,
    error           TEXT,
    hostname        TEXT,
    version         TEXT
);
CREATE INDEX sync_runs_started_at_idx ON sync_runs (started_at);
CREATE INDEX sync_runs_status_idx ON sync_runs (status);

CREATE TABLE sync_run_scopes (
    id                    INTEGER PRIMARY KEY,
    sync_run_id           INTEGER NOT NULL REFERENCES sync_runs (id),
    region                TEXT    NOT NULL,
    project_id            TEXT    NOT NULL,
    enterprise_project_id TEXT    NOT NULL,
    status                TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    n_pages               INTEGER NOT NULL DEFAULT 0,
    n_requests            INTEGER NOT NULL DEFAULT 0,
    api_total             INTEGER,
    n_fetched             INTEGER NOT NULL DEFAULT 0,
    n_inserted            INTEGER NOT NULL DEFAULT 0,
    n_updated             INTEGER NOT NULL DEFAULT 0,
    n_unchanged           INTEGER NOT NULL DEFAULT 0,
    n_deleted             INTEGER NOT NULL DEFAULT 0,
    n_restored            INTEGER NOT NULL DEFAULT 0,
    error                 TEXT,
    started_at            TEXT    NOT NULL,
    finished_at           TEXT
);
CREATE INDEX sync_run_scopes_run_idx ON sync_run_scopes (sync_run_id);
CREATE INDEX sync_run_scopes_scope_idx ON sync_run_scopes (project_id, enterprise_project_id);

CREATE TABLE registries (
    id                     TEXT    PRIMARY KEY,
    project_id             TEXT    NOT NULL,
    enterprise_project_id  TEXT,
    region                 TEXT    NOT NULL,
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
    raw                    TEXT    NOT NULL,
    content_hash           TEXT    NOT NULL,
    version                INTEGER NOT NULL,
    first_seen_at          TEXT    NOT NULL,
    last_seen_at           TEXT    NOT NULL,
    last_changed_at        TEXT    NOT NULL,
    deleted_at             TEXT,
    last_sync_run_id       INTEGER NOT NULL REFERENCES sync_runs (id)
);
CREATE INDEX registries_scope_idx ON registries (project_id, enterprise_project_id);
CREATE INDEX registries_type_idx ON registries (registry_type);
CREATE INDEX registries_status_idx ON registries (status);
CREATE INDEX registries_deleted_at_idx ON registries (deleted_at);

CREATE TABLE registry_history (
    registry_id            TEXT    NOT NULL,
    version                INTEGER NOT NULL,
    change_kind            TEXT    NOT NULL CHECK (change_kind IN ('created', 'updated', 'deleted', 'restored')),
    changed_fields         TEXT    NOT NULL,
    valid_from             TEXT    NOT NULL,
    valid_to               TEXT,
    sync_run_id            INTEGER NOT NULL REFERENCES sync_runs (id),
    project_id             TEXT    NOT NULL,
    enterprise_project_id  TEXT,
    region                 TEXT    NOT NULL,
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
    raw                    TEXT    NOT NULL,
    content_hash           TEXT    NOT NULL,
    PRIMARY KEY (registry_id, version)
);
CREATE INDEX registry_history_run_idx ON registry_history (sync_run_id);
CREATE INDEX registry_history_current_idx ON registry_history (registry_id) WHERE valid_to IS NULL;
