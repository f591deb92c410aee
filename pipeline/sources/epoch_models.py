"""Epoch AI 'Data on AI Models' tables: the training-compute lookup (kept with Epoch's confidence grade)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pipeline.schema import InputError
from pipeline.sources import SourceData

CITATION = "Epoch AI, 'Data on AI Models', epoch.ai/data/ai-models"


class EpochModelsAdapter:
    name = "epoch_models"

    def matches(self, path: Path) -> bool:
        return path.suffix == ".csv" and bool(re.match(r"(notable|large_scale|frontier|all)_ai_models", path.name))

    def read(self, path: Path) -> list[SourceData]:
        raw = pd.read_csv(path, low_memory=False)
        for column in ("Model", "Training compute (FLOP)"):
            if column not in raw.columns:
                raise InputError(str(path), f"missing column {column!r}", "give an Epoch AI models export", row=1)
        table = pd.DataFrame({
            "model": raw["Model"], "organization": raw.get("Organization"),
            "release_date": pd.to_datetime(raw.get("Publication date"), errors="coerce"),
            "train_flop": pd.to_numeric(raw["Training compute (FLOP)"], errors="coerce"),
            "confidence": raw.get("Confidence"), "params": pd.to_numeric(raw.get("Parameters"), errors="coerce"),
        })
        table = table[table["train_flop"].notna() & (table["train_flop"] > 0)].drop_duplicates("model")
        label = path.stem
        return [SourceData("epoch_ai_models", label, "metadata", "CC BY 4.0", CITATION, pd.DataFrame(),
                           extra={"model_compute": table}, notes=f"{len(table)} models with training compute")]


ADAPTER = EpochModelsAdapter()
