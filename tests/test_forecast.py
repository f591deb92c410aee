"""Forecasts kept and scored: the scoring maths against closed forms, stacking weights, and a user's source in two
versions whose second version scores the first run's forecasts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline import fitting, scoring, store
from pipeline.config import Draws, RunConfig
from pipeline.stages import classify as classify_stage
from pipeline.stages import fit as fit_stage
from pipeline.stages import forecast as forecast_stage

LEVELS = scoring.QUANTILE_LEVELS


def normal_crps(mu, sd, y):
    z = (y - mu) / sd
    return sd * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi))


# ------------------------------------------------------------------ scoring maths
def test_scores_from_quantiles_match_the_normal_closed_forms():
    mu, sd = np.array([0.0, 1.0, -2.0]), np.array([1.0, 0.5, 3.0])
    q = np.stack([stats.norm.ppf(level, mu, sd) for level in LEVELS])
    y = np.array([0.3, 2.2, -9.0])
    assert scoring.crps_quantiles(LEVELS, q, y) == pytest.approx(normal_crps(mu, sd, y), rel=2e-3)
    assert scoring.log_score_quantiles(LEVELS, q, y) == pytest.approx(-stats.norm.logpdf(y, mu, sd), rel=1e-6)
    assert scoring.pit_quantiles(LEVELS, q, y) == pytest.approx(stats.norm.cdf(y, mu, sd), rel=1e-6)
    assert list(scoring.covered(LEVELS, q, y, 0.8)) == [True, False, False]


def test_crps_from_draws_matches_the_closed_form():
    rng = np.random.default_rng(0)
    draws = rng.normal(1.0, 2.0, size=(20000, 1))
    assert scoring.crps_draws(draws, np.array([0.0]))[0] == pytest.approx(normal_crps(1.0, 2.0, 0.0), rel=0.02)


def test_a_skewed_forecast_is_scored_near_its_exact_crps():
    """Not normal: a lognormal's CRPS from its nine quantiles stays within a few percent of the CRPS of its draws."""
    rng = np.random.default_rng(1)
    draws = np.exp(rng.normal(0, 0.8, size=(40000, 1)))
    q = np.quantile(draws, LEVELS, axis=0)
    for y in (0.3, 1.0, 4.0):
        exact = scoring.crps_draws(draws, np.array([y]))[0]
        assert scoring.crps_quantiles(LEVELS, q, np.array([y]))[0] == pytest.approx(exact, rel=0.06)


def test_stacking_puts_the_weight_on_the_model_that_predicts_held_out_points():
    rng = np.random.default_rng(2)
    y = rng.normal(0, 1, 400)
    good, bad = stats.norm.logpdf(y, 0, 1), stats.norm.logpdf(y, 1.5, 1)
    w = scoring.stacking_weights(np.column_stack([bad, good]))
    assert w.sum() == pytest.approx(1.0) and w[1] > 0.95
    # a mixture of two models is recovered as such: half the points from each
    y2 = np.concatenate([rng.normal(-3, 1, 300), rng.normal(3, 1, 300)])
    w2 = scoring.stacking_weights(np.column_stack([stats.norm.logpdf(y2, -3, 1), stats.norm.logpdf(y2, 3, 1)]))
    assert w2 == pytest.approx([0.5, 0.5], abs=0.05)


def test_conformal_factor_gives_its_coverage_and_recalibration_keeps_quantiles_ordered():
    rng = np.random.default_rng(3)
    y = rng.normal(0, 2, 2000)        # the forecast says sd 1: too narrow by half
    q = np.stack([np.full(len(y), stats.norm.ppf(level)) for level in LEVELS])
    factors = {}
    for level, (lo, hi) in scoring.CENTRAL.items():
        need = scoring.stretch_needed(q[4], q[LEVELS.index(lo)], q[LEVELS.index(hi)], y)
        factors[level] = scoring.conformal_factor(need, level)
        assert factors[level] == pytest.approx(2.0, rel=0.12)
    fixed = scoring.recalibrate(LEVELS, q, factors)
    assert (np.diff(fixed, axis=0) >= 0).all()
    assert scoring.covered(LEVELS, fixed, y, 0.8).mean() == pytest.approx(0.8, abs=0.03)
    assert scoring.covered(LEVELS, fixed, y, 0.95).mean() == pytest.approx(0.95, abs=0.02)


# ------------------------------------------------------------------ held-out skill in the fit
def _series(x, y, metric="s", unit="score", clusters=None):
    frame = pd.DataFrame({"model": [f"m{i}" for i in range(len(x))], "x": x, "y": y, "value_lo": np.nan,
                          "value_hi": np.nan, "release_year": 2015 + np.arange(len(x)) * 0.2,
                          "cluster": clusters if clusters is not None else [f"m{i}" for i in range(len(x))]})
    return fitting.Series(metric, "src", "v", "compute", "benchmark", unit, None, None, frame)


def test_fit_stores_stacking_weights_and_a_model_averaged_backtest():
    rng = np.random.default_rng(4)
    x = np.linspace(20, 26, 40)
    series = _series(x, 10 + 12 * (x - 20) + rng.normal(0, 0.8, len(x)))
    res = fitting.fit_series(series, None, 100, seed=0, backtest_draws=60)
    weights = {f.family: f.stacking_weight for f in res.fits if f.converged}
    assert sum(weights.values()) == pytest.approx(1.0)
    assert res.selection.held_out_points >= fitting.MIN_STACKING_POINTS
    assert res.selection.weighting in ("akaike", "stacking") and np.isfinite(res.selection.p_bounded_stacking)
    points = res.held_out
    assert {fitting.AVERAGE, *weights} >= set(points["family"]) >= {fitting.AVERAGE}
    avg = points[points["family"] == fitting.AVERAGE]
    assert (avg[list(scoring.COLUMNS)].diff(axis=1).iloc[:, 1:] >= 0).all().all()   # quantiles in order
    assert avg["pit"].between(0, 1).all() and np.isfinite(avg["log_density"]).all()
    frames = fitting.fits_frames([res])
    assert frames["fits"]["stacking_weight"].notna().any() and len(frames["backtest_points"]) == len(points)


def test_a_new_points_interval_widens_its_predictive_noise():
    x = np.linspace(20, 26, 12)
    series = _series(x, 10 + 2 * x)
    series.frame["value_lo"] = series.frame["y"] - 1.0
    series.frame["value_hi"] = series.frame["y"] + 1.0
    factor = series.noise_factor(np.array([0.0, 0.0, np.nan]), np.array([2.0, 8.0, np.nan]))
    assert factor == pytest.approx([1.0, 4.0, 1.0])


# ------------------------------------------------------------------ two versions of a user's source
def _curve(flop):
    return 0.25 + 0.7 / (1 + np.exp(-1.1 * (np.log10(flop) - 23.5)))


def _write(path: Path, n_old: int, n_new: int) -> None:
    rng = np.random.default_rng(5)
    flop = np.concatenate([np.logspace(21, 24, n_old), np.logspace(24.2, 25.2, n_new)])
    dates = pd.date_range("2019-01-01", periods=len(flop), freq="45D")
    noise = rng.normal(0, 0.015, len(flop))
    lines = [f"m{i},mybench,{min(0.99, _curve(f) + e):.5f},{f:.6g},{d.date()},org{i % 9}"
             for i, (f, d, e) in enumerate(zip(flop, dates, noise, strict=True))]
    path.write_text("model,metric,value,train_flop,release_date,cluster\n" + "\n".join(lines) + "\n")


CONFIG = RunConfig.build(draws=Draws(fit=100, backtest=40), seed=0)


def _run(db, run_id):
    fit_stage.run(db, run_id, CONFIG)
    classify_stage.run(db, run_id, CONFIG)
    return forecast_stage.run(db, run_id, CONFIG)


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    from typer.testing import CliRunner

    from pipeline.cli import app

    tmp = tmp_path_factory.mktemp("versions")
    db, path = tmp / "s.duckdb", tmp / "mine.csv"
    _write(path, 24, 0)
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(path), "--db", str(db), "--quiet"])
    assert result.exit_code == 0, result.output
    first = _run(db, store.start_run(db, "test", {}))
    _write(path, 24, 6)          # the next release of the file: six newer, larger models
    result = runner.invoke(app, ["ingest", str(path), "--db", str(db), "--quiet"])
    assert result.exit_code == 0, result.output
    second_id = store.start_run(db, "test", {})
    second = _run(db, second_id)
    scores = runner.invoke(app, ["scores", "--db", str(db), "--json"])
    assert scores.exit_code == 0, scores.output
    return db, first, second, second_id, json.loads(scores.stdout)


def test_the_second_version_scores_the_first_runs_forecasts(two_versions):
    db, first, second, second_id, payload = two_versions
    assert first["forecasts"] > 0 and first["scored"] == 0       # nothing earlier to score
    assert second["scored"] >= 1 and second["earlier_runs_scored"] == 1
    con = store.connect(db, read_only=True)
    try:
        versions = [r[0] for r in con.execute("SELECT source_version FROM sources ORDER BY retrieved_at").fetchall()]
        runs = [r[0] for r in con.execute("SELECT DISTINCT run_id FROM forecasts ORDER BY run_id").fetchall()]
        scores = con.execute("SELECT * FROM forecast_scores WHERE variant = 'calibrated'").df()
    finally:
        con.close()
    assert len(versions) == 2 and versions[1].startswith(versions[0] + "@")
    first_id = next(r for r in runs if r != second_id)
    compute = scores[scores["x_axis"] == "compute"].iloc[0]
    assert compute["forecast_run_id"] == first_id and compute["scored_run_id"] == second_id
    assert compute["source_version"] == versions[0]                 # the first run's series ...
    assert json.loads(compute["observed_sources"]) == [f"mine@{versions[1]}"]   # ... scored on the second's data
    assert compute["n"] == 6 and compute["n_beyond"] == 6           # the six new models, all past the old data
    assert 0 <= compute["coverage80"] <= compute["coverage95"] <= 1
    assert np.isfinite(compute["crps"]) and compute["crps"] < 0.2
    # the data follow the fitted law: the forecast made from the first version should mostly cover them
    assert compute["coverage95"] >= 0.5


def test_scores_json_has_the_contract_fields(two_versions):
    payload = two_versions[4]
    assert payload["scores"], payload
    for row in payload["scores"]:
        assert set(forecast_stage.SCORE_FIELDS) <= set(row)
        assert row["n"] > 0 and isinstance(row["missed"], list)
    summary = payload["backtests"]
    assert summary["run_id"] == two_versions[3]
    for key in ("backtest_coverage80", "backtest_coverage95"):
        assert 0 <= summary[key] <= 1


def test_forecasts_cover_the_grid_past_the_data_in_both_variants(two_versions):
    db = two_versions[0]
    con = store.connect(db, read_only=True)
    try:
        rows = con.execute("SELECT * FROM forecasts WHERE x_axis = 'compute' ORDER BY run_id, variant, x").df()
    finally:
        con.close()
    one = rows[(rows["run_id"] == rows["run_id"].iloc[0]) & (rows["variant"] == "calibrated")]
    past = one["beyond"][one["beyond"] > 0].to_numpy()
    assert list(past) == pytest.approx([0.25, 0.5, 1.0, 1.5, 2.0])
    assert (one[list(scoring.COLUMNS)].diff(axis=1).iloc[:, 1:] >= -1e-12).all().all()
    model = rows[(rows["run_id"] == rows["run_id"].iloc[0]) & (rows["variant"] == "model")]
    assert model["q500"].to_numpy() == pytest.approx(one["q500"].to_numpy())   # recalibration keeps the median


# ------------------------------------------------------------------ errors in variables for compute
def test_compute_spread_from_the_grade_or_the_stated_interval():
    part = pd.DataFrame({"train_flop_note": ["Epoch ECI file (Confidence: Confident)", "joined (Confidence: Likely)",
                                             "x (Confidence: Speculative)", "raw FLOP from the figure", None],
                         "train_flop_lo": [np.nan, np.nan, 1e22, np.nan, 1e23],
                         "train_flop_hi": [np.nan, np.nan, 1e24, np.nan, 1e25]})
    sd = fitting.compute_sd(part)
    z = stats.norm.ppf(0.95)
    assert sd == pytest.approx([math.log10(3) / z, 1 / z, 1 / z, 0.0, 1 / z])   # an interval beats the grade


def test_uncertain_compute_widens_the_forecast_and_a_csv_states_it(tmp_path):
    rng = np.random.default_rng(6)
    x = np.linspace(21, 25, 30)
    y = 0.25 + 0.7 / (1 + np.exp(-1.2 * (x - 23))) + rng.normal(0, 0.01, len(x))
    exact = _series(x, y, unit="fraction")
    exact.floor, exact.ceiling = 0.25, 1.0
    vague = fitting.Series(**{**exact.__dict__, "frame": exact.frame.assign(x_sd=0.6)})
    widths = []
    for s in (exact, vague):
        res = fitting.fit_series(s, ["logistic"], 200, seed=0, backtest_draws=0)
        pred = fitting.family_predictive(res.fits[0], np.array([23.0]), None, None, None, s.x_sd[:1],
                                         np.random.default_rng(0))
        q = pred.quantiles(np.random.default_rng(1))
        widths.append(float(q[-3, 0] - q[2, 0]))       # the 80% interval where the curve is steepest
    assert widths[1] > 1.5 * widths[0]
    path = tmp_path / "mine.csv"
    path.write_text("model,metric,value,train_flop,train_flop_lo,train_flop_hi\n"
                    + "\n".join(f"m{i},b,{0.3 + 0.02 * i:.3f},{10 ** (21 + 0.2 * i):.4g},{10 ** (20.5 + 0.2 * i):.4g},"
                                f"{10 ** (21.5 + 0.2 * i):.4g}" for i in range(8)) + "\n")
    from pipeline import ingest

    db = tmp_path / "s.duckdb"
    ingest.ingest([str(path)], db=db)
    series = fit_stage.load_series(db, ["b"], ("compute",))
    assert series[0].x_sd == pytest.approx(np.full(8, 1.0 / (2 * stats.norm.ppf(0.95))))


# ------------------------------------------------------------------ frontier date trends
def test_frontier_models_are_the_records_when_released():
    dates = pd.to_datetime(["2020-01-01", "2020-06-01", "2020-06-01", "2021-01-01", "2021-03-01", None])
    value = [1.0, 0.5, 2.0, 1.5, 3.0, 9.0]
    assert list(fitting.frontier_mask(dates, value)) == [True, False, True, False, True, False]
    assert list(fitting.frontier_mask(dates, [5, 4, 6, 3, 2, 1], higher_is_better=False)) == \
        [True, True, False, True, True, False]


def test_horizon_date_trends_are_fitted_on_the_frontier_by_default():
    assert RunConfig.build().frontier_kinds == ("horizon",)
    n = 18
    frame = pd.DataFrame({"metric": "h", "source": "s", "source_version": "v", "model": [f"m{i}" for i in range(n)],
                          "kind": "horizon", "unit": "minutes", "value": [2.0 ** (i / 2) * (0.3 if i % 3 else 1)
                                                                          for i in range(n)],
                          "value_lo": np.nan, "value_hi": np.nan, "floor": 0.0, "ceiling": np.nan, "cluster": None,
                          "train_flop": np.nan, "train_flop_note": None, "inference_budget": np.nan,
                          "release_date": pd.date_range("2020-01-01", periods=n, freq="90D")})
    everything = fitting.series_from_frame(frame, "date")[0]
    frontier = fitting.series_from_frame(frame, "date", frontier_kinds=("horizon",))[0]
    assert len(everything.frame) == n and everything.models == "all"
    assert frontier.models == "frontier" and len(frontier.frame) < n
    assert "set a record" in frontier.label
    assert sorted(frontier.frame["model"], key=lambda m: int(m[1:])) == ["m0", "m3", "m6", "m9", "m12", "m15"]


def test_conformal_factors_by_distance_and_left_out_series():
    """Points far past the data miss more: their bin gets its own, larger stretch; each series' recalibrated
    coverage comes from factors fitted without it."""
    rng = np.random.default_rng(7)
    n = 3000
    far = rng.random(n) < 0.4
    y = rng.normal(0, np.where(far, 3.0, 1.2))        # the forecast says sd 1 everywhere
    q = {c: np.full(n, stats.norm.ppf(level)) for c, level in zip(scoring.COLUMNS, LEVELS, strict=True)}
    points = pd.DataFrame({"y": y, **q})
    groups = pd.Series(rng.integers(0, 10, n).astype(str))
    distance = np.where(far, 0.6, 0.1)
    factors, table = scoring.conformal_calibration(points, groups, distance)
    assert factors[1][0.8] > 2 * factors[0][0.8] > 2.0
    assert set(table["beyond_span"]) == set(scoring.DISTANCE_LABELS)
    assert table["coverage_calibrated"].to_numpy() == pytest.approx(table["nominal"].to_numpy(), abs=0.04)
    fixed = scoring.recalibrate_by_distance(LEVELS, points[list(scoring.COLUMNS)].to_numpy().T, factors, distance)
    assert scoring.covered(LEVELS, fixed, y, 0.8)[far].mean() == pytest.approx(0.8, abs=0.04)
