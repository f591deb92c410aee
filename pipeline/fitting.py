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
    if series.x_axis == "date":
        return ["exponential_time", "logistic"] if series.kind == "horizon" else ["logistic", "linear_log"]
    if series.kind == "loss":
        return ["saturating_loss", "power_law"]
    if series.kind == "horizon":
        return ["power_law", "logistic", "gompertz"]
    if series.unit == "fraction":
        return ["logistic", "gompertz", "power_law", "linear_log", "log_log"]
    return ["logistic", "gompertz", "linear_log", "log_log"]


def series_from_frame(frame: pd.DataFrame, x_axis: str) -> list[Series]:
    """Observations (store columns) -> series, one per (metric, source, source_version)."""
    out = []
    for (metric, source, version), part in frame.groupby(["metric", "source", "source_version"], sort=True):
        if x_axis == "compute":
            part = part[part["train_flop"].notna() & (part["train_flop"] > 0)]
            x = np.log10(part["train_flop"].to_numpy(dtype=float))
        else:
            part = part[part["release_date"].notna()]
            dates = pd.to_datetime(part["release_date"])
            x = (dates.dt.year + (dates.dt.dayofyear - 1) / 365.25).to_numpy(dtype=float)
        if len(part) < MIN_POINTS:
            continue
        dates = pd.to_datetime(part["release_date"])
        release_year = (dates.dt.year + (dates.dt.dayofyear - 1) / 365.25).to_numpy(dtype=float)
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


def load_series(db, metrics: list[str] | None = None, x_axes=("compute", "date")) -> list[Series]:
    con = store.connect(db, read_only=True)
    try:
        frame = con.execute("SELECT * FROM observations").df()
    finally:
        con.close()
    if metrics:
        unknown = sorted(set(metrics) - set(frame["metric"]))
        if unknown:
            raise ScalegapError(f"no observations for metric(s) {', '.join(unknown)}. "
                                f"Fix: see `scalegap status` for the stored metrics")
        frame = frame[frame["metric"].isin(metrics)]
    return [s for axis in x_axes for s in series_from_frame(frame, axis)]


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


def batched_lm(fam: Family, x, y, weights, p0, free, lower, upper, log_response=False, iterations=150, tol=1e-9):
    """Weighted Levenberg–Marquardt for D problems at once. weights: (D, N); p0: (P,) or (D, P).
    Returns (params (D, P), converged (D,), weighted RSS (D,))."""
    weights = np.asarray(weights, dtype=float)
    d = weights.shape[0]
    p = np.array(np.broadcast_to(p0, (d, len(free))), dtype=float)
    idx = np.flatnonzero(free)
    lam = np.full(d, 1e-3)

    def cost_of(params):
        r = _residuals(fam, x, y, params, log_response)
        c = np.sum(weights * r**2, axis=1)
        return np.where(np.isfinite(c), c, np.inf), r

    cost, r = cost_of(p)
    done = np.zeros(d, dtype=bool)
    eye = np.eye(len(idx))
    for _ in range(iterations):
        j = _jac(fam, x, p, log_response)[..., idx]                     # (D, N, F)
        jw = j * weights[..., None]
        a = np.einsum("dnf,dng->dfg", jw, j)
        g = np.einsum("dnf,dn->df", jw, r)
        diag = np.einsum("dff->df", a)
        damped = a + (lam[:, None] * (diag + 1e-12))[:, :, None] * eye
        with np.errstate(all="ignore"):
            try:
                step = np.linalg.solve(damped, -g[..., None])[..., 0]
            except np.linalg.LinAlgError:
                step = np.stack([np.linalg.lstsq(m, -v, rcond=None)[0] for m, v in zip(damped, g, strict=True)])
        trial = p.copy()
        trial[:, idx] = np.clip(p[:, idx] + np.nan_to_num(step), lower[idx], upper[idx])
        new_cost, new_r = cost_of(trial)
        better = (new_cost < cost) & ~done
        improvement = np.where(better, (cost - new_cost) / np.maximum(cost, 1e-300), 0.0)
        p[better] = trial[better]
        r[better] = new_r[better]
        cost = np.where(better, new_cost, cost)
        lam = np.where(better, np.maximum(lam / 3, 1e-12), np.minimum(lam * 4, 1e12))
        # converged: a step that barely helps, or no step helps even at heavy damping (a minimum)
        done |= (better & (improvement < tol)) | (lam >= 1e10)
        if done.all():
            break
    converged = done & np.isfinite(cost)
    return p, converged, cost


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


def _point_fit(fam: Family, series: Series) -> FamilyFit:
    x, y = series.frame["x"].to_numpy(), series.frame["y"].to_numpy()
    meta = series.meta
    fixed = fam.fixed(x, y, meta)
    lower, upper = fam.bounds(x, y, meta)
    free = np.array([name not in fixed for name in fam.param_names])
    best = None
    for start in fam.starts(x, y, meta):
        start = np.array(start, dtype=float)
        for i, name in enumerate(fam.param_names):
            if name in fixed:
                start[i] = fixed[name]
        params = lmfit.Parameters()
        for i, name in enumerate(fam.param_names):
            lo, hi = float(lower[i]), float(upper[i])
            value = float(np.clip(start[i], lo, hi)) if name not in fixed else fixed[name]
            if name in fixed:
                params.add(name, value=value, vary=False)
            else:
                params.add(name, value=value, min=lo if np.isfinite(lo) else -np.inf,
                           max=hi if np.isfinite(hi) else np.inf)

        def residual(prm, fam=fam):
            vec = np.array([prm[n].value for n in fam.param_names])
            return _residuals(fam, x, y, vec, series.log_response)

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
    # Selection compares every family on the same residual scale.
    resid = _residuals(fam, x, y, vec, series.log_response)
    best.rss = float(np.sum(resid**2))
    best.sigma = math.sqrt(best.rss / max(n - k + 1, 1))
    if n - k - 1 > 0 and best.rss > 0:
        best.aicc = n * math.log(best.rss / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)
        best.bic = n * math.log(best.rss / n) + k * math.log(n)
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
    weights = cluster_bootstrap_weights(series.frame["cluster"].to_numpy(), draws, rng)
    params, converged, cost = batched_lm(fam, x, y, weights, p0, free, lower, upper, series.log_response)
    fit.draws = params
    fit.draws_converged = float(converged.mean())
    for i, name in enumerate(fam.param_names):
        fit.intervals[name] = (float(np.nanpercentile(params[:, i], 2.5)), float(np.nanpercentile(params[:, i], 97.5)))
    # Bands: the mean curve's spread across draws, and a new observation's (adds residual noise).
    span = np.ptp(x)
    grid = np.linspace(x.min(), x.max() + 0.25 * span, GRID_POINTS)
    curves = fam.value(grid, params)
    dof = np.maximum(weights.sum(axis=1) - free.sum(), 1.0)
    sigma = np.sqrt(cost / dof)[:, None]
    noise = rng.standard_normal(curves.shape) * sigma
    if series.log_response:
        predictive = np.maximum(curves, 1e-300) * 10.0**noise
    else:
        predictive = curves + noise
    point = fam.value(grid, p0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = lambda a, level: np.nanpercentile(a, level, axis=0)  # noqa: E731
        fit.bands = pd.DataFrame({
            "x": grid, "fit": point, "mean_lo95": q(curves, 2.5), "mean_hi95": q(curves, 97.5),
            "pred_lo95": q(predictive, 2.5), "pred_hi95": q(predictive, 97.5),
            "pred_lo80": q(predictive, 10), "pred_hi80": q(predictive, 90)})


def akaike_weights(aicc: list[float]) -> np.ndarray:
    a = np.array(aicc, dtype=float)
    ok = np.isfinite(a)
    w = np.zeros_like(a)
    if ok.any():
        rel = np.exp(-0.5 * (a[ok] - a[ok].min()))
        w[ok] = rel / rel.sum()
    return w


def select(fits: list[FamilyFit]) -> dict:
    weights = akaike_weights([f.aicc if f.converged else math.nan for f in fits])
    for fit, w in zip(fits, weights, strict=True):
        fit.weight = float(w)
    if not any(weights > 0):
        return {"best_family": None, "bounded_weight": math.nan, "decisive": False,
                "note": "no family converged: nothing to select"}
    best = fits[int(np.argmax(weights))]
    bounded = float(sum(f.weight for f in fits if FAMILIES[f.family].bounded_family))
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
            fit = _point_fit(fam, train)
            if not fit.converged or not fit.params:
                continue
            bootstrap(fam, train, fit, draws, rng)
            tx, ty = test["x"].to_numpy(), test["y"].to_numpy()
            curves = fam.value(tx, fit.draws)
            x_train = train.frame["x"].to_numpy()
            resid = _residuals(fam, x_train, train.frame["y"].to_numpy(), fit.draws, series.log_response)
            sigma = np.sqrt(np.nanmean(resid**2, axis=1))[:, None]
            noise = rng.standard_normal(curves.shape) * sigma
            with np.errstate(over="ignore"):
                pred = np.maximum(curves, 1e-300) * 10.0**noise if series.log_response else curves + noise
            point = fam.value(tx, np.array([fit.params[n] for n in fam.param_names]))
            err = (np.log10(np.maximum(point, 1e-300)) - np.log10(ty)) if series.log_response else point - ty
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cover = {lvl: float(np.mean((ty >= np.nanpercentile(pred, 50 - lvl / 2, axis=0))
                                            & (ty <= np.nanpercentile(pred, 50 + lvl / 2, axis=0)))) for lvl in (80, 95)}
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
            continue  # a date-only or inference-only family on another axis
        if not fam.applies(y):
            fits.append(FamilyFit(name, False, "not applicable: the values are outside this family's range"))
            continue
        try:
            fit = _point_fit(fam, series)
            if fit.params:
                bootstrap(fam, series, fit, bootstrap_draws, rng)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError, OverflowError) as exc:
            fit = FamilyFit(name, False, f"fit failed: {exc}")
        fits.append(fit)
    selection = select(fits)
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
                         "fit_report": f.report, "bounded_family": FAMILIES[f.family].bounded_family})
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


def fit_stage(db, run_id: str, metrics=None, x_axes=("compute", "date"), families=None, bootstrap: int = 1000,
              seed: int = 0, progress=None) -> dict:
    series = load_series(db, metrics, x_axes)
    results = []
    for i, s in enumerate(series):
        if progress:
            progress(i, len(series), s.label)
        results.append(fit_series(s, families, bootstrap, seed))
    counts = store_fits(db, run_id, results)
    return {"series": len(series), "fits": counts.get("fits", 0),
            "converged": int(sum(f.converged for r in results for f in r.fits))}


def default_db() -> Path:
    return store.resolve_db(None)
