"""One adapter per public format. Each turns a file into canonical observations (see schema.py).

An adapter is a module-level object with `name`, `matches(path) -> bool` and
`read(path) -> list[SourceData]`; register it in `ADAPTERS` below. Adapters only parse and
normalise: they never touch the store (the ingest stage does that in one transaction).

Limits every reader keeps (each refusal is one InputError naming the file, the place and the fix):
a file of at most 512 MB (ingest.MAX_FILE_BYTES) expanding to at most MAX_DECOMPRESSED_BYTES, and by at
most MAX_COMPRESSION_RATIO once past RATIO_CHECK_AFTER (decompressed while read, once); JSON nested at
most MAX_JSON_DEPTH deep; YAML with at most MAX_YAML_ALIASES aliases; CSV lines of at most MAX_LINE_BYTES
and at most MAX_COLUMNS fields; stored text within schema.MAX_NAME_CHARS / MAX_TEXT_CHARS.
"""

from __future__ import annotations

import gzip
import io
import re
import shutil
import tempfile
import weakref
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

import duckdb
import pandas as pd

from pipeline.schema import REJECTED_COLUMNS, InputError

MAX_DECOMPRESSED_BYTES = 1 << 30
MAX_COMPRESSION_RATIO = 100       # real CSVs compress 5-20x; a bomb of repeated rows, 1000x and more
RATIO_CHECK_AFTER = 16 << 20
MAX_JSON_DEPTH = 64
MAX_YAML_ALIASES = 32             # the published files use none; 32 bound any expansion to about 1e5 nodes
MAX_LINE_BYTES = 1 << 20
MAX_COLUMNS = 1000


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
    staged: Staged | None = None  # too many rows to hold: `observations` is then empty, the rows are here


def sql_text(path: Path | str) -> str:
    """A path as a quoted SQL string, for statements that take no parameter there (ATTACH, COPY ... TO)."""
    return "'" + str(path).replace("'", "''") + "'"


class Scratch:
    """A DuckDB file in a private temp folder that spills to disk, removed when the last user of it is gone."""

    MEMORY = "256MB"

    def __init__(self, memory: str = MEMORY) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="scalegap-ingest-"))
        self.file = self.folder / "rows.duckdb"
        self.con: duckdb.DuckDBPyConnection | None = duckdb.connect(str(self.file))
        for setting in (f"memory_limit = '{memory}'", f"temp_directory = '{self.folder / 'spill'}'",
                        "enable_progress_bar = false"):
            self.con.execute(f"SET {setting}")
        weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)

    def append(self, table: str, frame: pd.DataFrame) -> None:
        with self.con.cursor() as cursor:  # its own cursor: a read of `pieces` may be open on another
            cursor.register("_piece", frame)
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM _piece LIMIT 0")
            cursor.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _piece")

    def pieces(self, sql: str, params: list, rows: int) -> Iterator[pd.DataFrame]:
        result = self.con.cursor().execute(sql, params)
        while len(piece := result.fetch_df_chunk(max(1, rows // 2048))):
            yield piece

    def close(self) -> Path:
        """Done writing: the file, for a store to attach (DuckDB opens a file from one instance at a time)."""
        if self.con is not None:
            self.con.close()
            self.con = None
        return self.file

    @contextmanager
    def attached(self, con: duckdb.DuckDBPyConnection, alias: str) -> Iterator[str]:
        """Closed and attached read-only to `con` as `alias`, for the store to copy from inside its transaction."""
        con.execute(f"ATTACH {sql_text(self.close())} AS {alias} (READ_ONLY)")
        try:
            yield alias
        finally:
            con.execute(f"DETACH {alias}")


@dataclass
class Staged:
    """The rows of one source version kept in a Scratch file: read in pieces, each piece kept once checked
    (`keep`), then copied into the store by one INSERT inside its transaction (`attached`)."""

    scratch: Scratch
    part: int
    read: Callable[[], Iterator[tuple[str, pd.DataFrame]]]  # ("observations" | "rejected", piece)

    def pieces(self) -> Iterator[tuple[str, pd.DataFrame]]:
        return self.read()

    def keep(self, table: str, frame: pd.DataFrame) -> None:
        self.scratch.append(f"kept_{table}", frame.assign(_part=self.part))

    def attached(self, con: duckdb.DuckDBPyConnection):
        return self.scratch.attached(con, f"staged_{self.part}")


class Adapter(Protocol):
    name: str

    def matches(self, path: Path) -> bool: ...

    def read(self, path: Path) -> list[SourceData]: ...


def rejected_frame(rows: list[dict]) -> pd.DataFrame:
    """Build the rejected-rows frame from dicts with row_ref, column_name, value, reason."""
    frame = pd.DataFrame(rows, columns=[c for c in REJECTED_COLUMNS if c not in ("source", "source_version")])
    return frame.astype("string")


class _Inflated(io.RawIOBase):
    """The decompressed bytes of a .gz file, counted as they are read: too many, or too many for the
    compressed bytes behind them (a decompression bomb), and reading stops with an InputError."""

    def __init__(self, path: Path) -> None:
        self.path, self.out = path, 0
        self.raw = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.gzip = gzip.GzipFile(fileobj=self.raw, mode="rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            n = self.gzip.readinto(buffer)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(str(self.path), f"the file is not valid gzip data ({exc})",
                             "give a gzip-compressed file, or drop the .gz ending if the file is plain text") from None
        self.out += n
        if self.out > MAX_DECOMPRESSED_BYTES or (
                self.out > RATIO_CHECK_AFTER and self.out > MAX_COMPRESSION_RATIO * max(self.raw.tell(), 1)):
            raise InputError(str(self.path), f"the file expands to more than {self.out >> 20} MB from "
                             f"{self.raw.tell() >> 10} kB (a limit of {MAX_DECOMPRESSED_BYTES >> 20} MB and "
                             f"{MAX_COMPRESSION_RATIO}x compression)", "give the data uncompressed or split it")
        return n

    def close(self) -> None:
        if not self.closed:
            self.gzip.close()
            self.raw.close()
        super().close()


def open_data(path: Path) -> BinaryIO:
    """The file's bytes, decompressed (once, while read, within the limits above) when it ends in .gz."""
    if path.name.lower().endswith(".gz"):
        return io.BufferedReader(_Inflated(path), 1 << 16)
    return open(path, "rb", buffering=1 << 16)  # noqa: SIM115 - the caller closes it


def json_depth_error(text: str, path: Path, row: int | None = None) -> InputError | None:
    """An error if the JSON text nests deeper than MAX_JSON_DEPTH (checked before parsing: the parser
    itself recurses, and deep enough nesting ends it in a RecursionError)."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return None
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    if deepest <= MAX_JSON_DEPTH:
        return None
    return InputError(str(path), f"JSON nested {deepest} levels deep (the limit is {MAX_JSON_DEPTH})",
                      "give the export as published: a few levels of objects and lists", row=row)


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')  # brackets inside strings do not nest
_BRACKETS = re.compile(r"[\[\]{}]")


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
