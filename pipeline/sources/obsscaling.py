"""ObsScaling (Ruan, Maddison & Hashimoto 2024): base-LLM accuracies with FLOPs in units of 1e21."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.schema import InputError
from pipeline.sources import SourceData, rejected_frame

BENCHMARKS = {  # column -> (metric, chance-level floor)
    "MMLU": ("mmlu", 0.25), "ARC-C": ("arc_c", 0.25), "HellaSwag": ("hellaswag", 0.25),
    "Winograd": ("winogrande", 0.5), "Winogrande": ("winogrande", 0.5), "TruthfulQA": ("truthfulqa", None), "GSM8K": ("gsm8k", 0.0),
    "XWinograd": ("xwinograd", 0.5), "HumanEval": ("humaneval", 0.0),
}
CITATION = "Ruan, Maddison & Hashimoto (2024), Observational Scaling Laws, arXiv 2405.10938 (ryoungj/ObsScaling@4d6e1e4)"


class ObsScalingAdapter:
    name = "obsscaling"

    def matches(self, path: Path) -> bool:
        return path.name in {"base_llm_benchmark_eval.csv", "base_llm_benchmark_eval_sub_10b.csv",
                             "instruct_llm_benchmark_eval.csv"}

    def read(self, path: Path) -> list[SourceData]:
        try:
            raw = pd.read_csv(path, encoding="utf-8-sig")
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(str(path), f"not a readable CSV ({type(exc).__name__})",
                             "give the ObsScaling eval_results file as published") from None
        instruct = path.name.startswith("instruct_")
        for column in ("Model", "Model Family", "FLOPs (1E21)", "MMLU"):
            if column not in raw.columns:
                raise InputError(str(path), f"missing column {column!r}", "give the ObsScaling base-model file", row=1)
        frames, rejected = [], []
        if instruct:
            # 'Arena-Elo' here is rescaled to 0..1 (not Elo points) and MTBench is a judge grade: neither
            # is fitted as Elo or accuracy, so they are named once in the rejected table.
            rejected += [{"row_ref": "1", "column_name": c, "value": "", "reason": why}
                         for c, why in (("Arena-Elo", "normalised Arena-Elo (0..1), not Elo points"),
                                        ("MTBench", "LLM-judge grade, not an accuracy")) if c in raw.columns]
        flop = pd.to_numeric(raw["FLOPs (1E21)"], errors="coerce") * 1e21  # unit: 1e21 FLOP
        for column, (metric, floor) in BENCHMARKS.items():
            if column not in raw.columns:
                continue
            value = pd.to_numeric(raw[column], errors="coerce")
            frames.append(pd.DataFrame({
                "model": raw["Model"], "organization": raw["Model Family"], "cluster": raw["Model Family"],
                "train_flop": flop, "train_flop_note": "ObsScaling FLOPs (1E21) x 1e21 (about 6ND)",
                "params": pd.to_numeric(raw.get("Model Size (B)"), errors="coerce") * 1e9,
                "metric": metric, "kind": "benchmark", "value": value, "unit": "fraction",
                "original_unit": "fraction", "floor": floor if floor is not None else np.nan, "ceiling": 1.0,
                "row_ref": [str(i + 2) for i in range(len(raw))], "citation": CITATION,
            }))
        obs = pd.concat(frames, ignore_index=True)
        if instruct:
            # Mostly closed models with no FLOPs column value: kept so the Epoch join can place them.
            no_flop = obs["train_flop"].isna()
            obs.loc[no_flop, "train_flop_note"] = "not given by ObsScaling; Epoch join by name where it matches"
            obs = obs[obs["value"].notna()]
            return [SourceData("obsscaling_ruan2024_instruct", "2024-10-01", "benchmark", "Apache-2.0", CITATION,
                               obs, rejected_frame(rejected),
                               notes="instruction-tuned models; Arena-Elo (normalised) and MTBench not ingested")]
        for _, row in obs[obs["train_flop"].isna() & obs["value"].notna()].iterrows():
            rejected.append({"row_ref": row["row_ref"], "column_name": "FLOPs (1E21)", "value": "",
                             "reason": f"{row['model']}: no training compute published"})
        obs = obs[obs["value"].notna() & obs["train_flop"].notna()]
        version = "2024-10-01" + ("-sub10b" if "sub_10b" in path.name else "")
        return [SourceData("obsscaling_ruan2024", version, "benchmark", "Apache-2.0", CITATION, obs,
                           rejected_frame(rejected))]


ADAPTER = ObsScalingAdapter()
