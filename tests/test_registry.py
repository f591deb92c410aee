"""The model registry (issue 17): spellings of one model joined across sources and never guessed, Epoch's names
merged across its snapshots, compute with bounds, the alias file, the store tables it builds in the ingest
transaction, the observations it fills (and a rebuild that changes nothing), `scalegap models`, and the METR
per-run horizons joined through it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import query_frame
from typer.testing import CliRunner

from pipeline import aliases, ingest, registry, store
from pipeline.cli import app
from pipeline.schema import InputError

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw"


# ------------------------------------------------------------------------------ spellings
@pytest.mark.parametrize("names", [
    ("claude-3-5-sonnet-20241022", "claude_3_5_sonnet_20241022", "Claude 3.5 Sonnet (20241022)"),
    ("gpt-4-0314", "GPT-4 0314", "gpt4-0314"),
    ("o1-2024-12-17", "o1_2024_12_17", "o1-20241217", "o1-2024-12-17_medium", "o1 (2024-12-17) (high)"),
    ("Qwen2.5-72B", "qwen_2_5_72b", "Qwen/Qwen2.5-72B"),
    ("claude_3_opus_inspect", "Claude 3 Opus", "claude-3-opus (Inspect)"),
    ("Claude 3.7 Sonnet (thinking-32k)", "claude-3-7-sonnet_32K", "Claude 3.7 Sonnet"),
])
def test_same_key(names):
    assert len({registry.key(n) for n in names}) == 1, [registry.key(n) for n in names]


@pytest.mark.parametrize("a, b", [
    ("facebook/opt-1.3b", "OPT-13B"),          # a decimal point is not punctuation
    ("Command R+", "Command R"),
    ("GPT-4 1106", "GPT-4"),                    # a bare 0314 / 1106 is part of the name, not a date
    ("Kimi K2 Thinking", "Kimi K2"),
    ("o1-preview", "o1"),
])
def test_different_keys(a, b):
    assert registry.key(a) != registry.key(b)
    assert registry.base_key(a) != registry.base_key(b)


def test_base_key_drops_full_dates_only():
    assert registry.base_key("gpt-4o-2024-08-06") == registry.key("GPT-4o")
    assert registry.base_key("claude-3-5-sonnet-20241022") == registry.key("Claude 3.5 Sonnet")
    assert registry.base_key("gpt-4-0314") == registry.key("gpt-4-0314")


def test_access_groups_and_bounds():
    assert registry.access_group("Open weights (restricted use)") == "open weights"
    assert registry.access_group("API access") == "API"
    assert registry.access_group("Hosted access (no API)") == "hosted"
    assert registry.access_group("Unreleased") == "unreleased"
    assert registry.access_group(None) is None
    assert registry.compute_bounds(1e24, 5e23, 3e24, "Likely") == (5e23, 3e24, "published bounds")
    lo, hi, how = registry.compute_bounds(3e24, None, None, "Confident")
    assert (lo, hi) == pytest.approx((1e24, 9e24)) and "factor 3" in how
    assert registry.compute_bounds(3e24, None, None, "Unknown")[2] is None
    assert np.isnan(registry.compute_bounds(np.nan, None, None, "Confident")[0])


# ------------------------------------------------------------------------------ building (pure)
def _facts(rows):
    return pd.DataFrame(rows, columns=list(registry.FACT_COLUMNS))


def _names(rows):
    return pd.DataFrame([{"n_observations": 1, "creates": False, "release_date": None, "organization": None,
                          "train_flop": None, "train_flop_note": None, **r} for r in rows])


FACTS = _facts([
    # the Dec 2025 ECI file: both GPT-4 releases under one name
    ("epoch_eci@2025-12-05", "GPT-4", "gpt-4-0314", None, "OpenAI", "US", "2023-03-14", 2.1e25, None, None,
     "Likely", "API access", None),
    ("epoch_eci@2025-12-05", "GPT-4", "gpt-4-0613", None, "OpenAI", "US", "2023-06-13", 2.1e25, None, None,
     "Likely", "API access", None),
    # the 2026 model table: one name per release
    ("epoch_ai_models@notable_ai_models_2026-02", "GPT-4 (Mar 2023)", None, None, "OpenAI", "US", "2023-03-15",
     2.1e25, 1e25, 5e25, "Likely", "API access", None),
    ("epoch_eci@2026-03-09", "GPT-4 (Mar 2023)", "gpt-4-0314", None, "OpenAI", "US", "2023-03-14", 2.1e25,
     None, None, "Likely", "API access", None),
    ("epoch_ai_models@notable_ai_models_2026-02", "Llama 3.1-405B", None, None, "Meta AI", "US", "2024-07-23",
     3.8e25, None, None, "Confident", "Open weights (restricted use)", 4.05e11),
    ("epoch_ai_models@notable_ai_models_2026-02", "OPT-13B", None, None, "Meta AI", "US", "2022-05-02",
     3.5e22, None, None, "Confident", "Open weights (non-commercial)", 1.3e10),
    ("epoch_ai_models@notable_ai_models_2026-02", "OPT-1.3B", None, None, "Meta AI", "US", "2022-05-02",
     3.5e21, None, None, "Confident", "Open weights (non-commercial)", 1.3e9),
    ("epoch_ai_models@notable_ai_models_2026-02", "Mistral Large", None, None, "Mistral", "FR", "2024-02-26",
     1e25, None, None, "Speculative", "API access", None),
    ("epoch_ai_models@notable_ai_models_2026-02", "Mistral-Large", None, None, "Mistral", "FR", "2024-02-26",
     1e25, None, None, "Speculative", "API access", None),
])


def test_epoch_names_merge_across_snapshots():
    built = aliases.build(FACTS, _names([]))
    models = built.models.set_index("model")
    # 'GPT-4' (Dec 2025) and 'GPT-4 (Mar 2023)' (2026) share the release gpt-4-0314: one model, the shorter name
    assert "GPT-4" in models.index and "GPT-4 (Mar 2023)" not in models.index
    gpt4 = models.loc["GPT-4"]
    # the model's date is its model-table publication date; its releases keep their own
    assert gpt4["train_flop"] == 2.1e25 and gpt4["release_date"] == pd.Timestamp("2023-03-15")
    release = built.aliases.set_index(["source", "alias"]).loc[("registry", "gpt-4-0613")]
    assert release["model"] == "GPT-4" and release["release_date"] == pd.Timestamp("2023-06-13")
    # the newest Epoch fact gives the compute, with its published bounds
    assert (gpt4["train_flop_lo"], gpt4["train_flop_hi"]) == (1e25, 5e25) and gpt4["bounds_basis"] == "published bounds"
    assert json.loads(gpt4["field_sources"])["train_flop"] == "epoch_ai_models@notable_ai_models_2026-02"
    assert gpt4["accessibility"] == "API" and gpt4["accessibility_detail"] == "API access"
    llama = models.loc["Llama 3.1-405B"]
    assert llama["accessibility"] == "open weights" and llama["train_flop_lo"] == pytest.approx(3.8e25 / 3)
    assert {"OPT-13B", "OPT-1.3B"} <= set(models.index)
    assert "Mistral Large" in models.index and "Mistral-Large" not in models.index  # one name, two spellings


def test_spellings_match_or_are_listed():
    names = _names([
        {"source": "metr_runs", "name": "GPT-4 0314"},
        {"source": "arena", "name": "gpt-4-0613"},
        {"source": "arena", "name": "gpt-4-2023-11-06"},                 # a date of no known release
        {"source": "obs", "name": "facebook/opt-1.3b"},
        {"source": "obs", "name": "meta-llama/Meta-Llama-3.1-405B"},
        {"source": "obs", "name": "Totally Unknown 7B"},
        {"source": "arena", "name": "mistral-large"},
        {"source": "metr_runs", "name": "human"},
    ])
    alias_file = registry.AliasFile(not_models=frozenset({registry.key("human")}))
    aliases_ = aliases.build(FACTS, names, alias_file).aliases.set_index(["source", "alias"])
    assert aliases_.loc[("metr_runs", "GPT-4 0314"), "model"] == "GPT-4"
    # the same release lends its date; a spelling matched without its date lends none
    assert aliases_.loc[("metr_runs", "GPT-4 0314"), "release_date"] == pd.Timestamp("2023-03-14")
    assert aliases_.loc[("arena", "gpt-4-0613"), "release_date"] == pd.Timestamp("2023-06-13")
    dateless = aliases_.loc[("arena", "gpt-4-2023-11-06")]
    assert dateless["model"] == "GPT-4" and dateless["method"] == "same key without dates"
    assert pd.isna(dateless["release_date"])
    assert aliases_.loc[("obs", "facebook/opt-1.3b"), "model"] == "OPT-1.3B"
    assert aliases_.loc[("obs", "meta-llama/Meta-Llama-3.1-405B"), "model"] == "Llama 3.1-405B"
    assert aliases_.loc[("obs", "Totally Unknown 7B"), "status"] == "unmatched"
    assert aliases_.loc[("metr_runs", "human"), "status"] == "not a model"


def test_two_epoch_models_with_one_key_are_ambiguous_not_guessed():
    # Epoch lists MiniMax-M1-40k and -80k as two models (40k / 80k thinking budgets of two RL runs): one spelling
    # that drops the budget names both, and is listed with its candidates
    facts = _facts([
        ("epoch_ai_models@x_2026-02", "MiniMax-M1-40k", None, None, "MiniMax", "CN", "2025-06-16", None, None, None,
         None, "Open weights (unrestricted)", None),
        ("epoch_ai_models@x_2026-02", "MiniMax-M1-80k", None, None, "MiniMax", "CN", "2025-06-16", None, None, None,
         None, "Open weights (unrestricted)", None),
    ])
    built = aliases.build(facts, _names([{"source": "arena", "name": "minimax-m1"}]))
    row = built.aliases.set_index(["source", "alias"]).loc[("arena", "minimax-m1")]
    assert row["status"] == "ambiguous" and row["model"] is None
    assert json.loads(row["candidates"]) == ["MiniMax-M1-40k", "MiniMax-M1-80k"]


def test_alias_file_groups(tmp_path):
    path = tmp_path / "aliases.toml"
    path.write_text('not_models = ["human"]\n[[same]]\nnames = ["claude-3-5-sonnet-20241022", '
                    '"Claude 3.5 Sonnet (New)"]\n[[same]]\nnames = ["Mystery Bot"]\nmodel = "Mystery"\n')
    alias_file = registry.load_alias_file(path)
    facts = _facts([("epoch_eci@2025-12-05", "Claude 3.5 Sonnet", "claude-3-5-sonnet-20241022", None, "Anthropic",
                     "US", "2024-10-22", 2.7e25, None, None, "Speculative", "API access", None),
                    ("epoch_eci@2025-12-05", "Claude 3.5 Sonnet", "claude-3-5-sonnet-20240620", None, "Anthropic",
                     "US", "2024-06-20", 2.7e25, None, None, "Speculative", "API access", None)])
    names = _names([{"source": "metr_runs", "name": "Claude 3.5 Sonnet (New)"},
                    {"source": "x", "name": "Mystery Bot"}])
    built = aliases.build(facts, names, alias_file)
    rows = built.aliases.set_index(["source", "alias"])
    new = rows.loc[("metr_runs", "Claude 3.5 Sonnet (New)")]
    assert new["model"] == "Claude 3.5 Sonnet" and new["method"] == "alias file"
    assert new["release_date"] == pd.Timestamp("2024-10-22")   # the October release, not the model's June date
    assert rows.loc[("x", "Mystery Bot"), "model"] == "Mystery"  # a model the user declares
    assert "Mystery" in set(built.models["model"])


@pytest.mark.parametrize("text, problem", [
    ("[[same]]\nnames = 3\n", "'names' must be a list"),
    ("[[same]]\nnames = [\"only\"]\n", "one spelling and no model"),
    ("[[same]]\nnames = [\"a\", \"b\"]\nmodle = \"x\"\n", "unknown key 'modle'"),
    ("[aliases]\nx = 1\n", "unknown table or key 'aliases'"),
    ("[[same]\n", "not a readable TOML"),
])
def test_bad_alias_file_is_an_input_error(tmp_path, text, problem):
    path = tmp_path / "aliases.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=problem):
        registry.load_alias_file(path)


# ------------------------------------------------------------------------------ the store
MODELS_CSV = """source,source_version,row_ref,name,version_name,display_name,organization,country,release_date,train_flop,train_flop_lo,train_flop_hi,confidence,accessibility,params,citation,license
epoch_eci,2025-12-05,2,Big Closed,big-closed-2024-01-01,,Lab A,United States of America,2024-01-01,1e25,,,Likely,API access,,cite,CC BY 4.0
epoch_eci,2025-12-05,3,Small Open,small-open-v1,,Lab B,China,2024-06-01,1e23,,,Confident,Open weights (unrestricted),,cite,CC BY 4.0
epoch_ai_models,notable_ai_models_2026-02,4,Mid Open,,,Lab C,France,2024-03-01,2e24,1e24,4e24,Speculative,Open weights (restricted use),,cite,CC BY 4.0
"""
RESULTS_CSV = """model,metric,value,release_date,unit,source,source_version,citation,license
big_closed_20240101,toy_score,0.8,2024-01-01,fraction,toy_bench,v1,cite,CC BY 4.0
Small Open,toy_score,0.6,2024-06-01,fraction,toy_bench,v1,cite,CC BY 4.0
mid-open,toy_score,0.7,2024-03-01,fraction,toy_bench,v1,cite,CC BY 4.0
Nobody Knows,toy_score,0.5,2024-02-01,fraction,toy_bench,v1,cite,CC BY 4.0
"""


@pytest.fixture
def toy(tmp_path) -> tuple[Path, Path]:
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "models.csv").write_text(MODELS_CSV)
    (folder / "results.csv").write_text(RESULTS_CSV)
    (folder / "aliases.toml").write_text("not_models = []\n")
    db = tmp_path / "toy.duckdb"
    ingest.ingest([str(folder)], db=db, run_id="toy")
    return db, folder


def test_ingest_builds_the_registry_and_fills_observations(toy):
    db, _ = toy
    models = query_frame(db, "SELECT * FROM models ORDER BY model").set_index("model")
    assert list(models.index) == ["Big Closed", "Mid Open", "Small Open"]
    assert models.loc["Mid Open", "train_flop_lo"] == 1e24 and models.loc["Small Open", "accessibility"] == "open weights"
    obs = query_frame(db, "SELECT model, train_flop, train_flop_note, organization FROM observations").set_index("model")
    assert obs.loc["big_closed_20240101", "train_flop"] == 1e25
    assert "through the model registry as 'Big Closed'" in obs.loc["big_closed_20240101", "train_flop_note"]
    assert "Confidence: Likely" in obs.loc["big_closed_20240101", "train_flop_note"]
    assert obs.loc["mid-open", "organization"] == "Lab C"
    assert pd.isna(obs.loc["Nobody Knows", "train_flop"])
    unmatched = query_frame(db, "SELECT alias FROM model_aliases WHERE status = 'unmatched'")["alias"].tolist()
    assert unmatched == ["Nobody Knows"]


def test_rebuild_changes_nothing_and_follows_the_alias_file(toy):
    db, folder = toy
    tables = ("observations", "models", "model_aliases")

    def digests():
        con = store.connect(db, read_only=True)
        try:
            return {t: store.table_digest(con, t) for t in tables}
        finally:
            con.close()

    before = digests()
    ingest.ingest([str(folder)], db=db, run_id="again")   # unchanged files: the registry is rebuilt all the same
    assert digests() == before
    # a user's alias file names the unknown model; the next ingest joins it, and undoing it restores the store
    (folder / "aliases.toml").write_text('[[same]]\nnames = ["Nobody Knows", "small-open-v1"]\n')
    ingest.ingest([str(folder)], db=db, run_id="aliased")
    row = query_frame(db, "SELECT train_flop, organization FROM observations WHERE model = 'Nobody Knows'").iloc[0]
    assert row["train_flop"] == 1e23 and row["organization"] == "Lab B"
    (folder / "aliases.toml").write_text("not_models = []\n")
    ingest.ingest([str(folder)], db=db, run_id="restored")
    assert digests() == before


def test_the_store_rebuilds_in_pieces_what_the_whole_build_gives(toy, monkeypatch):
    """A source of many spellings is matched a piece at a time; the release dates one spelling lends another of
    its release (from another piece), and every row, must equal the registry built from all spellings at once."""
    db, folder = toy
    rows = ["model,metric,value,train_flop,release_date,unit,source,source_version,citation,license"]
    for i in range(3000):
        rows.append(f"pair-{i},toy_score,0.5,1e22,,fraction,many_bench,v1,cite,CC BY 4.0")  # dated only by its release
        rows.append(f"PAIR {i},toy_score,0.5,,2024-{1 + i % 12:02d}-01,fraction,many_bench,v1,cite,CC BY 4.0")
        if i % 3 == 0:  # a later-sorted spelling of the release with another date: the first one counts
            rows.append(f"pair_{i},toy_score,0.5,,2023-01-01,fraction,many_bench,v1,cite,CC BY 4.0")
    rows.append("Small-Open-V1,toy_score,0.4,,2024-06-01,fraction,many_bench,v1,cite,CC BY 4.0")
    (folder / "many.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setattr(aliases, "PIECE_ROWS", 2048)  # one DuckDB vector a piece: four pieces here
    monkeypatch.setattr(aliases, "GROUP_ROWS", 1000)  # and the observations grouped in eight hash parts
    ingest.ingest([str(folder)], db=db, run_id="many")
    con = store.connect(db, read_only=True)
    try:
        stored = aliases.finished(con.execute("SELECT * FROM model_aliases ORDER BY source, alias").df())
        models = con.execute("SELECT * FROM models ORDER BY model").df()
        facts, _, own_dates = aliases.registry_inputs(con)
        names = con.execute(aliases._names_sql()).df()
    finally:
        con.close()
    whole = aliases.build(facts, names, aliases.load_alias_files([folder / "aliases.toml"]), own_dates)
    assert len(stored) == len(whole.aliases) > 7000
    pd.testing.assert_frame_equal(stored.drop(columns="filled"), whole.aliases.drop(columns="filled"),
                                  check_dtype=False)
    def plain(frame):
        return frame.astype(object).where(frame.notna(), None)

    pd.testing.assert_frame_equal(plain(models), plain(whole.models))
    by_alias = stored[stored["source"] == "many_bench"].set_index("alias")
    assert by_alias.loc["pair-7", "release_date"] == pd.Timestamp("2024-08-01")   # PAIR 7's, not its own
    assert by_alias.loc["pair-6", "release_date"] == pd.Timestamp("2024-07-01")   # PAIR 6 sorts before pair_6
    assert by_alias.loc["pair_6", "release_date"] == pd.Timestamp("2023-01-01")   # its own date stays
    assert by_alias.loc["Small-Open-V1", ["model", "status"]].tolist() == ["Small Open", "matched"]


def test_models_command_json(toy):
    db, _ = toy
    result = CliRunner().invoke(app, ["models", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"models", "unmatched"}
    first = payload["models"][0]
    for field in ("model", "aliases", "release_date", "train_flop", "train_flop_lo", "train_flop_hi", "accessibility",
                  "organization"):
        assert field in first
    big = next(m for m in payload["models"] if m["model"] == "Big Closed")
    assert "big_closed_20240101" in big["aliases"] and big["accessibility"] == "API"
    assert [u["alias"] for u in payload["unmatched"]] == ["Nobody Knows"]
    result = CliRunner().invoke(app, ["models", "--db", str(db), "--search", "open", "--seen", "--json"])
    assert result.exit_code == 0, result.output
    assert [m["model"] for m in json.loads(result.stdout)["models"]] == ["Mid Open", "Small Open"]
    assert CliRunner().invoke(app, ["models", "--db", str(db)]).exit_code == 0


# ------------------------------------------------------------------------------ the bundled data
@pytest.fixture(scope="module")
def bundle_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("bundle") / "bundle.duckdb"
    ingest.ingest([str(RAW)], db=db, run_id="bundle")
    return db


def test_issue_names_resolve_to_one_model_each(bundle_db):
    rows = query_frame(bundle_db, "SELECT alias, model, release_date FROM model_aliases WHERE status = 'matched'")
    by_alias = rows.groupby("alias")["model"].agg(set)
    sonnet = set().union(*(by_alias[n] for n in ("claude-3-5-sonnet-20241022", "claude_3_5_sonnet_20241022",
                                                  "Claude 3.5 Sonnet (New)")))
    assert sonnet == {"Claude 3.5 Sonnet"}
    assert set().union(by_alias["gpt-4-0314"], by_alias["GPT-4 0314"]) == {"GPT-4"}
    new = rows[rows["alias"] == "Claude 3.5 Sonnet (New)"]["release_date"]
    assert (new == pd.Timestamp("2024-10-22")).all()
    model = query_frame(bundle_db, "SELECT * FROM models WHERE model = 'Claude 3.5 Sonnet'").iloc[0]
    assert model["train_flop"] == pytest.approx(2.7e25) and model["accessibility"] == "API"


def test_every_eci_model_has_a_registry_row_with_accessibility(bundle_db):
    eci = query_frame(bundle_db, "SELECT o.model, m.accessibility FROM observations o JOIN model_aliases a ON "
                        "a.source = o.source AND a.alias = o.model AND a.status = 'matched' JOIN models m "
                        "ON m.model = a.model WHERE o.source = 'epoch_eci'")
    total = query_frame(bundle_db, "SELECT count(*) AS n FROM observations WHERE source = 'epoch_eci'")["n"].iloc[0]
    assert len(eci) == total == 107
    assert eci["accessibility"].notna().mean() > 0.95


def test_metr_published_horizons_gain_compute(bundle_db):
    with_compute = query_frame(bundle_db, "SELECT source_version, count(train_flop) AS n FROM observations WHERE "
                                 "source = 'metr_time_horizon' AND metric = 'metr_p50_minutes' GROUP BY 1")
    n = dict(zip(with_compute["source_version"], with_compute["n"], strict=True))
    # before the registry: 11 (v1) and 1 (v1.1) rows with compute
    assert n["METR-Horizon-v1"] >= 20 and n["METR-Horizon-v1.1-2026-03-03"] >= 10


def test_per_run_horizons_through_the_registry(bundle_db, tmp_path):
    from pipeline.stages import horizons as horizons_stage

    db = tmp_path / "h.duckdb"
    db.write_bytes(bundle_db.read_bytes())
    horizons_stage.run(db, "h", draws=20, seed=0)
    table = query_frame(db, "SELECT * FROM horizons WHERE run_id = 'h'").set_index("model")
    new = table.loc["Claude 3.5 Sonnet (New)"]
    assert new["registry_model"] == "Claude 3.5 Sonnet" and new["release_date"] == pd.Timestamp("2024-10-22")
    assert new["train_flop"] == pytest.approx(2.7e25) and "through the model registry" in new["train_flop_note"]
    assert table.loc["GPT-4 0314", "registry_model"] == "GPT-4"
    assert set(table["organization"]) == {"Anthropic", "OpenAI"}
    assert table["organization"].notna().all()
    # the derived rows join the registry under their own source
    joined = query_frame(db, "SELECT count(*) AS n FROM model_aliases WHERE source = 'scalegap_horizons_from_runs' "
                    "AND status = 'matched'")["n"].iloc[0]
    assert joined == 10
    assert aliases.PROJECT_ALIASES.is_file()
