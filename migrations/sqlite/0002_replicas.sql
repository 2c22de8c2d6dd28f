-- Live replicas: each one upserts its row every few seconds (database clock).
-- On SQLite this lets a replica notice another host using the same file.
CREATE TABLE astra_replicas (
    holder     TEXT    NOT NULL PRIMARY KEY,
    host       TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
);
