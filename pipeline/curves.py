"""Curve families: one class per family with its formula, analytic Jacobian, bounds, data-driven
starting points and its behaviour as compute grows (meek-math.md §5).

x is log10 training FLOP for compute fits, a decimal year for release-date fits (exponential
compute growth makes years proportional to log-compute, so the asymptotics read the same), and
log10 k for inference-compute fits. `value(x, p)` broadcasts: p of shape (P,) gives (N,), p of
shape (D, P) gives (D, N). For metrics where lower is better (loss), the performance metric is the
negative: `asymptotics(p, higher_is_better=False)` describes -f.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.errors import ScalegapError

LN10 = math.log(10.0)


@dataclass(frozen=True)
class Asymptotics:
    normal: bool      # eventually weakly increasing: a performance metric in the paper's sense
    bounded: bool     # bounded above as compute grows
    sup: float        # the bound (math.inf if unbounded)
    g_limit: float    # lim f'(C) C ln C = lim dF/d(ln ln C): 0, a finite c, or math.inf (Thm 2.5)
    reason: str


def _cols(p: np.ndarray) -> list[np.ndarray]:
    """Parameters as columns broadcastable against x: (P,) -> scalars, (D, P) -> (D, 1)."""
    p = np.asarray(p, dtype=float)
    return [p[..., i, None] if p.ndim == 2 else p[i] for i in range(p.shape[-1])]


def _stack(parts: list[np.ndarray], shape: tuple) -> np.ndarray:
    return np.stack([np.broadcast_to(part, shape) for part in parts], axis=-1)


def _not_normal(reason: str) -> Asymptotics:
    return Asymptotics(False, False, math.nan, math.nan, reason)


class Family:
    name: str = ""
    param_names: tuple[str, ...] = ()
    x_axis: str = "compute"
    bounded_family: bool = False
    # False for loss-like families: then the performance metric is -value, and asymptotics describe -f
    higher_is_better: bool = True

    def value(self, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def jacobian(self, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def bounds(self, x, y, meta) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def starts(self, x, y, meta) -> list[np.ndarray]:
        raise NotImplementedError

    def fixed(self, x, y, meta) -> dict[str, float]:
        """Parameters held fixed for this series (e.g. a known chance-level floor)."""
        return {}

    def asymptotics(self, p, higher_is_better: bool = True) -> Asymptotics:
        raise NotImplementedError

    def applies(self, y: np.ndarray) -> bool:
        return True


class Logistic(Family):
    name, param_names, bounded_family = "logistic", ("floor", "ceiling", "k", "m"), True

    def value(self, x, p):
        lo, hi, k, m = _cols(p)
        return lo + (hi - lo) / (1.0 + np.exp(-k * (x - m)))

    def jacobian(self, x, p):
        lo, hi, k, m = _cols(p)
        s = 1.0 / (1.0 + np.exp(-k * (x - m)))
        ds = s * (1 - s)
        shape = np.broadcast(x, s).shape
        return _stack([1 - s, s, (hi - lo) * ds * (x - m), -(hi - lo) * ds * k], shape)

    def fixed(self, x, y, meta):
        out = {}
        if meta.get("floor") is not None and np.isfinite(meta["floor"]):
            out["floor"] = float(meta["floor"])
        if meta.get("unit") == "elo" and meta.get("ceiling") is not None and np.isfinite(meta["ceiling"]):
            out["ceiling"] = float(meta["ceiling"])  # Elo vs perfect play: the ceiling is 0 by construction
        return out

    def bounds(self, x, y, meta):
        """The ceiling runs from the best value seen up to the metric's known maximum (a fraction: 1); for a
        metric open above, up to a stated prior of ten times the observed spread above the best value."""
        span = max(np.ptp(y), 1e-9)
        range_hi = meta.get("range_hi")
        hi_max = range_hi if range_hi is not None and np.isfinite(range_hi) else y.max() + 10 * span
        lo_min = y.min() - 10 * span
        if meta.get("unit") == "fraction":
            lo_min = 0.0
        elif meta.get("kind") == "horizon":
            lo_min = 1e-3 * y.min()  # fitted on log10(y): the floor must stay positive
        # the ceiling is never below the best observed score
        lower = np.array([lo_min, y.max(), 1e-3 / max(np.ptp(x), 1e-9), x.min() - 3 * np.ptp(x)])
        upper = np.array([y.min(), max(hi_max, y.max() + 1e-9), 50.0 / max(np.ptp(x), 1e-9), x.max() + 3 * np.ptp(x)])
        return lower, upper

    def starts(self, x, y, meta):
        lo = meta.get("floor") if meta.get("floor") is not None and np.isfinite(meta.get("floor")) else y.min()
        range_hi = meta.get("range_hi")
        hi = min(range_hi, y.max() + 0.1 * np.ptp(y)) if range_hi is not None and np.isfinite(range_hi) else \
            y.max() + 0.1 * np.ptp(y)
        scale = 4.0 / max(np.ptp(x), 1e-9)
        mid = float(np.median(x))
        return [np.array([lo, hi, k, m]) for k in (scale, 3 * scale) for m in (mid, np.quantile(x, 0.8), x.max() + 0.5 * np.ptp(x))]

    def asymptotics(self, p, higher_is_better=True):
        lo, hi, k, _ = (float(v) for v in p)
        if not (k > 0 and hi > lo):
            return _not_normal(f"logistic with slope {k:.3g} and range {hi - lo:.3g} is flat or decreasing")
        return Asymptotics(True, True, hi, 0.0, f"logistic: bounded above by its ceiling {hi:.4g}; g -> 0 (Thm 2.4)")


class Gompertz(Family):
    name, param_names, bounded_family = "gompertz", ("floor", "ceiling", "k", "m"), True

    def value(self, x, p):
        lo, hi, k, m = _cols(p)
        return lo + (hi - lo) * np.exp(-np.exp(-k * (x - m)))

    def jacobian(self, x, p):
        lo, hi, k, m = _cols(p)
        e = np.exp(-k * (x - m))
        g = np.exp(-e)
        shape = np.broadcast(x, g).shape
        return _stack([1 - g, g, (hi - lo) * g * e * (x - m), -(hi - lo) * g * e * k], shape)

    fixed = Logistic.fixed
    bounds = Logistic.bounds
    starts = Logistic.starts

    def asymptotics(self, p, higher_is_better=True):
        lo, hi, k, _ = (float(v) for v in p)
        if not (k > 0 and hi > lo):
            return _not_normal(f"Gompertz with rate {k:.3g} and range {hi - lo:.3g} is flat or decreasing")
        return Asymptotics(True, True, hi, 0.0, f"Gompertz: bounded above by {hi:.4g}; g -> 0 (Thm 2.4)")


class PowerLaw(Family):
    """A * C^g, written as 10**(log10_A + g*x)."""

    name, param_names = "power_law", ("log10_A", "g")

    def value(self, x, p):
        a, g = _cols(p)
        return 10.0 ** (a + g * x)

    def jacobian(self, x, p):
        v = self.value(x, p)
        a, g = _cols(p)
        shape = v.shape
        return _stack([LN10 * v, LN10 * v * x], shape)

    def applies(self, y):
        return bool(np.all(y > 0))

    def bounds(self, x, y, meta):
        return np.array([-300.0, -5.0]), np.array([300.0, 5.0])

    def starts(self, x, y, meta):
        g, a = np.polyfit(x, np.log10(y), 1)
        return [np.array([a, g]), np.array([np.log10(y).mean() - 0.1 * x.mean(), 0.1])]

    def asymptotics(self, p, higher_is_better=True):
        a, g = (float(v) for v in p)
        if higher_is_better:
            if g <= 0:
                return _not_normal(f"power law with exponent {g:.3g} <= 0 does not increase with compute")
            return Asymptotics(True, False, math.inf, math.inf, f"power law C^{g:.3g}: unbounded; g = {g:.3g}·C^g·ln C -> inf")
        if g >= 0:
            return _not_normal(f"loss power law with exponent {g:.3g} >= 0 does not fall with compute")
        return Asymptotics(True, True, 0.0, 0.0, f"-loss = -A·C^{g:.3g} rises to 0: bounded; g -> 0 (Cor. A.6)")


class LinearLog(Family):
    name, param_names = "linear_log", ("c0", "c")

    def value(self, x, p):
        c0, c = _cols(p)
        return c0 + c * x

    def jacobian(self, x, p):
        c0, c = _cols(p)
        shape = np.broadcast(x, c0 + c * x).shape
        return _stack([np.ones(shape), np.broadcast_to(x, shape)], shape)

    def bounds(self, x, y, meta):
        return np.array([-np.inf, -np.inf]), np.array([np.inf, np.inf])

    def starts(self, x, y, meta):
        c, c0 = np.polyfit(x, y, 1)
        return [np.array([c0, c])]

    def asymptotics(self, p, higher_is_better=True):
        c = float(p[1]) * (1 if higher_is_better else -1)
        if c <= 0:
            return _not_normal(f"slope {c:.3g} per decade: not increasing")
        return Asymptotics(True, False, math.inf, math.inf, f"linear in log-compute ({c:.4g} per decade): g = c·ln C -> inf")


class LogLog(Family):
    """c * ln(ln C) + d: the meek/mighty boundary (constant gap c * ln(ln b / ln a))."""

    name, param_names = "log_log", ("c", "d")

    def value(self, x, p):
        c, d = _cols(p)
        return c * np.log(np.maximum(x, 1e-9) * LN10) + d

    def jacobian(self, x, p):
        c, d = _cols(p)
        u = np.log(np.maximum(x, 1e-9) * LN10)
        shape = np.broadcast(u, c * u).shape
        return _stack([np.broadcast_to(u, shape), np.ones(shape)], shape)

    def applies(self, y):
        return True

    def bounds(self, x, y, meta):
        return np.array([-np.inf, -np.inf]), np.array([np.inf, np.inf])

    def starts(self, x, y, meta):
        c, d = np.polyfit(np.log(x * LN10), y, 1)
        return [np.array([c, d])]

    def asymptotics(self, p, higher_is_better=True):
        c = float(p[0]) * (1 if higher_is_better else -1)
        if c <= 0:
            return _not_normal(f"coefficient {c:.3g} on ln ln C: not increasing")
        return Asymptotics(True, False, math.inf, c, f"c·ln ln C with c = {c:.4g}: unbounded, g -> c (constant gap, Thm 2.5)")


class ExpPowerLaw(Family):
    """pass@k = exp(a * k^b), a, b < 0 (Brown et al. 2024); x = log10 k."""

    name, param_names, x_axis, bounded_family = "exp_power_law", ("a", "b"), "inference", True

    def value(self, x, p):
        a, b = _cols(p)
        return np.exp(a * 10.0 ** (b * x))

    def jacobian(self, x, p):
        a, b = _cols(p)
        kb = 10.0 ** (b * x)
        v = np.exp(a * kb)
        return _stack([v * kb, v * a * kb * LN10 * x], v.shape)

    def applies(self, y):
        return bool(np.all((y > 0) & (y <= 1)))

    def bounds(self, x, y, meta):
        return np.array([-50.0, -5.0]), np.array([-1e-9, -1e-9])

    def starts(self, x, y, meta):
        return [np.array([np.log(max(y.min(), 1e-6)), -0.3]), np.array([-1.0, -1.0])]

    def asymptotics(self, p, higher_is_better=True):
        a, b = (float(v) for v in p)
        if not (a < 0 and b < 0):
            return _not_normal(f"exp(a·k^b) with a = {a:.3g}, b = {b:.3g} is not increasing in k")
        return Asymptotics(True, True, 1.0, 0.0, "exponentiated power law: bounded by 1; g -> 0 (Thm 2.4)")


class SaturatingLoss(Family):
    """L = E + A * C^-alpha, written E + 10**(log10_A - alpha*x). The performance metric is -L."""

    name, param_names, bounded_family = "saturating_loss", ("E", "log10_A", "alpha"), True
    higher_is_better = False  # sign convention: asymptotics describe -L (normal, bounded by -E, g -> 0)

    def value(self, x, p):
        e, a, alpha = _cols(p)
        return e + 10.0 ** (a - alpha * x)

    def jacobian(self, x, p):
        e, a, alpha = _cols(p)
        t = 10.0 ** (a - alpha * x)
        return _stack([np.ones(t.shape), LN10 * t, -LN10 * t * np.broadcast_to(x, t.shape)], t.shape)

    def applies(self, y):
        return bool(np.all(y > 0))

    def bounds(self, x, y, meta):
        return np.array([0.0, -50.0, 1e-4]), np.array([y.min(), 50.0, 3.0])

    def starts(self, x, y, meta):
        out = []
        for frac in (0.5, 0.8, 0.95):
            e = frac * y.min()
            slope, icpt = np.polyfit(x, np.log10(y - e), 1)
            out.append(np.array([e, icpt, max(-slope, 1e-3)]))
        return out

    def asymptotics(self, p, higher_is_better=False):
        e, a, alpha = (float(v) for v in p)
        if alpha <= 0:
            return _not_normal(f"loss exponent {alpha:.3g} <= 0: loss does not fall with compute")
        return Asymptotics(True, True, -e, 0.0,
                           f"-loss rises to -E = {-e:.4g} (irreducible loss E): bounded; g -> 0 (Cor. A.6)")


class ExponentialTime(Family):
    """value(t) = 10**log10_v0 * 2**((t - t0)/doubling_years); t0 is fixed at the data's median year."""

    name, param_names, x_axis = "exponential_time", ("log10_v0", "doubling_years", "t0"), "date"

    def value(self, x, p):
        a, d, t0 = _cols(p)
        return 10.0 ** a * 2.0 ** ((x - t0) / d)

    def jacobian(self, x, p):
        a, d, t0 = _cols(p)
        v = self.value(x, p)
        ln2 = math.log(2.0)
        return _stack([LN10 * v, -v * ln2 * (x - t0) / d**2, -v * ln2 / d], v.shape)

    def applies(self, y):
        return bool(np.all(y > 0))

    def fixed(self, x, y, meta):
        return {"t0": float(np.round(np.median(x), 2))}

    def bounds(self, x, y, meta):
        return np.array([-300.0, 0.02, -np.inf]), np.array([300.0, 100.0, np.inf])

    def starts(self, x, y, meta):
        t0 = float(np.round(np.median(x), 2))
        slope, icpt = np.polyfit(x - t0, np.log10(y), 1)
        d = math.log10(2) / slope if slope > 1e-6 else 1.0
        return [np.array([icpt, min(max(d, 0.05), 50.0), t0])]

    def asymptotics(self, p, higher_is_better=True):
        d = float(p[1])
        if d <= 0:
            return _not_normal("halving, not doubling")
        return Asymptotics(True, False, math.inf, math.inf,
                           f"doubles every {d * 12:.3g} months: a power law in exponentially growing compute; g -> inf")


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Logistic(), Gompertz(), PowerLaw(), LinearLog(), LogLog(), ExpPowerLaw(), SaturatingLoss(), ExponentialTime())}


def family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ScalegapError(f"unknown curve family {name!r}. Fix: use one of {', '.join(FAMILIES)}") from None
