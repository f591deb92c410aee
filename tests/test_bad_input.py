"""Bad input (issues 2 and 9): one clear message naming file, row and column with a fix, a non-zero exit,
no traceback, and the store unchanged. Plus property-based tests on the parsers."""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import store
from pipeline.schema import InputError
from pipeline.sources.generic_csv import read_generic

CLI = [sys.executable, "-m", "pipeline.cli"]
DATA_TABLES = ("sources", "observations", "rejected", "model_compute", "metr_runs", "metr_release_dates")
GOOD = "model,metric,value,train_flop\nModel A,mmlu,0.52,3.1e23\nModel B,mmlu,0.61,8.0e23\n"
HEADER = "model,metric,value,train_flop\n"
HTML_PARTS = "<>"

# name -> (file name, content, expected row (None: not applicable), expected column, words in the problem)
CASES: dict[str, tuple[str, bytes, str | None, str | None, str]] = {
    "empty": ("results.csv", b"", None, None, "empty"),
    "header_only": ("results.csv", HEADER.encode(), None, None, "no data rows"),
    "semicolons": ("results.csv", b"model;metric;value;train_flop\nA;mmlu;0.5;1e23\n", "1", None, "';'"),
    "missing_columns": ("results.csv", b"model,value,train_flop\nA,0.5,1e23\n", "1", None, "metric"),
    "non_numeric": ("results.csv", (HEADER + "A,mmlu,abc,1e23\n").encode(), "2", "value", "not a number"),
    "zero_compute": ("results.csv", (HEADER + "A,mmlu,0.5,1e23\nB,mmlu,0.5,0\n").encode(), "3", "train_flop",
                     "not positive"),
    "negative_compute": ("results.csv", (HEADER + "A,mmlu,0.5,-1e23\n").encode(), "2", "train_flop",
                         "not positive"),
    "log10_compute": ("results.csv", (HEADER + "A,mmlu,0.5,23.5\n").encode(), "2", "train_flop", "log10"),
    "fraction_above_one": ("results.csv", b"model,metric,value,unit,train_flop\nA,mmlu,1.5,fraction,1e23\n", "2",
                           "value", "outside the fraction range"),
    "bad_date": ("results.csv", b"model,metric,value,release_date\nA,mmlu,0.5,next tuesday\n", "2",
                 "release_date", "does not parse"),
    "conflicting_duplicates": ("results.csv", (HEADER + "A,mmlu,0.5,1e23\nA,mmlu,0.7,1e23\n").encode(), "3",
                               "value", "duplicate key"),
    "ragged_row": ("results.csv", (HEADER + "A,mmlu,0.5\n").encode(), "2", None, "fields"),
    "binary_garbage": ("results.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, None, None,
                       "binary"),
    "not_utf8": ("results.csv", (HEADER + "Caf").encode() + b"\xe9,mmlu,0.5,1e23\n", "2", None, "UTF-8"),
    "jsonl_broken_line": ("all_runs_test.jsonl",
                          b'{"run_id": "r1", "task_id": "t", "alias": "a", "score_binarized": 1, "human_minutes": 3}\n'
                          b'{"run_id": "r2", "task_id": \n', "2", None, "not valid JSON"),
    "jsonl_missing_key": ("all_runs_test.jsonl", b'{"run_id": "r1", "task_id": "t", "alias": "a", "score_binarized": 1}\n',
                          "1", "human_minutes", "missing key"),
    "jsonl_bad_minutes": ("all_runs_test.jsonl",
                          b'{"run_id": "r1", "task_id": "t", "alias": "a", "score_binarized": 1, "human_minutes": -2}\n',
                          "1", "human_minutes", "positive"),
    "jsonl_not_utf8": ("all_runs_test.jsonl", b'{"run_id": "r\xff1"}\n', "1", None, "UTF-8"),
    "yaml_syntax": ("benchmark_results_test.yaml", b"results:\n  model_a: {metrics: [unclosed\n", "3", None,
                    "not valid YAML"),
    "yaml_missing_estimate": ("benchmark_results_test.yaml",
                              b"results:\n  model_a:\n    metrics:\n      p50_horizon_length: {ci_low: 1}\n", None,
                              "results.model_a.metrics.p50_horizon_length", "estimate"),
    "yaml_not_mapping": ("release_dates_test.yaml", b"- just\n- a list\n", None, None, "mapping"),
    "yaml_bad_date": ("release_dates_test.yaml", b"date:\n  model_a: not-a-date\n", None, "date.model_a",
                      "does not parse"),
    # audit fixes: each must be one InputError line through the CLI
    "percent_strings_with_bad_bound": ("results.csv", (HEADER.replace("value,", "value,value_hi,")
                                                       + "A,mmlu,77%,70%,1e22\n").encode(), "2", "value_hi",
                                       "outside its interval"),
    "yaml_impossible_day": ("benchmark_results_test.yaml",
                            b"results:\n  model_a:\n    release_date: 2024-02-30\n    metrics:\n"
                            b"      p50_horizon_length: {estimate: 3}\n      p80_horizon_length: {estimate: 1}\n",
                            "3", "results.model_a.release_date", "does not parse"),
    "yaml_impossible_month": ("release_dates_test.yaml", b"date:\n  model_a: 2024-01-02\n  model_b: 2024-99-13\n",
                              "3", "date.model_b", "does not parse"),
    "gz_not_gzip": ("fake.csv.gz", GOOD.encode(), None, None, "not valid gzip"),
    "gz_truncated": ("results.csv.gz", gzip.compress(GOOD.encode())[:20], None, None, "not valid gzip"),
    "unit_mixed_fraction_and_score": ("results.csv", (HEADER + "A,mmlu,0.5,1e22\nB,mmlu,80,1e23\n").encode(), "3",
                                      "value", "unit cannot be guessed"),
    "unit_negative_among_fractions": ("results.csv", (HEADER + "A,mmlu,0.5,1e22\nB,mmlu,0.7,1e23\n"
                                                      "C,mmlu,-0.2,1e23\n").encode(), "4", "value",
                                      "unit cannot be guessed"),
    "unit_above_one_among_fractions": ("results.csv", (HEADER + "A,mmlu,1.5,1e22\nB,mmlu,0.7,1e23\n").encode(),
                                       "3", "value", "unit cannot be guessed"),
    "infinite_compute": ("results.csv", (HEADER + "A,mmlu,0.5,1e22\nB,mmlu,0.6,inf\n").encode(), "3",
                         "train_flop", "not a finite number"),
    "overflowing_compute": ("results.csv", (HEADER + "A,mmlu,0.5,1e400\n").encode(), "2", "train_flop",
                            "not a finite number"),
    "infinite_value": ("results.csv", (HEADER + "A,mmlu,-inf,1e22\n").encode(), "2", "value", "not a finite number"),
    "overflowing_log10_compute": ("results.csv", b"model,metric,value,train_flop_log10\nA,mmlu,0.5,400\n", "2",
                                  "train_flop_log10", "infinity"),
    "interval_misses_value": ("results.csv", b"model,metric,value,value_lo,value_hi,train_flop\n"
                                             b"A,mmlu,0.5,0.7,0.8,1e22\n", "2", "value_lo", "outside its interval"),
    "interval_below_value": ("results.csv", b"model,metric,value,value_lo,value_hi,train_flop\n"
                                            b"A,mmlu,0.5,0.1,0.3,1e22\n", "2", "value_hi", "outside its interval"),
    "percent_with_other_unit": ("results.csv", b"model,metric,value,unit,train_flop\nA,mmlu,77%,score,1e22\n", "2",
                                "value", "percent"),
}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "400"}  # rich must not wrap the one-line message
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env)


def digests(db: Path) -> dict[str, str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: store.table_digest(con, t) for t in DATA_TABLES}
    finally:
        con.close()


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory) -> Path:
    """A store holding one good file, so 'unchanged' is checked against real content."""
    folder = tmp_path_factory.mktemp("seed")
    good = folder / "good_results.csv"
    good.write_text(GOOD)
    db = folder / "store.duckdb"
    done = run_cli("ingest", str(good), "--db", str(db))
    assert done.returncode == 0, done.stderr
    return db


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_gives_clear_message(case, seeded_db, tmp_path):
    name, content, row, column, problem = CASES[case]
    path = tmp_path / name
    path.write_bytes(content)
    before = digests(seeded_db)
    done = run_cli("ingest", str(path), "--db", str(seeded_db))
    text = done.stdout + done.stderr
    assert done.returncode != 0, text
    assert "Traceback" not in text
    message = done.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert str(path) in message
    assert problem.lower() in message.lower(), message
    assert "Fix:" in message
    if row is not None:
        assert re.search(rf"\brow {row}\b", message), message
    if column is not None:
        assert f"column '{column}'" in message, message
    assert digests(seeded_db) == before


def test_unusable_rows_are_rejected_not_fatal(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("model,metric,value,train_flop,release_date\nA,mmlu,0.5,1e23,\nB,mmlu,0.6,,\n")
    db = tmp_path / "s.duckdb"
    done = run_cli("ingest", str(path), "--db", str(db))
    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT model FROM observations").fetchall() == [("A",)]
        assert con.execute("SELECT row_ref, column_name FROM rejected").fetchall() == [("3", "train_flop")]
    finally:
        con.close()


def test_unknown_target_and_bad_db(tmp_path):
    done = run_cli("ingest", str(tmp_path / "nope.csv"), "--db", str(tmp_path / "s.duckdb"))
    assert done.returncode != 0 and "Traceback" not in done.stderr and "Fix:" in done.stderr
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"this is not a database" * 100)
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    done = run_cli("ingest", str(good), "--db", str(garbage))
    assert done.returncode != 0 and "Traceback" not in done.stderr and "Fix:" in done.stderr
    assert garbage.read_bytes() == b"this is not a database" * 100


# ---------------------------------------------------------------------------------- properties
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check_frame(result) -> None:
    for data in result:
        obs = data.observations
        assert {"model", "metric", "value"} <= set(obs.columns)
        assert obs["value"].notna().all()
        if "train_flop" in obs.columns:
            flop = obs["train_flop"].dropna()
            assert (flop > 0).all()


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_the_csv_reader(tmp_path, content):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(content)
    try:
        _check_frame(read_generic(path))
    except InputError as exc:
        assert str(path) in str(exc) and "Fix:" in str(exc)


cell = st.one_of(st.sampled_from(["", "0.5", "77%", "-1", "0", "1e23", "23", "abc", "2024-01-01", "x,y", '"q"',
                                  "nan", "inf", "1.5", "2024-13-45"]),
                 st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8))
columns = st.lists(st.sampled_from(["model", "metric", "value", "train_flop", "release_date", "unit", "value_lo",
                                    "train_flop_log10", "train_flop_1e21", "kind", "extra"]),
                   min_size=1, max_size=7)


@st.composite
def csv_text(draw) -> str:
    header = draw(columns)
    rows = draw(st.lists(st.lists(cell, min_size=len(header) - 1, max_size=len(header) + 1), max_size=6))
    sep = draw(st.sampled_from([",", ",", ",", ";", "\t"]))
    return "\n".join([sep.join(header), *(sep.join(r) for r in rows)]) + draw(st.sampled_from(["", "\n", "\r\n"]))


@FUZZ
@given(csv_text())
def test_random_csv_text_gives_input_error_or_valid_frame(tmp_path, text):
    path = tmp_path / "fuzz.csv"
    path.write_text(text, encoding="utf-8")
    try:
        result = read_generic(path)
    except InputError as exc:
        assert str(path) in str(exc)
        return
    _check_frame(result)
    from pipeline.schema import validate_observations
    for data in result:
        try:
            validate_observations(data.observations.assign(source=data.source, source_version=data.source_version),
                                  str(path))
        except InputError:
            pass  # the stage's last check; anything else escaping would be a bug


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_random_expressions_never_execute(text):
    import sympy

    from pipeline import expressions

    try:
        expr, symbol = expressions.parse_expression(text)
    except expressions.ExpressionError:
        return
    assert isinstance(expr, sympy.Basic) and symbol.name == "C"


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["__import__('os').system('touch /tmp/scalegap-pwned')", "C.__class__", "exec('1')",
                        "lambda: C", "C; import os", "open('x')", "eval('C')", "[C]", "C if C else 1"]))
def test_code_injection_refused(text):
    from pipeline import expressions
    with pytest.raises(expressions.ExpressionError):
        expressions.parse_expression(text)
    assert not Path("/tmp/scalegap-pwned").exists()


toml_value = st.one_of(st.integers(-10, 10), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                       st.booleans(), st.lists(st.integers(), max_size=3))


GROWTH_KEYS = ("hardware", "algorithms", "investment", "inference")
CURVE_KEYS = ("name", "metric", "family", "source", "x_axis", "start_flop", "start_budget", "params", "higher_is_better",
              "unit", "doubling_months", "anchor_date", "anchor_value", "horizon", "task_minutes", "ratio_50_80")


def _value(r: random.Random, good):
    """Mostly a plausible value of the right type, sometimes a wrong type or an edge of the range."""
    pick = r.random()
    if pick < 0.6:
        return good
    return r.choice([0, -1, 1, 1.0001, 1e308, -0.5, float("inf"), float("nan"), "fast", True, "2024-02-30",
                     "1999-01-01", [1, 2], {"dist": "lognormal", "p10": 2}, {"dist": "weird"}])


def scenario_doc(r: random.Random) -> str:
    """A TOML scenario in the current schema ([growth], [[curve]], [settings], [sources]), with mistakes mixed
    in, so the loader's growth, curve and settings checks are reached, not only the TOML parser."""
    lines = [f"name = {_toml(_value(r, 'fuzz'))}"]
    lines.append("[growth]")
    for key in GROWTH_KEYS:
        if r.random() < 0.9 or key == "inference":
            good = r.choice([1.414, 2.828, 4.0, {"dist": "lognormal", "p10": 1.5, "p90": 3.0},
                             {"dist": "uniform", "low": 1.2, "high": 2.0}])
            lines.append(f"{key} = {_toml(_value(r, good))}")
    for key, good in (("start", "2023-03-14"), ("until", "2040-01-01")):
        if r.random() < 0.95:
            lines.append(f"{key} = {_toml(_value(r, good))}")
    if r.random() < 0.1:
        lines.append(f"{r.choice(['frontier', 'speed', 'x'])} = 2")
    for i in range(r.randint(0, 3)):
        lines.append("[[curve]]")
        family = r.choice(["exponential_in_time", "success_at_length", "logistic", "saturating_loss", "nope", None])
        good = {"name": f"c{i}", "family": family, "doubling_months": 7, "anchor_date": "2025-02-24",
                "anchor_value": 60, "horizon": "c0", "task_minutes": 60, "ratio_50_80": 5, "start_flop": 1e25,
                "params": {"floor": 0.25, "ceiling": 0.9, "k": 1.0, "m": 24.0}, "metric": "mmlu", "x_axis": "compute"}
        for key in r.sample(CURVE_KEYS, r.randint(1, 8)):
            value = _value(r, good.get(key, "x"))
            if value is not None:
                lines.append(f"{key} = {_toml(value)}")
    if r.random() < 0.5:
        lines.append("[settings]")
        for key, good in (("close_fraction", 0.01), ("project_fitted", True), ("nonsense", 1)):
            if r.random() < 0.6:
                lines.append(f"{key} = {_toml(_value(r, good))}")
    if r.random() < 0.3:
        lines.append("[sources]\nhardware = \"a paper\"")
    return "\n".join(lines) + "\n"


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(value, "nan" if value != value else repr(value))
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return str(value)


def _load_outcome(path: Path) -> str:
    """'ok', or which part of the loader refused the file ('growth', 'curve', 'settings', 'top')."""
    from pipeline import scenario

    try:
        scenario.load_scenario(path)
    except InputError as exc:
        assert exc.fix, str(exc)
        assert "not valid TOML" not in exc.problem, exc.problem   # the generator writes valid TOML
        return (exc.column or "top").split(".")[0].split("[")[0]
    return "ok"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False))
def test_malformed_scenario_toml(tmp_path, r):
    path = tmp_path / "scenario.toml"
    path.write_text(scenario_doc(r), encoding="utf-8")
    assert _load_outcome(path) in ("ok", "growth", "curve", "settings", "name", "top")


def test_scenario_fuzzer_reaches_every_check(tmp_path):
    """The generator is worth running: its files parse as TOML and reach the growth, curve and settings checks,
    and some are accepted."""
    import collections

    r = random.Random(0)
    seen = collections.Counter()
    for i in range(300):
        path = tmp_path / f"s{i}.toml"
        path.write_text(scenario_doc(r), encoding="utf-8")
        seen[_load_outcome(path)] += 1
    assert {"ok", "growth", "curve", "settings"} <= set(seen), seen


def test_malformed_scenario_through_cli(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[growth\nfrontier = 'fast'\n")
    done = run_cli("project", "--scenario", str(path), "--db", str(tmp_path / "s.duckdb"))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert str(path) in done.stderr and "Fix:" in done.stderr


# ------------------------------------------------------------------- audit fixes: what is accepted
def _stored(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_percent_strings_become_fractions(tmp_path):
    path = tmp_path / "pct.csv"
    path.write_text(HEADER + "A,mmlu,77%,1e22\nB,mmlu,0.61,1e23\nC,mmlu, 80.5 %,1e24\n")
    db = tmp_path / "s.duckdb"
    done = run_cli("ingest", str(path), "--db", str(db))
    assert done.returncode == 0, done.stderr
    rows = _stored(db, "SELECT model, value, unit, original_unit FROM observations ORDER BY model")
    assert [(m, round(v, 4), u, o) for m, v, u, o in rows] == [
        ("A", 0.77, "fraction", "percent string"), ("B", 0.61, "fraction", "fraction"),
        ("C", 0.805, "fraction", "percent string")]


def test_percent_string_in_a_percent_unit_column_is_divided_once(tmp_path):
    path = tmp_path / "pct_unit.csv"
    path.write_text("model,metric,value,value_lo,unit,train_flop\nA,mmlu,77%,70,percent,1e22\n")
    [data] = read_generic(path)
    row = data.observations.iloc[0]
    assert row["value"] == pytest.approx(0.77) and row["value_lo"] == pytest.approx(0.70) and row["unit"] == "fraction"


def test_unit_is_guessed_per_metric_and_from_kind(tmp_path):
    path = tmp_path / "units.csv"
    path.write_text("model,metric,value,train_flop,kind\n"
                    "A,mmlu,0.5,1e22,\nB,mmlu,1,1e23,\nA,arena,1200,1e22,elo\nB,arena,0.9,1e23,elo\n"
                    "A,bench_points,80,1e22,\nB,bench_points,12,1e23,\n")
    db = tmp_path / "s.duckdb"
    done = run_cli("ingest", str(path), "--db", str(db))
    assert done.returncode == 0, done.stderr
    units = dict(_stored(db, "SELECT metric, string_agg(DISTINCT unit || '/' || kind) FROM observations GROUP BY 1"))
    assert units == {"mmlu": "fraction/benchmark", "arena": "elo/elo", "bench_points": "score/benchmark"}


def test_mixed_unit_error_names_the_first_offending_row(tmp_path):
    path = tmp_path / "mixed_units.csv"
    path.write_text(HEADER + "A,mmlu,0.5,1e22\nB,other,80,1e22\nC,mmlu,0.6,1e23\nD,mmlu,75,1e23\nE,mmlu,90,1e24\n")
    done = run_cli("ingest", str(path), "--db", str(tmp_path / "s.duckdb"))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"{path}, row 5, column 'value'" in done.stderr, done.stderr
    assert "unit" in done.stderr.split("Fix:")[1]


# ------------------------------------------------------------ properties: METR yaml and JSON readers
def _only_input_error(read, path: Path) -> None:
    try:
        read(path)
    except InputError as exc:
        assert str(path) in str(exc) and "Fix:" in str(exc), str(exc)


yaml_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                        st.floats(allow_nan=True, allow_infinity=True),
                        st.sampled_from(["2024-02-30", "2024-99-13", "2024-01-02", "2024-01-02T03:04:05Z",
                                         "2024-01-02 03:04:05+05:00", "0001-01-01", "9999-12-31", "1e999", "nan",
                                         ".inf", "", "~", "[", "{a: 1}", "!!binary zz", "- x"]),
                        st.text(max_size=12))
yaml_key = st.sampled_from(["results", "date", "metrics", "release_date", "p50_horizon_length",
                            "p80_horizon_length", "average_score", "estimate", "ci_low", "ci_high",
                            "doubling_time_in_days", "from_2023_on", "point_estimate", "benchmark_name",
                            "model_a", "model_b", "x"])
yaml_tree = st.recursive(yaml_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                              st.dictionaries(yaml_key, inner, max_size=5)),
                         max_leaves=25)


def _yaml_text(tree) -> str:
    """Dump a tree, writing date-like strings unquoted so yaml sees them as timestamps."""
    import yaml

    text = yaml.safe_dump(tree, default_flow_style=False, allow_unicode=True)
    return re.sub(r"'(\d{4}-\d{2}-\d{2}[^']*)'", r"\1", text)


@FUZZ
@given(st.one_of(st.text(max_size=300),
                 yaml_tree.map(_yaml_text),
                 st.dictionaries(st.sampled_from(["results", "date"]),
                                 st.dictionaries(yaml_key, yaml_tree, max_size=3), min_size=1).map(_yaml_text)),
       st.sampled_from(["benchmark_results_fuzz.yaml", "release_dates_fuzz.yaml"]))
def test_random_text_into_metr_yaml_gives_only_input_error(tmp_path, text, name):
    from pipeline.sources import metr

    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    adapter = metr.RESULTS if name.startswith("benchmark_results") else metr.RELEASE_DATES
    _only_input_error(adapter.read, path)


def _maybe(draw, good):
    """Mostly the well-formed piece (a value, or drawn from a strategy), sometimes any yaml tree instead."""
    if draw(st.integers(0, 11)) == 0:
        return draw(yaml_tree)
    return draw(good) if isinstance(good, st.SearchStrategy) else good


@st.composite
def metr_results_tree(draw) -> dict:
    number = st.one_of(st.floats(0.01, 1000), st.integers(1, 100))

    def estimate() -> dict:
        value = draw(number)
        out = {"estimate": _maybe(draw, value)}
        for bound, scale in (("ci_low", 0.5), ("ci_high", 2.0)):
            if draw(st.booleans()):
                out[bound] = _maybe(draw, value * scale)
        return _maybe(draw, out)

    results = {}
    for model in draw(st.lists(st.sampled_from(["model_a", "model_b", "gpt_x"]), min_size=1, max_size=3,
                               unique=True)):
        metrics = {field: estimate() for field in ("p50_horizon_length", "p80_horizon_length", "average_score")}
        entry = {"metrics": _maybe(draw, metrics)}
        if draw(st.booleans()):
            entry["release_date"] = _maybe(draw, st.sampled_from(["2024-01-02", "2024-02-30", "2023-13-01", "0001-01-01",
                                                                  "2024-01-02T03:04:05Z"]))
        results[model] = _maybe(draw, entry)
    tree = {"results": _maybe(draw, results), "benchmark_name": _maybe(draw, "METR-Horizon-v1")}
    if draw(st.booleans()):
        recent = estimate()
        if isinstance(recent, dict) and "estimate" in recent:
            recent["point_estimate"] = recent.pop("estimate")
        tree["doubling_time_in_days"] = _maybe(draw, {"from_2023_on": recent})
    return tree


@FUZZ
@given(metr_results_tree().map(_yaml_text))
def test_near_valid_metr_results_give_only_input_error(tmp_path, text):
    from pipeline.sources import metr

    path = tmp_path / "benchmark_results_fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    _only_input_error(metr.RESULTS.read, path)


@FUZZ
@given(st.binary(max_size=200), st.sampled_from(["benchmark_results_fuzz.yaml", "release_dates_fuzz.yaml"]))
def test_random_bytes_into_metr_yaml_gives_only_input_error(tmp_path, content, name):
    from pipeline.sources import metr

    path = tmp_path / name
    path.write_bytes(content)
    adapter = metr.RESULTS if name.startswith("benchmark_results") else metr.RELEASE_DATES
    _only_input_error(adapter.read, path)


json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
json_tree = st.recursive(json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                              st.dictionaries(st.text(max_size=4), inner,
                                                                              max_size=3)), max_leaves=15)


def _mostly(good: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(good, good, good, json_tree)


run_record = st.fixed_dictionaries(
    {"run_id": _mostly(st.one_of(st.integers(0, 5), st.sampled_from(["r1", "r2"]))),
     "task_id": _mostly(st.sampled_from(["t1", "t2"])), "alias": _mostly(st.sampled_from(["gpt", "claude"])),
     "score_binarized": _mostly(st.sampled_from([0, 1])), "human_minutes": _mostly(st.floats(0.1, 1e4))},
    optional={"time_limit": _mostly(st.floats(0, 1e5)), "equal_task_weight": _mostly(st.floats(0, 1)),
              "invsqrt_task_weight": _mostly(st.floats(0, 1)), "task_family": json_tree, "model": json_tree,
              "score": json_tree, "fatal_error_from": json_tree})


@FUZZ
@given(st.one_of(st.text(max_size=300),
                 st.lists(st.one_of(run_record, json_tree), min_size=1, max_size=5).map(
                     lambda records: "\n".join(json.dumps(r) for r in records))))
def test_random_text_into_metr_jsonl_gives_only_input_error(tmp_path, text):
    from pipeline.sources import metr

    path = tmp_path / "all_runs_fuzz.jsonl"
    path.write_text(text, encoding="utf-8")
    _only_input_error(metr.RUNS.read, path)


leaderboard_entry = st.one_of(
    json_tree,
    st.fixed_dictionaries({"rating": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                                               st.integers(10**300, 10**400), st.text(max_size=5))},
                          optional={"rating_q025": st.floats(1000, 1400), "rating_q975": st.floats(1000, 1400)}))


@FUZZ
@given(st.one_of(st.text(max_size=300),
                 st.dictionaries(st.sampled_from(["full", "coding", "math"]),
                                 st.one_of(json_tree, st.dictionaries(st.text(min_size=1, max_size=8),
                                                                      leaderboard_entry, max_size=3)),
                                 max_size=3).map(json.dumps)))
def test_random_json_into_lmarena_catalog_gives_only_input_error(tmp_path, text):
    # {"full": {...}, "coding": [1]} and ratings of 10**400 used to end in a traceback
    from pipeline.sources import lmarena

    path = tmp_path / "leaderboard-text-fuzz.json"
    path.write_text(text, encoding="utf-8")
    _only_input_error(lmarena.CATALOG.read, path)
