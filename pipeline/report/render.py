"""Render one run's report: the same jinja2 HTML (autoescaped) to disk and, through weasyprint, to PDF."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from pipeline import memo, store
from pipeline.report import plots
from pipeline.schema import ScalegapError, decimal_year

TEMPLATES = Path(__file__).parent / "templates"
KEYS = ["metric", "source", "source_version", "x_axis"]
TABLES = ("sources", "rejected", "selection", "fits", "fit_params", "fit_bands", "series_points", "backtests",
          "classifications", "counterparts", "projections", "projection_trajectories", "projection_sensitivity",
          "scenarios", "horizons", "horizon_trend", "gap_summary", "gap_series")


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
    finally:
        con.close()
    return _one_scenario(data, scenario)


def _one_scenario(data: dict, wanted: str | None) -> dict:
    """A run may hold projections under several scenarios (`scalegap project --scenario ...` on the same fit):
    report one. Asked for by name, else the one the run itself was given, else `default`, else the first."""
    names = list(data["scenarios"]["scenario"]) if len(data["scenarios"]) else []
    if len(names) <= 1 and wanted is None:
        return data
    if wanted is not None and wanted not in names:
        raise ScalegapError(f"scenario {wanted!r} was not projected in this run (it has {', '.join(names) or 'none'}). "
                            "Fix: `scalegap project --scenario FILE` first, or pick one of those")
    chosen = wanted
    if chosen is None:
        try:
            asked = json.loads(data["run"]["parameters"].iloc[0] or "{}").get("scenario") if len(data["run"]) else None
        except (TypeError, ValueError):
            asked = None
        paths = dict(zip(data["scenarios"]["path"], names, strict=True))
        if isinstance(asked, dict):  # a run configuration records its scenario by name and path
            asked = asked.get("path")
        chosen = next((n for p, n in paths.items() if asked and str(p).endswith(Path(str(asked)).name)), None)
        chosen = chosen or ("default" if "default" in names else names[0])
    for table in ("projections", "projection_trajectories", "projection_sensitivity", "scenarios"):
        if len(data[table]) and "scenario" in data[table].columns:
            data[table] = data[table][data[table]["scenario"] == chosen].reset_index(drop=True)
    return data


def _match(frame: pd.DataFrame, key: dict) -> pd.DataFrame:
    if frame.empty or not set(KEYS) <= set(frame.columns):
        return frame.iloc[0:0]
    mask = pd.Series(True, index=frame.index)
    for k in KEYS:
        mask &= frame[k] == key[k]
    return frame[mask]


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


def build_context(data: dict, run_id: str, figures: memo.Memo | None = None, progress: Progress | None = None) -> dict:
    figures = figures or memo.Memo(None, [])
    sections, summary = [], []
    selection = data["selection"].sort_values(["x_axis", "metric", "source"]) if len(data["selection"]) else data["selection"]
    # a source fitted in two versions (METR v1 and v1.1) is named with its version, or the two read alike
    versions = selection.groupby("source")["source_version"].nunique().to_dict() if len(selection) else {}
    for i, sel in enumerate(selection.to_dict("records")):
        if progress:
            progress(i, len(selection) + 1, f"{sel['metric']} [{sel['source']}] vs {sel['x_axis']}")
        key = {k: sel[k] for k in KEYS}
        fits = _match(data["fits"], key).sort_values("weight", ascending=False)
        cls = _match(data["classifications"], key)
        cls = cls.iloc[0].to_dict() if len(cls) else {}
        pairs = _match(data["counterparts"], key)
        proj = data["projections"]
        proj = _match(proj, key) if len(proj) else proj
        proj_row = proj.iloc[0].to_dict() if len(proj) else {}
        traj = data["projection_trajectories"]
        traj = traj[traj["curve"] == proj_row.get("curve")].sort_values("step") if proj_row and len(traj) else pd.DataFrame()
        points = _match(data["series_points"], key)
        bands = _match(data["fit_bands"], key)
        anchor = f"series-{i}"
        summary.append({"anchor": anchor, **key, "kind": sel["kind"], "n": sel["n"], "best": sel["best_family"],
                        "bounded_weight": sel["bounded_weight"], "p_bounded": cls.get("p_bounded"),
                        "verdict": cls.get("verdict", "not classified"), "basis": cls.get("basis"),
                        "n_warnings": len(_json_list(cls.get("warnings"))),
                        "counterpart": counterpart_summary(pairs, sel["metric"]),
                        "peak_gap": proj_row.get("peak_gap"), "peak_year": proj_row.get("peak_year"),
                        "peak_decades": proj_row.get("peak_decades"),
                        "limit": proj_row.get("limit_kind")})
        params = _match(data["fit_params"], key)
        if len(params):  # one block per family, in the order of the selection table
            order = {f: i for i, f in enumerate(fits["family"])}
            params = params.assign(_o=params["family"].map(order)).sort_values("_o", kind="stable")
        top = points.sort_values("y", ascending=sel.get("kind") == "loss").head(5) if len(points) else points
        sections.append({
            "anchor": anchor, "key": key, "sel": sel, "cls": cls, "fits": fits.to_dict("records"),
            "source_label": f"{key['source']}@{key['source_version']}" if versions[key["source"]] > 1 else key["source"],
            "params": params.to_dict("records"), "pairs": pairs.to_dict("records"), "top": top.to_dict("records"),
            "backtests": _sorted(_match(data["backtests"], key), ["family", "cutoff"]).to_dict("records"), "proj": proj_row,
            "cls_warnings": _json_list(cls.get("warnings")),
            # the projection repeats the verdict's warnings; show only what it adds
            "proj_warnings": [w for w in _json_list(proj_row.get("warnings")) if w not in _json_list(cls.get("warnings"))],
            "fit_svg": figures.call(plots.fit_plot, points, bands, fits, sel["best_family"], key["x_axis"], sel["unit"],
                                    key["metric"])
            if len(points) else None,
            "pair_svg": figures.call(plots.pair_plot, panels, key["x_axis"]) if (panels := counterpart_panels(
                pairs, points, {**sel, **cls}, traj[["year", "decades", "frontier", "meek"]] if len(traj) else None))
            else None,
            "gap_svg": figures.call(plots.gap_plot, traj, proj_row.get("curve", ""), sel["unit"]) if len(traj) else None,
        })
    explicit = []
    proj_all = data["projections"]
    if len(proj_all):
        for row in proj_all[proj_all["metric"].isna() & proj_all["family"].notna()].to_dict("records"):
            traj = data["projection_trajectories"]
            traj = traj[traj["curve"] == row["curve"]].sort_values("step")
            explicit.append({"row": row, "svg": figures.call(plots.gap_plot, traj, row["curve"], row.get("unit") or "") if len(traj) else None})
    run = data["run"].iloc[0].to_dict() if len(data["run"]) else {"run_id": run_id}
    rejected = data["rejected"]
    rejected_summary = (rejected.groupby(["source", "source_version", "reason"]).size().reset_index(name="rows")
                        .sort_values("rows", ascending=False).head(40).to_dict("records")) if len(rejected) else []
    scenario = data["scenarios"].iloc[0].to_dict() if len(data["scenarios"]) else None
    if scenario:
        try:
            scenario["sources_map"] = json.loads(scenario["sources"])
            scenario["growth_map"] = json.loads(scenario["growth"])
        except (TypeError, ValueError):  # stores written before the scenario was kept as JSON
            scenario["sources_map"], scenario["growth_map"] = {}, {}
    sens = data["projection_sensitivity"]
    return {
        "run": run, "run_id": run_id, "parameters": _json(run.get("parameters")), "digests": _json(run.get("data_digests")),
        "summary": summary, "sections": sections, "explicit": explicit, "sources": data["sources"].to_dict("records"),
        "rejected": rejected_summary, "stages": data["stages"].to_dict("records"), "scenario": scenario,
        "sensitivity_svg": figures.call(plots.sensitivity_plot, sens, _decimal_year(scenario.get("until")) if scenario
                                        else None) if len(sens) else None,
        "horizons": _sorted(data["horizons"], ["release_date"]).to_dict("records"),
        "horizon_svg": figures.call(plots.horizon_plot, data["horizons"]) if len(data["horizons"]) else None,
        "horizon_trend": data["horizon_trend"].to_dict("records"),
        "counterparts": data["counterparts"].to_dict("records"), "png_dpi": plots.PNG_DPI,
        "gaps": gap_context(data.get("gap_summary", pd.DataFrame()), data.get("gap_series", pd.DataFrame())),
    }


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
    return {"rows": rows, "yearly": yearly, "eci": eci_row, "published": G.PUBLISHED_LAGS,
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


def counterpart_summary(pairs: pd.DataFrame, metric: str) -> str:
    """'win_rate: meek; bt_strength: mighty': every derived scale of the metric once, without the metric's own name."""
    seen: dict[str, str] = {}
    for p in pairs.to_dict("records"):
        for side, verdict in ((p["bounded_metric"], p["bounded_verdict"]), (p["unbounded_metric"], p["unbounded_verdict"])):
            if side != metric:
                seen.setdefault(side.removeprefix(f"{metric}:"), verdict)
    return "; ".join(f"{name}: {verdict}" for name, verdict in seen.items())


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


def render_html(context: dict, medium: str = "html") -> str:
    """The one template for both outputs; `medium` only chooses how figures are embedded (inline SVG for the
    page, PNG for weasyprint)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.ChainableUndefined)
    env.filters["fmt"] = fmt
    env.filters["year"] = year
    env.filters["breakable"] = breakable
    env.filters["growth"] = growth
    env.filters["figure"] = functools.partial(figure, medium=medium)
    return env.get_template("report.html.j2").render(**context)


def figure(plot: plots.Plot | None, medium: str = "html") -> Markup:
    if plot is None:
        return Markup("")
    if medium == "pdf":
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
    """Write <out>/<run_id>/report.html and report.pdf (same HTML), refresh <out>/latest.*; return paths and pages."""
    import weasyprint

    out_dir = Path(out_dir)
    store.check_writable(out_dir, "report")
    store.check_writable(store.resolve_db(db), "database")  # the stage is recorded there once the report is written
    data = load(db, run_id, scenario)
    if data["run"].empty:
        raise ScalegapError(f"run {run_id} is not in the store. Fix: `scalegap status` lists the runs; "
                            "omit --run-id to report the newest run")
    figures = figure_cache(db)
    context = build_context(data, run_id, figures, progress)
    html = render_html(context)
    folder = out_dir / run_id
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(folder, exc) from None
    html_path, pdf_path = folder / "report.html", folder / "report.pdf"
    _atomic_write(html_path, html.encode("utf-8"))
    if progress:
        n = len(context["sections"])
        progress(n, n + 1, "PDF pages")
    document = weasyprint.HTML(string=render_html(context, "pdf"), base_url=str(folder)).render()
    buffer = document.write_pdf()
    _atomic_write(pdf_path, buffer)
    for name, source in (("latest.html", html_path), ("latest.pdf", pdf_path)):
        _atomic_write(out_dir / name, source.read_bytes())  # unique temp name: two runs may finish together
    with store.open_stage(db, run_id, "report"):
        pass  # records the stage; the report itself lives on disk, not in the store
    return {"html": str(html_path), "pdf": str(pdf_path), "pages": len(document.pages),
            "figures_drawn": figures.misses, "figures_cached": figures.hits}
