"""Gap projections against closed forms (meek-math §7) and the paper's METR setting (§8)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline import projection, store
from pipeline.config import Draws, RunConfig
from pipeline.projection import Curve, load_scenario
from pipeline.schema import decimal_year
from pipeline.stages import project as project_stage

PAPER = projection.SCENARIO_DIR / "paper_appendix_b.toml"
A, B = 4.0, 11.313708  # meek and frontier annual growth, meek-math §8: a = 1.414 x 2.828, b = a x 2.828


def _grid(years: float = 60.0, per_year: int = 1200) -> np.ndarray:
    return np.linspace(0.0, years, int(years * per_year) + 1)


def test_negative_loss_peaks_at_closed_form_time():
    # L = E + A C^-alpha: gap = A C0^-alpha (a^-alpha t - b^-alpha t), peak at ln(ln b/ln a) / (alpha ln(b/a)).
    e, log10_a, alpha, x0 = 1.69, 2.6, 0.3, 24.0
    curve = Curve("loss", "saturating_loss", "compute", params=np.array([e, log10_a, alpha]), x0=x0,
                  higher_is_better=False)
    t = _grid(20.0)
    frontier, meek, gap = curve.gap(t, A, B)
    closed = 10 ** (log10_a - alpha * x0) * (A ** (-alpha * t) - B ** (-alpha * t))
    np.testing.assert_allclose(gap, closed, rtol=1e-9, atol=1e-15)
    assert np.all(gap >= 0) and np.all(meek >= frontier)   # the meek actor's loss is higher
    t_star = math.log(math.log(B) / math.log(A)) / (alpha * math.log(B / A))
    assert t[np.argmax(gap)] == pytest.approx(t_star, abs=1e-3)
    assert t_star == pytest.approx(1.794, abs=1e-3)
    assert curve.limit(A, B)[:2] == ("zero", 0.0)


def test_linear_log_gap_is_exactly_linear_in_time():
    c0, c = -1.0, 0.05   # c per decade of FLOP
    curve = Curve("lin", "linear_log", "compute", params=np.array([c0, c]), x0=23.0)
    t = _grid(30.0, 12)
    gap = curve.gap(t, A, B)[2]
    np.testing.assert_allclose(gap, c * t * math.log10(B / A), rtol=1e-12, atol=1e-12)
    assert curve.limit(A, B)[0] == "infinite"


def test_log_log_gap_tends_to_constant():
    c, d = 0.7, -2.0
    curve = Curve("loglog", "log_log", "compute", params=np.array([c, d]), x0=24.0)
    limit = c * math.log(math.log(B) / math.log(A))
    kind, value, bounded = curve.limit(A, B)
    assert kind == "constant" and value == pytest.approx(limit, rel=1e-12) and not bounded
    gaps = curve.gap(np.array([10.0, 1e3, 1e6, 1e9]), A, B)[2]
    assert np.all(np.diff(gaps) > 0)                       # rises monotonically towards the limit
    assert gaps[-1] == pytest.approx(limit, rel=1e-6)
    assert gaps[0] < 0.9 * limit


def test_bounded_logistic_gap_rises_peaks_once_and_falls_to_zero():
    curve = Curve("acc", "logistic", "compute", params=np.array([0.25, 0.9, 1.2, 25.5]), x0=24.0)
    t = _grid(100.0, 12)
    gap = curve.gap(t, A, B)[2]
    assert gap[0] == 0.0
    peak = int(np.argmax(gap))
    assert 0 < peak < len(t) - 1
    falling = np.diff(gap[peak:])
    assert np.all(np.diff(gap[: peak + 1]) > 0) and np.all(falling <= 0)
    assert np.all(falling[gap[peak + 1:] > 1e-9] < 0)        # strictly, until the logistic saturates in float
    assert gap[-1] < 1e-6 and gap[peak] > 0.05


def _paper_curves():
    scenario = load_scenario(PAPER)
    return scenario, {c.name: c for c in projection.explicit_curves(scenario)}


def test_paper_setting_lambda_and_meek_doubling():
    scenario, curves = _paper_curves()
    a, b = scenario.rates(axis="date")   # time trends run on effective compute
    assert a == pytest.approx(4.0, rel=1e-6) and b == pytest.approx(11.314, rel=1e-4)
    # raw-FLOP fits advance raw compute only: hardware, and hardware x investment
    raw = scenario.rates(axis="compute")
    assert raw == pytest.approx((scenario.growth["hardware"].center,
                                 scenario.growth["hardware"].center * scenario.growth["investment"].center))
    lam = math.log(a) / math.log(b)
    assert lam == pytest.approx(4 / 7, rel=1e-6)
    horizon = curves["horizon_p50"]
    t = np.array([0.0, 1.0, 713 / 365.25])
    hf, hm = horizon.values(t, a, b)
    assert hf[2] == pytest.approx(60.0, rel=1e-9)          # 60 min at Claude 3.7 Sonnet's release (2025-02-24)
    assert hf[1] / hf[0] == pytest.approx(2 ** (12 / 7), rel=1e-9)
    meek_doubling_months = 12 / math.log2(hm[1] / hm[0])
    assert meek_doubling_months == pytest.approx(12.25, abs=1e-4)   # meek-math §8: 7 / lambda
    assert hm[0] == hf[0]


def test_paper_success_gaps_rise_then_fall_shorter_tasks_first():
    scenario, curves = _paper_curves()
    a, b = scenario.rates(axis="date")
    summary, traj = projection.project(list(curves.values()), scenario)
    rows = summary.set_index("curve")
    peaks = [rows.loc[f"p_success_{m}min", "peak_year"] for m in (4, 60, 240)]
    assert peaks[0] < peaks[1] < peaks[2]
    for m in (4, 60, 240):
        row = rows.loc[f"p_success_{m}min"]
        assert row["verdict"] == "meek" and row["limit_kind"] == "zero"
        g = traj[traj["curve"] == f"p_success_{m}min"]["gap"].to_numpy()
        assert g[0] == pytest.approx(0.0, abs=1e-12)
        assert 0 < row["peak_gap"] < 1
        assert row["close_year"] > row["peak_year"]
    # peak condition (meek-math §7): sigma'(u_f) = lambda sigma'(u_m) at the 60-minute peak
    t_peak = rows.loc["p_success_60min", "peak_year"] - decimal_year(scenario.start)
    beta = math.log(4) / math.log(5)
    hf, hm = curves["horizon_p50"].values(np.array([t_peak]), a, b)
    dsig = lambda h: (s := 1 / (1 + (60 / h) ** beta)) * (1 - s)  # noqa: E731
    assert float(dsig(hf)[0]) == pytest.approx(float((math.log(a) / math.log(b)) * dsig(hm)[0]), rel=0.02)
    assert rows.loc["horizon_p50", "limit_kind"] == "infinite" and rows.loc["horizon_p50", "verdict"] == "mighty"


def test_monte_carlo_is_seeded_and_bands_bracket_the_median():
    scenario = load_scenario(projection.SCENARIO_DIR / "fast_software.toml")
    curves = projection.explicit_curves(scenario)
    s1, t1 = projection.project(curves, scenario, samples=200, seed=3)
    s2, t2 = projection.project(curves, scenario, samples=200, seed=3)
    assert s1.equals(s2) and t1.equals(t2)
    assert np.all(t1["gap_lo"] <= t1["gap_mid"] + 1e-12) and np.all(t1["gap_mid"] <= t1["gap_hi"] + 1e-12)
    row = s1.set_index("curve").loc["p_success_60min"]
    assert row["peak_year_lo"] < row["peak_year_hi"]          # uncertain software progress spreads the peak date
    assert row["peak_gap_lo"] < row["peak_gap_hi"]


def test_stage_on_empty_store_is_idempotent(tmp_db):
    run_id = "run-proj"
    store.start_run(tmp_db, "project", {}, run_id=run_id)
    config = RunConfig.build(PAPER, Draws(projection=50), seed=1)
    summary = project_stage.run(tmp_db, run_id, config)
    assert summary == {"curves": 4, "skipped": 0, "scenario": "paper_appendix_b"}
    con = store.connect(tmp_db, read_only=True)
    tables = ("projections", "projection_trajectories", "projection_sensitivity", "scenarios")
    first = [store.table_digest(con, t) for t in tables]
    n_traj = con.execute("SELECT count(*) FROM projection_trajectories").fetchone()[0]
    con.close()
    assert n_traj == 4 * (int(load_scenario(PAPER).years * 12) + 1)
    project_stage.run(tmp_db, run_id, config)
    con = store.connect(tmp_db, read_only=True)
    assert [store.table_digest(con, t) for t in tables] == first
    con.close()


LOSS_CURVE = """
name = "loss_check"
[growth]
hardware = 1.414
algorithms = 2.828
investment = 2.828
start = "2023-03-14"
until = "2040-01-01"

[[curve]]
name = "loss"
family = "saturating_loss"
params = {E = 1.69, log10_A = 3.0, alpha = 0.155}
start_flop = 1e25
"""


def test_loss_range_subtracts_e_and_closing_follows_the_peak(tmp_path):
    # The asymptotics of a loss describe -L (sup = -E): the range still to go is L(start) - E, not L + E.
    path = tmp_path / "loss.toml"
    path.write_text(LOSS_CURVE)
    scenario = load_scenario(path)
    (curve,) = projection.explicit_curves(scenario)
    assert curve.value_range == pytest.approx(10 ** (3.0 - 0.155 * 25), rel=1e-12)
    row = projection.project([curve], scenario)[0].iloc[0]
    assert row["peak_gap"] > scenario.close_fraction * curve.value_range
    assert row["close_year"] > row["peak_year"] + 1
    # raw FLOP advances at hardware (meek) and hardware x investment (frontier): the peak of
    # A*(C0 a^t)^-alpha - A*(C0 b^t)^-alpha, by brute force on a fine monthly grid
    a, b = 1.414, 1.414 * 2.828
    t = np.arange(0, 40, 1 / 12)
    gap = 10 ** (3.0 - 0.155 * (25 + t * math.log10(a))) - 10 ** (3.0 - 0.155 * (25 + t * math.log10(b)))
    expected = 2023 + (31 + 28 + 13) / 365.25 + t[np.argmax(gap)]
    assert row["peak_year"] == pytest.approx(expected, abs=1 / 12)
    # a gap that never reaches the threshold still does not "close" before its peak
    curve.value_range = 1e6
    row = projection.project([curve], scenario)[0].iloc[0]
    assert row["close_year"] >= row["peak_year"]


def test_point_rates_collapse_the_bands_onto_the_trajectory():
    # paper scenario: point growth, explicit curves (no fit draws): every band row is the point gap
    scenario = load_scenario(PAPER)
    summary, traj = projection.project(projection.explicit_curves(scenario), scenario, samples=20, seed=0)
    for col in ("gap_lo", "gap_mid", "gap_hi"):
        np.testing.assert_allclose(traj[col], traj["gap"], rtol=1e-12, atol=1e-15)
    rows = summary.set_index("curve")
    for name in ("p_success_4min", "p_success_60min", "p_success_240min"):
        r = rows.loc[name]
        assert r["peak_year_lo"] == r["peak_year"] == r["peak_year_hi"]
        assert r["peak_gap_lo"] == pytest.approx(r["peak_gap"], rel=1e-12) == r["peak_gap_hi"]


def test_non_increasing_bootstrap_draws_are_left_out_of_the_bands():
    scenario = load_scenario(PAPER)
    draws = np.array([[-3.0, 0.2], [-3.0, 0.25], [-3.0, -0.1], [-3.0, 0.0]])   # power law: g <= 0 is not normal
    curve = Curve("pl", "power_law", "compute", params=np.array([-3.0, 0.22]), draws=draws, x0=24.0)
    summary, traj = projection.project([curve], scenario, samples=200, seed=0)
    row = summary.iloc[0]
    assert "2 of 4 bootstrap draws not increasing" in row["note"]
    assert np.all(traj["gap_lo"].to_numpy()[1:] > 0)                  # only increasing draws: the gap opens
    assert row["peak_year_lo"] == row["peak_year_hi"] == row["peak_year"]   # at the window's end, not the start


def test_second_scenario_keeps_the_first_scenarios_rows(tmp_db):
    run_id = "run-two"
    store.start_run(tmp_db, "project", {}, run_id=run_id)
    other = projection.SCENARIO_DIR / "fast_software.toml"
    tables = ("projections", "projection_trajectories", "projection_sensitivity", "scenarios")

    def counts():
        con = store.connect(tmp_db, read_only=True)
        try:
            return {t: dict(con.execute(f"SELECT scenario, count(*) FROM {t} WHERE run_id = ? GROUP BY scenario",
                                        [run_id]).fetchall()) for t in tables}
        finally:
            con.close()

    project_stage.run(tmp_db, run_id, RunConfig.build(PAPER, Draws(projection=20), seed=1))
    first = counts()
    project_stage.run(tmp_db, run_id, RunConfig.build(other, Draws(projection=20), seed=1))
    both = counts()
    for t in tables:
        assert set(both[t]) == {"paper_appendix_b", "fast_software"}, t
        assert both[t]["paper_appendix_b"] == first[t]["paper_appendix_b"]
    project_stage.run(tmp_db, run_id, RunConfig.build(other, Draws(projection=20), seed=1))   # same scenario again: replaces its own rows
    assert counts() == both
