"""Prefect orchestration of the pipeline stages.

Importing this package sets offline, quiet defaults *before* Prefect is imported (Prefect reads its
settings at import time): state under the project's `.prefect/`, no telemetry, no prompts. Explicit
environment variables still win. Nothing in `pipeline/` imports Prefect; these flows only wrap it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import signal
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PREFECT_HOME = Path(os.environ.get("PREFECT_HOME") or PROJECT_ROOT / ".prefect")

OFFLINE_DEFAULTS: dict[str, str] = {
    "PREFECT_HOME": str(PREFECT_HOME),
    # Without these Prefect contacts an outside analytics host.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_UI_ENABLED": "false",
    "PREFECT_CLI_PROMPT": "false",
    # No API URL: each script starts a temporary local server (about 4-6 s on this machine).
    "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
    # The temporary server's default 20 s start-up limit is missed on a busy 2-core machine.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # Cached fit results live under .prefect/storage, next to Prefect's own database.
    "PREFECT_LOCAL_STORAGE_PATH": str(PREFECT_HOME / "storage"),
}
for _key, _value in OFFLINE_DEFAULTS.items():
    os.environ.setdefault(_key, _value)


def quiet_console(level: str = "CRITICAL") -> None:
    """CLI mode: silence Prefect's console handler; flow-run logs still reach Prefect's API log.

    The CLI shows its own progress, and prints expected failures once, without Prefect's traceback.
    Must run before Prefect configures logging (i.e. before `import prefect`)."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", level)


def record_prefect_sigterm() -> None:
    """While a flow runs Prefect swaps in its own SIGTERM handler, which raises TerminationSignal; a library
    may turn that into an error of its own (DuckDB: "Query interrupted") and the command would never learn it
    was signalled. Wrap Prefect's handler so the signal is recorded first (store.received_signals), and the run
    ends as interrupted and cancelled whatever error the signal surfaces as."""
    from prefect.utilities import engine

    from pipeline import store

    original = engine._prefect_sigterm_handler
    if getattr(original, "records_signal", False):
        return

    def handler(signum, frame):
        if "SIGTERM" not in store.received_signals:
            store.received_signals.append("SIGTERM")
        return original(signum, frame)

    handler.records_signal = True
    engine._prefect_sigterm_handler = handler


PR_SET_PDEATHSIG = 1
# Resolved before any fork: the child may only make the call, not load a library.
_prctl = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent(parent_pid: int) -> None:
    """Runs in the forked child before exec: the kernel sends it SIGKILL when its parent dies (Linux)."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)


class GuardedPopen(subprocess.Popen):
    """A child that cannot outlive this process: SIGKILLed by the kernel when we die, however we die.

    It gets its own process group, so a terminal's Ctrl-C reaches only us: we then finish talking to
    the child (a Prefect server the run still needs to record its end) and stop it ourselves."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("preexec_fn", functools.partial(_die_with_parent, os.getpid()))
        kwargs.setdefault("process_group", 0)
        super().__init__(*args, **kwargs)


@contextlib.contextmanager
def temporary_server() -> Iterator[str | None]:
    """Prefect's temporary local server for one CLI run, as a GuardedPopen child; stopped on exit.

    Prefect would otherwise start it lazily, possibly from a worker thread (a parent-death signal
    fires when the forking *thread* ends) and as a plain child that a SIGKILL of the run orphans.
    Yields its API URL, or None when PREFECT_API_URL names a server to use instead."""
    from prefect.server.api import server as prefect_server
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        yield None
        return
    server = prefect_server.SubprocessASGIServer()
    try:
        prefect_server.subprocess = types.SimpleNamespace(**{**vars(subprocess), "Popen": GuardedPopen})
        try:
            server.start()
        finally:
            prefect_server.subprocess = subprocess
        yield server.api_url
    finally:
        # Logs and events still queued go out first (each worker bounded), while the server listens.
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        for worker in (APILogWorker, EventsWorker):
            worker.drain_all(timeout=5)
        server.stop()
