"""Open LLM Leaderboard v2 export: raw accuracies with parameter counts, but no training compute.

The rows are kept (flagged: train_flop null, note says why) so parameter-axis or date-free work can
use them; they never enter compute fits. The `*_normalized_score` columns (0-100, random baseline
rescaled to 0) are not ingested: the raw accuracy with a recorded chance floor carries the same
information without the rescaling.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.schema import InputError
from pipeline.sources import SourceData, rejected_frame

CITATION = "Fourrier et al. (2024), Open LLM Leaderboard v2 (open-llm-leaderboard/contents export)"
LICENSE = "none stated for the scores (export MPL-2.0)"
# benchmark -> chance-level floor of its raw accuracy (GPQA 4 options, MMLU-PRO 10 options)
BENCHMARKS = {"ifeval": 0.0, "bbh": 0.0, "math": 0.0, "gpqa": 0.25, "musr": 0.0, "mmlu_pro": 0.1}
NO_COMPUTE = "no training compute published (parameters only)"


class OpenLlmAdapter:
    name = "open_llm_leaderboard"

    def matches(self, path: Path) -> bool:
        return path.name.startswith("open_llm_leaderboard") and path.suffix == ".csv"

    def read(self, path: Path) -> list[SourceData]:
        try:
            raw = pd.read_csv(path, low_memory=False, encoding="utf-8-sig")
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(str(path), f"not a readable CSV ({type(exc).__name__})",
                             "give the Open LLM Leaderboard v2 export as UTF-8 CSV") from None
        if "model_name" not in raw.columns:
            raise InputError(str(path), "missing column 'model_name'", "give the Open LLM Leaderboard v2 export", row=1)
        raw["row_ref"] = [str(i + 2) for i in range(len(raw))]
        rejected = []
        if "features_is_flagged" in raw.columns:
            flagged = raw["features_is_flagged"].astype(str).str.lower() == "true"
            rejected += [{"row_ref": r, "column_name": "features_is_flagged", "value": "True",
                          "reason": "flagged on the leaderboard (e.g. contamination report)"}
                         for r in raw.loc[flagged, "row_ref"]]
            raw = raw[~flagged]
        # One model is often submitted at several precisions; the first (leaderboard order) is kept.
        before = len(raw)
        raw = raw.drop_duplicates("model_name")
        duplicates = before - len(raw)
        params = pd.to_numeric(raw.get("metadata_params_billions"), errors="coerce")
        params = params.where(params > 0) * 1e9
        frames = []
        for bench, floor in BENCHMARKS.items():
            column = f"evaluations_{bench}_value"
            if column not in raw.columns:
                continue
            value = pd.to_numeric(raw[column], errors="coerce")
            outside = value.notna() & ~value.between(0, 1)
            if outside.any():
                i = int(np.flatnonzero(outside.to_numpy())[0])
                raise InputError(str(path), f"raw accuracy {value.iloc[i]} is outside 0..1",
                                 "give the export's raw accuracies (evaluations_<b>_value)",
                                 row=raw["row_ref"].iloc[i], column=column)
            frames.append(pd.DataFrame({
                "model": raw["model_name"], "organization": raw["model_name"].str.split("/").str[0],
                "metric": f"openllm_{bench}", "kind": "benchmark", "value": value, "unit": "fraction",
                "original_unit": "fraction", "floor": floor, "ceiling": 1.0, "params": params,
                # the leaderboard's submission date is not a release date: left out on purpose
                "train_flop": np.nan, "train_flop_note": NO_COMPUTE, "cluster": raw.get("metadata_base_model", raw["model_name"]),
                "row_ref": raw["row_ref"], "citation": CITATION}))
        if not frames:
            raise InputError(str(path), "no evaluations_<benchmark>_value columns",
                             "give the Open LLM Leaderboard v2 export", row=1)
        obs = pd.concat(frames, ignore_index=True)
        obs = obs[obs["value"].notna()]
        date = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
        return [SourceData("open_llm_leaderboard_v2", date.group(1) if date else "undated", "benchmark", LICENSE,
                           CITATION, obs, rejected_frame(rejected),
                           notes=f"parameters only: these rows never enter compute fits; {duplicates} repeated "
                                 f"submissions of one model dropped")]


ADAPTER = OpenLlmAdapter()
