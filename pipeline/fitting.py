"""Fitting engine: series selection, lmfit point fits, batched bootstrap, model selection, backtests.

Which families are fitted to which series (x = log10 FLOP for compute, decimal year for date):

| series                        | residuals | families                                            |
|-------------------------------|-----------|-----------------------------------------------------|
| benchmark fraction vs compute | linear    | logistic, gompertz, power_law, linear_log, log_log  |
| index (ECI) / Elo vs compute  | linear    | logistic, gompertz, linear_log, log_log             |
| horizon (minutes) vs compute  | log10     | power_law, logistic, gompertz                       |
| loss vs compute               | linear    | saturating_loss, power_law (performance = -loss)    |
| horizon vs release date       | log10     | exponential_time, logistic                          |
| other metrics vs release date | linear    | logistic, linear_log                                |

Loss: families describe L itself; the performance metric is -L (curves.SaturatingLoss.higher_is_better
is False), so its asymptotics say -L is normal and bounded above by -E.

Uncertainty: >= 1000 bootstrap draws per (series, family), the generator seeded by (seed, hash of the
series key); whole clusters (model family / organisation) are resampled, rows when a series has fewer
than MIN_POINTS clusters. fit_bands holds a band for the mean curve (mean_*) and a wider one for a new
observation (pred_*: the mean curve plus residual noise).

Selection: AICc and BIC on each series' residual scale, Akaike weights from AICc. The verdict is
`decisive` only if the best family carries >= 0.6 of the weight and the bounded families' total weight
is not between 0.2 and 0.8; otherwise the note says the data do not decide.

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
from pathlib import Path

import lmfit
import numpy as np
import pandas as pd
from scipy import stats

from pipeline import store
from pipeline.curves import FAMILIES, Family
from pipeline.schema import ScalegapError

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
    frame: pd.DataFrame = field(repr=False)   # model, x, y, value_lo, value_hi, release_year, cluster

    @property
    def key(self) -> dict:
        return {"metric": self.metric, "source": self.source, "source_version": self.source_version,
                "x_axis": self.x_axis}

    @property
    def higher_is_better(self) -> bool:
        return self.kind != "loss"

    @property
    def log_response(self) -> bool:
        return self.kind == "horizon"

    @property
    def meta(self) -> dict:
        return {"floor": self.floor, "ceiling": self.ceiling, "unit": self.unit, "kind": self.kind}

    @property
    def label(self) -> str:
        return f"{self.metric} [{self.source}@{self.source_version}] vs {self.x_axis}"

    def seed_offset(self) -> int:
        text = json.dumps(self.key, sort_keys=True).encode()
        return int.from_bytes(hashlib.sha256(text).digest()[:4], "little")


def families_for(series: Series) -> list[str]:
    if series.x_axis == "inference":
        return ["exp_power_law", "logistic", "gompertz", "linear_log"] if series.unit == "fraction" else \
            ["linear_log", "log_log", "power_law"]
    if series.x_axis == "date":
        return ["exponential_time", "logistic"] if series.kind == "horizon" else ["logistic", "linear_log"]
    if series.kind == "loss":
        return ["saturating_loss", "power_law"]
    if series.kind == "horizon":
        return ["power_law", "logistic", "gompertz"]
    if series.unit == "fraction":
        return ["logistic", "gompertz", "power_law", "linear_log", "log_log"]
    return ["logistic", "gompertz", "linear_log", "log_log"]


def series_from_frame(frame: pd.DataFrame, x_axis: str, skipped: list[str] | None = None) -> list[Series]:
    """Observations (store columns) -> series, one per (metric, source, source_version)."""
    out = []
    for (metric, source, version), part in frame.groupby(["metric", "source", "source_version"], sort=True):
        if x_axis == "compute":
            part = part[part["train_flop"].notna() & (part["train_flop"] > 0)]
            x = np.log10(part["train_flop"].to_numpy(dtype=float))
        elif x_axis == "inference":  # log10 of the inference budget (samples k), paper §4
            budget = part["inference_budget"] if "inference_budget" in part else pd.Series(np.nan, index=part.index)
            part = part[budget.notna() & (budget > 0)]
            x = np.log10(part["inference_budget"].to_numpy(dtype=float)) if len(part) else np.array([])
        else:
            part = part[part["release_date"].notna()]
            dates = pd.to_datetime(part["release_date"])
            x = (dates.dt.year + (dates.dt.day_of_year - 1) / 365.25).to_numpy(dtype=float)
        if len(part) < MIN_POINTS:
            if skipped is not None and len(part):
                skipped.append(f"{metric} [{source}@{version}] vs {x_axis}: {len(part)} point(s) with "
                               f"{ {'compute': 'train_flop', 'inference': 'inference_budget'}.get(x_axis, 'release_date')}, "
                               f"fewer than {MIN_POINTS}")
            continue
        dates = pd.to_datetime(part["release_date"])
        release_year = (dates.dt.year + (dates.dt.day_of_year - 1) / 365.25).to_numpy(dtype=float)
        cluster = part["cluster"].fillna(part["model"]) if "cluster" in part else part["model"]
        sub = pd.DataFrame({"model": part["model"].to_numpy(), "x": x, "y": part["value"].to_numpy(dtype=float),
                            "value_lo": part["value_lo"].to_numpy(dtype=float), "value_hi": part["value_hi"].to_numpy(dtype=float),
                            "release_year": release_year, "cluster": cluster.astype(str).to_numpy()})
        sub = sub.sort_values(["x", "model"]).reset_index(drop=True)
        first = part.iloc[0]
        floor = first["floor"] if pd.notna(first["floor"]) else None
        ceiling = first["ceiling"] if pd.notna(first["ceiling"]) else None
        out.append(Series(metric, source, version, x_axis, first["kind"], first["unit"], floor, ceiling, sub))
    return out


def load_series(db, metrics: list[str] | None = None, x_axes=("compute", "date", "inference"),
                skipped: list[str] | None = None) -> list[Series]:
    """Series from the observations table; `skipped` (if given) collects why a series was left out."""
    con = store.connect(db, read_only=True)
    try:
        frame = con.execute("SELECT * FROM observations").df()
        versions = con.execute("SELECT source, source_version, retrieved_at FROM sources").df()
    finally:
        con.close()
    frame = _newest_copies(frame, versions, skipped)
    if metrics:
        unknown = sorted(set(metrics) - set(frame["metric"]))
        if unknown:
            raise ScalegapError(f"no observations for metric(s) {', '.join(unknown)}. "
                                f"Fix: see `scalegap status` for the stored metrics")
        frame = frame[frame["metric"].isin(metrics)]
    return [s for axis in x_axes for s in series_from_frame(frame, axis, skipped)]


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
    """Weighted Levenberg–Marquardt for D problems at once. weights: (D, N); p0: (P,) or (D, P).
    Bounds by clipping each step. Only problems still iterating are computed (the active set).
    Returns (params (D, P), converged (D,), weighted RSS (D,))."""
    weights = np.asarray(weights, dtype=float)
    d = weights.shape[0]
    p = np.array(np.broadcast_to(p0, (d, len(free))), dtype=float)
    idx = np.flatnonzero(free)
    lo, hi = np.asarray(lower, float)[idx], np.asarray(upper, float)[idx]
    lam = np.full(d, 1e-3)
    eye = np.eye(len(idx))

    def cost_of(params, w):
        with np.errstate(all="ignore"):
            r = _residuals(fam, x, y, params, log_response)
            c = np.sum(w * r**2, axis=1)
        return np.where(np.isfinite(c), c, np.inf), r

    cost, _ = cost_of(p, weights)
    done = np.zeros(d, dtype=bool)
    for _ in range(iterations):
        act = np.flatnonzero(~done)
        if not len(act):
            break
        pa, wa = p[act], weights[act]
        with np.errstate(all="ignore"):
            r = _residuals(fam, x, y, pa, log_response)
            j = _jac(fam, x, pa, log_response)[..., idx]                 # (A, N, F)
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
        new_cost, _ = cost_of(trial, wa)
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


def best_start(fam: Family, x, y, meta, log_response: bool, iterations: int = 60) -> tuple[np.ndarray, float]:
    """Polish every data-driven start at once with the batched solver; the lowest-RSS one."""
    fixed = fam.fixed(x, y, meta)
    lower, upper = fam.bounds(x, y, meta)
    starts = np.clip(np.array(fam.starts(x, y, meta), dtype=float), lower, upper)
    for i, name in enumerate(fam.param_names):
        if name in fixed:  # after clipping: a fixed value may sit outside the data-driven bounds
            starts[:, i] = fixed[name]
    free = np.array([name not in fixed for name in fam.param_names])
    params, _, cost = batched_lm(fam, x, y, np.ones((len(starts), len(x))), starts, free, lower, upper,
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
class FamilyFit:
    family: str
    converged: bool
    message: str
    params: dict[str, float] = field(default_factory=dict)
    stderr: dict[str, float] = field(default_factory=dict)
    fixed: dict[str, float] = field(default_factory=dict)
    correlations: dict[str, float] = field(default_factory=dict)
    report: str = ""
    n: int = 0
    k: int = 0
    rss: float = math.nan
    sigma: float = math.nan
    aicc: float = math.nan
    bic: float = math.nan
    weight: float = 0.0
    diagnostics: dict[str, float] = field(default_factory=dict)
    draws: np.ndarray | None = None           # (D, P) bootstrap parameter draws (full vectors)
    draws_converged: float = math.nan
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    bands: pd.DataFrame | None = None


@dataclass
class SeriesFit:
    series: Series
    fits: list[FamilyFit]
    selection: dict
    backtests: pd.DataFrame


def log_fit(fam: Family, series: Series) -> bool:
    """Residuals of log10(y)? For horizon series (every family), and for the families that are multiplicative by
    nature (power law, exponential in time) wherever the values are positive."""
    return series.log_response or (fam.log_space and bool(np.all(series.frame["y"].to_numpy() > 0)))


def _log_jacobian_term(series: Series, log_scale: bool) -> float:
    """-2 ln|dlog10(y)/dy| summed: what moves a log10-scale likelihood onto the series' own scale, so a family
    fitted on log10(y) is compared with the others by AICc/BIC on the same data (Akaike 1978)."""
    if series.log_response or not log_scale:
        return 0.0
    y = series.frame["y"].to_numpy(dtype=float)
    return float(2 * np.sum(np.log(y * math.log(10))))


def _quick_fit(fam: Family, series: Series) -> FamilyFit:
    """Batched-solver point fit without lmfit: for backtests, where only the parameters matter."""
    x, y = series.frame["x"].to_numpy(), series.frame["y"].to_numpy()
    fixed = fam.fixed(x, y, series.meta)
    vec, cost = best_start(fam, x, y, series.meta, log_fit(fam, series), iterations=150)
    ok = bool(np.isfinite(cost))
    return FamilyFit(fam.name, ok, "batched Levenberg–Marquardt" if ok else "no finite fit", fixed=fixed,
                     params={n: float(v) for n, v in zip(fam.param_names, vec, strict=True)} if ok else {},
                     n=len(y), rss=cost)


def _inside(value: float, lo: float, hi: float) -> float:
    """A start strictly inside finite bounds: lmfit's bound transform has zero gradient on a bound."""
    if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
        margin = 1e-3 * (hi - lo)
        return float(np.clip(value, lo + margin, hi - margin))
    return float(np.clip(value, lo, hi))


def _point_fit(fam: Family, series: Series) -> FamilyFit:
    x, y = series.frame["x"].to_numpy(), series.frame["y"].to_numpy()
    meta = series.meta
    fixed = fam.fixed(x, y, meta)
    lower, upper = fam.bounds(x, y, meta)
    free = np.array([name not in fixed for name in fam.param_names])
    log_scale = log_fit(fam, series)   # once: the residual below runs on every lmfit iteration
    best = None
    # lmfit from the best of the batched-polished starts; the raw starts only if that does not converge
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        polished, _ = best_start(fam, x, y, meta, log_scale)
    for start in [polished, *fam.starts(x, y, meta)]:
        if best is not None and best.converged:
            break
        start = np.array(start, dtype=float)
        for i, name in enumerate(fam.param_names):
            if name in fixed:
                start[i] = fixed[name]
        params = lmfit.Parameters()
        for i, name in enumerate(fam.param_names):
            lo, hi = float(lower[i]), float(upper[i])
            value = _inside(start[i], lo, hi) if name not in fixed else fixed[name]
            if name in fixed:
                params.add(name, value=value, vary=False)
            else:
                params.add(name, value=value, min=lo if np.isfinite(lo) else -np.inf,
                           max=hi if np.isfinite(hi) else np.inf)

        def residual(prm, fam=fam):
            vec = np.array([prm[n].value for n in fam.param_names])
            return _residuals(fam, x, y, vec, log_scale)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = lmfit.minimize(residual, params, method="leastsq", nan_policy="raise")
            except (ValueError, RuntimeError, OverflowError, FloatingPointError) as exc:
                best = best or FamilyFit(fam.name, False, f"lmfit failed from every start: {exc}", fixed=fixed)
                continue
        if not np.isfinite(result.chisqr):
            continue
        if best is None or not best.converged or result.chisqr < best.rss:
            vec = np.array([result.params[n].value for n in fam.param_names])
            best = FamilyFit(
                fam.name, bool(result.success), str(result.message), fixed=fixed,
                params={n: float(result.params[n].value) for n in fam.param_names},
                stderr={n: float(result.params[n].stderr) if result.params[n].stderr is not None else math.nan
                        for n in fam.param_names},
                correlations={f"{a}~{b}": float(c) for a in fam.param_names
                              for b, c in (result.params[a].correl or {}).items() if a < b},
                report=lmfit.fit_report(result), rss=float(result.chisqr))
            best._vec = vec  # type: ignore[attr-defined]
    if best is None:
        return FamilyFit(fam.name, False, "no starting point gave a finite fit", fixed=fixed)
    if not best.params:
        return best
    vec = best._vec  # type: ignore[attr-defined]
    n, k = len(y), int(free.sum()) + 1   # +1: the residual variance
    best.n, best.k = n, k
    # Selection compares every family on the series' own scale: a family fitted on log10(y) carries the
    # Jacobian of that change of scale in its likelihood.
    resid = _residuals(fam, x, y, vec, log_scale)
    best.rss = float(np.sum(resid**2))
    best.sigma = math.sqrt(best.rss / max(n - k + 1, 1))
    if n - k - 1 > 0 and best.rss > 0:
        deviance = n * math.log(best.rss / n) + _log_jacobian_term(series, log_scale)
        best.aicc = deviance + 2 * k + 2 * k * (k + 1) / (n - k - 1)
        best.bic = deviance + k * math.log(n)
    if log_scale and not series.log_response:
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


def bootstrap(fam: Family, series: Series, fit: FamilyFit, draws: int, rng: np.random.Generator) -> None:
    x, y = series.frame["x"].to_numpy(), series.frame["y"].to_numpy()
    lower, upper = fam.bounds(x, y, series.meta)
    free = np.array([name not in fit.fixed for name in fam.param_names])
    p0 = np.array([fit.params[n] for n in fam.param_names])
    clusters = series.frame["cluster"].to_numpy()
    # with too few clusters a cluster bootstrap has no spread to speak of: resample rows instead
    unit = "clusters" if len(np.unique(clusters)) >= MIN_POINTS else "rows"
    weights = cluster_bootstrap_weights(clusters if unit == "clusters" else np.arange(len(clusters)), draws, rng)
    fit.message = f"{fit.message} Bootstrap: {draws} draws resampling {unit} ({len(np.unique(clusters))} clusters)."
    if unit == "rows" and len(np.unique(clusters)) < len(clusters):
        fit.message += (" Rows share clusters (e.g. points read off one published curve), so they are not "
                        "independent: these intervals understate the uncertainty.")
    log_scale = log_fit(fam, series)
    params, converged, cost = batched_lm(fam, x, y, weights, p0, free, lower, upper, log_scale)
    fit.draws = params
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


def fitted_bounded(fit: FamilyFit, higher_is_better: bool = True) -> bool:
    """Bounded above as fitted: a loss power law is bounded (-L rises to 0) though the family usually is not."""
    fam = FAMILIES[fit.family]
    if not fit.params:
        return fam.bounded_family
    asym = fam.asymptotics(np.array([fit.params[n] for n in fam.param_names]), higher_is_better)
    return bool(asym.bounded) if asym.normal else fam.bounded_family


def select(fits: list[FamilyFit], higher_is_better: bool = True) -> dict:
    weights = akaike_weights([f.aicc if f.converged else math.nan for f in fits])
    for fit, w in zip(fits, weights, strict=True):
        fit.weight = float(w)
    if not any(weights > 0):
        return {"best_family": None, "bounded_weight": math.nan, "decisive": False,
                "note": "no family converged: nothing to select"}
    best = fits[int(np.argmax(weights))]
    bounded = float(sum(f.weight for f in fits if fitted_bounded(f, higher_is_better)))
    decisive = best.weight >= DECISIVE_WEIGHT and not (0.2 < bounded < 0.8)
    note = (f"{best.family} carries {best.weight:.0%} of the Akaike weight; bounded families {bounded:.0%}"
            + ("" if decisive else ": the data do not decide between the families"))
    return {"best_family": best.family, "best_weight": best.weight, "bounded_weight": bounded,
            "decisive": bool(decisive), "note": note}


def backtest(series: Series, families: list[str], rng: np.random.Generator, draws: int = 200) -> pd.DataFrame:
    """Rolling origin: fit on rows before a cutoff (release date when known, else compute), predict the rest."""
    frame = series.frame
    by_date = series.x_axis == "date" or frame["release_year"].notna().mean() >= 0.6
    order = frame["release_year"] if by_date else frame["x"]
    rows = []
    for quantile in (0.6, 0.7, 0.8):
        cutoff = float(np.nanquantile(order, quantile))
        train_mask = (order <= cutoff).to_numpy()
        test_mask = (order > cutoff).to_numpy()
        if train_mask.sum() < MIN_POINTS or test_mask.sum() < 2:
            continue
        train = Series(**{**series.__dict__, "frame": frame[train_mask].reset_index(drop=True)})
        test = frame[test_mask]
        for name in families:
            fam = FAMILIES[name]
            if not fam.applies(train.frame["y"].to_numpy()):
                continue
            fit = _quick_fit(fam, train)
            if not fit.converged or not fit.params:
                continue
            bootstrap(fam, train, fit, draws, rng)
            tx, ty = test["x"].to_numpy(), test["y"].to_numpy()
            curves = fam.value(tx, fit.draws)
            x_train = train.frame["x"].to_numpy()
            log_scale = log_fit(fam, train)
            resid = _residuals(fam, x_train, train.frame["y"].to_numpy(), fit.draws, log_scale)
            sigma = np.sqrt(np.nanmean(resid**2, axis=1))[:, None]
            noise = rng.standard_normal(curves.shape) * sigma
            with np.errstate(over="ignore"):
                pred = np.maximum(curves, 1e-300) * 10.0**noise if log_scale else curves + noise
            point = fam.value(tx, np.array([fit.params[n] for n in fam.param_names]))
            err = (np.log10(np.maximum(point, 1e-300)) - np.log10(ty)) if series.log_response else point - ty
            q = _percentile(pred, [10, 90, 2.5, 97.5])
            cover = {80: float(np.mean((ty >= q[0]) & (ty <= q[1]))), 95: float(np.mean((ty >= q[2]) & (ty <= q[3])))}
            rows.append({"family": name, "cutoff_axis": "release_date" if by_date else "log10_flop",
                         "cutoff": cutoff, "n_train": int(train_mask.sum()), "n_test": int(test_mask.sum()),
                         "mae": float(np.mean(np.abs(err))), "bias": float(np.mean(err)),
                         "coverage80": cover[80], "coverage95": cover[95],
                         "error_scale": "log10" if series.log_response else series.unit})
    out = pd.DataFrame(rows)
    if len(out):
        mean_cov = out.groupby("family")[["coverage80", "coverage95"]].transform("mean")
        out["undercovers"] = (mean_cov["coverage80"] < 0.65) | (mean_cov["coverage95"] < 0.80)
    return out


def fit_series(series: Series, families: list[str] | None = None, bootstrap_draws: int = 1000, seed: int = 0,
               backtest_draws: int = 200) -> SeriesFit:
    """Pure (no store): what a worker runs. Every family is attempted; failures are recorded, not raised."""
    rng = np.random.default_rng([seed, series.seed_offset()])
    names = list(families or families_for(series))
    fits = []
    y = series.frame["y"].to_numpy()
    for name in names:
        fam = FAMILIES[name]
        if fam.x_axis in ("date", "inference") and fam.x_axis != series.x_axis:
            if families:  # asked for by name: say why there is no fit rather than dropping it
                fits.append(FamilyFit(name, False, f"not applicable: {name} is a {fam.x_axis}-axis family and this "
                                                   f"series is against {series.x_axis}"))
            continue
        if not fam.applies(y):
            fits.append(FamilyFit(name, False, "not applicable: the values are outside this family's range"))
            continue
        try:
            fit = _point_fit(fam, series)
            if fit.params and bootstrap_draws > 0:
                bootstrap(fam, series, fit, bootstrap_draws, rng)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError, OverflowError) as exc:
            fit = FamilyFit(name, False, f"fit failed: {exc}")
        fits.append(fit)
    selection = select(fits, series.higher_is_better)
    tests = backtest(series, [f.family for f in fits if f.converged], rng, draws=backtest_draws)
    return SeriesFit(series, fits, selection, tests)


# ------------------------------------------------------------------------------ store
def fits_frames(results: list[SeriesFit]) -> dict[str, pd.DataFrame]:
    fits, params, draws, bands, selection, backtests = [], [], [], [], [], []
    for res in results:
        key = res.series.key
        base = {**key, "kind": res.series.kind, "unit": res.series.unit}
        for f in res.fits:
            fits.append({**base, "family": f.family, "n": f.n, "k": f.k, "converged": f.converged, "message": f.message,
                         "rss": f.rss, "sigma": f.sigma, "aicc": f.aicc, "bic": f.bic, "weight": f.weight,
                         "draws_converged": f.draws_converged, "durbin_watson": f.diagnostics.get("durbin_watson"),
                         "shapiro_p": f.diagnostics.get("shapiro_p"), "correlations": json.dumps(f.correlations),
                         "fit_report": f.report, "bounded_family": fitted_bounded(f, res.series.higher_is_better)})
            for name in f.params:
                lo, hi = f.intervals.get(name, (math.nan, math.nan))
                params.append({**key, "family": f.family, "param": name, "value": f.params[name],
                               "stderr": f.stderr.get(name), "lo95": lo, "hi95": hi, "fixed": name in f.fixed})
            if f.draws is not None:
                draws.append(pd.DataFrame({**key, "family": f.family, "draw": np.arange(len(f.draws)),
                                           "params": list(f.draws)}))
            if f.bands is not None:
                bands.append(f.bands.assign(**key, family=f.family))
        selection.append({**base, **{k: res.selection.get(k) for k in
                                     ("best_family", "best_weight", "bounded_weight", "decisive", "note")},
                          "n": len(res.series.frame)})
        if len(res.backtests):
            backtests.append(res.backtests.assign(**key))
    cat = lambda items: pd.concat(items, ignore_index=True) if items else pd.DataFrame()  # noqa: E731
    return {"fits": pd.DataFrame(fits), "fit_params": pd.DataFrame(params), "fit_draws": cat(draws),
            "fit_bands": cat(bands), "selection": pd.DataFrame(selection), "backtests": cat(backtests)}


def store_fits(db, run_id: str, results: list[SeriesFit]) -> dict[str, int]:
    frames = fits_frames(results)
    counts = {}
    with store.open_stage(db, run_id, "fit") as con:
        for table, frame in frames.items():
            counts[table] = store.replace_run_rows(con, table, run_id, frame)
        data = pd.concat([r.series.frame.assign(**r.series.key) for r in results], ignore_index=True) if results else pd.DataFrame()
        counts["series_points"] = store.replace_run_rows(con, "series_points", run_id, data)
    return counts


def fit_stage(db, run_id: str, metrics=None, x_axes=("compute", "date", "inference"), families=None, bootstrap: int = 1000,
              seed: int = 0, progress=None) -> dict:
    skipped: list[str] = []
    series = load_series(db, metrics, x_axes, skipped)
    results = []
    for i, s in enumerate(series):
        if progress:
            progress(i, len(series), s.label)
        results.append(fit_series(s, families, bootstrap, seed))
    counts = store_fits(db, run_id, results)
    return {"series": len(series), "fits": counts.get("fits", 0),
            "converged": int(sum(f.converged for r in results for f in r.fits)), "skipped": skipped}


def selection_table(db, run_id: str, metrics=None) -> pd.DataFrame:
    """Per series: best family, its weight, the bounded families' weight and whether the data decide."""
    con = store.connect(db, read_only=True)
    try:
        frame = con.execute("SELECT metric, source, source_version, x_axis, best_family, best_weight, bounded_weight, "
                            "decisive, note FROM selection WHERE run_id = ? ORDER BY ALL", [run_id]).df()
    finally:
        con.close()
    return frame[frame["metric"].isin(metrics)] if metrics else frame


def fit_table(db, run_id: str, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per (series, family) of a stored run: n, AICc, BIC, weight, parameters with intervals."""
    con = store.connect(db, read_only=True)
    try:
        fits = con.execute("SELECT metric, source, source_version, x_axis, family, n, converged, aicc, bic, weight "
                           "FROM fits WHERE run_id = ? ORDER BY metric, source, x_axis, weight DESC, family",
                           [run_id]).df()
        params = con.execute("SELECT metric, source, source_version, x_axis, family, param, value, lo95, hi95, fixed "
                             "FROM fit_params WHERE run_id = ?", [run_id]).df()
    finally:
        con.close()
    if metrics:
        fits = fits[fits["metric"].isin(metrics)].reset_index(drop=True)
    keys = ["metric", "source", "source_version", "x_axis", "family"]
    grouped = {k: g for k, g in params.groupby(keys)}
    lists, texts = [], []
    for row in fits.itertuples(index=False):
        part = grouped.get(tuple(getattr(row, k) for k in keys))
        items = [] if part is None else part.drop(columns=keys).to_dict(orient="records")
        lists.append(items)
        texts.append(", ".join(f"{i['param']}={i['value']:.4g}" + (" (fixed)" if i["fixed"] else
                                                                      f" [{i['lo95']:.3g}, {i['hi95']:.3g}]")
                               for i in items))
    return fits.assign(params=lists, parameters=texts)


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


def default_db() -> Path:
    return store.resolve_db(None)
