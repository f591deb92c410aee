"""Epoch AI Benchmarking Hub: ECI (with compute and dates) and the external benchmark tables.

External tables are keyed by model version; `model_versions.csv` (same folder) maps versions to
Epoch 'Model' names, whose compute the ingest stage joins from the Epoch models tables.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.schema import InputError
from pipeline.sources import SourceData, rejected_frame

CITATION = "Epoch AI, Benchmarking Hub and Epoch Capabilities Index (epoch-research/benchmark-stitching@99a3dfc)"
LICENSE = "CC BY 4.0"
# file stem -> (score column, metric, chance-level floor)
SCORES = {
    "mmlu": ("EM", "mmlu", 0.25), "gsm8k": ("EM", "gsm8k", 0.0), "hellaswag": ("Overall accuracy", "hellaswag", 0.25),
    "winogrande": ("Accuracy", "winogrande", 0.5), "arc_ai2": ("Challenge score", "arc_c", 0.25),
    "boolq": ("Score", "boolq", 0.5), "piqa": ("Score", "piqa", 0.5), "triviaqa": ("EM", "triviaqa", 0.0),
    "bbh": ("Average", "bbh", 0.0), "openbookqa": ("Accuracy", "openbookqa", 0.25), "lambada": ("Score", "lambada", 0.0),
    "scienceqa": ("Score", "scienceqa", 0.0), "arc_agi": ("Score", "arc_agi", 0.0), "simple_bench": ("Score (AVG@5)", "simple_bench", 0.0),
    "terminal_bench": ("Accuracy mean", "terminal_bench", 0.0), "weirdml": ("Accuracy", "weirdml", 0.0),
    "superglue": ("Score", "superglue", 0.0), "csqa2": ("Score", "csqa2", 0.5), "videomme": ("Overall (no subtitles)", "videomme", 0.25),
    "os_world": ("Score", "osworld", 0.0), "livebench": ("Global average", "livebench", 0.0),
    "aider_polyglot": ("Percent correct", "aider_polyglot", 0.0), "cybench": ("Unguided % Solved", "cybench", 0.0),
}


def parse_score(text, path: Path, row: int, column: str) -> float:
    """'77.0%' -> 0.77; 0-100 numbers -> fraction; blank -> NaN."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or str(text).strip() == "":
        return np.nan
    s = str(text).strip()
    try:
        if s.endswith("%"):
            return float(s[:-1]) / 100.0
        value = float(s)
    except ValueError:
        raise InputError(str(path), f"score {s!r} is not a number or percentage", "give e.g. 77.0% or 0.77",
                         row=row, column=column) from None
    return value / 100.0 if value > 1.0 else value


class EpochHubAdapter:
    name = "epoch_hub"

    def matches(self, path: Path) -> bool:
        return path.name.startswith(("external_benchmark_", "epoch_capabilities_index")) and path.suffix == ".csv"

    def read(self, path: Path) -> list[SourceData]:
        raw = pd.read_csv(path, encoding="utf-8-sig")  # BOM; embedded newlines handled by the CSV parser
        if path.name.startswith("epoch_capabilities_index"):
            return self._eci(path, raw)
        stem = path.stem.removeprefix("external_benchmark_")
        if stem == "metr":
            return self._metr(path, raw)
        if stem not in SCORES:
            return []  # other units (cost, production score, Elo-like) are not fitted; see SCORES
        column, metric, floor = SCORES[stem]
        if column not in raw.columns or "Model version" not in raw.columns:
            raise InputError(str(path), f"missing column {column!r} or 'Model version'", "give Epoch's export", row=1)
        versions = _model_versions(path)
        values = [parse_score(v, path, i + 2, column) for i, v in enumerate(raw[column])]
        frame = pd.DataFrame({"version": raw["Model version"], "value": values, "row_ref": [str(i + 2) for i in range(len(raw))]})
        frame["model"] = frame["version"].map(versions).fillna(frame["version"])
        rejected = [{"row_ref": r.row_ref, "column_name": column, "value": "", "reason": "no score"}
                    for r in frame[frame["value"].isna()].itertuples()]
        rejected += [{"row_ref": r.row_ref, "column_name": "Model version", "value": "", "reason": "no model version"}
                     for r in frame[frame["model"].isna() & frame["value"].notna()].itertuples()]
        frame = frame[frame["value"].notna() & frame["model"].notna()]
        # Several versions (reasoning effort, dates) of one model share its compute: keep the best score.
        before = len(frame)
        frame = frame.sort_values("value", ascending=False).drop_duplicates("model")
        obs = pd.DataFrame({"model": frame["model"], "metric": metric, "kind": "benchmark", "value": frame["value"],
                            "unit": "fraction", "original_unit": "percent string or 0-100", "floor": floor, "ceiling": 1.0,
                            "row_ref": frame["row_ref"], "citation": CITATION})
        return [SourceData("epoch_hub_" + stem, "2025-12-05", "benchmark", LICENSE, CITATION, obs, rejected_frame(rejected),
                           notes=f"{before - len(frame)} extra versions of the same model dropped (best score kept)")]

    def _eci(self, path: Path, raw: pd.DataFrame) -> list[SourceData]:
        need = ("Model version", "ECI Score", "Release date", "Training compute (FLOP)")
        for column in need:
            if column not in raw.columns:
                raise InputError(str(path), f"missing column {column!r}", "give Epoch's ECI export", row=1)
        raw = raw.assign(row_ref=[str(i + 2) for i in range(len(raw))])
        raw = raw[pd.to_numeric(raw["ECI Score"], errors="coerce").notna()]
        name = raw["Model name"].fillna(raw["Model version"]) if "Model name" in raw.columns else raw["Model version"]
        obs = pd.DataFrame({
            "model": name, "organization": raw.get("Organization"), "release_date": pd.to_datetime(raw["Release date"], errors="coerce"),
            "train_flop": pd.to_numeric(raw["Training compute (FLOP)"], errors="coerce"),
            "train_flop_note": "Epoch ECI file (Confidence: " + raw.get("Confidence", pd.Series("Unknown", index=raw.index)).fillna("Unknown") + ")",
            "metric": "eci", "kind": "benchmark", "value": pd.to_numeric(raw["ECI Score"]), "unit": "index",
            "original_unit": "ECI (IRT-style index)", "row_ref": raw["row_ref"], "citation": CITATION,
            "cluster": raw.get("Organization"),
        })
        before = len(obs)
        obs = obs.sort_values("value", ascending=False).drop_duplicates("model")
        date = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
        return [SourceData("epoch_eci", date.group(1) if date else "2025-12-05", "benchmark", LICENSE, CITATION, obs,
                           notes=f"{before - len(obs)} reasoning-effort versions dropped (best ECI per model kept)")]

    def _metr(self, path: Path, raw: pd.DataFrame) -> list[SourceData]:
        obs = pd.DataFrame({
            "model": raw["Model version"], "organization": raw.get("Organization"),
            "release_date": pd.to_datetime(raw["Release date"], errors="coerce"),
            "train_flop": pd.to_numeric(raw["Training compute (FLOP)"], errors="coerce"),
            "train_flop_note": raw.get("Training compute notes"), "metric": "metr_p50_minutes", "kind": "horizon",
            "value": pd.to_numeric(raw["Time horizon"], errors="coerce"), "value_lo": pd.to_numeric(raw["CI_low"], errors="coerce"),
            "value_hi": pd.to_numeric(raw["CI_high"], errors="coerce"), "unit": "minutes", "original_unit": "minutes",
            "row_ref": [str(i + 2) for i in range(len(raw))], "citation": CITATION + "; METR time horizons",
        })
        obs = obs[obs["value"].notna() & obs["model"].notna()]
        return [SourceData("epoch_hub_metr", "2025-12-05", "horizon", LICENSE, CITATION, obs)]


def _model_versions(path: Path) -> dict:
    mv = path.parent / "model_versions.csv"
    if not mv.exists():
        return {}
    table = pd.read_csv(mv, encoding="utf-8-sig", usecols=["id", "Model"])
    return dict(zip(table["id"], table["Model"], strict=True))


ADAPTER = EpochHubAdapter()
