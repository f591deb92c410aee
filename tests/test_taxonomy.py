"""Fitted curves: analytic verdict per family, P(bounded), and the classify stage on a real store."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from pipeline import store
from pipeline.curves import FAMILIES
from pipeline.taxonomy import (
    DEFAULT_A,
    DEFAULT_B,
    classify_family,
    classify_stage,
    probability_bounded,
    verdict_with_uncertainty,
)

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
    out = classify_family(family, params, hib)
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
    out = classify_family(family, params)
    assert out["verdict"] == "not-normal" and "not a normal performance metric" in out["reason"]


def test_probability_bounded_synthetic_weights():
    logistic_draws = np.array([[0.25, 0.95, 1.2, 24.0]] * 10)
    linear_draws = np.array([[-400.0, 60.0]] * 10)
    # 0.7 on an always-bounded family, 0.3 on a never-bounded one
    p = probability_bounded({"logistic": 0.7, "linear_log": 0.3}, {"logistic": logistic_draws,
                                                                     "linear_log": linear_draws})
    assert p == pytest.approx(0.7)
    # half of the logistic draws are degenerate (ceiling below floor): they count as not bounded-normal
    mixed = logistic_draws.copy()
    mixed[:5, 1] = 0.1
    p = probability_bounded({"logistic": 1.0}, {"logistic": mixed})
    assert p == pytest.approx(0.5)
    assert verdict_with_uncertainty(0.85)[0] == "meek"
    assert verdict_with_uncertainty(0.1)[0] == "mighty"
    verdict, reason = verdict_with_uncertainty(0.5)
    assert verdict == "indeterminate" and "neither side" in reason


def _observations(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    log10_c = np.linspace(22, 26, 24)
    for i, x in enumerate(log10_c):
        acc = 0.25 + 0.7 / (1 + np.exp(-1.5 * (x - 24))) + rng.normal(0, 0.01)
        elo = 1000 + 60 * (x - 22) + rng.normal(0, 5)
        base = {"source": "synthetic", "source_version": "v1", "source_sha256": "0", "model": f"m{i}",
                "release_date": pd.Timestamp("2020-01-01") + pd.Timedelta(days=60 * i), "train_flop": 10 ** x,
                "cluster": f"m{i}"}
        rows.append({**base, "metric": "acc", "kind": "benchmark", "unit": "fraction", "value": float(np.clip(acc, 0.26, 0.99)),
                     "floor": 0.25, "ceiling": 1.0})
        rows.append({**base, "metric": "elo", "kind": "elo", "unit": "elo", "value": float(elo)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def fitted_db(tmp_path_factory):
    from pipeline import fitting

    db = tmp_path_factory.mktemp("store") / "scalegap.duckdb"
    frame = _observations(np.random.default_rng(1))
    con = store.connect(db)
    store.upsert(con, "observations", frame)
    con.close()
    run_id = "run-test"
    fitting.fit_stage(db, run_id, x_axes=("compute",), bootstrap=100, seed=0)
    return db, run_id


def test_classify_stage_and_idempotence(fitted_db):
    db, run_id = fitted_db
    summary = classify_stage(db, run_id)
    assert summary["classified"] == 2
    con = store.connect(db, read_only=True)
    rows = con.execute("SELECT * FROM classifications WHERE run_id = ? ORDER BY metric", [run_id]).df()
    first = store.table_digest(con, "classifications"), store.table_digest(con, "counterparts")
    con.close()
    acc, elo = rows.iloc[0], rows.iloc[1]
    assert acc["verdict"] == "meek" and acc["p_bounded"] >= 0.8     # a clean logistic: bounded
    assert elo["verdict"] == "mighty" and elo["best_verdict"].startswith("mighty")  # Elo linear in log C
    classify_stage(db, run_id)
    con = store.connect(db, read_only=True)
    assert (store.table_digest(con, "classifications"), store.table_digest(con, "counterparts")) == first
    con.close()


def test_cli_json(fitted_db, capsys):
    from typer.testing import CliRunner

    from pipeline.cli import app

    db, run_id = fitted_db
    result = CliRunner().invoke(app, ["classify", "--db", str(db), "--json", "--metric", "acc"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["run_id"] == run_id
    assert [r["metric"] for r in payload["classifications"]] == ["acc"]
    result = CliRunner().invoke(app, ["classify", "--expr", "log(log(C))", "--json"])
    payload = json.loads(result.stdout)
    assert payload["verdict"] == "mighty-constant-gap" and payload["sup"] == "inf"
    assert set(payload) >= {"normal", "normal_from_C", "bounded", "sup", "verdict", "g_limit", "gap_limit", "method"}
