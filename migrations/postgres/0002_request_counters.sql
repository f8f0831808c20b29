-- Throttled requests and retries, per run and per scope.
ALTER TABLE sync_runs ADD COLUMN n_throttled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sync_runs ADD COLUMN n_retries BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sync_run_scopes ADD COLUMN n_throttled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sync_run_scopes ADD COLUMN n_retries BIGINT NOT NULL DEFAULT 0;
