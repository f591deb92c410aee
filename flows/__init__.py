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
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
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


class TemporaryServer:
    """Prefect's temporary local server for one CLI run: the same uvicorn app Prefect would start, but as a
    GuardedPopen child of the main thread, started before the run's own imports so the two overlap.

    Prefect would otherwise start it lazily, possibly from a worker thread (a parent-death signal fires when the
    forking *thread* ends), as a plain child that a SIGKILL of the run orphans, and only once the flow begins."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.url: str | None = None
        self._settings = contextlib.ExitStack()

    def start(self) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}/api"
        spec = importlib.util.find_spec("prefect")
        app_dir = str(Path(spec.origin).parent.parent)
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
               "PREFECT__SERVER_FINAL": "1"}
        env.pop("PREFECT_API_URL", None)
        self.process = GuardedPopen(
            [sys.executable, "-m", "uvicorn", "--app-dir", app_dir, "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "error", "--lifespan", "on"], env=env)

    def wait(self) -> str:
        """Block until the server answers (it is started again on another port if this one was taken)."""
        timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code == 3:  # uvicorn: the port was taken meanwhile
                self.start()
                continue
            if code is not None:
                raise RuntimeError(f"ephemeral Prefect API server exited with status {code}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        self._no_heartbeats()
                        return self.url
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server")

    def _no_heartbeats(self) -> None:
        """Flow-run heartbeats let a lasting server notice a crashed run; this one ends with the run, and each
        flow would wait up to a second at its end for the heartbeat thread."""
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        self._settings.enter_context(temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))

    def stop(self) -> None:
        self._settings.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def temporary_server() -> Iterator[TemporaryServer | None]:
    """A TemporaryServer for one CLI run, started at once and stopped on exit; call `.wait()` before the first
    flow. Yields None when $PREFECT_API_URL names a server to use instead. While it serves, this process's
    Prefect settings point at it."""
    if os.environ.get("PREFECT_API_URL"):
        yield None
        return
    server = TemporaryServer()
    server.start()
    os.environ["PREFECT_API_URL"] = server.url
    _refresh_prefect_settings()
    try:
        yield server
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        if "prefect" in sys.modules:
            # Logs and events still queued go out first (each worker bounded), while the server listens.
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker

            for worker in (APILogWorker, EventsWorker):
                worker.drain_all(timeout=5)
        server.stop()
        _refresh_prefect_settings()


def _refresh_prefect_settings() -> None:
    """Prefect reads its settings when imported: an already imported Prefect re-reads the environment."""
    if "prefect.context" in sys.modules:
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()
