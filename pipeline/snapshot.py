"""Build the bundled snapshot in data/raw/ from the public formats, with the project's own adapters.

The public files are read into a scratch store (so the model registry is built and joined exactly as in
a normal ingest), then a compact selection is written as generic CSVs, each row citing its source,
version and citation; `models.csv` holds the Epoch facts the registry needs (every ECI release, and the
model-table rows of every model a bundled row names); `sources.toml` lists licence, citation and the
public URLs a refresh fetches; `aliases.toml` is the alias file the registry was built with.
"""

from __future__ import annotations

import gzip
import io
import json
import tempfile
from pathlib import Path

import pandas as pd

from pipeline import aliases, ingest, store
from pipeline.schema import InputError

# Public files read for the snapshot (relative to the shared data folder).
INPUTS = (
    "epoch_ai_models/notable_ai_models_2026-02.csv",
    "epoch_ai_models/all_ai_models_2025-04.csv",
    "obsscaling_ruan2024/eval_results/base_llm_benchmark_eval.csv",
    "epoch_benchmarking_hub/data/website/epoch_capabilities_index.csv",
    "epoch_benchmarking_hub/data/external_benchmark_mmlu.csv",
    "epoch_benchmarking_hub/data/external_benchmark_gsm8k.csv",
    "epoch_benchmarking_hub/data/external_benchmark_hellaswag.csv",
    "epoch_benchmarking_hub/data/external_benchmark_winogrande.csv",
    "epoch_benchmarking_hub/data/external_benchmark_metr.csv",
    "boardlaw_jones2021/elo_vs_train_flops_frontier_digitized.csv",
    "chinchilla_epoch_replication/svg_extracted_data.csv",
    "metr_time_horizon/benchmark_results_1_0.yaml",
    "metr_time_horizon/benchmark_results_1_1_2026-03-03.yaml",
    "metr_time_horizon/all_runs_th1.0_prerelease_2025-02-27.jsonl",
)
# Which stored series go into which bundled file.
SELECTION = {
    "benchmarks.csv": "kind = 'benchmark' AND (source = 'obsscaling_ruan2024' AND metric IN "
                      "('mmlu','arc_c','hellaswag','winogrande','truthfulqa','gsm8k') "
                      "OR source = 'epoch_eci' OR source LIKE 'epoch_hub_%') AND train_flop IS NOT NULL "
                      "OR source = 'epoch_eci' AND release_date IS NOT NULL",
    "elo.csv": "source = 'jones2021_hex_frontier'",
    "horizons.csv": "kind = 'horizon'",
    "loss.csv": "kind = 'loss'",
}
# What the model registry needs (data/raw/models.csv): every release in the ECI file (dated, with its
# organisation, country and accessibility, whether or not it has a score or compute), and the Epoch
# model-table rows of every model that a bundled observation or an ECI release names.
FACTS = """
    WITH used AS (
        SELECT DISTINCT model FROM model_aliases WHERE status = 'matched' AND source <> 'registry'
        UNION SELECT DISTINCT r.model FROM model_facts f JOIN model_aliases r ON r.source = 'registry'
            AND r.alias = trim(f.name, chr(10) || chr(13) || chr(9) || chr(32)) WHERE f.source = 'epoch_eci')
    SELECT split_part(f.origin, '@', 1) AS source, split_part(f.origin, '@', 2) AS source_version, f.row_ref,
           f.name, f.version_name, f.display_name, f.organization, f.country, f.release_date, f.train_flop,
           f.train_flop_lo, f.train_flop_hi, f.confidence, f.accessibility, f.params, f.citation, s.license
    FROM model_facts f JOIN sources s USING (source, source_version)
    JOIN model_aliases r ON r.source = 'registry' AND r.alias = trim(f.name, chr(10) || chr(13) || chr(9) || chr(32))
    WHERE f.source = 'epoch_eci' OR r.model IN (SELECT model FROM used)
    ORDER BY source, source_version, CAST(f.row_ref AS INTEGER)"""
COLUMNS = ("source", "source_version", "model", "organization", "release_date", "train_flop", "train_flop_note",
           "params", "metric", "kind", "value", "value_lo", "value_hi", "unit", "original_unit", "floor", "ceiling",
           "cluster", "citation", "license")
GH = "https://raw.githubusercontent.com"
STITCH = f"{GH}/epoch-research/benchmark-stitching/99a3dfc0f50de791047dfa725dfd171eca8d25e9/data"
EPOCH_DATA = ("CC BY 4.0", "Epoch AI, Benchmarking Hub and Epoch Capabilities Index (benchmark-stitching@99a3dfc)")
# source -> (licence, citation, public URLs a refresh fetches). Origins and commits as named in each
# folder's PROVENANCE.md under the shared data folder.
PUBLIC: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "obsscaling_ruan2024": ("Apache-2.0", "Ruan, Maddison & Hashimoto (2024), Observational Scaling Laws, arXiv 2405.10938",
                            (f"{GH}/ryoungj/ObsScaling/4d6e1e43fd2635d04654aa77d1df9d5266ea0382/eval_results/"
                             "base_llm_benchmark_eval.csv",)),
    "epoch_eci": (*EPOCH_DATA, (f"{STITCH}/website/epoch_capabilities_index.csv",)),
    "epoch_hub_mmlu": (*EPOCH_DATA, (f"{STITCH}/external_benchmark_mmlu.csv", f"{STITCH}/model_versions.csv")),
    "epoch_hub_gsm8k": (*EPOCH_DATA, (f"{STITCH}/external_benchmark_gsm8k.csv", f"{STITCH}/model_versions.csv")),
    "epoch_hub_hellaswag": (*EPOCH_DATA, (f"{STITCH}/external_benchmark_hellaswag.csv", f"{STITCH}/model_versions.csv")),
    "epoch_hub_winogrande": (*EPOCH_DATA, (f"{STITCH}/external_benchmark_winogrande.csv",
                                           f"{STITCH}/model_versions.csv")),
    "epoch_hub_metr": (*EPOCH_DATA, (f"{STITCH}/external_benchmark_metr.csv",)),
    "epoch_ai_models": ("CC BY 4.0", "Epoch AI, 'Data on AI Models', epoch.ai/data/ai-models (compute join)",
                        (f"{GH}/sidx04/karma-police/7d8a035ca075dac6fff73fa17093f81370d4c6a2/ai_models/"
                         "notable_ai_models.csv",
                         f"{GH}/simsharmaa/INFSCI1520/291adcd7bd58959d3db6382d8d2e07e96dc32b54/all_ai_models.csv")),
    "jones2021_hex_frontier": ("MIT", "Jones (2021), Scaling Scaling Laws with Board Games, arXiv 2104.03113",
                               (f"{GH}/andyljones/boardlaw/522b7fc9a747e6aee954357f30bb418b24fe326c/docs/"
                                "flops_curves.svg",)),
    "chinchilla_hoffmann2022": ("none stated (cite Besiroglu et al. 2024)",
                                "Hoffmann et al. (2022) Fig. 4 points as extracted by Besiroglu, Erdil, Barnett & You "
                                "(2024), arXiv 2404.10102",
                                (f"{GH}/dymil/analyzing-chinchilla/92258837425e1b5f2851d624287f0120583a3d0e/data/"
                                 "svg_extracted_data.csv",)),
    "metr_time_horizon": ("public, cite METR", "METR (2025), Measuring AI Ability to Complete Long Tasks, arXiv 2503.14499",
                          (f"{GH}/IAPS-AI/METR-Time-Horizons/0ce992b83d3dd31df443a84f6f9b79eff7143f4b/"
                           "benchmark_results_1_0.yaml",
                           f"{GH}/peterhurford/metr_graph/0a397e8a5c57e1eac7590e8268ef3997a9cd1fad/"
                           "benchmark_results_1_1.yaml")),
    "metr_runs": ("public, cite METR", "METR (2025), Measuring AI Ability to Complete Long Tasks, arXiv 2503.14499",
                  (f"{GH}/METR/eval-analysis-public/19b03113b7a28276593e2c2b9a86fbb508a89dba/data/external/"
                   "all_runs.jsonl",)),
}


def build_snapshot(shared: Path, out: Path) -> dict[str, int]:
    """Regenerate data/raw from the public files; returns rows written per file."""
    missing = [p for p in INPUTS if not (shared / p).exists()]
    if missing:
        raise InputError(str(shared), f"public file(s) not found: {', '.join(missing)}",
                         "point --shared at the folder holding the public data sets")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        db = Path(scratch) / "snapshot.duckdb"
        ingest.ingest([str(shared / p) for p in INPUTS], db=db)
        con = store.connect(db, read_only=True)
        try:
            counts = {}
            for name, where in SELECTION.items():
                frame = con.execute(
                    f"SELECT * FROM (SELECT o.*, s.license FROM observations o JOIN sources s "
                    f"USING (source, source_version)) WHERE {where} ORDER BY source, source_version, metric, model").df()
                counts[name] = _write_csv(frame[list(COLUMNS)], out / name)
            runs = con.execute("SELECT * EXCLUDE (source) FROM metr_runs ORDER BY run_key").df()
            facts = con.execute(FACTS).df()
        finally:
            con.close()
    buffer = io.StringIO()
    runs.to_csv(buffer, index=False, float_format="%.10g", lineterminator="\n")
    # mtime=0 keeps the gzip bytes identical across rebuilds
    (out / "metr_runs.csv.gz").write_bytes(gzip.compress(buffer.getvalue().encode(), mtime=0))
    counts["metr_runs.csv.gz"] = len(runs)
    counts["models.csv"] = _write_csv(facts, out / "models.csv")
    (out / "sources.toml").write_text(_sources_toml())
    # the alias file the registry was built with travels with the snapshot (a user's own groups included)
    used = aliases.alias_files()
    target = out / aliases.ALIAS_FILE
    if not any(p.resolve() == target.resolve() for p in used if p.exists()):
        target.write_text("\n".join(p.read_text(encoding="utf-8") for p in used if p.is_file()), encoding="utf-8")
    return counts


def _write_csv(frame: pd.DataFrame, path: Path) -> int:
    frame = frame.copy()
    frame["release_date"] = pd.to_datetime(frame["release_date"]).dt.strftime("%Y-%m-%d")
    path.write_text(frame.to_csv(index=False, float_format="%.10g", lineterminator="\n"))
    return len(frame)


def _sources_toml() -> str:
    lines = ["# Sources of the bundled snapshot (built by `scalegap snapshot`): licence, citation, and the",
             "# public URLs a refresh fetches (origin repositories and commits from each PROVENANCE.md).", ""]
    for source, (licence, citation, urls) in PUBLIC.items():
        lines += [f"[source.{source}]", f"license = {json.dumps(licence)}", f"citation = {json.dumps(citation)}",
                  "urls = [", *[f"    {json.dumps(url)}," for url in urls], "]", ""]
    return "\n".join(lines)
