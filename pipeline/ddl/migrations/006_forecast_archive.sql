-- Forecasts kept and scored: held-out skill beside AICc (stacking weights), backtest points with their
-- predictive quantiles, CRPS and log score. The new tables (backtest_points, forecasts, forecast_scores,
-- forecast_calibration) are created from tables.sql by ensure_schema before the migrations run.
ALTER TABLE fits ADD COLUMN IF NOT EXISTS stacking_weight DOUBLE;
ALTER TABLE selection ADD COLUMN IF NOT EXISTS stacking_best VARCHAR;
ALTER TABLE selection ADD COLUMN IF NOT EXISTS p_bounded_stacking DOUBLE;
ALTER TABLE selection ADD COLUMN IF NOT EXISTS weighting VARCHAR;
ALTER TABLE selection ADD COLUMN IF NOT EXISTS held_out_points INTEGER;
ALTER TABLE backtests ADD COLUMN IF NOT EXISTS coverage50 DOUBLE;
ALTER TABLE backtests ADD COLUMN IF NOT EXISTS crps DOUBLE;
ALTER TABLE backtests ADD COLUMN IF NOT EXISTS log_score DOUBLE;
-- Errors in variables for compute: a stated 90% interval per observation, the sd of x each fitted point carries.
ALTER TABLE observations ADD COLUMN IF NOT EXISTS train_flop_lo DOUBLE;
ALTER TABLE observations ADD COLUMN IF NOT EXISTS train_flop_hi DOUBLE;
ALTER TABLE series_points ADD COLUMN IF NOT EXISTS x_sd DOUBLE;
