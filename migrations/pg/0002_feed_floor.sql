-- 0002_feed_floor (PostgreSQL): the change feed is pruned.
--
-- The writers delete change rows far behind the newest (store_pg_ops.c) and
-- record here the highest id deleted: a daemon whose last applied change is
-- below it has missed changes that are gone, and reloads its index from the
-- tables instead of catching up.
CREATE TABLE feed_floor (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    id  bigint NOT NULL CHECK (id >= 0)
);
INSERT INTO feed_floor (id) VALUES (0);
