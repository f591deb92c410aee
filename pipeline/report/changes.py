"""What changed since the previous run: the section a weekly refresh is read for. New observations, changed
verdicts, moved peak and closing dates, and the archived forecasts this run's new observations missed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pipeline.report.summary import label, month

MOVED_YEARS = 1 / 12       # a peak or closing date that moved by less than a month has not moved
MOVED_P = 0.1              # nor has a P(bounded) that moved by less than this
MOST = 6                   # names listed per line before "and N more"


def previous_run(con, run_id: str) -> tuple[str, str] | None:
    """The newest earlier run that classified anything: (run_id, its date)."""
    row = con.execute(
        "SELECT r.run_id, CAST(r.started_at AS VARCHAR) FROM runs r WHERE r.started_at < "
        "(SELECT started_at FROM runs WHERE run_id = ?) AND EXISTS (SELECT 1 FROM metric_verdicts v "
        "WHERE v.run_id = r.run_id) ORDER BY r.started_at DESC LIMIT 1", [run_id]).fetchone()
    return (row[0], row[1][:10]) if row else None


def compare(con, run_id: str, scenario: str | None = None) -> dict:
    """{previous, previous_date, items (sentences), scores (this run's scoring of earlier forecasts)}."""
    scores = _scores(con, run_id)
    before = previous_run(con, run_id)
    if before is None:
        return {"previous": None, "items": [], "scores": scores}
    prev, date = before
    new, lines = _new_observations(con, run_id, prev)
    items = lines + _verdicts(con, run_id, prev) + _dates(con, run_id, prev, scenario) + _missed(scores, new)
    return {"previous": prev, "previous_date": date, "items": items, "scores": scores}


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:MOST])
    return shown + (f" and {len(names) - MOST} more" if len(names) > MOST else "")


def _new_observations(con, run_id: str, prev: str) -> tuple[set, list[str]]:
    """Models this run's ingest brought that no earlier ingest had and the previous run did not fit, per metric;
    and models the previous run fitted that this one, fitting the same metric, no longer has (a source forgotten
    or revised). A run restricted to some metrics says nothing of the others."""
    # rows re-derived each run from an unchanged file (the per-run horizons) carry that file's digest: not new
    digests = con.execute("SELECT data_digests FROM runs WHERE run_id = ?", [prev]).fetchone()
    seen = sorted(set(json.loads(digests[0] or "{}").values())) if digests and digests[0] else []
    new = con.execute(
        "SELECT metric, model FROM observations o WHERE ingest_run_id = ? AND NOT list_contains(?, source_sha256) "
        "AND NOT EXISTS (SELECT 1 FROM observations p WHERE p.metric = o.metric AND p.model = o.model "
        "AND p.ingest_run_id IS DISTINCT FROM ?) "
        "AND NOT EXISTS (SELECT 1 FROM series_points s WHERE s.run_id = ? AND s.metric = o.metric AND s.model = o.model) "
        "GROUP BY ALL ORDER BY ALL", [run_id, seen, run_id, prev]).df()
    gone = con.execute(
        "SELECT metric, model FROM series_points WHERE run_id = ? AND metric IN (SELECT metric FROM series_points "
        "WHERE run_id = ?) EXCEPT SELECT metric, model FROM series_points WHERE run_id = ? ORDER BY ALL",
        [prev, run_id, run_id]).df()
    out = []
    for metric in sorted(set(new["metric"]) | set(gone["metric"])):
        added = new[new["metric"] == metric]["model"].tolist()
        lost = sorted(set(gone[gone["metric"] == metric]["model"]))
        if added:
            out.append(f"{label(metric)}: {len(added)} new model{'s' if len(added) > 1 else ''} ({_listing(added)}).")
        if lost:
            out.append(f"{label(metric)}: {len(lost)} model{'s' if len(lost) > 1 else ''} fitted last time no longer "
                       f"in the data ({_listing(lost)}).")
    return set(zip(new["metric"], new["model"], strict=True)), out


def _verdicts(con, run_id: str, prev: str) -> list[str]:
    frame = con.execute(
        "SELECT coalesce(a.metric, b.metric) AS metric, a.verdict AS now, a.basis AS basis_now, a.p_bounded AS p_now, "
        "b.verdict AS before, b.basis AS basis_before, b.p_bounded AS p_before FROM "
        "(SELECT * FROM metric_verdicts WHERE run_id = ?) a FULL JOIN (SELECT * FROM metric_verdicts WHERE run_id = ?) b "
        "ON a.metric = b.metric ORDER BY 1", [run_id, prev]).df()
    out = []
    for r in frame.to_dict("records"):
        name = label(r["metric"])
        if pd.isna(r["before"]):
            out.append(f"{name}: newly classified, {r['now']} ({r['basis_now']}).")
        elif pd.isna(r["now"]):
            continue   # not classified by this run (a run restricted to some metrics), which says nothing of it
        elif r["now"] != r["before"] or r["basis_now"] != r["basis_before"]:
            out.append(f"{name}: verdict changed from {r['before']} ({r['basis_before']}) to {r['now']} "
                       f"({r['basis_now']}); P(bounded) {r['p_before']:.2f} to {r['p_now']:.2f}.")
        elif np.isfinite(r["p_now"]) and np.isfinite(r["p_before"]) and abs(r["p_now"] - r["p_before"]) >= MOVED_P:
            out.append(f"{name}: still {r['now']}, P(bounded) moved from {r['p_before']:.2f} to {r['p_now']:.2f}.")
    return out


def _dates(con, run_id: str, prev: str, scenario: str | None) -> list[str]:
    """Peaks and closing dates of the same curve under the same scenario, where they moved by a month or more."""
    frame = con.execute(
        "SELECT a.curve, a.peak_year AS peak_now, b.peak_year AS peak_before, a.close_year AS close_now, "
        "b.close_year AS close_before FROM projections a JOIN projections b ON a.curve = b.curve AND "
        "a.scenario = b.scenario WHERE a.run_id = ? AND b.run_id = ? AND a.metric IS NOT NULL "
        "AND (? IS NULL OR a.scenario = ?) ORDER BY a.curve", [run_id, prev, scenario, scenario]).df()
    out = []
    for r in frame.to_dict("records"):
        moves = []
        for what, now, before in (("peak", r["peak_now"], r["peak_before"]), ("closing date", r["close_now"], r["close_before"])):
            if _moved(now, before):
                moves.append(f"{what} {month(before) or 'none'} to {month(now) or 'none'}")
        if moves:
            out.append(f"{r['curve']}: " + "; ".join(moves) + ".")
    return out


def _moved(now, before) -> bool:
    a, b = (np.nan if v is None else float(v) for v in (now, before))
    if np.isnan(a) and np.isnan(b):
        return False
    return np.isnan(a) != np.isnan(b) or abs(a - b) >= MOVED_YEARS


def _scores(con, run_id: str) -> list[dict]:
    frame = con.execute("SELECT * FROM forecast_scores WHERE scored_run_id = ? AND variant = 'calibrated' "
                        "ORDER BY metric, source, x_axis, forecast_run_id", [run_id]).df()
    rows = frame.to_dict("records")
    for r in rows:
        missed = _json(r.get("missed"))
        r["missed_list"] = missed
        r["missed_text"] = _listing([f"{m.get('model')} ({m.get('value'):.3g}, outside {m.get('q025'):.3g} to "
                                     f"{m.get('q975'):.3g})" for m in missed if isinstance(m, dict)]) if missed else ""
    return rows


def _missed(scores: list[dict], new: set) -> list[str]:
    """Earlier forecasts that this run's new models fell outside of (the scores table lists every score)."""
    out = []
    for r in scores:
        missed = [m for m in r["missed_list"] if isinstance(m, dict) and (r["metric"], m.get("model")) in new]
        if missed:
            names = _listing([f"{m.get('model')} ({m.get('value'):.3g}, outside {m.get('q025'):.3g} to "
                              f"{m.get('q975'):.3g})" for m in missed])
            out.append(f"Missed forecast: {label(r['metric'])} [{r['source']}] vs {r['x_axis']}, made by run "
                       f"{r['forecast_run_id']}: {len(missed)} of {r['n']} new observations fell outside its 95% "
                       f"interval: {names}.")
    return out


def _json(text) -> list:
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return []
    return value if isinstance(value, list) else []
