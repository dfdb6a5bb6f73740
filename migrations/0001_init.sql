-- 0001_init: subjects and their samples.
--
-- Applied by the store's migration runner inside one transaction, which also
-- records it in schema_migrations and PRAGMA user_version. Never edit a
-- migration that has shipped: add the next numbered file instead.

-- A person or thing that samples are enrolled for. metadata is a JSON object
-- as text (validated by the daemon), NULL when none was given.
CREATE TABLE subjects (
    id         TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 128),
    metadata   TEXT,
    created_at INTEGER NOT NULL              -- Unix milliseconds
) WITHOUT ROWID;

-- One enrolled image: the embedding the model with this fingerprint made of it
-- (dim little-endian float32) and, when images are kept, the image itself.
-- AUTOINCREMENT so that a deleted sample's id is never handed out again.
CREATE TABLE samples (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_id   TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    embedding    BLOB NOT NULL,
    fingerprint  TEXT NOT NULL CHECK (length(fingerprint) = 64),
    image        BLOB,
    content_type TEXT,
    created_at   INTEGER NOT NULL,           -- Unix milliseconds
    CHECK ((image IS NULL) = (content_type IS NULL))
);

-- A subject's samples in id order (get, count, cascade delete).
CREATE INDEX samples_subject ON samples(subject_id, id);
