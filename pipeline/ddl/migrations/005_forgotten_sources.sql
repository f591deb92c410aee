-- `scalegap forget SOURCE[@VERSION]`: source versions left out of future runs (nothing is deleted).
CREATE TABLE IF NOT EXISTS forgotten (
    source VARCHAR,
    source_version VARCHAR,
    forgotten_at TIMESTAMP,
    PRIMARY KEY (source, source_version)
);
