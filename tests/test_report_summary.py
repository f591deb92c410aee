"""Page 1's rows and sentences from stored tables (pipeline.report.summary): which series a metric is read from,
how a gap reads, the Hex boards as one row, and sentences that name every verdict."""

from __future__ import annotations

import math

import pandas as pd

from pipeline.report import summary as S


def _selection(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["metric", "source", "source_version", "x_axis", "n", "kind", "unit", "best_family"])


def test_headline_series_is_on_compute_and_reaches_furthest():
    sel = _selection([("mmlu", "old", "2024", "compute", 123, "benchmark", "fraction", "gompertz"),
                      ("mmlu", "new", "2025", "compute", 89, "benchmark", "fraction", "logistic"),
                      ("mmlu", "new", "2025", "date", 89, "benchmark", "fraction", "logistic")])
    points = pd.DataFrame({"metric": "mmlu", "source": ["old", "new"], "source_version": ["2024", "2025"],
                           "x_axis": "compute", "release_year": [2024.3, 2025.4]})
    head = S.headline_series(sel, S.data_reach(points))
    assert (head["source"], head["x_axis"]) == ("new", "compute")   # fewer points, but today's frontier
    assert S.headline_series(sel)["source"] == "old"                 # without dates: the most points


def _bounded(**over) -> dict:
    row = {"limit_kind": "zero", "bounded": True, "curve_kind": "compute", "peak_gap": 0.052, "peak_year": 2027.5,
           "peak_year_lo": 2027.0, "peak_year_hi": 2028.9, "peak_gap_lo": 0.03, "peak_gap_hi": 0.08,
           "close_year": 2034.2}
    return {**row, **over}


def test_bounded_gap_reads_in_points_with_dates_and_a_past_peak_is_named():
    gap, interval, past, closes = S.projected_gap(_bounded(), "fraction", today=2026.9)
    assert gap == "peak 5.2 pp in 2027-07" and not past and closes == "2034-03"
    assert interval == "3.0 pp to 8.0 pp; 2027-01 to 2028-11"
    _, _, past, _ = S.projected_gap(_bounded(peak_year=2026.2), "fraction", today=2026.9)
    assert past


def test_a_best_fit_outside_its_own_band_is_said_not_hidden():
    _, interval, _, _ = S.projected_gap(_bounded(peak_gap=0.013), "fraction", today=2026.9)
    assert "the best fit's own peak lies outside this band" in interval


def test_growing_gap_reads_as_a_ratio_and_months_behind():
    row = {"limit_kind": "infinite", "bounded": False, "curve_kind": "date", "peak_gap": 5000.0, "ratio_end": 21.5,
           "end_year": 2030.8, "lag_months_end": 26.0, "lag_months_end_lo": 20.0, "lag_months_end_hi": 41.0}
    gap, interval, past, closes = S.projected_gap(row, "minutes", today=2026.9)
    assert gap == "frontier 21.5x the meek by 2030-10; meek trails by 26 months"
    assert interval == "lag 20-41 months" and closes == "never (grows)" and not past
    _, interval, _, _ = S.projected_gap({**row, "lag_months_end_lo": 26.0, "lag_months_end_hi": 26.2}, "minutes", 2026.9)
    assert interval == "lag set by the scenario's growth rates alone"   # not "lag 26-26 months"


def _row(metric: str, verdict: str = "meek", basis: str = "known-range", **proj) -> S.Row:
    return S.Row(group=S.group_of(metric), metric=metric, label=S.label(metric), kind="elo", unit="elo",
                 verdict=verdict, basis=basis, p_bounded=1.0, reason="Elo against perfect play is at most 0.",
                 series=None, projection={"peak_gap": 4.0, "peak_decades": 0.7, "limit_kind": "zero", **proj} or None)


def test_hex_boards_fold_into_one_row():
    boards = [_row(f"hex{k}_elo_vs_perfect", peak_gap=float(k), peak_decades=0.1 * k) for k in range(3, 10)]
    rows = S._fold_hex(boards + [_row("mmlu")])
    hexes = [r for r in rows if r.group == "hex"]
    assert len(hexes) == 1 and "7 boards (3x3 to 9x9)" in hexes[0].label
    assert hexes[0].gap == "peak 3 to 9 Elo after 0.3 to 0.9 decades of compute"
    assert hexes[0].closes == "on every board"
    assert [r.metric for r in rows] == ["mmlu", "hex"]   # in the paper's order: accuracies first, games last


def test_headline_names_every_verdict_class():
    meek = _row("mmlu", peak_year=2027.5, close_year=2034.0)
    meek.closes = "2034-01"
    mighty = _row("metr_p50_minutes", "mighty", "data", lag_months_end=26.0)
    undecided = _row("eci", "indeterminate", "undecided")
    undecided.reason = "The sources disagree."
    text = " ".join(S.headline([meek, mighty, undecided], "default", "2040-01-01"))
    assert "On 1 of 3 metrics the frontier's lead is temporary (meek): MMLU" in text
    assert "peak between 2027-07 and 2027-07" in text and "close (below 1% of the range) between 2034-01" in text
    assert "the 50% task horizon" in text and "trails by 26 months" in text
    assert "cannot decide ECI (indeterminate)." in text and "The sources disagree." in text
    assert S.headline([], "default", None) and not math.isnan(S.decimal_year_or_nan("2034-01"))


def test_fitted_gap_on_history_evaluates_the_fit_at_both_groups_compute():
    """Theory against history: at each observed date, the fit at the leading and the laggard model's compute."""
    from pipeline.report import render

    key = {"metric": "mmlu", "source": "hub", "source_version": "1", "x_axis": "compute"}
    points = pd.DataFrame({**key, "model": ["big", "small", "mid"], "x": [25.0, 23.0, 24.0], "y": [0.8, 0.5, 0.7]},
                          index=[0, 1, 2])
    band = pd.DataFrame({**key, "family": "logistic", "x": [22.0, 26.0], "fit": [0.4, 0.8]}, index=[0, 1])
    data = {"series_points": points, "fit_bands": band}
    head = {**key, "best_family": "logistic", "unit": "fraction"}
    observed = pd.DataFrame({"date": pd.to_datetime(["2024-01-01", "2025-01-01", "2025-06-01"]),
                             "frontier_model": ["big", "big", "big"], "laggard_model": ["small", "mid", "unknown"]})
    implied = render.implied_gap(data, head, observed)
    # the fit rises 0.1 per decade: 2 decades apart is 20 points, 1 decade 10; a model not in the series is left out
    assert list(implied["gap"].round(6)) == [20.0, 10.0]
    minutes = render.implied_gap({"series_points": points, "fit_bands": band.assign(fit=[1.0, 16.0])},
                                 {**head, "unit": "minutes"}, observed)
    assert list(minutes["gap"].round(6)) == [round(12.25 / 4.75, 6), round(12.25 / 8.5, 6)]   # a ratio for horizons
    assert render.implied_gap(data, {**head, "x_axis": "date"}, observed) is None
