"""The observed gap on history (issue 17): best-to-date step functions, gap scales, months behind and Epoch's mean
horizontal lag recomputed independently on small series, the compute tier, the trajectory's shape against the
class's prediction, bands, the stage on the bundled data and `scalegap gaps`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import query_frame
from typer.testing import CliRunner

from pipeline import gaps as G
from pipeline import ingest
from pipeline.cli import app
from pipeline.ranges import known_range
from pipeline.stages import gaps as gap_stage

ROOT = Path(__file__).resolve().parents[1]
INDEX = known_range("benchmark", "index")
DAY = pd.Timedelta(days=1)


def _frame(rows) -> pd.DataFrame:
    """rows: (model, date, value, accessibility[, train_flop])"""
    out = pd.DataFrame([(*r, np.nan)[:5] for r in rows], columns=["model", "date", "value", "accessibility", "train_flop"])
    out["date"] = pd.to_datetime(out["date"])
    return out.assign(value_lo=np.nan, value_hi=np.nan)


TOY = _frame([
    ("c1", "2020-01-01", 10.0, "API"), ("c2", "2021-01-01", 20.0, "API"), ("c3", "2022-01-01", 30.0, "unreleased"),
    ("o1", "2020-07-01", 5.0, "open weights"), ("o2", "2021-07-01", 15.0, "open weights"),
    ("o3", "2022-07-01", 25.0, "open weights"), ("x", "2021-03-01", 99.0, None),  # no accessibility: in no group
])


def _first_reach(frame: pd.DataFrame, level: float) -> pd.Timestamp:
    ok = frame[frame["value"] >= level]
    return ok["date"].min()


def test_open_vs_closed_by_hand():
    result = G.observed_gap(TOY, "open_vs_closed", INDEX, "index", draws=0)
    s = result.series.set_index("date")
    last = s.loc[pd.Timestamp("2022-07-01")]
    assert (last["frontier"], last["laggard"], last["gap"]) == (30.0, 25.0, 5.0)
    assert (last["frontier_model"], last["laggard_model"]) == ("c3", "o3")
    # the closed models first reached 25 on 2022-01-01: 181 days before
    assert last["months_behind"] == pytest.approx(181 / G.DAYS_PER_MONTH)
    # history starts once both groups have three models (the third open one: 2022-07-01); the model of unknown
    # access counts in neither group
    assert list(s.index) == [pd.Timestamp("2022-07-01")] and (s["frontier"] < 99).all()
    assert result.summary["gap_scale"] == "difference" and result.summary["n_laggard"] == 3


def test_mean_horizontal_lag_recomputed_independently():
    closed = TOY[TOY["accessibility"].isin(["API", "unreleased"])]
    opened = TOY[TOY["accessibility"] == "open weights"]
    levels = np.linspace(10, 25, 4001)
    by_hand = np.mean([(_first_reach(opened, v) - _first_reach(closed, v)) / DAY for v in levels]) / G.DAYS_PER_MONTH
    result = G.observed_gap(TOY, "open_vs_closed", INDEX, "index", draws=0)
    assert result.summary["mean_months"] == pytest.approx(by_hand, rel=0.01)
    assert 9 < by_hand < 11   # (6 + 18 + 6) / 3 months


def test_a_lone_early_laggard_makes_no_peak():
    """METR evaluated one open-weight model (GPT-2, 2019) before mid 2024: the gap against it is a gap in coverage.
    History starts once the laggard group has three models, so that stretch is neither stored nor called a peak."""
    closed = [(f"c{i}", f"{2020 + i}-01-01", 2.0 ** (2 * i), "API") for i in range(6)]
    opened = [("gpt2", "2019-02-14", 0.04, "open weights")] + \
             [(f"o{i}", f"{2023 + i // 2}-{1 + 6 * (i % 2):02d}-01", 2.0 ** (2 * i + 1), "open weights") for i in range(2, 6)]
    frame = _frame(closed + opened)
    result = G.observed_gap(frame, "open_vs_closed", known_range("horizon", "minutes"), "minutes", draws=0)
    assert result.series["date"].min() == pd.Timestamp("2024-07-01")   # the third open model (GPT-2 is the first)
    assert result.series["gap"].max() < 100


def test_laggard_ahead_is_negative():
    frame = _frame([("c1", "2020-01-01", 10.0, "API"), ("c2", "2020-02-01", 11.0, "API"), ("c3", "2020-03-01", 12.0, "API"),
                    ("o1", "2020-01-15", 5.0, "open weights"), ("o2", "2020-02-15", 6.0, "open weights"),
                    ("o3", "2021-01-01", 20.0, "open weights")])
    last = G.observed_gap(frame, "open_vs_closed", INDEX, "index", draws=0).series.iloc[-1]
    assert last["gap"] == -8.0
    # the open models first reached the closed best (12) on 2021-01-01, the date itself: zero, not positive
    assert last["months_behind"] == pytest.approx(0.0)
    assert G.observed_gap(frame.iloc[:4], "open_vs_closed", INDEX, "index", draws=0) is None  # one open model


def test_scales_points_ratio_and_lower_is_better():
    frac = TOY.assign(value=TOY["value"] / 100)
    points = G.observed_gap(frac, "open_vs_closed", known_range("benchmark", "fraction"), "fraction", draws=0)
    assert points.summary["gap_scale"] == "points" and points.series.iloc[-1]["gap"] == pytest.approx(5.0)
    minutes = G.observed_gap(TOY, "open_vs_closed", known_range("horizon", "minutes"), "minutes", draws=0)
    assert minutes.summary["gap_scale"] == "ratio" and minutes.series.iloc[-1]["gap"] == pytest.approx(30 / 25)
    loss = TOY.assign(value=100 - TOY["value"])    # lower is better: the best to date is the lowest
    lower = G.observed_gap(loss, "open_vs_closed", known_range("loss", "nats"), "nats", draws=0).series.iloc[-1]
    assert (lower["frontier"], lower["laggard"], lower["gap"]) == (70.0, 75.0, 5.0)


def test_compute_tier_entries():
    frame = _frame([("A", "2020-01-01", 50.0, None, 1e24), ("B", "2021-01-01", 60.0, None, 1e25),
                    ("C", "2020-01-01", 40.0, None, 5e23), ("D", "2022-01-01", 55.0, None, 1e24),
                    ("E", "2020-06-01", 45.0, None, np.nan)])
    lead, lag = G.entries(frame, "compute_tier_10x")
    day = lambda d: (pd.Timestamp(d) - pd.Timestamp("1970-01-01")).days  # noqa: E731
    assert list(lead) == [day("2020-01-01"), day("2021-01-01"), day("2020-01-01"), day("2022-01-01"), day("2020-06-01")]
    # C (5e23) and A (1e24) join the tier once a 1e25 model exists; D at its own release; E has no compute
    assert lag[0] == day("2021-01-01") and lag[2] == day("2021-01-01") and lag[3] == day("2022-01-01")
    assert np.isnan(lag[1]) and np.isnan(lag[4])


def test_registry_column_groups():
    frame = TOY.assign(country=["US", "US", "US", "China", "China", "China", None])
    lead, lag = G.entries(frame, "country=china")
    assert np.isfinite(lag).sum() == 3 and np.isfinite(lead).sum() == 3
    with pytest.raises(ValueError):
        G.entries(frame, "planet=Mars")
    with pytest.raises(ValueError):
        G.comparison("nonsense")


@pytest.mark.parametrize("gaps, shape", [
    ([1, 3, 5, 4, 2, 1.5], "narrowing after a peak"),
    ([5, 4, 3, 2, 1.5, 1], "narrowing"),
    ([1, 2, 3, 4, 5, 6], "growing"),
    ([3, 3.2, 2.9, 3.1, 3.0, 3.05], "persisting"),
    ([1, 2, 3], "too short to tell"),
])
def test_trajectory_shapes(gaps, shape):
    grid = np.arange(len(gaps)) * 120.0
    assert G.trajectory_shape(grid, np.array(gaps, dtype=float), "difference")[0] == shape


def test_prediction_against_history():
    assert G.agreement("meek", "narrowing after a peak") == "yes"
    assert G.agreement("meek", "growing") == "no"
    assert G.agreement("meek", "persisting") == "cannot tell"     # the peak may be ahead
    assert G.agreement("mighty", "growing") == "yes" and G.agreement("mighty", "persisting") == "yes"
    assert G.agreement("mighty", "narrowing") == "no"
    assert G.agreement("indeterminate", "growing") == "cannot tell"
    assert G.agreement("meek", "too short to tell") == "cannot tell"


def test_bands_hold_the_estimate_and_repeat_with_the_seed():
    frame = TOY.assign(value_lo=TOY["value"] - 1, value_hi=TOY["value"] + 1)
    a = G.observed_gap(frame, "open_vs_closed", INDEX, "index", draws=300, seed=3)
    b = G.observed_gap(frame, "open_vs_closed", INDEX, "index", draws=300, seed=3)
    pd.testing.assert_frame_equal(a.series, b.series)
    s = a.summary
    assert s["latest_gap_lo"] <= s["latest_gap"] + 2 and s["latest_gap_hi"] >= s["latest_gap"] - 2
    assert s["mean_months_lo"] <= s["mean_months_hi"] and s["draws"] == 300


# ------------------------------------------------------------------------------ stage and command
@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("gaps") / "gaps.duckdb"
    ingest.ingest([str(ROOT / "data" / "raw")], db=db, run_id="ingest")
    gap_stage.run(db, "g", None, draws=200, seed=0)
    return db


def test_eci_open_weights_lag_matches_epoch(bundle):
    """Epoch (Oct 2025): open-weight models trail the closed state of the art by 3.5 months on average (90% CI
    1.1-5.3), measured as the horizontal distance between the two best-to-date lines on ECI. The same measure
    on the bundled ECI file (Dec 2025) lands inside Epoch's interval, and its band overlaps Epoch's."""
    row = query_frame(bundle, "SELECT * FROM gap_summary WHERE run_id = 'g' AND metric = 'eci' "
                     "AND comparison = 'open_vs_closed'").iloc[0]
    assert 1.1 <= row["mean_months"] <= 5.3
    assert row["mean_months_lo"] < 5.3 and row["mean_months_hi"] > 1.1
    assert row["gap_scale"] == "difference"   # ECI is an interval scale: points, never a ratio
    assert row["n_leading"] >= 40 and row["n_laggard"] >= 50
    assert row["latest_months_lo"] <= row["latest_months"] <= row["latest_months_hi"]


def test_stage_stores_every_dated_series_with_both_groups(bundle):
    summary = query_frame(bundle, "SELECT * FROM gap_summary WHERE run_id = 'g'")
    series = query_frame(bundle, "SELECT * FROM gap_series WHERE run_id = 'g'")
    assert {"eci", "mmlu", "metr_p50_minutes"} <= set(summary["metric"])
    assert set(summary["comparison"]) == set(G.COMPARISONS)
    assert (summary["n_leading"] >= G.MIN_GROUP).all() and (summary["n_laggard"] >= G.MIN_GROUP).all()
    assert set(summary[summary["metric"] == "mmlu"]["gap_scale"]) == {"points"}
    assert set(summary[summary["metric"] == "metr_p50_minutes"]["gap_scale"]) == {"ratio"}
    counts = series.groupby(["metric", "source", "source_version", "comparison"]).size()
    assert len(counts) == len(summary) and (counts > 3).all()
    # without a classify run, the class comes from the range: bounded metrics are meek, others undecided
    assert set(summary[summary["bounded"]]["predicted"]) == {G.PREDICTION["meek"]}


def test_gaps_command_json_contract(bundle):
    result = CliRunner().invoke(app, ["gaps", "--db", str(bundle), "--metric", "eci", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["run_id"] == "g"
    entries = {g["comparison"]: g for g in payload["gaps"]}
    assert set(entries) == set(G.COMPARISONS)
    for entry in entries.values():
        assert entry["metric"] == "eci"
        for point in (entry["series"][0], entry["latest"]):
            assert {"date", "frontier", "laggard", "gap", "months_behind"} <= set(point)
        assert entry["latest"] == entry["series"][-1]
    result = CliRunner().invoke(app, ["gaps", "--db", str(bundle), "--metric", "eci", "--group", "country=China",
                                      "--draws", "20", "--json"])
    assert result.exit_code == 0, result.output
    assert "country=China" in {g["comparison"] for g in json.loads(result.stdout)["gaps"]}
    bad = CliRunner().invoke(app, ["gaps", "--db", str(bundle), "--group", "planet=Mars"])
    assert bad.exit_code != 0


def test_report_page_of_observed_gaps(bundle):
    from pipeline.report import render

    context = render.build_context(render.load(bundle, "g"), "g")
    gaps = context["gaps"]
    assert gaps["eci"]["comparison"] == "open_vs_closed" and len(gaps["rows"]) >= 10
    html = render.render_html(context)
    assert 'id="observed-gaps"' in html and "Open-weight models lag state-of-the-art" in html
    text = " ".join(gaps["eci_text"])
    assert "Epoch measures it" in text and "Why the figures can differ" in text
    assert f"{gaps['eci']['mean_months']:.1f} months" in text
