"""Deployments of `refresh` and the `scalegap serve` process that runs their schedules.

`weekly-refresh` fetches every public URL listed in data/raw/sources.toml on a weekly cron; `adhoc`
has no schedule and exists for `prefect deployment run 'refresh/adhoc' --param ...`. Both are served
by one long-lived process (`prefect.serve`), which needs a running Prefect server: no Cloud account,
no work pool.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import flows
from pipeline.schema import ScalegapError

WEEKLY_CRON = "0 6 * * 1"  # Mondays 06:00
DEFAULT_API_URL = "http://127.0.0.1:4200/api"


class ServerUnavailable(ScalegapError):
    pass


def api_url(explicit: str | None = None) -> str:
    return (explicit or os.environ.get("PREFECT_API_URL") or DEFAULT_API_URL).rstrip("/")


def server_healthy(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_server(port: int, host: str = "127.0.0.1", timeout_s: float = 90.0,
                 log_path: Path | None = None, prefect_home: Path | None = None) -> subprocess.Popen:
    """`prefect server start` in a child process (default: the project's PREFECT_HOME); waits until
    it answers /health."""
    prefect_bin = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
    home = prefect_home or Path(os.environ.get("PREFECT_HOME") or flows.PREFECT_HOME)
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    # Its own process group (Ctrl-C reaches `serve`, which stops it), killed with `serve` if that dies.
    process = flows.GuardedPopen([prefect_bin, "server", "start", "--host", host, "--port", str(port)],
                                 env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{host}:{port}/api"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerUnavailable(f"`prefect server start` exited with code {process.returncode}"
                                    + (f"; see {log_path}" if log_path else "")
                                    + ". Fix: check that the port is free (--port)")
        if server_healthy(url):
            return process
        time.sleep(0.5)
    process.terminate()
    raise ServerUnavailable(f"the Prefect server on {url} did not become healthy in {timeout_s:.0f} s")


def build_deployments(cron: str = WEEKLY_CRON, fit_draws: int = 1000, db: str | None = None,
                      out_dir: str | None = None) -> list:
    """The weekly refresh and the ad-hoc deployment; `db` and `out_dir` become both deployments' defaults."""
    from flows.refresh import ALL_PUBLIC, refresh

    where = {k: v for k, v in (("db", db), ("out_dir", out_dir)) if v}
    return [
        refresh.to_deployment(
            name="weekly-refresh", cron=cron, tags=["scalegap"],
            parameters={"sources": [ALL_PUBLIC], "fit_draws": fit_draws, **where},
            description="Fetch every public source in data/raw/sources.toml, refit, re-project, "
                        "re-render the report.",
        ),
        refresh.to_deployment(
            name="adhoc", tags=["scalegap"], parameters=where,
            description="Unscheduled: a researcher's question, e.g. --param metrics='[\"mmlu\"]'.",
        ),
    ]


def serve(url: str | None = None, cron: str = WEEKLY_CRON, start: bool = False, port: int = 4200,
          limit: int | None = None, db: str | None = None, out_dir: str | None = None) -> None:
    """Register the deployments on the server at `url` and run their schedules until interrupted."""
    url = api_url(url)
    server = None
    if not server_healthy(url):
        if not start:
            raise ServerUnavailable(
                f"no Prefect server answers at {url}. Fix: start one with "
                f"`PREFECT_HOME={flows.PREFECT_HOME} .venv/bin/prefect server start`, "
                f"or run `scalegap serve --start-server`")
        server = start_server(port, log_path=flows.PREFECT_HOME / "server.log")
        url = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_API_URL"] = url
    try:
        from prefect import serve as prefect_serve
        from prefect.runner import Runner
        from prefect.settings import PREFECT_API_URL, temporary_settings

        # Prefect's own SIGTERM handler calls the runner's async stop() from inside the event loop,
        # which leaves a "coroutine ... was never awaited" warning; SIGTERM goes to the handler the
        # runner replaced instead (the CLI's: it unwinds like Ctrl-C, which the runner handles).
        previous = signal.getsignal(signal.SIGTERM)
        if callable(previous):
            Runner.handle_sigterm = lambda runner, signum, frame: previous(signum, frame)

        with temporary_settings({PREFECT_API_URL: url}):
            prefect_serve(*build_deployments(cron, db=db, out_dir=out_dir), limit=limit, print_starting_message=True)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
