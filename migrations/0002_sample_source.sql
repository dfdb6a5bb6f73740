-- 0002_sample_source: where a sample came from.
--
-- `siamesed --enroll --data DIR` records each file it enrolls (its absolute
-- path, plus "#<index>" for an image inside an IDX file) so that a run that
-- was interrupted resumes by skipping what is already stored. NULL for
-- samples enrolled over HTTP. Unique: one file is one sample.
ALTER TABLE samples ADD COLUMN source TEXT
    CHECK (source IS NULL OR length(source) BETWEEN 1 AND 4096);

CREATE UNIQUE INDEX samples_source ON samples(source) WHERE source IS NOT NULL;
