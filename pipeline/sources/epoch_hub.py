"""Epoch AI Benchmarking Hub: ECI (with compute and dates) and the external benchmark tables.

External tables are keyed by model version; `model_versions.csv` (same folder) maps versions to
Epoch 'Model' names, whose compute the ingest stage joins from the Epoch models tables.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.schema import InputError
from pipeline.sources import SourceData, rejected_frame

CITATION = "Epoch AI, Benchmarking Hub and Epoch Capabilities Index (epoch-research/benchmark-stitching@99a3dfc)"
LICENSE = "CC BY 4.0"
# file stem -> [(score column, metric, chance-level floor, unit)]. Each table publishes its own column
# names and units (PROVENANCE.md): percent strings, 0-100 numbers, Elo, production scores.
FRACTION, ELO, SCORE = "fraction", "elo", "score"
SCORES: dict[str, list[tuple[str, str, float, str]]] = {
    "mmlu": [("EM", "mmlu", 0.25, FRACTION)], "gsm8k": [("EM", "gsm8k", 0.0, FRACTION)],
    "hellaswag": [("Overall accuracy", "hellaswag", 0.25, FRACTION)],
    "winogrande": [("Accuracy", "winogrande", 0.5, FRACTION)], "arc_ai2": [("Challenge score", "arc_c", 0.25, FRACTION)],
    "boolq": [("Score", "boolq", 0.5, FRACTION)], "piqa": [("Score", "piqa", 0.5, FRACTION)],
    "triviaqa": [("EM", "triviaqa", 0.0, FRACTION)], "bbh": [("Average", "bbh", 0.0, FRACTION)],
    "openbookqa": [("Accuracy", "openbookqa", 0.25, FRACTION)], "lambada": [("Score", "lambada", 0.0, FRACTION)],
    "scienceqa": [("Score", "scienceqa", 0.0, FRACTION)], "arc_agi": [("Score", "arc_agi", 0.0, FRACTION)],
    "simple_bench": [("Score (AVG@5)", "simple_bench", 0.0, FRACTION)],
    "terminal_bench": [("Accuracy mean", "terminal_bench", 0.0, FRACTION)], "weirdml": [("Accuracy", "weirdml", 0.0, FRACTION)],
    "superglue": [("Score", "superglue", 0.0, FRACTION)], "csqa2": [("Score", "csqa2", 0.5, FRACTION)],
    "videomme": [("Overall (no subtitles)", "videomme", 0.25, FRACTION)], "os_world": [("Score", "osworld", 0.0, FRACTION)],
    "livebench": [("Global average", "livebench", 0.0, FRACTION)],
    "aider_polyglot": [("Percent correct", "aider_polyglot", 0.0, FRACTION)],
    "cybench": [("Unguided % Solved", "cybench", 0.0, FRACTION)],
    "anli": [("Score", "anli", 1 / 3, FRACTION)],  # three-way entailment: chance is 1/3
    "balrog": [("Average progress", "balrog", 0.0, FRACTION)],
    "cadeval": [("Overall pass (%)", "cadeval", 0.0, FRACTION)],
    "deepresearch": [("Average score", "deepresearch", 0.0, FRACTION)],
    "factorio_learning_environment": [("Lab Success %", "factorio_lab_success", 0.0, FRACTION),
                                      ("Production score", "factorio_production_score", np.nan, SCORE)],
    "fictionlivebench": [("120k token score", "fictionlivebench_120k", 0.0, FRACTION)],
    "geobench": [("ACW Country %", "geobench_acw_country", 0.0, FRACTION)],
    "gso_bench": [("Score OPT@1", "gso_bench", 0.0, FRACTION)],
    "lech_mazur_writing": [("Mean score", "lech_mazur_writing", np.nan, SCORE)],  # judge grade on a 0-10 scale
    "mcbench": [("ELO", "mcbench_elo", np.nan, ELO), ("Win rate", "mcbench_win_rate", 0.0, FRACTION)],
    "osuniverse": [("Weighted Score", "osuniverse", 0.0, FRACTION)],
    "the_agent_company": [("% Resolved", "the_agent_company", 0.0, FRACTION)],
    "vpct": [("Correct", "vpct", 0.0, FRACTION)],
}
# Columns that are not capability scores: kept out, each named once in the rejected table.
NOT_SCORES = {"Cost": "cost in USD", "Cost per run": "cost in USD", "Average costs": "cost in USD",
              "Duration (seconds)": "run time", "Average steps": "agent steps"}
# benchmarks_runs.csv: Epoch's own evaluations, best score 0-1 per run.
RUN_TASKS = {"GPQA diamond": ("gpqa_diamond", 0.25), "MATH level 5": ("math_level5", 0.0),
             "OTIS Mock AIME 2024-2025": ("otis_mock_aime", 0.0), "SWE-Bench verified": ("swe_bench_verified", 0.0),
             "FrontierMath-2025-02-28-Public": ("frontiermath_public", 0.0),
             "FrontierMath-2025-02-28-Private": ("frontiermath_private", 0.0),
             "FrontierMath-Tier-4-2025-07-01-Public": ("frontiermath_t4_public", 0.0),
             "FrontierMath-Tier-4-2025-07-01-Private": ("frontiermath_t4_private", 0.0)}
VERSION = "2025-12-05"  # benchmark-stitching@99a3dfc, the commit PROVENANCE.md names


def parse_scores(texts: pd.Series, path: Path, column: str, unit: str) -> tuple[pd.Series, str]:
    """One published column -> numbers in `unit`, plus how it was published.

    Percent strings ('77.0%') are fractions x 100. A column of bare numbers with any value above 1
    is on a 0-100 scale as a whole (deciding per cell would misread 0.6% published as 0.6)."""
    s = texts.astype("string").str.strip().replace("", pd.NA)
    percent = s.str.endswith("%", na=False).astype(bool)
    values = pd.to_numeric(s.str.rstrip("%").str.replace(",", "", regex=False), errors="coerce").astype("float64")
    bad = s.notna() & values.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(str(path), f"score {s.iloc[i]!r} is not a number or percentage",
                         "give e.g. 77.0% or 0.77", row=i + 2, column=column)
    if unit != FRACTION:
        return values.astype(float), unit
    bare = s.notna() & ~percent
    scale_100 = bool((values[bare] > 1.0).any())
    values = values.where(~percent, values / 100.0)
    if scale_100:
        values = values.where(~bare, values / 100.0)
    published = "percent string" if percent.any() else ("0-100 number" if scale_100 else "fraction")
    return values.astype(float), published


class EpochHubAdapter:
    name = "epoch_hub"

    def matches(self, path: Path) -> bool:
        return path.suffix == ".csv" and (
            path.name.startswith(("external_benchmark_", "epoch_capabilities_index"))
            or path.name in {"benchmarks_runs.csv", "model_versions.csv"})

    def read(self, path: Path) -> list[SourceData]:
        try:  # BOM; embedded newlines inside quoted notes are handled by the CSV parser
            raw = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(str(path), f"not a readable Epoch CSV ({type(exc).__name__}: {exc})",
                             "give the file as exported by Epoch (UTF-8, comma separated)") from None
        if path.name == "model_versions.csv":
            _model_versions(path.parent)  # checked here, used by the tables beside it
            return []
        raw = raw.replace("", np.nan)
        if path.name.startswith("epoch_capabilities_index"):
            return self._eci(path, raw)
        if path.name == "benchmarks_runs.csv":
            return self._runs(path, raw)
        stem = path.stem.removeprefix("external_benchmark_")
        if stem == "metr":
            return self._metr(path, raw)
        if stem not in SCORES:
            raise InputError(str(path), f"unknown Epoch benchmark table {stem!r}",
                             "add its score column, metric and unit to SCORES in pipeline/sources/epoch_hub.py")
        versions = _model_versions(path.parent)
        if "Model version" not in raw.columns:
            raise InputError(str(path), "missing column 'Model version'", "give Epoch's export", row=1)
        row_ref = pd.Series([str(i + 2) for i in range(len(raw))], index=raw.index)
        version = raw["Model version"]
        if "Name" in raw.columns:  # some tables (mcbench) leave the version empty and name the model
            version = version.fillna(raw["Name"])
        model = version.map(versions).fillna(version)
        rejected = [{"row_ref": "1", "column_name": c, "value": "", "reason": f"{why}: not a capability score"}
                    for c, why in NOT_SCORES.items() if c in raw.columns]
        frames, notes = [], []
        for column, metric, floor, unit in SCORES[stem]:
            if column not in raw.columns:
                raise InputError(str(path), f"missing score column {column!r}", "give Epoch's export", row=1)
            values, published = parse_scores(raw[column], path, column, unit)
            frame = pd.DataFrame({"version": version, "model": model, "value": values, "row_ref": row_ref})
            rejected += [{"row_ref": r.row_ref, "column_name": column, "value": "", "reason": "no score"}
                         for r in frame[frame["value"].isna()].itertuples()]
            rejected += [{"row_ref": r.row_ref, "column_name": "Model version", "value": "",
                          "reason": "no model version"}
                         for r in frame[frame["model"].isna() & frame["value"].notna()].itertuples()]
            frame = frame[frame["value"].notna() & frame["model"].notna()]
            # Reasoning-effort and dated versions of one model share its compute: one point per model
            # (the best version, as a frontier reading of the table would take).
            before = len(frame)
            frame = frame.sort_values(["value", "row_ref"], ascending=[False, True]).drop_duplicates("model")
            notes.append(f"{metric}: {before - len(frame)} extra version(s) of an already listed model dropped "
                         f"(best score kept)")
            frames.append(pd.DataFrame({
                "model": frame["model"], "metric": metric, "kind": "elo" if unit == ELO else "benchmark",
                "value": frame["value"], "unit": unit, "original_unit": published, "floor": floor,
                "ceiling": 1.0 if unit == FRACTION else (10.0 if stem == "lech_mazur_writing" else np.nan),
                "cluster": frame["model"], "row_ref": frame["row_ref"],
                "citation": f"{CITATION}; external_benchmark_{stem}.csv",
            }))
        obs = pd.concat(frames, ignore_index=True)
        kind = "elo" if all(u == ELO for _, _, _, u in SCORES[stem]) else "benchmark"
        return [SourceData("epoch_hub_" + stem, VERSION, kind, LICENSE, CITATION, obs, rejected_frame(rejected),
                           notes="; ".join(notes))]

    def _runs(self, path: Path, raw: pd.DataFrame) -> list[SourceData]:
        for column in ("task", "model", "Best score (across scorers)"):
            if column not in raw.columns:
                raise InputError(str(path), f"missing column {column!r}", "give Epoch's benchmarks_runs.csv", row=1)
        versions = _model_versions(path.parent)
        raw = raw.assign(row_ref=[str(i + 2) for i in range(len(raw))])
        rejected = [{"row_ref": r, "column_name": "Status", "value": str(st), "reason": "run did not succeed"}
                    for r, st in zip(raw["row_ref"], raw.get("Status", pd.Series(index=raw.index)), strict=True)
                    if isinstance(st, str) and st != "Success"]
        if "Status" in raw.columns:
            raw = raw[raw["Status"].fillna("Success") == "Success"]
        raw = raw[raw["task"].isin(RUN_TASKS)]
        values, _ = parse_scores(raw["Best score (across scorers)"], path, "Best score (across scorers)", FRACTION)
        obs = pd.DataFrame({
            "model": raw["model"].map(versions).fillna(raw["model"]), "version": raw["model"],
            "metric": raw["task"].map(lambda t: RUN_TASKS[t][0]), "floor": raw["task"].map(lambda t: RUN_TASKS[t][1]),
            "kind": "benchmark", "value": values, "unit": FRACTION, "original_unit": "fraction", "ceiling": 1.0,
            "row_ref": raw["row_ref"], "citation": CITATION + "; Epoch's own evaluations (benchmarks_runs.csv)",
        })
        obs = obs[obs["value"].notna()]
        before = len(obs)
        obs = obs.sort_values(["value", "row_ref"], ascending=[False, True]).drop_duplicates(["model", "metric"])
        obs["cluster"] = obs["model"]
        return [SourceData("epoch_hub_runs", VERSION, "benchmark", LICENSE, CITATION, obs.drop(columns="version"),
                           rejected_frame(rejected),
                           notes=f"{before - len(obs)} repeated runs or versions of one model dropped (best kept)")]

    def _eci(self, path: Path, raw: pd.DataFrame) -> list[SourceData]:
        need = ("Model version", "ECI Score", "Release date", "Training compute (FLOP)")
        for column in need:
            if column not in raw.columns:
                raise InputError(str(path), f"missing column {column!r}", "give Epoch's ECI export", row=1)
        raw = raw.assign(row_ref=[str(i + 2) for i in range(len(raw))])
        raw_all = raw  # every release, scored or not, is a registry fact (date, organisation, accessibility)
        raw = raw[pd.to_numeric(raw["ECI Score"], errors="coerce").notna()]
        name = raw["Model name"].fillna(raw["Model version"]) if "Model name" in raw.columns else raw["Model version"]
        obs = pd.DataFrame({
            "model": name, "organization": raw.get("Organization"), "release_date": pd.to_datetime(raw["Release date"], errors="coerce"),
            "train_flop": pd.to_numeric(raw["Training compute (FLOP)"], errors="coerce"),
            "train_flop_note": "Epoch ECI file (Confidence: " + raw.get("Confidence", pd.Series("Unknown", index=raw.index)).fillna("Unknown") + ")",
            "metric": "eci", "kind": "benchmark", "value": pd.to_numeric(raw["ECI Score"]), "unit": "index",
            "original_unit": "ECI (IRT-style index)", "row_ref": raw["row_ref"], "citation": CITATION,
            "cluster": raw.get("Organization"),
        })
        before = len(obs)
        obs = obs.sort_values(["value", "row_ref"], ascending=[False, True]).drop_duplicates("model")
        date = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
        version = date.group(1) if date else "2025-12-05"
        return [SourceData("epoch_eci", version, "benchmark", LICENSE, CITATION, obs,
                           extra={"model_facts": eci_facts(raw_all, f"epoch_eci@{version}")},
                           notes=f"{before - len(obs)} reasoning-effort versions dropped (best ECI per model kept)")]

    def _metr(self, path: Path, raw: pd.DataFrame) -> list[SourceData]:
        obs = pd.DataFrame({
            "model": raw["Model version"], "organization": raw.get("Organization"),
            "release_date": pd.to_datetime(raw["Release date"], errors="coerce"),
            "train_flop": pd.to_numeric(raw["Training compute (FLOP)"], errors="coerce"),
            "train_flop_note": ("Epoch METR table: " + raw["Training compute notes"].fillna("no note")
                                if "Training compute notes" in raw.columns else "Epoch METR table"),
            "metric": "metr_p50_minutes", "kind": "horizon",
            "value": pd.to_numeric(raw["Time horizon"], errors="coerce"), "value_lo": pd.to_numeric(raw["CI_low"], errors="coerce"),
            "value_hi": pd.to_numeric(raw["CI_high"], errors="coerce"), "unit": "minutes", "original_unit": "minutes",
            "row_ref": [str(i + 2) for i in range(len(raw))], "citation": CITATION + "; METR time horizons",
        })
        obs = obs[obs["value"].notna() & obs["model"].notna()]
        return [SourceData("epoch_hub_metr", VERSION, "horizon", LICENSE, CITATION, obs)]


def eci_facts(raw: pd.DataFrame, origin: str) -> pd.DataFrame:
    """One registry fact per row of the ECI file: a release (`Model version`) of an Epoch model (`Model name`)."""
    def column(name: str) -> pd.Series:
        return raw[name] if name in raw.columns else pd.Series(None, index=raw.index, dtype="object")

    name = column("Model name").fillna(raw["Model version"])
    flop = pd.to_numeric(raw["Training compute (FLOP)"], errors="coerce")
    facts = pd.DataFrame({
        "origin": origin, "row_ref": raw["row_ref"], "name": name, "version_name": raw["Model version"],
        "display_name": column("Display name"), "organization": column("Organization"), "country": column("Country"),
        "release_date": pd.to_datetime(raw["Release date"], errors="coerce"), "train_flop": flop.where(flop > 0),
        "train_flop_lo": np.nan, "train_flop_hi": np.nan, "confidence": column("Confidence"),
        "accessibility": column("Model accessibility"), "params": np.nan,
        "citation": CITATION + "; epoch_capabilities_index.csv",
    })
    return facts[facts["name"].notna()].reset_index(drop=True)


def _model_versions(folder: Path) -> dict:
    """Epoch's version id -> model name map, read from model_versions.csv beside the tables."""
    mv = folder / "model_versions.csv"
    if not mv.exists():
        return {}
    try:
        table = pd.read_csv(mv, encoding="utf-8-sig", usecols=["id", "Model"], dtype=str)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(str(mv), f"cannot read the model-version map ({exc})",
                         "give Epoch's model_versions.csv with columns id and Model") from None
    table = table.dropna()
    return dict(zip(table["id"], table["Model"], strict=True))


ADAPTER = EpochHubAdapter()
