-- One model registry (models, model_facts, every source's spellings in model_aliases) and the observed gap
-- on history (gap_series, gap_summary). model_aliases changes form: it is derived data, rebuilt from the
-- stored sources at every ingest, so the old rows (normalised alias -> Epoch name) are dropped, not converted.
DROP TABLE IF EXISTS model_aliases;
CREATE TABLE model_aliases (
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
    note VARCHAR,
    PRIMARY KEY (source, alias)
);
ALTER TABLE horizons ADD COLUMN IF NOT EXISTS organization VARCHAR;
ALTER TABLE horizons ADD COLUMN IF NOT EXISTS registry_model VARCHAR;
ALTER TABLE horizons ADD COLUMN IF NOT EXISTS train_flop_note VARCHAR;
CREATE TABLE IF NOT EXISTS models (
    model VARCHAR PRIMARY KEY,
    organization VARCHAR,
    country VARCHAR,
    release_date TIMESTAMP,
    train_flop DOUBLE,
    train_flop_lo DOUBLE,
    train_flop_hi DOUBLE,
    confidence VARCHAR,
    bounds_basis VARCHAR,
    accessibility VARCHAR,
    accessibility_detail VARCHAR,
    params DOUBLE,
    n_aliases INTEGER,
    field_sources JSON,
    sources JSON
);
CREATE TABLE IF NOT EXISTS model_facts (
    source VARCHAR,
    source_version VARCHAR,
    origin VARCHAR,
    row_ref VARCHAR,
    name VARCHAR,
    version_name VARCHAR,
    display_name VARCHAR,
    organization VARCHAR,
    country VARCHAR,
    release_date TIMESTAMP,
    train_flop DOUBLE,
    train_flop_lo DOUBLE,
    train_flop_hi DOUBLE,
    confidence VARCHAR,
    accessibility VARCHAR,
    params DOUBLE,
    citation VARCHAR,
    PRIMARY KEY (source, source_version, origin, row_ref)
);
CREATE TABLE IF NOT EXISTS gap_series (
    run_id VARCHAR,
    metric VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    comparison VARCHAR,
    "date" TIMESTAMP,
    frontier DOUBLE,
    frontier_model VARCHAR,
    laggard DOUBLE,
    laggard_model VARCHAR,
    gap DOUBLE,
    gap_lo DOUBLE,
    gap_hi DOUBLE,
    months_behind DOUBLE,
    months_lo DOUBLE,
    months_hi DOUBLE,
    PRIMARY KEY (run_id, metric, source, source_version, comparison, "date")
);
CREATE TABLE IF NOT EXISTS gap_summary (
    run_id VARCHAR,
    metric VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    comparison VARCHAR,
    kind VARCHAR,
    unit VARCHAR,
    gap_scale VARCHAR,
    bounded BOOLEAN,
    verdict VARCHAR,
    n_models INTEGER,
    n_leading INTEGER,
    n_laggard INTEGER,
    first_date TIMESTAMP,
    latest_date TIMESTAMP,
    latest_gap DOUBLE,
    latest_gap_lo DOUBLE,
    latest_gap_hi DOUBLE,
    latest_months DOUBLE,
    latest_months_lo DOUBLE,
    latest_months_hi DOUBLE,
    mean_months DOUBLE,
    mean_months_lo DOUBLE,
    mean_months_hi DOUBLE,
    peak_gap DOUBLE,
    peak_date TIMESTAMP,
    shape VARCHAR,
    shape_p DOUBLE,
    predicted VARCHAR,
    agrees VARCHAR,
    draws INTEGER,
    note VARCHAR,
    PRIMARY KEY (run_id, metric, source, source_version, comparison)
);
