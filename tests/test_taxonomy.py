"""Fitted curves: analytic verdict per family, the series verdict and its basis, metric reconciliation, and the
classify stage on a real store with the run configuration's growth rates."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from pipeline import store
from pipeline.config import Draws, RunConfig
from pipeline.curves import FAMILIES
from pipeline.scenario import SCENARIO_DIR, load_scenario
from pipeline.stages import classify as classify_stage
from pipeline.stages import fit as fit_stage
from pipeline.taxonomy import DEFAULT_A, DEFAULT_B, classify_family, reconcile_metric, span_can_tell

LN_RATIO = math.log(math.log(DEFAULT_B) / math.log(DEFAULT_A))


@pytest.mark.parametrize("family, params, hib, verdict", [
    ("logistic", [0.25, 0.95, 1.2, 24.0], True, "meek"),
    ("gompertz", [0.25, 0.95, 1.2, 24.0], True, "meek"),
    ("exp_power_law", [-2.0, -0.3], True, "meek"),
    ("saturating_loss", [1.69, 2.6, 0.15], False, "meek"),
    ("power_law", [-5.0, 0.3], True, "mighty-divergent"),
    ("linear_log", [-400.0, 60.0], True, "mighty-divergent"),
    ("log_log", [0.1, 2.0], True, "mighty-constant-gap"),
])
def test_family_verdicts(family, params, hib, verdict):
    out = classify_family(family, params, hib, DEFAULT_A, DEFAULT_B)
    assert out["verdict"] == verdict
    if verdict == "meek":
        assert out["g_limit"] == 0 and out["gap_limit"] == 0
    if family == "log_log":
        c = params[FAMILIES["log_log"].param_names.index("c")]
        assert out["gap_limit"] == pytest.approx(c * LN_RATIO)


@pytest.mark.parametrize("family, params", [
    ("linear_log", [1.0, -3.0]),
    ("log_log", [-0.5, 0.0]),
    ("power_law", [-5.0, -0.2]),
])
def test_degenerate_fits_are_not_normal(family, params):
    out = classify_family(family, params, True, DEFAULT_A, DEFAULT_B)
    assert out["verdict"] == "not-normal" and "not a normal performance metric" in out["reason"]


def test_span_rule_needs_curvature_above_the_noise():
    # six decades, a rise of 1 and little noise: ln ln C bends away from a line by more than twice the error
    ok, text = span_can_tell(20.0, 26.0, 1.0, 0.01, 40)
    assert ok and "decades" in text
    # one decade and noisy points: the two shapes cannot be told apart
    ok, _ = span_can_tell(24.0, 25.0, 1.0, 0.2, 10)
    assert not ok


def test_reconcile_names_a_contradiction():
    rows = [{"metric": "m", "source": "a", "x_axis": "compute", "verdict": "meek", "basis": "data", "p_bounded": 0.9,
             "reason": "", "warnings": []},
            {"metric": "m", "source": "a", "x_axis": "date", "verdict": "mighty", "basis": "data", "p_bounded": 0.1,
             "reason": "", "warnings": []}]
    out = reconcile_metric(rows)
    assert out["verdict"] == "indeterminate" and out["basis"] == "undecided"
    assert "contradiction" in out["reason"] and "release-date trend" in out["reason"]
    assert reconcile_metric(rows[:1])["verdict"] == "meek"


def _observations(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    log10_c = np.linspace(20, 26, 36)
    for i, x in enumerate(log10_c):
        acc = 0.25 + 0.7 / (1 + np.exp(-1.5 * (x - 23))) + rng.normal(0, 0.01)
        elo = 1000 + 60 * (x - 20) + rng.normal(0, 5)
        base = {"source": "synthetic", "source_version": "v1", "source_sha256": "0", "model": f"m{i}",
                "release_date": pd.Timestamp("2020-01-01") + pd.Timedelta(days=60 * i), "train_flop": 10 ** x,
                "cluster": f"m{i}"}
        rows.append({**base, "metric": "acc", "kind": "benchmark", "unit": "fraction",
                     "value": float(np.clip(acc, 0.26, 0.99)), "floor": 0.25, "ceiling": 1.0})
        rows.append({**base, "metric": "elo", "kind": "elo", "unit": "elo", "value": float(elo)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def fitted_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("store") / "scalegap.duckdb"
    con = store.connect(db)
    store.upsert(con, "observations", _observations(np.random.default_rng(1)), partial=True)
    con.close()
    run_id = "run-test"
    fit_stage.run(db, run_id, RunConfig.build(draws=Draws(fit=100, backtest=20), x_axes=("compute",)))
    return db, run_id


def test_classify_stage_and_idempotence(fitted_db):
    db, run_id = fitted_db
    config = RunConfig.build()
    summary = classify_stage.run(db, run_id, config)
    assert summary["classified"] == 2 and summary["metrics"] == 2
    con = store.connect(db, read_only=True)
    rows = con.execute("SELECT * FROM classifications WHERE run_id = ? ORDER BY metric", [run_id]).df()
    first = store.table_digest(con, "classifications"), store.table_digest(con, "counterparts")
    con.close()
    acc, elo = rows.iloc[0], rows.iloc[1]
    assert acc["verdict"] == "meek" and acc["basis"] == "known-range" and acc["p_bounded"] == 1.0
    assert elo["verdict"] == "mighty" and elo["basis"] == "data" and elo["best_verdict"].startswith("mighty")
    classify_stage.run(db, run_id, config)
    con = store.connect(db, read_only=True)
    assert (store.table_digest(con, "classifications"), store.table_digest(con, "counterparts")) == first
    con.close()


def test_scenario_rates_reach_the_gap_limit(fitted_db, tmp_path):
    """Classify uses the run's scenario: a non-default scenario changes growth_a/b and the constant gap."""
    db, run_id = fitted_db
    text = (SCENARIO_DIR / "default.toml").read_text().replace("hardware = 1.414", "hardware = 2.0") \
        .replace("investment = 2.828", "investment = 8.0")
    path = tmp_path / "fast.toml"
    path.write_text(text)
    scenario = load_scenario(path)
    # a fit of the c·ln ln C family alone: its verdict is a constant gap, whose size the rates set
    config = RunConfig.build(scenario, Draws(fit=100, backtest=0), families=("log_log",), metrics=("elo",),
                             x_axes=("compute",))
    run_id = "run-loglog"
    fit_stage.run(db, run_id, config)
    con = store.connect(db, read_only=True)
    try:
        frame, _, _ = classify_stage.classify(con, run_id, config)
    finally:
        con.close()
    elo = frame[frame["metric"] == "elo"].iloc[0]
    assert (elo["growth_a"], elo["growth_b"]) == pytest.approx((2.0, 16.0))  # raw FLOP: hardware, x investment
    assert elo["verdict"] == "mighty" and elo["best_verdict"] == "mighty-constant-gap"
    fits = _results(db, run_id)[("elo", "synthetic", "v1", "compute")]
    c = fits[elo["best_family"]].params["c"]
    # Thm 2.5: the constant gap c·ln(ln b / ln a) at the scenario's raw-compute rates, not the defaults
    assert elo["gap_limit"] == pytest.approx(c * math.log(math.log(16.0) / math.log(2.0)))
    assert elo["gap_limit"] != pytest.approx(c * math.log(math.log(1.414 * 2.828) / math.log(1.414)))


def _results(db, run_id):
    con = store.connect(db, read_only=True)
    try:
        return fit_stage.load_results(con, run_id)
    finally:
        con.close()


def test_cli_json_contract(fitted_db):
    from typer.testing import CliRunner

    from pipeline.cli import app

    db, run_id = fitted_db
    result = CliRunner().invoke(app, ["classify", "--db", str(db), "--json", "--metric", "acc", "--run-id", run_id])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["run_id"] == run_id
    assert [r["metric"] for r in payload["classifications"]] == ["acc"]
    for row in payload["classifications"] + payload["metrics"]:
        assert {"metric", "source", "x_axis", "verdict", "p_bounded", "basis", "warnings", "growth_a",
                "growth_b"} <= set(row)
        assert row["verdict"] in ("meek", "mighty", "indeterminate") and isinstance(row["warnings"], list)
    result = CliRunner().invoke(app, ["classify", "--expr", "log(log(C))", "--json"])
    payload = json.loads(result.stdout)
    assert payload["verdict"] == "mighty-constant-gap" and payload["sup"] == "inf"
    assert set(payload) >= {"normal", "normal_from_C", "bounded", "sup", "verdict", "g_limit", "gap_limit", "method",
                            "growth_a", "growth_b"}
