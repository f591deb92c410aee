"""Chatbot Arena rating history (jasontrigg0/chatbot-arena-history): one leaderboard snapshot per date.

Ratings are only defined relative to each other within one snapshot (the anchor and the method
changed over time), so every snapshot date is its own source_version and never shares a fit.
`alltime_by_org.csv` holds each organisation's gap to the best model of the same snapshot, which
*is* comparable across snapshots; it becomes the metric `arena_org_gap_to_frontier`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.schema import InputError
from pipeline.sources import SourceData

REPO = "jasontrigg0/chatbot-arena-history@8862846"
CITATION = f"Chiang et al. (2024), Chatbot Arena, arXiv 2403.04132; history compiled in {REPO}"
LICENSE = "none stated (cite LMSYS/LMArena)"


def _read(path: Path, required: tuple[str, ...], what: str) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, dtype={"date": str})
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(str(path), f"not a readable CSV ({exc})", f"give {what} as published") from None
    for column in required:
        if column not in raw.columns:
            raise InputError(str(path), f"missing column {column!r}", f"give {what} as published", row=1, column=column)
    raw["row_ref"] = [str(i + 2) for i in range(len(raw))]
    dates = pd.to_datetime(raw["date"], format="%Y%m%d", errors="coerce")
    if dates.isna().any():
        i = int(dates.isna().to_numpy().argmax())
        raise InputError(str(path), f"snapshot date {raw['date'].iloc[i]!r} is not YYYYMMDD", "write dates as YYYYMMDD",
                         row=i + 2, column="date")
    raw["snapshot"] = dates
    return raw


def _check_numeric(path: Path, raw: pd.DataFrame, column: str) -> pd.Series:
    values = pd.to_numeric(raw[column], errors="coerce")
    if values.isna().any():
        i = int(values.isna().to_numpy().argmax())
        raise InputError(str(path), f"{column} {raw[column].iloc[i]!r} is not a number", f"give {column} in Elo points",
                         row=i + 2, column=column)
    return values


class ArenaHistoryAdapter:
    name = "arena_history"

    def matches(self, path: Path) -> bool:
        return path.name == "alltime.csv"

    def read(self, path: Path) -> list[SourceData]:
        raw = _read(path, ("key", "rating", "date"), "chatbot-arena-history alltime.csv")
        raw["rating"] = _check_numeric(path, raw, "rating")
        before = len(raw)
        # The published file repeats yi-34b-chat with identical values on 96 dates (PROVENANCE.md).
        raw = raw.drop_duplicates(subset=[c for c in raw.columns if c != "row_ref"])
        dropped = before - len(raw)
        clash = raw[raw.duplicated(["date", "key"], keep=False)]
        if not clash.empty:
            first = clash.iloc[0]
            raise InputError(str(path), f"model {first['key']!r} has two different ratings on {first['date']}",
                             "keep one row per model and snapshot", row=int(first["row_ref"]), column="rating")
        out = []
        for date, part in raw.groupby("date", sort=True):
            obs = pd.DataFrame({
                "model": part["key"], "organization": part.get("Organization"), "metric": "arena_elo",
                "kind": "elo", "value": part["rating"], "unit": "elo",
                "original_unit": "Elo points (online Elo in the first snapshots, BT-MLE later)",
                "row_ref": part["row_ref"], "citation": CITATION,
            })
            # The count is said once, on the first snapshot, so summing notes does not multiply it.
            notes = f"{dropped} exact duplicate rows dropped from the file" if dropped and not out else ""
            out.append(SourceData("chatbot_arena_history", f"snapshot-{date}", "elo", LICENSE, CITATION, obs,
                                  notes=notes))
        return out


class ArenaOrgGapAdapter:
    name = "arena_history_by_org"

    def matches(self, path: Path) -> bool:
        return path.name == "alltime_by_org.csv"

    def read(self, path: Path) -> list[SourceData]:
        raw = _read(path, ("Organization", "date", "diff"), "chatbot-arena-history alltime_by_org.csv")
        gap = _check_numeric(path, raw, "diff")
        if (gap > 1e-9).any():
            i = int((gap > 1e-9).to_numpy().argmax())
            raise InputError(str(path), f"gap {gap.iloc[i]} is above 0 (an organisation above the frontier)",
                             "diff must be rating_max - rating_max_max <= 0", row=i + 2, column="diff")
        # The snapshot date stands in for release_date: a gap is measured *at* a snapshot, which is
        # what a date-axis fit of "does the gap close" needs. The cluster is the organisation.
        obs = pd.DataFrame({
            "model": raw["Organization"] + "@" + raw["date"], "organization": raw["Organization"],
            "release_date": raw["snapshot"], "metric": "arena_org_gap_to_frontier", "kind": "elo",
            "value": gap, "unit": "elo", "original_unit": "Elo points below the snapshot's best model",
            "ceiling": 0.0, "cluster": raw["Organization"], "row_ref": raw["row_ref"], "citation": CITATION,
        })
        return [SourceData("chatbot_arena_history_by_org", REPO.split("@")[1], "elo", LICENSE, CITATION, obs,
                           notes="release_date holds the leaderboard snapshot date, not a model release date")]


ADAPTER = ArenaHistoryAdapter()
BY_ORG = ArenaOrgGapAdapter()
