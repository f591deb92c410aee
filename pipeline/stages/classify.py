"""Classify stage: a verdict per fitted series (with its basis and warnings), one per metric, and the
counterpart pairs, at the run configuration's growth rates."""

from __future__ import annotations

import json

import pandas as pd

from pipeline import counterparts, store, taxonomy
from pipeline.config import RunConfig
from pipeline.ranges import industry_compute
from pipeline.stages.fit import KEYS, load_results, y_stats


def classify(con, run_id: str, config: RunConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(series rows, metric rows, counterpart pairs) of a fit run; reads only."""
    selection = con.execute("SELECT * FROM selection WHERE run_id = ? ORDER BY metric, source, source_version, "
                            "x_axis", [run_id]).df()
    points = con.execute("SELECT * FROM series_points WHERE run_id = ? ORDER BY metric, source, source_version, "
                         "x_axis, x, model", [run_id]).df()
    obs = con.execute("SELECT metric, source, source_version, max(floor) AS floor, max(ceiling) AS ceiling "
                      "FROM observations GROUP BY ALL ORDER BY ALL").df()
    results = load_results(con, run_id)
    if config.metrics:
        selection = selection[selection["metric"].isin(config.metrics)]
    limits = {tuple(r[:3]): (r[3], r[4]) for r in obs.itertuples(index=False)}
    by_series = {k: g for k, g in points.groupby(KEYS)} if len(points) else {}
    rows, pairs = [], []
    for sel in selection.to_dict("records"):
        key = tuple(sel[k] for k in KEYS)
        floor, ceiling = limits.get(key[:3], (None, None))
        sel = {**sel, "floor": floor, "ceiling": ceiling}
        fits = results.get(key, {})
        pts = by_series.get(key, pd.DataFrame(columns=["x", "y"]))
        log_scale = any(f.log_scale for f in fits.values())
        y_max, rise = y_stats(pts, log_scale)
        industry = industry_compute(sel["kind"], sel["unit"], ceiling)
        a, b = config.growth_rates(sel["x_axis"], industry)
        verdict = taxonomy.classify_series({**sel, "y_rise": rise}, fits, y_max, a, b, config.threshold, industry)
        row = {**{k: sel[k] for k in KEYS}, "kind": sel["kind"], "unit": sel["unit"], "floor": floor,
               "best_family": sel["best_family"], "n": sel["n"], "n_clusters": sel.get("n_clusters"), **verdict}
        rows.append(row)
        pairs.extend(counterparts.pairs_for_series(row, fits, pts, config.threshold))
    frame = pd.DataFrame(rows)
    metrics = [taxonomy.reconcile_metric(group.to_dict("records"))
               for _, group in frame.groupby("metric", sort=True)] if len(frame) else []
    return frame, pd.DataFrame(metrics), pd.DataFrame(pairs)


def run(db, run_id: str, config: RunConfig) -> dict:
    con = store.connect(db, read_only=True)
    try:  # every computation before the write lock is taken
        frame, metrics, pairs = classify(con, run_id, config)
    finally:
        con.close()
    stored = frame.assign(warnings=frame["warnings"].map(json.dumps)) if len(frame) else frame
    stored_metrics = metrics.assign(warnings=metrics["warnings"].map(json.dumps),
                                    series=metrics["series"].map(json.dumps)) if len(metrics) else metrics
    with store.open_stage(db, run_id, "classify") as con:
        n = store.replace_run_rows(con, "classifications", run_id, stored)
        store.replace_run_rows(con, "metric_verdicts", run_id, stored_metrics)
        store.replace_run_rows(con, "counterparts", run_id, pairs)
    return {"classified": n, "metrics": len(metrics), "counterparts": len(pairs),
            "verdicts": frame["verdict"].value_counts().sort_index().to_dict() if len(frame) else {}}
