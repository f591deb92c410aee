"""Page 1 of the report: one row per metric (the Hex boards as one), each read off its headline series, and the
two or three sentences that answer the question. Reads stored tables only; nothing here fits or projects."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.schema import decimal_year

KEYS = ["metric", "source", "source_version", "x_axis"]
HEX = re.compile(r"^hex(\d+)_elo_vs_perfect$")
LABELS = {"mmlu": "MMLU", "gsm8k": "GSM8K", "arc_c": "ARC-Challenge", "hellaswag": "HellaSwag",
          "truthfulqa": "TruthfulQA", "winogrande": "WinoGrande", "eci": "Epoch Capabilities Index (ECI)",
          "metr_p50_minutes": "Task horizon, 50% success (METR)", "metr_p80_minutes": "Task horizon, 80% success (METR)",
          "loss": "Pretraining loss (Chinchilla runs)", "loss_frontier": "Pretraining loss, compute-optimal runs",
          "hex": "Hex: Elo against perfect play (Jones 2021)"}
SHORT = {"metr_p50_minutes": "the 50% task horizon", "metr_p80_minutes": "the 80% task horizon",
         "loss": "pretraining loss", "loss_frontier": "compute-optimal loss", "hex": "Hex Elo",
         "eci": "ECI"}
# pages of the main report: metrics that read together share one
GROUPS = {"metr_p50_minutes": "horizon", "metr_p80_minutes": "horizon", "loss": "loss", "loss_frontier": "loss"}
GROUP_TITLES = {"horizon": "Task horizon (METR)", "loss": "Pretraining loss (Chinchilla)", "hex": LABELS["hex"]}
# within a group, pages follow the paper: accuracies, indices, horizons, loss, games
ORDER = ["mmlu", "gsm8k", "arc_c", "hellaswag", "truthfulqa", "winogrande", "eci", "horizon", "loss", "hex"]


def group_of(metric: str) -> str:
    return "hex" if HEX.match(metric) else GROUPS.get(metric, metric)


def label(metric: str) -> str:
    if m := HEX.match(metric):
        return f"Hex {m.group(1)}x{m.group(1)}: Elo vs perfect play"
    return LABELS.get(metric, metric)


def group_title(group: str) -> str:
    return GROUP_TITLES.get(group, label(group))


def group_order(group: str) -> tuple[int, str]:
    return (ORDER.index(group) if group in ORDER else len(ORDER), group)


def data_reach(points: pd.DataFrame) -> dict:
    """Per series, the latest release date among its points."""
    if points is None or points.empty or "release_year" not in points:
        return {}
    return points.groupby(KEYS)["release_year"].max().to_dict()


def headline_series(rows: pd.DataFrame, reach: dict | None = None) -> dict | None:
    """The series a metric is read from: on the compute axis (the one the theorems speak to), the source whose
    data reach the latest release date (today's frontier; `reach` from data_reach), then the one with the most
    points."""
    if rows.empty:
        return None
    reach = reach or {}
    latest = [reach.get(tuple(r[k] for k in KEYS), np.nan) for r in rows.to_dict("records")]
    ranked = rows.assign(_c=(rows["x_axis"] == "compute").astype(int),
                         _r=np.nan_to_num(np.asarray(latest, float), nan=-np.inf)).sort_values(
        ["_c", "_r", "n", "source_version"], ascending=False)
    return ranked.drop(columns=["_c", "_r"]).iloc[0].to_dict()


def sentence(text: str) -> str:
    """A stored reason as a sentence: capitalised, ending in a full stop."""
    text = (text or "").strip()
    if not text:
        return ""
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def fmt_value(value, unit: str | None) -> str:
    """A metric's value as a reader writes it: 86.4%, 2.1 h, 1,243 Elo."""
    if value is None or not np.isfinite(value):
        return ""
    if unit == "fraction":
        return f"{100 * value:.1f}%"
    if unit == "minutes":
        return duration(value)
    if unit == "nats":
        return f"{value:.3f} nats"
    if unit == "elo":
        return f"{value:,.0f} Elo"
    if unit == "index":
        return f"{value:.1f}"
    return f"{value:.3g}"


def duration(minutes: float) -> str:
    if minutes < 1:
        return f"{60 * minutes:.0f} s"
    if minutes < 90:
        return f"{minutes:.0f} min"
    if minutes < 60 * 48:
        return f"{minutes / 60:.1f} h"
    if minutes < 60 * 24 * 365:
        return f"{minutes / 60 / 24:.0f} days"
    return f"{minutes / 60 / 24 / 365.25:.1f} years"


def gap_in_units(value, unit: str | None) -> str:
    """A difference on the metric's own scale: percentage points for a fraction."""
    if value is None or not np.isfinite(value):
        return ""
    if unit == "fraction":
        return f"{100 * value:.1f} pp"
    if unit == "elo":
        return f"{value:,.0f} Elo"
    if unit == "nats":
        return f"{value:.3f} nats"
    if unit == "index":
        return f"{value:.1f} points"
    return f"{value:.3g}"


def month(value) -> str:
    """A decimal year as a calendar month, 2027-04."""
    if value is None or not np.isfinite(value):
        return ""
    whole = int(math.floor(value))
    return f"{whole}-{min(int((value - whole) * 12) + 1, 12):02d}"


@dataclass
class Row:
    """One line of page 1."""
    group: str
    metric: str
    label: str
    kind: str
    unit: str
    verdict: str
    basis: str
    p_bounded: float
    reason: str
    series: dict | None              # the headline series' key, n and source
    frontier: str = ""               # today's frontier value, its model and date
    gap: str = ""                    # the projected gap's peak, or ratio and lag for a gap that grows
    gap_interval: str = ""
    peak_past: bool = False
    closes: str = ""
    observed_lag: str = ""           # months the open-weights (or 10x-less-compute) best trails, from history
    warnings: list[str] = field(default_factory=list)
    projection: dict | None = None
    anchor: str = ""


def _json_list(text) -> list:
    if isinstance(text, list):
        return text
    try:
        out = json.loads(text) if isinstance(text, str) else []
    except ValueError:
        return []
    return out if isinstance(out, list) else []


def _match(frame: pd.DataFrame, key: dict) -> pd.DataFrame:
    if frame is None or frame.empty or not set(KEYS) <= set(frame.columns):
        return pd.DataFrame()
    mask = np.ones(len(frame), bool)
    for k in KEYS:
        mask &= (frame[k] == key[k]).to_numpy()
    return frame[mask]


def frontier_today(points: pd.DataFrame, kind: str, unit: str) -> str:
    """The best published value in the headline series, with the model and release date that set it."""
    if points.empty:
        return ""
    best = points.sort_values("y", ascending=kind == "loss").iloc[0]
    when = month(best["release_year"]) if pd.notna(best.get("release_year")) else ""
    from pipeline.report.interactive import display_model

    return f"{fmt_value(best['y'], unit)} ({display_model(best['model'])}{', ' + when if when else ''})"


def projected_gap(proj: dict, unit: str, today: float) -> tuple[str, str, bool, str]:
    """(gap, its interval, peak already past, closing date) from a projections row."""
    if not proj:
        return "", "", False, ""
    kind = proj.get("limit_kind")
    if kind == "zero" or (proj.get("bounded") and kind != "infinite"):
        if proj.get("curve_kind") == "multiples":
            where = f"after {proj['peak_decades']:.1f} decades of compute" if np.isfinite(proj.get("peak_decades") or np.nan) else ""
            return f"peak {gap_in_units(proj['peak_gap'], unit)} {where}", _interval(proj, "peak_gap", unit), False, (
                f"after {proj['close_decades']:.1f} decades" if np.isfinite(proj.get("close_decades") or np.nan) else "")
        past = bool(np.isfinite(proj.get("peak_year") or np.nan) and proj["peak_year"] < today)
        gap = f"peak {gap_in_units(proj['peak_gap'], unit)} in {month(proj['peak_year'])}"
        lo, hi = proj.get("peak_year_lo"), proj.get("peak_year_hi")
        dates = f"{month(lo)} to {month(hi)}" if lo is not None and np.isfinite(lo) and np.isfinite(hi) else ""
        size = _interval(proj, "peak_gap", unit)
        interval = "; ".join(x for x in (size, dates) if x)
        lo_g, hi_g = proj.get("peak_gap_lo"), proj.get("peak_gap_hi")
        if lo_g is not None and hi_g is not None and np.isfinite(lo_g) and not lo_g <= proj["peak_gap"] <= hi_g:
            # the best fit's own peak lies outside its draws' band: say so rather than print both as if they agreed
            interval += "; the best fit's own peak lies outside this band"
        return gap, interval, past, month(proj.get("close_year"))
    ratio, lag = proj.get("ratio_end"), proj.get("lag_months_end")
    end = month(proj.get("end_year")) or month(proj.get("peak_year"))
    parts = []
    if ratio is not None and np.isfinite(ratio):
        parts.append(f"frontier {ratio:.3g}x the meek by {end}")
    elif unit != "fraction":
        parts.append(f"gap {gap_in_units(proj['peak_gap'], unit)} by {end}, still growing")
    if lag is not None and np.isfinite(lag):
        parts.append(f"meek trails by {lag:.0f} months")
    lo, hi = proj.get("lag_months_end_lo"), proj.get("lag_months_end_hi")
    interval = ""
    if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi):
        interval = (f"lag {lo:.0f}-{hi:.0f} months" if round(lo) != round(hi) else
                    "lag set by the scenario's growth rates alone")
    return "; ".join(parts), interval, False, "never (grows)" if kind == "infinite" else ""


def _interval(proj: dict, column: str, unit: str) -> str:
    lo, hi = proj.get(f"{column}_lo"), proj.get(f"{column}_hi")
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return ""
    return f"{gap_in_units(lo, unit)} to {gap_in_units(hi, unit)}"


def observed_lag(gap_summary: pd.DataFrame, metric: str, source: str | None) -> str:
    """Months the laggard group trails at the latest date, open weights against closed first."""
    if gap_summary is None or gap_summary.empty:
        return ""
    rows = gap_summary[gap_summary["metric"] == metric]
    if rows.empty:
        return ""
    rows = rows.assign(_open=(rows["comparison"] == "open_vs_closed").astype(int),
                       _same=(rows["source"] == source).astype(int)).sort_values(
        ["_open", "_same", "source_version"], ascending=False)
    r = rows.iloc[0]
    if not np.isfinite(r["latest_months"]):
        return ""
    who = "open weights" if r["comparison"] == "open_vs_closed" else "10x less compute"
    band = (f" ({r['latest_months_lo']:.0f} to {r['latest_months_hi']:.0f})"
            if np.isfinite(r["latest_months_lo"]) and np.isfinite(r["latest_months_hi"]) else "")
    return f"{r['latest_months']:.0f} months{band}, {who}, {str(r['latest_date'])[:10]}"


def metric_rows(data: dict, today: float) -> list[Row]:
    """One Row per metric in the run's reconciled verdicts; the Hex boards folded into one."""
    verdicts = data.get("metric_verdicts", pd.DataFrame())
    selection, points = data["selection"], data["series_points"]
    projections = data["projections"]
    rows: list[Row] = []
    reach = data_reach(points)
    for v in (verdicts.to_dict("records") if len(verdicts) else []):
        sel = selection[selection["metric"] == v["metric"]] if len(selection) else selection
        head = headline_series(sel, reach)
        key = {k: head[k] for k in KEYS} if head else None
        proj = _match(projections, key) if key else pd.DataFrame()
        proj_row = proj.iloc[0].to_dict() if len(proj) else None
        unit = v.get("unit") or (head or {}).get("unit") or ""
        gap, interval, past, closes = projected_gap(proj_row, unit, today)
        rows.append(Row(
            group=group_of(v["metric"]), metric=v["metric"], label=label(v["metric"]), kind=v.get("kind") or "",
            unit=unit, verdict=v["verdict"], basis=v["basis"], p_bounded=v.get("p_bounded"), reason=sentence(v.get("reason")),
            series={**key, "n": int(head["n"])} if head else None,
            frontier=frontier_today(_match(points, key), v.get("kind"), unit) if key else "",
            gap=gap, gap_interval=interval, peak_past=past, closes=closes,
            observed_lag=observed_lag(data.get("gap_summary"), v["metric"], key["source"] if key else None),
            warnings=_json_list(v.get("warnings")), projection=proj_row))
    return _fold_hex(rows)


def _fold_hex(rows: list[Row]) -> list[Row]:
    boards = [r for r in rows if r.group == "hex"]
    if len(boards) <= 1:
        return sorted(rows, key=lambda r: (group_order(r.group), r.metric))
    verdicts = {r.verdict for r in boards}
    bases = {r.basis for r in boards}
    peaks = [r.projection for r in boards if r.projection and np.isfinite(r.projection.get("peak_gap") or np.nan)]
    gap = ""
    if peaks:
        lo, hi = min(p["peak_gap"] for p in peaks), max(p["peak_gap"] for p in peaks)
        d_lo = min(p["peak_decades"] for p in peaks)
        d_hi = max(p["peak_decades"] for p in peaks)
        gap = f"peak {lo:.0f} to {hi:.0f} Elo after {d_lo:.1f} to {d_hi:.1f} decades of compute"
    sizes = sorted(int(HEX.match(r.metric).group(1)) for r in boards)
    folded = Row(group="hex", metric="hex", label=f"{LABELS['hex']}, {len(boards)} boards ({sizes[0]}x{sizes[0]} to "
                 f"{sizes[-1]}x{sizes[-1]})", kind="elo", unit="elo",
                 verdict=verdicts.pop() if len(verdicts) == 1 else "indeterminate",
                 basis=bases.pop() if len(bases) == 1 else "mixed",
                 p_bounded=float(np.mean([r.p_bounded for r in boards])), reason=boards[0].reason,
                 series=None, frontier="agents' own compute (no calendar)", gap=gap,
                 closes="on every board" if all(r.projection and r.projection.get("limit_kind") == "zero"
                                                       for r in boards) else "",
                 warnings=sorted({w for r in boards for w in r.warnings}))
    rest = [r for r in rows if r.group != "hex"] + [folded]
    return sorted(rest, key=lambda r: (group_order(r.group), r.metric))


def headline(rows: list[Row], scenario: str | None, until: str | None) -> list[str]:
    """Two or three sentences written from the rows."""
    if not rows:
        return ["This run holds no classified metric, so it cannot say whether any gap closes."]
    meek = [r for r in rows if r.verdict == "meek"]
    mighty = [r for r in rows if r.verdict == "mighty"]
    undecided = [r for r in rows if r.verdict not in ("meek", "mighty")]
    out = []
    if meek:
        dated = [r.projection["peak_year"] for r in meek if r.projection and np.isfinite(r.projection.get("peak_year") or np.nan)]
        closing = [(decimal_year_or_nan(r.closes), r) for r in meek]
        closes = [c for c, _ in closing if np.isfinite(c) and c <= FAR]
        late = [r for c, r in closing if np.isfinite(c) and c > FAR]
        when = (f"; their projected gaps peak between {month(min(dated))} and {month(max(dated))}"
                + (f" and close (below 1% of the range) between {month(min(closes))} and {month(max(closes))}" if closes
                   else "")
                + (f" ({_names(late)}: only after {FAR}, far past any data)" if late else "") if dated else "")
        out.append(f"On {len(meek)} of {len(rows)} metrics the frontier's lead is temporary (meek): "
                   f"{_names(meek)} are bounded, so under the {scenario + ' ' if scenario else ''}scenario's growth the small-budget actor "
                   f"catches up{when}.")
    if mighty:
        lags = [r.projection.get("lag_months_end") for r in mighty if r.projection]
        lags = [x for x in lags if x is not None and np.isfinite(x)]
        span = f"{min(lags):.0f}" if lags and round(min(lags)) == round(max(lags)) else \
            f"{min(lags):.0f} to {max(lags):.0f}" if lags else ""
        trail = f"; where the projections end the meek actor trails by {span} months" if lags else ""
        out.append(f"On {_names(mighty)} the lead persists or grows (mighty): these scales are unbounded, so the same "
                   f"growth that closes the accuracy gaps keeps these apart{trail}.")
    if undecided:
        out.append(f"The data cannot decide {_names(undecided)} (indeterminate). "
                   + " ".join(r.reason for r in undecided[:2]))
    return out


FAR = 2100   # a closing date later than this is stated as such, not as the headline's range


def decimal_year_or_nan(text: str) -> float:
    try:
        return decimal_year(f"{text}-15") if re.fullmatch(r"\d{4}-\d{2}", text or "") else math.nan
    except (TypeError, ValueError):
        return math.nan


def _names(rows: list[Row]) -> str:
    names = [SHORT.get(r.metric, r.label.split(" (")[0]) for r in rows]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
