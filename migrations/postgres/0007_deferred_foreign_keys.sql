-- The sync's foreign keys to sync_runs are checked when a transaction commits, not after each
-- statement, as on SQLite, where checking them at once made every statement that writes many
-- registries or history rows copy the pages it changed into a statement journal first (see
-- migrations/sqlite/0007_deferred_foreign_keys.sql). PostgreSQL writes no such journal; the
-- constraints change here so that both databases keep the same rule: a violation fails the
-- commit, and nothing of the transaction is kept.
ALTER TABLE registries
    ALTER CONSTRAINT registries_last_sync_run_id_fkey DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE registry_history
    ALTER CONSTRAINT registry_history_sync_run_id_fkey DEFERRABLE INITIALLY DEFERRED;
