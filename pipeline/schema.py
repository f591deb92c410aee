"""The canonical observation: columns, units, kinds, and the error type users see.

Every adapter in `pipeline.sources` turns a public format into a DataFrame with exactly
`OBSERVATION_COLUMNS`; `validate_observations` is the last check before anything is stored.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd

from pipeline.errors import InputError, ScalegapError  # noqa: F401  (their home; imported from here too)

KINDS = ("benchmark", "elo", "horizon", "loss")
UNITS = ("fraction", "elo", "minutes", "nats", "index", "score")

# (column, pandas dtype, meaning)
OBSERVATION_SPEC: tuple[tuple[str, str, str], ...] = (
    ("source", "string", "source key, e.g. obsscaling_ruan2024"),
    ("source_version", "string", "version label of the figure (file date or snapshot date)"),
    ("source_sha256", "string", "sha256 of the file the row was read from"),
    ("model", "string", "model as the source names it"),
    ("organization", "string", "developer, where given"),
    ("release_date", "datetime64[ns]", "date the model was published"),
    ("train_flop", "float64", "training compute in raw FLOP (not log10)"),
    ("train_flop_note", "string", "how the compute was obtained (Epoch confidence, join, ...)"),
    ("params", "float64", "parameter count (raw), where given"),
    ("inference_budget", "float64", "inference budget per task (samples k, or inference FLOP) for inference-scaling "
                                    "curves such as pass@k; null otherwise"),
    ("metric", "string", "metric name, e.g. mmlu, eci, arena_elo, metr_p50_minutes, loss"),
    ("kind", "string", "benchmark | elo | horizon | loss"),
    ("value", "float64", "the figure, in `unit`"),
    ("value_lo", "float64", "lower end of the published interval"),
    ("value_hi", "float64", "upper end of the published interval"),
    ("unit", "string", "fraction | elo | minutes | nats | index | score"),
    ("original_unit", "string", "unit as published (percent string, 0-100, 1e21 FLOP, ...)"),
    ("floor", "float64", "known lower bound (chance level), else null"),
    ("ceiling", "float64", "known upper bound (1.0 for fractions), else null"),
    ("cluster", "string", "group of non-independent rows (model family / organisation / run)"),
    ("row_ref", "string", "where in the source file the row came from (line number or key)"),
    ("citation", "string", "short citation of the published figure"),
    ("train_flop_lo", "float64", "lower end of the training compute's stated 90% interval (raw FLOP), where given"),
    ("train_flop_hi", "float64", "upper end of the training compute's stated 90% interval (raw FLOP), where given"),
)
OBSERVATION_COLUMNS = tuple(name for name, _, _ in OBSERVATION_SPEC)
OBSERVATION_KEY = ("source", "source_version", "model", "metric")
REJECTED_COLUMNS = ("source", "source_version", "row_ref", "column_name", "value", "reason")

# Known bounds per unit; a fraction above 1 or below 0 is an input error, not a measurement.
UNIT_RANGE = {"fraction": (0.0, 1.0), "minutes": (0.0, np.inf), "nats": (0.0, np.inf)}


def empty_observations() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype, _ in OBSERVATION_SPEC})


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Add missing canonical columns (as nulls), order them, and coerce dtypes."""
    out = frame.copy()
    for name, dtype, _ in OBSERVATION_SPEC:
        if name not in out.columns:
            out[name] = pd.Series(pd.NA if dtype == "string" else np.nan, index=out.index)
        if dtype == "string":
            out[name] = out[name].astype("string")
        elif dtype.startswith("datetime"):
            out[name] = pd.to_datetime(out[name], errors="raise").astype("datetime64[ns]")
        else:
            out[name] = pd.to_numeric(out[name], errors="raise").astype("float64")
    return out[list(OBSERVATION_COLUMNS)].reset_index(drop=True)


def validate_observations(frame: pd.DataFrame, path: str) -> pd.DataFrame:
    """Check the invariants every stored observation must satisfy; raise InputError naming the row."""
    frame = conform(frame)

    def fail(i: int, column: str, problem: str, fix: str) -> None:
        raise InputError(path, problem, fix, row=frame.at[i, "row_ref"], column=column)

    for column in ("source", "source_version", "model", "metric", "kind", "unit"):
        missing = frame[column].isna() | (frame[column].astype("string").str.strip() == "")
        if missing.any():
            fail(int(np.flatnonzero(missing)[0]), column, "value is empty", f"give every row a {column}")
    bad_kind = ~frame["kind"].isin(KINDS)
    if bad_kind.any():
        i = int(np.flatnonzero(bad_kind)[0])
        fail(i, "kind", f"unknown kind {frame.at[i, 'kind']!r}", f"use one of {', '.join(KINDS)}")
    bad_unit = ~frame["unit"].isin(UNITS)
    if bad_unit.any():
        i = int(np.flatnonzero(bad_unit)[0])
        fail(i, "unit", f"unknown unit {frame.at[i, 'unit']!r}", f"use one of {', '.join(UNITS)}")
    finite = np.isfinite(frame["value"].to_numpy(dtype=float))
    if not finite.all():
        fail(int(np.flatnonzero(~finite)[0]), "value", "value is missing or not a finite number",
             "give a numeric value")
    flop = frame["train_flop"].to_numpy(dtype=float)
    bad_flop = ~np.isnan(flop) & ~(flop > 0)
    if bad_flop.any():
        fail(int(np.flatnonzero(bad_flop)[0]), "train_flop", "training compute must be positive",
             "give raw FLOP (e.g. 3.1e23), not log10 and not zero")
    budget = frame["inference_budget"].to_numpy(dtype=float)
    bad_budget = ~np.isnan(budget) & ~(budget > 0)
    if bad_budget.any():
        fail(int(np.flatnonzero(bad_budget)[0]), "inference_budget", "inference budget must be positive",
             "give the number of samples k (or inference FLOP) per task, at least 1")
    for unit, (lo, hi) in UNIT_RANGE.items():
        rows = frame["unit"] == unit
        v = frame["value"].to_numpy(dtype=float)
        out_of_range = rows.to_numpy() & ((v < lo) | (v > hi))
        if out_of_range.any():
            i = int(np.flatnonzero(out_of_range)[0])
            fail(i, "value", f"{v[i]} is outside the {unit} range [{lo}, {hi}]",
                 "scores are fractions 0..1 (divide percentages by 100)" if unit == "fraction"
                 else f"give a value within [{lo}, {hi}]")
    dup = frame.duplicated(list(OBSERVATION_KEY), keep=False)
    if dup.any():
        group = frame[dup].groupby(list(OBSERVATION_KEY), dropna=False)["value"].nunique()
        conflicting = group[group > 1]
        if len(conflicting):
            key = conflicting.index[0]
            rows = frame[(frame[list(OBSERVATION_KEY)] == pd.Series(key, index=list(OBSERVATION_KEY))).all(axis=1)]
            fail(int(rows.index[1]), "value",
                 f"duplicate key (model {key[2]!r}, metric {key[3]!r}) with different values "
                 f"(first at row {rows.iloc[0]['row_ref']})",
                 "keep one row per model and metric, or give them distinct metric names")
        frame = frame.drop_duplicates(list(OBSERVATION_KEY)).reset_index(drop=True)
    return frame


def decimal_year(dates):
    """Dates as decimal years (2023-03-14 -> 2023.197): the date axis of every fit and projection. A Series or
    array gives an array, one date a float."""
    if isinstance(dates, pd.Series | pd.Index | np.ndarray | list):
        stamps = pd.to_datetime(pd.Series(dates))
        return (stamps.dt.year + (stamps.dt.day_of_year - 1) / 365.25).to_numpy(dtype=float)
    stamp = pd.Timestamp(dates)
    return stamp.year + (stamp.day_of_year - 1) / 365.25


# ------------------------------------------------------------------ text from user files is text
MAX_NAME_CHARS = 300       # names: model, metric, source, ... (drawn on plots and in tables); Epoch's longest is 112
MAX_TEXT_CHARS = 10_000    # any other stored text: organisations (Epoch lists up to 759 characters), notes
NAME_COLUMNS = frozenset({"model", "metric", "source", "source_version", "cluster", "unit", "kind", "alias",
                          "task_id", "task_family", "run_key", "column_name"})
# C0 and C1 controls but tab and line breaks (ESC opens ANSI/OSC terminal codes; NUL ends C strings), and DEL
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")  # can reorder what a reader sees
# Cyrillic and Greek letters drawn like Latin ones (a small part of Unicode's confusables list)
_SKELETON = str.maketrans("аеорсухіјѕԁԛԝмкнвтАВЕКМНОРСТХУІЈЅαοριυνκτχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
                          "aeopcyxijsdqwmkhbtABEKMHOPCTXYIJSaopiuvktxABEZHIKMNOPTYX")


def _where(frame: pd.DataFrame, index) -> str:
    """A row label safe to print anywhere (row refs of some formats carry names from the file)."""
    ref = frame.at[index, "row_ref"] if "row_ref" in frame.columns else index
    return re.sub(r"[^A-Za-z0-9_.:@ -]", "?", str(ref))[:60]


def clean_text(frame: pd.DataFrame, path: str) -> tuple[pd.DataFrame, list[str]]:
    """Text cells as plain text: over-long ones refused (InputError naming row and column); control characters
    (NUL, terminal escape codes) and bidirectional overrides stripped; look-alike names flagged. Returns the frame
    and the warnings, which the ingest stage keeps in the notes of the source version (`sources.notes`, printed
    by `scalegap ingest`)."""
    notes: list[str] = []
    out = frame
    for column in frame.columns:
        series = frame[column]
        if not (series.dtype == object or pd.api.types.is_string_dtype(series)):
            continue
        present = series.dropna()
        values = [v for v in present.tolist() if isinstance(v, str)]
        if not values:
            continue
        is_name = column in NAME_COLUMNS
        limit = MAX_NAME_CHARS if is_name else MAX_TEXT_CHARS
        if max(map(len, values)) > limit:
            index = next(i for i, v in present.items() if isinstance(v, str) and len(v) > limit)
            raise InputError(path, f"a text of {len(present[index]):,} characters (the limit is {limit:,} "
                             f"for {'a name' if is_name else 'any text'})",
                             "shorten it: names of models, metrics and sources are short labels",
                             row=frame.at[index, "row_ref"] if "row_ref" in frame.columns else None, column=column)
        joined = "".join(values)  # one scan of the column finds the rare cell worth a look
        for pattern, what in ((_CONTROL, "control characters (NUL, terminal escape codes)"),
                              (_BIDI, "bidirectional override characters (they reorder what a reader sees)")):
            if not pattern.search(joined):
                continue
            hit = present.map(lambda v, p=pattern: isinstance(v, str) and p.search(v) is not None).astype(bool)
            if out is frame:
                out = frame.copy()
            out.loc[hit[hit].index, column] = present[hit].map(lambda v, p=pattern: p.sub("", v))
            notes.append(f"stripped {what} from {int(hit.sum())} value(s) of column '{column}', "
                         f"first at row {_where(frame, hit.idxmax())}")
        if is_name and not joined.isascii():
            notes += _lookalikes(out, column)
    return out, notes


def _lookalikes(frame: pd.DataFrame, column: str) -> list[str]:
    """Names that mix Cyrillic into Latin ("ммlu"), or read like another name of the column but are spelt with
    other letters ("mmlu" in Greek omicrons and Latin). Latin with Greek alone is common (PanGu-α) and not flagged."""
    notes = []
    names = frame[column].dropna()
    names = names[~names.duplicated()]
    first: dict[str, object] = {}
    for index, name in names.items():
        if not isinstance(name, str):
            continue
        other = first.setdefault(name.translate(_SKELETON).casefold(), index)
        if name.isascii() and (other == index or frame.at[other, column].isascii()):
            continue
        looked_at = index if not name.isascii() else other
        letters = {unicodedata.name(ch, "").split(" ")[0] for ch in frame.at[looked_at, column] if ch.isalpha()}
        odd = sorted({f"U+{ord(ch):04X} {unicodedata.name(ch, '?')}" for ch in frame.at[looked_at, column]
                      if ch.isalpha() and not ch.isascii()})[:3]
        if other != index:
            notes.append(f"row {_where(frame, looked_at)}, column '{column}': a name that reads like the one at row "
                         f"{_where(frame, index if looked_at == other else other)} but is spelt with other letters "
                         f"({', '.join(odd)}), a look-alike?")
        elif {"LATIN", "CYRILLIC"} <= letters:
            notes.append(f"row {_where(frame, index)}, column '{column}': a name mixing Cyrillic and Latin letters "
                         f"({', '.join(odd)}), a look-alike?")
    return notes


MAX_WARNINGS = 10  # text warnings kept in the notes of one source version; the rest are counted


def with_warnings(notes: str, warnings: list[str]) -> str:
    """Notes of a source version with the text warnings of clean_text appended."""
    kept = list(dict.fromkeys(warnings))
    kept = kept[:MAX_WARNINGS] + ([f"{len(kept) - MAX_WARNINGS} more text warnings"] if len(kept) > MAX_WARNINGS else [])
    return "; ".join(filter(None, [notes, *kept]))
