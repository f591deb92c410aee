"""Project stage: every fitted series (and the scenario's explicit curves) projected under the run's
growth scenario; peaks, closing dates, limits, Monte Carlo bands and the warnings that qualify them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pipeline import projection, store
from pipeline.config import RunConfig
from pipeline.ranges import industry_compute, known_range
from pipeline.schema import InputError
from pipeline.stages.fit import KEYS, load_results


def stored_curves(con, run_id: str, scenario: projection.Scenario, requests: list[dict] | None = None
                  ) -> tuple[list[projection.Curve], list[dict]]:
    """Best family (or the named one) of every fitted series in the run, or only the requested metrics."""
    selection = con.execute("SELECT * FROM selection WHERE run_id = ? AND best_family IS NOT NULL "
                            "ORDER BY metric, source, source_version, x_axis", [run_id]).df()
    points = con.execute("SELECT * FROM series_points WHERE run_id = ? ORDER BY ALL", [run_id]).df()
    limits = con.execute("SELECT metric, source, source_version, max(floor) AS floor, max(ceiling) AS ceiling "
                         "FROM observations GROUP BY ALL ORDER BY ALL").df()
    cls = con.execute("SELECT * FROM classifications WHERE run_id = ? ORDER BY ALL", [run_id]).df()
    results = load_results(con, run_id)
    # Several versions of one source (METR-Horizon-v1 and v1.1) would share a curve name, and the later
    # would silently overwrite the earlier in the store (key run, scenario, curve): name the version then.
    n_versions = selection.groupby(["metric", "source", "x_axis"])["source_version"].transform("nunique")
    selection = selection.assign(label=np.where(n_versions > 1, selection["source"] + "@" + selection["source_version"],
                                                selection["source"]))
    ceilings = {tuple(r[:3]): (r[3], r[4]) for r in limits.itertuples(index=False)}
    warnings = {tuple(r[k] for k in KEYS): json.loads(r["warnings"] or "[]") for r in cls.to_dict("records")} \
        if len(cls) and "warnings" in cls else {}
    skipped, wanted = [], []
    if requests is None:
        wanted = [(row, row["best_family"], None) for row in selection.to_dict("records")]
    else:
        for spec in requests:
            rows = selection[selection["metric"] == spec["metric"]]
            if "source" in spec:
                rows = rows[rows["source"] == spec["source"]]
            rows = rows[rows["x_axis"] == spec.get("x_axis", "compute")] if len(rows) > 1 else rows
            if rows.empty:
                skipped.append({"curve": spec["name"], "reason": f"metric {spec['metric']!r} has no fit in run {run_id}"})
                continue
            for row in rows.to_dict("records"):
                # one metric from several sources: one curve per source, named apart
                named = spec if len(rows) == 1 else {**spec, "name": f"{spec['name']} [{row['label']}]"}
                wanted.append((row, spec.get("family", row["best_family"]), named))
    by_series = {k: g for k, g in points.groupby(KEYS)} if len(points) else {}
    out = []
    for row, family, spec in wanted:
        key = tuple(row[k] for k in KEYS)
        fit = results.get(key, {}).get(family)
        if fit is None or not fit.params:
            skipped.append({"curve": row["metric"], "reason": f"family {family} did not converge for {row['metric']}"})
            continue
        if row["x_axis"] == "inference" and "inference" not in scenario.growth:
            skipped.append({"curve": row["metric"], "reason": "fitted against inference compute but the scenario has "
                            "no growth.inference; add inference = ... under [growth]"})
            continue
        floor, ceiling = ceilings.get(key[:3], (None, None))
        name = (spec or {}).get("name") or f"{row['metric']} [{row['label']}] vs {row['x_axis']}"
        out.append(projection.fitted_curve(
            name, fit, row, by_series.get(key, pd.DataFrame(columns=["x", "y", "release_year"])), scenario,
            start_flop=(spec or {}).get("start_flop"), known=known_range(row["kind"], row["unit"], floor, ceiling),
            industry=industry_compute(row["kind"], row["unit"], ceiling), warnings=warnings.get(key, [])))
    return out, skipped


def run(db, run_id: str, config: RunConfig) -> dict:
    scenario = config.scenario
    con = store.connect(db, read_only=True)
    try:
        requests = [c for c in scenario.curves if "metric" in c]
        fitted, skipped = stored_curves(con, run_id, scenario) if scenario.project_fitted else ([], [])
        if config.metrics:
            fitted = [c for c in fitted if c.metric in config.metrics]
        asked, skipped_asked = stored_curves(con, run_id, scenario, requests) if requests else ([], [])
        verdicts = {tuple(r[:4]): r[4] for r in con.execute(
            "SELECT metric, source, source_version, x_axis, verdict FROM classifications WHERE run_id = ? "
            "ORDER BY ALL", [run_id]).fetchall()}
    finally:
        con.close()
    curves = projection.explicit_curves(scenario) + asked + fitted
    names = [c.name for c in curves]
    if len(set(names)) < len(names):  # the store keys on (run, scenario, curve): a twin would overwrite silently
        twin = next(n for n in names if names.count(n) > 1)
        raise InputError(scenario.path, f"curve name {twin!r} is used twice (a scenario curve and a fitted series?)",
                         "rename the scenario's curve", column="curve.name")
    summary, trajectories = projection.project(curves, scenario, config.draws.projection, config.seed, verdicts)
    sens = projection.sensitivity(projection.explicit_curves(scenario) + asked
                                  + projection.headline_curves(fitted), scenario)
    skipped_rows = pd.DataFrame(skipped + skipped_asked)
    if len(skipped_rows):
        summary = pd.concat([summary, skipped_rows.rename(columns={"reason": "note"}).assign(scenario=scenario.name)],
                            ignore_index=True)
    with store.open_stage(db, run_id, "project") as con:
        # replaced per (run, scenario): projecting another scenario on the same fit run keeps this one's rows
        # skipped curves have no numbers, and bands exist only with projection draws: NULL there
        only = {"where": "AND scenario = ?", "params": [scenario.name], "partial": True}
        n = store.replace_run_rows(con, "projections", run_id, summary, **only)
        store.replace_run_rows(con, "projection_trajectories", run_id, trajectories.assign(scenario=scenario.name), **only)
        store.replace_run_rows(con, "projection_sensitivity", run_id, sens.assign(scenario=scenario.name), **only)
        store.replace_run_rows(con, "scenarios", run_id, pd.DataFrame([projection.scenario_record(scenario)]), **only)
    return {"curves": n, "skipped": len(skipped_rows), "scenario": scenario.name}
