"""Curve families: analytic Jacobians, broadcasting, asymptotics (meek-math.md §5), starts and bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.curves import FAMILIES, family
from pipeline.schema import ScalegapError

# A plausible parameter vector per family, on the axis each family lives on.
CASES = {
    "logistic": (np.linspace(20, 26, 25), np.array([0.25, 0.9, 1.3, 23.0])),
    "gompertz": (np.linspace(20, 26, 25), np.array([0.25, 0.9, 1.1, 23.0])),
    "power_law": (np.linspace(20, 26, 25), np.array([-3.0, 0.12])),
    "linear_log": (np.linspace(20, 26, 25), np.array([-1500.0, 80.0])),
    "log_log": (np.linspace(20, 26, 25), np.array([300.0, -900.0])),
    "exp_power_law": (np.linspace(0, 4, 25), np.array([-2.0, -0.4])),
    "saturating_loss": (np.linspace(18, 24, 25), np.array([1.7, 2.5, 0.15])),
    "exponential_time": (np.linspace(2019, 2025, 25), np.array([1.0, 0.6, 2022.0])),
}


def test_every_family_has_a_case():
    assert set(CASES) == set(FAMILIES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_jacobian_matches_central_differences(name):
    fam = family(name)
    x, p = CASES[name]
    analytic = fam.jacobian(x, p)
    assert analytic.shape == (len(x), len(p))
    numeric = np.empty_like(analytic)
    for i in range(len(p)):
        h = 1e-6 * max(1.0, abs(p[i]))
        up, down = p.copy(), p.copy()
        up[i] += h
        down[i] -= h
        numeric[:, i] = (fam.value(x, up) - fam.value(x, down)) / (2 * h)
    # relative to each column's size: entries near 0 carry only finite-difference noise
    scale = np.abs(numeric).max(axis=0, keepdims=True) + 1e-12
    assert np.max(np.abs(analytic - numeric) / scale) < 1e-5


@pytest.mark.parametrize("name", sorted(CASES))
def test_batched_shapes_agree_with_single(name):
    fam = family(name)
    x, p = CASES[name]
    batch = np.stack([p, p * 1.01, p * 0.99])
    values, jac = fam.value(x, batch), fam.jacobian(x, batch)
    assert values.shape == (3, len(x)) and jac.shape == (3, len(x), len(p))
    for d in range(3):
        np.testing.assert_allclose(values[d], fam.value(x, batch[d]), rtol=1e-12)
        np.testing.assert_allclose(jac[d], fam.jacobian(x, batch[d]), rtol=1e-12, atol=1e-300)


def test_asymptotics_follow_the_paper():
    # meek-math §5: bounded families have g -> 0; c ln ln C has g -> c; power laws and lines in log C -> inf
    a = family("logistic").asymptotics(CASES["logistic"][1])
    assert a.normal and a.bounded and a.sup == 0.9 and a.g_limit == 0.0
    a = family("log_log").asymptotics(CASES["log_log"][1])
    assert a.normal and not a.bounded and a.g_limit == 300.0
    for name in ("power_law", "linear_log", "exponential_time"):
        a = family(name).asymptotics(CASES[name][1])
        assert a.normal and not a.bounded and a.g_limit == math.inf, name
    a = family("exp_power_law").asymptotics(CASES["exp_power_law"][1])
    assert a.bounded and a.sup == 1.0 and a.g_limit == 0.0


def test_loss_is_described_through_its_negative():
    # -L = -(E + A C^-alpha) rises to -E: a bounded (meek) performance metric
    fam = family("saturating_loss")
    assert fam.higher_is_better is False
    a = fam.asymptotics(CASES["saturating_loss"][1])
    assert a.normal and a.bounded and a.sup == pytest.approx(-1.7) and a.g_limit == 0.0
    # a pure power law in loss (irreducible loss 0) is bounded by 0 once negated
    a = family("power_law").asymptotics(np.array([1.0, -0.05]), higher_is_better=False)
    assert a.normal and a.bounded and a.sup == 0.0


@pytest.mark.parametrize("name,p", [
    ("logistic", [0.25, 0.9, -1.0, 23.0]),      # decreasing
    ("gompertz", [0.5, 0.5, 1.0, 23.0]),        # flat
    ("power_law", [-3.0, 0.0]),
    ("linear_log", [1.0, -2.0]),
    ("log_log", [0.0, 1.0]),
    ("exp_power_law", [-1.0, 0.3]),
    ("saturating_loss", [1.7, 2.5, 0.0]),
])
def test_degenerate_parameters_are_not_normal(name, p):
    a = family(name).asymptotics(np.array(p, dtype=float))
    assert not a.normal and a.reason


def test_unknown_family_lists_the_valid_names():
    with pytest.raises(ScalegapError, match="logistic") as info:
        family("sigmoid")
    assert "saturating_loss" in str(info.value)


@pytest.mark.parametrize("name", sorted(CASES))
def test_starts_lie_inside_bounds_and_recover_the_curve(name):
    fam = family(name)
    x, p = CASES[name]
    y = fam.value(x, p)
    meta = {"floor": None, "ceiling": None, "unit": "fraction" if name in ("logistic", "gompertz") else "x"}
    lower, upper = fam.bounds(x, y, meta)
    assert np.all(lower <= upper)
    starts = fam.starts(x, y, meta)
    assert starts and all(s.shape == p.shape and np.all(np.isfinite(s)) for s in starts)
    # from the best of the starts the batched solver reaches the generating curve on noise-free data
    from pipeline.fitting import best_start

    fixed = fam.fixed(x, y, meta)
    vec, cost = best_start(fam, x, y, meta, False, iterations=300)
    scale = max(float(np.ptp(y)), 1e-12)
    assert np.max(np.abs(fam.value(x, vec) - y)) < 1e-3 * scale, (vec, p)
    assert all(vec[fam.param_names.index(k)] == v for k, v in fixed.items())


def test_logistic_ceiling_never_below_best_score():
    fam = family("logistic")
    x = np.linspace(20, 26, 20)
    y = fam.value(x, np.array([0.25, 0.95, 1.0, 24.0]))
    lower, _ = fam.bounds(x, y, {"floor": 0.25, "ceiling": 1.0, "unit": "fraction"})
    assert lower[1] == pytest.approx(y.max())
    assert fam.fixed(x, y, {"floor": 0.25, "ceiling": 1.0, "unit": "fraction"}) == {"floor": 0.25}
