-- Deletions held by the mass-deletion guard: a scope whose complete walk would retire too
-- much of it is recorded 'held', with how many registries it would have retired.
ALTER TABLE sync_run_scopes DROP CONSTRAINT sync_run_scopes_status_check;
ALTER TABLE sync_run_scopes ADD CONSTRAINT sync_run_scopes_status_check
    CHECK (status IN ('running', 'succeeded', 'held', 'failed', 'interrupted'));
ALTER TABLE sync_run_scopes ADD COLUMN n_held BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sync_runs ADD COLUMN n_held BIGINT NOT NULL DEFAULT 0;
