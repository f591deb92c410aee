"""METR time horizons (Kwa et al. 2025): published benchmark_results yaml, release dates, per-run data.

Per-run data comes as METR's JSONL (`all_runs*.jsonl`) or as the compact CSV the bundled snapshot
ships (`metr_runs*.csv[.gz]`). Format of that CSV (for `pipeline/snapshot.py`): a header row whose
column names are the `metr_runs` table's (RUN_COLUMNS below; `source_version` optional, e.g.
2025-02-27, else the version is "bundled"); `time_limit_s` in seconds, `human_minutes` in minutes.
Per-run data goes only to the `metr_runs` table, never to observations.

Versions: each yaml keeps its own `source_version` (METR-Horizon-v1, METR-Horizon-v1.1-<file date>),
because METR re-estimates published numbers between releases and v1.0/v1.1 use different task suites.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pipeline.schema import InputError
from pipeline.sources import MAX_COLUMNS, MAX_YAML_ALIASES, SourceData, json_depth_error, open_data

CITATION = "METR (2025), Measuring AI Ability to Complete Long Tasks, arXiv 2503.14499"
LICENSE = "public, cite METR (no explicit data licence)"
RUN_COLUMNS = ("run_key", "task_id", "task_family", "alias", "model", "score", "score_binarized",
               "human_minutes", "human_source", "time_limit_s", "equal_task_weight", "invsqrt_task_weight",
               "fatal_error_from")
REQUIRED_RUN_KEYS = ("run_id", "task_id", "alias", "score_binarized", "human_minutes")


class _TooManyAliases(yaml.YAMLError):
    pass


class _Loader(yaml.SafeLoader):
    """Safe loader that keeps a date-like scalar which is not a real date (2024-02-30) as its text, so the
    reader can name the key instead of yaml failing with a bare ValueError; and that refuses more than
    MAX_YAML_ALIASES aliases: a few hundred bytes of nested aliases ("billion laughs") expand to gigabytes."""

    aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise _TooManyAliases(self.peek_event().start_mark.line + 1)
        return super().compose_node(parent, index)


def _timestamp_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError):
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)


class _Yaml:
    """A parsed yaml file that can say on which line a key path sits (for error messages)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            loader = _Loader(path.read_text(encoding="utf-8"))
            try:  # composed once: the node tree gives the data and the line of each key
                self.root = loader.get_single_node()
                self.data = loader.construct_document(self.root) if self.root is not None else None
            finally:
                loader.dispose()
        except _TooManyAliases as exc:
            raise InputError(str(path), f"more than {MAX_YAML_ALIASES} YAML aliases (*name)",
                             "write the values out instead of repeating anchors", row=exc.args[0]) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise InputError(str(path), f"not valid YAML ({getattr(exc, 'problem', exc)})", "fix the YAML syntax",
                             row=mark.line + 1 if mark else None) from None
        except UnicodeDecodeError:
            raise InputError(str(path), "not UTF-8 text", "give the YAML file as published") from None
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # a scalar yaml cannot build
            raise InputError(str(path), f"not valid YAML ({exc})", "fix the YAML syntax") from None
        if not isinstance(self.data, dict):
            raise InputError(str(path), "expected a YAML mapping at the top level", "give METR's yaml file")

    def line(self, *keys: str) -> int | None:
        node, line = self.root, None
        for key in keys:
            if not isinstance(node, yaml.MappingNode):
                break
            for k, v in node.value:
                if k.value == str(key):
                    node, line = v, k.start_mark.line + 1
                    break
            else:
                break
        return line

    def fail(self, keys: tuple[str, ...], problem: str, fix: str) -> InputError:
        return InputError(str(self.path), problem, fix, row=self.line(*keys), column=".".join(keys))


def _number(doc: _Yaml, keys: tuple[str, ...], value: object, positive: bool = False) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise doc.fail(keys, f"{value!r} is not a number", "give a number")
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        number = float("inf")
    if not np.isfinite(number):
        raise doc.fail(keys, f"{value!r} is not a finite number", "give a finite number")
    if positive and not number > 0:
        raise doc.fail(keys, f"{value} is not positive", "give the horizon in minutes of human task time, > 0")
    return number


def _date(doc: _Yaml, keys: tuple[str, ...], value: object) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    try:
        stamp = pd.to_datetime(str(value), errors="coerce")
    except (ValueError, OverflowError):
        stamp = pd.NaT
    if not isinstance(stamp, pd.Timestamp) or pd.isna(stamp):
        raise doc.fail(keys, f"date {str(value)!r} does not parse", "write a real calendar date as YYYY-MM-DD")
    if stamp.tzinfo is not None:  # 2024-01-02T03:04:05Z: store the UTC time, naive like every other date
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    if not pd.Timestamp("1900-01-01") <= stamp <= pd.Timestamp("2200-12-31"):
        raise doc.fail(keys, f"date {str(value)!r} is not a plausible release date",
                       "write the model's release date as YYYY-MM-DD")
    return stamp.as_unit("ns")


def _version_label(path: Path, data: dict) -> str:
    date = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
    name = str(data.get("benchmark_name", "METR-Horizon"))
    return name + (f"-{date.group(1)}" if date else "")


def _sibling_release_dates(path: Path) -> dict[str, pd.Timestamp]:
    """Newest release_dates*.yaml next to a results file: fills a model's missing release_date."""
    dates: dict[str, pd.Timestamp] = {}
    for sibling in sorted(path.parent.glob("release_dates*.y*ml")):
        try:
            for alias, frame_date in RELEASE_DATES.read_dates(sibling).items():
                dates[alias] = frame_date
        except InputError:
            continue
    return dates


class MetrResultsAdapter:
    name = "metr_benchmark_results"

    def matches(self, path: Path) -> bool:
        return path.suffix in {".yaml", ".yml"} and path.name.startswith("benchmark_results")

    def read(self, path: Path) -> list[SourceData]:
        doc = _Yaml(path)
        results = doc.data.get("results")
        if not isinstance(results, dict) or not results:
            raise doc.fail(("results",), "no 'results' mapping", "give METR's benchmark_results yaml")
        fallback_dates = None
        rows = []
        for key, entry in results.items():
            base = ("results", str(key))
            if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict):
                raise doc.fail(base + ("metrics",), f"model {key!r} has no metrics mapping",
                               "give metrics.p50_horizon_length and metrics.p80_horizon_length")
            metrics = entry["metrics"]
            release = _date(doc, base + ("release_date",), entry.get("release_date"))
            if release is None:
                fallback_dates = _sibling_release_dates(path) if fallback_dates is None else fallback_dates
                release = fallback_dates.get(str(key))
            for metric, field in (("metr_p50_minutes", "p50_horizon_length"), ("metr_p80_minutes", "p80_horizon_length")):
                keys = base + ("metrics", field)
                m = metrics.get(field)
                if not isinstance(m, dict) or "estimate" not in m:
                    raise doc.fail(keys, f"model {key!r} has no {field}.estimate", "give estimate, ci_low, ci_high")
                value = _number(doc, keys + ("estimate",), m["estimate"], positive=True)
                if value is None:
                    raise doc.fail(keys + ("estimate",), f"model {key!r} has an empty {field}.estimate",
                                   "give the horizon in minutes of human task time, > 0")
                lo = _number(doc, keys + ("ci_low",), m.get("ci_low"))
                hi = _number(doc, keys + ("ci_high",), m.get("ci_high"))
                if (lo is not None and lo > value) or (hi is not None and hi < value):
                    raise doc.fail(keys, f"estimate {value} lies outside its interval [{lo}, {hi}]",
                                   "give ci_low <= estimate <= ci_high")
                rows.append({"model": key, "release_date": release, "metric": metric, "kind": "horizon",
                             "value": value, "value_lo": lo, "value_hi": hi, "unit": "minutes",
                             "original_unit": "minutes (bootstrap 95% CI)", "floor": 0.0,
                             "row_ref": f"results.{key}", "citation": CITATION})
            average = metrics.get("average_score")
            if average is not None and not isinstance(average, dict):
                raise doc.fail(base + ("metrics", "average_score"), f"average_score of {key!r} is not a mapping",
                               "give average_score: {estimate: <fraction 0..1>} or leave it out")
            avg = (average or {}).get("estimate")
            if avg is not None:
                value = _number(doc, base + ("metrics", "average_score", "estimate"), avg)
                rows.append({"model": key, "release_date": release, "metric": "metr_average_score",
                             "kind": "benchmark", "value": value, "unit": "fraction", "original_unit": "fraction",
                             "floor": 0.0, "ceiling": 1.0, "row_ref": f"results.{key}", "citation": CITATION})
        obs = pd.DataFrame(rows)
        obs["release_date"] = pd.to_datetime(obs["release_date"])
        notes = f"{len(results)} models"
        doubling = doc.data.get("doubling_time_in_days")  # only for the notes: ignored unless well-formed
        recent = doubling.get("from_2023_on") if isinstance(doubling, dict) else None
        if isinstance(recent, dict) and isinstance(recent.get("point_estimate"), int | float):
            ci = f" (95% CI {recent['ci_low']:.1f}-{recent['ci_high']:.1f})" \
                if isinstance(recent.get("ci_low"), int | float) and isinstance(recent.get("ci_high"), int | float) else ""
            notes += f"; published doubling time from 2023 on: {recent['point_estimate']:.1f} days{ci}"
        return [SourceData("metr_time_horizon", _version_label(path, doc.data), "horizon", LICENSE, CITATION, obs,
                           notes=notes)]


class MetrReleaseDatesAdapter:
    name = "metr_release_dates"

    def matches(self, path: Path) -> bool:
        return path.suffix in {".yaml", ".yml"} and path.name.startswith("release_dates")

    def read_dates(self, path: Path) -> dict[str, pd.Timestamp]:
        doc = _Yaml(path)
        dates = doc.data.get("date")
        if not isinstance(dates, dict) or not dates:
            raise doc.fail(("date",), "no 'date' mapping", "give METR's release_dates.yaml (date: {alias: YYYY-MM-DD})")
        out = {}
        for alias, value in dates.items():
            stamp = _date(doc, ("date", str(alias)), value)
            if stamp is None:
                raise doc.fail(("date", str(alias)), f"release date of {alias!r} is empty", "write YYYY-MM-DD")
            out[str(alias)] = stamp
        return out

    def read(self, path: Path) -> list[SourceData]:
        dates = self.read_dates(path)
        frame = pd.DataFrame({"alias": list(dates), "release_date": pd.to_datetime(list(dates.values()))})
        label = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
        return [SourceData("metr_release_dates", label.group(1) if label else "undated", "metadata", LICENSE, CITATION,
                           pd.DataFrame(), extra={"metr_release_dates": frame}, notes=f"{len(frame)} aliases")]


def _read_jsonl(path: Path) -> pd.DataFrame:
    content = path.read_bytes()
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text (bad byte at offset {exc.start})",
                         "give the JSONL file as published (UTF-8)",
                         row=content[: exc.start].count(b"\n") + 1) from None
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if error := json_depth_error(line, path, row=number):
            raise error
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(str(path), f"not valid JSON ({exc.msg})", "each line must be one JSON object",
                             row=number) from None
        if not isinstance(record, dict):
            raise InputError(str(path), "line is not a JSON object", "one object per line", row=number)
        if len(record) > MAX_COLUMNS:
            raise InputError(str(path), f"{len(record)} fields (the limit is {MAX_COLUMNS})",
                             "give METR's run fields, one object per line", row=number)
        for key in REQUIRED_RUN_KEYS:
            if key not in record:
                raise InputError(str(path), f"missing key {key!r}", "give METR's run fields", row=number, column=key)
        for key in (*RUN_COLUMNS, "run_id", "time_limit"):
            if isinstance(record.get(key), list | dict):
                raise InputError(str(path), f"{key} is a JSON {type(record[key]).__name__}, not a single value",
                                 "give one string or number per field, as in METR's all_runs.jsonl", row=number,
                                 column=key)
        record["_line"] = number
        records.append(record)
    if not records:
        raise InputError(str(path), "no runs in the file", "give METR's all_runs.jsonl")
    return pd.DataFrame(records).rename(columns={"run_id": "run_key", "time_limit": "time_limit_s"})


def _read_runs_csv(path: Path) -> pd.DataFrame:
    try:
        with open_data(path) as handle:  # a .gz is decompressed within the limits, once
            raw = pd.read_csv(handle, dtype={"run_key": str, "source_version": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, EOFError, OSError) as exc:
        raise InputError(str(path), f"not a readable CSV ({exc})", "give the snapshot's metr_runs.csv.gz") from None
    for column in ("run_key", "task_id", "alias", "score_binarized", "human_minutes"):
        if column not in raw.columns:
            raise InputError(str(path), f"missing column {column!r}", "columns are the metr_runs table's", row=1,
                             column=column)
    raw["_line"] = np.arange(len(raw)) + 2
    return raw


def _first_bad(path: Path, raw: pd.DataFrame, bad: pd.Series, column: str, problem: str, fix: str) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(str(path), f"{column} {raw[column].iloc[i]!r} {problem}", fix,
                         row=int(raw["_line"].iloc[i]), column=column)


class MetrRunsAdapter:
    name = "metr_runs"

    def matches(self, path: Path) -> bool:
        name = path.name
        return (name.startswith("all_runs") and path.suffix == ".jsonl") or \
            ("metr" in name and "runs" in name and name.endswith((".jsonl", ".csv", ".csv.gz")))

    def read(self, path: Path) -> list[SourceData]:
        if path.suffix == ".jsonl":
            raw = _read_jsonl(path)
            version = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
            version = version.group(1) if version else "undated"
        else:
            raw = _read_runs_csv(path)
            version = str(raw["source_version"].iloc[0]) if "source_version" in raw.columns and len(raw) else "bundled"
        for column in RUN_COLUMNS:
            if column not in raw.columns:
                raw[column] = None
        minutes = pd.to_numeric(raw["human_minutes"], errors="coerce")
        _first_bad(path, raw, ~(minutes > 0) | ~np.isfinite(minutes), "human_minutes", "is not a positive number",
                   "give task length in minutes > 0")
        success = pd.to_numeric(raw["score_binarized"], errors="coerce")
        _first_bad(path, raw, ~success.isin([0, 1]), "score_binarized", "is not 0 or 1",
                   "give 0 (failure) or 1 (success)")
        for column in ("equal_task_weight", "invsqrt_task_weight"):
            weight = pd.to_numeric(raw[column], errors="coerce")
            _first_bad(path, raw, raw[column].notna() & ~(weight >= 0), column, "is not a weight >= 0",
                       "task weights are non-negative numbers")
            raw[column] = weight
        for column in ("score", "time_limit_s"):
            number = pd.to_numeric(raw[column], errors="coerce")
            _first_bad(path, raw, raw[column].notna() & ~np.isfinite(number), column, "is not a finite number",
                       "give a number, or leave the field out")
            raw[column] = number
        for column in ("run_key", "task_id", "alias"):
            _first_bad(path, raw, raw[column].isna() | (raw[column].astype(str).str.strip() == ""), column,
                       "is empty", "give every run its run_id, task_id and alias")
        runs = raw[list(RUN_COLUMNS)].copy()
        for column in ("task_id", "task_family", "alias", "model", "human_source", "fatal_error_from"):
            runs[column] = runs[column].map(lambda v: None if v is None or v is pd.NA or v != v else str(v))
        runs["run_key"] = runs["run_key"].astype(str)
        runs["human_minutes"] = minutes
        runs["score_binarized"] = success.astype(int)
        clash = runs[runs.duplicated("run_key", keep=False)].drop_duplicates()
        if clash["run_key"].duplicated().any():
            key = clash.loc[clash["run_key"].duplicated(), "run_key"].iloc[0]
            line = int(raw.loc[raw["run_key"].astype(str) == key, "_line"].iloc[1])
            raise InputError(str(path), f"run {key!r} appears twice with different fields", "keep one line per run",
                             row=line, column="run_id")
        runs = runs.drop_duplicates("run_key")
        return [SourceData("metr_runs", version, "horizon", LICENSE, CITATION, pd.DataFrame(),
                           extra={"metr_runs": runs},
                           notes=f"{len(runs)} runs, {runs['alias'].nunique()} agents, {runs['task_id'].nunique()} tasks")]


class MetrHeadlineFitsAdapter:
    """METR's published TH1.0 per-model logistic fits (metr_cross_domain_horizon, logistic_fits/headline.csv)."""

    name = "metr_headline_fits"

    def matches(self, path: Path) -> bool:
        return path.name == "headline.csv" and "logistic_fits" in path.parts

    def read(self, path: Path) -> list[SourceData]:
        try:
            raw = pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(str(path), f"not a readable CSV ({exc})", "give logistic_fits/headline.csv") from None
        for column in ("agent", "p50", "p50q0.025", "p50q0.975", "p80", "p80q0.025", "p80q0.975"):
            if column not in raw.columns:
                raise InputError(str(path), f"missing column {column!r}", "give logistic_fits/headline.csv", row=1,
                                 column=column)
        raw["_line"] = np.arange(len(raw)) + 2
        raw = raw[raw["agent"].astype(str) != "human"]  # the human baseline is not a model
        dates = pd.to_datetime(raw["release_date"], errors="coerce") if "release_date" in raw else None
        if dates is not None:
            _first_bad(path, raw, raw["release_date"].notna() & dates.isna(), "release_date", "does not parse",
                       "write YYYY-MM-DD")
        frames = []
        for metric, col in (("metr_p50_minutes", "p50"), ("metr_p80_minutes", "p80")):
            value = pd.to_numeric(raw[col], errors="coerce")
            _first_bad(path, raw, ~(value > 0), col, "is not a positive number of minutes", "horizons are minutes > 0")
            frames.append(pd.DataFrame({
                "model": raw["agent"], "release_date": dates, "metric": metric, "kind": "horizon", "value": value,
                "value_lo": pd.to_numeric(raw[f"{col}q0.025"], errors="coerce"),
                "value_hi": pd.to_numeric(raw[f"{col}q0.975"], errors="coerce"),
                "unit": "minutes", "original_unit": "minutes of human task time (bootstrap 2.5%/97.5%)",
                "floor": 0.0, "row_ref": raw["_line"].astype(str), "citation": CITATION}))
        obs = pd.concat(frames, ignore_index=True)
        return [SourceData("metr_th1_headline_fits", "2025-07-14", "horizon", LICENSE, CITATION, obs,
                           notes=f"{len(raw)} agents (human baseline row left out)")]


RESULTS = MetrResultsAdapter()
RELEASE_DATES = MetrReleaseDatesAdapter()
RUNS = MetrRunsAdapter()
HEADLINE = MetrHeadlineFitsAdapter()
