"""Render one run's report: the same jinja2 HTML (autoescaped) to disk and, through weasyprint, to PDF."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import pickle
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from pipeline import memo, store
from pipeline.report import changes, interactive, plots, published
from pipeline.report import summary as S
from pipeline.schema import ScalegapError, decimal_year

TEMPLATES = Path(__file__).parent / "templates"
KEYS = ["metric", "source", "source_version", "x_axis"]
TABLES = ("sources", "rejected", "selection", "fits", "fit_params", "fit_bands", "series_points", "backtests",
          "classifications", "metric_verdicts", "counterparts", "projections", "projection_trajectories",
          "projection_sensitivity", "scenarios", "horizons", "horizon_trend", "gap_summary", "gap_series",
          "forecast_calibration")


def fmt(value, digits: int = 3) -> str:
    """Numbers with sensible precision for a reader; blanks for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    return str(value)


def breakable(value) -> Markup:
    """Escaped text with line-break chances after '_' and ':' so identifiers like metr_p50_minutes wrap in narrow
    table cells instead of pushing the table past the page edge (copied text keeps no extra characters)."""
    text = str(Markup.escape("" if value is None else value))
    return Markup(text.replace("_", "_<wbr>").replace(":", ":<wbr>"))


def growth(value) -> str:
    """As the project stage stores them: 'point:1.414' -> '1.414', 'lognormal:2.0..50.0' -> 'lognormal, 2.0 – 50.0'
    (p10 – p90 for lognormal, the range for uniform)."""
    text = "" if value is None else str(value)
    kind, _, rest = text.partition(":")
    if kind == "point":
        return rest
    return f"{kind}, {rest.replace('..', ' – ')}" if rest else text


def year(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    whole = int(value)
    month = int((value - whole) * 12) + 1
    return f"{whole}-{min(month, 12):02d}"


def load(db, run_id: str, scenario: str | None = None) -> dict:
    con = store.connect(db, read_only=True)
    try:
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        data = {"run": con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]).df()}
        for table in TABLES:
            if table not in present:
                data[table] = pd.DataFrame()
            elif table in ("sources", "rejected"):
                data[table] = con.execute(f"SELECT * FROM {table} ORDER BY ALL").df()
            else:  # a fixed row order: the same results give the same report and reuse the same figures
                data[table] = con.execute(f"SELECT * FROM {table} WHERE run_id = ? ORDER BY ALL", [run_id]).df()
        # the report's own stage row is left out: a re-render must reproduce the same HTML
        data["stages"] = con.execute("SELECT * FROM run_stages WHERE run_id = ? AND stage <> 'report' ORDER BY started_at",
                                     [run_id]).df()
        data["published"] = published.published_rows(con, run_id)
        data["changes"] = changes.compare(con, run_id, scenario) if {"metric_verdicts", "forecast_scores"} <= present \
            else {"previous": None, "items": [], "scores": []}
    finally:
        con.close()
    return _one_scenario(data, scenario)


def _one_scenario(data: dict, wanted: str | None) -> dict:
    """A run may hold projections under several scenarios (`scalegap project --scenario ...` on the same fit):
    report one. Asked for by name, else the one the run itself was given, else `default`, else the first.
    data["own_scenario"] says whether the one reported is the run's own (its report is the run's default)."""
    names = list(data["scenarios"]["scenario"]) if len(data["scenarios"]) else []
    if wanted is not None and wanted not in names:
        raise ScalegapError(f"scenario {wanted!r} was not projected in this run (it has {', '.join(names) or 'none'}). "
                            "Fix: `scalegap project --scenario FILE` first, or pick one of those")
    own = _own_scenario(data, names)
    chosen = wanted or own
    data["own_scenario"] = chosen == own
    if len(names) <= 1:
        return data
    for table in ("projections", "projection_trajectories", "projection_sensitivity", "scenarios"):
        if len(data[table]) and "scenario" in data[table].columns:
            data[table] = data[table][data[table]["scenario"] == chosen].reset_index(drop=True)
    return data


def _own_scenario(data: dict, names: list[str]) -> str | None:
    if not names:
        return None
    try:
        asked = json.loads(data["run"]["parameters"].iloc[0] or "{}").get("scenario") if len(data["run"]) else None
    except (TypeError, ValueError):
        asked = None
    paths = dict(zip(data["scenarios"]["path"], names, strict=True))
    if isinstance(asked, dict):  # a run configuration records its scenario by name and path
        asked = asked.get("path")
    chosen = next((n for p, n in paths.items() if asked and str(p).endswith(Path(str(asked)).name)), None)
    return chosen or ("default" if "default" in names else names[0])


def _match(frame: pd.DataFrame, key: dict) -> pd.DataFrame:
    """The rows of one series (metric, source, version, axis)."""
    if frame.empty or not set(KEYS) <= set(frame.columns):
        return frame.iloc[0:0]
    groups = _grouped(frame)
    rows = groups.get(tuple(key[k] for k in KEYS))
    return rows if rows is not None else frame.iloc[0:0]


_GROUPED: dict[int, tuple[pd.DataFrame, dict]] = {}


def _grouped(frame: pd.DataFrame) -> dict:
    """A table split by series once, not filtered again for every lookup (a report makes hundreds)."""
    cached = _GROUPED.get(id(frame))
    if cached is not None and cached[0] is frame:
        return cached[1]
    groups = {k: g for k, g in frame.groupby(KEYS, sort=False, dropna=False)}
    if len(_GROUPED) > 64:
        _GROUPED.clear()
    _GROUPED[id(frame)] = (frame, groups)
    return groups


Progress = Callable[[int, int, str], None]   # (items done, items in all, what comes next)


def _decimal_year(date) -> float | None:
    try:
        return decimal_year(str(date))
    except (ValueError, TypeError):
        return None


def figure_cache(db: str | Path | None = None) -> memo.Memo:
    """Figures keyed on exactly what they draw and the plotting code: an unchanged series is not drawn
    again by the next run."""
    return memo.Memo(memo.cache_dir(db, "figures"), [plots.__file__], dump=lambda p: p._asdict(), load=lambda d: plots.Plot(**d))


def build_context(data: dict, run_id: str, figures: memo.Memo | None = None, progress: Progress | None = None,
                  executor=None, cache: ContextCache | None = None) -> dict:
    """Everything both reports show: page 1's rows and headline, one page per metric group, and the appendix's
    per-series detail (`results_context`, taken from `cache` when the same results were reported before), with
    this run's own record (its id, parameters, stages and what changed since the run before)."""
    figures = figures or memo.Memo(None, [])
    run = data["run"].iloc[0].to_dict() if len(data["run"]) else {"run_id": run_id}
    today = _decimal_year(run.get("started_at")) or _decimal_year(pd.Timestamp.now())
    key = cache.key(data, today) if cache else None
    results = cache.load(key) if cache else None
    if results is None:
        results = results_context(data, today, figures, progress, executor)
        if cache:
            cache.save(key, results)
    return {
        **results, "run": run, "run_id": run_id, "parameters": _json(run.get("parameters")),
        "digests": _json(run.get("data_digests")), "stages": data["stages"].to_dict("records"),
        "results_run": results_run(data["stages"], run_id), "changes": data.get("changes"),
    }


# What `load` reads that belongs to the run rather than to its results.
RUN_RECORD = ("run", "stages", "changes", "own_scenario")


def results_context(data: dict, today: float, figures: memo.Memo, progress: Progress | None = None,
                    executor=None) -> dict:
    """The part of the report's context that the run's results and the day decide (not the run's own record)."""
    scenario = data["scenarios"].iloc[0].to_dict() if len(data["scenarios"]) else None
    if scenario:
        try:
            scenario["sources_map"] = json.loads(scenario["sources"])
            scenario["growth_map"] = json.loads(scenario["growth"])
        except (TypeError, ValueError):  # stores written before the scenario was kept as JSON
            scenario["sources_map"], scenario["growth_map"] = {}, {}
    rows = S.metric_rows(data, today)
    groups = group_pages(data, rows, today, figures, progress, executor)
    sections = appendix_sections(data)
    explicit = []
    proj_all = data["projections"]
    if len(proj_all):
        explicit = proj_all[proj_all["metric"].isna() & proj_all["family"].notna()].to_dict("records")
    rejected = data["rejected"]
    rejected_summary = (rejected.groupby(["source", "source_version", "reason"]).size().reset_index(name="rows")
                        .sort_values("rows", ascending=False).head(40).to_dict("records")) if len(rejected) else []
    sens = data["projection_sensitivity"]
    return {
        "today": today,
        "rows": rows, "headline": S.headline(rows, scenario and scenario["scenario"], scenario and scenario["until"]),
        "groups": groups, "sections": sections, "explicit": explicit, "sources": data["sources"].to_dict("records"),
        "rejected": rejected_summary, "scenario": scenario,
        "sensitivity_svg": figures.call(plots.sensitivity_plot, sens, _decimal_year(scenario.get("until")) if scenario
                                        else None) if len(sens) else None,
        "horizons": _sorted(data["horizons"], ["release_date"]).to_dict("records"),
        "horizon_trend": data["horizon_trend"].to_dict("records"),
        "counterparts": data["counterparts"].to_dict("records"), "png_dpi": plots.PNG_DPI,
        "gaps": gap_context(data.get("gap_summary", pd.DataFrame()), data.get("gap_series", pd.DataFrame())),
        "warnings": all_warnings(data),
        "calibration": data.get("forecast_calibration", pd.DataFrame()).to_dict("records"),
        "published": data.get("published", []),
    }


class ContextCache:
    """`results_context` keyed on the results it was built from (run ids left out, see memo.feed), the day and
    the code. A run whose results were copied from the run before reports them without building them again.
    Pickled: the context holds figures, markup and timestamps (the same trust as Prefect's own result store)."""

    def __init__(self, folder: Path | None) -> None:
        self.blobs = memo.Blobs(folder, ".pickle")
        self.hits = 0

    def key(self, data: dict, today: float) -> str:
        return memo.content_digest((store.code_version(), today, sorted(
            (k, v) for k, v in data.items() if k not in RUN_RECORD and not k.startswith("_"))))

    def load(self, key: str) -> dict | None:
        results = _unpickled(self.blobs.get(key))
        self.hits += results is not None
        return results

    def save(self, key: str, results: dict) -> None:
        with contextlib.suppress(pickle.PicklingError, TypeError, AttributeError):
            self.blobs.put(key, pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))

    def get(self, data: dict, today: float) -> dict | None:
        return self.load(self.key(data, today))


def _unpickled(payload: bytes | None):
    """A cached value, or None when there is none or it no longer loads (written by other code)."""
    if payload is None:
        return None
    try:
        return pickle.loads(payload)
    except (EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError, IndexError):
        return None


def results_run(stages: pd.DataFrame, run_id: str) -> str:
    """The run that computed this run's results: itself, or the run they were copied from (pipeline.stages.reuse)."""
    if "reused_from" in stages and stages["reused_from"].notna().any():
        return str(stages["reused_from"].dropna().iloc[0])
    return run_id


def _source_label(row: dict, versions: dict) -> str:
    return f"{row['source']}@{row['source_version']}" if versions.get(row["source"], 1) > 1 else row["source"]


def group_pages(data: dict, rows: list, today: float, figures: memo.Memo, progress: Progress | None = None,
                executor=None) -> list[dict]:
    """One page per metric group: the verdicts, one composite figure, the series beneath and their warnings."""
    selection = data["selection"]
    if selection.empty:
        return []
    versions = selection.groupby("source")["source_version"].nunique().to_dict()
    selection = selection.assign(group=selection["metric"].map(S.group_of))
    divs = memo.Memo(figures.folder.parent / "interactive" if figures.folder else None, INTERACTIVE_CODE)
    reach = S.data_reach(data["series_points"])
    pages = []
    groups = sorted(selection["group"].unique(), key=S.group_order)
    for i, group in enumerate(groups):
        if progress:
            progress(i, len(groups) + 2, S.group_title(group))   # then the two PDFs
        sel = selection[selection["group"] == group]
        metrics = sorted(sel["metric"].unique(), key=lambda m: (len(m), m))
        many = len(metrics) > 1
        compute, date, gaps = [], [], []
        heads, interactive = [], []
        for metric in metrics:
            part = sel[sel["metric"] == metric]
            head = S.headline_series(part, reach)
            heads.append(head)
            for axis, lines in (("compute", compute), ("date", date)):
                chosen = part[part["x_axis"] == axis]
                if many:  # several metrics on a page: each metric's own headline source only
                    chosen = chosen[chosen["source"] == head["source"]] if len(chosen[chosen["source"] == head["source"]]) else chosen.head(1)
                for r in chosen.sort_values(["source", "source_version"]).to_dict("records"):
                    key = {k: r[k] for k in KEYS}
                    bands = _match(data["fit_bands"], key)
                    band = bands[bands["family"] == r["best_family"]] if len(bands) else bands
                    name = S.label(metric) if many else _source_label(r, versions)
                    points = _match(data["series_points"], key)
                    lines.append(plots.Line(name, points[["x", "y"]], band))
                    interactive.append(("fit", points, bands, _match(data["fits"], key), r["best_family"], axis,
                                        r["unit"], S.label(metric), _source_label(r, versions)))
            proj = _match(data["projections"], {k: head[k] for k in KEYS}) if len(data["projections"]) else pd.DataFrame()
            if len(proj):
                p = proj.iloc[0].to_dict()
                traj = data["projection_trajectories"]
                traj = traj[traj["curve"] == p["curve"]].sort_values("step") if len(traj) else traj
                if len(traj):
                    gaps.append(plots.Gap(S.label(metric) if many else f"{_source_label(head, versions)} vs {head['x_axis']}",
                                          traj, p.get("peak_year")))
                    interactive.append(("gap", traj, p, metric, head))
        head = heads[0]
        unit = head["unit"]
        observed = _observed(data.get("gap_series"), metrics[0], head["source"]) if group != "hex" else None
        implied = implied_gap(data, head, observed)
        counterpart = _counterpart(data, head, gaps[0].trajectory if gaps else None)
        drawing = (S.group_title(group), compute, date, gaps, unit,
                   S.label(metrics[0]) if not many else S.group_title(group), observed, counterpart, today, implied)
        series = []
        for r in sel.sort_values(["metric", "x_axis", "source"]).to_dict("records"):
            key = {k: r[k] for k in KEYS}
            cls = _match(data["classifications"], key)
            cls = cls.iloc[0].to_dict() if len(cls) else {}
            proj = _match(data["projections"], key) if len(data["projections"]) else pd.DataFrame()
            proj = proj.iloc[0].to_dict() if len(proj) else None
            gap, interval, past, closes = S.projected_gap(proj, r["unit"], today)
            series.append({**key, "label": _source_label(r, versions), "metric_label": S.label(r["metric"]), "n": r["n"],
                           "best": r["best_family"], "p_bounded": cls.get("p_bounded"),
                           "verdict": cls.get("verdict", "not classified"), "basis": cls.get("basis"),
                           "gap": gap, "interval": interval, "past": past, "closes": closes,
                           "headline": any(h and all(h[k] == r[k] for k in KEYS) for h in heads)})
        if len(series) > 6:  # many sources: the page keeps each metric's headline source, the appendix has all
            sources = {(h["metric"], h["source"], h["source_version"]) for h in heads if h}
            kept = [r for r in series if (r["metric"], r["source"], r["source_version"]) in sources]
            hidden = len(series) - len(kept)
            series = kept
        else:
            hidden = 0
        page_rows = [r for r in rows if r.group == group]
        warnings = _group_warnings(data, sel, heads)
        others = sum(1 for r in sel.to_dict("records") if series_warnings(data, {k: r[k] for k in KEYS})) - \
            sum(1 for h in heads if h and series_warnings(data, {k: h[k] for k in KEYS}))
        pages.append({"group": group, "title": S.group_title(group), "anchor": f"group-{group}", "rows": page_rows,
                      "drawing": drawing, "series": series, "warnings": warnings, "many": many, "other_warnings": others, "hidden": hidden,
                      "interactive": _interactive(interactive, data, f"group-{group}", today, divs),
                      "observed_note": bool(observed is not None and len(observed))})
    # every page's figure at once: those not in the cache drawn side by side when a pool is given
    drawn = figures.map(plots.group_plot, [p.pop("drawing") for p in pages], executor)
    for page, figure in zip(pages, drawn, strict=True):
        page["figure"] = figure
    return pages


INTERACTIVE_CODE = [interactive.__file__, __file__]


def _interactive(specs: list[tuple], data: dict, anchor: str, today: float, cache: memo.Memo | None = None
                 ) -> list[Markup]:
    """The page's figures for the HTML, drawn by plotly.js in the reader's browser (hover names each model, its
    source, compute and value; legends toggle; figures zoom), from the same rows as the PDF's static figure.
    `cache`: the same rows give the same figure, taken from there."""
    gap_series = data.get("gap_series")
    when = pd.Timestamp(S.month(today) + "-15").date()
    calls = []
    for i, spec in enumerate(specs):
        if spec[0] == "fit":
            calls.append(("fit", spec[1:], f"{anchor}-{i}"))
        else:
            _, traj, row, metric, head = spec
            observed = _observed(gap_series, metric, head["source"]) if not S.HEX.match(metric) else None
            row = {k: v for k, v in row.items() if k != "run_id"}  # the figure shows results, not which run
            calls.append(("gap", (traj, row, observed, when, implied_gap(data, head, observed)), f"{anchor}-{i}"))
    return [Markup(div) for div in (cache or memo.Memo(None, [])).map(interactive_div, calls)]


def interactive_div(kind: str, args: tuple, div_id: str) -> str:
    """One interactive figure's <div> and script (see _interactive)."""
    from pipeline.report import interactive as I

    if kind == "fit":
        fig = I.fit_figure(*args)
    else:
        traj, row, observed, when, implied = args
        fig = I.gap_figure(traj, row, observed, today=when, implied=implied)
    return str(I.figure_div(fig, div_id))


def implied_gap(data: dict, head: dict, observed: pd.DataFrame | None) -> pd.DataFrame | None:
    """Theory on history: at each observed date, the headline fit evaluated at the compute of the leading group's
    best model and of the laggard's, on the observed gap's scale. Where it tracks the observed gap, compute
    explains the lead; where it does not, something else does (data, post-training, selection)."""
    if observed is None or observed.empty or head.get("x_axis") != "compute":
        return None
    key = {k: head[k] for k in KEYS}
    points = _match(data["series_points"], key)
    band = _match(data["fit_bands"], key)
    band = band[band["family"] == head["best_family"]].sort_values("x") if len(band) else band
    if points.empty or band.empty:
        return None
    compute = dict(zip(points["model"], points["x"], strict=True))
    rows = observed[observed["frontier_model"].isin(compute) & observed["laggard_model"].isin(compute)]
    if len(rows) < 2:
        return None
    f = np.interp(rows["frontier_model"].map(compute), band["x"], band["fit"])
    lag = np.interp(rows["laggard_model"].map(compute), band["x"], band["fit"])
    scale = plots.gap_scale(head["unit"])
    with np.errstate(all="ignore"):
        gap = f / lag if scale == "ratio" else (f - lag) * (100.0 if scale == "points" else 1.0)
    return pd.DataFrame({"date": rows["date"].to_numpy(), "gap": gap}).sort_values("date")


def _observed(gap_series: pd.DataFrame | None, metric: str, source: str) -> pd.DataFrame | None:
    """The observed gap on history for the page's metric: open against closed weights where measured, the headline
    source first."""
    if gap_series is None or gap_series.empty:
        return None
    rows = gap_series[gap_series["metric"] == metric]
    if rows.empty:
        return None
    for comparison in ("open_vs_closed", "compute_tier_10x"):
        part = rows[rows["comparison"] == comparison]
        if len(part):
            same = part[part["source"] == source]
            part = same if len(same) else part[part["source"] == part["source"].iloc[0]]
            return part[part["source_version"] == part["source_version"].max()]
    return None


def _counterpart(data: dict, head: dict, trajectory: pd.DataFrame | None) -> tuple[str, pd.DataFrame] | None:
    key = {k: head[k] for k in KEYS}
    cls = _match(data["classifications"], key)
    cls = {**head, **(cls.iloc[0].to_dict() if len(cls) else {})}
    panels = counterpart_panels(_match(data["counterparts"], key), _match(data["series_points"], key), cls,
                                trajectory[["year", "decades", "frontier", "meek"]] if trajectory is not None else None)
    for name, _, gap in panels:
        if not name.startswith(f"{head['metric']} (") and gap is not None:
            return name, gap
    return None


def _group_warnings(data: dict, sel: pd.DataFrame, heads: list[dict] | None = None) -> list[dict]:
    """Each distinct warning once, with the series it qualifies; with `heads`, only the headline series' (the
    others' are printed beside their series in the appendix)."""
    seen: dict[str, list[str]] = {}
    for r in sel.to_dict("records"):
        key = {k: r[k] for k in KEYS}
        if heads is not None and not any(h and all(h[k] == key[k] for k in KEYS) for h in heads):
            continue
        where = f"{r['source']} vs {r['x_axis']}"
        if S.group_of(r["metric"]) != r["metric"]:
            where = f"{S.label(r['metric'])}: {where}"
        for w in series_warnings(data, key):
            seen.setdefault(w, [])
            if where not in seen[w]:
                seen[w].append(where)
    # one warning per shape: the seven Hex boards' "reaches 1e22.1 FLOP ... 10.1 decades" differ in numbers only
    shapes: dict[str, dict] = {}
    for text, where in seen.items():
        shape = re.sub(r"\d+(\.\d+)?(e[+-]?\d+)?", "#", text)
        if shape in shapes:
            shapes[shape]["series"].extend(w for w in where if w not in shapes[shape]["series"])
            shapes[shape]["variants"] += 1
        else:
            shapes[shape] = {"text": text, "series": list(where), "variants": 1}
    n = len(sel) if heads is None else sum(1 for h in heads if h)
    for w in shapes.values():
        if n > 2 and len(w["series"]) == n:
            w["series"] = [f"all {n} series shown"]
    return list(shapes.values())


def series_warnings(data: dict, key: dict) -> list[str]:
    """The verdict's warnings, then what the projection adds, then any parameter of the best fit that lies
    outside its own bootstrap interval (a fit its resamples do not reproduce). Worked out once per series."""
    known = data.setdefault("_series_warnings", {})
    series = tuple(key[k] for k in KEYS)
    if series not in known:
        known[series] = _series_warnings(data, key)
    return list(known[series])


def _series_warnings(data: dict, key: dict) -> list[str]:
    cls = _match(data["classifications"], key)
    proj = _match(data["projections"], key) if len(data["projections"]) else pd.DataFrame()
    first = _json_list(cls.iloc[0]["warnings"]) if len(cls) else []
    more = _json_list(proj.iloc[0]["warnings"]) if len(proj) else []
    return first + [w for w in more if w not in first] + unstable_parameters(data, key)


def unstable_parameters(data: dict, key: dict) -> list[str]:
    sel = _match(data["selection"], key)
    params = _match(data["fit_params"], key)
    if sel.empty or params.empty:
        return []
    best = params[(params["family"] == sel.iloc[0]["best_family"]) & ~params["fixed"].fillna(False).astype(bool)]
    out = []
    for p in best.to_dict("records"):
        lo, hi, v = p.get("lo95"), p.get("hi95"), p.get("value")
        if any(x is None or not np.isfinite(x) for x in (lo, hi, v)):
            continue
        slack = 1e-6 * max(abs(lo), abs(hi), abs(v), 1.0)
        if v < lo - slack or v > hi + slack:
            out.append(f"the best fit's {p['param']} = {v:.4g} lies outside its own bootstrap 95% interval "
                       f"({lo:.4g} to {hi:.4g}): resamples of the data do not reproduce this fit, so its projection "
                       "is fragile")
    return out


def all_warnings(data: dict) -> int:
    sel = data["selection"]
    return sum(len(_group_warnings(data, sel[sel["metric"] == m])) for m in sel["metric"].unique()) if len(sel) else 0


def appendix_sections(data: dict) -> list[dict]:
    """Per series: every family's selection numbers with its parameters, the backtests per family and the
    classification's reasoning."""
    sections = []
    selection = data["selection"].sort_values(["x_axis", "metric", "source"]) if len(data["selection"]) else data["selection"]
    versions = selection.groupby("source")["source_version"].nunique().to_dict() if len(selection) else {}
    for i, sel in enumerate(selection.to_dict("records")):
        key = {k: sel[k] for k in KEYS}
        fits = _match(data["fits"], key).sort_values("weight", ascending=False)
        cls = _match(data["classifications"], key)
        cls = cls.iloc[0].to_dict() if len(cls) else {}
        params = _match(data["fit_params"], key)
        by_family = {f: part.to_dict("records") for f, part in params.groupby("family")} if len(params) else {}
        points = _match(data["series_points"], key)
        top = points.sort_values("y", ascending=sel.get("kind") == "loss").head(5) if len(points) else points
        sections.append({
            "anchor": f"series-{i}", "key": key, "sel": sel, "cls": cls,
            "fits": [{**f, "parameters": by_family.get(f["family"], [])} for f in fits.to_dict("records")],
            "source_label": _source_label(sel, versions), "pairs": _match(data["counterparts"], key).to_dict("records"),
            "top": top.to_dict("records"), "backtests": backtest_summary(_match(data["backtests"], key)),
            "cls_warnings": series_warnings(data, key),
        })
    return sections


def backtest_summary(backtests: pd.DataFrame) -> list[dict]:
    """One row per family over its rolling origins: held-out points, mean error and pooled coverage (each
    cutoff's coverage weighted by its test points); the per-cutoff rows stay in the store."""
    if backtests.empty:
        return []
    rows = []
    for family, part in backtests.groupby("family", sort=False):
        n = part["n_test"].to_numpy(float)
        w = n / n.sum() if n.sum() else np.full(len(n), 1 / len(n))
        rows.append({"family": family, "cutoffs": len(part), "first": part["cutoff"].min(), "last": part["cutoff"].max(),
                     "axis": part["cutoff_axis"].iloc[0], "points": int(n.sum()), "mae": float(np.dot(w, part["mae"])),
                     "bias": float(np.dot(w, part["bias"])), "coverage80": float(np.dot(w, part["coverage80"])),
                     "coverage95": float(np.dot(w, part["coverage95"])),
                     "undercovers": int(part["undercovers"].fillna(False).astype(bool).sum())})
    return sorted(rows, key=lambda r: r["mae"])


def gap_context(summary: pd.DataFrame, series: pd.DataFrame) -> dict | None:
    """The observed-gaps page: per series and comparison the latest gap and lag with bands, the trajectory year
    by year, the shape against the class's prediction; the ECI open-weights lag beside the published figures."""
    from pipeline import gaps as G

    if summary is None or summary.empty:
        return None
    summary = summary.sort_values(["metric", "source", "source_version", "comparison"])
    rows, yearly = [], []
    for row in summary.to_dict("records"):
        key = (row["metric"], row["source"], row["source_version"], row["comparison"])
        points = series[(series["metric"] == key[0]) & (series["source"] == key[1])
                        & (series["source_version"] == key[2]) & (series["comparison"] == key[3])].sort_values("date")
        row["label"] = f"{row['metric']} [{row['source']}@{row['source_version']}]"
        row["groups"] = G.comparison(row["comparison"]).laggard
        rows.append(row)
        if len(points):  # the state at the end of each calendar year, and at the latest date
            by_year = points.assign(year=points["date"].dt.year).groupby("year").tail(1)
            yearly.append({"label": row["label"], "comparison": row["comparison"], "scale": row["gap_scale"],
                           "points": by_year.to_dict("records")})
    eci = summary[(summary["metric"] == "eci") & (summary["comparison"] == "open_vs_closed")]
    eci_row = eci.sort_values("source_version").iloc[-1].to_dict() if len(eci) else None
    eci_series = series[(series["metric"] == "eci") & (series["comparison"] == "open_vs_closed")
                        & (series["source_version"] == eci_row["source_version"])] if eci_row else series.iloc[0:0]
    # the main report: one comparison per series, open against closed weights where both exist
    main = {}
    for row in rows:
        series = (row["metric"], row["source"], row["source_version"])
        if series not in main or row["comparison"] == "open_vs_closed":
            main[series] = row
    return {"rows": rows, "main": list(main.values()), "yearly": yearly, "eci": eci_row, "published": G.PUBLISHED_LAGS,
            "eci_text": G.published_comparison(eci_row, eci_series) if eci_row else [],
            "band": f"{G.BAND[1] - G.BAND[0]:g}%"}


def _json_list(value) -> list:
    if isinstance(value, list):
        return value
    try:
        out = json.loads(value) if isinstance(value, str) else []
    except ValueError:
        return []
    return out if isinstance(out, list) else []


def counterpart_panels(pairs: pd.DataFrame, points: pd.DataFrame, cls: dict,
                       trajectory: pd.DataFrame | None = None) -> list[tuple[str, pd.DataFrame, pd.DataFrame | None]]:
    """The series' points re-expressed on each counterpart scale, with the same transforms the classify stage
    used (pipeline.counterparts); a change of units, not a fit. With the series' projected trajectory, each
    panel also gets the frontier-minus-meek gap on that scale: the paper's point, one gap closing while its
    counterpart grows."""
    from pipeline import counterparts as cp

    if pairs.empty or points.empty:
        return []
    y = points["y"].to_numpy(dtype=float)
    verdict = {r["bounded_metric"]: r["bounded_verdict"] for r in pairs.to_dict("records")}
    verdict.update({r["unbounded_metric"]: r["unbounded_verdict"] for r in pairs.to_dict("records")})
    metric, kind = cls.get("metric"), cls.get("kind")
    scales: list[tuple[str, Callable]] = []
    if kind == "benchmark":
        floor = cls.get("floor")
        floor = None if floor is None or pd.isna(floor) else floor
        scales = [(metric, lambda v: v), (f"{metric}:nines", lambda v: cp.nines(cp.chance_corrected(v, floor))),
                  (f"{metric}:logit", lambda v: cp.logit(cp.chance_corrected(v, floor)))]
    elif kind == "elo":
        elo_ref = float(pd.Series(y).median())
        scales = [(f"{metric}:win_rate", lambda v: cp.win_rate(v, elo_ref)), (metric, lambda v: v),
                  (f"{metric}:bt_strength", lambda v: cp.bt_strength(np.asarray(v, float) - elo_ref))]
    elif kind == "horizon":
        scales = [(f"{metric}:p_success_{cp.FIXED_TASK_MINUTES:g}min", cp.success_at_length), (metric, lambda v: v)]
    panels = []
    for name, transform in scales:
        if name not in verdict:
            continue
        gap = None
        if trajectory is not None and len(trajectory):
            with np.errstate(all="ignore"):
                frontier = transform(trajectory["frontier"].to_numpy(dtype=float))
                meek = transform(trajectory["meek"].to_numpy(dtype=float))
            gap = pd.DataFrame({"year": trajectory["year"].to_numpy(dtype=float),
                                "decades": trajectory["decades"].to_numpy(dtype=float), "gap": frontier - meek})
        panels.append((f"{name} ({verdict.get(name, cls.get('verdict', ''))})", points.assign(y=transform(y)), gap))
    return panels


def _sorted(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame.sort_values(columns) if set(columns) <= set(frame.columns) else frame


def _json(text):
    if not text or (isinstance(text, float) and math.isnan(text)):
        return {}
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return {"value": str(text)}


def render_report(data: dict, run_id: str, medium: str = "html") -> str:
    """HTML for a run from already-loaded tables (what `load` returns): the testable core."""
    return render_html(build_context(data, run_id), medium)


@functools.cache
def _environment(medium: str) -> jinja2.Environment:
    """One per medium and process: each template is compiled once (jinja re-reads a template file that changed)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.ChainableUndefined)
    env.filters["fmt"] = fmt
    env.filters["year"] = year
    env.filters["breakable"] = breakable
    env.filters["growth"] = growth
    env.filters["figure"] = functools.partial(figure, medium=medium)
    return env


def render_html(context: dict, medium: str = "html", template: str = "report.html.j2") -> str:
    """One template for the page and the PDF; `medium` chooses how figures are embedded (interactive or inline
    SVG on the page, PNG for weasyprint) and whether the appendix is folded in (the page) or apart (appendix.pdf)."""
    return _environment(medium).get_template(template).render(**context, medium=medium)


def figure(plot: plots.Plot | None, medium: str = "html") -> Markup:
    if plot is None:
        return Markup("")
    if medium == "pdf" or not plot.svg:
        return Markup(f'<img class="figure" alt="" src="data:image/png;base64,{plot.png}">')
    return Markup(plot.svg)


def _atomic_write(path: Path, payload: bytes) -> None:
    """Through a temp file in the same folder, renamed over `path`: a reader never sees half a report, and a
    failed write (a full disk) leaves no temp file behind and ends in one line."""
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise _unwritable(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(temp, 0o644)  # temp files are private; a report is meant to be read and shared
        os.replace(temp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        if isinstance(exc, OSError):
            raise _unwritable(path, exc) from None
        raise


def _unwritable(path: Path, exc: OSError) -> ScalegapError:
    return ScalegapError(f"{path}: cannot write the report ({exc.strerror or exc}). "
                         "Fix: free disk space there, or choose another folder with --out")


def report_stage(db: str | Path | None, run_id: str, out_dir: str | Path = "reports", scenario: str | None = None,
                 progress: Progress | None = None) -> dict:
    """Write <out>/<run_id>/report.html, report.pdf and appendix.pdf, refresh <out>/latest.*; return paths and
    pages."""
    out_dir = Path(out_dir)
    store.check_writable(out_dir, "report")
    store.check_writable(store.resolve_db(db), "database")  # the stage is recorded there once the report is written
    data = load(db, run_id, scenario)
    if data["run"].empty:
        raise ScalegapError(f"run {run_id} is not in the store. Fix: `scalegap status` lists the runs; "
                            "omit --run-id to report the newest run")
    figures = figure_cache(db)
    folder = out_dir / run_id
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(folder, exc) from None
    with _pool() as pool:
        contexts = ContextCache(memo.cache_dir(db, "context"))
        context = build_context(data, run_id, figures, progress, pool, contexts)
        context["plotly_script"] = interactive.script()
        # another scenario projected on the same run is written beside the run's own report, never over it
        suffix = "" if data["own_scenario"] else "." + _file_safe(context["scenario"]["scenario"])
        html_path, pdf_path = folder / f"report{suffix}.html", folder / f"report{suffix}.pdf"
        appendix_path = folder / f"appendix{suffix}.pdf"
        _atomic_write(html_path, render_html(context).encode("utf-8"))
        steps = len(context["groups"]) + 2
        if progress:
            progress(steps - 2, steps, "PDF: report")
        # The appendix shows only results (no run id but the one that computed them): the same results give the
        # same HTML, and its PDF is taken from the cache. Otherwise the two PDFs are laid out side by side.
        pdfs = PdfCache(memo.cache_dir(db, "pdf"))
        appendix_html = render_html(context, "pdf", "appendix.html.j2")
        appendix_key = pdfs.key(appendix_html)
        cached = pdfs.get(appendix_key)
        appendix_job = None if cached else _submit(pool, pdf_bytes, appendix_html, None)
        main_pdf, main_pages = pdf_bytes(render_html(context, "pdf"), None)
        _atomic_write(pdf_path, main_pdf)
        if progress:
            progress(steps - 1, steps, "PDF: appendix")
        appendix_pdf, appendix_pages = cached or (None, 0)
        if appendix_job is not None:
            from concurrent.futures.process import BrokenProcessPool

            with contextlib.suppress(BrokenProcessPool):  # a worker that died: lay it out here instead
                appendix_pdf, appendix_pages = appendix_job.result()
        if appendix_pdf is None:
            appendix_pdf, appendix_pages = pdf_bytes(appendix_html, None)
        if not cached:
            pdfs.put(appendix_key, appendix_pdf, appendix_pages)
        _atomic_write(appendix_path, appendix_pdf)
    if not suffix:
        for name, source in (("latest.html", html_path), ("latest.pdf", pdf_path), ("latest-appendix.pdf", appendix_path)):
            _atomic_write(out_dir / name, source.read_bytes())  # unique temp name: two runs may finish together
    with store.open_stage(db, run_id, "report"):
        pass  # records the stage; the report itself lives on disk, not in the store
    return {"html": str(html_path), "pdf": str(pdf_path), "appendix": str(appendix_path), "pages": main_pages,
            "appendix_pages": appendix_pages, "figures_drawn": figures.misses, "figures_cached": figures.hits,
            "results_cached": bool(contexts.hits)}


def _submit(pool, fn, *args):
    """pool.submit, or None when there is no pool or it can no longer take work."""
    from concurrent.futures.process import BrokenProcessPool

    if pool is None:
        return None
    try:
        return pool.submit(fn, *args)
    except (BrokenProcessPool, RuntimeError):
        return None


def pdf_bytes(html: str, base_url: str | None = None) -> tuple[bytes, int]:
    """A PDF laid out by weasyprint from the report's HTML, and its page count (run in a worker process too).
    The reports embed every figure and style, so the HTML alone decides the PDF."""
    import weasyprint

    document = weasyprint.HTML(string=html, base_url=base_url).render()
    return document.write_pdf(), len(document.pages)


class PdfCache:
    """PDFs (and their page counts) keyed on the HTML they were laid out from and the layout engine's version."""

    def __init__(self, folder: Path | None) -> None:
        self.blobs = memo.Blobs(folder, ".pdf.pickle")

    def key(self, html: str) -> str:
        import weasyprint

        return memo.content_digest(("weasyprint", weasyprint.__version__, html))

    def get(self, key: str) -> tuple[bytes, int] | None:
        return _unpickled(self.blobs.get(key))

    def put(self, key: str, pdf: bytes, pages: int) -> None:
        self.blobs.put(key, pickle.dumps((pdf, pages), protocol=pickle.HIGHEST_PROTOCOL))


@contextlib.contextmanager
def _pool():
    """Two worker processes for the figures and the appendix's layout (the report's slow, independent parts),
    started on the first piece of work (a report whose figures and appendix are all cached starts none), fresh
    (spawn), not forked from this process, which may run Prefect's threads; each is killed by the kernel if this
    process dies, so a killed run leaves no worker behind. On a one-core machine, or where processes cannot be
    started, everything runs here, in turn."""
    if (os.cpu_count() or 1) < 2:
        yield None
        return
    pool = LazyPool()
    try:
        yield pool
    finally:
        pool.shutdown()


class LazyPool:
    """A ProcessPoolExecutor made when first given work (`submit`, as concurrent.futures)."""

    def __init__(self) -> None:
        self._executor = None
        self._failed = False

    def submit(self, fn, *args):
        if self._executor is None:
            if self._failed:
                raise RuntimeError("no worker processes here")
            import concurrent.futures
            import multiprocessing

            try:
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=2, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_start,
                    initargs=(os.getpid(),))
            except (OSError, ValueError) as exc:
                self._failed = True
                raise RuntimeError(str(exc)) from None
        return self._executor.submit(fn, *args)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)


def _worker_start(parent: int) -> None:
    """In each worker: die with the parent (Linux: a parent-death signal), then load what the work needs."""
    import ctypes
    import ctypes.util
    import signal
    import sys

    if sys.platform == "linux":
        ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    import weasyprint  # noqa: F401

    from pipeline.report import plots  # noqa: F401


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "scenario"
