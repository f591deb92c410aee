"""Inference scaling (paper §4) from a user's file: pass@k at several sample budgets is ingested, fitted
against log10 k, classified, and projected with the inference growth rate in place of investment."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pytest

from pipeline import ingest, store
from pipeline.config import Draws, RunConfig
from pipeline.schema import InputError
from pipeline.stages import classify as classify_stage
from pipeline.stages import fit as fit_stage
from pipeline.stages import project as project_stage

A, B = -2.2, -0.4  # pass@k = exp(A * k^B), the shape Brown et al. (2024) report for repeated sampling
BUDGETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
SCENARIO = """
name = "inference_test"
[settings]
project_fitted = false
[growth]
hardware = 1.4
algorithms = 3.0
investment = 2.0
inference = 4.0
start = "2025-01-01"
until = "2035-01-01"
[[curve]]
name = "pass_at_k"
metric = "pass_at_k"
x_axis = "inference"
"""


def _write_csv(folder: Path) -> Path:
    rng = np.random.default_rng(3)
    lines = ["model,metric,value,inference_budget,kind,unit"]
    for model, shift in (("coder-s", 0.0), ("coder-m", 0.02), ("coder-l", -0.02)):
        for k in BUDGETS:
            value = math.exp(A * k ** B) + shift * math.exp(A * k ** B) + rng.normal(0, 0.004)
            lines.append(f"{model},pass_at_k,{min(max(value, 0.001), 0.999):.5f},{k},benchmark,fraction")
    path = folder / "pass_at_k.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("inference")
    db = folder / "s.duckdb"
    ingest.ingest([str(_write_csv(folder))], db=db, run_id="ingest")
    run_id = store.start_run(db, "test", {})
    config = RunConfig.build(draws=Draws(fit=200, backtest=20), seed=1, metrics=["pass_at_k"], x_axes=("inference",))
    fit_stage.run(db, run_id, config)
    classify_stage.run(db, run_id, config)
    return db, run_id


def _q(db: Path, sql: str, params: list) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_each_budget_is_its_own_observation(fitted):
    db, _ = fitted
    rows = _q(db, "SELECT model, inference_budget, \"cluster\" FROM observations WHERE metric = 'pass_at_k' "
                  "ORDER BY model", [])
    assert len(rows) == 3 * len(BUDGETS)
    assert ("coder-l @ 16", 16.0, "coder-l") in rows  # budgets kept apart, the model kept as the cluster


def test_exp_power_law_recovers_the_curve_and_is_meek(fitted):
    db, run_id = fitted
    best = _q(db, "SELECT best_family FROM selection WHERE run_id = ? AND x_axis = 'inference'", [run_id])
    assert best == [("exp_power_law",)]
    params = dict(_q(db, "SELECT param, value FROM fit_params WHERE run_id = ? AND family = 'exp_power_law'", [run_id]))
    assert params["a"] == pytest.approx(A, rel=0.05) and params["b"] == pytest.approx(B, rel=0.05)
    verdict = _q(db, "SELECT verdict, bounded FROM classifications WHERE run_id = ? AND metric = 'pass_at_k'", [run_id])
    assert verdict == [("meek", True)]
    pairs = _q(db, "SELECT unbounded_metric FROM counterparts WHERE run_id = ? AND metric = 'pass_at_k'", [run_id])
    assert ("pass_at_k:nines",) in pairs  # its counterpart: pass@k's nines


def test_projection_uses_the_inference_rate(fitted, tmp_path):
    db, run_id = fitted
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO)
    project_stage.run(db, run_id, RunConfig.build(scenario, Draws(projection=50)))
    (row,) = _q(db, "SELECT growth_a, growth_b, limit_kind, peak_gap, x_axis FROM projections "
                    "WHERE run_id = ? AND scenario = 'inference_test'", [run_id])
    assert row[0] == pytest.approx(1.4 * 3.0) and row[1] == pytest.approx(1.4 * 3.0 * 4.0)
    assert row[2] == "zero" and row[3] > 0 and row[4] == "inference"


def test_projection_without_an_inference_rate_skips_with_the_reason(fitted, tmp_path):
    db, run_id = fitted
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO.replace("inference = 4.0\n", "").replace("inference_test", "no_rate"))
    summary = project_stage.run(db, run_id, RunConfig.build(scenario, Draws(projection=0)))
    assert summary["skipped"] == 1
    (note,) = _q(db, "SELECT note FROM projections WHERE run_id = ? AND scenario = 'no_rate'", [run_id])
    assert "growth.inference" in note[0]


def test_non_positive_budget_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("model,metric,value,inference_budget\nm,pass_at_k,0.3,0\n")
    with pytest.raises(InputError) as info:
        ingest.ingest([str(path)], db=tmp_path / "s.duckdb", run_id="r")
    text = str(info.value)
    assert "row 2" in text and "inference_budget" in text and "Fix:" in text
