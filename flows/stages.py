"""One-stage flows for work that does not need the whole refresh: `ingest` (fetch and store sources),
`fit` (refit what the store holds), `project` (a new scenario on an existing fit).

Each is a row in the runs table with its parameters, like `refresh`, and reuses its tasks: network
fetches retried with backoff, fits served from the same task cache.
"""

from __future__ import annotations

import flows  # noqa: F401  (offline defaults before prefect is imported)
from flows.refresh import (
    _plain,
    build_config,
    fit_flow,
    ingest_sources,
    make_task_runner,
    stage_task,
)

from prefect import flow  # isort: skip

from pipeline import stages, store
from pipeline.schema import ScalegapError


def _observations_digest(db: str | None) -> dict[str, str]:
    con = store.connect(db, read_only=True)
    try:
        return {"observations": store.table_digest(con, "observations")}
    finally:
        con.close()


@flow(name="ingest", validate_parameters=True, persist_result=False)
def ingest_flow(sources: list[str] | None = None, db: str | None = None) -> dict:
    """Read sources into the store: paths, URLs, names from data/raw/sources.toml, or "all-public"
    (default: the bundled snapshot). Unchanged files are skipped by their sha256."""
    run_id = store.start_run(db, "flow ingest", {"sources": sources, "db": db})
    try:
        summary = ingest_sources(sources, db, run_id)
    except BaseException as exc:
        store.finish_run(db, run_id, "failed", str(exc) or type(exc).__name__)
        raise
    store.finish_run(db, run_id, "succeeded", data_digests=summary.digests)
    return {"run_id": run_id, **_plain(summary.as_dict())}


@flow(name="fit", validate_parameters=True, persist_result=False)
def fit_only_flow(metrics: list[str] | None = None, x_axes: list[str] | None = None,
                  families: list[str] | None = None, fit_draws: int = 1000, backtest_draws: int = 200,
                  seed: int = 0, db: str | None = None, task_runner: str = "default",
                  dask_address: str | None = None, use_cache: bool = True) -> dict:
    """Fit the stored observations under a new run id (bootstrap, selection, backtests)."""
    config = build_config(metrics, families, x_axes, fit_draws=fit_draws, backtest_draws=backtest_draws, seed=seed)
    parameters = {"db": db, "task_runner": task_runner, "dask_address": dask_address, "use_cache": use_cache,
                  **config.as_dict(), "stages": ["fit"]}
    run_id = store.start_run(db, "flow fit", parameters)
    try:
        outcome = fit_flow.with_options(task_runner=make_task_runner(task_runner, dask_address))(
            db, run_id, config, use_cache)
    except BaseException as exc:
        store.finish_run(db, run_id, "failed", str(exc) or type(exc).__name__)
        raise
    store.finish_run(db, run_id, "succeeded", data_digests=_observations_digest(db))
    return {"run_id": run_id, **_plain(outcome)}


@flow(name="project", validate_parameters=True, persist_result=False)
def project_flow(scenario: str | None = None, projection_draws: int = 1000, seed: int = 0,
                 run_id: str | None = None, db: str | None = None) -> dict:
    """Project the gap of a fitted run (default: the newest with a fit) under a scenario file."""
    config = build_config(scenario=scenario, projection_draws=projection_draws, seed=seed)
    if run_id is None:
        run_id = store.newest_run(db, "fit")
        if run_id is None:
            raise ScalegapError(f"{store.resolve_db(db)}: no fitted run to project. "
                                "Fix: run `scalegap run` or the fit flow first")
    outcome = stage_task.with_options(name="project")(stages.STAGES["project"],
                                                      {"db": db, "run_id": run_id, "config": config})
    return {"run_id": run_id, **_plain(outcome)}


__all__ = ["ingest_flow", "fit_only_flow", "project_flow"]
