"""The bundled registry facts (data/raw/models.csv, written by `scalegap snapshot`): Epoch's model facts as the
model registry reads them, each row keeping the public file it came from (`source`, `source_version`) and its
citation, so a store built from the bundle has the same registry as one built from the public files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.schema import InputError
from pipeline.sources import SourceData

SOURCE, VERSION = "epoch_model_facts", "bundled"
CITATION = "Epoch AI, 'Data on AI Models' and the Epoch Capabilities Index, as bundled by `scalegap snapshot`"
COLUMNS = ("source", "source_version", "row_ref", "name", "version_name", "display_name", "organization", "country",
           "release_date", "train_flop", "train_flop_lo", "train_flop_hi", "confidence", "accessibility", "params",
           "citation", "license")


class ModelFactsAdapter:
    name = "model_facts"

    def matches(self, path: Path) -> bool:
        return path.name == "models.csv"

    def read(self, path: Path) -> list[SourceData]:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False).replace("", None)
        missing = [c for c in COLUMNS if c not in raw.columns]
        if missing:
            raise InputError(str(path), f"missing column(s) {', '.join(missing)}",
                             "rebuild it with `scalegap snapshot`", row=1)
        for column in ("source", "source_version", "row_ref", "name"):
            empty = raw[column].isna()
            if empty.any():
                raise InputError(str(path), "value is empty", f"give every row a {column}",
                                 row=int(empty.to_numpy().nonzero()[0][0]) + 2, column=column)
        facts = raw.assign(origin=raw["source"] + "@" + raw["source_version"])
        facts["release_date"] = pd.to_datetime(facts["release_date"], errors="coerce")
        for column in ("train_flop", "train_flop_lo", "train_flop_hi", "params"):
            facts[column] = pd.to_numeric(facts[column], errors="coerce")
        facts = facts.drop(columns=["source", "source_version", "license"])
        licences = sorted(set(raw["license"].dropna()))
        return [SourceData(SOURCE, VERSION, "metadata", "; ".join(licences) or "see rows", CITATION, pd.DataFrame(),
                           extra={"model_facts": facts},
                           notes=f"{len(facts)} model facts from {raw['source'].nunique()} public source(s)")]


ADAPTER = ModelFactsAdapter()
