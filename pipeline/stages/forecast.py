"""Forecast stage: every run keeps its forecasts, and scores every earlier run's forecasts against the
observations that have arrived since.

Forecasts. For each fitted series, predictive quantiles (2.5, 5, 10, 25, 50, 75, 90, 95, 97.5%) of a new
observation of the metric, from the model-averaged predictive (`fitting.average_predictive`: every family's
bootstrap curves plus residual noise, mixed by their stacking weights, or Akaike weights without backtests), on a grid of x: eight
points across the data and 0.25, 0.5, 1, 1.5 and 2 decades of compute (or inference budget) past the largest,
or 3, 6, 12, 18 and 24 months past the latest release for date series (on a compute axis each point's
compute is as uncertain as the series' median row's). Two variants are stored: `model`, the
predictive as fitted, and `calibrated` (the headline), its central intervals stretched about the median by the
split-conformal factors the run's pooled backtests give for that distance past the data, over the data's span
(`forecast_calibration`: up to a quarter of the span, and beyond).

Date trends fitted on record-setting models only (RunConfig.frontier_kinds; horizons by default) forecast the
next records, and are scored on new observations that set a record of their source when released.

Scores. An earlier run is one whose fit finished before this run's. Its forecasts of a metric are scored
against observations of that metric on the same axis that come from a source version the earlier run did not
have (a newer copy of the same source, or another source) and from a model it did not have (names compared
after `aliases.normalise`), at an x inside the forecast's grid; the quantiles are interpolated linearly in x
between grid points. CRPS, log score, PIT and coverage (`scoring.score_quantiles`) are averaged per
(forecast run, forecast series, variant) into `forecast_scores`.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from pipeline import aliases, fitting, scoring, store
from pipeline.config import RunConfig
from pipeline.stages.fit import KEYS, load_results

LEVELS = scoring.QUANTILE_LEVELS
QCOLS = list(scoring.COLUMNS)
STEPS_PAST = {"compute": (0.25, 0.5, 1.0, 1.5, 2.0), "inference": (0.25, 0.5, 1.0, 1.5, 2.0),
              "date": (0.25, 0.5, 1.0, 1.5, 2.0)}      # decades of compute / of budget; years
INSIDE = 8                                           # grid points across the data
MIN_CALIBRATION_POINTS = 30                          # backtest points (over >= 3 series) to recalibrate on
MIN_CALIBRATION_SERIES = 3
MISSED_LISTED = 20


# ------------------------------------------------------------------------------ grid and forecasts
def grid(x_min: float, x_max: float, x_axis: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, distance past the data) of a series' forecast points."""
    inside = np.linspace(x_min, x_max, INSIDE) if x_max > x_min else np.array([x_max])
    past = np.asarray(STEPS_PAST.get(x_axis, STEPS_PAST["compute"]), float)
    x = np.concatenate([inside, x_max + past])
    return x, np.maximum(x - x_max, 0.0)


def calibration_factors(points: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """Split-conformal factors per central level and extrapolation-distance bin from the model-averaged backtest
    points of every series (scoring.conformal_calibration), with coverage before and after (each series left
    out of its own factors)."""
    avg = points[points["family"] == fitting.AVERAGE] if len(points) else points
    groups = avg[KEYS].astype(str).agg("\x1f".join, axis=1) if len(avg) else pd.Series(dtype=str)
    distance = avg["beyond_span"] if len(avg) else None
    return scoring.conformal_calibration(avg, groups, distance, MIN_CALIBRATION_POINTS, MIN_CALIBRATION_SERIES)


def _coverage(points: pd.DataFrame, level: float) -> float:
    return scoring.central_coverage(points, level)


def forecast_rows(key: tuple, sel: dict, fits: dict[str, fitting.FitResult], points: pd.DataFrame,
                  factors: dict, seed: int, frontier_kinds=()) -> list[dict]:
    """Both variants of one series' forecasts as table rows (quantiles in the metric's unit)."""
    if not len(points):
        return []
    log_scale = any(f.log_scale for f in fits.values())
    weights, weighting = fitting.mixture_weights(list(fits.values()))
    x_min, x_max = float(points["x"].min()), float(points["x"].max())
    x, beyond = grid(x_min, x_max, key[3])
    bounds = fitting.bounds_for(sel.get("kind"), sel.get("unit"), sel.get("floor"), sel.get("ceiling"))
    rng = np.random.default_rng([seed, int(store.series_id(*key)[:8], 16)])
    # a future model's stated compute is as uncertain as a typical fitted one's
    x_sd = float(np.nanmedian(points["x_sd"])) if "x_sd" in points and points["x_sd"].notna().any() else 0.0
    pred = fitting.average_predictive(list(fits.values()), x, weights, None, bounds, points["x"].to_numpy(),
                                      np.full(len(x), x_sd), rng)
    if pred is None:
        return []
    q = pred.quantiles(rng, LEVELS)
    span = max(x_max - x_min, 1e-9)
    variants = {"model": q, "calibrated": scoring.recalibrate_by_distance(LEVELS, q, factors, beyond / span)}
    base = {**dict(zip(KEYS, key, strict=True)), "kind": sel.get("kind"), "unit": sel.get("unit"),
            "error_scale": "log10" if log_scale else sel.get("unit"), "weighting": weighting,
            "families": json.dumps({f: round(float(w), 6) for f, w in weights.items()}),
            "models": "frontier" if key[3] == "date" and sel.get("kind") in frontier_kinds else "all",
            "x_min": x_min, "x_max": x_max, "n_points": int(len(points))}
    rows = []
    for variant, values in variants.items():
        metric_units = 10.0 ** values if log_scale else values
        for j in range(len(x)):
            rows.append({**base, "variant": variant, "x": float(x[j]), "beyond": float(beyond[j]),
                         **{c: float(metric_units[i, j]) for i, c in enumerate(QCOLS)}})
    return rows


# ------------------------------------------------------------------------------ scoring earlier runs
def new_observations(observations: pd.DataFrame, had_versions: set, had_models: set) -> pd.DataFrame:
    """Observations from a source version the forecast run did not have, of a model it did not have."""
    if observations.empty:
        return observations
    version = list(zip(observations["source"], observations["source_version"], strict=True))
    fresh_version = np.array([v not in had_versions for v in version], bool)
    fresh_model = ~observations["model"].map(aliases.normalise).isin(had_models).to_numpy()
    return observations[fresh_version & fresh_model]


def score_forecast(forecast: pd.DataFrame, observations: pd.DataFrame, x_axis: str) -> dict | None:
    """One forecast series (one variant, rows sorted by x) scored on observations of its metric."""
    if observations.empty:
        return None
    part, x = fitting.on_axis(observations, x_axis)
    log_scale = forecast["error_scale"].iloc[0] == "log10"
    y = part["value"].to_numpy(float)
    keep = np.isfinite(x) & (x >= forecast["x"].min()) & (x <= forecast["x"].max()) & np.isfinite(y)
    if log_scale:
        keep &= y > 0
    if not keep.any():
        return None
    part, x, y = part[keep], x[keep], y[keep]
    q = np.stack([np.interp(x, forecast["x"].to_numpy(), _error_scale(forecast[c].to_numpy(), log_scale))
                  for c in QCOLS])
    ye = _error_scale(y, log_scale)
    scores = scoring.score_quantiles(LEVELS, q, ye)
    outside = ~scores["covered95"].to_numpy()
    back = (lambda v: 10.0 ** v) if log_scale else (lambda v: v)
    missed = [{"model": m, "source": f"{s}@{v}", "x": round(float(xi), 4), "value": float(yi),
               "q025": float(back(lo)), "q975": float(back(hi))}
              for m, s, v, xi, yi, lo, hi in zip(part["model"][outside], part["source"][outside],
                                                part["source_version"][outside], x[outside], y[outside],
                                                q[0][outside], q[-1][outside], strict=True)][:MISSED_LISTED]
    log_scores = scores["log_score"].to_numpy(float)
    return {"n": int(len(part)), "n_beyond": int(np.sum(x > forecast["x_max"].iloc[0])),
            "coverage50": float(scores["covered50"].mean()), "coverage80": float(scores["covered80"].mean()),
            "coverage95": float(scores["covered95"].mean()), "crps": float(scores["crps"].mean()),
            "log_score": float(np.nanmean(log_scores)) if np.isfinite(log_scores).any() else math.nan,
            "mean_pit": float(scores["pit"].mean()), "error_scale": forecast["error_scale"].iloc[0],
            "observed_sources": json.dumps(sorted({f"{s}@{v}" for s, v in zip(part["source"], part["source_version"],
                                                                              strict=True)})),
            "missed": json.dumps(missed)}


def _records(observations: pd.DataFrame) -> np.ndarray:
    """Which observations set a record of their source version when released."""
    out = np.zeros(len(observations), bool)
    for _, idx in observations.groupby(["source", "source_version"]).indices.items():
        part = observations.iloc[idx]
        out[idx] = fitting.frontier_mask(part["release_date"], part["value"], part["kind"].iloc[0] != "loss")
    return out


def _error_scale(values: np.ndarray, log_scale: bool) -> np.ndarray:
    values = np.asarray(values, float)
    if not log_scale:
        return values
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.where(values > 0, values, np.nan))


def score_earlier(con, run_id: str) -> pd.DataFrame:
    """Scores of every earlier run's forecasts against what this run's store holds that they did not have."""
    fitted = dict(con.execute("SELECT run_id, max(finished_at) FROM run_stages WHERE stage = 'fit' AND "
                              "status = 'succeeded' GROUP BY run_id").fetchall())
    mine = fitted.get(run_id)
    if mine is None:
        return pd.DataFrame()
    earlier = [r for r, t in fitted.items() if r != run_id and t is not None and t < mine]
    if not earlier:
        return pd.DataFrame()
    marks = ", ".join("?" * len(earlier))
    forecasts = con.execute(f"SELECT * FROM forecasts WHERE run_id IN ({marks}) ORDER BY run_id, metric, source, "
                            "source_version, x_axis, variant, x", earlier).df()
    if forecasts.empty:
        return pd.DataFrame()
    had = con.execute(f"SELECT DISTINCT run_id, metric, source, source_version, model FROM series_points "
                      f"WHERE run_id IN ({marks})", earlier).df()
    observations = con.execute("SELECT * FROM observations ORDER BY source, source_version, metric, model").df()
    versions = con.execute("SELECT source, source_version, retrieved_at FROM sources ORDER BY ALL").df()
    observations = fitting._newest_copies(observations, versions, None)
    by_metric = {m: g.assign(record=_records(g)) for m, g in observations.groupby("metric")}
    had_by = {k: g for k, g in had.groupby(["run_id", "metric"])}
    rows = []
    for (frun, metric), group in forecasts.groupby(["run_id", "metric"], sort=True):
        known = had_by.get((frun, metric), pd.DataFrame(columns=["source", "source_version", "model"]))
        fresh = new_observations(by_metric.get(metric, pd.DataFrame()),
                                 set(zip(known["source"], known["source_version"], strict=True)),
                                 set(known["model"].map(aliases.normalise)))
        if fresh.empty:
            continue
        for key, one in group.groupby(KEYS[1:] + ["variant"], sort=True):
            source, version, x_axis, variant = key
            # a trend of record-setting models forecasts the next records, not every model
            frontier = "models" in one and (one["models"] == "frontier").any()
            scored = score_forecast(one.sort_values("x"), fresh[fresh["record"]] if frontier else fresh, x_axis)
            if scored is not None:
                rows.append({"scored_run_id": run_id, "forecast_run_id": frun, "metric": metric, "source": source,
                             "source_version": version, "x_axis": x_axis, "variant": variant, **scored})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ the stage
def forecasts(con, run_id: str, config: RunConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(forecast rows, calibration rows) of a fit run; reads only."""
    selection = con.execute("SELECT * FROM selection WHERE run_id = ? AND best_family IS NOT NULL "
                            "ORDER BY metric, source, source_version, x_axis", [run_id]).df()
    limits = con.execute("SELECT metric, source, source_version, max(floor) AS floor, max(ceiling) AS ceiling "
                         "FROM observations GROUP BY ALL ORDER BY ALL").df()
    selection = selection.merge(limits, on=["metric", "source", "source_version"], how="left")
    points = con.execute("SELECT * FROM series_points WHERE run_id = ? ORDER BY ALL", [run_id]).df()
    held = con.execute("SELECT * FROM backtest_points WHERE run_id = ? ORDER BY ALL", [run_id]).df()
    if config.metrics:
        selection = selection[selection["metric"].isin(config.metrics)]
    factors, calibration = calibration_factors(held)
    results = load_results(con, run_id)
    by_series = {k: g for k, g in points.groupby(KEYS)} if len(points) else {}
    rows = []
    for sel in selection.to_dict("records"):
        key = tuple(sel[k] for k in KEYS)
        fits = {f: r for f, r in results.get(key, {}).items() if r.converged and r.params}
        rows.extend(forecast_rows(key, sel, fits, by_series.get(key, pd.DataFrame()), factors, config.seed,
                                  config.frontier_kinds))
    return pd.DataFrame(rows), calibration


def run(db, run_id: str, config: RunConfig) -> dict:
    con = store.connect(db, read_only=True)
    try:  # every computation before the write lock is taken
        made, calibration = forecasts(con, run_id, config)
    finally:
        con.close()
    with store.open_stage(db, run_id, "forecast") as con:
        n = store.replace_run_rows(con, "forecasts", run_id, made)
        store.replace_run_rows(con, "forecast_calibration", run_id, calibration)
        scores = score_earlier(con, run_id)   # inside the transaction: sees the forecasts just written
        con.execute("DELETE FROM forecast_scores WHERE scored_run_id = ?", [run_id])
        store.upsert(con, "forecast_scores", scores)
    headline = scores[scores["variant"] == "calibrated"] if len(scores) else scores
    return {"forecasts": n, "series": int(made[KEYS].drop_duplicates().shape[0]) if len(made) else 0,
            "scored": len(headline),
            "earlier_runs_scored": int(headline["forecast_run_id"].nunique()) if len(headline) else 0,
            "calibration": {f"{r['nominal']:.0%} {r['beyond_span']}": r["factor"] for r in calibration.to_dict("records")}}


# ------------------------------------------------------------------------------ reading the archive
SCORE_FIELDS = ["metric", "source", "x_axis", "forecast_run_id", "scored_run_id", "n", "coverage80", "coverage95",
                "crps"]


def scores_table(con, scored_run_id: str | None = None, metrics=None, variant: str | None = "calibrated"
                 ) -> pd.DataFrame:
    """Stored forecast scores, newest scoring run first (one variant unless `variant` is None)."""
    where, params = [], []
    if scored_run_id:
        where.append("scored_run_id = ?")
        params.append(scored_run_id)
    if variant:
        where.append("variant = ?")
        params.append(variant)
    sql = ("SELECT s.*, r.finished_at AS scored_at FROM forecast_scores s LEFT JOIN (SELECT run_id, "
           "max(finished_at) AS finished_at FROM run_stages WHERE stage = 'forecast' GROUP BY run_id) r "
           "ON r.run_id = s.scored_run_id" + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY scored_at DESC NULLS LAST, scored_run_id, forecast_run_id, metric, source, x_axis")
    frame = con.execute(sql, params).df()
    if metrics:
        frame = frame[frame["metric"].isin(metrics)]
    front = SCORE_FIELDS + ["source_version", "variant", "n_beyond", "coverage50", "log_score", "mean_pit",
                            "error_scale", "observed_sources", "missed"]
    return frame[[c for c in front if c in frame.columns]].reset_index(drop=True)


def backtest_summary(con, run_id: str) -> dict:
    """Pooled backtest coverage of a run: of the headline forecast (recalibrated, each series judged by factors
    fitted without it), of the model average as fitted, and of each family alone (held-out points pooled over
    series and cutoffs)."""
    points = con.execute("SELECT metric, source, source_version, x_axis, family, y, q025, q100, q500, q900, q975 "
                         "FROM backtest_points WHERE run_id = ?", [run_id]).df()
    calibration = con.execute("SELECT * FROM forecast_calibration WHERE run_id = ? ORDER BY nominal", [run_id]).df()
    avg = points[points["family"] == fitting.AVERAGE]
    fam = points[points["family"] != fitting.AVERAGE]
    out = {"run_id": run_id, "backtest_points": int(len(avg)),
           "backtest_series": int(avg[KEYS].drop_duplicates().shape[0]) if len(avg) else 0,
           "backtest_coverage80_model": _coverage(avg, 0.8), "backtest_coverage95_model": _coverage(avg, 0.95),
           "backtest_coverage80_families": _coverage(fam, 0.8), "backtest_coverage95_families": _coverage(fam, 0.95)}
    calibrated = len(calibration) and calibration["coverage_calibrated"].notna().all()
    for level in (0.8, 0.95):
        name = f"backtest_coverage{round(level * 100)}"
        rows = calibration[np.isclose(calibration["nominal"], level)] if len(calibration) else calibration
        out[name] = (float(np.average(rows["coverage_calibrated"], weights=np.maximum(rows["n"], 1e-9)))
                     if calibrated and len(rows) else out[f"{name}_model"])
        out[f"factor{round(level * 100)}"] = ({r["beyond_span"]: float(r["factor"]) for r in rows.to_dict("records")}
                                              if len(rows) else None)
    out["calibration"] = (calibration["method"].iloc[0] if calibrated else
                          "none: the model-averaged predictive as fitted")
    if avg.empty and not points.empty:
        out["calibration"] = "none: no model-averaged backtest points; families pooled"
        out["backtest_coverage80"], out["backtest_coverage95"] = out["backtest_coverage80_families"], \
            out["backtest_coverage95_families"]
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in out.items()}
