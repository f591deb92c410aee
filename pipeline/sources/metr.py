"""METR time horizons (Kwa et al. 2025): published benchmark_results yaml, release dates, per-run data.

Per-run data comes as METR's JSONL or as the compact CSV the bundled snapshot ships
(`metr_runs*.csv[.gz]`, columns = the `metr_runs` table's). It goes only to the `metr_runs` table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pipeline.schema import InputError
from pipeline.sources import SourceData

CITATION = "METR (2025), Measuring AI Ability to Complete Long Tasks, arXiv 2503.14499"
LICENSE = "public, cite METR (no explicit data licence)"
RUN_COLUMNS = ("run_key", "task_id", "task_family", "alias", "model", "score", "score_binarized",
               "human_minutes", "human_source", "time_limit_s", "equal_task_weight", "invsqrt_task_weight",
               "fatal_error_from")


def _load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(str(path), f"not valid YAML ({getattr(exc, 'problem', exc)})", "fix the YAML syntax",
                         row=mark.line + 1 if mark else None) from None
    except UnicodeDecodeError:
        raise InputError(str(path), "not UTF-8 text", "give the YAML file as published") from None
    if not isinstance(data, dict):
        raise InputError(str(path), "expected a YAML mapping at the top level", "give METR's yaml file")
    return data


def _version_label(path: Path, data: dict) -> str:
    date = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
    name = str(data.get("benchmark_name", "METR-Horizon"))
    return f"{name}" + (f"-{date.group(1)}" if date else "")


class MetrResultsAdapter:
    name = "metr_benchmark_results"

    def matches(self, path: Path) -> bool:
        return path.suffix in {".yaml", ".yml"} and path.name.startswith("benchmark_results")

    def read(self, path: Path) -> list[SourceData]:
        data = _load_yaml(path)
        results = data.get("results")
        if not isinstance(results, dict):
            raise InputError(str(path), "no 'results' mapping", "give METR's benchmark_results yaml", column="results")
        rows = []
        for key, entry in results.items():
            metrics = (entry or {}).get("metrics") or {}
            release = (entry or {}).get("release_date")
            for metric, field in (("metr_p50_minutes", "p50_horizon_length"), ("metr_p80_minutes", "p80_horizon_length")):
                m = metrics.get(field)
                if not isinstance(m, dict) or "estimate" not in m:
                    raise InputError(str(path), f"model {key!r} has no {field}.estimate", "give estimate, ci_low, ci_high",
                                     column=f"results.{key}.metrics.{field}")
                value = float(m["estimate"])
                if not value > 0:
                    raise InputError(str(path), f"{field} of {key!r} is {value}, horizons must be positive minutes",
                                     "check the file", column=f"results.{key}.metrics.{field}")
                rows.append({"model": key, "release_date": str(release) if release else None, "metric": metric,
                             "kind": "horizon", "value": value, "value_lo": m.get("ci_low"), "value_hi": m.get("ci_high"),
                             "unit": "minutes", "original_unit": "minutes (bootstrap 95% CI)", "floor": 0.0,
                             "row_ref": f"results.{key}", "citation": CITATION})
            avg = (metrics.get("average_score") or {}).get("estimate")
            if avg is not None:
                rows.append({"model": key, "release_date": str(release) if release else None,
                             "metric": "metr_average_score", "kind": "benchmark", "value": float(avg),
                             "unit": "fraction", "original_unit": "fraction", "floor": 0.0, "ceiling": 1.0,
                             "row_ref": f"results.{key}", "citation": CITATION})
        obs = pd.DataFrame(rows)
        obs["release_date"] = pd.to_datetime(obs["release_date"], errors="coerce")
        notes = ""
        dt = (data.get("doubling_time_in_days") or {})
        if dt:
            notes = f"published doubling time (days): {json.dumps(dt, default=str)}"
        return [SourceData("metr_time_horizon", _version_label(path, data), "horizon", LICENSE, CITATION, obs, notes=notes)]


class MetrReleaseDatesAdapter:
    name = "metr_release_dates"

    def matches(self, path: Path) -> bool:
        return path.suffix in {".yaml", ".yml"} and path.name.startswith("release_dates")

    def read(self, path: Path) -> list[SourceData]:
        data = _load_yaml(path)
        dates = data.get("date")
        if not isinstance(dates, dict):
            raise InputError(str(path), "no 'date' mapping", "give METR's release_dates.yaml", column="date")
        frame = pd.DataFrame({"alias": list(dates), "release_date": pd.to_datetime([str(v) for v in dates.values()], errors="coerce")})
        bad = frame["release_date"].isna()
        if bad.any():
            raise InputError(str(path), f"date of {frame['alias'][bad].iloc[0]!r} does not parse", "write YYYY-MM-DD",
                             column=f"date.{frame['alias'][bad].iloc[0]}")
        label = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
        return [SourceData("metr_release_dates", label.group(1) if label else "undated", "metadata", LICENSE, CITATION,
                           pd.DataFrame(), extra={"metr_release_dates": frame})]


class MetrRunsAdapter:
    name = "metr_runs"

    def matches(self, path: Path) -> bool:
        return path.name.endswith((".jsonl", ".csv", ".csv.gz")) and ("runs" in path.name) and "metr" in path.name \
            or path.name.startswith("all_runs") and path.suffix == ".jsonl"

    def read(self, path: Path) -> list[SourceData]:
        if path.suffix == ".jsonl":
            records = []
            content = path.read_bytes()
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(str(path), f"not UTF-8 text (bad byte at offset {exc.start})",
                                 "give the JSONL file as published (UTF-8)",
                                 row=content[: exc.start].count(b"\n") + 1) from None
            for number, line in enumerate(text.split("\n"), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(str(path), f"not valid JSON ({exc.msg})", "each line must be one JSON object",
                                     row=number) from None
                if not isinstance(record, dict):
                    raise InputError(str(path), "line is not a JSON object", "one object per line", row=number)
                for key in ("run_id", "task_id", "alias", "score_binarized", "human_minutes"):
                    if key not in record:
                        raise InputError(str(path), f"missing key {key!r}", "give METR's run fields", row=number, column=key)
                record["_line"] = number
                records.append(record)
            raw = pd.DataFrame(records).rename(columns={"run_id": "run_key", "time_limit": "time_limit_s"})
            version = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
            version = version.group(1) if version else "undated"
        else:
            raw = pd.read_csv(path)
            raw["_line"] = np.arange(len(raw)) + 2
            version = str(raw["source_version"].iloc[0]) if "source_version" in raw.columns and len(raw) else "bundled"
        for column in RUN_COLUMNS:
            if column not in raw.columns:
                raw[column] = None
        minutes = pd.to_numeric(raw["human_minutes"], errors="coerce")
        bad = ~(minutes > 0)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(str(path), f"human_minutes {raw['human_minutes'].iloc[i]!r} is not a positive number",
                             "give task length in minutes > 0", row=int(raw["_line"].iloc[i]), column="human_minutes")
        success = pd.to_numeric(raw["score_binarized"], errors="coerce")
        bad = ~success.isin([0, 1])
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(str(path), f"score_binarized {raw['score_binarized'].iloc[i]!r} is not 0 or 1",
                             "give 0 (failure) or 1 (success)", row=int(raw["_line"].iloc[i]), column="score_binarized")
        runs = raw[list(RUN_COLUMNS)].copy()
        runs["human_minutes"] = minutes
        runs["score_binarized"] = success.astype(int)
        runs = runs.drop_duplicates("run_key")
        return [SourceData("metr_runs", version, "horizon", LICENSE, CITATION, pd.DataFrame(),
                           extra={"metr_runs": runs},
                           notes=f"{len(runs)} runs, {runs['alias'].nunique()} agents, {runs['task_id'].nunique()} tasks")]


class MetrHeadlineFitsAdapter:
    name = "metr_headline_fits"

    def matches(self, path: Path) -> bool:
        return path.name == "headline.csv" and "logistic_fits" in path.parts

    def read(self, path: Path) -> list[SourceData]:
        raw = pd.read_csv(path)
        rows = []
        for i, r in raw.iterrows():
            if str(r.get("agent")) == "human":
                continue
            for metric, col in (("metr_p50_minutes", "p50"), ("metr_p80_minutes", "p80")):
                rows.append({"model": r["agent"], "release_date": r.get("release_date"), "metric": metric, "kind": "horizon",
                             "value": r[col], "value_lo": r.get(f"{col}q0.025"), "value_hi": r.get(f"{col}q0.975"),
                             "unit": "minutes", "original_unit": "minutes", "row_ref": str(i + 2), "citation": CITATION})
        return [SourceData("metr_th1_headline_fits", "2025-07-14", "horizon", LICENSE, CITATION, pd.DataFrame(rows))]


RESULTS = MetrResultsAdapter()
RELEASE_DATES = MetrReleaseDatesAdapter()
RUNS = MetrRunsAdapter()
HEADLINE = MetrHeadlineFitsAdapter()
