"""Scoring probabilistic forecasts: CRPS, interval coverage, log score, PIT, stacking weights and conformal
recalibration. Pure (arrays and frames in, numbers out): the forecast stage and the fit's backtests call it.

Conventions. Every score is on the series' error scale (log10 of the value for horizons, the value otherwise),
negatively oriented where it is a loss (CRPS, log score as -log density: lower is better).

* CRPS from draws: E|X - y| - E|X - X'| / 2 (Gneiting & Raftery 2007), from sorted draws in O(n log n).
* CRPS from stored quantiles: the quantile function is interpolated linearly in the normal score
  z = Phi^-1(tau) between the stored levels and extended beyond the outermost ones along the last segment
  (normal tails), then CRPS = 2 * integral of the pinball loss over tau (the quantile decomposition), on a fine
  tau grid. Exact for a normal forecast; for others an approximation whose error the tests bound.
* Log score from stored quantiles: the density of that same interpolated distribution.
* Coverage of a central interval [q_(1-a)/2, q_(1+a)/2].
* Stacking (Yao, Vehtari, Simpson & Gelman 2018): weights on the simplex maximising the summed log of the
  weighted predictive densities of held-out points, by EM (each step raises the objective).
* Conformal recalibration: the factor kappa by which a central interval must be stretched about the median to
  contain a held-out point is that point's nonconformity; the ceil((n + 1) a)/n empirical quantile of those
  factors gives intervals of coverage >= a on exchangeable new points (split conformal, Vovk et al. 2005).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

QUANTILE_LEVELS = (0.025, 0.05, 0.10, 0.25, 0.5, 0.75, 0.90, 0.95, 0.975)
CENTRAL = {0.5: (0.25, 0.75), 0.8: (0.10, 0.90), 0.9: (0.05, 0.95), 0.95: (0.025, 0.975)}
COLUMNS = tuple(f"q{round(level * 1000):03d}" for level in QUANTILE_LEVELS)   # q025, q050, ..., q975


def column(level: float) -> str:
    """The stored column of a quantile level: 0.1 -> 'q100', 0.975 -> 'q975'."""
    return f"q{round(level * 1000):03d}"


# ------------------------------------------------------------------------------ from draws
def crps_draws(draws: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of each column's draws (n, X) against y (X,): E|X - y| - E|X - X'| / 2."""
    s = np.sort(np.asarray(draws, float), axis=0)
    y = np.asarray(y, float)
    n = s.shape[0]
    first = np.mean(np.abs(s - y[None, :]), axis=0)
    coef = (2 * np.arange(1, n + 1) - n - 1)[:, None]
    spread = np.sum(coef * s, axis=0) / n**2          # = E|X - X'| / 2
    return first - spread


# ------------------------------------------------------------------------------ from quantiles
def _knots(levels, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(normal scores of the levels, quantiles made non-decreasing) for (L, X) quantiles."""
    z = stats.norm.ppf(np.asarray(levels, float))
    q = np.maximum.accumulate(np.asarray(q, float), axis=0)
    return z, q


def quantile_function(levels, q: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Quantiles at `taus` (T,) of the distribution the stored quantiles (L, X) describe: linear in the normal
    score between stored levels, along the outermost segments beyond them."""
    z, q = _knots(levels, q)
    zt = stats.norm.ppf(np.asarray(taus, float))
    out = np.empty((len(zt), q.shape[1]))
    idx = np.clip(np.searchsorted(z, zt) - 1, 0, len(z) - 2)
    z0, z1 = z[idx], z[idx + 1]
    frac = ((zt - z0) / (z1 - z0))[:, None]
    out[:] = q[idx] + frac * (q[idx + 1] - q[idx])
    return out


_TAUS = (np.arange(2000) + 0.5) / 2000


def crps_quantiles(levels, q: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of the forecast the quantiles (L, X) describe, against y (X,): 2 * mean over tau of the pinball loss."""
    y = np.asarray(y, float)
    qt = quantile_function(levels, q, _TAUS)               # (T, X)
    diff = y[None, :] - qt
    pinball = np.where(diff >= 0, _TAUS[:, None] * diff, (_TAUS[:, None] - 1) * diff)
    return 2 * pinball.mean(axis=0)


def pit_quantiles(levels, q: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The forecast's CDF at y (probability integral transform) under the same interpolation."""
    z, q = _knots(levels, q)
    y = np.asarray(y, float)
    out = np.empty(len(y))
    for j in range(len(y)):
        col = q[:, j]
        if not np.all(np.isfinite(col)):
            out[j] = math.nan
            continue
        # invert the piecewise-linear map z -> q (flat segments: the point mass they imply is split evenly)
        if y[j] <= col[0]:
            slope = (col[1] - col[0]) / (z[1] - z[0])
            zj = z[0] - (col[0] - y[j]) / slope if slope > 0 else -np.inf
        elif y[j] >= col[-1]:
            slope = (col[-1] - col[-2]) / (z[-1] - z[-2])
            zj = z[-1] + (y[j] - col[-1]) / slope if slope > 0 else np.inf
        else:
            k = int(np.searchsorted(col, y[j], side="right") - 1)
            k = min(max(k, 0), len(col) - 2)
            width = col[k + 1] - col[k]
            zj = z[k] + (y[j] - col[k]) / width * (z[k + 1] - z[k]) if width > 0 else 0.5 * (z[k] + z[k + 1])
        out[j] = stats.norm.cdf(zj)
    return out


def log_score_quantiles(levels, q: np.ndarray, y: np.ndarray) -> np.ndarray:
    """-log density at y of the interpolated distribution; NaN where it is not defined (a flat segment: the
    quantiles give that stretch no width, so no density)."""
    z, q = _knots(levels, q)
    y = np.asarray(y, float)
    out = np.full(len(y), math.nan)
    for j in range(len(y)):
        col = q[:, j]
        if not np.all(np.isfinite(col)):
            continue
        k = int(np.clip(np.searchsorted(col, y[j], side="right") - 1, 0, len(col) - 2))
        width = col[k + 1] - col[k]
        if width <= 0:
            continue
        slope = (z[k + 1] - z[k]) / width                    # dz/dy on this segment (also its extension)
        zj = z[k] + (y[j] - col[k]) * slope
        out[j] = -(stats.norm.logpdf(zj) + math.log(slope))
    return out


def covered(levels, q: np.ndarray, y: np.ndarray, central: float) -> np.ndarray:
    """Whether y lies in the central `central` interval of the quantiles (L, X)."""
    lo_level, hi_level = CENTRAL[central]
    levels = list(np.round(levels, 6))
    lo, hi = q[levels.index(round(lo_level, 6))], q[levels.index(round(hi_level, 6))]
    return (y >= lo) & (y <= hi)


def score_quantiles(levels, q: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Per point: CRPS, log score, PIT and coverage at 50/80/95% of the forecast quantiles (L, X) against y."""
    y = np.asarray(y, float)
    return pd.DataFrame({"crps": crps_quantiles(levels, q, y), "log_score": log_score_quantiles(levels, q, y),
                         "pit": pit_quantiles(levels, q, y),
                         **{f"covered{round(c * 100)}": covered(levels, q, y, c) for c in (0.5, 0.8, 0.95)}})


# ------------------------------------------------------------------------------ model weights from held-out skill
def stacking_weights(log_density: np.ndarray, iterations: int = 2000, tol: float = 1e-10) -> np.ndarray:
    """Stacking weights (K,) from held-out log predictive densities (N points, K models): the simplex point
    maximising sum_i log sum_k w_k p_k(y_i). Points no model gives a finite density are left out."""
    ld = np.asarray(log_density, float)
    if ld.ndim != 2 or ld.shape[1] == 0:
        raise ValueError("log_density must be (points, models)")
    k = ld.shape[1]
    ld = np.where(np.isfinite(ld), ld, -np.inf)
    keep = np.isfinite(ld).any(axis=1)
    ld = ld[keep]
    if not len(ld):
        return np.full(k, 1.0 / k)
    dens = np.exp(ld - ld.max(axis=1, keepdims=True))
    w = np.full(k, 1.0 / k)
    for _ in range(iterations):
        r = dens * w
        r /= r.sum(axis=1, keepdims=True)
        new = r.mean(axis=0)
        if np.max(np.abs(new - w)) < tol:
            w = new
            break
        w = new
    return w / w.sum()


# ------------------------------------------------------------------------------ conformal recalibration
def stretch_needed(median: np.ndarray, lo: np.ndarray, hi: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Nonconformity of each point: the factor by which [lo, hi] must be stretched about the median to reach y
    (<= 1 when y is already inside)."""
    median, lo, hi, y = (np.asarray(a, float) for a in (median, lo, hi, y))
    with np.errstate(divide="ignore", invalid="ignore"):
        below = (median - y) / (median - lo)
        above = (y - median) / (hi - median)
    out = np.where(y < median, below, above)
    out = np.where((y == median), 0.0, out)
    return np.where(np.isnan(out), np.inf, out)


def conformal_factor(scores: np.ndarray, level: float) -> float:
    """The split-conformal stretch for nominal coverage `level` from held-out nonconformity scores."""
    s = np.sort(np.asarray(scores, float)[~np.isnan(scores)])
    n = len(s)
    if n == 0:
        return 1.0
    rank = math.ceil((n + 1) * level)
    return float(s[min(rank, n) - 1])


def recalibrate(levels, q: np.ndarray, factors: dict[float, float]) -> np.ndarray:
    """Quantiles (L, X) with each central pair stretched about the median by its factor; kept monotone."""
    levels = [round(float(v), 6) for v in levels]
    out = np.array(q, float, copy=True)
    median = out[levels.index(0.5)]
    for central, (lo_level, hi_level) in CENTRAL.items():
        f = factors.get(central)
        if f is None or not np.isfinite(f):
            continue
        i, j = levels.index(round(lo_level, 6)), levels.index(round(hi_level, 6))
        out[i] = median - f * (median - out[i])
        out[j] = median + f * (out[j] - median)
    half = levels.index(0.5)
    # stretching pairs by different factors must not let an inner quantile pass an outer one
    out[:half + 1] = np.minimum.accumulate(out[:half + 1][::-1], axis=0)[::-1]
    out[half:] = np.maximum.accumulate(out[half:], axis=0)
    return out


def central_coverage(points: pd.DataFrame, level: float) -> float:
    """Share of points (columns y and the stored quantiles) inside their central `level` interval."""
    if points is None or not len(points):
        return math.nan
    lo, hi = CENTRAL[level]
    return float(np.mean((points["y"] >= points[column(lo)]) & (points["y"] <= points[column(hi)])))


DISTANCE_EDGES = (0.25,)          # distance past the fitted data over the fitted span: <= 0.25 | > 0.25
DISTANCE_LABELS = ("<= 0.25", "> 0.25")


def distance_bin(beyond_span) -> np.ndarray:
    """Index of each point's extrapolation-distance bin (distance past the fitted x over the fitted span)."""
    d = np.nan_to_num(np.asarray(beyond_span, float), nan=0.0)
    return np.searchsorted(np.asarray(DISTANCE_EDGES), d, side="left")


def _factors(points: pd.DataFrame) -> dict[float, float]:
    out = {}
    for level, (lo_level, hi_level) in CENTRAL.items():
        need = stretch_needed(points["q500"], points[column(lo_level)], points[column(hi_level)], points["y"])
        out[level] = conformal_factor(need, level)
    return out


def conformal_calibration(points: pd.DataFrame, groups: pd.Series, distance=None, min_points: int = 30,
                          min_groups: int = 3) -> tuple[dict[int, dict[float, float]], pd.DataFrame]:
    """Split-conformal stretch factors per central level and extrapolation-distance bin (`distance`: per point,
    distance past the fitted data over its span; far extrapolations miss more), pooled over the held-out points
    (columns y, q500 and the stored quantiles) of several series (`groups`, one label per point); a bin with fewer
    than `min_points` points or `min_groups` series takes the factors of all points. Also a table of what they
    do: coverage as fitted, and coverage when each series' points are judged by factors fitted on the other
    series only (leave one series out: the honest estimate). Returns ({bin: {level: factor}}, table); no factors
    when all points together are too few."""
    n_groups = int(groups.nunique()) if len(points) else 0
    if len(points) < min_points or n_groups < min_groups:
        return {}, pd.DataFrame([{"beyond_span": "all", "nominal": level, "factor": 1.0, "n": len(points),
                                  "n_series": n_groups, "coverage_model": central_coverage(points, level),
                                  "coverage_calibrated": math.nan,
                                  "method": "none: too few backtest points to recalibrate on"} for level in CENTRAL])
    labels = groups.to_numpy()
    bins = distance_bin(distance) if distance is not None else np.zeros(len(points), int)
    pooled = _factors(points)
    factors, rows = {}, []
    recalibrated = loso_recalibrated(points, groups, distance, min_points, min_groups)
    for b, label in enumerate(DISTANCE_LABELS if distance is not None else ("all",)):
        here = bins == b
        enough = here.sum() >= min_points and len(np.unique(labels[here])) >= min_groups
        factors[b] = _factors(points[here]) if enough else pooled
        for level in CENTRAL:
            rows.append({"beyond_span": label, "nominal": level, "factor": factors[b][level], "n": int(here.sum()),
                         "n_series": int(len(np.unique(labels[here]))),
                         "coverage_model": central_coverage(points[here], level),
                         "coverage_calibrated": central_coverage(recalibrated[here], level),
                         "method": ("split conformal on the model-averaged backtest points of every series, "
                                    + ("by extrapolation distance" if enough else "all distances pooled")
                                    + "; coverage_calibrated: each series judged by factors fitted without it")})
    return factors, pd.DataFrame(rows)


def recalibrate_by_distance(levels, q: np.ndarray, factors: dict[int, dict[float, float]], beyond_span
                            ) -> np.ndarray:
    """`recalibrate` each point (column of q) with the factors of its distance bin."""
    out = np.array(q, float, copy=True)
    if not factors:
        return out
    bins = distance_bin(beyond_span) if len(factors) > 1 else np.zeros(q.shape[1], int)
    for b in np.unique(bins):
        cols = bins == b
        out[:, cols] = recalibrate(levels, q[:, cols], factors.get(int(b), factors[max(factors)]))
    return out


def loso_recalibrated(points: pd.DataFrame, groups: pd.Series, distance=None, min_points: int = 30,
                      min_groups: int = 3) -> pd.DataFrame:
    """The points' quantiles stretched by conformal factors fitted on the other series only, in the points' own
    distance bins (for scoring what recalibration does out of sample)."""
    out = points.copy()
    labels = groups.to_numpy()
    bins = distance_bin(distance) if distance is not None else np.zeros(len(points), int)
    cols = [column(level) for level in QUANTILE_LEVELS]
    for label in np.unique(labels):
        mine = labels == label
        others = ~mine
        pooled = _factors(points[others])
        per_bin = {}
        for b in np.unique(bins[mine]):
            pool = others & (bins == b)
            enough = pool.sum() >= min_points and len(np.unique(labels[pool])) >= min_groups
            per_bin[int(b)] = _factors(points[pool]) if enough else pooled
        q = points.loc[mine, cols].to_numpy().T
        fixed = np.empty_like(q)
        for b, f in per_bin.items():
            sel = bins[mine] == b
            fixed[:, sel] = recalibrate(QUANTILE_LEVELS, q[:, sel], f)
        out.loc[mine, cols] = fixed.T
    return out
