"""LMArena: the official catalog export (JSON, raw and style-controlled) and the text CSV export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from pipeline.schema import InputError
from pipeline.sources import SourceData

CITATION = "LMArena / Chiang et al. (2024), Chatbot Arena, arXiv 2403.04132"
LICENSE = "none stated (cite LMArena)"
CATEGORIES = ("full", "coding", "math")


class LmarenaCatalogAdapter:
    name = "lmarena_catalog"

    def matches(self, path: Path) -> bool:
        return path.name.startswith("leaderboard-text") and path.suffix == ".json"

    def read(self, path: Path) -> list[SourceData]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(str(path), f"not valid JSON ({exc})", "give LMArena's leaderboard export",
                             row=getattr(exc, "lineno", None)) from None
        if not isinstance(data, dict) or "full" not in data:
            raise InputError(str(path), "no 'full' category", "give LMArena's leaderboard-text*.json", column="full")
        suffix = "_style_control" if "style-control" in path.name else ""
        rows = []
        for category in CATEGORIES:
            for key, entry in (data.get(category) or {}).items():
                if not isinstance(entry, dict) or "rating" not in entry:
                    raise InputError(str(path), f"model {key!r} has no rating", "give rating, rating_q025, rating_q975",
                                     column=f"{category}.{key}")
                metric = "arena_elo" + ("" if category == "full" else f"_{category}") + suffix
                rows.append({"model": key, "metric": metric, "kind": "elo", "value": entry["rating"],
                             "value_lo": entry.get("rating_q025"), "value_hi": entry.get("rating_q975"),
                             "unit": "elo", "original_unit": "Bradley-Terry, Elo scale", "row_ref": f"{category}.{key}",
                             "citation": CITATION})
        # Raw and style-controlled exports are two files of one date: separate sources, so neither
        # is taken for a changed copy of the other (which would give it an @sha version label).
        return [SourceData("lmarena_catalog" + suffix, "2025-12-17", "elo", LICENSE, CITATION, pd.DataFrame(rows))]


class LmarenaCsvAdapter:
    name = "lmarena_csv"

    def matches(self, path: Path) -> bool:
        return path.name.startswith("lmarena_text") and path.suffix == ".csv"

    def read(self, path: Path) -> list[SourceData]:
        raw = pd.read_csv(path)
        for column in ("model", "arena_score", "95_pct_ci"):
            if column not in raw.columns:
                raise InputError(str(path), f"missing column {column!r}", "give the LMArena CSV export", row=1)
        ci = raw["95_pct_ci"].astype(str).str.extract(r"\+?(-?[\d.]+)\s*/\s*-?([\d.]+)").astype(float)
        obs = pd.DataFrame({"model": raw["model"], "organization": raw.get("organization"), "metric": "arena_elo",
                            "kind": "elo", "value": raw["arena_score"], "value_lo": raw["arena_score"] - ci[1],
                            "value_hi": raw["arena_score"] + ci[0], "unit": "elo", "original_unit": "Elo-scale BT score",
                            "row_ref": [str(i + 2) for i in range(len(raw))], "citation": CITATION})
        date = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
        return [SourceData("lmarena_text_csv", date.group(1) if date else "undated", "elo", LICENSE, CITATION, obs)]


class ArenaHistoryAdapter:
    name = "arena_history"

    def matches(self, path: Path) -> bool:
        return path.name == "alltime.csv"

    def read(self, path: Path) -> list[SourceData]:
        raw = pd.read_csv(path, dtype={"date": str})
        for column in ("key", "rating", "date"):
            if column not in raw.columns:
                raise InputError(str(path), f"missing column {column!r}", "give chatbot-arena-history alltime.csv", row=1)
        raw["row_ref"] = [str(i + 2) for i in range(len(raw))]
        before = len(raw)
        raw = raw.drop_duplicates(subset=["key", "Model", "rating", "License", "Organization", "date"])
        dropped = before - len(raw)
        out = []
        for date, part in raw.groupby("date"):
            obs = pd.DataFrame({"model": part["key"], "organization": part.get("Organization"), "metric": "arena_elo",
                                "kind": "elo", "value": part["rating"], "unit": "elo", "original_unit": "Elo (snapshot)",
                                "row_ref": part["row_ref"], "citation": "Chatbot Arena rating history (jasontrigg0/chatbot-arena-history@8862846)"})
            out.append(SourceData("chatbot_arena_history", f"snapshot-{date}", "elo", "none stated (cite LMSYS/LMArena)",
                                  "Chiang et al. (2024), Chatbot Arena; history compiled by jasontrigg0", obs,
                                  notes=f"{dropped} exact duplicate rows dropped from the file"
                                  if dropped and not out else ""))
        return out


class OpenLlmAdapter:
    name = "open_llm_leaderboard"

    def matches(self, path: Path) -> bool:
        return path.name.startswith("open_llm_leaderboard") and path.suffix == ".csv"

    def read(self, path: Path) -> list[SourceData]:
        raw = pd.read_csv(path, low_memory=False)
        if "model_name" not in raw.columns:
            raise InputError(str(path), "missing column 'model_name'", "give the Open LLM Leaderboard v2 export", row=1)
        raw["row_ref"] = [str(i + 2) for i in range(len(raw))]
        raw = raw.drop_duplicates("model_name")
        frames = []
        for bench, floor in (("ifeval", 0.0), ("bbh", 0.0), ("math", 0.0), ("gpqa", 0.25), ("musr", 0.0), ("mmlu_pro", 0.1)):
            column = f"evaluations_{bench}_value"
            if column in raw.columns:
                frames.append(pd.DataFrame({
                    "model": raw["model_name"], "metric": f"openllm_{bench}", "kind": "benchmark",
                    "value": pd.to_numeric(raw[column], errors="coerce"), "unit": "fraction", "original_unit": "fraction",
                    "floor": floor, "ceiling": 1.0,
                    "params": pd.to_numeric(raw.get("metadata_params_billions"), errors="coerce").where(lambda s: s > 0) * 1e9,
                    # submission date to the leaderboard is not a release date: left out on purpose
                    "train_flop_note": "no training compute published (parameters only)",
                    "row_ref": raw["row_ref"], "citation": "Fourrier et al. (2024), Open LLM Leaderboard v2"}))
        obs = pd.concat(frames, ignore_index=True)
        obs = obs[obs["value"].between(0, 1)]
        return [SourceData("open_llm_leaderboard_v2", "2025-03-21", "benchmark", "none stated (export MPL-2.0)",
                           "Fourrier et al. (2024), Open LLM Leaderboard v2", obs,
                           notes="parameters only: these rows never enter compute fits")]


CATALOG = LmarenaCatalogAdapter()
CSV = LmarenaCsvAdapter()
HISTORY = ArenaHistoryAdapter()
OPEN_LLM = OpenLlmAdapter()
