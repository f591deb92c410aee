"""Counterpart pairs (meek-math §6): closed-form identities, and meek on one side / mighty on the other."""

import math

import numpy as np
import pandas as pd
import pytest

from pipeline import counterparts as cp
from pipeline.fitting import FitResult


def _points(x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"model": [f"m{i}" for i in range(len(x))], "x": x, "y": y, "value_lo": np.nan,
                         "value_hi": np.nan, "release_year": 2020.0, "cluster": [f"m{i}" for i in range(len(x))]})


def test_logistic_accuracy_has_exactly_linear_logit():
    x = np.linspace(22, 26, 30)
    p = 1 / (1 + np.exp(-1.7 * (x - 24)))
    slope, intercept = np.polyfit(x, cp.logit(p), 1)
    assert slope == pytest.approx(1.7, rel=1e-9) and intercept == pytest.approx(-1.7 * 24, rel=1e-9)


def test_gompertz_accuracy_has_asymptotically_linear_nines():
    # p = exp(-exp(-k(x - m))): 1 - p ≈ e^{-k(x-m)} far out, so -log10(1 - p) ≈ k(x - m)/ln 10: linear in log C
    x = np.linspace(30, 34, 20)
    k, m = 1.5, 24.0
    p = np.exp(-np.exp(-k * (x - m)))
    assert np.polyfit(x, cp.nines(p), 1)[0] == pytest.approx(k / math.log(10), rel=1e-3)


def test_chance_correction_and_clipping():
    p = np.array([0.25, 0.625, 1.0])
    out = cp.chance_corrected(p, 0.25)
    assert out[1] == pytest.approx(0.5)
    assert 0 < out[0] < 1e-3 and 1 - 1e-3 < out[2] < 1


def test_win_rate_and_bt_strength_identities():
    elo = np.array([1000.0, 1200.0, 1400.0])
    w = cp.win_rate(elo, 1200.0)
    assert w[1] == 0.5 and w[2] == pytest.approx(1 / (1 + 10 ** -0.5))
    # Bradley-Terry: win probability is S_i/(S_i + S_j)
    s = cp.bt_strength(elo)
    assert w[2] == pytest.approx(s[2] / (s[2] + s[1]))
    # Elo linear in log10 C (60 per decade) => S a power law in C with exponent 60/400
    log10_c = np.array([22.0, 23.0, 24.0])
    s = cp.bt_strength(1000 + 60 * (log10_c - 22))
    assert np.diff(np.log10(s)) == pytest.approx([60 / 400] * 2)


def test_metr_logistic_in_task_length():
    beta = cp.metr_beta(5.0)
    assert beta == pytest.approx(math.log(4) / math.log(5))
    # p = 0.5 at L = H50 and p = 0.8 at L = H50 / 5 (METR's ratio)
    assert cp.success_at_length(np.array([60.0]), 60.0)[0] == pytest.approx(0.5)
    assert cp.success_at_length(np.array([300.0]), 60.0)[0] == pytest.approx(0.8)


def _logistic_fit(ceilings: np.ndarray) -> FitResult:
    draws = np.column_stack([np.full(len(ceilings), 0.25), ceilings, np.full(len(ceilings), 1.2),
                             np.full(len(ceilings), 24.0)])
    return FitResult("logistic", True, "", params={"floor": 0.25, "ceiling": float(np.median(ceilings)), "k": 1.2,
                                                      "m": 24.0}, fixed={"floor": 0.25}, weight=1.0, draws=draws,
                     draw_ok=np.ones(len(ceilings), bool))


ACC = {"metric": "acc", "source": "s", "source_version": "v", "x_axis": "compute", "kind": "benchmark",
       "unit": "fraction", "floor": 0.25, "verdict": "meek", "basis": "known-range", "best_family": "logistic",
       "p_bounded": 1.0, "best_verdict": "meek", "reason": "a fraction lies in [0, 1] by construction"}


def test_nines_of_an_accuracy_that_levels_off_below_one_are_meek():
    """Derived, not assumed: nines of an accuracy levelling off at c < 1 are bounded by -log10(1 - c)."""
    x = np.linspace(22, 26, 10)
    pairs = {p["pair"]: p for p in cp.pairs_for_series(ACC, {"logistic": _logistic_fit(np.full(200, 0.85))},
                                                        _points(x, np.full(10, 0.5)))}
    assert set(pairs) == {"nines", "logit"}
    nines = pairs["nines"]
    assert nines["bounded_verdict"] == "meek" and nines["unbounded_verdict"] == "meek"
    assert nines["unbounded_basis"] == "derived" and nines["unbounded_p"] == 1.0
    bound = -math.log10(1 - (0.85 - 0.25) / 0.75)
    assert f"{bound:.3g}" in nines["takeaway"] and "the gap closes" in nines["takeaway"]


def test_nines_of_an_accuracy_that_reaches_one_are_mighty():
    x = np.linspace(22, 26, 10)
    pairs = {p["pair"]: p for p in cp.pairs_for_series(ACC, {"logistic": _logistic_fit(np.full(200, 1.0))},
                                                        _points(x, np.full(10, 0.5)))}
    assert pairs["nines"]["unbounded_verdict"] == "mighty" and pairs["nines"]["unbounded_p"] == 0.0
    assert "without bound" in pairs["nines"]["takeaway"]
    half = np.r_[np.full(100, 0.9), np.full(100, 1.0)]
    pairs = {p["pair"]: p for p in cp.pairs_for_series(ACC, {"logistic": _logistic_fit(half)},
                                                        _points(x, np.full(10, 0.5)))}
    assert pairs["nines"]["unbounded_verdict"] == "indeterminate"   # the ceiling's draws split: undecided


def test_elo_pairs_follow_the_elo_range():
    x = np.linspace(22, 26, 10)
    open_elo = {"metric": "elo", "source": "s", "source_version": "v", "x_axis": "compute", "kind": "elo",
                "unit": "elo", "floor": None, "verdict": "mighty", "basis": "data", "best_family": "linear_log",
                "p_bounded": 0.05, "best_verdict": "mighty-divergent", "reason": ""}
    pairs = {p["pair"]: p for p in cp.pairs_for_series(open_elo, {}, _points(x, 1000 + 50 * x))}
    assert pairs["elo"]["bounded_verdict"] == "meek" and pairs["elo"]["bounded_basis"] == "known-range"
    assert pairs["bt_strength"]["unbounded_verdict"] == "mighty"
    capped = {**open_elo, "verdict": "meek", "basis": "known-range", "p_bounded": 1.0}
    pairs = {p["pair"]: p for p in cp.pairs_for_series(capped, {}, _points(x, -500 + 20 * x))}
    assert pairs["bt_strength"]["unbounded_verdict"] == "meek"   # BT strength of Elo vs perfect play is <= 1
