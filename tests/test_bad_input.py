"""Bad input (issues 2 and 9): one clear message naming file, row and column with a fix, a non-zero exit,
no traceback, and the store unchanged. Plus property-based tests on the parsers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import store
from pipeline.schema import InputError, ScalegapError
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
    taxonomy = pytest.importorskip("pipeline.taxonomy")
    import sympy

    try:
        expr, symbol = taxonomy.parse_expression(text)
    except taxonomy.ExpressionError:
        return
    assert isinstance(expr, sympy.Basic) and symbol.name == "C"


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["__import__('os').system('touch /tmp/scalegap-pwned')", "C.__class__", "exec('1')",
                        "lambda: C", "C; import os", "open('x')", "eval('C')", "[C]", "C if C else 1"]))
def test_code_injection_refused(text):
    taxonomy = pytest.importorskip("pipeline.taxonomy")
    with pytest.raises(taxonomy.ExpressionError):
        taxonomy.parse_expression(text)
    assert not Path("/tmp/scalegap-pwned").exists()


toml_value = st.one_of(st.integers(-10, 10), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                       st.booleans(), st.lists(st.integers(), max_size=3))


@st.composite
def scenario_text(draw) -> str:
    lines = []
    for table in draw(st.lists(st.sampled_from(["scenario", "growth", "growth.frontier", "growth.meek", "curve",
                                                "[curve]", "window", "x"]), max_size=4)):
        lines.append(f"[[{table[1:-1]}]]" if table.startswith("[") else f"[{table}]")
        for key in draw(st.lists(st.sampled_from(["name", "start", "until", "doubling_months", "a", "b", "family",
                                                  "metric", "params", "start_flop", "distribution", "mean", "sd"]),
                                 max_size=4, unique=True)):
            value = draw(toml_value)
            lines.append(f"{key} = {_toml(value)}")
    if draw(st.booleans()):
        lines.append(draw(st.text(max_size=20)))  # stray syntax
    return "\n".join(lines) + "\n"


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(value, "nan" if value != value else repr(value))
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario_text())
def test_malformed_scenario_toml(tmp_path, text):
    projection = pytest.importorskip("pipeline.projection")
    path = tmp_path / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    try:
        projection.load_scenario(path)
    except ScalegapError as exc:
        assert "Fix:" in str(exc) or isinstance(exc, InputError) and exc.fix


def test_malformed_scenario_through_cli(tmp_path):
    pytest.importorskip("pipeline.projection")
    path = tmp_path / "bad.toml"
    path.write_text("[growth\nfrontier = 'fast'\n")
    done = run_cli("project", "--scenario", str(path), "--db", str(tmp_path / "s.duckdb"))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert str(path) in done.stderr and "Fix:" in done.stderr
