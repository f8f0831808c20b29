-- Deletions held by the mass-deletion guard: a scope whose complete walk would retire too
-- much of it is recorded 'held', with how many registries it would have retired.
-- SQLite cannot change a CHECK constraint in place, so sync_run_scopes is rebuilt.
CREATE TABLE sync_run_scopes_new (
    id                    INTEGER PRIMARY KEY,
    sync_run_id           INTEGER NOT NULL REFERENCES sync_runs (id),
    region                TEXT    NOT NULL,
    project_id            TEXT    NOT NULL,
    enterprise_project_id TEXT    NOT NULL,
    status                TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'held', 'failed', 'interrupted')),
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
    finished_at           TEXT,
    n_throttled           INTEGER NOT NULL DEFAULT 0,
    n_retries             INTEGER NOT NULL DEFAULT 0,
    n_held                INTEGER NOT NULL DEFAULT 0
);
INSERT INTO sync_run_scopes_new (id, sync_run_id, region, project_id, enterprise_project_id, status,
    n_pages, n_requests, api_total, n_fetched, n_inserted, n_updated, n_unchanged, n_deleted,
    n_restored, error, started_at, finished_at, n_throttled, n_retries)
SELECT id, sync_run_id, region, project_id, enterprise_project_id, status,
    n_pages, n_requests, api_total, n_fetched, n_inserted, n_updated, n_unchanged, n_deleted,
    n_restored, error, started_at, finished_at, n_throttled, n_retries
FROM sync_run_scopes;
DROP TABLE sync_run_scopes;
ALTER TABLE sync_run_scopes_new RENAME TO sync_run_scopes;
CREATE INDEX sync_run_scopes_run_idx ON sync_run_scopes (sync_run_id);
CREATE INDEX sync_run_scopes_scope_idx ON sync_run_scopes (project_id, enterprise_project_id);

ALTER TABLE sync_runs ADD COLUMN n_held INTEGER NOT NULL DEFAULT 0;
