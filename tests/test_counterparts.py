"""Counterpart pairs (meek-math §6): closed-form identities, and meek on one side / mighty on the other."""

import math

import numpy as np
import pandas as pd
import pytest

from pipeline import counterparts as cp


def _points(x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"model": [f"m{i}" for i in range(len(x))], "x": x, "y": y, "value_lo": np.nan,
                         "value_hi": np.nan, "release_year": 2020.0, "cluster": [f"m{i}" for i in range(len(x))]})


def test_logistic_accuracy_has_exactly_linear_logit():
    x = np.linspace(22, 26, 30)
    p = 1 / (1 + np.exp(-1.7 * (x - 24)))
    slope, intercept = np.polyfit(x, cp.logit(p), 1)
    assert slope == pytest.approx(1.7, rel=1e-9) and intercept == pytest.approx(-1.7 * 24, rel=1e-9)


def test_gompertz_accuracy_has_asymptotically_linear_nines():
    # p = exp(-exp(-k(x - m))): -ln(1 - p) -> k(x - m) - ln(...) ~ linear with slope k as x grows
    x = np.linspace(30, 34, 20)
    k, m = 1.5, 24.0
    p = np.exp(-np.exp(-k * (x - m)))
    # 1 - p ≈ e^{-k(x-m)} far out, so -ln(1-p) ≈ k(x - m): nines are linear in log-compute
    assert np.polyfit(x, cp.nines(p), 1)[0] == pytest.approx(k, rel=1e-3)


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


def test_accuracy_meek_while_nines_mighty():
    rng = np.random.default_rng(3)
    x = np.linspace(22, 26, 24)
    # small noise: over 4 decades ln ln C is nearly linear in log C, so noisy data cannot tell
    # linear_log (divergent) from log_log (constant gap) apart; exact logistic data can
    acc = 0.25 + 0.75 / (1 + np.exp(-1.0 * (x - 24))) + rng.normal(0, 0.0005, len(x))
    row = pd.Series({"metric": "acc", "source": "s", "source_version": "v", "x_axis": "compute",
                     "kind": "benchmark", "unit": "fraction", "floor": 0.25, "verdict": "meek",
                     "best_family": "logistic", "p_bounded": 0.95, "best_verdict": "meek", "reason": ""})
    pairs = cp.pairs_for_series(row, _points(x, np.clip(acc, 0.2501, 0.9999)), bootstrap=100)
    by = {p["pair"]: p for p in pairs}
    assert set(by) == {"nines", "logit"}
    assert by["logit"]["unbounded_best_verdict"] == "mighty-divergent"   # logit is linear in log C
    assert by["logit"]["unbounded_verdict"] == "mighty"
    assert "gap closes" in by["logit"]["takeaway"] and "without bound" in by["logit"]["takeaway"]


def test_elo_pair_win_rate_meek():
    rng = np.random.default_rng(4)
    x = np.linspace(22, 26, 24)
    elo = 1000 + 120 * (x - 22) + rng.normal(0, 3, len(x))
    row = pd.Series({"metric": "elo", "source": "s", "source_version": "v", "x_axis": "compute", "kind": "elo",
                     "unit": "elo", "floor": None, "verdict": "mighty", "best_family": "linear_log",
                     "p_bounded": 0.0, "best_verdict": "mighty-divergent", "reason": ""})
    pairs = {p["pair"]: p for p in cp.pairs_for_series(row, _points(x, elo), bootstrap=100)}
    assert pairs["elo"]["bounded_verdict"] == "meek"          # win-rate vs a fixed opponent saturates
    assert pairs["bt_strength"]["unbounded_best_verdict"] == "mighty-divergent"  # a power law in C


def test_counterpart_says_when_the_bounded_side_levels_off_short_of_its_limit():
    # meek-math §6: nines are mighty only if accuracy goes to 1. When the accuracy's own best fit levels off
    # at 0.8, the pair says the nines would then be bounded at -ln(1 - (0.8 - 0.25)/0.75).
    x = np.linspace(21, 27, 30)
    acc = 0.25 + 0.55 / (1 + np.exp(-1.5 * (x - 23.5)))
    row = pd.Series({"metric": "acc", "source": "s", "source_version": "v", "x_axis": "compute",
                     "kind": "benchmark", "unit": "fraction", "floor": 0.25, "verdict": "meek", "sup": 0.8,
                     "best_family": "logistic", "p_bounded": 0.95, "best_verdict": "meek", "reason": ""})
    by = {p["pair"]: p for p in cp.pairs_for_series(row, _points(x, acc), bootstrap=50)}
    bound = -math.log(1 - 0.55 / 0.75)
    assert "levels off at 0.8" in by["nines"]["takeaway"] and f"{bound:.3g}" in by["nines"]["takeaway"]
    # accuracy that reaches 1 carries no such caveat
    row1 = row.copy()
    row1["sup"] = 1.0
    by1 = {p["pair"]: p for p in cp.pairs_for_series(row1, _points(x, acc), bootstrap=50)}
    assert "levels off" not in by1["nines"]["takeaway"]
