"""Jones (2021) Hex Elo against training FLOP, from the author's vector figure (runs and frontier).

Two files, two sources: the frontier (`jones2021_hex_frontier`, the per-board-size envelope) and the
training runs (`jones2021_hex_runs`), whose points along one run are not independent, so each run is
its own cluster. One metric per board size, `hex<N>_elo_vs_perfect`, with ceiling 0 (perfect play).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.schema import InputError
from pipeline.sources import SourceData

CITATION = "Jones (2021), Scaling Scaling Laws with Board Games, arXiv 2104.03113 (andyljones/boardlaw@522b7fc, flops_curves.svg)"
REQUIRED = ("series_id", "boardsize", "point_index", "train_flops", "elo_vs_perfect_play")


def _numeric(path: Path, raw: pd.DataFrame, column: str, ok, fix: str) -> pd.Series:
    values = pd.to_numeric(raw[column], errors="coerce")
    bad = ~ok(values)
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise InputError(str(path), f"{column} {raw[column].iloc[i]!r} is not valid", fix, row=i + 2, column=column)
    return values


class JonesHexAdapter:
    name = "jones_hex"

    def matches(self, path: Path) -> bool:
        return path.name.startswith("elo_vs_train_flops_") and path.suffix == ".csv"

    def read(self, path: Path) -> list[SourceData]:
        try:
            raw = pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(str(path), f"not a readable CSV ({exc})", "give the digitized Jones 2021 CSV") from None
        for column in REQUIRED:
            if column not in raw.columns:
                raise InputError(str(path), f"missing column {column!r}", "give the digitized Jones 2021 CSV", row=1,
                                 column=column)
        flop = _numeric(path, raw, "train_flops", lambda v: v > 0, "give raw training FLOP > 0 (not log10)")
        elo = _numeric(path, raw, "elo_vs_perfect_play", lambda v: np.isfinite(v) & (v <= 0),
                       "Elo against perfect play is a number <= 0")
        board = _numeric(path, raw, "boardsize", lambda v: v.between(2, 19) & (v % 1 == 0), "board size is an integer")
        point = _numeric(path, raw, "point_index", lambda v: v >= 0, "point_index is a non-negative integer")
        frontier = "frontier" in path.name
        # The file's own log10 column names the points (recomputing it flips a few third decimals).
        log10 = pd.to_numeric(raw["log10_train_flops"], errors="coerce").fillna(np.log10(flop)) \
            if "log10_train_flops" in raw.columns else np.log10(flop)
        # Frontier points are named by where they sit (b5_frontier@12.345); run points by their index.
        model = [f"{s}@{x:.3f}" if frontier else f"{s}#p{int(i):03d}"
                 for s, x, i in zip(raw["series_id"], log10, point, strict=True)]
        obs = pd.DataFrame({
            "model": model, "organization": "Jones 2021", "train_flop": flop,
            "train_flop_note": "digitized from the vector figure (error < 1e-4 decades)",
            "metric": [f"hex{int(b)}_elo_vs_perfect" for b in board], "kind": "elo", "value": elo, "unit": "elo",
            "original_unit": "Elo relative to perfect play", "ceiling": 0.0,
            "cluster": raw["series_id"].astype(str), "row_ref": [str(i + 2) for i in range(len(raw))],
            "citation": CITATION,
        })
        source = "jones2021_hex_frontier" if frontier else "jones2021_hex_runs"
        notes = f"{raw['series_id'].nunique()} series over board sizes {sorted({int(b) for b in board})}"
        return [SourceData(source, "2021-04-08", "elo", "MIT", CITATION, obs, notes=notes)]


ADAPTER = JonesHexAdapter()
