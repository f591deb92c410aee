"""Issue 18: how a run's end is recorded and read: interrupted runs are `cancelled`; a run whose
process is gone reads as `failed (process gone)` for every reader, before any writer marks it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime

import pytest

from pipeline import store

CLI = [sys.executable, "-m", "pipeline.cli"]


class Terminated(BaseException):
    """Stands for Prefect's TerminationSignal: a BaseException carrying the signal number."""

    signal = signal.SIGTERM


def test_interrupting_signal_names_the_signal():
    assert store.interrupting_signal(KeyboardInterrupt()) == "SIGINT"
    assert store.interrupting_signal(Terminated()) == "SIGTERM"
    try:
        try:
            raise Terminated()
        except Terminated as exc:
            raise RuntimeError("while handling") from exc
    except RuntimeError as exc:
        assert store.interrupting_signal(exc) == "SIGTERM"  # found through the cause
    assert store.interrupting_signal(ValueError("signal")) is None
    assert store.interrupting_signal(None) is None


def status_of(db, run_id: str) -> tuple[str, str | None]:
    con = store.connect(db, read_only=True)
    try:
        return con.execute("SELECT status, message FROM runs WHERE run_id = ?", [run_id]).fetchone()
    finally:
        con.close()


def test_a_failure_while_interrupted_is_recorded_cancelled(tmp_db):
    run_id = store.start_run(tmp_db, "test", {})
    with pytest.raises(KeyboardInterrupt):
        try:
            raise KeyboardInterrupt
        except BaseException as exc:
            store.finish_run(tmp_db, run_id, "failed", str(exc))
            raise
    assert status_of(tmp_db, run_id) == ("cancelled", "interrupted (SIGINT)")
    other = store.start_run(tmp_db, "test", {})
    try:
        raise ValueError("bad input")
    except ValueError as exc:
        store.finish_run(tmp_db, other, "failed", str(exc))
    assert status_of(tmp_db, other) == ("failed", "bad input")


def _set_run(db, run_id: str, pid: int, started_at: datetime | None = None) -> None:
    con = store.connect(db)
    try:
        con.execute("UPDATE runs SET pid = ?, started_at = coalesce(?, started_at) WHERE run_id = ?",
                    [pid, started_at, run_id])
    finally:
        con.close()


def test_dead_process_reads_as_gone_without_a_write(tmp_db):
    finished = subprocess.Popen(["true"])
    finished.wait()
    zombie = subprocess.Popen(["true"])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped: still in the process table
    gone, zombied, alive = (store.start_run(tmp_db, "test", {}) for _ in range(3))
    _set_run(tmp_db, gone, finished.pid)
    _set_run(tmp_db, zombied, zombie.pid)
    try:
        con = store.connect(tmp_db, read_only=True)
        try:
            view = store.runs_view(con).set_index("run_id")["status"]
            raw = dict(con.execute("SELECT run_id, status FROM runs").fetchall())
        finally:
            con.close()
        assert view[gone] == view[zombied] == store.PROCESS_GONE
        assert view[alive] == "running"  # this process
        assert set(raw.values()) == {"running"}  # nothing written by reading
        done = subprocess.run([*CLI, "status", "--db", str(tmp_db), "--json"], capture_output=True, text=True,
                              timeout=120)
        runs = {r["run_id"]: r["status"] for r in json.loads(done.stdout)["runs"]}
        assert runs[gone] == store.PROCESS_GONE and runs[alive] == "running"
    finally:
        zombie.wait()


def test_a_reused_process_number_is_not_the_run(tmp_db):
    run_id = store.start_run(tmp_db, "test", {})
    _set_run(tmp_db, run_id, os.getpid(), datetime(2000, 1, 1))  # this process started later
    con = store.connect(tmp_db, read_only=True)
    try:
        assert store.run_status(con, run_id) == store.PROCESS_GONE
    finally:
        con.close()


def test_the_next_write_records_dead_runs_failed(tmp_db):
    finished = subprocess.Popen(["true"])
    finished.wait()
    run_id = store.start_run(tmp_db, "test", {})
    _set_run(tmp_db, run_id, finished.pid)
    store.finish_run(tmp_db, store.start_run(tmp_db, "test", {}), "succeeded")
    assert status_of(tmp_db, run_id) == ("failed", "process ended before the run finished")


def test_an_unchained_error_after_a_signal_is_the_interruption():
    """A library may turn the interrupt into an error of its own without chaining it (pydantic building a
    validator when SIGINT lands): once the process received a signal, a failing run is still cancelled."""
    assert store.interrupting_signal(ValueError("schema")) is None
    store.received_signals.append("SIGTERM")
    try:
        assert store.interrupting_signal(ValueError("schema")) == "SIGTERM"
    finally:
        store.received_signals.clear()
