"""Issue 2: every adapter on the public formats, idempotent re-ingest, versions, the bundled snapshot.

Read from the cuts in tests/fixtures/data (a few rows of each public file, tests/fixtures/README.md).
Figures are the public files' own: e.g. METR benchmark_results_1_0.yaml gives Claude 3.7 Sonnet
p50 = 56.09 min; counts are those of the cut files, counted in them.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import assert_rows_of_bundled_snapshot

from pipeline import ingest, store

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parent / "fixtures" / "data"  # cut public files
CLI = [sys.executable, "-m", "pipeline.cli"]
ALL_TABLES = ("sources", "observations", "rejected", "model_compute", "metr_runs", "metr_release_dates")


def digests(db: Path) -> dict[str, str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: store.table_digest(con, t) for t in ALL_TABLES}
    finally:
        con.close()


def records(rel: str) -> list[dict]:
    """The data records of a cut CSV file."""
    with open(SHARED / rel, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def query(db: Path, sql: str, params: list | None = None):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory) -> Path:
    """Every cut public file ingested once through the real stage."""
    db = tmp_path_factory.mktemp("shared") / "scalegap.duckdb"
    ingest.ingest([str(SHARED)], db=db, run_id="test-ingest")
    return db


def test_every_public_folder_yields_observations(shared_db):
    per_source = query(shared_db, "SELECT source, sum(n_observations) AS n FROM sources GROUP BY source")
    n = dict(zip(per_source["source"], per_source["n"], strict=True))
    # One or more sources from every public folder.
    for prefix in ("obsscaling_ruan2024", "epoch_hub_mmlu", "epoch_eci", "epoch_ai_models", "chinchilla", "jones2021_hex_runs",
                   "jones2021_hex_frontier", "lmarena_catalog", "chatbot_arena_history", "metr_time_horizon",
                   "open_llm_leaderboard_v2", "lmarena_text_csv"):
        hits = [s for s in n if s.startswith(prefix)]
        assert hits, prefix
        if prefix != "epoch_ai_models":  # a compute lookup: stored in model_compute, not observations
            assert sum(n[s] for s in hits) > 0, prefix
    # Row counts of the simplest tables, counted in the files themselves: every row is read.
    assert n["jones2021_hex_runs"] == len(records("boardlaw_jones2021/elo_vs_train_flops_runs_digitized.csv"))
    assert n["jones2021_hex_frontier"] == len(records("boardlaw_jones2021/elo_vs_train_flops_frontier_digitized.csv"))
    # six benchmarks per model
    assert n["open_llm_leaderboard_v2"] == 6 * len(records("llm_leaderboard_csv/open_llm_leaderboard_v2_2025-03-21.csv"))
    # Files read once never get a "changed content" label (raw vs style-controlled arena exports).
    at = query(shared_db, "SELECT source, source_version FROM sources WHERE source_version LIKE '%@%'")
    assert at.empty, at


def test_epoch_hub_percent_strings_and_bom(shared_db):
    # external_benchmark_mmlu.csv starts with a UTF-8 BOM and writes "77.0%" for Amazon Nova Lite.
    assert (SHARED / "epoch_benchmarking_hub/data/external_benchmark_mmlu.csv").read_bytes()[:3] == b"\xef\xbb\xbf"
    obs = query(shared_db, "SELECT model, value, unit, original_unit FROM observations "
                           "WHERE source = 'epoch_hub_mmlu' AND model ILIKE '%nova lite%'")
    assert len(obs) == 1
    assert obs["value"].iloc[0] == pytest.approx(0.770, abs=1e-9)
    assert obs["unit"].iloc[0] == "fraction"
    values = query(shared_db, "SELECT min(value) AS lo, max(value) AS hi FROM observations "
                              "WHERE source LIKE 'epoch_hub_%' AND unit = 'fraction'")
    assert 0.0 <= values["lo"].iloc[0] and values["hi"].iloc[0] <= 1.0
    # The BOM must not leak into a column name: every hub source found its score column.
    assert query(shared_db, "SELECT count(*) AS n FROM sources WHERE source LIKE 'epoch_hub_%'")["n"].iloc[0] >= 20


def test_obsscaling_flop_units(shared_db):
    # Llama-2-7b: FLOPs (1E21) = 84.0 in base_llm_benchmark_eval.csv -> 8.4e22 raw FLOP.
    obs = query(shared_db, "SELECT train_flop, value FROM observations WHERE source = 'obsscaling_ruan2024' "
                           "AND source_version = '2024-10-01' AND model = 'meta-llama/Llama-2-7b-hf' AND metric = 'mmlu'")
    assert len(obs) == 1
    assert obs["train_flop"].iloc[0] == pytest.approx(8.4e22, rel=1e-12)
    assert obs["value"].iloc[0] == pytest.approx(0.4379609636092418, rel=1e-12)
    flop = query(shared_db, "SELECT min(train_flop) AS lo FROM observations WHERE source LIKE 'obsscaling%'")
    assert flop["lo"].iloc[0] > 1e18  # no 1e21-unit or log10 values left


def test_compute_joined_from_epoch_keeps_confidence(shared_db):
    joined = query(shared_db, "SELECT model, train_flop, train_flop_note FROM observations "
                              "WHERE train_flop_note LIKE 'joined from Epoch%'")
    assert len(joined) > 50
    assert joined["train_flop_note"].str.contains(r"\(Confidence: \w+\)").all()
    assert (joined["train_flop"] > 1e18).all()
    grades = set(joined["train_flop_note"].str.extract(r"Confidence: (\w+)")[0])
    assert {"Confident", "Likely", "Speculative"} <= grades


def test_arena_history_snapshots_and_duplicates(shared_db):
    versions = query(shared_db, "SELECT source_version, notes FROM sources WHERE source = 'chatbot_arena_history'")
    rows = [tuple(r.values()) for r in records("chatbot_arena_history/alltime.csv")]
    assert len(versions) == len({r[-1] for r in rows}) > 1  # one version per snapshot date
    assert versions["source_version"].str.fullmatch(r"snapshot-\d{8}").all()
    duplicates = len(rows) - len(set(rows))
    assert duplicates > 0 and versions["notes"].str.contains(f"{duplicates} exact duplicate rows dropped").sum() == 1
    # Within one snapshot, one row per model (that is what "compare within a snapshot" needs).
    dup = query(shared_db, "SELECT count(*) AS n FROM (SELECT source_version, model, metric, count(*) c "
                           "FROM observations WHERE source = 'chatbot_arena_history' GROUP BY ALL HAVING c > 1)")
    assert dup["n"].iloc[0] == 0


def test_metr_versions_kept_apart(shared_db):
    obs = query(shared_db, "SELECT source_version, value, value_lo, value_hi FROM observations "
                           "WHERE source = 'metr_time_horizon' AND metric = 'metr_p50_minutes' "
                           "AND model LIKE 'claude_3_7_sonnet%' ORDER BY source_version")
    v10 = obs[obs["source_version"] == "METR-Horizon-v1"]
    # benchmark_results_1_0.yaml: claude_3_7_sonnet p50 = 56.0916 min, CI 29.33-93.42.
    assert v10["value"].iloc[0] == pytest.approx(56.09, abs=0.01)
    assert v10["value_lo"].iloc[0] == pytest.approx(29.33, abs=0.01)
    assert v10["value_hi"].iloc[0] == pytest.approx(93.42, abs=0.01)
    later = obs[obs["source_version"].str.startswith("METR-Horizon-v1.1")]
    assert len(later) == 3 and later["source_version"].nunique() == 3
    assert (later["value"] - 56.09).abs().min() > 1  # 1.1 re-estimates, never merged into 1.0


def test_metr_runs_table(shared_db):
    runs = query(shared_db, "SELECT count(*) AS n, count(DISTINCT run_key) AS k, count(DISTINCT task_id) AS t, "
                            "min(human_minutes) AS lo FROM metr_runs")
    lines = [json.loads(line) for line in (SHARED / "metr_time_horizon/all_runs_th1.0_prerelease_2025-02-27.jsonl")
             .read_text().splitlines()]
    assert runs["n"].iloc[0] == len(lines) == runs["k"].iloc[0]
    assert runs["t"].iloc[0] == len({r["task_id"] for r in lines}) > 1
    assert runs["lo"].iloc[0] > 0


def test_no_duplicate_keys_and_positive_compute(shared_db):
    dup = query(shared_db, "SELECT count(*) - count(DISTINCT (source, source_version, model, metric)) AS d "
                           "FROM observations")
    assert dup["d"].iloc[0] == 0
    bad = query(shared_db, "SELECT count(*) AS n FROM observations WHERE train_flop <= 0")
    assert bad["n"].iloc[0] == 0


def test_reingest_changes_nothing(shared_db):
    before = digests(shared_db)
    summary = ingest.ingest([str(SHARED)], db=shared_db, run_id="test-ingest-again")
    assert summary.versions == [] and summary.observations == 0
    assert len(summary.skipped_unchanged) > 50
    assert digests(shared_db) == before


def test_changed_file_is_new_version(tmp_path, shared_data):
    src = shared_data / "obsscaling_ruan2024/eval_results/base_llm_benchmark_eval.csv"
    first = tmp_path / "a" / src.name
    first.parent.mkdir()
    shutil.copy(src, first)
    db = tmp_path / "v.duckdb"
    ingest.ingest([str(first)], db=db)
    lines = first.read_text(encoding="utf-8").splitlines(keepends=True)
    # Change one published accuracy (Llama-2-7b MMLU) as a corrected upstream file would.
    lines[1] = lines[1].replace("0.4379609636092418", "0.4400000000000000")
    changed = tmp_path / "b" / src.name
    changed.parent.mkdir()
    changed.write_text("".join(lines), encoding="utf-8")
    summary = ingest.ingest([str(changed)], db=db)
    assert len(summary.versions) == 1
    new_version = summary.versions[0][1]
    assert new_version.startswith("2024-10-01@") and new_version != "2024-10-01"
    vals = query(db, "SELECT source_version, value FROM observations WHERE model = 'meta-llama/Llama-2-7b-hf' "
                     "AND metric = 'mmlu' ORDER BY source_version")
    assert list(vals["value"].round(6)) == [0.437961, 0.44]  # both kept, never mixed


def test_bundled_snapshot_without_shared(tmp_path):
    """`scalegap ingest data/raw` from a copy of the project with no ../shared beside it."""
    project = tmp_path / "fresh"
    shutil.copytree(ROOT / "data" / "raw", project / "data" / "raw")
    db = project / "store.duckdb"
    done = subprocess.run([*CLI, "ingest", "data/raw", "--db", str(db), "--json"], cwd=project,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not (project.parent / "shared").exists()
    bench = query(db, "SELECT count(DISTINCT model) AS models, count(DISTINCT metric) AS metrics FROM observations "
                      "WHERE kind = 'benchmark' AND train_flop > 0")
    assert bench["models"].iloc[0] >= 100 and bench["metrics"].iloc[0] >= 3
    elo = query(db, "SELECT count(*) AS n FROM observations WHERE kind = 'elo' AND train_flop > 0")
    assert elo["n"].iloc[0] > 50
    metr = query(db, "SELECT count(*) AS n FROM observations WHERE metric = 'metr_p50_minutes' "
                     "AND release_date IS NOT NULL")
    assert metr["n"].iloc[0] >= 10
    loss = query(db, "SELECT count(*) AS n FROM observations WHERE kind = 'loss' AND train_flop > 0")
    assert loss["n"].iloc[0] > 20
    lic = query(db, "SELECT count(*) AS n FROM sources WHERE license IS NULL OR license = ''")
    assert lic["n"].iloc[0] == 0
    assert query(db, "SELECT count(*) AS n FROM metr_runs")["n"].iloc[0] == 7063


def test_snapshot_regenerates_identically(tmp_path, shared_data):
    out = tmp_path / "raw"
    done = subprocess.run([*CLI, "snapshot", "--shared", str(shared_data), "--out", str(out), "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert_rows_of_bundled_snapshot(out, ROOT / "data" / "raw")
