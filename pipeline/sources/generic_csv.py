"""A user's own results, and the bundled snapshot: a CSV with `model, metric, value` and
`train_flop` or `release_date` (or `inference_budget`, samples k per task, for inference scaling such as
pass@k; a model at several budgets becomes one observation per budget). Optional: value_lo, value_hi,
unit, kind, floor, ceiling, organization, params, source, source_version, citation, license,
train_flop_note, cluster, train_flop_lo / train_flop_hi (a 90% interval of the compute, raw FLOP).

Rows are grouped by `source` (default: the file's stem). Structural problems raise InputError naming
file, line and column; rows that are merely unusable (neither compute nor date) are rejected.
"""

from __future__ import annotations

import csv
import io
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.schema import InputError
from pipeline.sources import SourceData, rejected_frame

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


class GenericCsvAdapter:
    name = "generic_csv"

    def matches(self, path: Path) -> bool:
        if path.suffix.lower() not in {".csv", ".gz"} or not path.name.lower().endswith((".csv", ".csv.gz")):
            return False
        try:
            header = _read_text(path).splitlines()[0].lstrip("\ufeff").lower()
        except (InputError, IndexError, OSError):
            return False
        return all(col in header for col in REQUIRED)

    def read(self, path: Path) -> list[SourceData]:
        return read_generic(path)


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        import gzip
        import zlib

        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(str(path), f"the file is not valid gzip data ({exc})",
                             "give a gzip-compressed CSV, or drop the .gz ending if the file is plain text") from None
    if b"\x00" in raw[:65536]:
        raise InputError(str(path), "this is a binary file, not a CSV text file",
                         "give a UTF-8 CSV file with a header row")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(str(path), f"the file is not UTF-8 text (bad byte at offset {exc.start})",
                         "save the file as UTF-8", row=line) from None


def read_generic(path: Path) -> list[SourceData]:
    text = _read_text(path)
    if not text.strip():
        raise InputError(str(path), "the file is empty", "give a header row and data rows")
    header_line = text.splitlines()[0]
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise InputError(str(path), f"not a valid CSV ({exc})", "check quoting of fields") from None
    header = [h.strip().lower() for h in rows[0]]
    if len(header) == 1 and any(sep in header_line for sep in (";", "\t", "|")):
        sep = next(s for s in (";", "\t", "|") if s in header_line)
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
    body = rows[1:]
    if not body:
        raise InputError(str(path), "the file has a header but no data rows", "add data rows")
    for i, row in enumerate(body):
        if len(row) != len(header) and any(cell.strip() for cell in row):
            raise InputError(str(path), f"{len(row)} fields where the header has {len(header)}",
                             "check separators and quoting on this line", row=i + 2)
    body = [r for r in body if len(r) == len(header)]
    frame = pd.DataFrame(body, columns=header).replace({"": None})
    frame["row_ref"] = [str(i + 2) for i in range(len(body))]
    frame = frame[[c for c in frame.columns if c in KNOWN or c == "row_ref"]]
    rejected: list[dict] = []
    percent_cells: dict[str, pd.Series] = {}
    for column in NUMERIC:
        if column in frame.columns:
            frame[column], percent_cells[column] = _numbers(frame, column, path)
    if "value" in frame.columns and frame["value"].isna().any():
        i = int(np.flatnonzero(frame["value"].isna().to_numpy())[0])
        raise InputError(str(path), "value is empty", "give a number", row=frame.at[i, "row_ref"], column="value")
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
                         "give raw FLOP as a finite number (e.g. 3.1e23)", row=frame.at[i, "row_ref"], column=column)
    small = np.flatnonzero(~np.isnan(flop) & (flop > 0) & (flop < 1000))
    if len(small):
        i = int(small[0])
        raise InputError(str(path), f"train_flop {flop[i]:g} looks like log10 FLOP, not raw FLOP",
                         f"give raw FLOP (10**{flop[i]:g} = {10 ** flop[i]:.3g}) or name the column "
                         "train_flop_log10", row=frame.at[i, "row_ref"], column="train_flop")
    bad = np.flatnonzero(~np.isnan(flop) & (flop <= 0))
    if len(bad):
        i = int(bad[0])
        raise InputError(str(path), f"training compute {flop[i]:g} is not positive",
                         "give raw FLOP > 0, or leave it empty", row=frame.at[i, "row_ref"], column="train_flop")
    if "release_date" in frame.columns:
        dates = pd.to_datetime(frame["release_date"], errors="coerce", format="mixed")
        unparsed = frame["release_date"].notna() & dates.isna()
        if unparsed.any():
            i = int(np.flatnonzero(unparsed.to_numpy())[0])
            raise InputError(str(path), f"date {frame.at[i, 'release_date']!r} does not parse",
                             "write dates as YYYY-MM-DD", row=frame.at[i, "row_ref"], column="release_date")
        frame["release_date"] = dates
    else:
        frame["release_date"] = pd.NaT
    _normalise_units(frame, path, percent_cells)
    _check_intervals(frame, path)
    if "inference_budget" in frame.columns:
        budget = frame["inference_budget"].to_numpy(dtype=float)
        bad_budget = np.flatnonzero(~np.isnan(budget) & ~(budget > 0))
        if len(bad_budget):
            i = int(bad_budget[0])
            raise InputError(str(path), f"inference budget {budget[i]:g} is not positive",
                             "give the samples k (or inference FLOP) per task, at least 1",
                             row=frame.at[i, "row_ref"], column="inference_budget")
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
    out = []
    for (source, version), part in frame.groupby(["source", "source_version"], sort=True):
        info = meta.get(source, {})
        out.append(SourceData(
            source=str(source), source_version=str(version), kind=str(part["kind"].mode().iloc[0]),
            license=_first(part, "license") or info.get("license", "as stated by the user"),
            citation=_first(part, "citation") or info.get("citation", f"user file {path.name}"),
            observations=part.drop(columns=[c for c in ("source_version", "license") if c in part.columns]),
        ))
    if out:
        out[0].rejected = rejected_frame(rejected)
    else:
        out.append(SourceData(source=path.name.split(".")[0], source_version="user", kind="benchmark",
                              license="as stated by the user", citation=f"user file {path.name}",
                              observations=frame.iloc[0:0], rejected=rejected_frame(rejected)))
    return out


def _first(part: pd.DataFrame, column: str) -> str | None:
    if column not in part.columns:
        return None
    values = part[column].dropna()
    return str(values.iloc[0]) if len(values) else None


PERCENT_OK = ("value", "value_lo", "value_hi", "floor", "ceiling")  # columns that may be written as '77%'


def _numbers(frame: pd.DataFrame, column: str, path: Path) -> tuple[pd.Series, pd.Series]:
    """The column as finite floats ('77%' -> 0.77 where a percent makes sense), and which cells were percents."""
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


def _normalise_units(frame: pd.DataFrame, path: Path, percent_cells: dict[str, pd.Series] | None = None) -> None:
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
    # otherwise guess per metric, never per row: all values in 0..1 -> fraction, all outside -> score
    guess = frame["unit"].isna()
    inside = frame["value"].between(0, 1) | (~given & pct_value)
    for _, rows in frame[guess | (~given & pct_value)].groupby("metric", sort=False, dropna=False):
        flags = inside[rows.index]
        if flags.nunique() > 1:
            first = rows.index[0]
            odd = flags.index[int(np.flatnonzero((flags != flags.iloc[0]).to_numpy())[0])]
            where = "within 0..1" if flags.iloc[0] else "outside 0..1"
            raise InputError(str(path), f"metric {rows.at[first, 'metric']!r} has no unit and mixes values {where} "
                             f"(row {frame.at[first, 'row_ref']}: {frame.at[first, 'value']:g}) with "
                             f"{frame.at[odd, 'value']:g}, so its unit cannot be guessed",
                             "add a unit column (fraction for 0..1, percent for 0-100, or score)",
                             row=frame.at[odd, "row_ref"], column="value")
        unguessed = rows.index[guess[rows.index].to_numpy()]
        frame.loc[unguessed, "unit"] = "fraction" if flags.all() else "score"
    frame["original_unit"] = frame["original_unit"].fillna(frame["unit"])
    frame["kind"] = frame["kind"].fillna(frame["unit"].map(UNIT_KIND)).fillna("benchmark")
    if "ceiling" not in frame.columns:
        frame["ceiling"] = np.nan
    frame.loc[frame["unit"] == "fraction", "ceiling"] = frame.loc[frame["unit"] == "fraction", "ceiling"].fillna(1.0)


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
