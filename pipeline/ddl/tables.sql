-- scalegap's store: every table's current definition. Stores made by older versions reach this
-- through the numbered files in migrations/ (pipeline.store.ensure_schema applies them in order).

CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name VARCHAR,
    applied_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    command VARCHAR,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    status VARCHAR,              -- running | succeeded | failed | cancelled
    message VARCHAR,
    parameters JSON,
    code_version VARCHAR,
    data_digests JSON,
    host VARCHAR,
    pid INTEGER,
    inputs_digest VARCHAR        -- data, configuration and code after ingest (pipeline.stages.reuse)
);

CREATE TABLE IF NOT EXISTS run_stages (
    run_id VARCHAR,
    stage VARCHAR,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    status VARCHAR,
    rows_written BIGINT,
    message VARCHAR,
    reused_from VARCHAR,         -- the run that computed these rows, when copied from it
    PRIMARY KEY (run_id, stage)
);

CREATE TABLE IF NOT EXISTS sources (
    source VARCHAR,
    source_version VARCHAR,
    location VARCHAR,            -- file path or URL it was read from
    sha256 VARCHAR,
    retrieved_at TIMESTAMP,
    license VARCHAR,
    citation VARCHAR,
    kind VARCHAR,
    adapter VARCHAR,
    n_observations BIGINT,
    n_rejected BIGINT,
    notes VARCHAR,
    ingest_run_id VARCHAR,
    PRIMARY KEY (source, source_version)
);

CREATE TABLE IF NOT EXISTS observations (
    source VARCHAR,
    source_version VARCHAR,
    source_sha256 VARCHAR,
    model VARCHAR,
    organization VARCHAR,
    release_date TIMESTAMP,
    train_flop DOUBLE,
    train_flop_note VARCHAR,
    params DOUBLE,
    inference_budget DOUBLE,
    metric VARCHAR,
    kind VARCHAR,
    value DOUBLE,
    value_lo DOUBLE,
    value_hi DOUBLE,
    unit VARCHAR,
    original_unit VARCHAR,
    floor DOUBLE,
    ceiling DOUBLE,
    "cluster" VARCHAR,
    row_ref VARCHAR,
    citation VARCHAR,
    ingest_run_id VARCHAR,
    train_flop_lo DOUBLE,        -- the training compute's stated 90% interval, where a source gives one
    train_flop_hi DOUBLE,
    PRIMARY KEY (source, source_version, model, metric)
);

-- Source versions `scalegap forget` took out of future runs; their rows stay for past runs' results.
CREATE TABLE IF NOT EXISTS forgotten (
    source VARCHAR,
    source_version VARCHAR,
    forgotten_at TIMESTAMP,
    PRIMARY KEY (source, source_version)
);

CREATE TABLE IF NOT EXISTS rejected (
    source VARCHAR,
    source_version VARCHAR,
    row_ref VARCHAR,
    column_name VARCHAR,
    value VARCHAR,
    reason VARCHAR,
    ingest_run_id VARCHAR,
    PRIMARY KEY (source, source_version, row_ref, column_name)
);

CREATE TABLE IF NOT EXISTS model_aliases (
    source VARCHAR,              -- where the spelling was seen ('registry': the registry's own names)
    alias VARCHAR,               -- the model as that source spells it
    model VARCHAR,               -- models(model); NULL when ambiguous or unmatched
    status VARCHAR,              -- matched | ambiguous | unmatched | not a model
    method VARCHAR,              -- alias file | same name | same key | same key without dates | ...
    "key" VARCHAR,               -- the normalised spelling (pipeline.registry.key)
    release_key VARCHAR,         -- spellings of one release share it (same key, or one alias-file group)
    release_date TIMESTAMP,      -- the release this spelling denotes, where a source dates it
    candidates JSON,             -- the models an ambiguous spelling could be
    n_observations INTEGER,
    filled JSON,                 -- observation fields the registry wrote for this spelling (undone before a rebuild)
    note VARCHAR
    -- one row per (source, alias) by construction (pipeline.aliases.rebuild), and no primary key, whose index DuckDB
    -- would hold in memory until the ingest commits, for a source that may name millions of models
);

CREATE TABLE IF NOT EXISTS models (
    model VARCHAR PRIMARY KEY,   -- canonical name (Epoch's 'Model' where Epoch lists it)
    organization VARCHAR,
    country VARCHAR,
    release_date TIMESTAMP,      -- first release
    train_flop DOUBLE,           -- raw FLOP
    train_flop_lo DOUBLE,
    train_flop_hi DOUBLE,
    confidence VARCHAR,          -- Epoch's grade of the compute estimate
    bounds_basis VARCHAR,        -- published bounds, or how the grade was read as a factor
    accessibility VARCHAR,       -- open weights | API | hosted | unreleased
    accessibility_detail VARCHAR,-- Epoch's wording, e.g. 'Open weights (restricted use)'
    params DOUBLE,
    n_aliases INTEGER,
    field_sources JSON,          -- field -> source@version that gave it
    sources JSON                 -- every source@version that names the model
);

CREATE TABLE IF NOT EXISTS model_facts (
    source VARCHAR,              -- the stored file it was read from
    source_version VARCHAR,
    origin VARCHAR,              -- source@version that published the row (a bundled row keeps its origin)
    row_ref VARCHAR,
    name VARCHAR,                -- Epoch 'Model'
    version_name VARCHAR,        -- a release of it (ECI 'Model version'), where the row is one
    display_name VARCHAR,
    organization VARCHAR,
    country VARCHAR,
    release_date TIMESTAMP,
    train_flop DOUBLE,
    train_flop_lo DOUBLE,        -- published bounds, where given
    train_flop_hi DOUBLE,
    confidence VARCHAR,
    accessibility VARCHAR,       -- Epoch's 'Model accessibility'
    params DOUBLE,
    citation VARCHAR,
    PRIMARY KEY (source, source_version, origin, row_ref)
);

CREATE TABLE IF NOT EXISTS model_compute (
    model VARCHAR,               -- Epoch 'Model' name
    source VARCHAR,
    source_version VARCHAR,
    organization VARCHAR,
    release_date TIMESTAMP,
    train_flop DOUBLE,
    confidence VARCHAR,          -- Epoch's grade: Confident / Likely / Speculative / ...
    params DOUBLE,
    PRIMARY KEY (model, source, source_version)
);

CREATE TABLE IF NOT EXISTS series (
    series_id VARCHAR PRIMARY KEY,   -- sha256 of (metric, source, source_version, x_axis), 16 hex digits
    metric VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    x_axis VARCHAR,
    kind VARCHAR,
    unit VARCHAR
);

CREATE TABLE IF NOT EXISTS fits (
    run_id VARCHAR,
    metric VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    x_axis VARCHAR,
    series_id VARCHAR,           -- series(series_id)
    kind VARCHAR,
    unit VARCHAR,
    family VARCHAR,
    n INTEGER,
    k INTEGER,
    converged BOOLEAN,
    message VARCHAR,
    rss DOUBLE,
    sigma DOUBLE,
    aicc DOUBLE,
    bic DOUBLE,
    weight DOUBLE,             -- Akaike weight (AICc) within the series
    draws_converged DOUBLE,
    durbin_watson DOUBLE,
    shapiro_p DOUBLE,
    correlations JSON,
    fit_report VARCHAR,
    bounded_family BOOLEAN,
    log_scale BOOLEAN,          -- residuals in log10 (the series' one error model)
    backtest_mae DOUBLE,        -- mean absolute error out of sample (rolling origin)
    stacking_weight DOUBLE,     -- weight from held-out skill: stacking over the backtest points
    PRIMARY KEY (run_id, metric, source, source_version, x_axis, family)
);

CREATE TABLE IF NOT EXISTS fit_params (
    run_id VARCHAR,
    metric VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    x_axis VARCHAR,
    series_id VARCHAR,           -- series(series_id)
    family VARCHAR,
    param VARCHAR,
    value DOUBLE,              -- lmfit point estimate
    stderr DOUBLE,
    lo95 DOUBLE,               -- bootstrap percentile interval
    hi95 DOUBLE,
    fixed BOOLEAN,
    PRIMARY KEY (run_id, metric, source, source_version, x_axis, family, param)
);

CREATE TABLE IF NOT EXISTS fit_draws (
    run_id VARCHAR,
    metric VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    x_axis VARCHAR,
    series_id VARCHAR,           -- series(series_id)
    family VARCHAR,
    draw INTEGER,
    params DOUBLE[],           -- full parameter vector, in the family's param_names order
    cost DOUBLE,               -- weighted RSS of the draw on its own resample
    converged BOOLEAN,
    PRIMARY KEY (run_id, metric, source, source_version, x_axis, family, draw)
);

CREATE TABLE IF NOT EXISTS fit_bands (
    run_id VARCHAR,
    metric VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    x_axis VARCHAR,
    series_id VARCHAR,           -- series(series_id)
    family VARCHAR,
    x DOUBLE,
    fit DOUBLE,
    mean_lo95 DOUBLE,          -- band for the mean curve
    mean_hi95 DOUBLE,
    pred_lo95 DOUBLE,          -- band for a new observation
    pred_hi95 DOUBLE,
    pred_lo80 DOUBLE,
    pred_hi80 DOUBLE,
    PRIMARY KEY (run_id, metric, source, source_version, x_axis, family, x)
);

CREATE TABLE IF NOT EXISTS selection (
    run_id VARCHAR,
    metric VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    x_axis VARCHAR,
    series_id VARCHAR,           -- series(series_id)
    kind VARCHAR,
    unit VARCHAR,
    n INTEGER,
    best_family VARCHAR,
    best_weight DOUBLE,
    bounded_weight DOUBLE,     -- bounded share of the full-data Akaike weights
    p_bounded DOUBLE,          -- bounded share of the per-draw Akaike weights, averaged over draws
    valid_draws INTEGER,
    excluded_draws INTEGER,
    not_increasing JSON,       -- family -> draws that do not increase
    backtest_best VARCHAR,     -- lowest out-of-sample error
    stacking_best VARCHAR,     -- the family held-out skill (stacking) weights most
    p_bounded_stacking DOUBLE, -- bounded share under the stacking weights
    weighting VARCHAR,         -- akaike | stacking: the weighting the backtests support, which the verdict uses
    held_out_points INTEGER,   -- backtest points the stacking weights rest on
    n_clusters INTEGER,
    x_min DOUBLE,
    x_max DOUBLE,
    decisive BOOLEAN,
    note VARCHAR,
    PRIMARY KEY (run_id, metric, source, source_version, x_axis)
);

CREATE TABLE IF NOT EXISTS backtests (
    run_id VARCHAR,
    metric VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    x_axis VARCHAR,
    series_id VARCHAR,           -- series(series_id)
    family VARCHAR,
    cutoff_axis VARCHAR,
    cutoff DOUBLE,
    n_train INTEGER,
    n_test INTEGER,
    mae DOUBLE,
    bias DOUBLE,
    coverage80 DOUBLE,
    coverage95 DOUBLE,
    error_scale VARCHAR,
    undercovers BOOLEAN,
    coverage50 DOUBLE,
    crps DOUBLE,                 -- mean CRPS of the held-out points, on the error scale
    log_score DOUBLE,            -- mean -log predictive density of the held-out points
    PRIMARY KEY (run_id, metric, source, source_version, x_axis, family, cutoff)
);

CREATE TABLE IF NOT EXISTS backtest_points (
    run_id VARCHAR,
    metric VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    x_axis VARCHAR,
    series_id VARCHAR,           -- series(series_id)
    family VARCHAR,              -- a family, or 'average' (the families mixed by their stacking weights)
    cutoff DOUBLE,
    model VARCHAR,
    x DOUBLE,
    y DOUBLE,                    -- observed, on the error scale (log10 for horizons)
    beyond DOUBLE,               -- distance past the largest x the cutoff's fit saw (axis units)
    beyond_span DOUBLE,          -- that distance over the fitted span of x
    q025 DOUBLE,                 -- predictive quantiles on the error scale
    q050 DOUBLE,
    q100 DOUBLE,
    q250 DOUBLE,
    q500 DOUBLE,
    q750 DOUBLE,
    q900 DOUBLE,
    q950 DOUBLE,
    q975 DOUBLE,
    pit DOUBLE,                  -- predictive CDF at y
    log_density DOUBLE,
    crps DOUBLE,
    PRIMARY KEY (run_id, metric, source, source_version, x_axis, family, cutoff, model)
);

CREATE TABLE IF NOT EXISTS forecasts (
    run_id VARCHAR,
    metric VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    x_axis VARCHAR,
    series_id VARCHAR,           -- series(series_id)
    variant VARCHAR,             -- model (the predictive as fitted) | calibrated (conformal, the headline)
    x DOUBLE,                    -- log10 FLOP, decimal year or log10 inference budget
    beyond DOUBLE,               -- distance past the series' largest x (0 inside the data)
    kind VARCHAR,
    unit VARCHAR,
    error_scale VARCHAR,         -- log10 | the unit: the scale forecasts are scored on
    weighting VARCHAR,           -- akaike | stacking: how the families were mixed
    families JSON,               -- family -> weight in the mixture
    models VARCHAR,              -- all | frontier: the date trend was fitted on record-setting models only
    q025 DOUBLE,                 -- predictive quantiles of a new observation, in the metric's unit
    q050 DOUBLE,
    q100 DOUBLE,
    q250 DOUBLE,
    q500 DOUBLE,
    q750 DOUBLE,
    q900 DOUBLE,
    q950 DOUBLE,
    q975 DOUBLE,
    x_min DOUBLE,                -- the data the forecast was made from
    x_max DOUBLE,
    n_points INTEGER,
    PRIMARY KEY (run_id, metric, source, source_version, x_axis, variant, x)
);

CREATE TABLE IF NOT EXISTS forecast_scores (
    scored_run_id VARCHAR,       -- the run whose observations scored the forecast
    forecast_run_id VARCHAR,     -- the run that made it
    metric VARCHAR,
    source VARCHAR,              -- the forecast's series
    source_version VARCHAR,
    x_axis VARCHAR,
    series_id VARCHAR,           -- series(series_id)
    variant VARCHAR,             -- model | calibrated
    n INTEGER,                   -- new observations scored
    n_beyond INTEGER,            -- of them, past the forecast's data
    coverage50 DOUBLE,
    coverage80 DOUBLE,
    coverage95 DOUBLE,
    crps DOUBLE,                 -- mean, on the error scale
    log_score DOUBLE,            -- mean -log density where defined
    mean_pit DOUBLE,             -- 0.5 when unbiased; near 0 or 1, the forecast was too high or too low
    error_scale VARCHAR,
    observed_sources JSON,       -- source@version the new observations came from
    missed JSON,                 -- observations outside the 95% interval: model, x, value, q025, q975
    PRIMARY KEY (scored_run_id, forecast_run_id, metric, source, source_version, x_axis, variant)
);

CREATE TABLE IF NOT EXISTS forecast_calibration (
    run_id VARCHAR,
    beyond_span VARCHAR,         -- extrapolation distance past the fitted data over its span: <= 0.25 | > 0.25
    nominal DOUBLE,              -- central interval level: 0.5, 0.8, 0.9, 0.95
    factor DOUBLE,               -- conformal stretch of that interval about the median
    n INTEGER,                   -- backtest points (model average) of that distance
    n_series INTEGER,
    coverage_model DOUBLE,       -- pooled backtest coverage of the predictive as fitted
    coverage_calibrated DOUBLE,  -- the same with the factor, each series' factor fitted without it
    method VARCHAR,
    PRIMARY KEY (run_id, beyond_span, nominal)
);

CREATE TABLE IF NOT EXISTS series_points (
    run_id VARCHAR,
    metric VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    x_axis VARCHAR,
    series_id VARCHAR,           -- series(series_id)
    model VARCHAR,
    x DOUBLE,
    y DOUBLE,
    value_lo DOUBLE,
    value_hi DOUBLE,
    release_year DOUBLE,
    "cluster" VARCHAR,
    x_sd DOUBLE,                 -- sd of x from the compute's stated uncertainty (decades; 0 when exact)
    PRIMARY KEY (run_id, metric, source, source_version, x_axis, model)
);

CREATE TABLE IF NOT EXISTS metr_release_dates (
    source VARCHAR,
    source_version VARCHAR,
    alias VARCHAR,
    release_date TIMESTAMP,
    PRIMARY KEY (source, source_version, alias)
);

CREATE TABLE IF NOT EXISTS metr_runs (
    source VARCHAR,
    source_version VARCHAR,
    run_key VARCHAR,             -- METR's run_id
    task_id VARCHAR,
    task_family VARCHAR,
    alias VARCHAR,
    model VARCHAR,
    score DOUBLE,
    score_binarized INTEGER,
    human_minutes DOUBLE,
    human_source VARCHAR,
    time_limit_s DOUBLE,
    equal_task_weight DOUBLE,
    invsqrt_task_weight DOUBLE,
    fatal_error_from VARCHAR,
    PRIMARY KEY (source, source_version, run_key)
);

CREATE TABLE IF NOT EXISTS horizons (
    run_id VARCHAR,
    source VARCHAR,              -- the per-run data it was fitted to (metr_runs source)
    source_version VARCHAR,
    model VARCHAR,               -- METR alias
    release_date TIMESTAMP,
    train_flop DOUBLE,
    p50 DOUBLE,                  -- minutes of human task time at 50% success
    p50_lo DOUBLE,               -- hierarchical bootstrap 95%
    p50_hi DOUBLE,
    p80 DOUBLE,
    p80_lo DOUBLE,
    p80_hi DOUBLE,
    slope DOUBLE,                -- logits per doubling of task length
    slope_lo DOUBLE,
    slope_hi DOUBLE,
    intercept DOUBLE,
    average_score DOUBLE,        -- weighted mean success
    n_runs INTEGER,
    n_tasks INTEGER,
    n_successes INTEGER,
    n_draws_ok INTEGER,
    extrapolated BOOLEAN,        -- p50 below the shortest task: kept here, not used downstream
    weighting VARCHAR,
    regularization DOUBLE,
    note VARCHAR,
    organization VARCHAR,        -- through the model registry
    registry_model VARCHAR,      -- the registry's model for this METR alias
    train_flop_note VARCHAR,     -- where the compute came from
    PRIMARY KEY (run_id, source, source_version, model)
);

CREATE TABLE IF NOT EXISTS horizon_draws (
    run_id VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    model VARCHAR,
    draw INTEGER,
    intercept DOUBLE,
    slope DOUBLE,
    p50 DOUBLE,
    p80 DOUBLE,
    converged BOOLEAN,
    PRIMARY KEY (run_id, source, source_version, model, draw)
);

CREATE TABLE IF NOT EXISTS horizon_trend (
    run_id VARCHAR,
    metric VARCHAR,              -- metr_p50_minutes | metr_p80_minutes
    source VARCHAR,
    source_version VARCHAR,
    x_axis VARCHAR,              -- date | compute
    doubling_days DOUBLE,        -- date axis: days per horizon doubling
    lo DOUBLE,                   -- 95% over models x per-model draws
    hi DOUBLE,
    flop_per_doubling DOUBLE,    -- compute axis: compute multiplier per horizon doubling
    flop_per_doubling_lo DOUBLE,
    flop_per_doubling_hi DOUBLE,
    log2_slope DOUBLE,
    log2_slope_lo DOUBLE,
    log2_slope_hi DOUBLE,
    slope_unit VARCHAR,
    intercept DOUBLE,
    r_squared DOUBLE,
    n_models INTEGER,
    draws_ok INTEGER,
    models VARCHAR,              -- JSON list of the models in the fit
    PRIMARY KEY (run_id, metric, source, source_version, x_axis)
);

CREATE TABLE IF NOT EXISTS classifications (
    run_id VARCHAR,
    metric VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    x_axis VARCHAR,
    series_id VARCHAR,           -- series(series_id)
    kind VARCHAR,
    unit VARCHAR,
    floor DOUBLE,
    known_lo DOUBLE,             -- the metric's range by construction
    known_hi DOUBLE,
    n INTEGER,
    n_clusters INTEGER,
    best_family VARCHAR,
    best_verdict VARCHAR,        -- analytic verdict of the best family: meek | mighty-* | not-normal
    bounded BOOLEAN,
    sup DOUBLE,
    g_limit DOUBLE,              -- lim f'(C) C ln C (Thm 2.5)
    limit_kind VARCHAR,          -- zero | constant | infinite
    gap_limit DOUBLE,            -- ln(ln b / ln a) * g_limit
    p_bounded DOUBLE,            -- 1 for a known range; else per-draw Akaike weights averaged over draws
    p_bounded_data DOUBLE,       -- what the fits alone say
    threshold DOUBLE,
    verdict VARCHAR,             -- meek | mighty | indeterminate
    basis VARCHAR,               -- known-range | data | undecided
    warnings JSON,               -- list of sentences qualifying the verdict
    reason VARCHAR,
    method VARCHAR,
    growth_a DOUBLE,
    growth_b DOUBLE,
    PRIMARY KEY (run_id, metric, source, source_version, x_axis)
);

CREATE TABLE IF NOT EXISTS metric_verdicts (
    run_id VARCHAR,
    metric VARCHAR,
    kind VARCHAR,
    unit VARCHAR,
    verdict VARCHAR,             -- meek | mighty | indeterminate, reconciled across sources and axes
    basis VARCHAR,               -- known-range | data | undecided
    p_bounded DOUBLE,
    reason VARCHAR,              -- names any contradiction between series and its likely cause
    series JSON,                 -- the series verdicts beneath it
    warnings JSON,
    growth_a DOUBLE,
    growth_b DOUBLE,
    PRIMARY KEY (run_id, metric)
);

CREATE TABLE IF NOT EXISTS counterparts (
    run_id VARCHAR,
    metric VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    x_axis VARCHAR,
    series_id VARCHAR,           -- series(series_id)
    pair VARCHAR,                -- nines | logit | elo | bt_strength | horizon
    bounded_metric VARCHAR,
    bounded_verdict VARCHAR,
    bounded_best_verdict VARCHAR,
    bounded_p DOUBLE,
    bounded_basis VARCHAR,       -- known-range | derived | data | undecided
    unbounded_metric VARCHAR,
    unbounded_verdict VARCHAR,
    unbounded_best_verdict VARCHAR,
    unbounded_p DOUBLE,
    unbounded_basis VARCHAR,
    takeaway VARCHAR,
    PRIMARY KEY (run_id, metric, source, source_version, x_axis, pair)
);

CREATE TABLE IF NOT EXISTS projections (
    run_id VARCHAR,
    scenario VARCHAR,
    curve VARCHAR,
    family VARCHAR,
    verdict VARCHAR,             -- classification of the series, else from the family's asymptotics
    curve_kind VARCHAR,          -- compute | multiples | date | horizon_time | success_at_length
    unit VARCHAR,
    metric VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    x_axis VARCHAR,
    peak_gap DOUBLE,
    peak_year DOUBLE,
    peak_within_window BOOLEAN,
    close_year DOUBLE,           -- after this the gap stays below close_fraction of the range
    peak_decades DOUBLE,         -- compute curves: decades of frontier growth to the peak
    close_decades DOUBLE,
    limit_kind VARCHAR,          -- zero | constant | infinite
    limit_value DOUBLE,
    bounded BOOLEAN,
    peak_year_lo DOUBLE,         -- Monte Carlo 10th-90th percentiles
    peak_year_hi DOUBLE,
    peak_gap_lo DOUBLE,
    peak_gap_hi DOUBLE,
    x0 DOUBLE,                   -- start: log10 FLOP (compute) or decimal year (date)
    start_year DOUBLE,           -- decimal year at t = 0: where the series' data end (growth.fitted_start), else growth.start; NULL without a calendar
    end_year DOUBLE,             -- where the trajectory ends: until, or earlier where extrapolation is cut
    ratio_end DOUBLE,            -- frontier / meek at end_year (loss: meek / frontier); NULL for Elo and index units
    lag_months_end DOUBLE,       -- months until the meek actor reaches the frontier's value at end_year
    lag_months_end_lo DOUBLE,    -- Monte Carlo 10th-90th percentiles of that lag
    lag_months_end_hi DOUBLE,
    growth_a DOUBLE,
    growth_b DOUBLE,
    "lambda" DOUBLE,
    scenario_sha256 VARCHAR,
    samples INTEGER,
    band VARCHAR,
    note VARCHAR,
    warnings JSON,
    compute_advanced VARCHAR,    -- which compute the projection advances
    PRIMARY KEY (run_id, scenario, curve)
);

CREATE TABLE IF NOT EXISTS projection_trajectories (
    run_id VARCHAR,
    scenario VARCHAR,
    curve VARCHAR,
    step INTEGER,                -- position on the trajectory grid
    year DOUBLE,                 -- NULL for compute multiples (no calendar)
    decades DOUBLE,              -- compute curves: decades of frontier compute growth
    frontier DOUBLE,
    meek DOUBLE,
    gap DOUBLE,
    gap_lo DOUBLE,
    gap_mid DOUBLE,
    gap_hi DOUBLE,
    ratio DOUBLE,                -- frontier / meek (loss: meek / frontier) where both > 0; NULL for Elo and index units
    lag_months DOUBLE,           -- months until the meek actor reaches the frontier's value here; NULL: not within the search, or no calendar
    PRIMARY KEY (run_id, scenario, curve, step)
);

CREATE TABLE IF NOT EXISTS projection_sensitivity (
    run_id VARCHAR,
    scenario VARCHAR,
    curve VARCHAR,
    factor VARCHAR,
    factor_value DOUBLE,
    peak_gap DOUBLE,
    peak_year DOUBLE,
    gap_at_until DOUBLE,
    PRIMARY KEY (run_id, scenario, curve, factor, factor_value)
);

CREATE TABLE IF NOT EXISTS scenarios (
    run_id VARCHAR,
    scenario VARCHAR,
    path VARCHAR,
    sha256 VARCHAR,
    description VARCHAR,
    start VARCHAR,
    until VARCHAR,
    growth VARCHAR,
    sources VARCHAR,
    PRIMARY KEY (run_id, scenario)
);

CREATE TABLE IF NOT EXISTS gap_series (
    run_id VARCHAR,
    metric VARCHAR,
    source VARCHAR,
    source_version VARCHAR,
    comparison VARCHAR,          -- open_vs_closed | compute_tier_10x | <column>=<value>
    "date" TIMESTAMP,
    frontier DOUBLE,             -- best value to date of the leading group
    frontier_model VARCHAR,
    laggard DOUBLE,              -- best value to date of the laggard group
    laggard_model VARCHAR,
    gap DOUBLE,                  -- points (bounded metric), ratio (positive unbounded), difference (interval scale)
    gap_lo DOUBLE,               -- bootstrap 90% (models resampled, published intervals drawn)
    gap_hi DOUBLE,
    months_behind DOUBLE,        -- months since the leading group first reached the laggard's best
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
    gap_scale VARCHAR,           -- points | ratio | difference
    bounded BOOLEAN,             -- the metric's range is bounded above (ranges.known_range)
    verdict VARCHAR,             -- the metric's class from the classify stage, where there is one
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
    mean_months DOUBLE,          -- horizontal distance averaged over the values both groups reached (Epoch's measure)
    mean_months_lo DOUBLE,
    mean_months_hi DOUBLE,
    peak_gap DOUBLE,
    peak_date TIMESTAMP,
    shape VARCHAR,               -- narrowing after a peak | growing | persisting | too short to tell
    shape_p DOUBLE,              -- bootstrap share of draws showing that shape
    predicted VARCHAR,           -- what the class predicts
    agrees VARCHAR,              -- yes | no | cannot tell
    draws INTEGER,
    note VARCHAR,
    PRIMARY KEY (run_id, metric, source, source_version, comparison)
);
