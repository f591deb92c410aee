"""Prefect orchestration of the pipeline stages.

Importing this package sets offline, quiet defaults *before* Prefect is imported (Prefect reads its
settings at import time): state under the project's `.prefect/`, no telemetry, no prompts. Explicit
environment variables still win. Nothing in `pipeline/` imports Prefect; these flows only wrap it.
"""

from __future__ import annotations

import os
from pathlib import Path

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
