-- The sync's foreign keys to sync_runs are checked when a transaction commits, not after each
-- statement. A foreign key checked at once can stop a statement part-way, so SQLite copied every
-- page that a statement writing many registries or history rows changed into a statement
-- journal (a temporary file) first, to undo it: half the writes of a first sync. A violation
-- still fails the commit, and nothing of the transaction is kept.
--
-- SQLite cannot alter a constraint, so both tables are rebuilt as the documented procedure does
-- (https://www.sqlite.org/lang_altertable.html#otheralter). legacy_alter_table keeps the final
-- rename from checking the views over these tables while the old table is gone; they refer to
-- the tables by name and read the rebuilt ones.
PRAGMA legacy_alter_table = ON;

CREATE TABLE registries_rebuilt (
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
    last_sync_run_id       INTEGER NOT NULL REFERENCES sync_runs (id) DEFERRABLE INITIALLY DEFERRED
);
INSERT INTO registries_rebuilt SELECT * FROM registries;
DROP TABLE registries;
ALTER TABLE registries_rebuilt RENAME TO registries;
CREATE INDEX registries_scope_idx ON registries (project_id, enterprise_project_id);
CREATE INDEX registries_type_idx ON registries (registry_type);
CREATE INDEX registries_status_idx ON registries (status);
CREATE INDEX registries_deleted_at_idx ON registries (deleted_at);
CREATE INDEX registries_live_idx ON registries (project_id, enterprise_project_id, region, id, content_hash)
    WHERE deleted_at IS NULL;

CREATE TABLE registry_history_rebuilt (
    registry_id            TEXT    NOT NULL,
    version                INTEGER NOT NULL,
    change_kind            TEXT    NOT NULL CHECK (change_kind IN ('created', 'updated', 'deleted', 'restored')),
    changed_fields         TEXT    NOT NULL,
    valid_from             TEXT    NOT NULL,
    valid_to               TEXT,
    sync_run_id            INTEGER NOT NULL REFERENCES sync_runs (id) DEFERRABLE INITIALLY DEFERRED,
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
INSERT INTO registry_history_rebuilt SELECT * FROM registry_history;
DROP TABLE registry_history;
ALTER TABLE registry_history_rebuilt RENAME TO registry_history;
CREATE INDEX registry_history_run_idx ON registry_history (sync_run_id);
CREATE INDEX registry_history_current_idx ON registry_history (registry_id) WHERE valid_to IS NULL;

PRAGMA legacy_alter_table = OFF;
