"""The `refresh` parent flow: ingest -> horizons -> fit -> classify -> gaps -> project -> report.

The flow builds one `RunConfig` from its parameters and calls each stage of `pipeline.stages` with it. A
stage that does not run fails the run, unless the configuration turned it off (then it is recorded as
skipped, with why).

Caching, two layers, both off with `use_cache=False`:
- a run whose data, configuration and code are those of the newest run that computed anything copies that
  run's stage results under its own run id (`pipeline.stages.reuse`), so every run id holds its full results;
  the report is always rendered;
- otherwise the expensive, pure `fitting.fit_series` computation is cached per series (key: the series'
  content + families + draws + seed + the fitting code's digest; results persisted under `.prefect/storage`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flows  # noqa: F401  (offline defaults before prefect is imported)
from flows import PROJECT_ROOT
from flows.progress import reporter

from prefect import flow, get_run_logger, task  # isort: skip
from prefect.cache_policies import NO_CACHE  # isort: skip
from prefect.futures import as_completed  # isort: skip
from prefect.task_runners import ThreadPoolTaskRunner  # isort: skip
from prefect.tasks import exponential_backoff  # isort: skip
from prefect.utilities.annotations import unmapped  # isort: skip

from pipeline import stages, store
from pipeline.config import X_AXES, Draws, RunConfig
from pipeline.memo import content_digest
from pipeline.schema import InputError, ScalegapError
from pipeline.stages import reuse

BUNDLED = PROJECT_ROOT / "data" / "raw"
ALL_PUBLIC = "all-public"
DEFAULT_X_AXES = X_AXES
TASK_RUNNERS = ("default", "dask")


def _skip(stage: str, db: str | None, run_id: str, why: str) -> str:
    """Record a stage the configuration turned off, so `run_stages` shows why it is absent."""
    get_run_logger().info("stage %s skipped: %s", stage, why)
    reporter().skipped(stage, why)
    con = store.connect(db)
    try:
        with store.transaction(con):
            store.record_stage(con, run_id, stage, "skipped", why)
    finally:
        con.close()
    return f"skipped: {why}"


# ------------------------------------------------------------------------------ cache keys
# The code a fit result depends on. Not the whole package (store.code_version): an edit to the
# report or the store must not throw away hours of bootstrap fits.
FIT_CODE = ("fitting.py", "curves.py", "ranges.py", "schema.py")


@functools.lru_cache(maxsize=1)
def _code_version() -> str:
    from pipeline import __version__

    digest = hashlib.sha256(__version__.encode())
    root = Path(store.__file__).resolve().parent
    for name in FIT_CODE:
        path = root / name
        digest.update(name.encode())
        digest.update(path.read_bytes() if path.exists() else b"")
    return f"{__version__}+fit.{digest.hexdigest()[:12]}"


def fit_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    families = parameters.get("families")
    key = json.dumps({
        "series": content_digest(parameters["series"]),
        "families": sorted(families) if families else None,
        "draws": parameters["draws"],
        "backtest_draws": parameters["backtest_draws"],
        "seed": parameters["seed"],
        "code": _code_version(),
    }, sort_keys=True)
    return "fit-series-" + hashlib.sha256(key.encode()).hexdigest()[:32]


# ------------------------------------------------------------------------------ tasks
@task(name="fetch-source", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=10),
      cache_policy=NO_CACHE, persist_result=False)
def fetch_source(target: str, download_dir: str) -> list[str]:
    """Download one URL or named public source (network: retried with backoff)."""
    from pipeline import ingest

    # one attempt per task run: the task's own retries (with backoff, visible in Prefect) are the only layer
    return [str(p) for p in ingest.expand_targets([target], Path(download_dir), retries=1)]


@task(name="ingest", cache_policy=NO_CACHE, persist_result=False)
def ingest_task(targets: list[str], db: str | None, run_id: str):
    from pipeline import ingest

    return ingest.ingest(targets, db=db, run_id=run_id)


@task(name="fit-series", cache_key_fn=fit_cache_key, persist_result=True,
      cache_expiration=None)
def fit_series_task(series: Any, families: list[str] | None, draws: int, backtest_draws: int, seed: int) -> Any:
    """The pure, picklable fit of one series: what a Dask worker runs; cached on its content."""
    from pipeline import fitting

    return fitting.fit_series(series, families, bootstrap_draws=draws, seed=seed, backtest_draws=backtest_draws)


@task(name="store-fits", cache_policy=NO_CACHE, persist_result=False)
def store_fits_task(db: str | None, run_id: str, fits: list) -> Any:
    from pipeline.stages import fit as fit_stage

    return fit_stage.store_fits(db, run_id, fits)


@task(name="reuse", cache_policy=NO_CACHE, persist_result=False)
def reuse_task(db: str | None, run_id: str, origin: str, wanted: tuple[str, ...]) -> dict:
    """Copy an earlier run's results (same data, configuration and code) instead of recomputing them."""
    return reuse.copy(db, run_id, origin, wanted)


@task(name="stage", cache_policy=NO_CACHE, persist_result=False)
def stage_task(fn: Callable, kwargs: dict[str, Any]) -> Any:
    return fn(**kwargs)


# ------------------------------------------------------------------------------ fit subflow
def make_task_runner(task_runner: str = "default", dask_address: str | None = None):
    if task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                              cluster_kwargs={"n_workers": 2, "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None})
    if task_runner != "default":
        raise InputError("--task-runner", f"unknown task runner {task_runner!r}",
                         f"use one of {', '.join(TASK_RUNNERS)}")
    # Fits are CPU-bound Python; two threads keep a small shared machine responsive.
    return ThreadPoolTaskRunner(max_workers=2)


@flow(name="fit-series-map", validate_parameters=False, persist_result=False)
def fit_flow(db: str | None, run_id: str, config: RunConfig, use_cache: bool = True) -> dict:
    """Map `fit_series` over every selected series on this flow's task runner, then store them."""
    from pipeline.stages import fit as fit_stage

    logger = get_run_logger()
    series = fit_stage.load_series(db, config.metrics, config.x_axes, None, config.frontier_kinds)
    reporter().start("fit", total=len(series))
    if not series:
        raise InputError(str(store.resolve_db(db)), "no series to fit for the selected metrics and axes",
                         "check --metric against `scalegap status`, or ingest data first")
    task = fit_series_task.with_options(refresh_cache=not use_cache)
    families = list(config.families) if config.families else None
    futures = task.map(series, unmapped(families), unmapped(config.draws.fit), unmapped(config.draws.backtest),
                       unmapped(config.seed))
    for future in as_completed(futures):
        done = future.result()  # surfaces a failed fit at once
        reporter().advance("fit", label=_fit_label(done))
    fits = [future.result() for future in futures]  # series order, whatever the finishing order
    cached = sum(future.state.name == "Cached" for future in futures)
    stored = store_fits_task(db, run_id, fits)
    logger.info("fit: %d series (%d from cache) stored under run %s", len(fits), cached, run_id)
    return {"series": len(fits), "cached": cached,
            "stored": _describe(stored) if isinstance(stored, dict) else stored}


# ------------------------------------------------------------------------------ parent flow
def resolve_sources(sources: list[str] | None) -> tuple[list[str], list[str]]:
    """(local paths, network targets). None -> the bundled snapshot; 'all-public' -> every name in
    data/raw/sources.toml."""
    from pipeline import ingest

    if not sources:
        return [str(BUNDLED)], []
    local: list[str] = []
    network: list[str] = []
    for target in sources:
        if target == ALL_PUBLIC:
            names = sorted(ingest.named_sources(BUNDLED / "sources.toml"))
            if not names:
                raise InputError(str(BUNDLED / "sources.toml"), "no public sources are listed",
                                 "add [source.<name>] entries with url/urls, or pass paths")
            network.extend(names)
        elif target.startswith(("http://", "https://")) or not Path(target).exists():
            network.append(target)
        else:
            local.append(target)
    return local, network


def ingest_sources(sources: list[str] | None, db: str | None, run_id: str):
    """Fetch the network sources (retried tasks), then ingest everything in one transaction."""
    local, network = resolve_sources(sources)
    reporter().start("ingest", total=len(network) or None)
    download_dir = str(store.resolve_db(db).parent / "downloads")
    for target in network:
        local.extend(fetch_source(target, download_dir))
        reporter().advance("ingest", label=str(target))
    return ingest_task(local, db, run_id)


def build_config(metrics=None, families=None, x_axes=None, fit_draws: int = 1000, projection_draws: int = 1000,
                 horizon_draws: int = 1000, backtest_draws: int = 200, seed: int = 0, scenario: str | None = None,
                 threshold: float = 0.8, report: bool = True) -> RunConfig:
    """The run configuration from flow parameters (the CLI and the deployments pass the same names)."""
    draws = Draws(fit=fit_draws, projection=projection_draws, horizons=horizon_draws, backtest=backtest_draws)
    stages_on = tuple(s for s in stages.ORDER if report or s != "report")
    return RunConfig.build(scenario, draws, seed, metrics, families, x_axes, threshold, stages_on)


@flow(name="refresh", validate_parameters=True, persist_result=False)
def refresh(
    sources: list[str] | None = None,
    metrics: list[str] | None = None,
    families: list[str] | None = None,
    x_axes: list[str] | None = None,
    fit_draws: int = 1000,
    projection_draws: int = 1000,
    horizon_draws: int = 1000,
    backtest_draws: int = 200,
    seed: int = 0,
    scenario: str | None = None,
    threshold: float = 0.8,
    db: str | None = None,
    out_dir: str = "reports",
    task_runner: str = "default",
    dask_address: str | None = None,
    use_cache: bool = True,
    report: bool = True,
    command: str = "refresh",
) -> dict:
    """Refresh everything: ingest the sources, derive horizons, fit, classify, project, report.

    `sources`: paths, URLs or names from data/raw/sources.toml ("all-public" = every name); default
    the bundled snapshot. Each kind of draw has its own count: `fit_draws` (bootstrap of every family,
    and so P(bounded)), `projection_draws` (Monte Carlo of the gap), `horizon_draws` (METR per-run
    bootstrap), `backtest_draws`. `task_runner` "dask" maps the fits over a Dask cluster
    (`dask_address`, or a local cluster of two workers).
    """
    if task_runner not in TASK_RUNNERS:
        raise InputError("--task-runner", f"unknown task runner {task_runner!r}",
                         f"use one of {', '.join(TASK_RUNNERS)}")
    if scenario is not None and not Path(scenario).is_file():
        raise InputError(scenario, "scenario file not found", "give the path of a scenario TOML file")
    config = build_config(metrics, families, x_axes, fit_draws, projection_draws, horizon_draws, backtest_draws,
                          seed, scenario, threshold, report)
    if report:  # an unwritable report folder must fail before hours of fitting, not after
        store.check_writable(Path(out_dir), "report")
    parameters = {"sources": sources, "db": db, "out_dir": out_dir, "task_runner": task_runner,
                  "dask_address": dask_address, "use_cache": use_cache, **config.as_dict()}
    logger = get_run_logger()
    try:
        from prefect.runtime import deployment, flow_run

        if deployment.name:
            command = f"deployment {deployment.name}"
        parameters["prefect_flow_run_id"] = str(flow_run.id)
    except Exception:  # runtime lookups are informational only
        pass
    run_id = store.start_run(db, command, parameters)
    logger.info("run %s started (%s)", run_id, command)
    result: dict[str, Any] = {"run_id": run_id, "db": str(store.resolve_db(db)), "stages": {},
                              "timings_s": {}, "report": None}
    digests: dict[str, str] | None = None
    inputs: str | None = None
    try:
        t0 = time.perf_counter()
        summary = ingest_sources(sources, db, run_id)
        digests = summary.digests
        result["stages"]["ingest"] = summary.as_dict()
        result["timings_s"]["ingest"] = time.perf_counter() - t0
        detail = (f"{len(summary.files)} file(s), {len(summary.versions)} new source version(s), "
                  f"{summary.observations} observations, {len(summary.skipped_unchanged)} unchanged")
        logger.info("ingest: %s", detail)
        reporter().done("ingest", detail)
        inputs, origin = reuse.plan(db, run_id, config, summary.alias_digests, allowed=use_cache)
        reused = {}
        if origin:
            t0 = time.perf_counter()
            wanted = tuple(s for s in stages.ORDER if s in config.stages and s in reuse.REUSABLE)
            reused = reuse_task(db, run_id, origin, wanted)
            logger.info("results of %s reused from run %s (same data, configuration and code)",
                        ", ".join(wanted), origin)
            for stage in wanted:
                result["stages"][stage] = reused[stage]
                result["timings_s"][stage] = (time.perf_counter() - t0) / len(wanted)
                reporter().done(stage, f"reused from run {reused[stage]['reused_from']}")
        for stage in stages.ORDER[1:]:
            t0 = time.perf_counter()
            if stage in reused:
                continue
            if stage not in config.stages:
                outcome: Any = _skip(stage, db, run_id, "turned off for this run")
            elif stage == "fit":
                runner = make_task_runner(task_runner, dask_address)
                outcome = fit_flow.with_options(task_runner=runner)(db, run_id, config, use_cache)
                reporter().done("fit", _describe(outcome))
            else:
                kwargs: dict[str, Any] = {"db": db, "run_id": run_id, "config": config}
                if stage == "report":
                    kwargs.update(out_dir=out_dir, progress=_counted("report"))
                else:
                    reporter().start(stage)
                outcome = stage_task.with_options(name=stage)(stages.STAGES[stage], kwargs)
                reporter().done(stage, _describe(outcome))
                logger.info("%s: %s", stage, _describe(outcome))
            result["stages"][stage] = _plain(outcome)
            result["timings_s"][stage] = time.perf_counter() - t0
            if stage == "report" and isinstance(outcome, dict):
                result["report"] = {k: str(v) for k, v in outcome.items()}
        _check_stages(db, run_id, config)
    except BaseException as exc:
        store.finish_run(db, run_id, "failed", str(exc) or type(exc).__name__, data_digests=digests,
                         inputs_digest=inputs)
        raise
    store.finish_run(db, run_id, "succeeded", data_digests=digests, inputs_digest=inputs)
    logger.info("run %s succeeded", run_id)
    return result


def _check_stages(db: str | None, run_id: str, config: RunConfig) -> None:
    """Every stage the configuration asked for must have committed its results."""
    con = store.connect(db, read_only=True)
    try:
        done = {row[0] for row in con.execute("SELECT stage FROM run_stages WHERE run_id = ? AND status = 'succeeded'",
                                              [run_id]).fetchall()}
    finally:
        con.close()
    missing = [s for s in config.stages if s not in done]
    if missing:
        raise ScalegapError(f"run {run_id}: stage(s) {', '.join(missing)} did not run. Fix: see `scalegap status`; "
                            "this is a bug if no error was printed")


def _fit_label(outcome: Any) -> str:
    """'mmlu [epoch_hub_mmlu] vs compute' for a finished fit (a fitting.SeriesFit)."""
    series = getattr(outcome, "series", None)
    return f"{series.metric} [{series.source}] vs {series.x_axis}" if series is not None else "series fitted"


def _counted(stage: str) -> Callable[[int, int, str], None]:
    """A stage's progress callback (items done, items in all, next item) driving the CLI's bar."""
    finished: list[int] = []

    def progress(done: int, total: int, label: str) -> None:
        if not finished:
            reporter().start(stage, total=total)
            finished.append(0)
        reporter().advance(stage, done + 1 - finished[0], label)   # counted as it begins: "3/11: MMLU"
        finished[0] = done + 1

    return progress


def _plain(outcome: Any) -> Any:
    """Stage summaries for the flow's return value: small frames as records, large ones as counts."""
    import pandas as pd

    if isinstance(outcome, pd.DataFrame):
        if len(outcome) > 200:
            return {"rows": len(outcome)}
        return json.loads(outcome.to_json(orient="records", date_format="iso"))
    if isinstance(outcome, dict):
        return {str(k): _plain(v) for k, v in outcome.items()}
    if isinstance(outcome, list | tuple):
        return [_plain(v) for v in outcome]
    if isinstance(outcome, Path):
        return str(outcome)
    if hasattr(outcome, "item") and type(outcome).__module__ == "numpy":
        outcome = outcome.item()
    if isinstance(outcome, float) and outcome != outcome:
        return None  # JSON has no NaN
    return outcome


def _describe(outcome: Any) -> str:
    if isinstance(outcome, dict):
        parts = [f"{k}={v}" for k, v in outcome.items() if isinstance(v, int | float | str)]
        return ", ".join(parts[:6]) or "done"
    return str(outcome)[:200] if outcome is not None else "done"


__all__ = ["refresh", "fit_flow", "make_task_runner", "content_digest", "fit_cache_key",
           "ScalegapError"]
