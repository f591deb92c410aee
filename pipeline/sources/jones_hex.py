"""Jones (2021) Hex Elo against training FLOP, from the author's vector figure (runs and frontier)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.schema import InputError
from pipeline.sources import SourceData

CITATION = "Jones (2021), Scaling Scaling Laws with Board Games, arXiv 2104.03113 (andyljones/boardlaw@522b7fc, flops_curves.svg)"


class JonesHexAdapter:
    name = "jones_hex"

    def matches(self, path: Path) -> bool:
        return path.name.startswith("elo_vs_train_flops_") and path.suffix == ".csv"

    def read(self, path: Path) -> list[SourceData]:
        raw = pd.read_csv(path)
        for column in ("series_id", "boardsize", "point_index", "train_flops", "elo_vs_perfect_play"):
            if column not in raw.columns:
                raise InputError(str(path), f"missing column {column!r}", "give the digitized Jones 2021 CSV", row=1)
        frontier = "frontier" in path.name
        log10 = pd.to_numeric(raw["log10_train_flops"], errors="coerce")
        obs = pd.DataFrame({
            "model": [f"{s}@{x:.3f}" if frontier else f"{s}#p{int(i):03d}"
                      for s, x, i in zip(raw["series_id"], log10, raw["point_index"], strict=True)],
            "organization": "Jones 2021", "train_flop": pd.to_numeric(raw["train_flops"], errors="coerce"),
            "train_flop_note": "digitized from the vector figure (error < 1e-4 decades)",
            "metric": [f"hex{int(b)}_elo_vs_perfect" for b in raw["boardsize"]], "kind": "elo",
            "value": pd.to_numeric(raw["elo_vs_perfect_play"], errors="coerce"), "unit": "elo",
            "original_unit": "Elo relative to perfect play", "ceiling": 0.0,
            "cluster": raw["series_id"], "row_ref": [str(i + 2) for i in range(len(raw))], "citation": CITATION,
        })
        source = "jones2021_hex_frontier" if frontier else "jones2021_hex_runs"
        return [SourceData(source, "2021-04-08", "elo", "MIT", CITATION, obs)]


ADAPTER = JonesHexAdapter()
