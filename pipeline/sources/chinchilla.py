"""Chinchilla training-loss points (Hoffmann et al. 2022 Fig. 4, extracted by Epoch: Besiroglu et al. 2024)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.schema import InputError
from pipeline.sources import SourceData

CITATION = "Hoffmann et al. (2022) Fig. 4 points as extracted by Besiroglu, Erdil, Barnett & You (2024), arXiv 2404.10102"


class ChinchillaAdapter:
    name = "chinchilla"

    def matches(self, path: Path) -> bool:
        return path.name == "svg_extracted_data.csv"

    def read(self, path: Path) -> list[SourceData]:
        raw = pd.read_csv(path)
        for column in ("Model Size", "Training FLOP", "loss"):
            if column not in raw.columns:
                raise InputError(str(path), f"missing column {column!r}", "give Epoch's svg_extracted_data.csv", row=1)
        params = pd.to_numeric(raw["Model Size"], errors="coerce")
        obs = pd.DataFrame({
            "model": [f"chinchilla_pt{i:03d}_N{p:.3g}_C{c:.3g}"
                      for i, (p, c) in enumerate(zip(params, raw["Training FLOP"], strict=True))],
            "organization": "DeepMind", "train_flop": pd.to_numeric(raw["Training FLOP"], errors="coerce"),
            "train_flop_note": "raw FLOP from the figure", "params": params, "metric": "loss", "kind": "loss",
            "value": pd.to_numeric(raw["loss"], errors="coerce"), "unit": "nats", "original_unit": "nats/token",
            "row_ref": [str(i + 2) for i in range(len(raw))], "citation": CITATION,
            "cluster": [f"N{p:.2g}" for p in params],
        })
        return [SourceData("chinchilla_hoffmann2022", "epoch-2024-05-14", "loss", "none stated (cite Besiroglu et al. 2024)",
                           CITATION, pd.concat([obs, compute_efficient_frontier(obs)], ignore_index=True))]


def compute_efficient_frontier(obs: pd.DataFrame) -> pd.DataFrame:
    """The runs no cheaper run beats (lowest loss so far in order of compute), as metric `loss_frontier`.

    Scaling laws of the form E + A*C^-alpha describe the best loss reachable at each compute, not runs with a
    badly chosen model size, so this is the series to compare with Hoffmann et al.'s fit."""
    ordered = obs.sort_values(["train_flop", "value"], kind="stable")
    best_so_far = ordered["value"].cummin()
    frontier = ordered[ordered["value"] <= best_so_far].copy()
    frontier["metric"] = "loss_frontier"
    return frontier.sort_index()


ADAPTER = ChinchillaAdapter()
