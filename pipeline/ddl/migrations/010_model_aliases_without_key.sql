-- model_aliases loses its primary key. The registry rebuild writes it whole, one row per (source, alias) by
-- construction, and a source may name millions of models: DuckDB holds a primary key's index in memory until
-- the ingest commits. The rows are derived data, copied over unchanged.
CREATE TABLE model_aliases_keyless (
    source VARCHAR,
    alias VARCHAR,
    model VARCHAR,
    status VARCHAR,
    method VARCHAR,
    "key" VARCHAR,
    release_key VARCHAR,
    release_date TIMESTAMP,
    candidates JSON,
    n_observations INTEGER,
    filled JSON,
    note VARCHAR
);
INSERT INTO model_aliases_keyless SELECT source, alias, model, status, method, "key", release_key, release_date,
    candidates, n_observations, filled, note FROM model_aliases;
DROP TABLE model_aliases;
ALTER TABLE model_aliases_keyless RENAME TO model_aliases;
