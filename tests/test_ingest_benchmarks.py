"""Benchmark-with-compute adapters on the public formats (issue 2), and the generic CSV's unit
handling. The files are cuts of the public ones (tests/fixtures/data, tests/fixtures/README.md); the
figures quoted are the public files' own, the counts those of the cut files, counted in them."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest

from pipeline import ingest, store
from pipeline.schema import InputError
from pipeline.sources import adapter_for, chinchilla, epoch_hub, epoch_models, obsscaling, open_llm
from pipeline.sources.generic_csv import read_generic

HUB = Path("epoch_benchmarking_hub/data")
SHARED_DATA = Path(__file__).resolve().parent / "fixtures" / "data"  # cut public files
TABLES = ("sources", "observations", "rejected", "model_compute", "model_aliases")


def records(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def _one(adapter, path: Path):
    [data] = adapter.read(path)
    return data


def _digests(db: Path) -> dict[str, str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: store.table_digest(con, t) for t in TABLES}
    finally:
        con.close()


def _query(db: Path, sql: str):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


# --- adapters, one file each ---------------------------------------------------------------------

def test_obsscaling_flop_units_and_benchmarks(shared_data):
    path = shared_data / "obsscaling_ruan2024/eval_results/base_llm_benchmark_eval.csv"
    data = _one(obsscaling.ADAPTER, path)
    obs = data.observations
    llama = obs[(obs["model"] == "meta-llama/Llama-2-7b-hf") & (obs["metric"] == "mmlu")].iloc[0]
    # File row 2: FLOPs (1E21) = 84.0 -> 8.4e22 raw FLOP; MMLU 0.4379609636092418.
    assert llama["train_flop"] == pytest.approx(8.4e22, rel=1e-12)
    assert llama["value"] == pytest.approx(0.4379609636092418, rel=1e-12)
    assert llama["floor"] == 0.25 and llama["cluster"] == "Llama-2" and llama["params"] == pytest.approx(7e9)
    assert set(obs["metric"]) == {"mmlu", "arc_c", "hellaswag", "winogrande", "truthfulqa", "gsm8k",
                                  "xwinograd", "humaneval"}
    with_flop = [r for r in records(path) if r["FLOPs (1E21)"]]
    assert obs["model"].nunique() == len(with_flop) and (obs["train_flop"] > 1e18).all()
    assert obs.loc[obs["metric"] == "winogrande", "floor"].eq(0.5).all()
    # Models with no published FLOPs are rejected with a reason, never silently dropped.
    assert len(data.rejected) > 0 and data.rejected["reason"].str.contains("no training compute").all()


def test_obsscaling_instruct_skips_normalised_arena_elo(shared_data):
    data = _one(obsscaling.ADAPTER, shared_data / "obsscaling_ruan2024/eval_results/instruct_llm_benchmark_eval.csv")
    assert data.source == "obsscaling_ruan2024_instruct"
    assert not data.observations["metric"].str.contains("elo", case=False).any()
    assert set(data.rejected["column_name"]) == {"Arena-Elo", "MTBench"}
    gpt4 = data.observations.query("model == 'gpt-4-0613' and metric == 'mmlu'").iloc[0]
    assert gpt4["value"] == pytest.approx(0.864) and np.isnan(gpt4["train_flop"])


def test_epoch_hub_percent_strings_bom_and_embedded_newlines(shared_data):
    path = shared_data / HUB / "external_benchmark_mmlu.csv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # the file really carries a BOM
    data = _one(epoch_hub.ADAPTER, path)
    obs = data.observations
    # 'amazon.nova-lite-v1:0' -> Epoch 'Amazon Nova Lite' (model_versions.csv); published "77.0%".
    nova = obs[obs["model"] == "Amazon Nova Lite"].iloc[0]
    assert nova["value"] == pytest.approx(0.77) and nova["original_unit"] == "percent string"
    assert nova["floor"] == 0.25 and nova["ceiling"] == 1.0
    assert obs["value"].between(0, 1).all()
    # More physical lines than records: notes with newlines stay inside one record; versions of one
    # model are deduplicated and the count is reported.
    published = records(path)
    assert len(path.read_text(encoding="utf-8-sig").splitlines()) > len(published) + 1
    dropped = int(data.notes.split(":")[1].split()[0])
    assert dropped > 0 and len(obs) + dropped + len(data.rejected) == len(published)
    assert obs["model"].is_unique


def test_epoch_hub_zero_to_hundred_elo_and_cost_columns(shared_data):
    aider = _one(epoch_hub.ADAPTER, shared_data / HUB / "external_benchmark_aider_polyglot.csv")
    # gpt-5-2025-08-07_high 'Percent correct' 88.000 on a 0-100 scale.
    assert aider.observations["value"].max() == pytest.approx(0.88)
    assert set(aider.observations["original_unit"]) == {"0-100 number"}
    assert "Cost" in set(aider.rejected["column_name"])
    mc = _one(epoch_hub.ADAPTER, shared_data / HUB / "external_benchmark_mcbench.csv")
    elo = mc.observations[mc.observations["metric"] == "mcbench_elo"]
    assert set(elo["unit"]) == {"elo"} and set(elo["kind"]) == {"elo"}
    assert elo["value"].max() == pytest.approx(1312)  # Claude 3.7 Sonnet, row 2 (empty version, named)
    writing = _one(epoch_hub.ADAPTER, shared_data / HUB / "external_benchmark_lech_mazur_writing.csv")
    assert set(writing.observations["unit"]) == {"score"} and writing.observations["value"].max() == pytest.approx(8.39)


def test_every_epoch_hub_table_is_mapped(shared_data):
    files = sorted((shared_data / HUB).glob("external_benchmark_*.csv"))
    # 37 tables ship in the shared copy (PROVENANCE.md counts 40 upstream); each has a mapping.
    assert len(files) >= 37
    assert {p.stem.removeprefix("external_benchmark_") for p in files} == set(epoch_hub.SCORES) | {"metr"}
    for path in files:
        [data] = epoch_hub.ADAPTER.read(path)
        assert len(data.observations) > 0, path.name
        fractions = data.observations[data.observations["unit"] == "fraction"]
        assert fractions["value"].between(0, 1).all(), path.name


def test_eci_compute_confidence_and_effort_dedupe(shared_data):
    data = _one(epoch_hub.ADAPTER, shared_data / HUB / "website/epoch_capabilities_index_2026-03-09.csv")
    obs = data.observations
    assert data.source_version == "2026-03-09"
    gpt5 = obs[obs["model"] == "GPT-5"].iloc[0]
    # gpt-5-2025-08-07_high: ECI 150.0, compute 6.6e25 (Speculative) in the Mar 2026 file.
    assert gpt5["value"] == pytest.approx(150.0) and gpt5["train_flop"] == pytest.approx(6.6e25)
    assert "Speculative" in gpt5["train_flop_note"] and gpt5["unit"] == "index"
    assert obs["model"].is_unique and "reasoning-effort versions dropped" in data.notes
    assert int(data.notes.split()[0]) > 0


def test_epoch_metr_table_is_horizon_in_minutes(shared_data):
    data = _one(epoch_hub.ADAPTER, shared_data / HUB / "external_benchmark_metr.csv")
    obs = data.observations
    assert set(obs["metric"]) == {"metr_p50_minutes"} and set(obs["kind"]) == {"horizon"}
    published = records(shared_data / HUB / "external_benchmark_metr.csv")
    assert len(obs) == len(published)
    assert obs["train_flop"].notna().sum() == sum(bool(r["Training compute (FLOP)"]) for r in published) > 0
    assert (obs["value_lo"] <= obs["value"]).all() and (obs["value"] <= obs["value_hi"]).all()


def test_epoch_models_keep_confidence(shared_data):
    data = _one(epoch_models.ADAPTER, shared_data / "epoch_ai_models/notable_ai_models_2026-02.csv")
    table = data.extra["model_compute"]
    assert data.kind == "metadata" and data.observations.empty
    llama = table[table["model"] == "LLaMA-65B"].iloc[0]
    assert llama["train_flop"] == pytest.approx(5.5e23) and llama["confidence"] == "Confident"
    assert table.loc[table["model"] == "Claude 3.5 Sonnet", "confidence"].iloc[0] == "Speculative"
    assert (table["train_flop"] > 0).all() and table["model"].is_unique


def test_chinchilla_loss_points(shared_data):
    path = shared_data / "chinchilla_epoch_replication/svg_extracted_data.csv"
    data = _one(chinchilla.ADAPTER, path)
    every = data.observations[data.observations["metric"] == "loss"]
    n = len(records(path))
    assert len(every) == n and set(every["unit"]) == {"nats"} and set(data.observations["kind"]) == {"loss"}
    # the compute-efficient frontier: no run with less (or equal) compute reached a lower loss
    front = data.observations[data.observations["metric"] == "loss_frontier"].sort_values("train_flop")
    assert 0 < len(front) < n and set(front["model"]) <= set(every["model"])
    for _, row in front.iterrows():
        cheaper = every[every["train_flop"] <= row["train_flop"]]
        assert row["value"] <= cheaper["value"].min() + 1e-12
    obs = every
    first = obs.iloc[0]  # file row 2: 6.80e9 params, 9.99e18 FLOP, loss 5.0056
    assert first["params"] == pytest.approx(6795600349.289497)
    assert first["train_flop"] == pytest.approx(9.993852799709755e18) and first["value"] == pytest.approx(5.005582)


def test_open_llm_has_params_but_no_compute(shared_data):
    path = shared_data / "llm_leaderboard_csv/open_llm_leaderboard_v2_2025-03-21.csv"
    assert adapter_for(path) is open_llm.ADAPTER
    data = _one(open_llm.ADAPTER, path)
    obs = data.observations
    assert obs["train_flop"].isna().all() and obs["params"].notna().mean() > 0.9
    assert set(obs["train_flop_note"]) == {open_llm.NO_COMPUTE}
    assert obs["value"].between(0, 1).all()
    assert obs.loc[obs["metric"] == "openllm_gpqa", "floor"].eq(0.25).all()


# --- through the store ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bench_db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench") / "in"
    for rel in ("epoch_ai_models/notable_ai_models_2026-02.csv",
                "obsscaling_ruan2024/eval_results/instruct_llm_benchmark_eval.csv",
                "llm_leaderboard_csv/open_llm_leaderboard_v2_2025-03-21.csv",
                "epoch_benchmarking_hub/data/model_versions.csv",
                "epoch_benchmarking_hub/data/external_benchmark_mmlu.csv",
                "epoch_benchmarking_hub/data/external_benchmark_winogrande.csv"):
        (folder / Path(rel).parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(SHARED_DATA / rel, folder / Path(rel).parent.name / Path(rel).name)
    db = folder.parent / "bench.duckdb"
    ingest.ingest([str(folder)], db=db, run_id="bench")
    return db, folder


def test_compute_joined_through_aliases_with_confidence(bench_db):
    db, _ = bench_db
    row = _query(db, "SELECT train_flop, train_flop_note FROM observations "
                     "WHERE source = 'epoch_hub_mmlu' AND model = 'LLaMA-65B'").iloc[0]
    assert row["train_flop"] == pytest.approx(5.5e23)
    assert "notable_ai_models_2026-02" in row["train_flop_note"] and "Confidence: Confident" in row["train_flop_note"]
    joined = _query(db, "SELECT count(*) AS n FROM observations WHERE source = 'epoch_hub_mmlu' "
                        "AND train_flop IS NOT NULL")["n"].iloc[0]
    assert joined >= 2  # notable models only here: LLaMA-65B and one more in the cut
    # every joined model's spelling is a matched alias in the registry (the alias file, or a normalised name)
    matched = _query(db, "SELECT count(DISTINCT alias) AS n FROM model_aliases WHERE status = 'matched' "
                         "AND source = 'epoch_hub_mmlu'")["n"].iloc[0]
    assert matched >= joined
    # Parameters-only rows never gain compute, even where a name would match.
    leaked = _query(db, "SELECT count(*) AS n FROM observations WHERE source = 'open_llm_leaderboard_v2' "
                        "AND train_flop IS NOT NULL")["n"].iloc[0]
    assert leaked == 0


def test_reingest_changes_nothing(bench_db):
    db, folder = bench_db
    before = _digests(db)
    summary = ingest.ingest([str(folder)], db=db, run_id="bench-again")
    assert summary.observations == 0 and summary.versions == []
    assert _digests(db) == before


def test_changed_file_is_new_version(bench_db, tmp_path):
    db, folder = bench_db
    src = folder / "data" / "external_benchmark_winogrande.csv"
    changed = tmp_path / "data" / src.name
    changed.parent.mkdir()
    shutil.copy(folder / "data" / "model_versions.csv", changed.parent / "model_versions.csv")
    text = src.read_text(encoding="utf-8-sig")
    changed.write_text(text.replace("%", "0%", 1), encoding="utf-8")  # one published score corrected
    copy = tmp_path / "copy.duckdb"
    shutil.copy(db, copy)
    summary = ingest.ingest([str(changed)], db=copy, run_id="bench-changed")
    versions = [v for s, v in summary.versions if s == "epoch_hub_winogrande"]
    assert len(versions) == 1 and versions[0] != epoch_hub.VERSION
    counts = _query(copy, "SELECT source_version, count(*) AS n FROM observations "
                          "WHERE source = 'epoch_hub_winogrande' GROUP BY 1")
    assert len(counts) == 2  # both versions kept side by side, never merged


# --- generic CSV units ---------------------------------------------------------------------------

def test_generic_units_normalised_at_the_door(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("model,metric,value,train_flop_1e21,organization\n"
                    "A,mmlu,77.0%,3.1,Org\nB,mmlu,0.61,80,Org\n")
    [data] = read_generic(path)
    obs = data.observations.set_index("model")
    assert obs.at["A", "value"] == pytest.approx(0.77) and obs.at["A", "original_unit"] == "percent string"
    assert obs.at["A", "train_flop"] == pytest.approx(3.1e21) and obs.at["B", "train_flop"] == pytest.approx(8e22)
    assert data.source == "mine" and (obs["ceiling"] == 1.0).all()

    logs = tmp_path / "logs.csv"
    logs.write_text("model,metric,value,train_flop_log10\nA,mmlu,0.5,23.5\n")
    [data] = read_generic(logs)
    assert data.observations["train_flop"].iloc[0] == pytest.approx(10 ** 23.5)

    bad = tmp_path / "bad.csv"
    bad.write_text("model,metric,value,train_flop\nA,mmlu,0.5,23.5\n")
    with pytest.raises(InputError) as err:
        read_generic(bad)
    assert err.value.row == "2" and err.value.column == "train_flop" and "3.16e+23" in str(err.value)


def test_generic_groups_rows_by_source(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("model,metric,value,release_date,source,source_version,citation,license\n"
                    "A,mmlu,0.5,2024-01-02,paper_a,v1,Paper A (2024),CC BY 4.0\n"
                    "B,mmlu,0.6,2024-05-02,paper_b,v3,Paper B (2025),MIT\n"
                    "C,mmlu,0.6,,paper_b,v3,Paper B (2025),MIT\n")
    datas = read_generic(path)
    assert [(d.source, d.source_version, d.license) for d in datas] == [("paper_a", "v1", "CC BY 4.0"),
                                                                         ("paper_b", "v3", "MIT")]
    rejected = datas[0].rejected
    assert list(rejected["row_ref"]) == ["4"] and "no training compute, release date or inference budget" in rejected["reason"][0]
