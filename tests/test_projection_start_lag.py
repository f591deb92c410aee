"""Projections of fitted series start where their data end; the ratio and the lag of the meek actor on every
calendar trajectory, against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline import projection
from pipeline.fitting import FitResult
from pipeline.projection import Curve, load_scenario
from pipeline.schema import InputError, decimal_year

PAPER = projection.SCENARIO_DIR / "paper_appendix_b.toml"
UNTIL = 'until = "2040-01-01"     # "projected to 2040"\n'
LAG_TOL_MONTHS = 0.01   # linear interpolation between LAG_GRID points: errors of about 5e-4 months on these curves


def _scenario(tmp_path, until: str = UNTIL, name: str = "s.toml"):
    """The paper's scenario (start 2023-03-14), its `until` line replaced by `until` (other [growth] keys too)."""
    path = tmp_path / name
    text = PAPER.read_text()
    assert UNTIL in text
    path.write_text(text.replace(UNTIL, until))
    return load_scenario(path)


def _closed_form_lag_months(t: np.ndarray, a: float, b: float) -> np.ndarray:
    """Both actors equal at t = 0 on a compute (or date) axis advanced at constant rates a < b: the meek actor has
    the frontier's x of time t at t ln b / ln a, whatever the metric, so the lag is t (ln b / ln a - 1) years."""
    return 12 * t * (math.log(b) / math.log(a) - 1)


COMPUTE_CURVES = [
    Curve("linear", "linear_log", "compute", params=np.array([-1.0, 0.05]), x0=24.0),
    Curve("power", "power_law", "compute", params=np.array([-20.0, 0.8]), x0=25.0, unit="minutes"),
    Curve("logistic", "logistic", "compute", params=np.array([0.25, 0.9, 0.6, 28.0]), x0=24.0, unit="fraction"),
    Curve("loss", "saturating_loss", "compute", params=np.array([1.69, 3.0, 0.155]), x0=25.0,
          higher_is_better=False, unit="nats"),
]


@pytest.mark.parametrize("curve", COMPUTE_CURVES, ids=[c.name for c in COMPUTE_CURVES])
def test_compute_axis_lag_matches_the_closed_form(curve):
    scenario = load_scenario(PAPER)
    a, b = scenario.rates(axis="compute")
    summary, traj = projection.project([curve], scenario)
    expected = _closed_form_lag_months(traj["year"].to_numpy() - decimal_year(scenario.start), a, b)
    lag = traj["lag_months"].to_numpy()
    assert np.isfinite(lag).all()                     # these curves never saturate in float within the window
    np.testing.assert_allclose(lag, expected, atol=LAG_TOL_MONTHS)
    row = summary.iloc[0]
    assert row["lag_months_end"] == pytest.approx(expected[-1], abs=LAG_TOL_MONTHS)
    assert row["end_year"] == pytest.approx(traj["year"].iloc[-1])


def test_date_axis_lag_and_ratio_of_an_exponential_in_time():
    """horizon = v0 2^((x - t0)/d) on the date axis: the meek actor follows the trend at lambda times the pace,
    so lag = t (1/lambda - 1) and frontier/meek = 2^((1 - lambda) t / d)."""
    scenario = load_scenario(PAPER)
    doubling = 7 / 12
    curve = Curve("h", "exponential_time", "date", params=np.array([0.0, doubling, 2025.0]), x0=2025.5,
                  unit="minutes", start_year=2025.5, extra={"axis": "date"})
    a, b = scenario.rates(axis="date")
    lam = math.log(a) / math.log(b)
    summary, traj = projection.project([curve], scenario)
    t = traj["year"].to_numpy() - 2025.5
    assert traj["year"].iloc[0] == pytest.approx(2025.5)
    np.testing.assert_allclose(traj["lag_months"], _closed_form_lag_months(t, a, b), atol=LAG_TOL_MONTHS)
    np.testing.assert_allclose(traj["lag_months"], 12 * t * (1 / lam - 1), atol=LAG_TOL_MONTHS)
    np.testing.assert_allclose(traj["ratio"], 2 ** ((1 - lam) * t / doubling), rtol=1e-9)
    assert summary.iloc[0]["ratio_end"] == pytest.approx(traj["ratio"].iloc[-1])


def test_explicit_horizon_keeps_the_scenario_start_and_its_lag():
    scenario = load_scenario(PAPER)
    summary, traj = projection.project(projection.explicit_curves(scenario), scenario)
    rows = summary.set_index("curve")
    np.testing.assert_allclose(rows["start_year"], decimal_year(scenario.start))
    horizon = traj[traj["curve"] == "horizon_p50"]
    a, b = scenario.rates(axis="date")
    t = horizon["year"].to_numpy() - decimal_year(scenario.start)
    np.testing.assert_allclose(horizon["lag_months"], _closed_form_lag_months(t, a, b), atol=LAG_TOL_MONTHS)
    # success at a fixed task length saturates towards 1: where it does, the meek actor may reach it no later
    success = traj[traj["curve"] == "p_success_60min"]
    assert (success["lag_months"].dropna() >= 0).all() and (success["ratio"].dropna() >= 1 - 1e-12).all()


def test_ratio_is_missing_for_interval_scales_and_inverted_for_loss():
    scenario = load_scenario(PAPER)
    elo = Curve("elo", "logistic", "compute", params=np.array([-3000.0, 0.0, 0.8, 26.0]), x0=24.0, unit="elo")
    index = Curve("eci", "linear_log", "compute", params=np.array([100.0, 10.0]), x0=24.0, unit="index")
    loss = COMPUTE_CURVES[-1]
    summary, traj = projection.project([elo, index, loss], scenario)
    assert traj[traj["curve"].isin(["elo", "eci"])]["ratio"].isna().all()
    assert summary.set_index("curve").loc[["elo", "eci"], "ratio_end"].isna().all()
    ratio = traj[traj["curve"] == "loss"]["ratio"].to_numpy()
    assert ratio[0] == pytest.approx(1.0) and (ratio[1:] > 1).all()          # meek loss / frontier loss
    frontier, meek = (traj[traj["curve"] == "loss"][c].to_numpy() for c in ("frontier", "meek"))
    np.testing.assert_allclose(ratio, meek / frontier, rtol=1e-12)


def test_compute_multiples_have_no_calendar_and_no_lag():
    scenario = load_scenario(PAPER)
    hex_curve = Curve("hex", "logistic", "multiples", params=np.array([-2000.0, 0.0, 1.0, 14.0]), x0=12.0, unit="elo")
    summary, traj = projection.project([hex_curve], scenario, samples=20)
    row = summary.iloc[0]
    assert traj["lag_months"].isna().all() and traj["year"].isna().all()
    assert all(pd.isna(row[k]) for k in ("start_year", "end_year", "lag_months_end", "lag_months_end_lo",
                                         "lag_months_end_hi", "ratio_end"))


def test_lag_band_brackets_the_point_and_collapses_at_point_rates(tmp_path):
    curve = COMPUTE_CURVES[0]
    point = projection.project([curve], load_scenario(PAPER), samples=50, seed=1)[0].iloc[0]
    assert point["lag_months_end_lo"] == pytest.approx(point["lag_months_end"], abs=LAG_TOL_MONTHS)
    assert point["lag_months_end_hi"] == pytest.approx(point["lag_months_end"], abs=LAG_TOL_MONTHS)
    fast = load_scenario(projection.SCENARIO_DIR / "fast_software.toml")   # investment 2-4x: lambda varies
    row = projection.project([curve], fast, samples=200, seed=1)[0].iloc[0]
    assert row["lag_months_end_lo"] < row["lag_months_end"] < row["lag_months_end_hi"]


def test_lag_is_missing_where_the_meek_actor_never_gets_there():
    """A meek actor that the search grid does not carry to the frontier's value: NaN, not a made-up lag."""
    curve = COMPUTE_CURVES[0]
    lag = projection.lag_years(curve, np.array([0.0, 10.0, 1e4]), 1.414, 4.0)
    assert lag[0] == 0.0 and lag[1] == pytest.approx(10 * (math.log(4) / math.log(1.414) - 1), abs=1e-3)
    assert np.isinf(lag[2])                       # beyond LAG_SEARCH_YEARS: reported as missing
    # a logistic at its ceiling in floating point: when the meek actor gets to 1.0 says nothing of the frontier's t
    steep = Curve("steep", "logistic", "compute", params=np.array([0.0, 1.0, 20.0, 24.5]), x0=24.0, unit="fraction")
    t = np.array([3.0, 10.0])
    assert steep.values(t, 1.414, 4.0)[0][1] == 1.0
    lag = projection.lag_years(steep, t, 1.414, 4.0)
    assert lag[0] == pytest.approx(3 * (math.log(4) / math.log(1.414) - 1), abs=1e-3) and np.isnan(lag[1])


# ------------------------------------------------------------------------------ the data-end start
def _fit(family: str, params: dict) -> FitResult:
    return FitResult(family, True, "", params=params)


ROW = {"x_axis": "compute", "kind": "benchmark", "unit": "fraction", "metric": "acc", "source": "s",
       "source_version": "v1"}
POINTS = pd.DataFrame({"x": [23.0, 24.0, 25.0, 25.5, 24.5], "y": [0.3, 0.4, 0.55, 0.6, 0.5],
                       "release_year": [2022.1, 2023.0, 2024.2, 2025.3, np.nan]})


def test_fitted_series_starts_where_its_data_end(tmp_path):
    scenario = _scenario(tmp_path)
    fit = _fit("logistic", {"floor": 0.25, "ceiling": 0.95, "k": 1.5, "m": 25.0})   # past its midpoint at the start
    curve = projection.fitted_curve("acc", fit, ROW, POINTS, scenario)
    assert curve.start_year == pytest.approx(2025.3) and curve.x0 == 25.5     # the frontier's compute in 2025
    summary, traj = projection.project([curve], scenario, samples=30)
    row = summary.iloc[0]
    assert row["start_year"] == pytest.approx(2025.3) and traj["year"].iloc[0] == pytest.approx(2025.3)
    assert traj["gap"].iloc[0] == 0 and traj["lag_months"].iloc[0] == 0
    assert row["end_year"] == pytest.approx(decimal_year(scenario.until), abs=1 / 12)
    for col in ("peak_year", "peak_year_lo", "peak_year_hi", "close_year"):
        assert row[col] >= row["start_year"], col
    # the old behaviour on request: t = 0 at growth.start, the frontier's compute then
    old = projection.fitted_curve("acc", fit, ROW, POINTS, _scenario(tmp_path, UNTIL + 'fitted_start = "scenario"\n', "o.toml"))
    assert old.origin(scenario) == pytest.approx(decimal_year(scenario.start)) and old.x0 == 24.0


def test_date_series_starts_at_its_last_x_and_undated_series_at_the_scenario_start(tmp_path):
    scenario = _scenario(tmp_path)
    dated = POINTS.assign(x=POINTS["release_year"].fillna(2021.0))
    fit = _fit("exponential_time", {"log10_v0": 0.0, "doubling_years": 0.6, "t0": 2024.0})
    curve = projection.fitted_curve("h", fit, {**ROW, "x_axis": "date", "unit": "minutes"}, dated, scenario)
    assert curve.start_year == curve.x0 == pytest.approx(2025.3) and curve.mode == "date"
    undated = POINTS.assign(release_year=np.nan)
    curve = projection.fitted_curve("u", _fit("linear_log", {"c0": -1.0, "c": 0.05}), ROW, undated, scenario)
    assert curve.origin(scenario) == pytest.approx(decimal_year(scenario.start)) and curve.x0 == 25.5
    assert any("no release dates" in w for w in curve.warnings)


def test_data_ending_after_until_leaves_a_one_point_window(tmp_path):
    scenario = _scenario(tmp_path, 'until = "2024-01-01"\n')
    curve = projection.fitted_curve("acc", _fit("logistic", {"floor": 0.25, "ceiling": 0.95, "k": 1.5, "m": 25.0}),
                                    ROW, POINTS, scenario)
    summary, traj = projection.project([curve], scenario)
    assert len(traj) == 1 and summary.iloc[0]["peak_year"] >= 2025.3
    assert "no window to project over" in summary.iloc[0]["note"]


@pytest.mark.parametrize("value", ['"date"', "1", "true"])
def test_fitted_start_must_be_data_or_scenario(tmp_path, value):
    with pytest.raises(InputError) as info:
        _scenario(tmp_path, UNTIL + f"fitted_start = {value}\n")
    message = str(info.value)
    path = tmp_path / "s.toml"
    assert "growth.fitted_start" in message and '"scenario"' in message and str(path) in message
    assert len(message.splitlines()) == 1


def test_fitted_start_defaults_to_data(tmp_path):
    assert _scenario(tmp_path).fitted_start == "data"
    assert load_scenario(projection.SCENARIO_DIR / "default.toml").fitted_start == "data"
