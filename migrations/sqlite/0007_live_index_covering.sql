-- registries_live_idx answers what a walk reads of the registries it may find unchanged, and
-- what deciding deletions counts and retires, from the index alone. SQLite counts a column
-- named only in a partial index's WHERE as one it must read from the table, so without
-- deleted_at among its columns every such query read each live row of the scope, content and
-- all (at 50,000 registries, about 1 GB of reads in a 10%-changed sync). The column is NULL in
-- every entry; it costs a byte each.
DROP INDEX registries_live_idx;
CREATE INDEX registries_live_idx ON registries (project_id, enterprise_project_id, region, id, content_hash, deleted_at)
    WHERE deleted_at IS NULL;
