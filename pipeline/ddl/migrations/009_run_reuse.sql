-- A run on unchanged data, configuration and code reuses an earlier run's stage results: the run records the
-- digest of those inputs, and each reused stage the run that computed its rows.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS inputs_digest VARCHAR;
ALTER TABLE run_stages ADD COLUMN IF NOT EXISTS reused_from VARCHAR;
