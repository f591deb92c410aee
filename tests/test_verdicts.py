"""Verdicts on synthetic series of known truth, end to end through the fit, classify and project stages on a
real store: what a referee would check first."""

import numpy as np
import pandas as pd
import pytest

from pipeline import store
from pipeline.config import Draws, RunConfig
from pipeline.stages import classify as classify_stage
from pipeline.stages import fit as fit_stage
from pipeline.stages import project as project_stage

CONFIG = RunConfig.build(draws=Draws(fit=200, projection=100, backtest=20), seed=0, x_axes=("compute",))


def _rows(metric, kind, unit, x, y, floor=None, ceiling=None):
    return [{"source": "synthetic", "source_version": "v1", "source_sha256": "0", "model": f"{metric}-{i}",
             "release_date": pd.Timestamp("2019-01-01") + pd.Timedelta(days=45 * i), "train_flop": 10 ** xi,
             "metric": metric, "kind": kind, "unit": unit, "value": float(yi), "floor": floor, "ceiling": ceiling,
             "cluster": f"{metric}-{i}"} for i, (xi, yi) in enumerate(zip(x, y, strict=True))]


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    rng = np.random.default_rng(7)
    x = np.linspace(20, 26, 30)
    rows = []
    # an index saturating well inside the data (no range by construction): the data must say meek
    rows += _rows("saturating", "benchmark", "index", x, 40 + 60 / (1 + np.exp(-2.0 * (x - 22.0)))
                  + rng.normal(0, 0.8, len(x)))
    # a score straight in log C over six decades: unbounded, not meek
    rows += _rows("straight", "benchmark", "score", x, 10 + 12 * (x - 20) + rng.normal(0, 0.8, len(x)))
    # six points: too few to judge
    rows += _rows("six", "benchmark", "score", x[::5][:6], (10 + 12 * (x - 20))[::5][:6])
    # an accuracy still rising far below its ceiling: bounded by construction
    rows += _rows("rising_acc", "benchmark", "fraction", x,
                  np.clip(0.25 + 0.75 / (1 + np.exp(-0.8 * (x - 27.0))) + rng.normal(0, 0.01, len(x)), 0.26, 0.99),
                  floor=0.25, ceiling=1.0)
    # a power law with multiplicative noise (minutes, fitted on log10): mighty
    rows += _rows("powerlaw", "horizon", "minutes", x, 10 ** (-18 + 0.8 * x + rng.normal(0, 0.1, len(x))), floor=0.0)
    db = tmp_path_factory.mktemp("verdicts") / "scalegap.duckdb"
    con = store.connect(db)
    store.upsert(con, "observations", pd.DataFrame(rows), partial=True)
    con.close()
    fit_stage.run(db, "r1", CONFIG)
    classify_stage.run(db, "r1", CONFIG)
    project_stage.run(db, "r1", CONFIG)
    con = store.connect(db, read_only=True)
    try:
        cls = con.execute("SELECT * FROM classifications WHERE run_id = 'r1'").df().set_index("metric")
        proj = con.execute("SELECT * FROM projections WHERE run_id = 'r1' AND metric IS NOT NULL").df()
        traj = con.execute("SELECT * FROM projection_trajectories WHERE run_id = 'r1'").df()
    finally:
        con.close()
    return cls, proj, traj


def test_saturating_inside_the_data_is_meek(verdicts):
    cls = verdicts[0].loc["saturating"]
    assert cls["verdict"] == "meek" and cls["basis"] == "data" and cls["p_bounded"] >= 0.8


def test_straight_line_in_log_compute_is_not_meek(verdicts):
    cls = verdicts[0].loc["straight"]
    assert cls["verdict"] != "meek" and cls["p_bounded"] < 0.5


def test_six_points_are_indeterminate(verdicts):
    cls = verdicts[0].loc["six"]
    assert cls["verdict"] == "indeterminate" and cls["basis"] == "undecided"
    assert any("only 6 points (fewer than 8)" in w for w in __import__("json").loads(cls["warnings"]))


def test_accuracy_far_below_its_ceiling_is_meek_and_stays_in_range(verdicts):
    cls, proj, traj = verdicts
    row = cls.loc["rising_acc"]
    assert row["verdict"] == "meek" and row["basis"] == "known-range"
    curve = proj[proj["metric"] == "rising_acc"]["curve"].iloc[0]
    path = traj[traj["curve"] == curve]
    best_seen = 0.25 + 0.75 / (1 + np.exp(-0.8 * (26 - 27.0)))
    assert path["frontier"].max() > best_seen + 0.05      # projected above today's best ...
    assert path["frontier"].max() <= 1.0 and path["meek"].min() >= 0.0   # ... and never out of [0, 1]


def test_power_law_with_multiplicative_noise_is_mighty(verdicts):
    cls = verdicts[0].loc["powerlaw"]
    assert cls["verdict"] == "mighty" and cls["basis"] == "data" and cls["p_bounded"] <= 0.2


def test_seed_and_draw_counts_reach_counterparts_and_backtests(tmp_path):
    """Counterpart verdicts are derived from the fit's own bootstrap draws (their number and seed are the run
    configuration's); backtests use the configured backtest draws and seed."""
    import json

    rng = np.random.default_rng(3)
    x = np.linspace(20, 26, 24)
    y = np.clip(0.25 + 0.7 / (1 + np.exp(-1.2 * (x - 24.5))) + rng.normal(0, 0.02, len(x)), 0.26, 0.99)
    db = tmp_path / "s.duckdb"
    con = store.connect(db)
    store.upsert(con, "observations", pd.DataFrame(_rows("acc", "benchmark", "fraction", x, y, 0.25, 1.0)),
                 partial=True)
    con.close()

    def run(run_id, fit, backtest, seed):
        config = RunConfig.build(draws=Draws(fit=fit, backtest=backtest), seed=seed, x_axes=("compute",))
        fit_stage.run(db, run_id, config)
        classify_stage.run(db, run_id, config)
        con = store.connect(db, read_only=True)
        try:
            draws = con.execute("SELECT params, converged FROM fit_draws WHERE run_id = ? AND family = "
                                "(SELECT best_family FROM selection WHERE run_id = ?) ORDER BY draw",
                                [run_id, run_id]).df()
            pair = con.execute("SELECT unbounded_p FROM counterparts WHERE run_id = ? AND pair = 'nines'",
                               [run_id]).fetchone()[0]
            backtests = con.execute("SELECT family, cutoff, coverage80, coverage95 FROM backtests WHERE run_id = ? "
                                    "ORDER BY ALL", [run_id]).df()
            params = con.execute("SELECT param FROM fit_params WHERE run_id = ? AND family = "
                                 "(SELECT best_family FROM selection WHERE run_id = ?) ORDER BY param",
                                 [run_id, run_id]).df()
        finally:
            con.close()
        return draws, pair, backtests, params

    draws, p, backtests, _ = run("a", 150, 30, 0)
    assert len(draws) == 150                     # the configured fit draws
    ceilings = np.array([d[1] for d, ok in zip(draws["params"], draws["converged"], strict=True) if ok])
    assert p == pytest.approx(float(np.mean(ceilings < 1 - 1e-6)), abs=0.02)  # nines' P(bounded) from those draws
    draws_b, p_b, backtests_b, _ = run("b", 150, 30, 1)
    assert not np.allclose(np.stack(draws["params"]), np.stack(draws_b["params"]))  # the seed reaches the draws
    assert not backtests.equals(backtests_b)    # ... and the backtests
    _, _, none, _ = run("c", 150, 0, 0)
    assert none.empty and not backtests.empty   # backtest draws reach the backtests
    assert json.loads(json.dumps(p)) == p


def test_unbounded_projection_stops_three_decades_beyond_the_data(verdicts):
    """A power law is not followed ten decades out: the trajectory ends 3 decades of frontier compute past the
    largest compute in the data, and the reader is told so."""
    import json

    _, proj, traj = verdicts
    row = proj[proj["metric"] == "powerlaw"].iloc[0]
    path = traj[traj["curve"] == row["curve"]]
    assert path["decades"].max() + row["x0"] == pytest.approx(26 + 3, abs=0.1)
    assert any("projected only to" in w for w in json.loads(row["warnings"]))
    # the gap stays a number a reader can check: the power law 10^(0.8 x) at most 10^(0.8*3) times its value at
    # the data's end
    assert path["frontier"].max() <= 10 ** (-18 + 0.8 * 29) * 1.5
