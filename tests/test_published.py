"""Against the published record: our estimates beside METR's and Epoch's, on a small store built from the bundled
snapshot (data/raw, no public data folder needed), and the Chinchilla reduction checked on synthetic data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import jinja2
import numpy as np
import pandas as pd
import pytest
from conftest import query_frame
from scipy.optimize import curve_fit, minimize_scalar

from pipeline import horizons as H
from pipeline import ingest
from pipeline.config import Draws, RunConfig
from pipeline.curves import FAMILIES
from pipeline.report import published as P
from pipeline.report import render
from pipeline.stages import fit as fit_stage
from pipeline.stages import gaps as gaps_stage
from pipeline.stages import horizons as horizons_stage

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw"
V11 = "METR-Horizon-v1.1-2026-03-03"
# The models METR's TH1.1 file of 2026-03-03 flags is_sota, released from 2023 on: the 14 its
# doubling_time_in_days.from_2023_on is fitted to (128.744 days, 95% CI 105.26-157.336).
METR_SOTA_SINCE_2023 = sorted([
    "gpt_4", "gpt_4_1106_inspect", "gpt_4o_inspect", "claude_3_5_sonnet_20240620_inspect", "o1_preview",
    "claude_3_5_sonnet_20241022_inspect", "o1_inspect", "claude_3_7_sonnet_inspect", "o3_inspect",
    "gpt_5_2025_08_07_inspect", "gemini_3_pro", "claude_opus_4_5_inspect", "gpt_5_2", "claude_opus_4_6_inspect"])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> dict:
    """The bundled snapshot, ingested; then the stages that make what the table reads: horizons (per-run fits and
    METR's trend recomputed), the loss fits, the observed gaps."""
    db = tmp_path_factory.mktemp("published") / "published.duckdb"
    ingest.ingest([str(RAW)], db=db, run_id="ingest")
    config = RunConfig.build(draws=Draws(fit=100, projection=50, backtest=10, horizons=200),
                             metrics=["loss", "loss_frontier"], x_axes=("compute",))
    horizons_stage.run(db, "r", config)
    fit_stage.run(db, "r", config)
    gaps_stage.run(db, "r", None, draws=200, seed=0)
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = P.published_rows(con, "r")
    finally:
        con.close()
    return {"db": db, "rows": rows}


def _row(rows: list[dict], quantity: str, reference: str = "") -> dict:
    hits = [r for r in rows if r["quantity"] == quantity and r["reference"].startswith(reference)]
    assert len(hits) == 1, (quantity, reference, [r["quantity"] for r in rows])
    return hits[0]


# ------------------------------------------------------------------------------- METR's doubling time
def test_metr_doubling_time_reproduced_from_its_published_horizons(bundle):
    """The horizons stage refits METR's own headline: OLS of log2 p50 on release date over METR's record-setting
    models since 2023. On the same published horizons the point must match METR's 128.744 days to within 0.05 days
    (it does to about 1e-3: the same 14 models, dates in days); the interval, from resampling the models, must
    overlap METR's 105.26-157.336 and be within a factor 1.5 of its width."""
    trend = query_frame(bundle["db"], f"SELECT * FROM horizon_trend WHERE run_id = 'r' AND source = '{H.PUBLISHED_SOURCE}'")
    assert list(trend["source_version"]) == [V11] and list(trend["x_axis"]) == ["date"]
    t = trend.iloc[0]
    assert sorted(json.loads(t["models"])) == METR_SOTA_SINCE_2023   # frontier_mask picks METR's is_sota models
    published, lo, hi = H.PUBLISHED_DOUBLING[V11]
    assert t["doubling_days"] == pytest.approx(published, abs=0.05)
    assert t["lo"] < published < t["hi"] and t["lo"] <= hi and t["hi"] >= lo
    assert 1 / 1.5 < (t["hi"] - t["lo"]) / (hi - lo) < 1.5
    row = _row(bundle["rows"], "50% horizon doubling time since 2023 (METR TH1.1)")
    assert row["ours"] == pytest.approx(t["doubling_days"]) and row["published"] == published
    assert (row["published_lo"], row["published_hi"]) == (lo, hi)
    assert row["agrees"] == "yes (overlap)" and "the points agree" in row["reason"]


def test_published_trend_without_per_run_data(tmp_path):
    """The trend needs only METR's published horizons: a store without per-run data still gets it."""
    db = tmp_path / "s.duckdb"
    ingest.ingest([str(RAW / "horizons.csv")], db=db, run_id="i")
    assert horizons_stage.run(db, "h", draws=100, seed=1) == {"skipped": "no per-run data"}
    trend = query_frame(db, "SELECT * FROM horizon_trend WHERE run_id = 'h'")
    assert len(trend) == 1 and trend.iloc[0]["doubling_days"] == pytest.approx(128.744, abs=0.05)


# ------------------------------------------------------------------------------- per-model horizons
def test_per_model_rows_pair_releases_through_the_registry(bundle):
    rows = bundle["rows"]
    ours = query_frame(bundle["db"], "SELECT * FROM horizons WHERE run_id = 'r'").set_index("model")
    theirs = query_frame(bundle["db"], "SELECT model, metric, value FROM observations WHERE source = "
                         "'metr_time_horizon' AND source_version = 'METR-Horizon-v1'")
    theirs = theirs.pivot(index="model", columns="metric", values="value")
    # the same release through an alias-file group: Claude 3.5 Sonnet (New) is METR's claude_3_5_sonnet_20241022
    new = _row(rows, "50% horizon, Claude 3.5 Sonnet (New)")
    assert new["ours"] == pytest.approx(ours.loc["Claude 3.5 Sonnet (New)", "p50"])
    assert new["published"] == pytest.approx(theirs.loc["claude_3_5_sonnet_20241022", "metr_p50_minutes"])
    assert new["published"] == pytest.approx(29.576, abs=1e-3)
    assert "claude_3_5_sonnet_20241022, the same release" in new["reason"]
    assert f"Ours/METR {new['ours'] / new['published']:.2f}" in new["reason"]
    # the same registry model where the releases are not linked: GPT-4 0314 is METR TH1.0's gpt_4
    gpt4 = _row(rows, "50% horizon, GPT-4 0314")
    assert gpt4["published"] == pytest.approx(theirs.loc["gpt_4", "metr_p50_minutes"])
    assert "gpt_4, the same registry model" in gpt4["reason"]
    # METR's slope follows from its p50 and p80: log2(p80/p50) = ln 4 / slope
    slope = np.log(4) / np.log2(theirs.loc["gpt_4", "metr_p80_minutes"] / theirs.loc["gpt_4", "metr_p50_minutes"])
    assert f"against METR's {slope:.2f}" in gpt4["reason"]
    for r in (new, gpt4):
        assert r["agrees"].startswith("yes") == (r["ours_lo"] <= r["published_hi"] and r["ours_hi"] >= r["published_lo"])
    # below the shortest task our p50 is an extrapolation: no row
    assert not [r for r in rows if r["quantity"].endswith(("davinci-002", "gpt-3.5-turbo-instruct"))]


def test_per_model_summary_checks_the_direction_before_blaming_swaa(bundle):
    rows = bundle["rows"]
    models = [r for r in rows if r["quantity"].startswith("50% horizon, ") and r["unit"] == "minutes"]
    summary = _row(rows, f"50% horizon, ours/METR, median of {len(models)} models")
    ratios = [r["ours"] / r["published"] for r in models]
    assert len(models) == 8
    assert summary["ours"] == pytest.approx(np.median(ratios))
    assert (summary["ours_lo"], summary["ours_hi"]) == pytest.approx((min(ratios), max(ratios)))
    # every slope from the per-run data is flatter than METR's, most by about half: the text says so
    assert "without the short SWAA tasks" in summary["reason"] and "every slope is flatter" in summary["reason"]
    shares = [float(m) for m in re.findall(r"([0-9.]+)x as steep", " ".join(r["reason"] for r in models))]
    assert len(shares) == 8 and max(shares) < 1 and np.median(shares) < 0.7


def test_summary_says_so_when_slopes_do_not_flatten():
    usable = pd.DataFrame({"alias": ["a", "b"], "key": ["a", "b"], "ratio": [1.0, 2.0], "slope_ratio": [0.5, 1.3],
                           "p80_ratio": [0.5, 1.2], "p50_lo": [1, 1], "p50_hi": [3, 3], "p50_value": [2, 2],
                           "p50_value_lo": [1, 1], "p50_value_hi": [3, 3], "extrapolated": [False, False]})
    row = P._per_model_summary(usable, usable, "METR TH1.0", "runs", 1.0, 83)
    assert "do not flatten consistently" in row["reason"] and "every slope" not in row["reason"]
    # runs that hold tasks of seconds are not blamed on missing SWAA tasks
    row = P._per_model_summary(usable, usable, "METR TH1.0", "runs", 0.05, 90)
    assert "short tasks included" in row["reason"] and "without the short SWAA" not in row["reason"]


# ------------------------------------------------------------------------------- Chinchilla
def test_compute_optimal_reduction_on_synthetic_losses():
    """Known L(N, D) = E + A/N^a + B/D^b: minimise it numerically over N at fixed C = 6ND, fit our saturating family
    (L = E + 10^(log10_A - alpha log10 C)) to that frontier, and get back E, gamma = ab/(a+b) and log10_A as the
    closed form says (noise-free, so to 1e-6 relative)."""
    law = {"E": 1.8, "A": 500.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37}
    log10_c = np.linspace(18, 24, 25)

    def frontier(lc: float) -> float:
        c = 10.0 ** lc
        loss = lambda ln_n: law["E"] + law["A"] * np.exp(-law["alpha"] * ln_n) + law["B"] * (c / (6 * np.exp(ln_n))) ** -law["beta"]  # noqa: E731
        return minimize_scalar(loss, bounds=(np.log(1e3), np.log(1e15)), method="bounded",
                               options={"xatol": 1e-12}).fun

    y = np.array([frontier(lc) for lc in log10_c])
    family = FAMILIES["saturating_loss"]
    assert family.param_names == ("E", "log10_A", "alpha")
    (e, log10_a, alpha), _ = curve_fit(lambda x, *p: family.value(x, np.array(p)), log10_c, y, p0=[1.5, 3.0, 0.2],
                                       xtol=1e-14, ftol=1e-14, maxfev=20_000)
    reduced = P.compute_optimal_law(**law)
    assert reduced["gamma"] == pytest.approx(0.35 * 0.37 / 0.72)
    assert alpha == pytest.approx(reduced["gamma"], rel=1e-6)
    assert e == pytest.approx(law["E"], rel=1e-6)
    assert log10_a == pytest.approx(reduced["log10_A"], rel=1e-6)


def test_published_chinchilla_numbers_reduce_as_stated():
    assert P.compute_optimal_law(**P.HOFFMANN)["gamma"] == pytest.approx(0.34 * 0.28 / 0.62)
    assert P.compute_optimal_law(**P.BESIROGLU)["gamma"] == pytest.approx(0.3478 * 0.3658 / 0.7136)
    # delta method against a simulation (alpha, beta independent, as stated)
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.3478, 0.02, 400_000), rng.normal(0.3658, 0.02, 400_000)
    assert P.gamma_se(0.3478, 0.3658, 0.02, 0.02) == pytest.approx(np.std(a * b / (a + b)), rel=0.02)


def test_chinchilla_rows_read_our_loss_fit(bundle):
    rows = bundle["rows"]
    params = query_frame(bundle["db"], "SELECT param, value, lo95, hi95 FROM fit_params WHERE run_id = 'r' AND "
                         "metric = 'loss_frontier' AND family = 'saturating_loss'").set_index("param")
    for ref, e, gamma in (("Hoffmann", 1.69, 0.34 * 0.28 / 0.62), ("Besiroglu", 1.8172, 0.3478 * 0.3658 / 0.7136)):
        e_row = _row(rows, "Chinchilla irreducible loss E", ref)
        g_row = _row(rows, "Chinchilla compute exponent αβ/(α+β)", ref)
        assert (e_row["ours"], e_row["ours_lo"], e_row["ours_hi"]) == tuple(params.loc["E", ["value", "lo95", "hi95"]])
        assert g_row["ours"] == params.loc["alpha", "value"]
        assert e_row["published"] == e and g_row["published"] == pytest.approx(gamma)
        for r in (e_row, g_row):
            if r["published_lo"] is None:   # Hoffmann publishes points only: is the point inside ours?
                assert r["agrees"].startswith("yes") == (r["ours_lo"] <= r["published"] <= r["ours_hi"])
            else:
                assert r["agrees"].startswith("yes") == (r["ours_lo"] <= r["published_hi"] and r["ours_hi"] >= r["published_lo"])
    # the bundled fit lands on Epoch's refit, not on Hoffmann's rounded estimates, and the text says why
    besiroglu = _row(rows, "Chinchilla compute exponent αβ/(α+β)", "Besiroglu")
    hoffmann = _row(rows, "Chinchilla irreducible loss E", "Hoffmann")
    assert besiroglu["agrees"] == "yes (overlap)" and "γ = αβ/(α+β) = 0.178" in besiroglu["reason"]
    assert hoffmann["agrees"] == "no (outside ours)" and "misfit" in hoffmann["reason"]


# ------------------------------------------------------------------------------- ECI, rendering
def test_eci_lag_row_reuses_the_gap_stage_and_epochs_figure(bundle):
    row = _row(bundle["rows"], "open-weights lag on ECI")
    summary = query_frame(bundle["db"], "SELECT * FROM gap_summary WHERE run_id = 'r' AND metric = 'eci' "
                          "AND comparison = 'open_vs_closed'").iloc[0]
    assert row["ours"] == summary["mean_months"] and row["interval"] == "90%"
    assert (row["published"], row["published_lo"], row["published_hi"]) == (3.5, 1.1, 5.3)
    assert row["agrees"] == "yes (overlap)"


def test_rows_are_plain_and_an_empty_run_has_none(bundle):
    rows = bundle["rows"]
    assert all(tuple(r) == P.ROW_KEYS for r in rows)
    assert all(isinstance(v, str | float | int | type(None)) for r in rows for v in r.values())
    assert json.loads(json.dumps(rows)) == rows
    con = duckdb.connect(str(bundle["db"]), read_only=True)
    try:
        assert P.published_rows(con, "no such run") == []
    finally:
        con.close()


def test_fragment_escapes_and_fits_one_a4_page(bundle):
    import weasyprint

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(render.TEMPLATES), autoescape=True,
                             undefined=jinja2.ChainableUndefined)
    env.filters.update(fmt=render.fmt, breakable=render.breakable)
    rows = [dict(r) for r in bundle["rows"]]
    assert len(rows) >= 14
    rows[0]["reason"] += " <b>not markup</b>"
    html = env.get_template("published.html.j2").render(published=rows)
    assert "&lt;b&gt;not markup&lt;/b&gt;" in html and html.count("<tr>") >= len(rows)
    assert env.get_template("published.html.j2").render(published=[]).strip() == ""
    # the report's own page and table style, which the main template will include this fragment under
    style = env.get_template("style.css.j2").render(png_dpi=150)
    page = f"<html><head><style>{style}</style></head><body>{html}</body></html>"
    assert len(weasyprint.HTML(string=page).render().pages) == 1
