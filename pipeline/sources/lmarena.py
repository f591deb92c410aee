"""LMArena: the official catalog export (JSON, raw and style-controlled) and the text CSV export.

The arena history (one snapshot per date) is in arena_history.py."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from pipeline.schema import InputError
from pipeline.sources import SourceData, json_depth_error

CITATION = "LMArena / Chiang et al. (2024), Chatbot Arena, arXiv 2403.04132"
LICENSE = "none stated (cite LMArena)"
CATEGORIES = ("full", "coding", "math")


def _organizations(path: Path) -> dict[str, str]:
    """Arena key (and display name), lower-cased -> organisation, from scatterplot-data.json when it
    sits next to the leaderboard file (the leaderboard itself names no developer)."""
    try:
        text = path.read_text(encoding="utf-8")
        entries = [] if json_depth_error(text, path) else json.loads(text)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    out: dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("organization"):
            for name in (entry.get("model_api_name"), entry.get("name")):
                if name:
                    out.setdefault(str(name).lower(), str(entry["organization"]))
    return out


class LmarenaCatalogAdapter:
    name = "lmarena_catalog"

    def matches(self, path: Path) -> bool:
        return path.name.startswith("leaderboard-text") and path.suffix == ".json"

    def read(self, path: Path) -> list[SourceData]:
        try:
            text = path.read_text(encoding="utf-8")
            if error := json_depth_error(text, path):
                raise error
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(str(path), f"not valid JSON ({exc})", "give LMArena's leaderboard export",
                             row=getattr(exc, "lineno", None)) from None
        if not isinstance(data, dict) or not isinstance(data.get("full"), dict):
            raise InputError(str(path), "no 'full' category", "give LMArena's leaderboard-text*.json", column="full")
        suffix = "_style_control" if "style-control" in path.name else ""
        organization = _organizations(path.parent / "scatterplot-data.json")
        rows = []
        for category in CATEGORIES:
            models = data.get(category) or {}
            if not isinstance(models, dict):
                raise InputError(str(path), f"category {category!r} is a {type(models).__name__}, not a table of models",
                                 "give each category as {model: {rating, rating_q025, rating_q975}}", column=category)
            for key, entry in models.items():
                where = f"{category}.{key}"
                if not isinstance(entry, dict) or "rating" not in entry:
                    raise InputError(str(path), f"model {key!r} has no rating", "give rating, rating_q025, rating_q975",
                                     column=where)
                rating, lo, hi = (_number(path, entry.get(f), f"{where}.{f}")
                                  for f in ("rating", "rating_q025", "rating_q975"))
                if rating is None or (lo is not None and lo > rating) or (hi is not None and hi < rating):
                    raise InputError(str(path), f"rating {rating} lies outside its interval [{lo}, {hi}]",
                                     "give rating_q025 <= rating <= rating_q975", column=where)
                metric = "arena_elo" + ("" if category == "full" else f"_{category}") + suffix
                rows.append({"model": key, "organization": organization.get(key.lower()), "metric": metric,
                             "kind": "elo", "value": rating, "value_lo": lo, "value_hi": hi, "unit": "elo",
                             "original_unit": "Bradley-Terry, Elo scale (bootstrap 95% interval)", "row_ref": where,
                             "citation": CITATION})
        # Raw and style-controlled exports are two files of one date: separate sources, so neither
        # is taken for a changed copy of the other (which would give it an @sha version label).
        named = sum(r["organization"] is not None for r in rows)
        return [SourceData("lmarena_catalog" + suffix, "2025-12-17", "elo", LICENSE, CITATION, pd.DataFrame(rows),
                           notes=f"organisation from scatterplot-data.json for {named} of {len(rows)} rows")]


def _number(path: Path, value: object, where: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    except OverflowError:  # an integer beyond float range
        number = math.nan
    if not math.isfinite(number):
        raise InputError(str(path), f"{str(value)[:40]!r} is not a finite number", "give ratings as numbers",
                         column=where)
    return number


class LmarenaCsvAdapter:
    name = "lmarena_csv"

    def matches(self, path: Path) -> bool:
        return path.name.startswith("lmarena_text") and path.suffix == ".csv"

    def read(self, path: Path) -> list[SourceData]:
        try:
            raw = pd.read_csv(path, dtype={"95_pct_ci": str})
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(str(path), f"not a readable CSV ({exc})", "give the LMArena CSV export") from None
        for column in ("model", "arena_score", "95_pct_ci"):
            if column not in raw.columns:
                raise InputError(str(path), f"missing column {column!r}", "give the LMArena CSV export", row=1,
                                 column=column)
        raw.index = raw.index + 2  # file line numbers, kept through the de-duplication
        before = len(raw)
        # Yi-34B-Chat is listed twice (ranks 200 and 201) with identical figures: keep the first.
        raw = raw.drop_duplicates(subset=[c for c in ("model", "arena_score", "95_pct_ci", "votes") if c in raw])
        dropped = before - len(raw)
        score = pd.to_numeric(raw["arena_score"], errors="coerce")
        # "+5/-5": upper then lower half-width, in Elo points.
        ci = raw["95_pct_ci"].str.extract(r"^\s*\+\s*(\d+(?:\.\d+)?)\s*/\s*-\s*(\d+(?:\.\d+)?)\s*$").astype(float)
        for column, bad in (("arena_score", score.isna()), ("95_pct_ci", ci.isna().any(axis=1))):
            if bad.any():
                i = int(bad.to_numpy().argmax())
                raise InputError(str(path), f"{raw[column].iloc[i]!r} does not parse",
                                 "arena_score is a number, 95_pct_ci looks like '+5/-5'", row=int(raw.index[i]),
                                 column=column)
        votes = pd.to_numeric(raw.get("votes"), errors="coerce") if "votes" in raw.columns else None
        # No votes column in the schema: the count rides in row_ref (the CI already reflects it).
        refs = [f"{line}" + (f" ({int(v)} votes)" if votes is not None and pd.notna(v) else "")
                for line, v in zip(raw.index, votes if votes is not None else [None] * len(raw), strict=True)]
        obs = pd.DataFrame({"model": raw["model"], "organization": raw.get("organization"), "metric": "arena_elo",
                            "kind": "elo", "value": score, "value_lo": score - ci[1], "value_hi": score + ci[0],
                            "unit": "elo", "original_unit": "Elo-scale BT score (95% interval '+hi/-lo')",
                            "row_ref": refs, "citation": CITATION})
        date = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
        notes = f"{int(votes.sum())} votes over {len(raw)} models (median {int(votes.median())})" \
            if votes is not None and votes.notna().any() else ""
        if dropped:
            notes += f"; {dropped} exact duplicate row(s) dropped"
        return [SourceData("lmarena_text_csv", date.group(1) if date else "undated", "elo", LICENSE, CITATION, obs,
                           notes=notes)]


CATALOG = LmarenaCatalogAdapter()
CSV = LmarenaCsvAdapter()
