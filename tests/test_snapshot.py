"""The bundled snapshot in data/raw (issue 2): rebuilt identically by the project's own code, ingestible
on a machine without the public data folder, covering all three kinds of published results, every
row citing its source and version, every source with a licence and the public URLs a refresh fetches."""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_rows_of_bundled_snapshot, query_frame

from pipeline.snapshot import build_snapshot

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw"
CSVS = ("benchmarks.csv", "elo.csv", "horizons.csv", "loss.csv")
CLI = [sys.executable, "-m", "pipeline.cli"]


@pytest.fixture(scope="module")
def snapshot_db(tmp_path_factory) -> Path:
    """`scalegap ingest data/raw` in a copy of the project that has no public data folder beside it."""
    project = tmp_path_factory.mktemp("fresh") / "project"
    shutil.copytree(RAW, project / "data" / "raw")
    db = project / "store.duckdb"
    done = subprocess.run([*CLI, "ingest", "data/raw", "--db", str(db), "--quiet"], cwd=project,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return db


def test_snapshot_regenerates_identically(tmp_path, shared_data):
    """Rebuilt from the cut public files, every row is the bundled snapshot's row, byte for byte."""
    counts = build_snapshot(shared_data, tmp_path / "raw")
    assert_rows_of_bundled_snapshot(tmp_path / "raw", RAW)
    runs = (shared_data / "metr_time_horizon/all_runs_th1.0_prerelease_2025-02-27.jsonl").read_text()
    assert counts["metr_runs.csv.gz"] == len(runs.splitlines())  # every run of the JSONL


def test_snapshot_is_produced_not_copied(shared_data):
    """No bundled file is a verbatim public file, and the whole snapshot stays small."""
    public = {hashlib.sha256(p.read_bytes()).hexdigest() for p in shared_data.rglob("*") if p.is_file()}
    total = 0
    for path in RAW.iterdir():
        data = path.read_bytes()
        total += len(data)
        assert hashlib.sha256(data).hexdigest() not in public, path.name
    assert total < 3 * 2**20


def test_ingest_without_shared_folder(snapshot_db):
    locations = query_frame(snapshot_db, "SELECT location FROM sources")["location"]
    assert not locations.str.contains("shared").any()
    assert query_frame(snapshot_db, "SELECT count(*) AS n FROM rejected")["n"].iloc[0] == 0


def test_coverage_benchmarks_with_compute(snapshot_db):
    per_metric = query_frame(snapshot_db, "SELECT source, metric, count(DISTINCT model) AS models FROM observations "
                                 "WHERE kind = 'benchmark' AND train_flop > 0 GROUP BY 1, 2")
    models = query_frame(snapshot_db, "SELECT count(DISTINCT model) AS n FROM observations "
                             "WHERE kind = 'benchmark' AND train_flop > 0")["n"].iloc[0]
    assert models >= 100
    obs = per_metric[per_metric["source"] == "obsscaling_ruan2024"].set_index("metric")["models"]
    assert set(obs.index) == {"mmlu", "arc_c", "hellaswag", "winogrande", "truthfulqa", "gsm8k"}
    assert (obs >= 100).all()
    assert per_metric.query("source == 'epoch_eci'")["models"].iloc[0] >= 50
    hub = per_metric[per_metric["source"].str.startswith("epoch_hub_")]
    assert len(hub) >= 3 and (hub["models"] >= 20).all()
    notes = query_frame(snapshot_db, "SELECT DISTINCT train_flop_note FROM observations WHERE source = 'epoch_hub_mmlu'")
    assert notes["train_flop_note"].str.contains(r"Confidence: \w+", regex=True).all()


def test_coverage_elo_horizons_loss(snapshot_db):
    hex_points = query_frame(snapshot_db, "SELECT metric, count(*) AS n FROM observations WHERE kind = 'elo' "
                                 "AND train_flop > 0 GROUP BY 1").set_index("metric")["n"]
    assert {f"hex{n}_elo_vs_perfect" for n in range(3, 10)} <= set(hex_points.index)
    assert (hex_points >= 20).all()
    metr = query_frame(snapshot_db, "SELECT source_version, metric, count(*) AS n FROM observations "
                           "WHERE source = 'metr_time_horizon' AND release_date IS NOT NULL GROUP BY 1, 2")
    versions = set(metr["source_version"])
    assert any("v1.1" in v for v in versions) and any(v.endswith("v1") for v in versions)
    assert set(metr["metric"]) == {"metr_p50_minutes", "metr_p80_minutes"} and (metr["n"] >= 15).all()
    with_compute = query_frame(snapshot_db, "SELECT count(*) AS n FROM observations WHERE source = 'epoch_hub_metr' "
                                   "AND train_flop > 0")["n"].iloc[0]
    assert with_compute >= 15
    loss = query_frame(snapshot_db, "SELECT metric, count(*) AS n, min(value) AS lo FROM observations WHERE kind = 'loss' "
                           "AND train_flop > 0 AND params > 0 GROUP BY 1").set_index("metric")
    assert loss.loc["loss", "n"] == 245 and loss.loc["loss", "lo"] > 1.5  # nats per token, Chinchilla Fig. 4
    # the compute-efficient frontier is a subset that reaches the same lowest loss
    assert 0 < loss.loc["loss_frontier", "n"] < 245 and loss.loc["loss_frontier", "lo"] == loss.loc["loss", "lo"]
    assert query_frame(snapshot_db, "SELECT count(*) AS n FROM metr_runs")["n"].iloc[0] == 7063


def test_every_row_cites_source_version_and_licence():
    meta = tomllib.loads((RAW / "sources.toml").read_text())["source"]
    for name in CSVS:
        frame = pd.read_csv(RAW / name)
        for column in ("source", "source_version", "citation", "license"):
            assert frame[column].notna().all() and (frame[column].astype(str).str.strip() != "").all(), (name, column)
        assert set(frame["source"]) <= set(meta), name
    for source, entry in meta.items():
        assert entry["license"] and entry["citation"], source
        assert entry["urls"], source
        for url in entry["urls"]:
            # A refresh fetches pinned files: raw GitHub URLs at a full commit hash.
            assert re.match(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/", url), url


def test_models_file_has_every_eci_release_with_citation():
    """models.csv (what the registry needs): every release of the ECI file, dated and with its accessibility
    where Epoch gives one, and each row naming its public source, version, citation and licence."""
    meta = tomllib.loads((RAW / "sources.toml").read_text())["source"]
    frame = pd.read_csv(RAW / "models.csv")
    for column in ("source", "source_version", "row_ref", "name", "citation", "license"):
        assert frame[column].notna().all(), column
    assert set(frame["source"]) <= set(meta)
    eci = frame[frame["source"] == "epoch_eci"]
    assert len(eci) == 426 and eci["row_ref"].is_unique  # PROVENANCE.md: 426 model versions in the Dec 2025 file
    assert eci["release_date"].notna().sum() == 400      # 26 without a release date in the file
    assert eci["accessibility"].notna().sum() == 353     # 73 without accessibility in the file
    assert (frame["source"] == "epoch_ai_models").sum() > 100


def test_registry_from_the_bundle(snapshot_db):
    """The names of issue 17 resolve to one model each through the bundled registry; METR's published horizons
    gain compute through it."""
    aliases = query_frame(snapshot_db, "SELECT source, alias, model, status FROM model_aliases")
    for names in (("claude-3-5-sonnet-20241022", "claude_3_5_sonnet_20241022", "Claude 3.5 Sonnet (New)"),
                  ("gpt-4-0314", "GPT-4 0314")):
        models = set(aliases[aliases["alias"].isin(names)]["model"])
        assert len(models) == 1 and None not in models, (names, models)
        assert set(aliases[aliases["alias"].isin(names)]["status"]) == {"matched"}
    compute = query_frame(snapshot_db, "SELECT source_version, count(train_flop) AS n FROM observations WHERE "
                              "source = 'metr_time_horizon' AND metric = 'metr_p50_minutes' GROUP BY 1")
    assert compute["n"].sum() >= 25  # 12 before the registry (11 in v1, 1 in v1.1)


def test_metr_runs_file_matches_the_runs_adapter():
    with gzip.open(RAW / "metr_runs.csv.gz", "rt") as handle:
        header = handle.readline().strip().split(",")
    for column in ("alias", "task_id", "task_family", "human_minutes", "score_binarized", "invsqrt_task_weight"):
        assert column in header
