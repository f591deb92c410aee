"""`scalegap ...`: one console script, a subcommand per stage.

Conventions: every subcommand takes --db; those that print results take --json (machine-readable on
stdout; logs and progress on stderr); --quiet silences progress. Expected failures print one clear
message and exit non-zero, never a traceback.
"""

from __future__ import annotations

import atexit
import difflib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.errors import ScalegapError, one_line_store_errors, received_signals

try:  # typer 0.2x raises its own copy of click's exceptions; older releases raise click's
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors

app = typer.Typer(
    help="Fit scaling curves to published AI results and project whether the frontier-minus-meek gap "
         "closes or grows.\n\nExample: scalegap run --metric mmlu --bootstrap 1000",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# stdout carries results; stderr carries progress and messages.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # an error stays one line in a log file

DbOption = Annotated[Path | None, typer.Option("--db", help="DuckDB file (default data/processed/scalegap.duckdb, or $SCALEGAP_DB).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
OutOption = Annotated[Path, typer.Option("--out", help="Folder for reports.")]
# One name per kind of draw count, the same in every command (older names kept as aliases).
FitDraws = Annotated[int, typer.Option("--fit-draws", "--bootstrap", min=1, help="Bootstrap draws of every fitted family (they also give P(bounded)).")]
ProjectionDraws = Annotated[int, typer.Option("--projection-draws", "--samples", min=0, help="Monte Carlo draws of the gap (scenario x fit draws); 0 = none.")]
HorizonDraws = Annotated[int, typer.Option("--horizon-draws", "--draws", min=0, help="Hierarchical bootstrap draws of METR per-run data (family, task, run).")]
BacktestDraws = Annotated[int, typer.Option("--backtest-draws", min=0, help="Bootstrap draws inside each rolling-origin backtest fit.")]
SeedOption = Annotated[int, typer.Option("--seed", min=0, help="Random seed (same seed, same results).")]
ScenarioOption = Annotated[Path | None, typer.Option("--scenario", help="Growth scenario TOML (default: pipeline/scenarios/default.toml).")]
XAxisOption = Annotated[list[str] | None, typer.Option("--x-axis", "--x", help="compute (log10 FLOP), date (release year) and/or inference (log10 samples per task); default all three.")]
ThresholdOption = Annotated[float, typer.Option("--threshold", help="P(bounded) needed for meek (1 - it for mighty); between, indeterminate.")]


def print_json(payload) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str, allow_nan=False) + "\n")


def print_frame(frame, title: str | None = None, float_format: str = "{:.4g}") -> None:
    cells = [[_cell(v, float_format) for v in row] for row in frame.itertuples(index=False)]
    if not out.is_terminal:
        print_plain(frame, cells, title)
        return
    table = Table(title=title, show_lines=False)
    for column in frame.columns:
        table.add_column(str(column), overflow="fold")
    for row in cells:
        table.add_row(*map(escape, row))
    out.print(table)


def print_plain(frame, cells: list[list[str]], title: str | None) -> None:
    """Piped or redirected output: whole cells in padded columns as wide as they need, one row a line
    (a terminal's 80-column folding would split words in a file)."""
    import pandas as pd

    header = [str(c) for c in frame.columns]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(header)]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]

    def line(row: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(row, widths, numeric, strict=True)).rstrip()

    text = ([title] if title else []) + [line(header)] + [line(row) for row in cells]
    sys.stdout.write("\n".join(text) + "\n\n")


def _cell(value, float_format: str) -> str:
    import pandas as pd

    if value is None or value is pd.NaT:
        return ""
    if isinstance(value, float):
        if value != value:
            return ""
        return float_format.format(value)
    return str(value)


def jsonable_frame(frame) -> list[dict]:
    """DataFrame -> list of dicts with NaN as null (JSON has no NaN)."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def note_run_state(db, run_id: str, quiet: bool = False) -> None:
    """Say so when the run whose results a command reads did not finish: it is still running, or its
    process is gone (the store still says running until the next write marks it failed)."""
    from pipeline import store

    con = store.connect(db, read_only=True)
    try:
        state = store.run_status(con, run_id)
    finally:
        con.close()
    if not quiet and state in ("running", store.PROCESS_GONE):
        err.print(f"note: run {run_id} is {state}; its committed stages are used", markup=False, highlight=False)


# ---------------------------------------------------------------------------------- ingest
@app.command()
def ingest(
    targets: Annotated[list[str], typer.Argument(help="Files, folders, http(s) URLs, or names from data/raw/sources.toml.")],
    db: DbOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Read published results into the store (unchanged files are skipped).

    Example: scalegap ingest data/raw my_results.csv   (a folder, files, URLs or names from data/raw/sources.toml)
    """
    from pipeline import ingest as ingest_stage
    from pipeline import store

    run_id = store.start_run(db, "ingest", {"targets": targets})
    try:
        summary = ingest_stage.ingest(targets, db=db, run_id=run_id)
    except BaseException as exc:
        store.finish_run(db, run_id, "failed", str(exc))
        raise
    store.finish_run(db, run_id, "succeeded", data_digests=summary.digests)
    if as_json:
        print_json({"run_id": run_id, **summary.as_dict()})
        return
    if not quiet:
        err.print(f"run {run_id}: {len(summary.files)} file(s), {len(summary.versions)} new source version(s), "
                  f"{summary.observations} observations, {summary.rejected} rejected rows, "
                  f"{len(summary.skipped_unchanged)} unchanged")
        for note in summary.notes:
            err.print(f"  note: {note}")


# ---------------------------------------------------------------------------------- status
@app.command()
def status(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show what the store holds: observations per kind, metric and source, and recent runs.

    Example: scalegap status --json
    """
    from pipeline import ingest as ingest_stage
    from pipeline import store

    summary = ingest_stage.summary_table(db)
    con = store.connect(db, read_only=True)
    try:
        runs = store.runs_view(con, "ORDER BY started_at DESC LIMIT 10")[
            ["run_id", "command", "status", "started_at", "finished_at"]]
    finally:
        con.close()
    if as_json:
        print_json({"observations": jsonable_frame(summary), "runs": jsonable_frame(runs)})
        return
    print_frame(summary, "Observations per kind, metric and source")
    print_frame(runs, "Recent runs")


# ---------------------------------------------------------------------------------- sources / forget
@app.command()
def sources(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List what the store holds by source and version, and which versions the fits use.

    Example: scalegap sources --json
    """
    from pipeline import store

    con = store.connect(db, read_only=True)
    try:
        table = store.sources_view(con)
    finally:
        con.close()
    if as_json:
        print_json({"sources": jsonable_frame(table)})
        return
    shown = table.drop(columns=["location"]).assign(retrieved_at=table["retrieved_at"].dt.strftime("%Y-%m-%d %H:%M"))
    print_frame(shown, "Stored sources (fits: used, superseded by a newer copy, or forgotten)")


@app.command()
def forget(
    source: Annotated[str, typer.Argument(help="SOURCE (every version) or SOURCE@VERSION, as `scalegap sources` lists them.")],
    undo: Annotated[bool, typer.Option("--undo", help="Bring a forgotten source version back into future runs.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Leave a source (or one version) out of future runs; past runs' results keep it. Nothing is deleted.

    Example: scalegap forget my_results@2025-01-01
    """
    from pipeline import store

    name, _, version = source.partition("@")
    changed = store.forget(db, name, version or None, undo=undo)
    if as_json:
        print_json({"source": name, "versions": changed, "forgotten": not undo})
    elif not quiet:
        verb = "back in future runs" if undo else "left out of future runs"
        err.print(f"{', '.join(f'{name}@{v}' for v in changed)}: {verb}", markup=False, highlight=False)


# ---------------------------------------------------------------------------------- run / serve (Prefect)
def _split(values: list[str] | None) -> list[str] | None:
    """Repeatable options that also accept comma lists: --metric mmlu,gpqa --metric eci."""
    items = [v.strip() for value in values or [] for v in value.split(",") if v.strip()]
    return items or None


def _release_frames(exc: BaseException) -> None:
    """Drop the locals of a failed run's frames (Prefect keeps the exception in its state), so
    store connections are freed now rather than reported as leaks at interpreter exit."""
    import gc
    import traceback

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if exc.__traceback__ is not None:
            traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__
    gc.collect()


@app.command()
def run(
    metric: Annotated[list[str] | None, typer.Option("--metric", help="Metric(s) to fit, repeatable or comma-separated (default: all).")] = None,
    families: Annotated[list[str] | None, typer.Option("--families", help="Curve families to try, comma-separated (default: all).")] = None,
    x_axis: XAxisOption = None,
    scenario: ScenarioOption = None,
    fit_draws: FitDraws = 1000,
    projection_draws: ProjectionDraws = 1000,
    horizon_draws: HorizonDraws = 1000,
    backtest_draws: BacktestDraws = 200,
    seed: SeedOption = 0,
    threshold: ThresholdOption = 0.8,
    sources: Annotated[list[str] | None, typer.Option("--sources", help="Paths, URLs or names from data/raw/sources.toml; 'all-public' = every name (default: bundled data/raw).")] = None,
    db: DbOption = None,
    out_dir: OutOption = Path("reports"),
    task_runner: Annotated[str, typer.Option("--task-runner", help="default (threads) or dask.")] = "default",
    dask_address: Annotated[str | None, typer.Option("--dask-address", help="Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a local cluster of 2 workers).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute everything: copy no results from an earlier run with the same inputs, use no cached fits.")] = False,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """The whole refresh as a Prefect flow: ingest, horizons, fit, classify, project, report.

    Example: scalegap run --metric mmlu --scenario pipeline/scenarios/fast_software.toml --fit-draws 1000
    """
    import flows

    flows.quiet_console()  # expected failures are shown once by main(), without Prefect's traceback
    from flows.progress import RichReporter, set_reporter

    try:
        # the temporary server starts first, so that its start-up and the imports below overlap
        with flows.temporary_server() as server:
            flows.record_prefect_sigterm()
            from flows.refresh import refresh

            set_reporter(None if quiet or as_json and not err.is_terminal else RichReporter(err))
            if server is not None:
                from pipeline.stages import report as report_stage

                report_stage.load_libraries()  # while the server starts
                server.wait()
            result = refresh(
                sources=_split(sources), metrics=_split(metric), families=_split(families),
                x_axes=_split(x_axis), fit_draws=fit_draws, projection_draws=projection_draws,
                horizon_draws=horizon_draws, backtest_draws=backtest_draws, seed=seed, threshold=threshold,
                scenario=str(scenario) if scenario else None, db=str(db) if db else None,
                out_dir=str(out_dir), task_runner=task_runner, dask_address=dask_address,
                use_cache=not no_cache, command="run",
            )
    except ScalegapError as exc:
        _release_frames(exc)
        raise
    except OSError as exc:
        if task_runner == "dask" and dask_address:
            raise ScalegapError(f"cannot reach the Dask scheduler at {dask_address} ({exc}). Fix: start "
                                "`dask scheduler` there (and `dask worker` on each machine), or omit --dask-address "
                                "for a local cluster") from None
        raise
    except RuntimeError as exc:
        if "ephemeral Prefect API server" in str(exc):
            raise ScalegapError("Prefect's temporary local server did not start in time (the machine may be busy). "
                                "Fix: run again, or start one with `prefect server start` and set PREFECT_API_URL="
                                "http://127.0.0.1:4200/api") from None
        raise
    finally:
        set_reporter(None)
    if as_json:
        print_json(result)
        return
    if result.get("report"):
        for kind in ("html", "pdf", "appendix"):
            if result["report"].get(kind):
                out.print(result["report"][kind])
        return
    from pipeline import ingest as ingest_stage

    print_frame(ingest_stage.summary_table(db), f"Observations per kind, metric and source (run {result['run_id']})")


@app.command()
def serve(
    api_url: Annotated[str | None, typer.Option("--api-url", help="Prefect server API (default $PREFECT_API_URL or http://127.0.0.1:4200/api).")] = None,
    start_server: Annotated[bool, typer.Option("--start-server", help="Start a local `prefect server` if none answers.")] = False,
    port: Annotated[int, typer.Option("--port", help="Port for --start-server.")] = 4200,
    cron: Annotated[str, typer.Option("--cron", help="Schedule of the weekly refresh (cron, UTC).")] = "0 6 * * 1",
    db: DbOption = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Report folder of the served runs (default: reports/).")] = None,
) -> None:
    """Serve the weekly-refresh schedule and the ad-hoc deployment on a local Prefect server (blocks).

    Example: scalegap serve --start-server
    """
    import flows
    from flows import deployments

    err.print(f"Prefect state in {flows.PREFECT_HOME}; ad-hoc: "
              "prefect deployment run 'refresh/adhoc' --param bootstrap=200")
    if db:
        from pipeline import store

        store.check_writable(store.resolve_db(db).resolve(), "database")
    deployments.serve(api_url, cron=cron, start=start_server, port=port,
                      db=str(Path(db).resolve()) if db else None,
                      out_dir=str(out_dir.resolve()) if out_dir else None)


# ---------------------------------------------------------------------------------- snapshot
@app.command()
def snapshot(
    shared: Annotated[Path, typer.Option("--shared", help="Folder holding the public data sets.")] = Path("../shared/data"),
    out_dir: Annotated[Path, typer.Option("--out", help="Where the bundled snapshot goes.")] = Path("data/raw"),
    db: Annotated[Path | None, typer.Option("--db", help="Also ingest the new snapshot into this DuckDB file, as a check that it reads.")] = None,
    quiet: QuietOption = False,
) -> None:
    """Rebuild the bundled data/raw snapshot from the public formats with the project's adapters.

    Example: scalegap snapshot --shared PUBLIC_DATA_FOLDER --out data/raw   (the downloaded public data sets, one folder each)
    """
    from pipeline.snapshot import build_snapshot

    counts = build_snapshot(shared, out_dir)
    if not quiet:
        for name, n in counts.items():
            err.print(f"{out_dir / name}: {n} rows")
    if db is not None:
        from pipeline import ingest as ingest_stage
        from pipeline import store

        run_id = store.start_run(db, "snapshot", {"shared": str(shared), "out": str(out_dir)})
        try:
            summary = ingest_stage.ingest([str(out_dir)], db=db, run_id=run_id)
        except ScalegapError as exc:
            store.finish_run(db, run_id, "failed", str(exc))
            raise
        store.finish_run(db, run_id, "succeeded", data_digests=summary.digests)
        if not quiet:
            err.print(f"{db}: {summary.observations} observations ingested from the new snapshot (run {run_id})")


def _finite_or_label(value):
    """JSON has no infinity: +inf becomes "inf", NaN becomes null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return value


def _scenario_with(scenario: Path | None, hardware: float | None, algorithms: float | None,
                   investment: float | None):
    """The scenario's growth, with any rate given on the command line in place of its own (as a point)."""
    import dataclasses

    from pipeline.scenario import Growth, load_scenario

    loaded = load_scenario(scenario)
    given = {k: v for k, v in (("hardware", hardware), ("algorithms", algorithms), ("investment", investment))
             if v is not None}
    for name, value in given.items():
        if not value > 1:
            raise ScalegapError(f"--{name} {value}: an annual growth factor must exceed 1. Fix: give e.g. 1.414")
    if not given:
        return loaded
    return dataclasses.replace(loaded, growth={**loaded.growth, **{k: Growth("point", float(v)) for k, v in given.items()}})


@app.command()
def classify(
    expr: Annotated[str | None, typer.Option("--expr", help="Classify a closed-form metric in C, e.g. 'log(log(C))'.")] = None,
    metric: Annotated[list[str] | None, typer.Option("--metric", help="Metric(s) to classify, repeatable or comma-separated (default: all).")] = None,
    threshold: ThresholdOption = 0.8,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Fit run to classify (default: the newest fit).")] = None,
    scenario: ScenarioOption = None,
    hardware: Annotated[float | None, typer.Option("--hardware", help="Yearly hardware factor g_h (default: the scenario's).")] = None,
    algorithms: Annotated[float | None, typer.Option("--algorithms", help="Yearly algorithmic factor g_a (default: the scenario's).")] = None,
    investment: Annotated[float | None, typer.Option("--investment", help="Yearly frontier investment factor g_i (default: the scenario's).")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Meek or mighty: classify fitted curves in the store, or any closed-form metric with --expr.

    Growth rates come from the scenario (--scenario, default the shipped one) unless given here.

    Example: scalegap classify --expr "log(log(C))" --json
    """
    chosen = _scenario_with(scenario, hardware, algorithms, investment)
    if expr is not None:  # a formula needs sympy only, not the store or the fitting libraries
        from pipeline import expressions

        a, b = chosen.effective_rates()
        verdict = expressions.classify_expression(expr, a=a, b=b)
        payload = {k: _finite_or_label(v) for k, v in verdict.as_dict().items()} | {"growth_a": a, "growth_b": b}
        if as_json:
            print_json(payload)
        else:
            for key, value in payload.items():
                out.print(f"{key}: {value}", highlight=False, markup=False)
        return
    from pipeline import store
    from pipeline.config import RunConfig
    from pipeline.stages import classify as classify_stage

    config = RunConfig.build(chosen, metrics=_split(metric), threshold=threshold)
    con = store.connect(db, read_only=True)
    try:
        run_id = run_id or store.latest_run(con, "fit")
    finally:
        con.close()
    if run_id is None:
        raise ScalegapError("no fit run in the store. Fix: run `scalegap run` first, or pass --expr")
    note_run_state(db, run_id, quiet)
    summary = classify_stage.run(db, run_id, config)
    con = store.connect(db, read_only=True)
    try:
        rows = con.execute("SELECT metric, source, source_version, x_axis, best_family, verdict, basis, p_bounded, "
                           "best_verdict, gap_limit, growth_a, growth_b, warnings, reason FROM classifications "
                           "WHERE run_id = ? ORDER BY metric, source, source_version, x_axis", [run_id]).df()
        metrics = con.execute("SELECT metric, verdict, basis, p_bounded, growth_a, growth_b, warnings, series, reason "
                              "FROM metric_verdicts WHERE run_id = ? ORDER BY metric", [run_id]).df()
        pairs = con.execute("SELECT metric, source, x_axis, pair, bounded_metric, bounded_verdict, unbounded_metric, "
                            "unbounded_verdict, takeaway FROM counterparts WHERE run_id = ? ORDER BY ALL",
                            [run_id]).df()
    finally:
        con.close()
    if as_json:
        def record(r: dict) -> dict:
            r = {k: _finite_or_label(v) for k, v in r.items()}
            for key in ("warnings", "series"):
                if isinstance(r.get(key), str):
                    r[key] = json.loads(r[key])
            return r
        metric_rows = []
        for r in metrics.to_dict(orient="records"):
            part = rows[rows["metric"] == r["metric"]]
            metric_rows.append(record({**r, "source": ", ".join(sorted(set(part["source"]))),
                                       "x_axis": ", ".join(sorted(set(part["x_axis"])))}))
        print_json({"run_id": run_id, **summary, "classifications": [record(r) for r in rows.to_dict("records")],
                    "metrics": metric_rows, "counterparts": pairs.to_dict(orient="records")})
    elif not quiet:
        print_frame(metrics.drop(columns=["warnings", "series", "growth_a", "growth_b"]),
                    title=f"verdict per metric (run {run_id})")
        print_frame(rows.drop(columns=["reason", "warnings", "growth_a", "growth_b", "gap_limit"]),
                    title="verdict per series")
        for r in rows.to_dict("records"):
            for warning in json.loads(r["warnings"] or "[]"):
                out.print(f"warning: {r['metric']} [{r['source']}] vs {r['x_axis']}: {warning}", markup=False)
        print_frame(pairs.drop(columns=["takeaway"]), title="counterparts")


# ---------------------------------------------------------------------------------- horizons
@app.command()
def horizons(
    runs: Annotated[Path | None, typer.Option("--runs", help="METR per-run file (all_runs.jsonl or metr_runs*.csv.gz) to ingest first.")] = None,
    draws: HorizonDraws = 1000,
    seed: SeedOption = 0,
    regularization: Annotated[float, typer.Option("--regularization", min=0.0, help="L2 on the slope, METR's 1/C (0.1 for TH1.0).")] = 0.1,
    weighting: Annotated[str, typer.Option("--weighting", help="invsqrt_task_weight (METR headline) or equal_task_weight.")] = "invsqrt_task_weight",
    db: DbOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Task horizons from METR per-run data: 50%/80% horizons per model, intervals, doubling time.

    Example: scalegap horizons --horizon-draws 1000   (on the per-run data `scalegap run` ingested)
    """
    from pipeline import ingest as ingest_stage
    from pipeline import store
    from pipeline.stages import horizons as horizons_stage

    run_id = store.start_run(db, "horizons", {"runs": str(runs) if runs else None, "draws": draws, "seed": seed,
                                              "regularization": regularization, "weighting": weighting})
    try:
        runs_source = None
        if runs is not None:
            if not runs.is_file():
                raise ScalegapError(f"{runs}: no such file. Fix: give the path of METR's runs file")
            # METR ships release dates next to the runs; the trend needs them
            dates = sorted(runs.parent.glob("release_dates*.y*ml"))
            ingested = ingest_stage.ingest([str(runs), *map(str, dates)], db=db, run_id=run_id)
            versions = [v for s, v in ingested.versions if s == "metr_runs"] + \
                [item.split("@", 1)[1] for item in ingested.skipped_unchanged if item.startswith("metr_runs@")]
            if not versions:
                raise ScalegapError(f"{runs}: not read as per-run data. Fix: give METR's all_runs.jsonl "
                                    "(fields run_id, task_id, alias, score_binarized, human_minutes)")
            runs_source = versions[0]
        summary = horizons_stage.run(db, run_id, None, runs_source=runs_source, draws=draws, seed=seed,
                                     regularization=regularization, weighting=weighting)
    except BaseException as exc:
        store.finish_run(db, run_id, "failed", str(exc))
        raise
    store.finish_run(db, run_id, "succeeded")
    if "skipped" in summary:
        if as_json:
            print_json({"run_id": run_id, **summary})
        elif not quiet:
            err.print(f"run {run_id}: skipped ({summary['skipped']}). Fix: pass --runs FILE")
        return
    table, trend = summary.pop("horizons"), summary.pop("trend")
    if as_json:
        records = [{k: _finite_or_label(v) for k, v in r.items()}
                   for r in jsonable_frame(table.astype(object).where(table.notna(), None))]
        trend_records = [{k: _finite_or_label(v) for k, v in r.items()} for r in trend.to_dict(orient="records")]
        print_json({**summary, "horizons": records, "trend": trend_records})
        return
    if not quiet:
        shown = table.drop(columns=["note"]).assign(release_date=table["release_date"].dt.strftime("%Y-%m-%d"))
        print_frame(shown, float_format="{:.3g}", title=f"Task horizons, minutes (run {run_id}, {summary['source']} {summary['source_version']}, "
                                 f"{draws} draws, 95% intervals)")
        for _, h in table[table["note"].notna()].iterrows():
            out.print(f"note: {h['model']}: {h['note']}", markup=False)
        if trend.empty or "date" not in set(trend["x_axis"]):
            out.print("no trend: fewer than 3 models with release dates. Fix: ingest METR's release_dates.yaml")
        for _, t in trend.iterrows():
            if t["x_axis"] == "date":
                out.print(f"{t['metric']}: doubling time {t['doubling_days']:.0f} days "
                          f"(95% {t['lo']:.0f} to {t['hi']:.0f}) over {t['n_models']} models")
            else:
                out.print(f"{t['metric']}: horizon doubles per {t['flop_per_doubling']:.3g}x training compute "
                          f"(95% {t['flop_per_doubling_lo']:.3g} to {t['flop_per_doubling_hi']:.3g}) over {t['n_models']} models")


# ---------------------------------------------------------------------------------- project
@app.command()
def project(
    scenario: ScenarioOption = None,
    samples: ProjectionDraws = 1000,
    seed: SeedOption = 0,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Fit run to project (default: newest with a fit).")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Project the frontier-minus-meek gap of every curve under a growth scenario.

    Example: scalegap project --scenario pipeline/scenarios/fast_software.toml --projection-draws 500 --json
    """
    from pipeline import projection, store
    from pipeline.config import Draws, RunConfig
    from pipeline.stages import project as project_stage

    config = RunConfig.build(scenario, Draws(projection=samples), seed)  # a bad scenario fails before the store
    if run_id is None:
        run_id = store.newest_run(db, "fit")
        if run_id is None:
            run_id = store.start_run(db, "project", config.as_dict())
            store.finish_run(db, run_id, "succeeded")
        else:
            note_run_state(db, run_id, quiet)
    summary = project_stage.run(db, run_id, config)
    con = store.connect(db, read_only=True)
    try:
        table = con.execute("SELECT * FROM projections WHERE run_id = ? AND scenario = ? ORDER BY curve",
                            [run_id, summary["scenario"]]).df()
        traj = con.execute("SELECT * FROM projection_trajectories WHERE run_id = ? AND scenario = ? "
                           "ORDER BY curve, step", [run_id, summary["scenario"]]).df()
    finally:
        con.close()
    if as_json:
        curves = []
        for row in jsonable_frame(table):
            part = traj[traj["curve"] == row["curve"]]
            cols = (["year", "decades", "frontier", "meek", "gap", "ratio", "lag_months"]
                    + (["gap_lo", "gap_mid", "gap_hi"] if samples else []))
            row["warnings"] = json.loads(row["warnings"]) if isinstance(row.get("warnings"), str) else []
            row["trajectory"] = jsonable_frame(part[cols])
            curves.append(row)
        print_json({"run_id": run_id, "scenario": summary["scenario"], "curves": curves})
        return
    band = " ; ranges are 10th-90th percentiles" if samples else ""
    print_frame(projection.display_table(table), f"Gap projections, scenario {summary['scenario']} (run {run_id}{band})")


# ---------------------------------------------------------------------------------- fit
@app.command()
def fit(
    metric: Annotated[list[str] | None, typer.Option("--metric", help="Metric(s) to fit, repeatable or comma-separated (default: all).")] = None,
    x: XAxisOption = None,
    families: Annotated[list[str] | None, typer.Option("--families", help="Curve families, repeatable or comma-separated (default: per metric kind).")] = None,
    bootstrap: FitDraws = 1000,
    backtest_draws: BacktestDraws = 200,
    seed: SeedOption = 0,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Write under this run id (default: a new run).")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Fit curve families to every series, with bootstrap intervals, AICc weights and backtests.

    Example: scalegap fit --metric mmlu --x-axis compute --fit-draws 1000 --json
    """
    from pipeline import fitting, store
    from pipeline.config import Draws, RunConfig
    from pipeline.stages import fit as fit_stage

    config = RunConfig.build(None, Draws(fit=bootstrap, backtest=backtest_draws), seed, _split(metric),
                             _split(families), _split(x), stages=("fit",))
    own_run = run_id is None
    run_id = run_id or store.start_run(db, "fit", config.as_dict())
    progress = None
    if not quiet:
        def progress(i: int, total: int, label: str) -> None:
            err.print(f"fit {i + 1}/{total}: {label}", markup=False, highlight=False)
    try:
        summary = fit_stage.run(db, run_id, config, progress=progress)
    except BaseException as exc:
        if own_run:
            store.finish_run(db, run_id, "failed", str(exc))
        raise
    if own_run:
        store.finish_run(db, run_id, "succeeded")
    if summary["series"] == 0 and not as_json:
        raise ScalegapError(f"nothing to fit: no series with at least {fitting.MIN_POINTS} points on "
                            f"{' or '.join(config.x_axes)}"
                            + (f" ({'; '.join(summary['skipped'])})" if summary.get("skipped") else "")
                            + ". Fix: scalegap ingest data/raw, then check `scalegap status`")
    table = fit_stage.fit_table(db, run_id, _split(metric))
    if as_json:
        print_json({"run_id": run_id, **summary, "fits": fitting.fit_records(table),
                    "selection": jsonable_frame(fit_stage.selection_table(db, run_id, _split(metric)))})
        return
    if not quiet:
        err.print(f"run {run_id}: {summary['series']} series, {summary['fits']} fits, {summary['converged']} converged"
                  + (f", {len(summary['skipped'])} series skipped" if summary.get("skipped") else ""))
        for note in summary.get("skipped", []):
            err.print(f"  skipped: {note}", markup=False, highlight=False)
    shown = table[["metric", "source", "x_axis", "family", "n", "converged", "aicc", "weight", "backtest_mae",
                   "parameters"]]
    print_frame(shown, f"Fits (run {run_id}; parameters with 95% bootstrap intervals)")


# ---------------------------------------------------------------------------------- report
@app.command()
def report(
    run_id: Annotated[str | None, typer.Option("--run-id", help="Run to report (default: newest run with a fit).")] = None,
    scenario: Annotated[str | None, typer.Option("--scenario", help="Scenario name to report when the run holds several (default: the run's own).")] = None,
    out_dir: OutOption = Path("reports"),
    db: DbOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Render a run's report: report.html, report.pdf and appendix.pdf under <out>/<run id>/ (and refresh
    <out>/latest.*). With --scenario another scenario projected on the same run is written beside them
    (report.<scenario>.pdf), never over them.

    Example: scalegap report --out reports
    """
    from pipeline import store
    from pipeline.report.render import report_stage

    store.check_writable(out_dir, "report")
    if run_id is None:
        con = store.connect(db, read_only=True)
        try:
            run_id = store.latest_run(con, "fit") or store.latest_run(con)
        finally:
            con.close()
        if run_id is None:
            raise ScalegapError("no run to report yet. Fix: run `scalegap run` first")
    note_run_state(db, run_id, quiet)
    progress = None
    if not quiet:  # one line per step: readable in a log file or CI, where no bar is redrawn
        def progress(i: int, total: int, label: str) -> None:
            err.print(f"report {i + 1}/{total}: {label}", markup=False, highlight=False)
    paths = report_stage(db, run_id, out_dir, scenario, progress=progress)
    if as_json:
        print_json({"run_id": run_id, **paths})
        return
    for kind in ("html", "pdf", "appendix"):
        out.print(escape(str(paths[kind])))



# ---------------------------------------------------------------------------------- scores
@app.command()
def scores(
    run_id: Annotated[str | None, typer.Option("--run-id", help="Scoring run to show (default: every scoring run; backtests of the newest fit).")] = None,
    metric: Annotated[list[str] | None, typer.Option("--metric", help="Metric(s) to show, repeatable or comma-separated (default: all).")] = None,
    variant: Annotated[str, typer.Option("--variant", help="calibrated (the headline forecast), model (as fitted) or all.")] = "calibrated",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Past forecasts scored against the observations that arrived since, and the latest run's pooled backtests.

    Each run stores its forecasts (scalegap run); a later run with new models of the same metric scores them:
    CRPS, log score and 50/80/95% interval coverage per forecast series.

    Example: scalegap scores --json
    """
    from pipeline import store
    from pipeline.stages import forecast as forecast_stage

    if variant not in ("calibrated", "model", "all"):
        raise ScalegapError(f"--variant {variant}: unknown. Fix: use calibrated, model or all")
    con = store.connect(db, read_only=True)
    try:
        table = forecast_stage.scores_table(con, run_id, _split(metric), None if variant == "all" else variant)
        fit_run = run_id if run_id and con.execute("SELECT count(*) FROM backtest_points WHERE run_id = ?",
                                                   [run_id]).fetchone()[0] else store.latest_run(con, "fit")
        summary = forecast_stage.backtest_summary(con, fit_run) if fit_run else {"run_id": None}
    finally:
        con.close()
    if as_json:
        records = []
        for r in jsonable_frame(table):
            for key in ("observed_sources", "missed"):
                if isinstance(r.get(key), str):
                    r[key] = json.loads(r[key])
            records.append(r)
        print_json({"scores": records, "backtests": summary})
        return
    if table.empty:
        out.print("no scored forecasts yet: a run scores earlier runs' forecasts once new observations of their "
                  "metric arrive (ingest a newer source version, then scalegap run)", markup=False)
    else:
        columns = forecast_stage.SCORE_FIELDS + (["variant"] if variant == "all" else [])
        print_frame(table[columns], title=f"Forecasts scored on observations that arrived later ({variant})",
                    float_format="{:.3g}")
        for r in table.to_dict("records"):
            missed = json.loads(r.get("missed") or "[]")
            if missed:
                names = ", ".join(f"{m['model']} ({m['value']:.4g}, 95% {m['q025']:.4g} to {m['q975']:.4g})"
                                  for m in missed[:5])
                out.print(f"missed: {r['metric']} [{r['source']}] vs {r['x_axis']} from run {r['forecast_run_id']}: "
                          f"{names}" + (f" and {len(missed) - 5} more" if len(missed) > 5 else ""), markup=False)
    if summary.get("run_id"):
        def pct(value):
            return "n/a" if value is None else f"{value:.1%}"
        out.print(f"backtests of run {summary['run_id']}: {summary['backtest_points']} held-out points over "
                  f"{summary['backtest_series']} series; 80% intervals cover {pct(summary['backtest_coverage80'])}, "
                  f"95% cover {pct(summary['backtest_coverage95'])} ({summary['calibration']}); as fitted "
                  f"{pct(summary['backtest_coverage80_model'])} / {pct(summary['backtest_coverage95_model'])}, "
                  f"each family alone {pct(summary['backtest_coverage80_families'])} / "
                  f"{pct(summary['backtest_coverage95_families'])}", markup=False)


# ---------------------------------------------------------------------------------- models
@app.command()
def models(
    search: Annotated[str | None, typer.Option("--search", help="Only models whose name or a spelling contains this (case-insensitive).")] = None,
    seen: Annotated[bool, typer.Option("--seen", help="Only models that a stored observation or run names.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the model registry: one row per model with every spelling the sources use, its organisation,
    release date, training compute with bounds and accessibility; and the spellings that name no model or
    several (add them to data/raw/aliases.toml and ingest again).

    Example: scalegap models --search sonnet --json
    """
    from pipeline import aliases as registry_store
    from pipeline import store

    con = store.connect(db, read_only=True)
    try:
        table, problems = registry_store.models_table(con)
        used = {r[0] for r in con.execute("SELECT DISTINCT model FROM model_aliases WHERE status = 'matched' "
                                          "AND source <> 'registry' AND model IS NOT NULL").fetchall()}
    finally:
        con.close()
    table = table.assign(aliases=[[str(n) for n in a] if a is not None and not isinstance(a, float) else []
                                  for a in table["aliases"]])
    if seen:
        table = table[table["model"].isin(used)]
    if search:
        needle = search.lower()
        hit = [needle in m.lower() or any(needle in n.lower() for n in a)
               for m, a in zip(table["model"], table["aliases"], strict=True)]
        table = table[hit]
        problems = problems[problems["alias"].str.lower().str.contains(needle, regex=False)]
    if as_json:
        records = jsonable_frame(table.drop(columns=["field_sources", "sources"]))
        for record, fields, sources in zip(records, table["field_sources"], table["sources"], strict=True):
            record["field_sources"] = json.loads(fields) if isinstance(fields, str) else {}
            record["sources"] = json.loads(sources) if isinstance(sources, str) else []
        print_json({"models": records, "unmatched": jsonable_frame(problems)})
        return
    shown = table.assign(aliases=table["aliases"].map(len), release_date=table["release_date"].dt.strftime("%Y-%m-%d"))
    print_frame(shown[["model", "organization", "release_date", "train_flop", "train_flop_lo", "train_flop_hi",
                       "confidence", "accessibility", "aliases"]], f"Model registry ({len(shown)} models)")
    if len(problems):
        print_frame(problems[["source", "alias", "status", "n_observations"]],
                    f"Spellings that name no model or several ({len(problems)}): add them to data/raw/aliases.toml")


# ---------------------------------------------------------------------------------- gaps
@app.command()
def gaps(
    run_id: Annotated[str | None, typer.Option("--run-id", help="Run whose gaps to show (default: the newest with a gaps stage).")] = None,
    metric: Annotated[list[str] | None, typer.Option("--metric", help="Metric(s), repeatable or comma-separated (default: all).")] = None,
    group: Annotated[list[str] | None, typer.Option("--group", help="Also compare a group named by a registry column, e.g. country=China (computes now).")] = None,
    draws: Annotated[int | None, typer.Option("--draws", min=0, help="Bootstrap draws for the bands when computing now (default 500).")] = None,
    seed: SeedOption = 0,
    db: DbOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """The observed gap on history: per metric with dated results, the leading group's best to date against a
    laggard group's (open vs closed weights, a 1/10 compute tier, or --group COLUMN=VALUE), the gap and how
    many months the laggard trails, with 90% bootstrap bands, beside what the metric's class predicts.

    Example: scalegap gaps --metric eci --json
    """
    from pipeline import store
    from pipeline.stages import gaps as gap_stage

    metrics = _split(metric)
    groups = _split(group)
    con = store.connect(db, read_only=True)
    try:
        stored = run_id or store.latest_run(con, "gaps")
        fitted = store.latest_run(con, "fit")
    finally:
        con.close()
    if stored is None or groups or draws is not None:
        target = run_id or fitted or store.start_run(db, "gaps", {"groups": groups, "draws": draws, "seed": seed})
        summary = gap_stage.run(db, target, None, comparisons=groups, draws=draws, seed=seed)
        if target not in (run_id, fitted):
            store.finish_run(db, target, "succeeded")
        stored = target
        if not quiet and not as_json:
            err.print(f"run {target}: observed gaps of {summary['series']} series ({summary['draws']} draws)")
    con = store.connect(db, read_only=True)
    try:
        table, series = gap_stage.load(con, stored)
    finally:
        con.close()
    if metrics:
        table, series = table[table["metric"].isin(metrics)], series[series["metric"].isin(metrics)]
    if as_json:
        print_json({"run_id": stored, "gaps": gap_stage.records(table, series)})
        return
    if table.empty:
        err.print("no dated series with both groups present (see `scalegap models` for accessibility and compute)")
        return
    import pandas as pd

    fmt = lambda v, lo, hi: "" if v != v else f"{v:.3g} [{lo:.3g}, {hi:.3g}]"  # noqa: E731
    shown = pd.DataFrame({
        "metric": table["metric"], "source": table["source"] + "@" + table["source_version"],
        "comparison": table["comparison"], "latest": table["latest_date"].dt.strftime("%Y-%m-%d"),
        "scale": table["gap_scale"],
        "gap (90%)": [fmt(*r) for r in zip(table["latest_gap"], table["latest_gap_lo"], table["latest_gap_hi"], strict=True)],
        "months behind (90%)": [fmt(*r) for r in zip(table["latest_months"], table["latest_months_lo"],
                                                     table["latest_months_hi"], strict=True)],
        "mean lag, months (90%)": [fmt(*r) for r in zip(table["mean_months"], table["mean_months_lo"],
                                                        table["mean_months_hi"], strict=True)],
        "observed": table["shape"], "class predicts": table["predicted"], "agrees": table["agrees"]})
    print_frame(shown, f"Observed gaps at the latest date (run {stored})")


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, unwinding like Ctrl-C: open stage transactions roll back and the run is
    recorded as cancelled (store.finish_run) before the command exits."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


# Signals received, first first (shared with the store, which records the run as cancelled): typer turns
# the Interrupted below into a plain exit code.
_signals = received_signals


_raised: list[str] = []   # signals this handler has already turned into Interrupted


def _interrupt(signum: int, frame) -> None:
    if _raised:
        # A second signal while the first unwinds: stop at once. The kernel ends our children;
        # readers see the run as failed (process gone).
        os._exit(128 + signum)
    name = signal.Signals(signum).name
    _raised.append(name)
    if name not in _signals:  # Prefect's SIGTERM bridge may have recorded it already (then re-sent it here)
        _signals.append(name)
    raise Interrupted(name)


def error(message: str) -> None:
    """The one error style of every command: a line starting with `error:`."""
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)


def _usage_error(exc: click_errors.UsageError) -> None:
    """Click's usage lines, then one `error:` line that names the closest valid command or option."""
    ctx = exc.ctx
    message = exc.format_message()
    if isinstance(exc, click_errors.NoSuchOption) and ctx is not None:
        names = sorted({o for p in ctx.command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}
                       | set(ctx.help_option_names))
        message = f"{exc.message}. {_closest(exc.option_name, names, 'options')}"
    elif ctx is not None and message.startswith("No such command") and "Did you mean" not in message:
        typo = message.split("'")[1]  # "No such command 'scores'."
        message = f"{message.rstrip('.')}. {_closest(typo, sorted(ctx.command.list_commands(ctx)), 'commands')}"
    if ctx is not None:
        hint = f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help." if ctx.help_option_names else ""
        err.print(f"{ctx.get_usage()}\n{hint}\n", markup=False, highlight=False)
    error(message)


def _closest(name: str, valid: list[str], what: str) -> str:
    match = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    return f"Did you mean {match[0]}?" if match else f"Valid {what}: {', '.join(valid)}."


def main() -> None:
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    code = _run_app()
    if _signals:
        store = sys.modules.get("pipeline.store")
        runs = store.runs_started() if store else []
        if store:
            store.cancel_unfinished(_signals[0])
        error(f"run {runs[-1]} interrupted ({_signals[0]}); nothing half-written was kept" if runs
              else f"interrupted ({_signals[0]})")
        sys.stdout.flush()
        sys.stderr.flush()
        # Fit threads still computing a discarded result are not waited for.
        os._exit(128 + signal.Signals[_signals[0]].value)
    sys.exit(code)


def entry() -> None:
    """The `scalegap` command: main(), then a quick exit. Once the command has written and closed everything, and
    the exit handlers (log flushing among them) have run, the interpreter's own teardown of the loaded libraries
    (over a second after a run) is skipped. In-process callers use main(), which raises SystemExit."""
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run_app() -> int:
    """The command's exit status; expected failures printed as one `error:` line."""
    try:
        # a store found damaged (or full) mid-command ends in one line too
        return one_line_store_errors(app)(standalone_mode=False, prog_name="scalegap") or 0
    except ScalegapError as exc:
        error(str(exc))
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except click_errors.NoArgsIsHelpError as exc:
        exc.show()
        return exc.exit_code
    except click_errors.UsageError as exc:
        _usage_error(exc)
        return exc.exit_code
    except click_errors.ClickException as exc:
        error(exc.format_message())
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return 130
    except BrokenPipeError:
        return 0
    except Exception:
        # An interrupt that lands inside a library (pydantic building a validator, say) may come out as that
        # library's own error; once a signal was received, that error is the interruption (main() reports it).
        if _signals:
            return 130
        raise


if __name__ == "__main__":
    entry()
