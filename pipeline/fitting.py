"""Fitting engine: series selection, lmfit point fits, batched bootstrap, model selection, backtests.

Which families are fitted to which series (x = log10 FLOP for compute, decimal year for date). One error
model per series, the same for all its families, so Akaike weights compare shapes, not error models:

| series                              | residuals | families                                           |
|-------------------------------------|-----------|----------------------------------------------------|
| fraction (or other bounded range)   | linear    | logistic, gompertz (ceiling between the best value |
|                                     |           | seen and the known maximum)                        |
| index (ECI) / Elo vs compute        | linear    | logistic, gompertz, linear_log, log_log            |
| horizon (minutes) vs compute        | log10     | power_law, logistic, gompertz                      |
| loss vs compute                     | linear    | saturating_loss, power_law (performance = -loss)   |
| horizon vs release date             | log10     | exponential_time, logistic                         |
| open-range metrics vs release date  | linear    | logistic, linear_log                               |

Families that would leave a metric's known range (pipeline.ranges: a fraction above 1) are not fitted to
it. Rows with `value_lo`/`value_hi` are weighted by the inverse variance those imply (relative weights:
the residual scale is still estimated).

Loss: families describe L itself; the performance metric is -L (curves.SaturatingLoss.higher_is_better
is False), so its asymptotics say -L is normal and bounded above by -E.

Uncertainty: >= 1000 bootstrap draws per (series, family), the generator seeded by (seed, hash of the
series key); whole clusters (model family / organisation) are resampled, rows when a series has fewer
than MIN_POINTS clusters. fit_bands holds a band for the mean curve (mean_*) and a wider one for a new
observation (pred_*: the mean curve plus residual noise).

Selection: AICc and BIC under the series' one likelihood, Akaike weights from AICc. Every family is
bootstrapped on the same resamples, so each draw has its own Akaike weights: P(bounded) is their bounded
share averaged over draws (Buckland et al. 1997), leaving out family draws that do not converge or do not
increase (those are counted and reported, never read as unbounded). The selection is `decisive` only
if the best family carries >= 0.6 of the weight and P(bounded) is not between 0.2 and 0.8.

Backtests: rolling origin at the 60/70/80% quantiles of release date (compute when < 60% of rows have
dates): MAE, signed bias, coverage of the 80% and 95% prediction intervals; `undercovers` flags a family
whose mean coverage is more than 0.15 below nominal.

Bootstrap draws are cluster-resampling weights (how many times each row is drawn), so one batched
Levenberg–Marquardt solve over all draws replaces a loop of fits; lmfit gives the point fit and the
report users expect, and tests check the two agree.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import dataclass, field

import lmfit
import numpy as np
import pandas as pd
from scipy import special, stats

from pipeline import scoring
from pipeline.curves import FAMILIES, Family
from pipeline.ranges import KnownRange, known_range
from pipeline.schema import decimal_year

MIN_POINTS = 5
GRID_POINTS = 60
DECISIVE_WEIGHT = 0.6


@dataclass
class Series:
    metric: str
    source: str
    source_version: str
    x_axis: str
    kind: str
    unit: str
    floor: float | None
    ceiling: float | None
    frame: pd.DataFrame = field(repr=False)   # model, x, y, value_lo, value_hi, release_year, cluster, x_sd
    models: str = "all"                       # all | frontier (date trends on record-setting models only)
    n_models: int = 0                         # models of the series before a frontier selection

    @property
    def key(self) -> dict:
        return {"metric": self.metric, "source": self.source, "source_version": self.source_version,
                "x_axis": self.x_axis}

    @property
    def higher_is_better(self) -> bool:
        return self.kind != "loss"

    @property
    def log_response(self) -> bool:
        """Residuals of log10(y)? One error model per series, the same for all its families: log10 for horizons,
        whose spread grows with their size, the values themselves for every other kind."""
        return self.kind == "horizon"

    @property
    def range(self) -> KnownRange:
        return known_range(self.kind, self.unit, self.floor, self.ceiling)

    @property
    def meta(self) -> dict:
        r = self.range
        return {"floor": self.floor, "ceiling": self.ceiling, "unit": self.unit, "kind": self.kind,
                "range_lo": r.lo, "range_hi": r.hi}

    def _widths(self, lo, hi) -> np.ndarray:
        lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        with np.errstate(all="ignore"):
            return np.log10(hi) - np.log10(lo) if self.log_response else hi - lo

    def _raw_weights(self) -> tuple[np.ndarray, bool]:
        """(1 / width^2 of each row's interval, the median where a row has none; whether intervals are used)."""
        f = self.frame
        width = self._widths(f["value_lo"], f["value_hi"])
        ok = np.isfinite(width) & (width > 0)
        w = np.ones(len(f))
        if ok.sum() < 2:
            return w, False
        w[ok] = 1.0 / width[ok] ** 2
        w[~ok] = np.median(w[ok])
        return w, True

    @property
    def obs_weights(self) -> np.ndarray:
        """Relative inverse-variance weights from value_lo/value_hi (1 where a row has no interval)."""
        w, used = self._raw_weights()
        return w / w.mean() if used else w

    def noise_factor(self, lo, hi) -> np.ndarray:
        """Factor on the residual scale for new points with intervals [lo, hi]: the fit gives row i the residual
        variance sigma^2 / w_i, so a new point's noise is sigma / sqrt(w_new) on the same relative scale (the
        median row's where a point has no interval; 1 everywhere when the series carries no intervals)."""
        w, used = self._raw_weights()
        n = len(np.atleast_1d(lo))
        if not used:
            return np.ones(n)
        width = self._widths(lo, hi)
        ok = np.isfinite(width) & (width > 0)
        w_new = np.where(ok, 1.0 / np.where(ok, width, 1.0) ** 2, np.median(w))
        return np.sqrt(w.mean() / w_new)

    @property
    def x_sd(self) -> np.ndarray:
        """sd of each row's x from its compute's stated uncertainty (0: exact, or not on a compute axis)."""
        if "x_sd" not in self.frame:
            return np.zeros(len(self.frame))
        return np.nan_to_num(self.frame["x_sd"].to_numpy(dtype=float), nan=0.0)

    @property
    def label(self) -> str:
        text = f"{self.metric} [{self.source}@{self.source_version}] vs {self.x_axis}"
        if self.models == "frontier":
            text += f" (frontier: {len(self.frame)} of {self.n_models} models set a record when released)"
        return text

    def seed_offset(self) -> int:
        text = json.dumps(self.key, sort_keys=True).encode()
        return int.from_bytes(hashlib.sha256(text).digest()[:4], "little")


def families_for(series: Series) -> list[str]:
    """The families that can describe the series without leaving its known range."""
    bounded_range = series.kind != "loss" and series.range.bounded_performance
    if series.x_axis == "inference":
        if bounded_range:
            return ["exp_power_law", "logistic", "gompertz"]
        return ["linear_log", "log_log", "power_law"]
    if bounded_range:
        return ["logistic", "gompertz"]
    if series.x_axis == "date":
        return ["exponential_time", "logistic"] if series.kind == "horizon" else ["logistic", "linear_log"]
    if series.kind == "loss":
        return ["saturating_loss", "power_law"]
    if series.kind == "horizon":
        return ["power_law", "logistic", "gompertz"]
    return ["logistic", "gompertz", "linear_log", "log_log"]


def on_axis(part: pd.DataFrame, x_axis: str) -> tuple[pd.DataFrame, np.ndarray]:
    """(the observation rows placed on `x_axis`, their x): log10 FLOP, decimal year or log10 inference budget."""
    if x_axis == "compute":
        part = part[part["train_flop"].notna() & (part["train_flop"] > 0)]
        return part, np.log10(part["train_flop"].to_numpy(dtype=float))
    if x_axis == "inference":  # log10 of the inference budget (samples k), paper §4
        budget = part["inference_budget"] if "inference_budget" in part else pd.Series(np.nan, index=part.index)
        part = part[budget.notna() & (budget > 0)]
        return part, (np.log10(part["inference_budget"].to_numpy(dtype=float)) if len(part) else np.array([]))
    part = part[part["release_date"].notna()]
    return part, (decimal_year(part["release_date"]) if len(part) else np.array([]))


# Errors in variables for training compute. Epoch grades each estimate Confident / Likely / Speculative; we read
# the grades as 90% intervals of a factor 3, 10 and 30 either way (Unknown and Unverified as Speculative): our
# reading of the grades, to be checked against Epoch's documentation, and roughly what the three models with
# stated lower and upper bounds in Epoch's frontier file show (Likely: x2.3 either way; Speculative: x17).
# A source's own interval (train_flop_lo / train_flop_hi, read as 90%) wins over the grade; a row stating
# neither is taken as exact.
COMPUTE_SPREAD_90 = {"confident": 3.0, "likely": 10.0, "speculative": 30.0, "unknown": 30.0, "unverified": 30.0}
Z90 = float(stats.norm.ppf(0.95))
_CONFIDENCE = r"[Cc]onfidence:\s*([A-Za-z]+)"


def compute_sd(part: pd.DataFrame) -> np.ndarray:
    """sd of log10 training compute per observation row, from its stated interval or its confidence grade."""
    sd = np.zeros(len(part))
    if "train_flop_note" in part:
        grade = part["train_flop_note"].astype("string").str.extract(_CONFIDENCE, expand=False).str.lower()
        factor = grade.map(COMPUTE_SPREAD_90).to_numpy(dtype=float)
        sd = np.where(np.isfinite(factor), np.log10(np.where(np.isfinite(factor), factor, 1.0)) / Z90, 0.0)
    if "train_flop_lo" in part and "train_flop_hi" in part:
        lo, hi = part["train_flop_lo"].to_numpy(dtype=float), part["train_flop_hi"].to_numpy(dtype=float)
        ok = np.isfinite(lo) & np.isfinite(hi) & (lo > 0) & (hi > lo)
        with np.errstate(all="ignore"):
            sd = np.where(ok, (np.log10(hi) - np.log10(lo)) / (2 * Z90), sd)
    return sd


def compute_jitter(series: Series, draws: int, rng: np.random.Generator) -> np.ndarray | None:
    """(draws, N) x of every bootstrap draw, each row's compute redrawn from its uncertainty; None (and no random
    numbers used) when every row's compute is exact."""
    sd = series.x_sd
    if draws <= 0 or not (sd > 0).any():
        return None
    return series.frame["x"].to_numpy(float)[None, :] + sd[None, :] * rng.standard_normal((draws, len(sd)))


def frontier_mask(dates, values, higher_is_better: bool = True) -> np.ndarray:
    """The models that set a new record when released: better than every model released strictly before them
    (the first release is a record; models released the same day are each compared with the earlier ones)."""
    dates = pd.to_datetime(pd.Series(dates)).to_numpy()
    v = np.asarray(values, float) * (1.0 if higher_is_better else -1.0)
    known = ~pd.isna(dates) & np.isfinite(v)
    keep = np.zeros(len(v), bool)
    order = np.argsort(np.where(known, dates, np.datetime64("NaT")), kind="stable")
    best, i = -np.inf, 0
    order = [j for j in order if known[j]]
    while i < len(order):
        day = dates[order[i]]
        same = [j for j in order[i:] if dates[j] == day]
        for j in same:
            keep[j] = v[j] > best
        best = max(best, max(v[j] for j in same))
        i += len(same)
    return keep


def series_from_frame(frame: pd.DataFrame, x_axis: str, skipped: list[str] | None = None,
                      frontier_kinds: tuple[str, ...] = ()) -> list[Series]:
    """Observations (store columns) -> series, one per (metric, source, source_version). Date series of a kind
    in `frontier_kinds` keep only the models that set a record when released (`frontier_mask`), as METR fits
    its horizon trend on state-of-the-art models."""
    out = []
    for (metric, source, version), part in frame.groupby(["metric", "source", "source_version"], sort=True):
        part, x = on_axis(part, x_axis)
        n_models, models = len(part), "all"
        if x_axis == "date" and len(part) and part["kind"].iloc[0] in frontier_kinds:
            keep = frontier_mask(part["release_date"], part["value"], part["kind"].iloc[0] != "loss")
            part, x, models = part[keep], x[keep], "frontier"
        if len(part) < MIN_POINTS:
            if skipped is not None and len(part):
                skipped.append(f"{metric} [{source}@{version}] vs {x_axis}: {len(part)} point(s) with "
                               f"{ {'compute': 'train_flop', 'inference': 'inference_budget'}.get(x_axis, 'release_date')}"
                               + (" that set a record when released" if models == "frontier" else "")
                               + f", fewer than {MIN_POINTS}")
            continue
        release_year = decimal_year(part["release_date"])
        cluster = part["cluster"].fillna(part["model"]) if "cluster" in part else part["model"]
        sub = pd.DataFrame({"model": part["model"].to_numpy(), "x": x, "y": part["value"].to_numpy(dtype=float),
                            "value_lo": part["value_lo"].to_numpy(dtype=float), "value_hi": part["value_hi"].to_numpy(dtype=float),
                            "release_year": release_year, "cluster": cluster.astype(str).to_numpy(),
                            "x_sd": compute_sd(part) if x_axis == "compute" else np.zeros(len(part))})
        sub = sub.sort_values(["x", "model"]).reset_index(drop=True)
        first = part.iloc[0]
        floor = first["floor"] if pd.notna(first["floor"]) else None
        ceiling = first["ceiling"] if pd.notna(first["ceiling"]) else None
        out.append(Series(metric, source, version, x_axis, first["kind"], first["unit"], floor, ceiling, sub,
                          models, n_models))
    return out


def _newest_copies(frame: pd.DataFrame, versions: pd.DataFrame, skipped: list[str] | None) -> pd.DataFrame:
    """A changed copy of a file is stored as `label@sha8` beside `label`; fits use the newest copy of each label
    (older copies stay stored for provenance). Differently labelled releases (METR v1 and v1.1) are all fitted."""
    if frame.empty or versions.empty:
        return frame
    versions = versions.assign(label=versions["source_version"].str.split("@").str[0])
    newest = versions.sort_values("retrieved_at").groupby(["source", "label"]).tail(1)
    old = versions[~versions.set_index(["source", "source_version"]).index.isin(
        newest.set_index(["source", "source_version"]).index)]
    if old.empty:
        return frame
    if skipped is not None:
        latest = dict(zip(zip(newest["source"], newest["label"], strict=True), newest["source_version"], strict=True))
        for row in old.itertuples():
            skipped.append(f"{row.source}@{row.source_version}: superseded by the newer copy "
                           f"{row.source}@{latest[(row.source, row.label)]}")
    stale = frame.set_index(["source", "source_version"]).index.isin(old.set_index(["source", "source_version"]).index)
    return frame[~stale]


# ------------------------------------------------------------------------------ solvers
def _residuals(fam: Family, x, y, p, log_response: bool):
    v = fam.value(x, p)
    if log_response:
        return np.log10(np.maximum(v, 1e-300)) - np.log10(y)
    return v - y


def _jac(fam: Family, x, p, log_response: bool):
    j = fam.jacobian(x, p)
    if log_response:
        v = fam.value(x, p)
        j = j / (np.maximum(v, 1e-300) * math.log(10))[..., None]
    return j


def batched_lm(fam: Family, x, y, weights, p0, free, lower, upper, log_response=False, iterations=100, tol=1e-8):
    """Weighted Levenberg–Marquardt for D problems at once. weights: (D, N); p0: (P,) or (D, P); x: (N,), or (D, N)
    when each problem has its own x (compute drawn from its uncertainty). Bounds by clipping each step. Only
    problems still iterating are computed (the active set).
    Returns (params (D, P), converged (D,), weighted RSS (D,))."""
    weights = np.asarray(weights, dtype=float)
    d = weights.shape[0]
    p = np.array(np.broadcast_to(p0, (d, len(free))), dtype=float)
    idx = np.flatnonzero(free)
    lo, hi = np.asarray(lower, float)[idx], np.asarray(upper, float)[idx]
    lam = np.full(d, 1e-3)
    eye = np.eye(len(idx))

    x = np.asarray(x, float)
    per_problem = x.ndim == 2

    def cost_of(params, w, xs=x):
        with np.errstate(all="ignore"):
            r = _residuals(fam, xs, y, params, log_response)
            c = np.sum(w * r**2, axis=1)
        return np.where(np.isfinite(c), c, np.inf), r

    cost, _ = cost_of(p, weights)
    done = np.zeros(d, dtype=bool)
    for _ in range(iterations):
        act = np.flatnonzero(~done)
        if not len(act):
            break
        pa, wa = p[act], weights[act]
        xa = x[act] if per_problem else x
        with np.errstate(all="ignore"):
            r = _residuals(fam, xa, y, pa, log_response)
            j = _jac(fam, xa, pa, log_response)[..., idx]                 # (A, N, F)
            jw = j * wa[..., None]
            a = np.einsum("dnf,dng->dfg", jw, j)
            g = np.einsum("dnf,dn->df", jw, r)
            # a parameter on a bound that the descent direction (-g) pushes outward is held there
            # (projected step); clipping alone makes LM crawl along the bound
            pf = pa[:, idx]
            pinned = ((pf <= lo + 1e-12 * (1 + np.abs(lo))) & (g > 0)) | ((pf >= hi - 1e-12 * (1 + np.abs(hi))) & (g < 0))
            if pinned.any():
                keep = ~pinned
                a = a * keep[:, :, None] * keep[:, None, :] + pinned[:, :, None] * eye
                g = np.where(pinned, 0.0, g)
            diag = np.einsum("dff->df", a)
            damped = a + (lam[act, None] * (diag + 1e-12))[:, :, None] * eye
            try:
                step = np.linalg.solve(damped, -g[..., None])[..., 0]
            except np.linalg.LinAlgError:
                step = np.stack([np.linalg.lstsq(m, -v, rcond=None)[0] for m, v in zip(damped, g, strict=True)])
        trial = pa.copy()
        trial[:, idx] = np.clip(pa[:, idx] + np.nan_to_num(step), lo, hi)
        new_cost, _ = cost_of(trial, wa, xa)
        better = new_cost < cost[act]
        improvement = np.where(better, (cost[act] - new_cost) / np.maximum(cost[act], 1e-300), 0.0)
        p[act[better]] = trial[better]
        cost[act] = np.where(better, new_cost, cost[act])
        lam[act] = np.where(better, np.maximum(lam[act] / 3, 1e-12), np.minimum(lam[act] * 4, 1e12))
        # converged: a step that barely helps or barely moves, or no step helps even at heavy damping
        moved = np.max(np.abs(trial[:, idx] - pa[:, idx]) / (np.abs(pa[:, idx]) + 1e-8), axis=1)
        done[act] = (better & ((improvement < tol) | (moved < 1e-7))) | (lam[act] >= 1e7)
    converged = done & np.isfinite(cost)
    return p, converged, cost


def best_start(fam: Family, x, y, meta, log_response: bool, iterations: int = 60,
               weights: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Polish every data-driven start at once with the batched solver; the lowest-RSS one."""
    fixed = fam.fixed(x, y, meta)
    lower, upper = fam.bounds(x, y, meta)
    starts = np.clip(np.array(fam.starts(x, y, meta), dtype=float), lower, upper)
    for i, name in enumerate(fam.param_names):
        if name in fixed:  # after clipping: a fixed value may sit outside the data-driven bounds
            starts[:, i] = fixed[name]
    free = np.array([name not in fixed for name in fam.param_names])
    w = np.ones(len(x)) if weights is None else np.asarray(weights, float)
    params, _, cost = batched_lm(fam, x, y, np.tile(w, (len(starts), 1)), starts, free, lower, upper,
                                 log_response, iterations=iterations)
    i = int(np.argmin(cost))
    return params[i], float(cost[i])


def _percentile(a: np.ndarray, levels, axis: int = 0) -> np.ndarray:
    """Percentiles over draws, ignoring draws that are not finite (fast path when all are)."""
    a = np.asarray(a, float)
    if np.isfinite(a).all():
        return np.percentile(a, levels, axis=axis)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.nanpercentile(np.where(np.isfinite(a), a, np.nan), levels, axis=axis)


@dataclass
class FitResult:
    """One family fitted to one series, in the manner of lmfit's ModelResult: the family, its parameter
    vector with covariance and bootstrap draws, and `predict` for the curve with its intervals."""

    family: str
    converged: bool
    message: str
    params: dict[str, float] = field(default_factory=dict)    # every parameter, fixed ones included
    stderr: dict[str, float] = field(default_factory=dict)
    fixed: dict[str, float] = field(default_factory=dict)
    correlations: dict[str, float] = field(default_factory=dict)
    report: str = ""
    n: int = 0
    k: int = 0
    rss: float = math.nan            # weighted residual sum of squares on the series' scale
    sigma: float = math.nan
    aicc: float = math.nan
    bic: float = math.nan
    weight: float = 0.0
    diagnostics: dict[str, float] = field(default_factory=dict)
    draws: np.ndarray | None = None          # (D, P) bootstrap parameter draws (full vectors)
    draw_cost: np.ndarray | None = None      # (D,) weighted RSS of each draw on its own resample
    draw_ok: np.ndarray | None = None        # (D,) the draw's solve converged
    draws_converged: float = math.nan
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    bands: pd.DataFrame | None = None
    log_scale: bool = False                  # residuals in log10 (the series' error model)
    backtest_mae: float = math.nan
    stacking_weight: float = math.nan        # weight from held-out skill (stacking over the backtests)

    @property
    def model(self) -> Family:
        return FAMILIES[self.family]

    @property
    def vector(self) -> np.ndarray:
        return np.array([self.params[n] for n in self.model.param_names], dtype=float)

    @property
    def covariance(self) -> np.ndarray:
        """Covariance of the parameters from the bootstrap draws (fixed parameters have zero variance)."""
        if self.draws is None or len(self.draws) < 2:
            return np.full((len(self.model.param_names),) * 2, math.nan)
        usable = self.draws if self.draw_ok is None or self.draw_ok.mean() < 0.5 else self.draws[self.draw_ok]
        return np.cov(usable, rowvar=False)

    def predict(self, x, alpha: float = 0.05, kind: str = "mean") -> pd.DataFrame:
        """The fitted curve at x with a (1 - alpha) interval: of the mean curve (`kind="mean"`, from the draws)
        or of a new observation (`kind="prediction"`: the draws plus residual noise on the series' scale)."""
        if kind not in ("mean", "prediction"):
            raise ValueError(f"kind must be 'mean' or 'prediction', not {kind!r}")
        x = np.atleast_1d(np.asarray(x, dtype=float))
        point = self.model.value(x, self.vector)
        if self.draws is None or not len(self.draws):
            return pd.DataFrame({"x": x, "fit": point, "lo": math.nan, "hi": math.nan})
        usable = self.draws if self.draw_ok is None or self.draw_ok.mean() < 0.5 else self.draws[self.draw_ok]
        with np.errstate(all="ignore"):
            curves = self.model.value(x, usable)
            if kind == "prediction":
                noise = np.random.default_rng(0).standard_normal(curves.shape) * self.sigma
                curves = np.maximum(curves, 1e-300) * 10.0**noise if self.log_scale else curves + noise
        lo, hi = _percentile(curves, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        return pd.DataFrame({"x": x, "fit": point, "lo": lo, "hi": hi})


FamilyFit = FitResult  # the name stored results and older callers use


@dataclass(frozen=True)
class Selection:
    best_family: str | None
    best_weight: float = math.nan
    aicc_bounded_weight: float = math.nan     # bounded share of the full-data Akaike weights
    p_bounded: float = math.nan               # bounded share of the per-draw Akaike weights, averaged
    valid_draws: int = 0
    excluded_draws: int = 0                   # draws where no family converged to an increasing curve
    not_increasing: dict = field(default_factory=dict)   # family -> draws that do not increase
    decisive: bool = False
    backtest_best: str | None = None
    note: str = ""
    stacking_best: str | None = None          # the family held-out skill weights most
    p_bounded_stacking: float = math.nan      # bounded share under the stacking weights
    weighting: str = "akaike"                 # the weighting the backtests support: akaike | stacking
    held_out_points: int = 0                  # backtest points the stacking weights rest on

    @property
    def p_bounded_supported(self) -> float:
        """P(bounded) under the weighting the backtests support (what the verdict uses)."""
        if self.weighting == "stacking" and np.isfinite(self.p_bounded_stacking):
            return self.p_bounded_stacking
        return self.p_bounded

    def get(self, key: str, default=None):
        return getattr(self, key, default)


@dataclass
class SeriesFit:
    series: Series
    fits: list[FitResult]
    selection: Selection
    backtests: pd.DataFrame
    held_out: pd.DataFrame = field(default_factory=pd.DataFrame)   # backtest points (families and average)

    @property
    def best(self) -> FitResult | None:
        return next((f for f in self.fits if f.family == self.selection.best_family), None)


def _quick_fit(fam: Family, series: Series, weights: np.ndarray | None = None) -> FitResult:
    """Batched-solver point fit without lmfit: for backtests, where only the parameters matter."""
    x, y = series.frame["x"].to_numpy(), series.frame["y"].to_numpy()
    fixed = fam.fixed(x, y, series.meta)
    vec, cost = best_start(fam, x, y, series.meta, series.log_response, iterations=150, weights=weights)
    ok = bool(np.isfinite(cost))
    return FitResult(fam.name, ok, "batched Levenberg–Marquardt" if ok else "no finite fit", fixed=fixed,
                     params={n: float(v) for n, v in zip(fam.param_names, vec, strict=True)} if ok else {},
                     n=len(y), k=len(fam.param_names) - len(fixed) + 1, rss=cost, log_scale=series.log_response)


def _inside(value: float, lo: float, hi: float) -> float:
    """A start strictly inside finite bounds: lmfit's bound transform has zero gradient on a bound."""
    if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
        margin = 1e-3 * (hi - lo)
        return float(np.clip(value, lo + margin, hi - margin))
    return float(np.clip(value, lo, hi))


def _point_fit(fam: Family, series: Series) -> FitResult:
    """lmfit's Levenberg–Marquardt with the family's analytic Jacobian, from the best batched-polished start
    (the raw starts only if that one does not converge)."""
    x, y = series.frame["x"].to_numpy(), series.frame["y"].to_numpy()
    meta = series.meta
    fixed = fam.fixed(x, y, meta)
    lower, upper = fam.bounds(x, y, meta)
    free = np.array([name not in fixed for name in fam.param_names])
    log_scale = series.log_response
    w_obs = series.obs_weights
    root_w = np.sqrt(w_obs)
    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        polished, _ = best_start(fam, x, y, meta, log_scale, weights=w_obs)

    def vector(prm) -> np.ndarray:
        return np.array([prm[n].value for n in fam.param_names])

    def residual(prm):
        return root_w * _residuals(fam, x, y, vector(prm), log_scale)

    def jacobian(prm):
        return root_w[:, None] * _jac(fam, x, vector(prm), log_scale)[:, free]

    for start in [polished, *fam.starts(x, y, meta)]:
        if best is not None and best.converged:
            break
        start = np.array(start, dtype=float)
        params = lmfit.Parameters()
        for i, name in enumerate(fam.param_names):
            lo, hi = float(lower[i]), float(upper[i])
            if name in fixed:
                params.add(name, value=fixed[name], vary=False)
            else:
                params.add(name, value=_inside(start[i], lo, hi), min=lo if np.isfinite(lo) else -np.inf,
                           max=hi if np.isfinite(hi) else np.inf)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = lmfit.minimize(residual, params, method="leastsq", nan_policy="raise", Dfun=jacobian)
            except (ValueError, RuntimeError, OverflowError, FloatingPointError) as exc:
                best = best or FitResult(fam.name, False, f"lmfit failed from every start: {exc}", fixed=fixed)
                continue
        if not np.isfinite(result.chisqr):
            continue
        if best is None or not best.converged or result.chisqr < best.rss:
            best = FitResult(
                fam.name, bool(result.success), str(result.message), fixed=fixed,
                params={n: float(result.params[n].value) for n in fam.param_names},
                stderr={n: float(result.params[n].stderr) if result.params[n].stderr is not None else math.nan
                        for n in fam.param_names},
                correlations={f"{a}~{b}": float(c) for a in fam.param_names
                              for b, c in (result.params[a].correl or {}).items() if a < b},
                report=lmfit.fit_report(result), rss=float(result.chisqr), log_scale=log_scale)
    if best is None:
        return FitResult(fam.name, False, "no starting point gave a finite fit", fixed=fixed)
    if not best.params:
        return best
    n, k = len(y), int(free.sum()) + 1   # +1: the residual variance
    best.n, best.k = n, k
    resid = root_w * _residuals(fam, x, y, best.vector, log_scale)
    best.rss = float(np.sum(resid**2))
    best.sigma = math.sqrt(best.rss / max(n - k + 1, 1))
    if n - k - 1 > 0 and best.rss > 0:
        deviance = n * math.log(best.rss / n)   # the same likelihood for every family of the series
        best.aicc = deviance + 2 * k + 2 * k * (k + 1) / (n - k - 1)
        best.bic = deviance + k * math.log(n)
    if log_scale:
        best.message = f"{best.message} Fitted on log10 of the values (multiplicative errors)."
    best.diagnostics = residual_diagnostics(resid)
    return best


def residual_diagnostics(resid: np.ndarray) -> dict[str, float]:
    """Durbin–Watson (ordered by x: values far below 2 mean a systematic misfit) and Shapiro p."""
    resid = np.asarray(resid, float)
    dw = float(np.sum(np.diff(resid) ** 2) / np.sum(resid**2)) if np.sum(resid**2) > 0 else math.nan
    shapiro = float(stats.shapiro(resid).pvalue) if 3 <= len(resid) <= 5000 and np.ptp(resid) > 0 else math.nan
    return {"durbin_watson": dw, "shapiro_p": shapiro}


def cluster_bootstrap_weights(clusters: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, N) counts: whole clusters drawn with replacement, as many clusters as there are."""
    labels, inverse = np.unique(clusters, return_inverse=True)
    picks = rng.integers(0, len(labels), size=(draws, len(labels)))
    counts = np.zeros((draws, len(labels)))
    np.add.at(counts, (np.arange(draws)[:, None], picks), 1.0)
    return counts[:, inverse]


def resample_weights(series: Series, draws: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """(draws, N) resampling counts shared by every family of the series, so each draw compares the families
    on the same data. Whole clusters (model family / organisation); rows when there are too few clusters."""
    clusters = series.frame["cluster"].to_numpy()
    unit = "clusters" if len(np.unique(clusters)) >= MIN_POINTS else "rows"
    counts = cluster_bootstrap_weights(clusters if unit == "clusters" else np.arange(len(clusters)), draws, rng)
    return counts, unit


def bootstrap(fam: Family, series: Series, fit: FitResult, counts: np.ndarray, unit: str,
              rng: np.random.Generator, x_draws: np.ndarray | None = None) -> None:
    """Refit `fam` on every resample at once (batched LM); intervals and bands from the converged draws.
    `x_draws` (D, N): each draw's x, the stated compute redrawn from its uncertainty (errors in variables)."""
    x, y = series.frame["x"].to_numpy(), series.frame["y"].to_numpy()
    lower, upper = fam.bounds(x, y, series.meta)
    free = np.array([name not in fit.fixed for name in fam.param_names])
    p0 = fit.vector
    clusters = series.frame["cluster"].to_numpy()
    fit.message = (f"{fit.message} Bootstrap: {len(counts)} draws resampling {unit} "
                   f"({len(np.unique(clusters))} clusters).")
    if unit == "rows" and len(np.unique(clusters)) < len(clusters):
        fit.message += (" Rows share clusters (e.g. points read off one published curve), so they are not "
                        "independent: these intervals understate the uncertainty.")
    log_scale = series.log_response
    weights = counts * series.obs_weights[None, :]
    if x_draws is not None:
        fit.message += (f" Compute redrawn from its stated uncertainty in every draw (median sd "
                        f"{np.median(series.x_sd[series.x_sd > 0]):.2g} decades over {int((series.x_sd > 0).sum())} "
                        "rows).")
    params, converged, cost = batched_lm(fam, x if x_draws is None else x_draws, y, weights, p0, free, lower, upper,
                                         log_scale)
    fit.draws, fit.draw_cost, fit.draw_ok = params, cost, converged
    fit.draws_converged = float(converged.mean())
    # Intervals and bands from the draws that converged; a solve stopped mid-way is not a sample of the fit.
    if converged.mean() >= 0.5:
        params, cost, weights = params[converged], cost[converged], weights[converged]
        if not converged.all():
            fit.message += f" {int((~converged).sum())} draws did not converge and are left out of the intervals."
    else:
        fit.message += (f" Only {converged.mean():.0%} of the draws converged: the intervals use every draw and "
                        "are unreliable.")
    for i, name in enumerate(fam.param_names):
        lo, hi = _percentile(params[:, i], [2.5, 97.5])
        fit.intervals[name] = (float(lo), float(hi))
    fit.message += _bound_note(fam, free, p0, fit.intervals, lower, upper)
    # Bands: the mean curve's spread across draws, and a new observation's (adds residual noise).
    span = np.ptp(x)
    grid = np.linspace(x.min(), x.max() + 0.25 * span, GRID_POINTS)
    curves = fam.value(grid, params)
    dof = np.maximum(weights.sum(axis=1) - free.sum(), 1.0)
    sigma = np.sqrt(cost / dof)[:, None]
    noise = rng.standard_normal(curves.shape) * sigma
    with np.errstate(over="ignore", invalid="ignore"):
        predictive = np.maximum(curves, 1e-300) * 10.0**noise if log_scale else curves + noise
    point = fam.value(grid, p0)
    mean_q = _percentile(curves, [2.5, 97.5])
    pred_q = _percentile(predictive, [2.5, 97.5, 10, 90])
    fit.bands = pd.DataFrame({
        "x": grid, "fit": point, "mean_lo95": mean_q[0], "mean_hi95": mean_q[1],
        "pred_lo95": pred_q[0], "pred_hi95": pred_q[1], "pred_lo80": pred_q[2], "pred_hi80": pred_q[3]})


def _bound_note(fam: Family, free, estimate, intervals: dict, lower, upper) -> str:
    """Say which parameters the bounds, not the data, decide: an estimate on its bound, or an interval cut by it."""
    on, cut = [], []
    for i, name in enumerate(fam.param_names):
        if not free[i]:
            continue
        lo, hi = float(lower[i]), float(upper[i])
        tol = 1e-6 * (1 + max(abs(lo) if math.isfinite(lo) else 0, abs(hi) if math.isfinite(hi) else 0))
        ilo, ihi = intervals[name]
        if abs(estimate[i] - lo) <= tol or abs(estimate[i] - hi) <= tol:
            on.append(name)
        elif abs(ilo - lo) <= tol or abs(ihi - hi) <= tol:
            cut.append(name)
    note = ""
    if on:
        note += f" {', '.join(on)} on its bound: the data do not pin it down, the bound does."
    if cut:
        note += f" The 95% interval of {', '.join(cut)} reaches its bound: the true interval is wider."
    return note


def akaike_weights(aicc: list[float]) -> np.ndarray:
    a = np.array(aicc, dtype=float)
    ok = np.isfinite(a)
    w = np.zeros_like(a)
    if ok.any():
        rel = np.exp(-0.5 * (a[ok] - a[ok].min()))
        w[ok] = rel / rel.sum()
    return w


def fitted_bounded(fit: FitResult, higher_is_better: bool = True) -> bool:
    """Bounded above as fitted: a loss power law is bounded (-L rises to 0) though the family usually is not."""
    fam = FAMILIES[fit.family]
    if not fit.params:
        return fam.bounded_family
    asym = fam.asymptotics(fit.vector, higher_is_better)
    return bool(asym.bounded) if asym.normal else fam.bounded_family


def draw_flags(fit: FitResult, higher_is_better: bool) -> tuple[np.ndarray, np.ndarray]:
    """(normal, bounded) of each bootstrap draw: is the drawn curve increasing, and bounded above?"""
    fam = FAMILIES[fit.family]
    flags = [fam.asymptotics(p, higher_is_better) for p in fit.draws]
    return np.array([a.normal for a in flags], bool), np.array([a.normal and a.bounded for a in flags], bool)


def bootstrap_p_bounded(fits: list[FitResult], n_drawn: np.ndarray, higher_is_better: bool = True
                        ) -> tuple[float, int, int, dict[str, int]]:
    """P(bounded) = mean over draws of the bounded families' Akaike weight computed on that draw's resample.

    A family's draw counts only if it converged to an increasing curve: draws that are not increasing
    are not performance metrics (Def. 2.1), so they are left out and counted, never read as unbounded.
    Returns (P, draws used, draws left out, not-increasing draws per family)."""
    usable = [f for f in fits if f.converged and f.draws is not None and f.draw_cost is not None]
    if not usable:
        return math.nan, 0, 0, {}
    n = np.asarray(n_drawn, float)
    aicc, bounded, not_increasing = [], [], {}
    for f in usable:
        normal, is_bounded = draw_flags(f, higher_is_better)
        ok = f.draw_ok & normal & np.isfinite(f.draw_cost) & (f.draw_cost > 0)
        not_increasing[f.family] = int((f.draw_ok & ~normal).sum())
        k = f.k or (len(f.params) - len(f.fixed) + 1)
        with np.errstate(all="ignore"):
            a = n * np.log(f.draw_cost / n) + 2 * k + 2 * k * (k + 1) / np.where(n - k - 1 > 0, n - k - 1, np.nan)
        aicc.append(np.where(ok & np.isfinite(a), a, np.inf))
        bounded.append(is_bounded)
    aicc, bounded = np.array(aicc), np.array(bounded)
    valid = np.isfinite(aicc).any(axis=0)
    if not valid.any():
        return math.nan, 0, int(len(valid)), not_increasing
    rel = np.exp(-0.5 * (aicc[:, valid] - aicc[:, valid].min(axis=0)))
    w = rel / rel.sum(axis=0)
    p = float(np.mean((w * bounded[:, valid]).sum(axis=0)))
    return p, int(valid.sum()), int((~valid).sum()), not_increasing


def select(fits: list[FitResult], higher_is_better: bool = True, n_drawn: np.ndarray | None = None,
           backtests: pd.DataFrame | None = None, stacking: dict[str, float] | None = None,
           held_out_points: pd.DataFrame | None = None) -> Selection:
    weights = akaike_weights([f.aicc if f.converged else math.nan for f in fits])
    for fit, w in zip(fits, weights, strict=True):
        fit.weight = float(w)
    if not any(weights > 0):
        return Selection(None, note="no family converged: nothing to select")
    best = fits[int(np.argmax(weights))]
    aicc_bounded = float(sum(f.weight for f in fits if fitted_bounded(f, higher_is_better)))
    p, valid, excluded, not_increasing = (bootstrap_p_bounded(fits, n_drawn, higher_is_better)
                                          if n_drawn is not None else (math.nan, 0, 0, {}))
    p_for_decision = p if np.isfinite(p) else aicc_bounded
    decisive = best.weight >= DECISIVE_WEIGHT and not (0.2 < p_for_decision < 0.8)
    note = (f"{best.family} carries {best.weight:.0%} of the Akaike weight; bounded families {aicc_bounded:.0%} "
            f"on the full data, {p_for_decision:.0%} averaged over the bootstrap draws"
            + ("" if decisive else ": the data do not decide between the families"))
    backtest_best = None
    if backtests is not None and len(backtests):
        mae = backtests.groupby("family")["mae"].mean()
        for fit in fits:
            fit.backtest_mae = float(mae.get(fit.family, math.nan))
        backtest_best = str(mae.idxmin())
        if backtest_best != best.family:
            note += (f". Out of sample the best family is {backtest_best} (mean absolute error "
                     f"{mae.min():.3g} against {mae.get(best.family, math.nan):.3g}): AICc and the backtests disagree")
    stacking = stacking or {}
    stacking_best, p_stack, weighting, n_points = None, math.nan, "akaike", 0
    if stacking:
        stacking_best = max(stacking, key=stacking.get)
        p_stack = stacking_p_bounded(fits, stacking, higher_is_better)
        akaike = {f.family: f.weight for f in fits}
        weighting, n_points, skill = preferred_weighting(held_out_points, stacking, akaike)
        distance = 0.5 * sum(abs(akaike.get(f, 0.0) - stacking.get(f, 0.0)) for f in set(akaike) | set(stacking))
        if stacking_best != best.family or distance >= 0.25:
            shown = ", ".join(f"{f} {w:.0%}" for f, w in sorted(stacking.items(), key=lambda kv: -kv[1]))
            note += (f". Held-out skill (stacking over {n_points} backtest points) weights {shown}; AICc puts "
                     f"{best.weight:.0%} on {best.family}: the two weightings disagree")
            if np.isfinite(p_stack) and np.isfinite(p_for_decision) and abs(p_stack - p_for_decision) >= 0.1:
                note += f" (P(bounded) {p_stack:.0%} by held-out skill against {p_for_decision:.0%})"
        note += (f". The forecast mixes the families by their stacking weights; "
                 f"{'stacking' if weighting == 'stacking' else 'Akaike'} weights carry the verdict: {skill}")
    return Selection(best.family, best.weight, aicc_bounded, p, valid, excluded, not_increasing, bool(decisive),
                     backtest_best, note, stacking_best, p_stack, weighting, n_points)


def stacking_p_bounded(fits: list[FitResult], stacking: dict[str, float], higher_is_better: bool = True) -> float:
    """P(bounded) under the stacking weights: each family's weight times the bounded share of its increasing
    bootstrap draws (its fitted curve's boundedness when it has no draws)."""
    total, weight = 0.0, 0.0
    for fit in fits:
        w = float(stacking.get(fit.family, 0.0))
        if w <= 0 or not fit.converged:
            continue
        if fit.draws is not None and len(fit.draws):
            normal, bounded = draw_flags(fit, higher_is_better)
            ok = normal & (fit.draw_ok if fit.draw_ok is not None else True)
            share = float(bounded[ok].mean()) if ok.any() else float(fitted_bounded(fit, higher_is_better))
        else:
            share = float(fitted_bounded(fit, higher_is_better))
        total += w * share
        weight += w
    return total / weight if weight > 0 else math.nan


ELPD_SMALL = 4.0   # nats: a smaller difference in summed held-out log density is not evidence


def preferred_weighting(points: pd.DataFrame | None, stacking: dict[str, float], akaike: dict[str, float]
                        ) -> tuple[str, int, str]:
    """Which weighting the backtests support for the verdict: stacking weights fitted on the other cutoffs are
    scored on each cutoff's held-out points in turn (leave one cutoff out) against the Akaike weights on the
    same points; stacking only when its summed log predictive density is higher by more than ELPD_SMALL nats and
    by more than twice the standard error of the paired difference (how loo-compare differences are read:
    Sivula, Magnusson, Matamoros & Vehtari 2020 call differences under 4 small). Returns (weighting, points
    compared, a sentence)."""
    if points is None or points.empty or not stacking:
        return "akaike", 0, "no held-out points to compare the weightings on"
    families = list(stacking)
    table = points[points["family"].isin(families)].pivot_table(
        index=["cutoff", "model"], columns="family", values="log_density", aggfunc="first")[families].dropna()
    n = len(table)
    cutoffs = sorted(set(table.index.get_level_values(0)))
    a = np.array([akaike.get(f, 0.0) for f in families])
    if len(cutoffs) < 2 or a.sum() <= 0:
        return "stacking", n, f"stacking fitted on {n} held-out points (too few cutoffs to cross-check it)"
    a = a / a.sum()
    diffs, stack_score, akaike_score = [], 0.0, 0.0
    for c in cutoffs:
        inside = table.index.get_level_values(0) == c
        w = scoring.stacking_weights(table[~inside].to_numpy())
        ld = table[inside].to_numpy()
        with np.errstate(divide="ignore"):
            by_stacking = special.logsumexp(ld + np.log(np.maximum(w, 1e-300)), axis=1)
            by_akaike = special.logsumexp(ld + np.log(np.maximum(a, 1e-300)), axis=1)
        diffs.append(by_stacking - by_akaike)
        stack_score += float(np.sum(by_stacking))
        akaike_score += float(np.sum(by_akaike))
    d = np.concatenate(diffs)
    gain, se = float(d.sum()), float(np.sqrt(len(d) * np.var(d)))
    supported = gain > ELPD_SMALL and gain > 2 * se
    words = (f"on {n} held-out points the mean log predictive density is {stack_score / n:.3g} with stacking "
             f"weights fitted on the other cutoffs, {akaike_score / n:.3g} with the Akaike weights (difference "
             f"{gain:.3g} nats, standard error {se:.3g}: "
             + ("stacking is clearly better)" if supported else "not a clear difference, Akaike kept)"))
    return ("stacking" if supported else "akaike"), n, words


# ------------------------------------------------------------------------------ predictive distributions
@dataclass(frozen=True)
class PredictiveOptions:
    """What the predictive distribution of a new observation models; benchmarks/bench_calibration.py turns them
    on one at a time. The defaults are what a run uses."""

    average: bool = True             # mix the families by their held-out (stacking) weights, not one family alone
    measurement_error: bool = True   # a new point's own value_lo/value_hi scale its noise, as they weight the fit
    bounded_noise: bool = True       # noise respects a known range (logit of a fraction; censored at a ceiling)
    compute_error: bool = True       # each model's compute redrawn from its stated uncertainty (errors in variables)


def noise_bounds(series: Series) -> tuple[float, float] | None:
    """The known bounds a new observation must respect: both ends of a fraction or percentage (noise normal on
    the logit of the position in the range, so it shrinks near either end), or the ceiling of a metric bounded
    above by construction (Elo relative to perfect play: noise on the value, censored at the ceiling; a
    logarithm of the distance to it made the noise vanish near perfect play while the fits' extrapolation error
    did not, and the backtests covered far less). None otherwise (horizons are already on log10; a loss's floor
    of 0 lies far below any loss seen)."""
    return bounds_for(series.kind, series.unit, series.floor, series.ceiling)


def bounds_for(kind: str | None, unit: str | None, floor=None, ceiling=None) -> tuple[float, float] | None:
    """noise_bounds from a series' kind, unit, floor and ceiling."""
    if kind in ("horizon", "loss"):
        return None
    r = known_range(kind, unit, floor, ceiling)
    if math.isfinite(r.lo) and math.isfinite(r.hi) and r.hi > r.lo:
        return (r.lo, r.hi)
    if math.isfinite(r.hi) and r.higher_is_better:
        return (-math.inf, r.hi)
    return None


def to_noise_scale(y, bounds: tuple[float, float] | None) -> np.ndarray:
    """The scale on which noise is normal: logit of the position in a two-sided range, the value otherwise."""
    y = np.asarray(y, float)
    if bounds is None or not math.isfinite(bounds[0]):
        return y
    lo, hi = bounds
    with np.errstate(all="ignore"):
        u = np.clip((y - lo) / (hi - lo), 1e-9, 1 - 1e-9)
        return np.log(u) - np.log1p(-u)


def from_noise_scale(z, bounds: tuple[float, float] | None) -> np.ndarray:
    """Values from the noise scale; a ceiling censors what lies above it."""
    z = np.asarray(z, float)
    if bounds is None:
        return z
    lo, hi = bounds
    if not math.isfinite(lo):
        return np.minimum(z, hi)
    return lo + (hi - lo) * special.expit(z)


def slope_to_noise_scale(y, bounds: tuple[float, float] | None) -> np.ndarray:
    """dz/dy of to_noise_scale at y."""
    y = np.asarray(y, float)
    if bounds is None or not math.isfinite(bounds[0]):
        return np.ones_like(y)
    lo, hi = bounds
    u = np.clip((y - lo) / (hi - lo), 1e-9, 1 - 1e-9)
    return 1.0 / ((hi - lo) * u * (1 - u))


@dataclass
class Predictive:
    """The predictive distribution of new observations at points x on the series' error scale (log10 of the
    value for horizons, the value otherwise): a weighted mixture of normals, one per (family, bootstrap draw),
    each centred on the drawn curve with that draw's residual scale (times the point's own noise factor). With
    `bounds` the normals live on the noise scale (`to_noise_scale`) and values are mapped back from it."""

    center: np.ndarray   # (M, X)
    scale: np.ndarray    # (M, X)
    weight: np.ndarray   # (M,), sums to 1
    bounds: tuple[float, float] | None = None

    @classmethod
    def mix(cls, parts: list[tuple[Predictive, float]]) -> Predictive | None:
        """Mixture of predictives with the given weights (parts of weight 0 are dropped)."""
        parts = [(p, w) for p, w in parts if p is not None and w > 0]
        if not parts:
            return None
        total = sum(w for _, w in parts)
        if len({p.bounds for p, _ in parts}) > 1:
            raise ValueError("predictives on different noise scales cannot be mixed")
        return cls(np.concatenate([p.center for p, _ in parts]), np.concatenate([p.scale for p, _ in parts]),
                   np.concatenate([p.weight * (w / total) for p, w in parts]), parts[0][0].bounds)

    def sample(self, rng: np.random.Generator, n: int = 2000) -> np.ndarray:
        idx = rng.choice(len(self.weight), size=n, p=self.weight)
        z = self.center[idx] + self.scale[idx] * rng.standard_normal((n, self.center.shape[1]))
        return from_noise_scale(z, self.bounds)

    def cdf(self, y) -> np.ndarray:
        y = np.asarray(y, float)
        z = (to_noise_scale(y, self.bounds)[None, :] - self.center) / self.scale
        out = self.weight @ stats.norm.cdf(z)
        if self.bounds is not None:   # beyond a bound: all of the mass lies on one side
            lo, hi = self.bounds
            out = np.where(y >= hi, 1.0, np.where(y <= lo, 0.0, out))
        return out

    def logpdf(self, y) -> np.ndarray:
        y = np.asarray(y, float)
        z = (to_noise_scale(y, self.bounds)[None, :] - self.center) / self.scale
        with np.errstate(divide="ignore"):
            terms = stats.norm.logpdf(z) - np.log(self.scale) + np.log(self.weight)[:, None]
            out = special.logsumexp(terms, axis=0) + np.log(slope_to_noise_scale(y, self.bounds))
        if self.bounds is not None:
            lo, hi = self.bounds
            out = np.where((y > lo) & (y <= hi) if not math.isfinite(lo) else (y > lo) & (y < hi), out, -np.inf)
        return out

    def quantiles(self, rng: np.random.Generator, levels=scoring.QUANTILE_LEVELS, n: int = 4000) -> np.ndarray:
        """(L, X) quantiles from `n` draws of the mixture."""
        return np.quantile(self.sample(rng, n), levels, axis=0)


def draw_sigma(fit: FitResult) -> np.ndarray:
    """Residual scale of each bootstrap draw: its weighted RSS on its own resample over the residual degrees of
    freedom (the point fit's scale where the draws carry no cost)."""
    free = (fit.k - 1) if fit.k else len(fit.params) - len(fit.fixed)
    dof = max(fit.n - free, 1)
    if fit.draw_cost is not None and len(fit.draw_cost) == len(fit.draws):
        return np.sqrt(np.maximum(np.asarray(fit.draw_cost, float), 0.0) / dof)
    return np.full(len(fit.draws), fit.sigma)


def family_predictive(fit: FitResult, x, noise: np.ndarray | None = None,
                      bounds: tuple[float, float] | None = None, train_x=None, x_sd=None,
                      rng: np.random.Generator | None = None) -> Predictive | None:
    """One family's predictive at x: each usable bootstrap curve plus normal noise of that draw's residual
    scale times `noise` (per point: 1 for a typical point of the series). With `bounds` (noise_bounds) the
    noise is normal on the bounded noise scale instead, its scale set by the delta method so that its mean
    variance over the fitted points `train_x` matches the residual variance: it shrinks where the curve nears
    a bound and never crosses it. With `x_sd` (per point, and `rng`), each draw evaluates its curve at the point's
    compute redrawn from that uncertainty: a new model's stated compute is uncertain too. None without usable
    draws."""
    if fit.draws is None or not len(fit.draws) or not fit.params:
        return None
    x = np.atleast_1d(np.asarray(x, float))
    ok = fit.draw_ok if fit.draw_ok is not None and fit.draw_ok.mean() >= 0.5 else np.ones(len(fit.draws), bool)
    xs = x
    if x_sd is not None and rng is not None and np.any(np.asarray(x_sd) > 0):
        xs = x[None, :] + np.broadcast_to(np.asarray(x_sd, float), x.shape)[None, :] * \
            rng.standard_normal((int(ok.sum()), len(x)))
    with np.errstate(all="ignore"):
        curves = fit.model.value(xs, fit.draws[ok])
        if fit.log_scale:
            curves = np.log10(np.maximum(curves, 1e-300))
    sigma = draw_sigma(fit)[ok]
    good = np.isfinite(curves).all(axis=1) & np.isfinite(sigma) & (sigma > 0)
    if not good.any():
        return None
    factor = np.ones(len(x)) if noise is None else np.asarray(noise, float)
    scale = sigma[good, None] * factor[None, :]
    curves = curves[good]
    if bounds is not None and train_x is not None and len(np.atleast_1d(train_x)):
        fitted = fit.model.value(np.atleast_1d(np.asarray(train_x, float)), fit.vector)
        gain = np.sqrt(np.mean(1.0 / slope_to_noise_scale(fitted, bounds) ** 2))   # rms dy/dz over the data
        scale = scale / gain
        curves = to_noise_scale(curves, bounds)
    else:
        bounds = None
    return Predictive(curves, scale, np.full(int(good.sum()), 1.0 / good.sum()), bounds)


def average_predictive(fits: list[FitResult], x, weights: dict[str, float], noise=None,
                       bounds: tuple[float, float] | None = None, train_x=None, x_sd=None,
                       rng: np.random.Generator | None = None) -> Predictive | None:
    """The model-averaged predictive: every family's predictive mixed by its weight."""
    return Predictive.mix([(family_predictive(f, x, noise, bounds, train_x, x_sd, rng),
                            float(weights.get(f.family, 0.0))) for f in fits])


def describe(pred: Predictive, y: np.ndarray, rng: np.random.Generator, n: int = 2000) -> pd.DataFrame:
    """Per held-out point: the predictive's quantiles, PIT, log density and CRPS against y (error scale)."""
    draws = pred.sample(rng, n)
    q = np.quantile(draws, scoring.QUANTILE_LEVELS, axis=0)
    with np.errstate(all="ignore"):
        out = {name: q[i] for i, name in enumerate(scoring.COLUMNS)}
        out.update(pit=pred.cdf(y), log_density=pred.logpdf(y), crps=scoring.crps_draws(draws, y))
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------ backtests
def backtest(series: Series, families: list[str], rng: np.random.Generator, draws: int = 200,
             options: PredictiveOptions | None = None) -> pd.DataFrame:
    """Rolling origin: fit on rows before a cutoff (release date when known, else compute), predict the rest.
    One row per (family, cutoff); `held_out` gives the points themselves."""
    return held_out(series, families, rng, draws, options).summary


@dataclass
class HeldOut:
    """What the rolling-origin backtests of one series leave: a summary row per (family, cutoff), one row per
    held-out point per family, stacking weights by family, and each cutoff's family predictives (to mix)."""

    summary: pd.DataFrame
    points: pd.DataFrame
    stacking: dict[str, float]
    cutoffs: list = field(default_factory=list, repr=False)   # (point columns, {family: Predictive}, y)

    def average(self, weights: dict[str, float], rng: np.random.Generator) -> pd.DataFrame:
        """The held-out points scored by the families mixed with `weights` (family 'average')."""
        rows = []
        for base, preds, ye in self.cutoffs:
            pred = Predictive.mix([(preds.get(f), w) for f, w in weights.items()])
            if pred is not None:
                rows.append(describe(pred, ye, rng).assign(family=AVERAGE, **base))
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def held_out(series: Series, families: list[str], rng: np.random.Generator, draws: int = 200,
             options: PredictiveOptions | None = None) -> HeldOut:
    """Each family is refitted on the rows before each cutoff with `draws` bootstrap draws; a held-out point is
    scored by that family's predictive (curve draws plus residual noise, scaled by the point's own
    value_lo/value_hi when it has them). Stacking weights come from the held-out log densities of the points
    every family predicted."""
    options = options or PredictiveOptions()
    bounds = noise_bounds(series) if options.bounded_noise else None
    frame = series.frame
    by_date = series.x_axis == "date" or frame["release_year"].notna().mean() >= 0.6
    order = frame["release_year"] if by_date else frame["x"]
    rows, points, cutoffs = [], [], []
    for quantile in (0.6, 0.7, 0.8):
        cutoff = float(np.nanquantile(order, quantile))
        train_mask = (order <= cutoff).to_numpy()
        test_mask = (order > cutoff).to_numpy()
        if train_mask.sum() < MIN_POINTS or test_mask.sum() < 2:
            continue
        train = Series(**{**series.__dict__, "frame": frame[train_mask].reset_index(drop=True)})
        test = frame[test_mask].reset_index(drop=True)
        counts, unit = resample_weights(train, draws, rng) if draws else (None, "")
        jitter = compute_jitter(train, draws, rng) if options.compute_error else None
        test_sd = (np.nan_to_num(test["x_sd"].to_numpy(float)) if options.compute_error and "x_sd" in test
                   else None)
        tx, ty = test["x"].to_numpy(), test["y"].to_numpy()
        ye = np.log10(ty) if series.log_response else ty
        noise = (train.noise_factor(test["value_lo"].to_numpy(float), test["value_hi"].to_numpy(float))
                 if options.measurement_error else np.ones(len(test)))
        x_train = train.frame["x"].to_numpy()
        span = max(float(np.ptp(x_train)), 1e-9)
        beyond = np.maximum(tx - x_train.max(), 0.0)
        base = {"cutoff": cutoff, "model": test["model"].to_numpy(), "x": tx, "y": ye,
                "beyond": beyond, "beyond_span": beyond / span}
        preds = {}
        for name in families:
            fam = FAMILIES[name]
            if not fam.applies(train.frame["y"].to_numpy()):
                continue
            fit = _quick_fit(fam, train, train.obs_weights)
            if not fit.converged or not fit.params or counts is None:
                continue
            bootstrap(fam, train, fit, counts, unit, rng, jitter)
            pred = family_predictive(fit, tx, noise, bounds, x_train, test_sd, rng)
            if pred is None:
                continue
            preds[name] = pred
            point = fam.value(tx, fit.vector)
            err = (np.log10(np.maximum(point, 1e-300)) - np.log10(ty)) if series.log_response else point - ty
            scored = describe(pred, ye, rng)
            points.append(scored.assign(family=name, **base))
            cover = {c: float(np.mean(scoring.covered(scoring.QUANTILE_LEVELS, scored[list(scoring.COLUMNS)]
                                                      .to_numpy().T, ye, c))) for c in (0.5, 0.8, 0.95)}
            rows.append({"family": name, "cutoff_axis": "release_date" if by_date else "log10_flop",
                         "cutoff": cutoff, "n_train": int(train_mask.sum()), "n_test": int(test_mask.sum()),
                         "mae": float(np.mean(np.abs(err))), "bias": float(np.mean(err)),
                         "coverage50": cover[0.5], "coverage80": cover[0.8], "coverage95": cover[0.95],
                         "crps": float(np.mean(scored["crps"])),
                         "log_score": float(-np.mean(scored["log_density"])),
                         "error_scale": "log10" if series.log_response else series.unit})
        cutoffs.append((base, preds, ye))
    out = pd.DataFrame(rows)
    if len(out):
        mean_cov = out.groupby("family")[["coverage80", "coverage95"]].transform("mean")
        out["undercovers"] = (mean_cov["coverage80"] < 0.65) | (mean_cov["coverage95"] < 0.80)
    pts = pd.concat(points, ignore_index=True) if points else pd.DataFrame()
    return HeldOut(out, pts, stacked(pts, families), cutoffs)


AVERAGE = "average"   # the model-averaged predictive's rows among the held-out points


def stacked(points: pd.DataFrame, families: list[str]) -> dict[str, float]:
    """Stacking weights by family from held-out points; {} when fewer than MIN_STACKING_POINTS points were
    predicted by every family that predicted any (those points are the ones the weights compare)."""
    if points is None or points.empty:
        return {}
    present = [f for f in families if f in set(points["family"])]
    table = points.pivot_table(index=["cutoff", "model"], columns="family", values="log_density", aggfunc="first")
    table = table[present].dropna()
    if len(table) < MIN_STACKING_POINTS or not present:
        return {}
    w = scoring.stacking_weights(table.to_numpy())
    return {f: float(v) for f, v in zip(present, w, strict=True)}


MIN_STACKING_POINTS = 10


def fit_series(series: Series, families: list[str] | None = None, bootstrap_draws: int = 1000, seed: int = 0,
               backtest_draws: int = 200, options: PredictiveOptions | None = None) -> SeriesFit:
    """Pure (no store): what a worker runs. Every family is attempted; failures are recorded, not raised."""
    rng = np.random.default_rng([seed, series.seed_offset()])
    names = list(families or families_for(series))
    fits = []
    y = series.frame["y"].to_numpy()
    options = options or PredictiveOptions()
    counts, unit = resample_weights(series, bootstrap_draws, rng) if bootstrap_draws > 0 else (None, "")
    jitter = compute_jitter(series, bootstrap_draws, rng) if options.compute_error else None
    for name in names:
        fam = FAMILIES[name]
        if fam.x_axis in ("date", "inference") and fam.x_axis != series.x_axis:
            if families:  # asked for by name: say why there is no fit rather than dropping it
                fits.append(FitResult(name, False, f"not applicable: {name} is a {fam.x_axis}-axis family and this "
                                                   f"series is against {series.x_axis}"))
            continue
        if not fam.applies(y):
            fits.append(FitResult(name, False, "not applicable: the values are outside this family's range"))
            continue
        try:
            fit = _point_fit(fam, series)
            if fit.params and counts is not None:
                bootstrap(fam, series, fit, counts, unit, rng, jitter)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError, OverflowError) as exc:
            fit = FitResult(name, False, f"fit failed: {exc}")
        fits.append(fit)
    tests = held_out(series, [f.family for f in fits if f.converged], rng, draws=backtest_draws, options=options)
    for fit in fits:
        fit.stacking_weight = float(tests.stacking.get(fit.family, 0.0)) if tests.stacking else math.nan
    selection = select(fits, series.higher_is_better, None if counts is None else counts.sum(axis=1), tests.summary,
                       tests.stacking, tests.points)
    points = tests.points
    if options.average and len(points):
        average = tests.average(mixture_weights(fits)[0], rng)
        points = pd.concat([points, average], ignore_index=True)
    return SeriesFit(series, fits, selection, tests.summary, points)


def mixture_weights(fits: list[FitResult]) -> tuple[dict[str, float], str]:
    """(weights, which) of the model-averaged predictive, the headline forecast: the stacking weights (held-out
    skill) where the backtests gave them, else the Akaike weights."""
    stacking = {f.family: f.stacking_weight for f in fits if f.converged and np.isfinite(f.stacking_weight)}
    if stacking and sum(stacking.values()) > 0:
        return {f: w for f, w in stacking.items() if w > 0}, "stacking"
    return {f.family: f.weight for f in fits if f.converged and f.weight > 0}, "akaike"


# ------------------------------------------------------------------------------ results as tables
def fits_frames(results: list[SeriesFit]) -> dict[str, pd.DataFrame]:
    """Fit results -> the rows of the fit stage's tables (the one place they are flattened)."""
    fits, params, draws, bands, selection, backtests, points = [], [], [], [], [], [], []
    for res in results:
        key = res.series.key
        base = {**key, "kind": res.series.kind, "unit": res.series.unit}
        for f in res.fits:
            fits.append({**base, "family": f.family, "n": f.n, "k": f.k, "converged": f.converged, "message": f.message,
                         "rss": f.rss, "sigma": f.sigma, "aicc": f.aicc, "bic": f.bic, "weight": f.weight,
                         "draws_converged": f.draws_converged, "durbin_watson": f.diagnostics.get("durbin_watson"),
                         "shapiro_p": f.diagnostics.get("shapiro_p"), "correlations": json.dumps(f.correlations),
                         "fit_report": f.report, "bounded_family": fitted_bounded(f, res.series.higher_is_better),
                         "log_scale": f.log_scale, "backtest_mae": f.backtest_mae,
                         "stacking_weight": f.stacking_weight})
            for name in f.params:
                lo, hi = f.intervals.get(name, (math.nan, math.nan))
                params.append({**key, "family": f.family, "param": name, "value": f.params[name],
                               "stderr": f.stderr.get(name), "lo95": lo, "hi95": hi, "fixed": name in f.fixed})
            if f.draws is not None:
                draws.append(pd.DataFrame({**key, "family": f.family, "draw": np.arange(len(f.draws)),
                                           "params": list(f.draws),
                                           "cost": f.draw_cost if f.draw_cost is not None else math.nan,
                                           "converged": f.draw_ok if f.draw_ok is not None else True}))
            if f.bands is not None:
                bands.append(f.bands.assign(**key, family=f.family))
        s = res.selection
        selection.append({**base, "best_family": s.best_family, "best_weight": s.best_weight,
                          "bounded_weight": s.aicc_bounded_weight, "p_bounded": s.p_bounded,
                          "valid_draws": s.valid_draws, "excluded_draws": s.excluded_draws,
                          "not_increasing": json.dumps(s.not_increasing), "decisive": s.decisive,
                          "backtest_best": s.backtest_best, "stacking_best": s.stacking_best,
                          "p_bounded_stacking": s.p_bounded_stacking, "weighting": s.weighting,
                          "held_out_points": s.held_out_points, "note": s.note, "n": len(res.series.frame),
                          "n_clusters": int(res.series.frame["cluster"].nunique()),
                          "x_min": float(res.series.frame["x"].min()), "x_max": float(res.series.frame["x"].max())})
        if len(res.backtests):
            backtests.append(res.backtests.assign(**key))
        if len(res.held_out):
            points.append(res.held_out.assign(**key))
    cat = lambda items: pd.concat(items, ignore_index=True) if items else pd.DataFrame()  # noqa: E731
    return {"fits": pd.DataFrame(fits), "fit_params": pd.DataFrame(params), "fit_draws": cat(draws),
            "fit_bands": cat(bands), "selection": pd.DataFrame(selection), "backtests": cat(backtests),
            "backtest_points": cat(points)}


def results_from_frames(fits: pd.DataFrame, params: pd.DataFrame, draws: pd.DataFrame | None = None
                        ) -> dict[tuple, dict[str, FitResult]]:
    """Stored rows -> FitResult objects, keyed by (metric, source, source_version, x_axis) then family: the
    one place a parameter vector is rebuilt from `fit_params`."""
    keys = ["metric", "source", "source_version", "x_axis"]
    out: dict[tuple, dict[str, FitResult]] = {}
    by_fit = {k: g for k, g in params.groupby(keys + ["family"])} if len(params) else {}
    by_draw = {k: g for k, g in draws.groupby(keys + ["family"])} if draws is not None and len(draws) else {}
    for row in fits.to_dict("records"):
        fkey = tuple(row[k] for k in keys + ["family"])
        part = by_fit.get(fkey)
        result = FitResult(row["family"], bool(row["converged"]), row.get("message") or "",
                           n=int(row.get("n") or 0), k=int(row.get("k") or 0), rss=row.get("rss", math.nan),
                           sigma=row.get("sigma", math.nan), aicc=row.get("aicc", math.nan),
                           bic=row.get("bic", math.nan), weight=float(row.get("weight") or 0.0),
                           log_scale=bool(row.get("log_scale") or False),
                           stacking_weight=_float(row.get("stacking_weight")))
        if part is not None:
            result.params = {r["param"]: float(r["value"]) for r in part.to_dict("records")}
            result.fixed = {r["param"]: float(r["value"]) for r in part.to_dict("records") if r["fixed"]}
            result.intervals = {r["param"]: (r["lo95"], r["hi95"]) for r in part.to_dict("records")}
            if set(result.params) != set(result.model.param_names):
                result.params = {}
        d = by_draw.get(fkey)
        if d is not None and len(d):
            d = d.sort_values("draw")
            result.draws = np.stack(d["params"].to_numpy())
            if "cost" in d:
                result.draw_cost = d["cost"].to_numpy(dtype=float)
            if "converged" in d:
                result.draw_ok = d["converged"].fillna(True).to_numpy(dtype=bool)
        out.setdefault(fkey[:4], {})[row["family"]] = result
    return out


def _float(value) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def fit_records(table: pd.DataFrame) -> list[dict]:
    """fit_table rows as JSON-able dicts (NaN -> None)."""
    def clean(v):
        if isinstance(v, float | np.floating):
            return float(v) if np.isfinite(v) else None
        if isinstance(v, np.bool_ | np.integer):
            return v.item()
        if isinstance(v, list):
            return [{k: clean(x) for k, x in item.items()} for item in v]
        return v
    return [{k: clean(v) for k, v in row.items()} for row in table.drop(columns=["parameters"]).to_dict(orient="records")]
