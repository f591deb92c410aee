"""A user's own results, and the bundled snapshot: a CSV with `model, metric, value` and
`train_flop` or `release_date` (or `inference_budget`, samples k per task, for inference scaling such as
pass@k; a model at several budgets becomes one observation per budget). Optional: value_lo, value_hi,
unit, kind, floor, ceiling, organization, params, source, source_version, citation, license,
train_flop_note, cluster, train_flop_lo / train_flop_hi (a 90% interval of the compute, raw FLOP).

Rows are grouped by `source` (default: the file's stem). Structural problems raise InputError naming
file, line and column; rows that are merely unusable (neither compute nor date) are rejected.

The file is streamed: rows are normalised CHUNK_ROWS at a time. A file of one chunk is returned in memory;
a longer one is staged in a scratch DuckDB file (spilling to disk), where the checks that need every row
(a unit guessed per metric, duplicate keys) run in SQL, and `SourceData.chunks` reads it back in pieces.
"""

from __future__ import annotations

import csv
import itertools
import tomllib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.schema import OBSERVATION_SPEC, InputError, clean_text, conform, with_warnings
from pipeline.sources import (
    MAX_COLUMNS,
    MAX_LINE_BYTES,
    Scratch,
    SourceData,
    Staged,
    open_data,
    rejected_frame,
)

REQUIRED = ("model", "metric", "value")
KNOWN = REQUIRED + (
    "train_flop", "train_flop_log10", "train_flop_1e21", "release_date", "value_lo", "value_hi", "unit",
    "inference_budget",
    "kind", "floor", "ceiling", "organization", "params", "source", "source_version", "citation",
    "license", "train_flop_note", "cluster", "original_unit", "train_flop_lo", "train_flop_hi",
)
UNIT_KIND = {"fraction": "benchmark", "percent": "benchmark", "elo": "elo", "minutes": "horizon",
             "nats": "loss", "index": "benchmark", "score": "benchmark"}
NUMERIC = ("value", "value_lo", "value_hi", "floor", "ceiling", "params", "inference_budget", "train_flop",
           "train_flop_log10", "train_flop_1e21", "train_flop_lo", "train_flop_hi")
CHUNK_ROWS = 100_000


class GenericCsvAdapter:
    name = "generic_csv"

    def matches(self, path: Path) -> bool:
        if path.suffix.lower() not in {".csv", ".gz"} or not path.name.lower().endswith((".csv", ".csv.gz")):
            return False
        try:  # the header line only: a large (or hostile) file is read once, by read()
            with open_data(path) as handle:
                header = handle.readline(MAX_LINE_BYTES).decode("utf-8-sig").lower()
        except (InputError, OSError, UnicodeDecodeError):
            return False
        return all(col in header for col in REQUIRED)

    def read(self, path: Path) -> list[SourceData]:
        return read_generic(path)


def _lines(path: Path, handle) -> Iterator[str]:
    """Text lines of the file, checked on the way: binary content, UTF-8, and lines of at most MAX_LINE_BYTES.
    Decoded a block at a time (cut after a newline, which no UTF-8 character contains)."""
    if b"\x00" in handle.peek(65536)[:65536]:
        raise InputError(str(path), "this is a binary file, not a CSV text file",
                         "give a UTF-8 CSV file with a header row")
    pending, offset, number = b"", 0, 1   # bytes before, and the line number of, the next block
    while True:
        block = handle.read(1 << 20)
        data = pending + block
        end = data.rfind(b"\n") + 1 if block else len(data)
        complete, pending = data[:end], data[end:]
        parts = complete.split(b"\n")  # the last is empty, or the file's end; `pending` starts the line after
        for i, part in enumerate([*parts[:-1], parts[-1] + pending]):
            if len(part) > MAX_LINE_BYTES:
                raise InputError(str(path), f"a line longer than {MAX_LINE_BYTES >> 20} MB",
                                 "give one row per line, with fields of a few hundred characters", row=number + i)
        try:
            text = complete.decode("utf-8-sig" if offset == 0 else "utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(str(path), f"the file is not UTF-8 text (bad byte at offset {offset + exc.start})",
                             "save the file as UTF-8", row=number + complete[: exc.start].count(b"\n")) from None
        lines = text.split("\n")
        yield from (line + "\n" for line in lines[:-1])
        if not block:
            if lines[-1]:
                yield lines[-1]
            return
        offset, number = offset + len(complete), number + len(parts) - 1


def _records(path: Path, handle) -> Iterator[list[str]]:
    reader = csv.reader(_lines(path, handle))
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(str(path), f"not a valid CSV ({exc})", "check quoting of fields",
                             row=reader.line_num) from None
        yield record


def _header(path: Path, first: list[str], first_line: str) -> list[str]:
    header = [h.strip().lower() for h in first]
    if len(header) > MAX_COLUMNS:
        raise InputError(str(path), f"{len(header)} columns (the limit is {MAX_COLUMNS})",
                         "keep the columns listed in `scalegap ingest --help`", row=1)
    if len(header) == 1 and any(sep in first_line for sep in (";", "\t", "|")):
        sep = next(s for s in (";", "\t", "|") if s in first_line)
        raise InputError(str(path), f"the columns are separated by {sep!r}, not commas",
                         "save the file with comma separators", row=1)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(str(path), f"missing required column(s) {', '.join(missing)}",
                         "the header needs model, metric, value and train_flop or release_date",
                         row=1)
    if not ({"train_flop", "train_flop_log10", "train_flop_1e21", "release_date", "inference_budget"} & set(header)):
        raise InputError(str(path), "no compute or date column",
                         "add train_flop (raw FLOP) or release_date (YYYY-MM-DD)", row=1)
    dup = {h for h in header if header.count(h) > 1}
    if dup:
        raise InputError(str(path), f"column(s) {', '.join(sorted(dup))} appear twice", "keep one", row=1)
    return header


def _chunks(path: Path, records: Iterator[list[str]], header: list[str]) -> Iterator[pd.DataFrame]:
    """Data rows as frames of text cells (plus row_ref, the row's number in the file), CHUNK_ROWS at a time."""
    first = 2
    while rows := list(itertools.islice(records, CHUNK_ROWS)):
        refs = np.arange(first, first + len(rows))
        first += len(rows)
        odd = [i for i, row in enumerate(rows) if len(row) != len(header)]
        for i in odd:
            if any(cell.strip() for cell in rows[i]):
                raise InputError(str(path), f"{len(rows[i])} fields where the header has {len(header)}",
                                 "check separators and quoting on this line", row=int(refs[i]))
        if odd:  # blank lines
            keep = np.ones(len(rows), dtype=bool)
            keep[odd] = False
            rows, refs = [row for row, k in zip(rows, keep, strict=True) if k], refs[keep]
        if rows:
            yield pd.DataFrame(rows, columns=header).assign(row_ref=refs.astype(str))


def read_generic(path: Path) -> list[SourceData]:
    with open_data(path) as handle:
        head = handle.peek(65536).decode("utf-8-sig", errors="replace")
        if not head.strip():
            raise InputError(str(path), "the file is empty", "give a header row and data rows")
        records = _records(path, handle)
        header = _header(path, next(records), head.split("\n", 1)[0])
        chunks = _chunks(path, records, header)
        first = next(chunks, None)
        if first is None:
            raise InputError(str(path), "the file has a header but no data rows", "add data rows")
        second = next(chunks, None)
        if second is None:
            frame, rejected, evidence = _normalise(first, path)
            return _in_memory(path, _apply_units(frame, _decide_units(evidence, path)), rejected)
        return _staged(path, itertools.chain([first, second], chunks))


def _normalise(frame: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, list[dict], dict]:
    """The per-row work on one chunk of text cells: numbers, compute, dates, units (but those guessed per metric,
    see `_decide_units`), intervals, budgets, sources. Returns the usable rows, the rejected ones and the
    evidence for the units to guess."""
    frame = frame.replace({"": None})
    frame = frame[[c for c in frame.columns if c in KNOWN or c == "row_ref"]]
    rejected: list[dict] = []
    percent_cells: dict[str, pd.Series] = {}
    for column in NUMERIC:
        if column in frame.columns:
            frame[column], percent_cells[column] = _numbers(frame, column, path)
    if "value" in frame.columns and frame["value"].isna().any():
        i = int(np.flatnonzero(frame["value"].isna().to_numpy())[0])
        raise InputError(str(path), "value is empty", "give a number", row=frame["row_ref"].iloc[i], column="value")
    if "train_flop_log10" in frame.columns:
        frame["train_flop"] = frame.get("train_flop", pd.Series(np.nan, index=frame.index)).fillna(
            10 ** frame["train_flop_log10"])
    if "train_flop_1e21" in frame.columns:
        frame["train_flop"] = frame.get("train_flop", pd.Series(np.nan, index=frame.index)).fillna(
            frame["train_flop_1e21"] * 1e21)
    if "train_flop" not in frame.columns:
        frame["train_flop"] = np.nan
    flop = frame["train_flop"].to_numpy(dtype=float)
    huge = np.flatnonzero(np.isinf(flop))
    if len(huge):
        i = int(huge[0])
        column = next((c for c in ("train_flop", "train_flop_log10", "train_flop_1e21")
                       if c in frame.columns and np.isfinite(frame[c].iloc[i])), "train_flop")
        raise InputError(str(path), "training compute overflows to infinity",
                         "give raw FLOP as a finite number (e.g. 3.1e23)", row=frame["row_ref"].iloc[i], column=column)
    small = np.flatnonzero(~np.isnan(flop) & (flop > 0) & (flop < 1000))
    if len(small):
        i = int(small[0])
        raise InputError(str(path), f"train_flop {flop[i]:g} looks like log10 FLOP, not raw FLOP",
                         f"give raw FLOP (10**{flop[i]:g} = {10 ** flop[i]:.3g}) or name the column "
                         "train_flop_log10", row=frame["row_ref"].iloc[i], column="train_flop")
    bad = np.flatnonzero(~np.isnan(flop) & (flop <= 0))
    if len(bad):
        i = int(bad[0])
        raise InputError(str(path), f"training compute {flop[i]:g} is not positive",
                         "give raw FLOP > 0, or leave it empty", row=frame["row_ref"].iloc[i], column="train_flop")
    if "release_date" in frame.columns:
        dates = pd.to_datetime(frame["release_date"], errors="coerce", format="mixed")
        unparsed = frame["release_date"].notna() & dates.isna()
        if unparsed.any():
            i = int(np.flatnonzero(unparsed.to_numpy())[0])
            raise InputError(str(path), f"date {frame['release_date'].iloc[i]!r} does not parse",
                             "write dates as YYYY-MM-DD", row=frame["row_ref"].iloc[i], column="release_date")
        frame["release_date"] = dates
    else:
        frame["release_date"] = pd.NaT
    evidence = _normalise_units(frame, path, percent_cells)
    _check_intervals(frame, path)
    if "inference_budget" in frame.columns:
        budget = frame["inference_budget"].to_numpy(dtype=float)
        bad_budget = np.flatnonzero(~np.isnan(budget) & ~(budget > 0))
        if len(bad_budget):
            i = int(bad_budget[0])
            raise InputError(str(path), f"inference budget {budget[i]:g} is not positive",
                             "give the samples k (or inference FLOP) per task, at least 1",
                             row=frame["row_ref"].iloc[i], column="inference_budget")
        # one model at several budgets (pass@1, pass@10, ...): each budget is its own observation
        has = frame["inference_budget"].notna()
        frame.loc[has, "model"] = [f"{m} @ {b:g}" for m, b in zip(frame.loc[has, "model"], budget[has.to_numpy()],
                                                                  strict=True)]
        if "cluster" not in frame.columns:
            frame["cluster"] = None
        frame.loc[has, "cluster"] = frame.loc[has, "cluster"].fillna(frame.loc[has, "model"].str.rsplit(" @ ", n=1).str[0])
    else:
        frame["inference_budget"] = np.nan
    unusable = frame["train_flop"].isna() & frame["release_date"].isna() & frame["inference_budget"].isna()
    for ref in frame.loc[unusable, "row_ref"]:
        rejected.append({"row_ref": ref, "column_name": "train_flop", "value": "",
                         "reason": "no training compute, release date or inference budget: cannot be placed on an axis"})
    frame = frame[~unusable]
    meta = _sources_toml(path)
    if "source" not in frame.columns:
        frame["source"] = path.name.split(".")[0]
    frame["source"] = frame["source"].fillna(path.name.split(".")[0])
    if "source_version" not in frame.columns:
        frame["source_version"] = None
    frame["source_version"] = frame["source_version"].fillna(
        frame["source"].map(lambda src: meta.get(src, {}).get("version", "user")))
    return frame, rejected, evidence


def _in_memory(path: Path, frame: pd.DataFrame, rejected: list[dict]) -> list[SourceData]:
    meta = _sources_toml(path)
    out = []
    for (source, version), part in frame.groupby(["source", "source_version"], sort=True):
        info = meta.get(source, {})
        out.append(SourceData(
            source=str(source), source_version=str(version), kind=str(part["kind"].mode().iloc[0]),
            license=_first(part, "license") or info.get("license", "as stated by the user"),
            citation=_first(part, "citation") or info.get("citation", f"user file {path.name}"),
            observations=part.drop(columns=[c for c in ("source_version", "license", "_guess") if c in part.columns]),
        ))
    if out:
        out[0].rejected = rejected_frame(rejected)
    else:
        out.append(SourceData(source=path.name.split(".")[0], source_version="user", kind="benchmark",
                              license="as stated by the user", citation=f"user file {path.name}",
                              observations=frame.iloc[0:0], rejected=rejected_frame(rejected)))
    return out


# The scratch table: the canonical columns, plus what grouping and the unit guess need, and the row order.
_SQL_TYPES = {"string": "VARCHAR", "float64": "DOUBLE", "datetime64[ns]": "TIMESTAMP"}
_SCRATCH_COLUMNS = {**{name: _SQL_TYPES[dtype] for name, dtype, _ in OBSERVATION_SPEC},
                    "license": "VARCHAR", "_guess": "BOOLEAN", "_n": "BIGINT"}
_KEY = "source, source_version, model, metric"


def _staged(path: Path, chunks: Iterator[pd.DataFrame]) -> list[SourceData]:
    scratch = Scratch()
    columns = ", ".join(f'"{name}" {sql_type}' for name, sql_type in _SCRATCH_COLUMNS.items())
    scratch.con.execute(f"CREATE TABLE rows ({columns})")
    evidence: dict = {}
    warnings: list[str] = []
    n = 0
    for chunk in chunks:
        frame, rejected, found = _normalise(chunk, path)
        frame, text_warnings = clean_text(frame, str(path))  # before the duplicate check, as ingest does in memory
        warnings += text_warnings
        for metric, seen in found.items():  # the earliest row wins: chunks come in file order
            merged = evidence.setdefault(metric, seen)
            for flag in (True, False):
                if merged.get(flag) is None and seen.get(flag) is not None:
                    merged[flag] = seen[flag]
        keep = [c for c in _SCRATCH_COLUMNS if c not in ("license", "_guess", "_n")]
        staged = conform(frame)[keep].assign(license=frame["license"].astype("string") if "license" in frame else None,
                                             _guess=frame["_guess"].to_numpy(), _n=np.arange(n, n + len(frame)))
        n += len(frame)
        scratch.append("rows", staged)
        if rejected:
            scratch.append("rejected", rejected_frame(rejected))
    units = _decide_units(evidence, path)
    _duplicates(scratch, path)
    meta = _sources_toml(path)
    groups = scratch.con.execute(
        "SELECT source, source_version, arg_min(license, _n) FILTER (WHERE license IS NOT NULL), "
        "arg_min(citation, _n) FILTER (WHERE citation IS NOT NULL) FROM rows GROUP BY ALL ORDER BY ALL").fetchall()
    kinds = scratch.con.execute(
        "SELECT source, source_version, kind, count(*) FROM rows GROUP BY ALL ORDER BY ALL").fetchall()
    out = []
    for source, version, license_, citation in groups:
        counts = {kind: count for s, v, kind, count in kinds if (s, v) == (source, version)}
        info = meta.get(source, {})
        out.append(SourceData(
            source=str(source), source_version=str(version), kind=max(sorted(counts), key=counts.get),
            license=license_ or info.get("license", "as stated by the user"),
            citation=citation or info.get("citation", f"user file {path.name}"),
            observations=conform(pd.DataFrame()).drop(columns="source_version"),
            staged=Staged(scratch, len(out), _reader(scratch, source, version, units, with_rejected=not out))))
    if not out:
        out.append(SourceData(source=path.name.split(".")[0], source_version="user", kind="benchmark",
                              license="as stated by the user", citation=f"user file {path.name}",
                              observations=conform(pd.DataFrame()),
                              staged=Staged(scratch, 0, _reader(scratch, None, None, units, True))))
    out[0].notes = with_warnings(out[0].notes, warnings)
    return out


def _reader(scratch: Scratch, source: str | None, version: str | None, units: dict, with_rejected: bool):
    """The rows of one source version in file order, units guessed, in pieces (the rejected rows go with the
    first source version, as in memory)."""
    def pieces() -> Iterator[tuple[str, pd.DataFrame]]:
        for piece in scratch.pieces("SELECT * EXCLUDE (source_version, license, _n) FROM rows "
                                    "WHERE source = ? AND source_version = ? ORDER BY _n", [source, version], CHUNK_ROWS):
            yield "observations", _apply_units(piece, units).drop(columns="_guess")
        if with_rejected and scratch.con.execute("SELECT count(*) FROM duckdb_tables() "
                                                 "WHERE table_name = 'rejected'").fetchone()[0]:
            for piece in scratch.pieces("SELECT * FROM rejected", [], CHUNK_ROWS):
                yield "rejected", piece.astype("string")
    return pieces


def _duplicates(scratch: Scratch, path: Path) -> None:
    """One key (model, metric in a source version) with two values is an error naming the second row; exact
    repeats keep the first row. Done over every row of the file, as validate_observations does in memory."""
    con = scratch.con
    con.execute(f"CREATE TABLE repeated AS SELECT {_KEY}, count(DISTINCT value) AS n_values, min(_n) AS keep "
                f"FROM rows GROUP BY ALL HAVING count(*) > 1")
    clash = con.execute(f"SELECT {_KEY} FROM repeated WHERE n_values > 1 ORDER BY ALL LIMIT 1").fetchone()
    if clash:
        (first, _), (second, _) = con.execute(
            f"SELECT row_ref, _n FROM rows WHERE ({_KEY}) = (?, ?, ?, ?) ORDER BY _n LIMIT 2", list(clash)).fetchall()
        raise InputError(str(path), f"duplicate key (model {clash[2]!r}, metric {clash[3]!r}) with different values "
                         f"(first at row {first})", "keep one row per model and metric, or give them distinct metric names",
                         row=second, column="value")
    con.execute(f"DELETE FROM rows WHERE _n IN (SELECT r._n FROM rows r JOIN repeated d USING ({_KEY}) "
                f"WHERE r._n <> d.keep)")


def _first(part: pd.DataFrame, column: str) -> str | None:
    if column not in part.columns:
        return None
    values = part[column].dropna()
    return str(values.iloc[0]) if len(values) else None


PERCENT_OK = ("value", "value_lo", "value_hi", "floor", "ceiling")  # columns that may be written as '77%'


def _numbers(frame: pd.DataFrame, column: str, path: Path) -> tuple[pd.Series, pd.Series]:
    """The column as finite floats ('77%' -> 0.77 where a percent makes sense), and which cells were percents."""
    plain = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    if not (frame[column].notna() & ~np.isfinite(plain)).any():  # the usual column: plain, finite numbers
        return plain, pd.Series(False, index=frame.index)
    text = frame[column].astype("string").str.strip()
    percent = text.str.endswith("%", na=False)
    if column not in PERCENT_OK:
        percent = pd.Series(False, index=frame.index)
    stripped = text.where(~percent, text.str[:-1].str.strip())
    values = pd.to_numeric(stripped, errors="coerce").astype("float64")
    bad = text.notna() & values.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(str(path), f"{text.iloc[i]!r} is not a number", "give a plain number (e.g. 0.77 or 3.1e23)",
                         row=frame["row_ref"].iloc[i], column=column)
    infinite = np.isinf(values.to_numpy())
    if infinite.any():
        i = int(np.flatnonzero(infinite)[0])
        raise InputError(str(path), f"{text.iloc[i]!r} is not a finite number",
                         "give a finite number (e.g. 0.77 or 3.1e23); leave the cell empty if unknown",
                         row=frame["row_ref"].iloc[i], column=column)
    if percent.any():
        values = values.where(~percent.to_numpy(), values / 100.0)
        if "original_unit" not in frame.columns:
            frame["original_unit"] = None
        frame.loc[percent & frame["original_unit"].isna(), "original_unit"] = "percent string"
    return values, percent.astype(bool)


# kind -> the unit a row of that kind is in when the file gives no unit
KIND_UNIT = {"elo": "elo", "horizon": "minutes", "loss": "nats"}


def _normalise_units(frame: pd.DataFrame, path: Path, percent_cells: dict[str, pd.Series] | None = None) -> dict:
    percent_cells = percent_cells or {}
    if "unit" not in frame.columns:
        frame["unit"] = None
    if "original_unit" not in frame.columns:
        frame["original_unit"] = None
    if "kind" not in frame.columns:
        frame["kind"] = None
    no_cells = pd.Series(False, index=frame.index)
    pct = frame["unit"].astype("string").str.lower().isin(["percent", "%", "0-100"]).fillna(False).astype(bool)
    for column in PERCENT_OK:
        if column in frame.columns:
            scale = pct & ~percent_cells.get(column, no_cells)  # '77%' was already divided by 100
            frame.loc[scale, column] = frame.loc[scale, column] / 100.0
    frame.loc[pct, "original_unit"] = frame.loc[pct, "original_unit"].where(
        frame.loc[pct, "original_unit"] == "percent string", "percent 0-100")
    frame.loc[pct, "unit"] = "fraction"
    pct_value = percent_cells.get("value", no_cells)
    given = frame["unit"].notna()
    clash = pct_value & given & (frame["unit"].astype("string") != "fraction")
    if clash.any():
        i = int(np.flatnonzero(clash.to_numpy())[0])
        raise InputError(str(path), f"value written as a percent but unit is {frame['unit'].iloc[i]!r}",
                         "give the value as a plain number in that unit, or set unit to percent",
                         row=frame["row_ref"].iloc[i], column="value")
    # no unit given: a percent string is a fraction; kind elo/horizon/loss names its unit
    frame.loc[~given & pct_value, "unit"] = "fraction"
    by_kind = frame["kind"].astype("string").str.strip().str.lower().map(KIND_UNIT)
    fill = frame["unit"].isna() & by_kind.notna()
    frame.loc[fill, "unit"] = by_kind[fill]
    # otherwise guessed per metric, never per row (_decide_units, over every chunk): all values in 0..1 ->
    # fraction, all outside -> score. Either is a benchmark, so the kind is known already.
    frame["_guess"] = frame["unit"].isna().to_numpy()
    inside = frame["value"].between(0, 1) | (~given & pct_value)
    evidence: dict = {}
    for metric, rows in frame[frame["_guess"] | (~given & pct_value)].groupby("metric", sort=False, dropna=False):
        flags = inside[rows.index]
        first = rows.index[0]
        seen = {"first": (frame.at[first, "row_ref"], frame.at[first, "value"], bool(flags.iloc[0]))}
        for flag in (True, False):
            where = flags.index[flags.to_numpy() == flag]
            if len(where):
                seen[flag] = (frame.at[where[0], "row_ref"], frame.at[where[0], "value"])
        evidence[metric] = seen
    frame["kind"] = frame["kind"].fillna(frame["unit"].map(UNIT_KIND)).fillna("benchmark")
    return evidence


def _decide_units(evidence: dict, path: Path) -> dict:
    """metric -> the unit of its rows without one: fraction when every value lies in 0..1, score when none does,
    else an error naming the first row that breaks the pattern."""
    units = {}
    for metric, seen in evidence.items():
        ref, value, flag = seen["first"]
        odd = seen.get(not flag)
        if odd is not None:
            where = "within 0..1" if flag else "outside 0..1"
            raise InputError(str(path), f"metric {metric!r} has no unit and mixes values {where} "
                             f"(row {ref}: {value:g}) with {odd[1]:g}, so its unit cannot be guessed",
                             "add a unit column (fraction for 0..1, percent for 0-100, or score)",
                             row=odd[0], column="value")
        units[metric] = "fraction" if flag else "score"
    return units


def _apply_units(frame: pd.DataFrame, units: dict) -> pd.DataFrame:
    guess = frame["_guess"].to_numpy(dtype=bool)
    frame.loc[guess, "unit"] = frame.loc[guess, "metric"].map(units)
    frame["original_unit"] = frame["original_unit"].fillna(frame["unit"])
    if "ceiling" not in frame.columns:
        frame["ceiling"] = np.nan
    fraction = (frame["unit"] == "fraction").fillna(False).to_numpy(dtype=bool)
    frame.loc[fraction, "ceiling"] = frame.loc[fraction, "ceiling"].fillna(1.0)
    return frame


def _check_intervals(frame: pd.DataFrame, path: Path) -> None:
    """A published interval must contain its value (value_lo <= value <= value_hi)."""
    value = frame["value"].to_numpy(dtype=float)
    for column, side in (("value_lo", "above"), ("value_hi", "below")):
        if column not in frame.columns:
            continue
        bound = frame[column].to_numpy(dtype=float)
        outside = bound > value if side == "above" else bound < value
        bad = np.flatnonzero(~np.isnan(bound) & outside)
        if len(bad):
            i = int(bad[0])
            raise InputError(str(path), f"value {value[i]:g} lies outside its interval ({column} {bound[i]:g} is "
                             f"{side} it)", "give value_lo <= value <= value_hi (same unit as value), "
                             "or leave the bounds empty", row=frame.at[i, "row_ref"], column=column)


def _sources_toml(path: Path) -> dict:
    toml_path = path.parent / "sources.toml"
    if not toml_path.exists():
        return {}
    try:
        with open(toml_path, "rb") as handle:
            return tomllib.load(handle).get("source", {})
    except tomllib.TOMLDecodeError as exc:
        raise InputError(str(toml_path), f"not valid TOML ({exc})", "fix the syntax") from None


ADAPTER = GenericCsvAdapter()
