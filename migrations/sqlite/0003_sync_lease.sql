-- One sync at a time across processes and replicas: a lease row. A process takes it for a
-- run (and, in the daemon, for one schedule tick), renews it while the run lasts, and gives
-- it back at the end; a process that dies stops renewing, and the lease lapses at expires_at.
CREATE TABLE sync_lease (
    name         TEXT PRIMARY KEY,
    holder       TEXT,
    acquired_at  TEXT,
    expires_at   TEXT,
    last_tick_at TEXT
);
INSERT INTO sync_lease (name) VALUES ('sync');

-- Which process ran a run, so that one left running by a dead process can be told apart,
-- and which schedule tick it ran for (NULL outside the schedule).
ALTER TABLE sync_runs ADD COLUMN holder TEXT;
ALTER TABLE sync_runs ADD COLUMN scheduled_at TEXT;
