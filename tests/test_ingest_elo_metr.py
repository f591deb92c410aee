"""Elo tables (Jones Hex, LMArena, arena history) and METR horizon formats on the public formats.

The files are cuts of the public ones (tests/fixtures/data, tests/fixtures/README.md). Figures quoted
are the published files' own (each check says which); counts are those of the cut files, counted in
them by the helpers below, never by the adapters under test.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import ingest, store
from pipeline.schema import InputError, validate_observations
from pipeline.sources import adapter_for, arena_history, jones_hex, lmarena, metr

CLI = [sys.executable, "-m", "pipeline.cli"]
SHARED_DATA = Path(__file__).resolve().parent / "fixtures" / "data"  # cut public files
MY_TABLES = ("sources", "observations", "rejected", "metr_runs", "metr_release_dates")
METR = "metr_time_horizon"
RUNS_JSONL = f"{METR}/all_runs_th1.0_prerelease_2025-02-27.jsonl"
MY_FILES = (
    "boardlaw_jones2021/elo_vs_train_flops_frontier_digitized.csv",
    "boardlaw_jones2021/elo_vs_train_flops_runs_digitized.csv",
    "lmarena_arena_catalog/leaderboard-text.json",
    "lmarena_arena_catalog/leaderboard-text-style-control.json",
    "llm_leaderboard_csv/lmarena_text_2025-08-04.csv",
    "chatbot_arena_history/alltime.csv",
    "chatbot_arena_history/alltime_by_org.csv",
    f"{METR}/benchmark_results_1_0.yaml",
    f"{METR}/benchmark_results_1_1_2026-01-30.yaml",
    f"{METR}/benchmark_results_1_1_2026-02-19.yaml",
    f"{METR}/benchmark_results_1_1_2026-03-03.yaml",
    f"{METR}/release_dates_2025-02-27.yaml",
    f"{METR}/release_dates_2026-01-28.yaml",
    "metr_cross_domain_horizon/data/external/logistic_fits/headline.csv",
)


def records(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def arena_rows() -> list[dict]:
    return records(SHARED_DATA / "chatbot_arena_history/alltime.csv")


def read_one(adapter, path: Path):
    out = adapter.read(path)
    assert len(out) == 1
    # Everything an adapter yields must pass the same check the ingest stage applies.
    validate_observations(out[0].observations.assign(source=out[0].source, source_version=out[0].source_version,
                                                     source_sha256="x"), str(path))
    return out[0]


def digests(db: Path) -> dict[str, str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: store.table_digest(con, t) for t in MY_TABLES}
    finally:
        con.close()


def query(db: Path, sql: str, params: list | None = None) -> pd.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()


@pytest.fixture(scope="module")
def elo_metr_db(tmp_path_factory) -> Path:
    """Every Elo and METR file ingested once through the real stage (the runs JSONL included)."""
    db = tmp_path_factory.mktemp("elo_metr") / "scalegap.duckdb"
    ingest.ingest([str(SHARED_DATA / f) for f in (*MY_FILES, RUNS_JSONL)], db=db, run_id="elo-metr-1")
    return db


# ------------------------------------------------------------------------------ Jones Hex

def test_jones_frontier_and_runs(shared_data):
    folder = shared_data / "boardlaw_jones2021"
    frontier = read_one(jones_hex.ADAPTER, folder / "elo_vs_train_flops_frontier_digitized.csv")
    runs = read_one(jones_hex.ADAPTER, folder / "elo_vs_train_flops_runs_digitized.csv")
    f, r = frontier.observations, runs.observations
    published = records(folder / "elo_vs_train_flops_frontier_digitized.csv") + \
        records(folder / "elo_vs_train_flops_runs_digitized.csv")
    # The cut: 3 frontier points of each of the 7 board sizes; 2 runs of each board, 4 points each.
    assert (frontier.source, len(f)) == ("jones2021_hex_frontier", 21)
    assert (runs.source, len(r)) == ("jones2021_hex_runs", 56)
    assert f.groupby("metric").size().to_dict() == {f"hex{n}_elo_vs_perfect": 3 for n in range(3, 10)}
    assert r["cluster"].nunique() == 14
    per_board = r.groupby("metric")["cluster"].nunique()
    assert [per_board[f"hex{n}_elo_vs_perfect"] for n in range(3, 10)] == [2] * 7
    # First frontier point of board 3: log10 FLOP 9.00287, Elo -259.49 (first data row of the file).
    first = f.iloc[0]
    assert first["model"] == "b3_frontier@9.003"
    assert first["value"] == pytest.approx(-259.49)
    assert first["train_flop"] == pytest.approx(1.00663e9)
    # Elo against perfect play (<= 0, ceiling 0); FLOP raw 1e9 ... 1e17 (PROVENANCE.md).
    both = pd.concat([f, r])
    assert both["value"].min() == pytest.approx(min(float(p["elo_vs_perfect_play"]) for p in published))
    assert both["value"].max() <= 0
    assert (both["ceiling"] == 0).all() and (both["kind"] == "elo").all() and (both["unit"] == "elo").all()
    assert 9.9e8 < both["train_flop"].min() and both["train_flop"].max() < 1.01e17
    assert f["model"].is_unique and r["model"].is_unique


def test_jones_rejects_log10_flop(tmp_path):
    path = tmp_path / "elo_vs_train_flops_frontier_test.csv"
    path.write_text("series_id,boardsize,point_index,train_flops,elo_vs_perfect_play\n"
                    "b3_frontier,3,0,1e9,-250\nb3_frontier,3,1,-9.5,-240\n")
    with pytest.raises(InputError) as err:
        jones_hex.ADAPTER.read(path)
    assert (err.value.row, err.value.column) == (3, "train_flops")
    assert "log10" in str(err.value)


# ------------------------------------------------------------------------------ LMArena

def test_lmarena_catalog_raw_and_style_control(shared_data):
    folder = shared_data / "lmarena_arena_catalog"
    raw = read_one(lmarena.CATALOG, folder / "leaderboard-text.json")
    styled = read_one(lmarena.CATALOG, folder / "leaderboard-text-style-control.json")
    assert (raw.source, styled.source) == ("lmarena_catalog", "lmarena_catalog_style_control")
    r, s = raw.observations, styled.observations
    files = {name: json.loads((folder / name).read_text())
             for name in ("leaderboard-text.json", "leaderboard-text-style-control.json")}
    assert (r["metric"] == "arena_elo").sum() == len(files["leaderboard-text.json"]["full"])
    assert (s["metric"] == "arena_elo_style_control").sum() == len(files["leaderboard-text-style-control.json"]["full"])
    assert {"arena_elo_coding", "arena_elo_math"} <= set(r["metric"])
    top = r[(r["model"] == "gemini-3-pro") & (r["metric"] == "arena_elo")].iloc[0]
    # leaderboard-text.json, full.gemini-3-pro: rating 1486.60, q025 1480.40, q975 1492.80.
    assert top["value"] == pytest.approx(1486.60, abs=0.01)
    assert (top["value_lo"], top["value_hi"]) == (pytest.approx(1480.40, abs=0.01), pytest.approx(1492.80, abs=0.01))
    assert top["organization"] == "Google"  # from scatterplot-data.json
    assert (r["value_lo"] <= r["value"]).all() and (r["value"] <= r["value_hi"]).all()
    # Style-controlled and raw ratings of a model stay apart (PROVENANCE.md: they differ by -47 to +141).
    both = r[r["metric"] == "arena_elo"].merge(s[s["metric"] == "arena_elo_style_control"], on="model")
    raw_full, styled_full = (files[n]["full"] for n in files)
    expected = {m: styled_full[m]["rating"] - raw_full[m]["rating"] for m in raw_full if m in styled_full}
    assert len(both) == len(expected) > 0
    assert dict(zip(both["model"], both["value_y"] - both["value_x"], strict=True)) == pytest.approx(expected)


def test_lmarena_csv_ci_strings_and_votes(shared_data):
    path = shared_data / "llm_leaderboard_csv/lmarena_text_2025-08-04.csv"
    data = read_one(lmarena.CSV, path)
    obs = data.observations
    assert (data.source, data.source_version) == ("lmarena_text_csv", "2025-08-04")
    # Yi-34B-Chat is listed twice with identical figures (ranks 200 and 201): one row dropped.
    assert len(obs) == len(records(path)) - 1 and obs["model"].is_unique
    assert "1 exact duplicate row(s) dropped" in data.notes
    top = obs[obs["model"] == "Gemini-2.5-Pro"].iloc[0]
    # First data row of the CSV: arena_score 1470, 95_pct_ci "+5/-5", 26019 votes.
    assert (top["value"], top["value_lo"], top["value_hi"]) == (1470, 1465, 1475)
    assert top["row_ref"] == "2 (26019 votes)"
    assert obs["value"].min() == 840 and obs["value"].max() == 1470  # PROVENANCE.md range
    assert (obs["value_hi"] > obs["value"]).all() and (obs["value_lo"] < obs["value"]).all()


def test_lmarena_csv_bad_ci_names_row(tmp_path):
    path = tmp_path / "lmarena_text_test.csv"
    path.write_text("model,arena_score,95_pct_ci,votes\nA,1200,+5/-5,100\nB,1100,about five,90\n")
    with pytest.raises(InputError) as err:
        lmarena.CSV.read(path)
    assert (err.value.row, err.value.column) == (3, "95_pct_ci")


# ------------------------------------------------------------------------------ arena history

def test_arena_history_snapshots(shared_data):
    out = arena_history.ADAPTER.read(shared_data / "chatbot_arena_history/alltime.csv")
    rows = arena_rows()
    unique = {tuple(row.values()) for row in rows}
    # One version per snapshot date (the cut keeps the first three, the last and one more).
    assert len(out) == len({row["date"] for row in rows}) == 5
    assert out[0].source_version == "snapshot-20230508" and out[-1].source_version == "snapshot-20250326"
    assert {d.source for d in out} == {"chatbot_arena_history"}
    obs = pd.concat([d.observations for d in out])
    assert len(obs) == len(unique)
    assert obs["model"].nunique() == len({row["key"] for row in rows})
    # Exact duplicates (the whole file has 96, of yi-34b-chat), reported once so the sources table
    # does not repeat it.
    duplicates = len(rows) - len(unique)
    assert duplicates > 0
    assert [d.notes for d in out if d.notes] == [f"{duplicates} exact duplicate rows dropped from the file"]
    for d in out:
        assert d.observations["model"].is_unique
    assert "release_date" not in obs  # snapshot dates are not release dates
    ratings = [float(row["rating"]) for row in rows]
    assert obs["value"].min() == pytest.approx(min(ratings)) and obs["value"].max() == pytest.approx(max(ratings))


def test_arena_history_conflicting_duplicate(tmp_path):
    path = tmp_path / "alltime.csv"
    path.write_text("key,Model,rating,License,Organization,date\n"
                    "a,A,1000,x,X,20240101\nb,B,1010,x,X,20240101\na,A,1001,x,X,20240101\n")
    with pytest.raises(InputError) as err:
        arena_history.ADAPTER.read(path)
    assert "two different ratings" in err.value.problem and err.value.row in (2, 4)


def test_arena_org_gap(shared_data):
    path = shared_data / "chatbot_arena_history/alltime_by_org.csv"
    data = read_one(arena_history.BY_ORG, path)
    obs = data.observations
    # diff = rating_max - rating_max_max <= 0 (PROVENANCE.md)
    assert len(obs) == len(records(path)) and (obs["value"] <= 0).all()
    assert (obs["metric"] == "arena_org_gap_to_frontier").all()
    first = obs.iloc[0]  # first data row: 01 AI, 20231206, diff -151.762
    assert (first["organization"], first["release_date"]) == ("01 AI", pd.Timestamp("2023-12-06"))
    assert first["value"] == pytest.approx(-151.762, abs=1e-3)


# ------------------------------------------------------------------------------ METR

def test_metr_results_versions(shared_data):
    v10 = read_one(metr.RESULTS, shared_data / METR / "benchmark_results_1_0.yaml")
    jan = read_one(metr.RESULTS, shared_data / METR / "benchmark_results_1_1_2026-01-30.yaml")
    mar = read_one(metr.RESULTS, shared_data / METR / "benchmark_results_1_1_2026-03-03.yaml")
    assert (v10.source_version, jan.source_version, mar.source_version) == (
        "METR-Horizon-v1", "METR-Horizon-v1.1-2026-01-30", "METR-Horizon-v1.1-2026-03-03")
    obs = v10.observations
    models = {name: len(yaml.safe_load((shared_data / METR / name).read_text())["results"])
              for name in ("benchmark_results_1_0.yaml", "benchmark_results_1_1_2026-01-30.yaml",
                           "benchmark_results_1_1_2026-03-03.yaml")}
    # Every model of each file (the whole files hold 33, 17 and 23), three metrics each.
    assert [obs["model"].nunique(), jan.observations["model"].nunique(), mar.observations["model"].nunique()] \
        == list(models.values())
    assert set(obs["metric"]) == {"metr_p50_minutes", "metr_p80_minutes", "metr_average_score"}
    sonnet = obs[obs["model"] == "claude_3_7_sonnet"].set_index("metric")
    # benchmark_results_1_0.yaml (meek-math notes): Claude 3.7 Sonnet p50 = 56.09 min, CI 29.33-93.42.
    assert sonnet.at["metr_p50_minutes", "value"] == pytest.approx(56.09, abs=0.01)
    assert sonnet.at["metr_p50_minutes", "value_lo"] == pytest.approx(29.33, abs=0.01)
    assert sonnet.at["metr_p50_minutes", "value_hi"] == pytest.approx(93.42, abs=0.01)
    assert sonnet.at["metr_p80_minutes", "value"] < sonnet.at["metr_p50_minutes", "value"]
    assert sonnet.at["metr_p50_minutes", "release_date"] == pd.Timestamp("2025-02-24")
    assert 0 < sonnet.at["metr_average_score", "value"] < 1
    # PROVENANCE.md pitfall: claude_3_5_sonnet_20240620 p50 is 10.77 min (Jan) and 11.40 min (Mar),
    # doubling time 130.8 vs 128.7 days: versions differ and must stay apart.
    p50 = {}
    for d in (jan, mar):
        o = d.observations
        hit = (o["model"] == "claude_3_5_sonnet_20240620_inspect") & (o["metric"] == "metr_p50_minutes")
        p50[d.source_version] = o.loc[hit, "value"].iloc[0]
    assert p50 == {"METR-Horizon-v1.1-2026-01-30": pytest.approx(10.77, abs=0.01),
                   "METR-Horizon-v1.1-2026-03-03": pytest.approx(11.40, abs=0.01)}
    assert "130.8" in jan.notes and "128.7" in mar.notes
    for d in (v10, jan, mar):
        h = d.observations[d.observations["unit"] == "minutes"]
        assert (h["value_lo"] <= h["value"]).all() and (h["value"] <= h["value_hi"]).all()
        assert d.observations["release_date"].notna().all()


def test_metr_release_dates(shared_data):
    old = read_one(metr.RELEASE_DATES, shared_data / METR / "release_dates_2025-02-27.yaml")
    new = read_one(metr.RELEASE_DATES, shared_data / METR / "release_dates_2026-01-28.yaml")
    # Every alias of each file (the whole files hold 19 and 71); metadata only, no observations.
    published = [len(yaml.safe_load((shared_data / METR / name).read_text())["date"])
                 for name in ("release_dates_2025-02-27.yaml", "release_dates_2026-01-28.yaml")]
    assert [len(old.extra["metr_release_dates"]), len(new.extra["metr_release_dates"])] == published
    assert old.observations.empty and old.source_version == "2025-02-27"
    dates = old.extra["metr_release_dates"].set_index("alias")["release_date"]
    assert dates["Claude 3 Opus"] == pd.Timestamp("2024-03-04")  # same alias spelling as the runs file


def test_metr_missing_release_date_filled_from_release_dates_yaml(tmp_path):
    (tmp_path / "release_dates_2025-01-01.yaml").write_text("date:\n  model_a: 2024-05-01\n")
    path = tmp_path / "benchmark_results_test.yaml"
    path.write_text("results:\n  model_a:\n    metrics:\n"
                    "      p50_horizon_length: {estimate: 5.0, ci_low: 2.0, ci_high: 9.0}\n"
                    "      p80_horizon_length: {estimate: 1.0, ci_low: 0.5, ci_high: 2.0}\n")
    obs = read_one(metr.RESULTS, path).observations
    assert (obs["release_date"] == pd.Timestamp("2024-05-01")).all()


def test_metr_runs_jsonl(shared_data):
    data = metr.RUNS.read(shared_data / RUNS_JSONL)[0]
    runs = data.extra["metr_runs"]
    assert data.observations.empty and data.source_version == "2025-02-27"
    lines = json_lines(shared_data / RUNS_JSONL)
    # Counted in the file: runs, successes and failures, human rows, tasks, families, the longest task
    # (1392.7 min, PROVENANCE.md), time limits in seconds, runs ended by usage limits.
    assert len(runs) == len(lines) and runs["run_key"].is_unique
    scores = [r["score_binarized"] for r in lines]
    assert runs["score_binarized"].value_counts().to_dict() == {0: scores.count(0), 1: scores.count(1)}
    assert (runs["alias"] == "human").sum() == sum(r["alias"] == "human" for r in lines) > 0
    assert runs["task_id"].nunique() == len({r["task_id"] for r in lines})
    assert runs["task_family"].nunique() == len({r["task_family"] for r in lines})
    assert runs["human_minutes"].min() == pytest.approx(min(r["human_minutes"] for r in lines))
    assert runs["human_minutes"].max() == pytest.approx(1392.7, abs=0.1)
    assert set(runs["time_limit_s"].dropna()) == {r["time_limit"] for r in lines if r["time_limit"] is not None}
    assert (runs["fatal_error_from"] == "usageLimits").sum() == sum(r["fatal_error_from"] == "usageLimits"
                                                                    for r in lines) > 0
    # Task weights as published (in the whole file they sum to 1 per alias, PROVENANCE.md).
    weights = {str(r["run_id"]): r["invsqrt_task_weight"] for r in lines}
    assert runs.set_index("run_key")["invsqrt_task_weight"].to_dict() == pytest.approx(weights)


def test_metr_runs_bundled_csv_matches_jsonl(shared_data, raw_dir):
    bundled = raw_dir / "metr_runs.csv.gz"
    if not bundled.exists():
        pytest.skip("bundled snapshot not built yet")
    from_csv = metr.RUNS.read(bundled)[0]
    from_jsonl = metr.RUNS.read(shared_data / RUNS_JSONL)[0]
    assert from_csv.source_version == from_jsonl.source_version == "2025-02-27"
    # Every run of the cut JSONL is in the bundled file (which holds all 7,063), field for field.
    b = from_jsonl.extra["metr_runs"].sort_values("run_key").reset_index(drop=True)
    a = from_csv.extra["metr_runs"].set_index("run_key").loc[b["run_key"]].reset_index()
    assert len(from_csv.extra["metr_runs"]) == 7063
    for column in ("run_key", "task_id", "alias", "score_binarized"):
        assert (a[column].astype(str) == b[column].astype(str)).all(), column
    assert a["human_minutes"].to_numpy() == pytest.approx(b["human_minutes"].to_numpy())


def test_metr_headline_fits(shared_data):
    path = shared_data / "metr_cross_domain_horizon/data/external/logistic_fits/headline.csv"
    data = read_one(metr.HEADLINE, path)
    obs = data.observations
    assert data.source == "metr_th1_headline_fits"
    assert "human" not in set(obs["model"])
    opus = obs[(obs["model"] == "Claude 3 Opus")].set_index("metric")
    # headline.csv, first row: Claude 3 Opus p50 6.4228 (2.834 - 12.743), p80 1.1256, released 2024-03-04.
    assert opus.at["metr_p50_minutes", "value"] == pytest.approx(6.4228, abs=1e-4)
    assert opus.at["metr_p50_minutes", "value_lo"] == pytest.approx(2.834, abs=1e-3)
    assert opus.at["metr_p50_minutes", "value_hi"] == pytest.approx(12.743, abs=1e-3)
    assert opus.at["metr_p80_minutes", "value"] == pytest.approx(1.1256, abs=1e-4)
    assert opus.at["metr_p50_minutes", "release_date"] == pd.Timestamp("2024-03-04")


# ------------------------------------------------------------------------------ malformed input

YAML_OK = ("results:\n  model_a:\n    release_date: 2024-01-01\n    metrics:\n"
           "      p50_horizon_length: {estimate: 5.0, ci_low: 2.0, ci_high: 9.0}\n"
           "      p80_horizon_length: {estimate: 1.0, ci_low: 0.5, ci_high: 2.0}\n")
RUN = '{"run_id": "r%d", "task_id": "t", "alias": "a", "score_binarized": 1, "human_minutes": %s}\n'
BAD = {
    # name: (file name, content, row, column fragment, problem fragment)
    "yaml_negative_minutes": ("benchmark_results_x.yaml", YAML_OK.replace("estimate: 1.0", "estimate: -1.0"), 6,
                              "results.model_a.metrics.p80_horizon_length.estimate", "not positive"),
    "yaml_missing_p80": ("benchmark_results_x.yaml", YAML_OK.rsplit("      p80", 1)[0], 4,  # nearest key: metrics
                         "results.model_a.metrics.p80_horizon_length", "no p80_horizon_length.estimate"),
    "yaml_string_estimate": ("benchmark_results_x.yaml", YAML_OK.replace("estimate: 5.0", "estimate: five"), 5,
                             "results.model_a.metrics.p50_horizon_length.estimate", "not a number"),
    "yaml_bad_release_date": ("benchmark_results_x.yaml", YAML_OK.replace("2024-01-01", "soon"), 3,
                              "results.model_a.release_date", "does not parse"),
    "yaml_ci_wrong_way": ("benchmark_results_x.yaml", YAML_OK.replace("ci_low: 2.0", "ci_low: 7.0"), 5,
                          "results.model_a.metrics.p50_horizon_length", "outside its interval"),
    "jsonl_bad_line": ("all_runs_x.jsonl", RUN % (1, "3") + "{not json}\n", 2, None, "not valid JSON"),
    "jsonl_missing_key": ("all_runs_x.jsonl", RUN % (1, "3") + '{"run_id": "r2", "task_id": "t", "alias": "a", '
                          '"human_minutes": 4}\n', 2, "score_binarized", "missing key"),
    "jsonl_negative_minutes": ("all_runs_x.jsonl", RUN % (1, "3") + RUN % (2, "-4"), 2, "human_minutes",
                               "not a positive number"),
    "jsonl_score_not_binary": ("all_runs_x.jsonl", RUN.replace('"score_binarized": 1', '"score_binarized": 0.5')
                               % (1, "3"), 1, "score_binarized", "not 0 or 1"),
    "jsonl_run_twice": ("all_runs_x.jsonl", RUN % (1, "3") + RUN % (1, "5"), 2, "run_id", "appears twice"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_metr_files_name_file_line_and_key(case, tmp_path):
    name, content, row, column, problem = BAD[case]
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as err:
        adapter_for(path).read(path)
    message = str(err.value)
    assert str(path) in message and problem in message and "Fix:" in message
    assert err.value.row == row
    if column is not None:
        assert err.value.column == column


@pytest.mark.parametrize("case", ["yaml_negative_minutes", "jsonl_bad_line", "jsonl_missing_key"])
def test_malformed_via_cli_no_traceback_store_unchanged(case, elo_metr_db, tmp_path):
    name, content, row, _, problem = BAD[case]
    path = tmp_path / name
    path.write_text(content)
    before = digests(elo_metr_db)
    done = subprocess.run([*CLI, "ingest", str(path), "--db", str(elo_metr_db)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    assert problem in done.stderr and f"row {row}" in done.stderr
    assert digests(elo_metr_db) == before


# ------------------------------------------------------------------------------ through the store

def test_store_keeps_versions_apart(elo_metr_db):
    versions = query(elo_metr_db, "SELECT source, source_version, n_observations FROM sources")
    metr_versions = set(versions.loc[versions["source"] == "metr_time_horizon", "source_version"])
    assert metr_versions == {"METR-Horizon-v1", "METR-Horizon-v1.1-2026-01-30", "METR-Horizon-v1.1-2026-02-19",
                             "METR-Horizon-v1.1-2026-03-03"}
    snapshots = {row["date"] for row in arena_rows()}
    assert (versions["source"] == "chatbot_arena_history").sum() == len(snapshots)
    assert not versions["source_version"].str.contains("@").any()  # nothing mistaken for a changed file
    counts = query(elo_metr_db, "SELECT (SELECT count(*) FROM metr_runs) AS runs, "
                                "(SELECT count(*) FROM metr_release_dates) AS dates, "
                                "(SELECT count(*) FROM observations WHERE source = 'metr_runs') AS run_obs")
    dates = sum(len(yaml.safe_load((SHARED_DATA / METR / name).read_text())["date"])
                for name in ("release_dates_2025-02-27.yaml", "release_dates_2026-01-28.yaml"))
    assert counts.iloc[0].to_dict() == {"runs": len(json_lines(SHARED_DATA / RUNS_JSONL)), "dates": dates,
                                        "run_obs": 0}


def test_reingest_is_a_noop(elo_metr_db, shared_data):
    before = digests(elo_metr_db)
    summary = ingest.ingest([str(shared_data / f) for f in (*MY_FILES, RUNS_JSONL)], db=elo_metr_db,
                            run_id="elo-metr-2")
    assert summary.observations == 0 and not summary.versions
    snapshots = len({row["date"] for row in arena_rows()})  # arena history: one entry per snapshot
    assert len(summary.skipped_unchanged) == len(MY_FILES) + 1 + snapshots - 1
    assert digests(elo_metr_db) == before


# ------------------------------------------------------------------------------ properties

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(rows=st.lists(st.tuples(st.integers(500, 2000), st.integers(1, 60), st.integers(1, 60)), min_size=1, max_size=12))
def test_lmarena_csv_interval_property(rows, tmp_path_factory):
    path = tmp_path_factory.mktemp("csv") / "lmarena_text_prop.csv"
    lines = [f"model{i},{score},+{hi}/-{lo},{10 * i + 1}" for i, (score, hi, lo) in enumerate(rows)]
    path.write_text("model,arena_score,95_pct_ci,votes\n" + "\n".join(lines) + "\n")
    obs = lmarena.CSV.read(path)[0].observations
    assert len(obs) == len(rows)
    for (score, hi, lo), (_, row) in zip(rows, obs.iterrows(), strict=True):
        assert (row["value"], row["value_lo"], row["value_hi"]) == (score, score - lo, score + hi)


@SETTINGS
@given(minutes=st.lists(st.floats(0.5, 2000, allow_nan=False), min_size=1, max_size=20),
       bad_at=st.integers(0, 19), bad_value=st.sampled_from(["0", "-1.5", '"ten"', "null"]))
def test_metr_jsonl_bad_minutes_names_its_line(minutes, bad_at, bad_value, tmp_path_factory):
    folder = tmp_path_factory.mktemp("jsonl")
    good = "".join(RUN % (i, repr(m)) for i, m in enumerate(minutes))
    path = folder / "all_runs_prop.jsonl"
    path.write_text(good)
    runs = metr.RUNS.read(path)[0].extra["metr_runs"]
    assert runs["human_minutes"].to_numpy() == pytest.approx(minutes)
    line = bad_at % len(minutes)
    lines = good.splitlines(keepends=True)
    lines[line] = RUN % (line, bad_value)
    path.write_text("".join(lines))
    with pytest.raises(InputError) as err:
        metr.RUNS.read(path)
    assert (err.value.row, err.value.column) == (line + 1, "human_minutes")
