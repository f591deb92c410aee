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
        facts = model_facts(raw, f"epoch_ai_models@{label}", CITATION)
        return [SourceData("epoch_ai_models", label, "metadata", "CC BY 4.0", CITATION, pd.DataFrame(),
                           extra={"model_compute": table, "model_facts": facts},
                           notes=f"{len(table)} models with training compute; {len(facts)} models for the registry")]


def _column(raw: pd.DataFrame, *names: str) -> pd.Series:
    """The first of several spellings of one column (the Epoch exports differ between snapshots)."""
    for name in names:
        if name in raw.columns:
            return raw[name]
    return pd.Series(None, index=raw.index, dtype="object")


def model_facts(raw: pd.DataFrame, origin: str, citation: str) -> pd.DataFrame:
    """Every model of an Epoch models table as the registry reads it (with or without compute)."""
    number = lambda name: pd.to_numeric(_column(raw, name), errors="coerce")  # noqa: E731
    facts = pd.DataFrame({
        "origin": origin, "row_ref": [str(i + 2) for i in range(len(raw))], "name": raw["Model"],
        "version_name": None, "display_name": None, "organization": _column(raw, "Organization"),
        "country": _column(raw, "Country (of organization)", "Country (from Organization)"),
        "release_date": pd.to_datetime(_column(raw, "Publication date"), errors="coerce"),
        "train_flop": number("Training compute (FLOP)"), "train_flop_lo": number("Training compute lower bound"),
        "train_flop_hi": number("Training compute upper bound"), "confidence": _column(raw, "Confidence"),
        "accessibility": _column(raw, "Model accessibility"), "params": number("Parameters"), "citation": citation,
    })
    return facts[facts["name"].notna() & (facts["name"].astype(str).str.strip() != "")].reset_index(drop=True)


ADAPTER = EpochModelsAdapter()
