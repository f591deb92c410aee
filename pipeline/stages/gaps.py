"""Gaps stage: the observed gap on history of every dated series (pipeline.gaps), its groups read from the model
registry, beside what the metric's class predicts; writes gap_series and gap_summary in one transaction."""

from __future__ import annotations

import pandas as pd

from pipeline import fitting, store
from pipeline import gaps as G
from pipeline.config import RunConfig
from pipeline.ranges import known_range
from pipeline.schema import InputError

KEYS = ["metric", "source", "source_version"]
# Registry columns a user may name for a group of their own (`scalegap gaps --group country=China`).
GROUP_COLUMNS = ("organization", "country", "accessibility", "accessibility_detail", "confidence")


def dated_observations(con, metrics=None) -> pd.DataFrame:
    """Every dated observation (the newest copy of each source version) with what the registry says of its model."""
    frame = con.execute("""
        SELECT o.metric, o.source, o.source_version, o.model, o.release_date AS date, o.value, o.value_lo,
               o.value_hi, o.kind, o.unit, o.floor, o.ceiling, coalesce(o.train_flop, m.train_flop) AS train_flop,
               a.model AS registry_model, m.accessibility, m.accessibility_detail,
               coalesce(m.organization, o.organization) AS organization, m.country, m.confidence
        FROM observations o
        LEFT JOIN model_aliases a ON a.source = o.source AND a.alias = o.model AND a.status = 'matched'
        LEFT JOIN models m ON m.model = a.model
        WHERE o.release_date IS NOT NULL ORDER BY o.metric, o.source, o.source_version, o.model""").df()
    versions = con.execute("SELECT source, source_version, retrieved_at FROM sources ORDER BY ALL").df()
    frame = fitting._newest_copies(frame, versions, None)
    if metrics:
        frame = frame[frame["metric"].isin(metrics)]
    return frame


def compute(frame: pd.DataFrame, verdicts: dict[str, str], comparisons, draws: int, seed: int
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(gap_series, gap_summary) rows for every series and comparison where both groups have a model."""
    series_rows, summary_rows = [], []
    for (metric, source, version), part in frame.groupby(KEYS, sort=True):
        if len(part) < fitting.MIN_POINTS:
            continue
        first = part.iloc[0]
        known = known_range(first["kind"], first["unit"], part["floor"].max(), part["ceiling"].max())
        verdict = verdicts.get(metric) or ("meek" if known.bounded_performance else None)
        for i, name in enumerate(comparisons):
            result = G.observed_gap(part, name, known, first["unit"], draws=draws, seed=seed + i, verdict=verdict)
            if result is None or result.series.empty:
                continue
            keys = {"metric": metric, "source": source, "source_version": version, "comparison": name}
            series_rows.append(result.series.assign(**keys))
            summary_rows.append({**keys, "kind": first["kind"], "unit": first["unit"], **result.summary,
                                 "note": _note(name, result.summary, verdicts.get(metric))})
    series = pd.concat(series_rows, ignore_index=True) if series_rows else pd.DataFrame()
    return series, pd.DataFrame(summary_rows)


def _note(name: str, s: dict, verdict: str | None) -> str:
    c = G.comparison(name)
    basis = "" if verdict else " (class from the metric's known range: no verdict stored for this run)"
    return (f"{c.laggard} against {c.leading}; {s['n_laggard']} of {s['n_models']} models lag. Observed: "
            f"{s['shape']}; predicted: {s['predicted'] or 'nothing (no class)'}{basis}")


def run(db, run_id: str, config: RunConfig | None = None, comparisons: list[str] | None = None,
        draws: int | None = None, seed: int | None = None) -> dict:
    """Observed gaps of every dated series under the built-in comparisons (and any `COLUMN=VALUE` groups)."""
    names = list(G.COMPARISONS) + [c for c in comparisons or [] if c not in G.COMPARISONS]
    for name in names:
        try:
            G.comparison(name)
        except ValueError as exc:
            raise InputError("--group", str(exc), "give COLUMN=VALUE, e.g. country=China") from None
        column = name.partition("=")[0]
        if name not in G.COMPARISONS and column not in GROUP_COLUMNS:
            raise InputError("--group", f"no registry column {column!r}", f"use one of {', '.join(GROUP_COLUMNS)}")
    # the run's Monte Carlo draws of the gap, at most 500 here (a band of a step function needs no more)
    draws = draws if draws is not None else (min(config.draws.projection, 500) if config else 500)
    seed = seed if seed is not None else (config.seed if config else 0)
    con = store.connect(db, read_only=True)
    try:
        frame = dated_observations(con, config.metrics if config else None)
        verdicts = dict(con.execute("SELECT metric, verdict FROM metric_verdicts WHERE run_id = ? ORDER BY metric",
                                    [run_id]).fetchall())
    finally:
        con.close()
    series, summary = compute(frame, verdicts, names, draws, seed)
    with store.open_stage(db, run_id, "gaps") as con:
        n = store.replace_run_rows(con, "gap_series", run_id, series)
        store.replace_run_rows(con, "gap_summary", run_id, summary)
    return {"series": int(len(summary)), "rows": int(n), "draws": int(draws),
            "metrics": int(summary["metric"].nunique()) if len(summary) else 0}


def load(con, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored (summary, series) of a run."""
    summary = con.execute("SELECT * FROM gap_summary WHERE run_id = ? ORDER BY metric, source, source_version, "
                          "comparison", [run_id]).df()
    series = con.execute('SELECT * FROM gap_series WHERE run_id = ? ORDER BY metric, source, source_version, '
                         'comparison, "date"', [run_id]).df()
    return summary, series


SERIES_FIELDS = ("date", "frontier", "frontier_model", "laggard", "laggard_model", "gap", "gap_lo", "gap_hi",
                 "months_behind", "months_lo", "months_hi")


def records(summary: pd.DataFrame, series: pd.DataFrame) -> list[dict]:
    """Per metric, source and comparison: the summary, its `series` and its `latest` point (JSON-ready)."""
    import json

    def plain(frame: pd.DataFrame) -> list[dict]:
        return json.loads(frame.to_json(orient="records", date_format="iso"))

    by_key = {k: g for k, g in series.groupby(KEYS + ["comparison"], sort=False)} if len(series) else {}
    out = []
    for row in plain(summary.drop(columns=["run_id"])):
        points = by_key.get(tuple(row[k] for k in KEYS + ["comparison"]), series.iloc[0:0])
        listed = plain(points[list(SERIES_FIELDS)])
        row["series"] = listed
        row["latest"] = listed[-1] if listed else None
        out.append(row)
    return out


__all__ = ["run", "load", "compute", "dated_observations", "records"]
