"""Fit stage: series from the stored observations, every family fitted with bootstrap draws, stored.

`load_series` and `store_fits` are separate so the refresh flow can map `fitting.fit_series` (pure,
picklable) over a task runner between them; `run` does all three in this process.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import fitting, store
from pipeline.config import FRONTIER_KINDS, RunConfig
from pipeline.schema import ScalegapError

KEYS = ["metric", "source", "source_version", "x_axis"]


def load_series(db, metrics=None, x_axes=("compute", "date", "inference"),
                skipped: list[str] | None = None, frontier_kinds=FRONTIER_KINDS) -> list[fitting.Series]:
    """Series from the observations table; `skipped` (if given) collects why a series was left out. Date
    series of `frontier_kinds` are fitted on the models that set a record when released."""
    con = store.connect(db, read_only=True)
    try:
        # a forgotten version leaves future fits (the previous copy of its label, if any, takes its place)
        frame = store.drop_forgotten(con, con.execute("SELECT * FROM observations ORDER BY source, source_version, "
                                                      "metric, model").df())
        versions = store.drop_forgotten(con, con.execute("SELECT source, source_version, retrieved_at FROM sources "
                                                         "ORDER BY source, source_version").df())
    finally:
        con.close()
    frame = fitting._newest_copies(frame, versions, skipped)
    if metrics:
        unknown = sorted(set(metrics) - set(frame["metric"]))
        if unknown:
            raise ScalegapError(f"no observations for metric(s) {', '.join(unknown)}. "
                                f"Fix: see `scalegap status` for the stored metrics")
        frame = frame[frame["metric"].isin(metrics)]
    return [s for axis in x_axes for s in fitting.series_from_frame(frame, axis, skipped, tuple(frontier_kinds))]


def store_fits(db, run_id: str, results: list[fitting.SeriesFit]) -> dict[str, int]:
    frames = fitting.fits_frames(results)
    counts = {}
    with store.open_stage(db, run_id, "fit") as con:
        for table, frame in frames.items():
            counts[table] = store.replace_run_rows(con, table, run_id, frame)
        data = pd.concat([r.series.frame.assign(**r.series.key) for r in results], ignore_index=True) \
            if results else pd.DataFrame()
        counts["series_points"] = store.replace_run_rows(con, "series_points", run_id, data)
        store.register_series(con, frames["selection"])
    return counts


def fit_one(series: fitting.Series, config: RunConfig) -> fitting.SeriesFit:
    """What a worker runs for one series under the run's configuration."""
    return fitting.fit_series(series, list(config.families) if config.families else None,
                              bootstrap_draws=config.draws.fit, seed=config.seed,
                              backtest_draws=config.draws.backtest)


def run(db, run_id: str, config: RunConfig, progress=None) -> dict:
    skipped: list[str] = []
    series = load_series(db, config.metrics, config.x_axes, skipped, config.frontier_kinds)
    results = []
    for i, s in enumerate(series):
        if progress:
            progress(i, len(series), s.label)
        results.append(fit_one(s, config))
    counts = store_fits(db, run_id, results)
    return {"series": len(series), "fits": counts.get("fits", 0),
            "converged": int(sum(f.converged for r in results for f in r.fits)), "skipped": skipped}


# ------------------------------------------------------------------------------ reading a fit run
def load_results(con, run_id: str, with_draws: bool = True) -> dict[tuple, dict[str, fitting.FitResult]]:
    """Stored fits of a run as FitResult objects, by series key then family."""
    fits = con.execute("SELECT * FROM fits WHERE run_id = ? ORDER BY metric, source, source_version, x_axis, "
                       "family", [run_id]).df()
    params = con.execute("SELECT * FROM fit_params WHERE run_id = ? ORDER BY metric, source, source_version, "
                         "x_axis, family, param", [run_id]).df()
    draws = con.execute("SELECT * FROM fit_draws WHERE run_id = ? ORDER BY metric, source, source_version, "
                        "x_axis, family, draw", [run_id]).df() if with_draws else None
    return fitting.results_from_frames(fits, params, draws)


def selection_table(db, run_id: str, metrics=None) -> pd.DataFrame:
    """Per series: best family, its weight, the bounded share of the weights and whether the data decide."""
    con = store.connect(db, read_only=True)
    try:
        frame = con.execute("SELECT metric, source, source_version, x_axis, best_family, best_weight, bounded_weight, "
                            "p_bounded, backtest_best, stacking_best, p_bounded_stacking, weighting, held_out_points, "
                            "decisive, note FROM selection WHERE run_id = ? ORDER BY ALL", [run_id]).df()
    finally:
        con.close()
    return frame[frame["metric"].isin(metrics)] if metrics else frame


def fit_table(db, run_id: str, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per (series, family) of a stored run: n, AICc, BIC, weight, parameters with intervals."""
    con = store.connect(db, read_only=True)
    try:
        fits = con.execute("SELECT metric, source, source_version, x_axis, family, n, converged, aicc, bic, weight, "
                           "stacking_weight, backtest_mae FROM fits WHERE run_id = ? "
                           "ORDER BY metric, source, x_axis, weight DESC, family", [run_id]).df()
        params = con.execute("SELECT metric, source, source_version, x_axis, family, param, value, lo95, hi95, fixed "
                             "FROM fit_params WHERE run_id = ? ORDER BY ALL", [run_id]).df()
    finally:
        con.close()
    if metrics:
        fits = fits[fits["metric"].isin(metrics)].reset_index(drop=True)
    keys = KEYS + ["family"]
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


def y_stats(points: pd.DataFrame, log_scale: bool) -> tuple[float, float]:
    """(best value seen, rise on the series' error scale) of one series' points."""
    y = points["y"].to_numpy(dtype=float)
    if not len(y):
        return np.nan, np.nan
    scale = np.log10(np.maximum(y, 1e-300)) if log_scale else y
    return float(np.max(y)), float(np.ptp(scale))
