"""The errors users see, and the command line's record of signals: no heavy imports, so a command that needs
neither tables nor the store (`classify --expr`, `--help`, a usage error) starts quickly."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass


class ScalegapError(Exception):
    """An expected failure: shown to the user as one clear message, never as a traceback."""

    exit_code = 2


@dataclass
class InputError(ScalegapError):
    """Bad input: names the file, the row and column, and what would fix it."""

    path: str
    problem: str
    fix: str = ""
    row: int | str | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = [str(self.path)]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        message = f"{', '.join(where)}: {self.problem}"
        if self.fix:
            message += f". Fix: {self.fix}"
        return message


class StoreBusy(ScalegapError):
    pass


class StoreUnavailable(ScalegapError):
    pass


STORE_FIX = "restore it from a backup, or point --db at another file (`scalegap ingest` builds a new store)"

# Signals this process received (set by the command line's handler): a run that fails after one was
# interrupted, even when a library turned the interrupt into an error of its own without chaining it.
received_signals: list[str] = []


def one_line_store_errors(call: Callable) -> Callable:
    """`call`, with a store found damaged (a truncated file, a bad checksum), its disk full or its memory exhausted
    only when some stage reads or writes it turned into a one-line StoreUnavailable; any other error keeps its
    traceback."""
    @functools.wraps(call)
    def checked(*args, **kwargs):
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            import duckdb  # loaded by whatever raised it

            if not isinstance(exc, duckdb.Error):
                raise
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if re.search(r"[Cc]orrupt|checksum|Could not read|not a valid DuckDB", text):
                raise StoreUnavailable(f"cannot read the store: {text}. Fix: {STORE_FIX}") from None
            if re.search(r"No space left|[Cc]ould not write|disk (is )?full", text):
                raise StoreUnavailable(f"cannot write the store ({text}); nothing of this stage was stored. "
                                       "Fix: free disk space, or use another --db") from None
            if isinstance(exc, duckdb.OutOfMemoryException):
                raise StoreUnavailable(f"the store ran out of memory ({text}); nothing of this stage was stored. "
                                       "Fix: close other programs, or split the input") from None
            raise
    return checked
