"""Reuse: a run whose inputs are those of the run before it copies that run's stage results instead of
recomputing them.

A stage's rows are a function of the data in the store, the run configuration (with its seed) and the code, and
the next uncached run reproduces them exactly (tests/test_reliability.py). So after ingest a run digests those
inputs (`inputs_digest`); when the newest run that computed anything is a succeeded run with the same digest, and
nothing rewrote its results since it finished (`scalegap classify`/`project` may write into a finished run), this
run copies its rows under its own run id in one transaction, each stage recorded with `reused_from`: the run that
computed the rows. The report is always rendered afresh, since it names the run and what changed since the
previous one. `--no-cache` turns reuse off.

Forecast scores are the one cross-run result: the copied run scored every run before it, and the new run would
score those the same way plus the copied run itself, whose forecasts have no newer observations to meet (same
data). Requiring the copied run to be the newest one that computed anything keeps that true.
"""

from __future__ import annotations

from importlib import metadata

from pipeline import store
from pipeline.config import RunConfig
from pipeline.memo import content_digest

# The run-keyed tables each stage writes, and the column naming the run.
WRITES: dict[str, tuple[tuple[str, str], ...]] = {
    "horizons": (("horizons", "run_id"), ("horizon_draws", "run_id"), ("horizon_trend", "run_id")),
    "fit": (("fits", "run_id"), ("fit_params", "run_id"), ("fit_draws", "run_id"), ("fit_bands", "run_id"),
            ("selection", "run_id"), ("backtests", "run_id"), ("backtest_points", "run_id"),
            ("series_points", "run_id")),
    "classify": (("classifications", "run_id"), ("metric_verdicts", "run_id"), ("counterparts", "run_id")),
    "forecast": (("forecasts", "run_id"), ("forecast_calibration", "run_id"), ("forecast_scores", "scored_run_id")),
    "gaps": (("gap_series", "run_id"), ("gap_summary", "run_id")),
    "project": (("projections", "run_id"), ("projection_trajectories", "run_id"),
                ("projection_sensitivity", "run_id"), ("scenarios", "run_id")),
}
REUSABLE = tuple(WRITES)
# Libraries whose numerics the results depend on: an upgrade recomputes.
LIBRARIES = ("numpy", "scipy", "lmfit", "pandas", "duckdb", "scikit-learn", "statsmodels")
# Sources the horizons stage derives (an output of the run, not one of its inputs).
DERIVED_ADAPTERS = ("pipeline.horizons",)


def inputs_digest(con, config: RunConfig, alias_digests: list[str]) -> str:
    """Digest of what a run's stages compute from: the stored source versions (their file digests; forgotten ones
    left out), the alias files, the run configuration, the code and the numerical libraries' versions."""
    marks = ", ".join("?" for _ in DERIVED_ADAPTERS)
    sources = store.drop_forgotten(con, con.execute(
        f"SELECT source, source_version, sha256 FROM sources WHERE adapter IS NULL OR adapter NOT IN ({marks}) "
        "ORDER BY ALL", list(DERIVED_ADAPTERS)).df())
    return content_digest({
        "sources": sources, "forgotten": sorted(store.forgotten_sources(con)), "aliases": sorted(alias_digests),
        "config": config.as_dict(), "code": store.code_version(),
        "libraries": {name: _version(name) for name in LIBRARIES},
    })


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def candidate(con, run_id: str, digest: str, stages: tuple[str, ...]) -> str | None:
    """The run whose results `run_id` may copy for `stages`, or None (see the module's rules)."""
    wanted = [s for s in stages if s in WRITES]
    if not wanted:
        return None
    newest = con.execute(
        "SELECT r.run_id, r.status, r.inputs_digest, r.finished_at FROM runs r WHERE r.run_id <> ? AND EXISTS "
        "(SELECT 1 FROM run_stages s WHERE s.run_id = r.run_id AND s.stage NOT IN ('ingest', 'report') "
        "AND s.status = 'succeeded') ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1", [run_id]).fetchone()
    if newest is None:
        return None
    other, status, other_digest, finished = newest
    if status != "succeeded" or other_digest != digest or finished is None:
        return None
    done = dict(con.execute("SELECT stage, finished_at FROM run_stages WHERE run_id = ? AND status = 'succeeded'",
                            [other]).fetchall())
    # every stage present, none rewritten after the run ended
    if any(s not in done or done[s] is None or done[s] > finished for s in wanted):
        return None
    return other


def copy(db, run_id: str, source_run: str, stages: tuple[str, ...]) -> dict[str, dict]:
    """Copy `source_run`'s rows of `stages` to `run_id` in one transaction; each stage recorded as succeeded with
    `reused_from` (the run that first computed the rows). Returns per stage its rows copied and origin."""
    out: dict[str, dict] = {}
    con = store.connect(db)
    try:
        with store.transaction(con):
            origins = dict(con.execute("SELECT stage, coalesce(reused_from, run_id) FROM run_stages WHERE run_id = ?",
                                       [source_run]).fetchall())
            for stage in stages:
                started = store.now()
                rows = 0
                for table, column in WRITES[stage]:
                    con.execute(f"DELETE FROM {table} WHERE {column} = ?", [run_id])
                    rows += con.execute(f"INSERT INTO {table} SELECT * REPLACE (?::VARCHAR AS {column}) "
                                        f"FROM {table} WHERE {column} = ?", [run_id, source_run]).fetchone()[0]
                origin = origins.get(stage, source_run)
                store.record_stage(con, run_id, stage, "succeeded",
                                   f"reused from run {origin} (same data, configuration and code)", started=started,
                                   rows_written=rows, reused_from=origin)
                out[stage] = {"reused_from": origin, "rows": rows}
    finally:
        con.close()
    return out


def plan(db, run_id: str, config: RunConfig, alias_digests: list[str], allowed: bool = True) -> tuple[str, str | None]:
    """(this run's inputs digest, the run to copy from or None); read after ingest committed."""
    con = store.connect(db, read_only=True)
    try:
        digest = inputs_digest(con, config, alias_digests)
        origin = candidate(con, run_id, digest, config.stages) if allowed else None
    finally:
        con.close()
    return digest, origin
