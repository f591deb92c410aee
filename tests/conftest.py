"""Shared fixtures. Tests that read the public data sets skip when ../shared is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Prefect must stay offline and quiet in tests, with its state inside the project.
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("SCALEGAP_LOCK_TIMEOUT", "20")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public data sets not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def tmp_db(tmp_path: Path) -> Path:
    return tmp_path / "scalegap.duckdb"


@pytest.fixture
def raw_dir() -> Path:
    """The bundled snapshot the project ships."""
    return ROOT / "data" / "raw"
