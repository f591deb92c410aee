"""One adapter per public format. Each turns a file into canonical observations (see schema.py).

An adapter is a module-level object with `name`, `matches(path) -> bool` and
`read(path) -> list[SourceData]`; register it in `ADAPTERS` below. Adapters only parse and
normalise: they never touch the store (the ingest stage does that in one transaction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from pipeline.schema import REJECTED_COLUMNS, InputError


@dataclass
class SourceData:
    """What one file yields for one source version."""

    source: str                   # e.g. "obsscaling_ruan2024"
    source_version: str           # e.g. "2024-10-01" or an arena snapshot date
    kind: str                     # dominant kind: benchmark | elo | horizon | loss | metadata
    license: str
    citation: str
    observations: pd.DataFrame    # canonical columns; source/version/sha are filled by ingest
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(REJECTED_COLUMNS)))
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)  # other tables, e.g. metr_runs
    notes: str = ""


class Adapter(Protocol):
    name: str

    def matches(self, path: Path) -> bool: ...

    def read(self, path: Path) -> list[SourceData]: ...


def rejected_frame(rows: list[dict]) -> pd.DataFrame:
    """Build the rejected-rows frame from dicts with row_ref, column_name, value, reason."""
    frame = pd.DataFrame(rows, columns=[c for c in REJECTED_COLUMNS if c not in ("source", "source_version")])
    return frame.astype("string")


ADAPTERS: list[Adapter] = []


def _load_adapters() -> list[Adapter]:
    if not ADAPTERS:
        from pipeline.sources import registry

        ADAPTERS.extend(registry.all_adapters())
    return ADAPTERS


def adapter_for(path: Path, fallback: bool = True) -> Adapter:
    """The adapter that knows this file; a CSV nobody claims goes to the generic one, whose
    reader then says exactly what is missing (with `fallback=False`, such a file is unknown)."""
    adapters = _load_adapters()
    for adapter in adapters:
        if adapter.matches(path):
            return adapter
    if fallback and path.name.lower().endswith((".csv", ".csv.gz", ".txt", ".tsv")):
        return adapters[-1]
    raise InputError(
        str(path), "no adapter recognises this file",
        "give a file in one of the supported public formats (see `scalegap ingest --help`), or a CSV "
        "with at least the columns model, metric, value and train_flop or release_date",
    )
