-- What a walk listed as the store holds it, one row a page: the page's ids as one JSON array.
-- An unchanged resync stages nothing else, and no step of it looks its listing up by id, so
-- it wrote a row and two index entries for each registry only to delete them at the end. A
-- run that comes to deciding moves or deletions spreads these ids into sync_staging, one row
-- each, before it indexes its listing (see Store::index_listing); from then on, its
-- confirming walks stage their ids one row each, as before. A few hundred rows at
-- 50,000 registries: no index. Cleared with sync_staging.
CREATE TABLE sync_listed_pages (
    run_id   INTEGER NOT NULL,
    scope_ix INTEGER NOT NULL,
    ids      TEXT    NOT NULL
);
