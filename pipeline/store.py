"""DuckDB store: table definitions, short-lived connections, one transaction per stage, run records.

DuckDB allows one writer per file. Connections are opened per stage and closed at once; a second
process waits with backoff and then fails with a clear message. Each stage's writes happen inside
one BEGIN/COMMIT, so a crash or kill leaves the previous state intact.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.errors import (  # noqa: F401  (their home; imported from here too)
    STORE_FIX,
    ScalegapError,
    StoreBusy,
    StoreUnavailable,
    one_line_store_errors,
    received_signals,
)

DEFAULT_DB = Path("data/processed/scalegap.duckdb")
LOCK_TIMEOUT_S = float(os.environ.get("SCALEGAP_LOCK_TIMEOUT", "60"))


DDL_DIR = Path(__file__).parent / "ddl"
SERIES_KEY = ("metric", "source", "source_version", "x_axis")


def _statements(sql: str) -> list[str]:
    text = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [s.strip() for s in text.split(";") if s.strip()]


def _table_ddl() -> dict[str, str]:
    """Table name -> its CREATE statement, from ddl/tables.sql (the one place the schema is written)."""
    out = {}
    for statement in _statements((DDL_DIR / "tables.sql").read_text()):
        name = statement.split("(", 1)[0].split()[-1]
        out[name] = statement
    return out


TABLES = _table_ddl()
MIGRATIONS = sorted(DDL_DIR.glob("migrations/[0-9][0-9][0-9]_*.sql"))


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


# Tables the ingest stage and the run records write: their columns are checked on every open.
FOUNDATION = ("runs", "run_stages", "sources", "observations", "rejected", "model_aliases", "model_compute",
              "metr_release_dates", "metr_runs")

# Foundation columns a numbered migration adds (001, 009): a read-only look at an older store may lack them.
ADDED_COLUMNS = (("observations", "inference_budget", "DOUBLE"), ("runs", "inputs_digest", "VARCHAR"),
                 ("run_stages", "reused_from", "VARCHAR"))


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


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables; bring a store made by an older version up to date through the numbered
    migrations, in order, each recorded in `schema_migrations` once applied."""
    existing = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables "
                                              "WHERE table_schema = 'main'").fetchall()}
    if "runs" in existing and "schema_migrations" in existing and len(existing) >= len(TABLES):
        applied = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
        if applied >= {int(path.name[:3]) for path in MIGRATIONS}:
            return  # the common case: an up-to-date store
    fresh = "runs" not in existing
    with transaction(con):
        for name, statement in TABLES.items():
            if name not in existing:
                con.execute(statement)
        applied = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
        for path in MIGRATIONS:
            version = int(path.name[:3])
            if version in applied:
                continue
            if not fresh:  # a new store already has every table in its current form
                for statement in _statements(path.read_text()):
                    con.execute(statement)
            con.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        [version, path.stem, now()])


def series_id(metric, source, source_version, x_axis) -> str:
    """The id of a series (what one fit sees), the same in every run."""
    text = "\x1f".join(str(v) for v in (metric, source, source_version, x_axis))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def register_series(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> int:
    """Record the series of a fit (one row per series id) so stage tables can reference it."""
    if frame is None or len(frame) == 0:
        return 0
    rows = frame[[*SERIES_KEY, "kind", "unit"]].drop_duplicates(list(SERIES_KEY))
    return upsert(con, "series", _with_series_id(rows))


def _with_series_id(frame: pd.DataFrame) -> pd.DataFrame:
    ids = [series_id(*values) for values in frame[list(SERIES_KEY)].itertuples(index=False, name=None)]
    return frame.assign(series_id=ids)


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
                    "INSERT OR REPLACE INTO run_stages (run_id, stage, started_at, finished_at, status) "
                    "VALUES (?, ?, ?, ?, 'succeeded')",
                    [run_id, stage, started, now()],
                )
    finally:
        con.close()


def record_stage(con: duckdb.DuckDBPyConnection, run_id: str, stage: str, status: str, message: str | None = None,
                 started=None, rows_written: int | None = None, reused_from: str | None = None) -> None:
    """A stage's row in run_stages outside `open_stage` (skipped on purpose, failed, or copied from the run named
    by `reused_from`)."""
    con.execute("INSERT OR REPLACE INTO run_stages (run_id, stage, started_at, finished_at, status, message, "
                "rows_written, reused_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, stage, started or now(), now(), status, message, rows_written, reused_from])


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]


class SchemaMismatch(ValueError):
    """A frame whose columns are not the table's: a bug in the writing stage, never silently patched."""


def upsert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, partial: bool = False) -> int:
    """Insert rows, replacing any with the same primary key; columns are matched by name.

    An unknown column is refused (a misspelled key would otherwise vanish), and so is a missing one
    unless `partial` says the caller means to leave it NULL. A table with a `series_id` gets it from the
    series key columns."""
    if frame is None or len(frame) == 0:
        return 0
    columns = table_columns(con, table)
    if "series_id" in columns and "series_id" not in frame.columns and set(SERIES_KEY) <= set(frame.columns):
        frame = _with_series_id(frame)
    unknown = [c for c in frame.columns if c not in columns]
    if unknown:
        raise SchemaMismatch(f"{table}: no column(s) {', '.join(map(str, unknown))} (the table has {', '.join(columns)})")
    missing = [c for c in columns if c not in frame.columns]
    if missing and not partial:
        raise SchemaMismatch(f"{table}: the rows lack column(s) {', '.join(missing)}; give them (None for unknown) "
                             "or write with partial=True")
    frame = frame.assign(**{c: None for c in missing})[columns]
    con.register("_upsert_frame", frame)
    try:
        quoted = ", ".join(f'"{c}"' for c in columns)
        con.execute(f"INSERT OR REPLACE INTO {table} ({quoted}) SELECT {quoted} FROM _upsert_frame")
    finally:
        con.unregister("_upsert_frame")
    return len(frame)


def replace_run_rows(con: duckdb.DuckDBPyConnection, table: str, run_id: str, frame: pd.DataFrame,
                     where: str = "", params: list | None = None, partial: bool = False) -> int:
    """Make a stage's output for one run exactly `frame`: delete that run's rows, insert the new ones."""
    con.execute(f"DELETE FROM {table} WHERE run_id = ? {where}", [run_id, *(params or [])])
    if frame is None or len(frame) == 0:
        return 0
    return upsert(con, table, frame.assign(run_id=run_id), partial=partial)


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
    _runs_started.append(run_id)
    _run_stores[run_id] = db
    return run_id


# Runs this process started, newest last: what an interrupted command names in its last line.
_runs_started: list[str] = []
_run_stores: dict[str, str | Path | None] = {}


def runs_started() -> list[str]:
    return list(_runs_started)


def cancel_unfinished(signal_name: str) -> None:
    """Runs this process started and left `running` when an interrupt ended it (the signal landed where no
    error path could record it): recorded `cancelled` now, so no reader sees a dead run as running."""
    for run_id in _runs_started:
        try:
            con = connect(_run_stores.get(run_id), read_only=True)
            try:
                row = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
            finally:
                con.close()
            if row and row[0] == "running":
                finish_run(_run_stores.get(run_id), run_id, "cancelled", f"interrupted ({signal_name})")
        except Exception:  # noqa: BLE001 - best effort on the way out; readers also see the process gone
            pass


def finish_run(db: str | Path | None, run_id: str, status: str, message: str | None = None,
               data_digests: dict | None = None, inputs_digest: str | None = None) -> None:
    """Record a run's end. A run that fails while handling an interrupt (SIGINT, SIGTERM) is
    `cancelled`, whichever command's error path records it: its stages rolled back, nothing broke."""
    signal_name = interrupting_signal(sys.exc_info()[1])
    if status == "failed" and signal_name:
        status, message = "cancelled", f"interrupted ({signal_name})"
    con = connect(db)
    try:
        with transaction(con):
            con.execute(
                "UPDATE runs SET finished_at = ?, status = ?, message = ?, "
                "data_digests = coalesce(?, data_digests), inputs_digest = coalesce(?, inputs_digest) "
                "WHERE run_id = ?",
                [now(), status, message,
                 json.dumps(data_digests, sort_keys=True) if data_digests is not None else None, inputs_digest,
                 run_id],
            )
    finally:
        con.close()


def interrupting_signal(exc: BaseException | None) -> str | None:
    """'SIGINT' / 'SIGTERM' when `exc` (or what it was raised from) is an interrupt, else None.

    KeyboardInterrupt and its subclasses carry the signal as `signal_name` (plain Ctrl-C: SIGINT);
    Prefect's TerminationSignal, raised while a flow runs, carries the number as `signal`."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, KeyboardInterrupt):
            return getattr(exc, "signal_name", "SIGINT")
        number = getattr(exc, "signal", None)
        if isinstance(number, int) and not isinstance(exc, Exception):
            return signal.Signals(number).name
        exc = exc.__cause__ or exc.__context__
    return received_signals[0] if received_signals else None


# What a read shows for a run whose process ended without recording how the run ended.
PROCESS_GONE = "failed (process gone)"


def _mark_dead_runs(con: duckdb.DuckDBPyConnection) -> None:
    for run_id, _, _ in _dead_runs(con):
        con.execute(
            "UPDATE runs SET status = 'failed', message = 'process ended before the run finished' "
            "WHERE run_id = ?", [run_id])


def _dead_runs(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int | None, datetime]]:
    """Runs recorded as running by a process of this host that no longer exists."""
    rows = con.execute("SELECT run_id, pid, started_at FROM runs WHERE status = 'running' AND host = ?",
                       [socket.gethostname()]).fetchall()
    return [row for row in rows if row[1] is None or not _pid_alive(int(row[1]), row[2])]


def _pid_alive(pid: int, started_at: datetime | None = None) -> bool:
    """Whether `pid` is still the process that started a run at `started_at` (UTC): a zombie, or a
    process that reused the number later, is not."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = process.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    return started_at is None or created <= started_at.replace(tzinfo=UTC).timestamp() + 1.0


def runs_view(con: duckdb.DuckDBPyConnection, where: str = "", params: list | None = None) -> pd.DataFrame:
    """The runs table as readers should see it: a run whose process died before it finished shows
    `failed (process gone)` at once, without waiting for a writer to mark it (no write lock needed)."""
    frame = con.execute(f"SELECT * FROM runs {where}", params or []).df()
    dead = {run_id for run_id, _, _ in _dead_runs(con)}
    if dead:
        frame.loc[frame["run_id"].isin(dead), "status"] = PROCESS_GONE
    return frame


def run_status(con: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    frame = runs_view(con, "WHERE run_id = ?", [run_id])
    return None if frame.empty else str(frame["status"].iloc[0])


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


def forgotten_sources(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    """(source, source_version) pairs that `scalegap forget` took out of future runs (their rows stay: past
    runs' results cite them)."""
    if "forgotten" not in {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}:
        return set()  # a read-only look at a store older than the table
    return set(con.execute("SELECT source, source_version FROM forgotten").fetchall())


def drop_forgotten(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (with source and source_version columns) without the forgotten source versions."""
    forgotten = forgotten_sources(con)
    if not forgotten or frame.empty:
        return frame
    keys = pd.MultiIndex.from_frame(frame[["source", "source_version"]].astype(str))
    return frame[~keys.isin(list(forgotten))]


def forget(db: str | Path | None, source: str, version: str | None = None,
           undo: bool = False) -> list[str]:
    """Take every stored version of `source` (or just `version`) out of future runs, or bring it
    back (`undo`); returns the versions changed. Nothing is deleted."""
    con = connect(db)
    try:
        with transaction(con):
            stored = [v for (v,) in con.execute("SELECT source_version FROM sources WHERE source = ? "
                                                "ORDER BY retrieved_at", [source]).fetchall()]
            if not stored:
                names = [n for (n,) in con.execute("SELECT DISTINCT source FROM sources ORDER BY 1").fetchall()]
                close = difflib.get_close_matches(source, names, n=1, cutoff=0.5)
                raise ScalegapError(f"no source {source!r} in the store. Fix: "
                                    + (f"did you mean {close[0]!r}? " if close else "")
                                    + "`scalegap sources` lists the stored ones")
            if version is not None and version not in stored:
                raise ScalegapError(f"{source} has no version {version!r}. Fix: use one of "
                                    + ", ".join(f"{source}@{v}" for v in stored))
            chosen = [version] if version is not None else stored
            for v in chosen:
                if undo:
                    con.execute("DELETE FROM forgotten WHERE source = ? AND source_version = ?", [source, v])
                else:
                    con.execute("INSERT OR REPLACE INTO forgotten (source, source_version, forgotten_at) "
                                "VALUES (?, ?, ?)", [source, v, now()])
    finally:
        con.close()
    return chosen


def sources_view(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every stored source version: rows, retrieval time, sha256 prefix, and whether fits use it
    (`used`), or not: `superseded by <version>` (a newer copy of the same file) or `forgotten`.
    Mirrors the fits' choice: the newest retrieved copy of each label (version before '@')."""
    frame = con.execute(
        "SELECT source, source_version, kind, n_observations AS rows, n_rejected AS rejected, retrieved_at, "
        "left(sha256, 12) AS sha256, location FROM sources ORDER BY source, retrieved_at, source_version").df()
    forgotten = forgotten_sources(con)
    frame["forgotten"] = [(s, v) in forgotten for s, v in zip(frame["source"], frame["source_version"], strict=True)]
    frame["label"] = frame["source_version"].str.split("@").str[0]
    newest = frame[~frame["forgotten"]].groupby(["source", "label"])["source_version"].last()
    used = []
    for row in frame.itertuples():
        if row.forgotten:
            used.append("forgotten")
        elif newest.get((row.source, row.label)) == row.source_version:
            used.append("used")
        else:
            used.append(f"superseded by {newest[(row.source, row.label)]}")
    return frame.assign(fits=used).drop(columns=["forgotten", "label"])


def table_digest(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """Order-independent digest of a table's contents (used to prove the store is unchanged)."""
    frame = con.execute(f"SELECT * FROM {table}").df()
    rows = sorted(frame.astype(str).itertuples(index=False, name=None))
    return hashlib.sha256(repr(rows).encode()).hexdigest()
