"""Shared fixtures. Tests of the public formats read the cuts in tests/fixtures/data (made by
tests/fixtures/cut.py), so they run on a fresh clone with no public data folder beside it."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_CUTS = ROOT / "tests" / "fixtures" / "data"

# Prefect must stay offline and quiet in tests, with its state inside the project.
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("SCALEGAP_LOCK_TIMEOUT", "20")


@pytest.fixture
def shared_data() -> Path:
    """A few rows of each public format, at the paths the shared data folder uses."""
    return PUBLIC_CUTS


@pytest.fixture
def tmp_db(tmp_path: Path) -> Path:
    return tmp_path / "scalegap.duckdb"


@pytest.fixture
def raw_dir() -> Path:
    """The bundled snapshot the project ships."""
    return ROOT / "data" / "raw"


def assert_rows_of_bundled_snapshot(built: Path, bundled: Path) -> None:
    """A snapshot built from the cut files holds the bundled files' headers and only their rows, byte
    for byte: the same code made data/raw from the whole files. Derived rows are the exception: a
    compute-efficient frontier (metric loss_frontier) depends on which points are present."""
    names = sorted(p.name for p in bundled.iterdir() if p.is_file())
    assert sorted(p.name for p in built.iterdir()) == names
    for name in names:
        if name.endswith(".toml"):
            assert (built / name).read_bytes() == (bundled / name).read_bytes(), name
            continue
        opener = gzip.open if name.endswith(".gz") else open
        with opener(built / name, "rt", encoding="utf-8") as new, opener(bundled / name, "rt", encoding="utf-8") as old:
            new_lines, old_lines = new.read().splitlines(), set(old.read().splitlines())
        assert new_lines[0] in old_lines and len(new_lines) > 1, name
        if name == "models.csv":
            # registry facts cite their row in the public file, and a cut file numbers its rows anew: compare the
            # rows without that reference
            header = new_lines[0].split(",")
            ref = header.index("row_ref")
            new_lines = [_without_field(line, ref) for line in new_lines]
            old_lines = {_without_field(line, ref) for line in old_lines}
        extra = [line for line in new_lines[1:] if line not in old_lines and ",loss_frontier," not in line]
        assert not extra, (name, extra[:3])


def _without_field(line: str, index: int) -> str:
    import csv
    import io

    row = next(csv.reader(io.StringIO(line)))
    return "\x1f".join(row[:index] + row[index + 1:])


def query_frame(db: Path, sql: str, params: list | None = None) -> pd.DataFrame:
    """A read-only query on a test store, as a frame."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()
