"""DuckDB store: table definitions, short-lived connections, one transaction per stage, run records.

DuckDB allows one writer per file. Connections are opened per stage and closed at once; a second
process waits with backoff and then fails with a clear message. Each stage's writes happen inside
one BEGIN/COMMIT, so a crash or kill leaves the previous state intact.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.schema import ScalegapError

DEFAULT_DB = Path("data/processed/scalegap.duckdb")
LOCK_TIMEOUT_S = float(os.environ.get("SCALEGAP_LOCK_TIMEOUT", "60"))


class StoreBusy(ScalegapError):
    pass


class StoreUnavailable(ScalegapError):
    pass


# One entry per table. Stages own their tables: add or change only your stage's entries.
# Primary keys are the natural keys that make re-runs upserts instead of duplicates.
TABLES: dict[str, str] = {
    # --- foundation -----------------------------------------------------------------------
    "runs": """
        run_id VARCHAR PRIMARY KEY,
        command VARCHAR,
        started_at TIMESTAMP,
        finished_at TIMESTAMP,
        status VARCHAR,              -- running | succeeded | failed
        message VARCHAR,
        parameters JSON,
        code_version VARCHAR,
        data_digests JSON,
        host VARCHAR,
        pid INTEGER
    """,
    "run_stages": """
        run_id VARCHAR,
        stage VARCHAR,
        started_at TIMESTAMP,
        finished_at TIMESTAMP,
        status VARCHAR,
        rows_written BIGINT,
        message VARCHAR,
        PRIMARY KEY (run_id, stage)
    """,
    "sources": """
        source VARCHAR,
        source_version VARCHAR,
        location VARCHAR,            -- file path or URL it was read from
        sha256 VARCHAR,
        retrieved_at TIMESTAMP,
        license VARCHAR,
        citation VARCHAR,
        kind VARCHAR,
        adapter VARCHAR,
        n_observations BIGINT,
        n_rejected BIGINT,
        notes VARCHAR,
        ingest_run_id VARCHAR,
        PRIMARY KEY (source, source_version)
    """,
    "observations": """
        source VARCHAR,
        source_version VARCHAR,
        source_sha256 VARCHAR,
        model VARCHAR,
        organization VARCHAR,
        release_date TIMESTAMP,
        train_flop DOUBLE,
        train_flop_note VARCHAR,
        params DOUBLE,
        inference_budget DOUBLE,
        metric VARCHAR,
        kind VARCHAR,
        value DOUBLE,
        value_lo DOUBLE,
        value_hi DOUBLE,
        unit VARCHAR,
        original_unit VARCHAR,
        floor DOUBLE,
        ceiling DOUBLE,
        "cluster" VARCHAR,
        row_ref VARCHAR,
        citation VARCHAR,
        ingest_run_id VARCHAR,
        PRIMARY KEY (source, source_version, model, metric)
    """,
    "rejected": """
        source VARCHAR,
        source_version VARCHAR,
        row_ref VARCHAR,
        column_name VARCHAR,
        value VARCHAR,
        reason VARCHAR,
        ingest_run_id VARCHAR,
        PRIMARY KEY (source, source_version, row_ref, column_name)
    """,
    "model_aliases": """
        alias VARCHAR PRIMARY KEY,   -- normalised name as some source spells it
        canonical VARCHAR,           -- Epoch 'Model' name
        note VARCHAR
    """,
    "model_compute": """
        model VARCHAR,               -- Epoch 'Model' name
        source VARCHAR,
        source_version VARCHAR,
        organization VARCHAR,
        release_date TIMESTAMP,
        train_flop DOUBLE,
        confidence VARCHAR,          -- Epoch's grade: Confident / Likely / Speculative / ...
        params DOUBLE,
        PRIMARY KEY (model, source, source_version)
    """,
    # --- fit ------------------------------------------------------------------------------
    "fits": """
        run_id VARCHAR,
        metric VARCHAR,
        source VARCHAR,
        source_version VARCHAR,
        x_axis VARCHAR,
        kind VARCHAR,
        unit VARCHAR,
        family VARCHAR,
        n INTEGER,
        k INTEGER,
        converged BOOLEAN,
        message VARCHAR,
        rss DOUBLE,
        sigma DOUBLE,
        aicc DOUBLE,
        bic DOUBLE,
        weight DOUBLE,             -- Akaike weight (AICc) within the series
        draws_converged DOUBLE,
        durbin_watson DOUBLE,
        shapiro_p DOUBLE,
        correlations JSON,
        fit_report VARCHAR,
        bounded_family BOOLEAN,
        PRIMARY KEY (run_id, metric, source, source_version, x_axis, family)
    """,
    "fit_params": """
        run_id VARCHAR,
        metric VARCHAR,
        source VARCHAR,
        source_version VARCHAR,
        x_axis VARCHAR,
        family VARCHAR,
        param VARCHAR,
        value DOUBLE,              -- lmfit point estimate
        stderr DOUBLE,
        lo95 DOUBLE,               -- bootstrap percentile interval
        hi95 DOUBLE,
        fixed BOOLEAN,
        PRIMARY KEY (run_id, metric, source, source_version, x_axis, family, param)
    """,
    "fit_draws": """
        run_id VARCHAR,
        metric VARCHAR,
        source VARCHAR,
        source_version VARCHAR,
        x_axis VARCHAR,
        family VARCHAR,
        draw INTEGER,
        params DOUBLE[],           -- full parameter vector, in the family's param_names order
        PRIMARY KEY (run_id, metric, source, source_version, x_axis, family, draw)
    """,
    "fit_bands": """
        run_id VARCHAR,
        metric VARCHAR,
        source VARCHAR,
        source_version VARCHAR,
        x_axis VARCHAR,
        family VARCHAR,
        x DOUBLE,
        fit DOUBLE,
        mean_lo95 DOUBLE,          -- band for the mean curve
        mean_hi95 DOUBLE,
        pred_lo95 DOUBLE,          -- band for a new observation
        pred_hi95 DOUBLE,
        pred_lo80 DOUBLE,
        pred_hi80 DOUBLE,
        PRIMARY KEY (run_id, metric, source, source_version, x_axis, family, x)
    """,
    "selection": """
        run_id VARCHAR,
        metric VARCHAR,
        source VARCHAR,
        source_version VARCHAR,
        x_axis VARCHAR,
        kind VARCHAR,
        unit VARCHAR,
        n INTEGER,
        best_family VARCHAR,
        best_weight DOUBLE,
        bounded_weight DOUBLE,
        decisive BOOLEAN,
        note VARCHAR,
        PRIMARY KEY (run_id, metric, source, source_version, x_axis)
    """,
    "backtests": """
        run_id VARCHAR,
        metric VARCHAR,
        source VARCHAR,
        source_version VARCHAR,
        x_axis VARCHAR,
        family VARCHAR,
        cutoff_axis VARCHAR,
        cutoff DOUBLE,
        n_train INTEGER,
        n_test INTEGER,
        mae DOUBLE,
        bias DOUBLE,
        coverage80 DOUBLE,
        coverage95 DOUBLE,
        error_scale VARCHAR,
        undercovers BOOLEAN,
        PRIMARY KEY (run_id, metric, source, source_version, x_axis, family, cutoff)
    """,
    "series_points": """
        run_id VARCHAR,
        metric VARCHAR,
        source VARCHAR,
        source_version VARCHAR,
        x_axis VARCHAR,
        model VARCHAR,
        x DOUBLE,
        y DOUBLE,
        value_lo DOUBLE,
        value_hi DOUBLE,
        release_year DOUBLE,
        "cluster" VARCHAR,
        PRIMARY KEY (run_id, metric, source, source_version, x_axis, model)
    """,
    "metr_release_dates": """
        source VARCHAR,
        source_version VARCHAR,
        alias VARCHAR,
        release_date TIMESTAMP,
        PRIMARY KEY (source, source_version, alias)
    """,
    "metr_runs": """
        source VARCHAR,
        source_version VARCHAR,
        run_key VARCHAR,             -- METR's run_id
        task_id VARCHAR,
        task_family VARCHAR,
        alias VARCHAR,
        model VARCHAR,
        score DOUBLE,
        score_binarized INTEGER,
        human_minutes DOUBLE,
        human_source VARCHAR,
        time_limit_s DOUBLE,
        equal_task_weight DOUBLE,
        invsqrt_task_weight DOUBLE,
        fatal_error_from VARCHAR,
        PRIMARY KEY (source, source_version, run_key)
    """,
    # --- horizons (engineer F) ------------------------------------------------------------
    "horizons": """
        run_id VARCHAR,
        source VARCHAR,              -- the per-run data it was fitted to (metr_runs source)
        source_version VARCHAR,
        model VARCHAR,               -- METR alias
        release_date TIMESTAMP,
        train_flop DOUBLE,
        p50 DOUBLE,                  -- minutes of human task time at 50% success
        p50_lo DOUBLE,               -- hierarchical bootstrap 95%
        p50_hi DOUBLE,
        p80 DOUBLE,
        p80_lo DOUBLE,
        p80_hi DOUBLE,
        slope DOUBLE,                -- logits per doubling of task length
        slope_lo DOUBLE,
        slope_hi DOUBLE,
        intercept DOUBLE,
        average_score DOUBLE,        -- weighted mean success
        n_runs INTEGER,
        n_tasks INTEGER,
        n_successes INTEGER,
        n_draws_ok INTEGER,
        extrapolated BOOLEAN,        -- p50 below the shortest task: kept here, not used downstream
        weighting VARCHAR,
        regularization DOUBLE,
        note VARCHAR,
        PRIMARY KEY (run_id, source, source_version, model)
    """,
    "horizon_draws": """
        run_id VARCHAR,
        source VARCHAR,
        source_version VARCHAR,
        model VARCHAR,
        draw INTEGER,
        intercept DOUBLE,
        slope DOUBLE,
        p50 DOUBLE,
        p80 DOUBLE,
        converged BOOLEAN,
        PRIMARY KEY (run_id, source, source_version, model, draw)
    """,
    "horizon_trend": """
        run_id VARCHAR,
        metric VARCHAR,              -- metr_p50_minutes | metr_p80_minutes
        source VARCHAR,
        source_version VARCHAR,
        x_axis VARCHAR,              -- date | compute
        doubling_days DOUBLE,        -- date axis: days per horizon doubling
        lo DOUBLE,                   -- 95% over models x per-model draws
        hi DOUBLE,
        flop_per_doubling DOUBLE,    -- compute axis: compute multiplier per horizon doubling
        flop_per_doubling_lo DOUBLE,
        flop_per_doubling_hi DOUBLE,
        log2_slope DOUBLE,
        log2_slope_lo DOUBLE,
        log2_slope_hi DOUBLE,
        slope_unit VARCHAR,
        intercept DOUBLE,
        r_squared DOUBLE,
        n_models INTEGER,
        draws_ok INTEGER,
        models VARCHAR,              -- JSON list of the models in the fit
        PRIMARY KEY (run_id, metric, source, source_version, x_axis)
    """,
    # --- classify (engineer D) ------------------------------------------------------------
    "classifications": """
        run_id VARCHAR,
        metric VARCHAR,
        source VARCHAR,
        source_version VARCHAR,
        x_axis VARCHAR,
        kind VARCHAR,
        unit VARCHAR,
        floor DOUBLE,
        best_family VARCHAR,
        best_verdict VARCHAR,        -- analytic verdict of the best family: meek | mighty-* | not-normal
        bounded BOOLEAN,
        sup DOUBLE,
        g_limit DOUBLE,              -- lim f'(C) C ln C (Thm 2.5)
        limit_kind VARCHAR,          -- zero | constant | infinite
        gap_limit DOUBLE,            -- ln(ln b / ln a) * g_limit
        p_bounded DOUBLE,            -- from Akaike weights x bootstrap draws
        threshold DOUBLE,
        verdict VARCHAR,             -- meek | mighty | indeterminate
        reason VARCHAR,
        method VARCHAR,
        growth_a DOUBLE,
        growth_b DOUBLE,
        PRIMARY KEY (run_id, metric, source, source_version, x_axis)
    """,
    "counterparts": """
        run_id VARCHAR,
        metric VARCHAR,
        source VARCHAR,
        source_version VARCHAR,
        x_axis VARCHAR,
        pair VARCHAR,                -- nines | logit | elo | bt_strength | horizon
        bounded_metric VARCHAR,
        bounded_verdict VARCHAR,
        bounded_best_verdict VARCHAR,
        bounded_p DOUBLE,
        unbounded_metric VARCHAR,
        unbounded_verdict VARCHAR,
        unbounded_best_verdict VARCHAR,
        unbounded_p DOUBLE,
        takeaway VARCHAR,
        PRIMARY KEY (run_id, metric, source, source_version, x_axis, pair)
    """,
    # --- project ----------------------------------------------------------------------------
    "projections": """
        run_id VARCHAR,
        scenario VARCHAR,
        curve VARCHAR,
        family VARCHAR,
        verdict VARCHAR,             -- classification of the series, else from the family's asymptotics
        curve_kind VARCHAR,          -- compute | date | horizon_time | success_at_length
        unit VARCHAR,
        metric VARCHAR,
        source VARCHAR,
        source_version VARCHAR,
        x_axis VARCHAR,
        peak_gap DOUBLE,
        peak_year DOUBLE,
        peak_within_window BOOLEAN,
        close_year DOUBLE,           -- after this the gap stays below close_fraction of the range
        limit_kind VARCHAR,          -- zero | constant | infinite
        limit_value DOUBLE,
        bounded BOOLEAN,
        peak_year_lo DOUBLE,         -- Monte Carlo 10th-90th percentiles
        peak_year_hi DOUBLE,
        peak_gap_lo DOUBLE,
        peak_gap_hi DOUBLE,
        x0 DOUBLE,                   -- start: log10 FLOP (compute) or decimal year (date)
        growth_a DOUBLE,
        growth_b DOUBLE,
        "lambda" DOUBLE,
        scenario_sha256 VARCHAR,
        samples INTEGER,
        band VARCHAR,
        note VARCHAR,
        PRIMARY KEY (run_id, scenario, curve)
    """,
    "projection_trajectories": """
        run_id VARCHAR,
        scenario VARCHAR,
        curve VARCHAR,
        year DOUBLE,
        frontier DOUBLE,
        meek DOUBLE,
        gap DOUBLE,
        gap_lo DOUBLE,
        gap_mid DOUBLE,
        gap_hi DOUBLE,
        PRIMARY KEY (run_id, scenario, curve, year)
    """,
    "projection_sensitivity": """
        run_id VARCHAR,
        scenario VARCHAR,
        curve VARCHAR,
        factor VARCHAR,
        factor_value DOUBLE,
        peak_gap DOUBLE,
        peak_year DOUBLE,
        gap_at_until DOUBLE,
        PRIMARY KEY (run_id, scenario, curve, factor, factor_value)
    """,
    "scenarios": """
        run_id VARCHAR,
        scenario VARCHAR,
        path VARCHAR,
        sha256 VARCHAR,
        description VARCHAR,
        start VARCHAR,
        until VARCHAR,
        growth VARCHAR,
        sources VARCHAR,
        PRIMARY KEY (run_id, scenario)
    """,
}


def resolve_db(db: str | Path | None = None) -> Path:
    """`--db` wins, then SCALEGAP_DB, then the default under data/processed."""
    return Path(db or os.environ.get("SCALEGAP_DB") or DEFAULT_DB)


MIN_FREE_BYTES = 64 << 20  # room for a stage's writes or a report: a full disk is refused before the work


def check_writable(path: Path, what: str) -> None:
    """Fail before any work when a file cannot be written where the user asked (a real probe:
    permission bits say nothing when running as root; and free space, which an empty probe does not need)."""
    option = "--db" if what == "database" else "--out"
    if what == "database" and path.is_dir():
        raise StoreUnavailable(f"{path}: is a directory. Fix: give a file path for --db")
    folder = path.parent if what == "database" else path
    probe = folder
    while not probe.exists():
        probe = probe.parent
    problem = None
    if not probe.is_dir():
        problem = f"{probe} is not a folder"
    else:
        try:
            with tempfile.NamedTemporaryFile(dir=probe, prefix=".scalegap-probe-"):
                pass
        except OSError as exc:
            problem = exc.strerror or str(exc)
    if problem is None and path.is_file() and not os.access(path, os.W_OK):
        problem = "the file is read-only"
    if problem is None and (free := shutil.disk_usage(probe).free) < MIN_FREE_BYTES:
        problem = f"only {free >> 20} MB free on its disk, {MIN_FREE_BYTES >> 20} MB needed"
    if problem:
        raise StoreUnavailable(f"{path}: cannot write the {what} here ({problem}). "
                               f"Fix: free disk space there, or choose a writable location with {option}")


def connect(db: str | Path | None = None, read_only: bool = False,
            timeout_s: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open the store, waiting with backoff while another process holds the write lock. A file that is not a
    scalegap store (another format, truncated, unexpected columns) is refused in one line: "cannot read the
    store"."""
    path = resolve_db(db)
    if read_only and not path.exists():
        raise StoreUnavailable(f"{path}: no database here yet. Fix: run `scalegap ingest` or `scalegap run` first")
    if not read_only:
        check_writable(path, "database")
        path.parent.mkdir(parents=True, exist_ok=True)
    _check_format(path)
    timeout_s = LOCK_TIMEOUT_S if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" not in text.lower():
                raise _unreadable(path, text) from None
            if time.monotonic() >= deadline:
                raise StoreBusy(
                    f"{path}: another scalegap process is writing to this database and did not finish "
                    f"within {timeout_s:.0f} s. Fix: wait for it to end (see `scalegap status`), or use "
                    f"another --db; SCALEGAP_LOCK_TIMEOUT sets the wait"
                ) from None
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 2.0)
        except duckdb.Error as exc:
            raise _unreadable(path, str(exc)) from None
    try:
        con.execute("SET enable_progress_bar = false")  # a long query must not draw on the user's terminal
        _check_store(con, path)
        if not read_only:
            ensure_schema(con)
    except (duckdb.Error, StoreUnavailable) as exc:
        con.close()
        raise exc if isinstance(exc, StoreUnavailable) else _unreadable(path, str(exc)) from None
    return con


STORE_FIX = "restore it from a backup, or point --db at another file (`scalegap ingest` builds a new store)"
# Tables the ingest stage and the run records write; a stage's own tables are migrated by that stage.
FOUNDATION = ("runs", "run_stages", "sources", "observations", "rejected", "model_aliases", "model_compute",
              "metr_release_dates", "metr_runs")


def _unreadable(path: Path, problem: str, fix: str = STORE_FIX) -> StoreUnavailable:
    return StoreUnavailable(f"cannot read the store {path}: {problem.splitlines()[0] if problem else 'unknown error'}. "
                            f"Fix: {fix}")


def _check_format(path: Path) -> None:
    """A DuckDB file says so in its header; anything else (a SQLite file would make DuckDB fetch an extension
    from the network to read it) is refused before DuckDB opens it."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb") as handle:
        head = handle.read(12)
    if head[8:12] != b"DUCK":
        kind = "a SQLite database" if head.startswith(b"SQLite") else "not a DuckDB database file"
        raise _unreadable(path, f"{kind}, not a scalegap store")


@functools.lru_cache(maxsize=1)
def _expected_columns() -> dict[str, dict[str, str]]:
    """table -> {column: type} of this version's schema (TABLES with ADDED_COLUMNS), from an in-memory store."""
    con = duckdb.connect()
    try:
        ensure_schema(con)
        return {t: dict(con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ?",
                                    [t]).fetchall()) for t in TABLES}
    finally:
        con.close()


def _check_store(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse foundation tables whose columns are not this version's (an INSERT would fail, or silently drop a
    column's values), naming the migration to run. (Damaged blocks show when read: see one_line_store_errors.)"""
    present: dict[str, list[str]] = {}
    for table, column in con.execute("SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'main' "
                                     "AND database_name = current_database() ORDER BY table_name, column_index").fetchall():
        present.setdefault(table, []).append(column)
    added = {(t, c) for t, c, _ in ADDED_COLUMNS}
    for table in FOUNDATION:
        if table not in present:
            continue
        expected = _expected_columns()[table]
        missing = [c for c in expected if c not in present[table] and (table, c) not in added]
        extra = [c for c in present[table] if c not in expected]
        if missing:
            raise _unreadable(path, f"table {table} has no column {missing[0]}",
                              _migration(path, f"ALTER TABLE {table} ADD COLUMN {missing[0]} {expected[missing[0]]}"))
        if extra:
            raise _unreadable(path, f"table {table} has a column {extra[0]} this version does not know",
                              _migration(path, f"ALTER TABLE {table} DROP COLUMN {extra[0]}"))


def _migration(path: Path, sql: str) -> str:
    return (f"run {sql} on it: python -c \"import duckdb; duckdb.connect('{path}').execute('{sql}')\" "
            "(or use another --db)")


def one_line_store_errors(call: Callable) -> Callable:
    """`call`, with a store found damaged (a truncated file, a bad checksum), its disk full or its memory exhausted
    only when some stage reads or writes it turned into a one-line StoreUnavailable; any other error keeps its
    traceback."""
    @functools.wraps(call)
    def checked(*args, **kwargs):
        try:
            return call(*args, **kwargs)
        except duckdb.Error as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if re.search(r"[Cc]orrupt|checksum|Could not read|not a valid DuckDB", text):
                raise StoreUnavailable(f"cannot read the store: {text}. Fix: {STORE_FIX}") from None
            if re.search(r"No space left|[Cc]ould not write|disk (is )?full", text):
                raise StoreUnavailable(f"cannot write the store ({text}); nothing of this stage was stored. "
                                       "Fix: free disk space, or use another --db") from None
            if isinstance(exc, duckdb.OutOfMemoryException):
                raise StoreUnavailable(f"the store ran out of memory ({text}); nothing of this stage was stored. "
                                       "Fix: close other programs, or split the input") from None
            raise
    return checked


# Columns added after a table first shipped: stores made by an older version gain them on open.
ADDED_COLUMNS = (("observations", "inference_budget", "DOUBLE"),)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for name, columns in TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
    for table, column, sql_type in ADDED_COLUMNS:
        con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {sql_type}")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT; any exception rolls everything back."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")


@contextmanager
def open_stage(db: str | Path | None, run_id: str | None, stage: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the store, run one stage's writes in a single transaction, record the stage outcome."""
    con = connect(db)
    try:
        started = now()
        with transaction(con):
            yield con
            if run_id:
                con.execute(
                    "INSERT OR REPLACE INTO run_stages VALUES (?, ?, ?, ?, 'succeeded', NULL, NULL)",
                    [run_id, stage, started, now()],
                )
    finally:
        con.close()


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]


def upsert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Insert rows, replacing any with the same primary key. Frame columns are matched by name."""
    if frame is None or len(frame) == 0:
        return 0
    columns = table_columns(con, table)
    missing = [c for c in columns if c not in frame.columns]
    frame = frame.assign(**{c: None for c in missing})[columns]
    con.register("_upsert_frame", frame)
    try:
        quoted = ", ".join(f'"{c}"' for c in columns)
        con.execute(f"INSERT OR REPLACE INTO {table} ({quoted}) SELECT {quoted} FROM _upsert_frame")
    finally:
        con.unregister("_upsert_frame")
    return len(frame)


def replace_run_rows(con: duckdb.DuckDBPyConnection, table: str, run_id: str, frame: pd.DataFrame,
                     where: str = "", params: list | None = None) -> int:
    """Make a stage's output for one run exactly `frame`: delete that run's rows, insert the new ones."""
    con.execute(f"DELETE FROM {table} WHERE run_id = ? {where}", [run_id, *(params or [])])
    if frame is None or len(frame) == 0:
        return 0
    return upsert(con, table, frame.assign(run_id=run_id))


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def code_version() -> str:
    """Package version plus a digest of the pipeline's source, so results trace to the exact code."""
    from pipeline import __version__

    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*")):
        if path.suffix in {".py", ".toml", ".html", ".css", ".sql", ".j2"} and "__pycache__" not in path.parts:
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def start_run(db: str | Path | None, command: str, parameters: dict, run_id: str | None = None) -> str:
    """Record a new run (status 'running'); runs left 'running' by a dead process are marked failed."""
    run_id = run_id or new_run_id()
    con = connect(db)
    try:
        with transaction(con):
            _mark_dead_runs(con)
            con.execute(
                "INSERT OR REPLACE INTO runs (run_id, command, started_at, finished_at, status, message, parameters, "
                "code_version, data_digests, host, pid) VALUES (?, ?, ?, NULL, 'running', NULL, ?, ?, NULL, ?, ?)",
                [run_id, command, now(), json.dumps(parameters, default=str, sort_keys=True),
                 code_version(), socket.gethostname(), os.getpid()],
            )
    finally:
        con.close()
    return run_id


def finish_run(db: str | Path | None, run_id: str, status: str, message: str | None = None,
               data_digests: dict | None = None) -> None:
    con = connect(db)
    try:
        with transaction(con):
            con.execute(
                "UPDATE runs SET finished_at = ?, status = ?, message = ?, "
                "data_digests = coalesce(?, data_digests) WHERE run_id = ?",
                [now(), status, message,
                 json.dumps(data_digests, sort_keys=True) if data_digests is not None else None, run_id],
            )
    finally:
        con.close()


def _mark_dead_runs(con: duckdb.DuckDBPyConnection) -> None:
    host = socket.gethostname()
    for run_id, pid in con.execute(
        "SELECT run_id, pid FROM runs WHERE status = 'running' AND host = ? ORDER BY run_id", [host]
    ).fetchall():
        if pid is None or not _pid_alive(int(pid)):
            con.execute(
                "UPDATE runs SET status = 'failed', message = 'process ended before the run finished' "
                "WHERE run_id = ?", [run_id])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def latest_run(con: duckdb.DuckDBPyConnection, stage: str | None = None) -> str | None:
    """The newest run that completed `stage` (or finished successfully, if no stage is given)."""
    if stage:
        row = con.execute(
            "SELECT run_id FROM run_stages WHERE stage = ? AND status = 'succeeded' "
            "ORDER BY finished_at DESC LIMIT 1", [stage]).fetchone()
    else:
        row = con.execute(
            "SELECT run_id FROM runs WHERE status = 'succeeded' ORDER BY finished_at DESC LIMIT 1").fetchone()
    return row[0] if row else None


def newest_run(db: str | Path | None, stage: str | None = None) -> str | None:
    """`latest_run` on the store at `db`; None when there is no store yet."""
    if not resolve_db(db).exists():
        return None
    con = connect(db, read_only=True)
    try:
        return latest_run(con, stage)
    finally:
        con.close()


def table_digest(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """Order-independent digest of a table's contents (used to prove the store is unchanged)."""
    frame = con.execute(f"SELECT * FROM {table}").df()
    rows = sorted(frame.astype(str).itertuples(index=False, name=None))
    return hashlib.sha256(repr(rows).encode()).hexdigest()
