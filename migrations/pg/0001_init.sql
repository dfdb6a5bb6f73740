-- 0001_init (PostgreSQL): subjects, their samples, the change feed and the
-- serving model.
--
-- Applied by the store's migration runner (src/store/store_pg_migrate.c) in
-- one transaction under an advisory lock, which also records it in
-- schema_migrations. Never edit a migration that has shipped: add the next
-- numbered file instead. The SQLite schema (migrations/*.sql) holds the same
-- subjects and samples; the tables below the samples exist only here.

-- A person or thing that samples are enrolled for. metadata is a JSON object
-- as text (validated by the daemon), NULL when none was given. Ids compare
-- byte by byte (COLLATE "C"), as on SQLite: list pages and cursors rely on it.
CREATE TABLE subjects (
    id         text COLLATE "C" PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
    metadata   text,
    created_at bigint NOT NULL              -- Unix milliseconds
);

-- One enrolled image: the embedding the model with this fingerprint made of
-- it (dim little-endian float32) and, when images are kept, the image itself.
-- Ids come from a sequence and are never handed out again.
CREATE TABLE samples (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_id   text COLLATE "C" NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    embedding    bytea NOT NULL,
    fingerprint  text NOT NULL CHECK (length(fingerprint) = 64),
    image        bytea,
    content_type text,
    created_at   bigint NOT NULL,           -- Unix milliseconds
    source       text CHECK (source IS NULL OR length(source) BETWEEN 1 AND 4096),
    CHECK ((image IS NULL) = (content_type IS NULL))
);

-- A subject's samples in id order (get, count, cascade delete).
CREATE INDEX samples_subject ON samples(subject_id, id);
-- Bulk enrolling skips files already stored.
CREATE UNIQUE INDEX samples_source ON samples(source) WHERE source IS NOT NULL;

-- The change feed: every enroll, delete and re-embed, in commit order (each
-- write transaction holds one advisory lock, so ids commit in order), with
-- what it does to the subject and sample counts. Each daemon applies the rows
-- after the last one it applied to its in-memory index; NOTIFY
-- siamesed_changes says when there are new ones.
--   subject        a new subject (sample_id NULL)
--   add            a new sample
--   remove_sample  a deleted sample
--   remove_subject a deleted subject and all its samples (sample_id NULL)
--   reembed        a sample with a new embedding
CREATE TABLE changes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text NOT NULL
               CHECK (kind IN ('subject', 'add', 'remove_sample', 'remove_subject', 'reembed')),
    subject_id text NOT NULL CHECK (length(subject_id) BETWEEN 1 AND 128),
    sample_id  bigint CHECK (sample_id IS NULL OR sample_id > 0),
    d_subjects integer NOT NULL,
    d_samples  bigint NOT NULL
);

-- The model whose embeddings the daemons serve: one row, set by the first
-- daemon and by a finished re-embed. A daemon with another model is refused
-- while samples of this one remain.
CREATE TABLE serving_model (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    fingerprint text NOT NULL CHECK (length(fingerprint) = 64),
    dim         integer NOT NULL CHECK (dim > 0),
    since       bigint NOT NULL              -- Unix milliseconds
);
