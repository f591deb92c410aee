"""Issue 18: usage errors of every command end in click's usage lines and one `error:` line naming
the closest valid name, exit status 2, no traceback; piped tables are plain and full width; `sources`
and `forget`."""

from __future__ import annotations

import json
import signal
import sys

import pandas as pd
import pytest
import typer

from pipeline import cli, store

COMMANDS = typer.main.get_command(cli.app).commands


@pytest.fixture
def scalegap(monkeypatch, capsys):
    """Run `scalegap ARGS` through main() in this process: (exit status, stdout, stderr)."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def call(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["scalegap", *args])
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code or 0
        else:
            code = 0
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield call
    for sig, handler in handlers.items():  # main() installs its own
        signal.signal(sig, handler)


def assert_usage_error(code: int, stderr: str, *expected: str) -> None:
    assert code == 2, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "rror" in line]
    assert len(errors) == 1 and errors[0].startswith("error: "), stderr
    for text in expected:
        assert text in errors[0], stderr


def test_unknown_command_suggests_the_closest(scalegap):
    code, _, stderr = scalegap("sourcs")
    assert_usage_error(code, stderr, "No such command 'sourcs'", "Did you mean 'sources'?")
    assert stderr.startswith("Usage: scalegap [OPTIONS] COMMAND")
    code, _, stderr = scalegap("zzzz")
    assert_usage_error(code, stderr, "Valid commands:", "run", "forget")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_unknown_option(scalegap, command):
    params = COMMANDS[command].params
    option = next(o for p in params if p.param_type_name == "option" for o in p.opts if o.startswith("--"))
    typo = option[:2] + option[3:] + "x"  # "--db" -> "--bx", "--metric" -> "--etricx"
    code, _, stderr = scalegap(command, typo)
    assert_usage_error(code, stderr, f"No such option: {typo}")
    assert f"Usage: scalegap {command} " in stderr
    code, _, stderr = scalegap(command, "--no-such-option-at-all")
    assert_usage_error(code, stderr, "No such option", "Did you mean" if "--no-cache" in str(params) else "--")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_option_without_its_value(scalegap, command):
    code, _, stderr = scalegap(command, "--db")
    assert_usage_error(code, stderr, "'--db' requires an argument")


@pytest.mark.parametrize("command", sorted(c for c, cmd in COMMANDS.items()
                                           if any(p.type_descriptor.annotation is int for p in cmd.params)))
def test_malformed_number(scalegap, command):
    option = next(p.opts[0] for p in COMMANDS[command].params if p.type_descriptor.annotation is int)
    code, _, stderr = scalegap(command, option, "many")
    assert_usage_error(code, stderr, f"Invalid value for '{option}'")


@pytest.mark.parametrize("command", sorted(c for c, cmd in COMMANDS.items()
                                           if any(p.param_type_name == "argument" and p.required
                                                  for p in cmd.params)))
def test_missing_argument(scalegap, command):
    code, _, stderr = scalegap(command)
    assert_usage_error(code, stderr, "Missing argument")


def test_expected_failures_share_the_prefix(scalegap, tmp_path):
    code, _, stderr = scalegap("status", "--db", str(tmp_path / "none.duckdb"))
    assert code != 0 and stderr.startswith("error: ") and len(stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------------ piped tables
def test_piped_table_is_plain_and_full_width(capsys):
    long = "a-very-long-benchmark-name-that-would-be-folded-in-eighty-columns"
    frame = pd.DataFrame({"metric": [long, "mmlu"], "verdict": ["indeterminate", "meek"], "p": [0.51234, 1.0]})
    cli.print_frame(frame, "title")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "title"
    assert lines[1].split() == ["metric", "verdict", "p"]
    assert lines[2].split() == [long, "indeterminate", "0.5123"] and len(lines[2]) > 80
    assert not any(ch in "".join(lines) for ch in "│┃━─")


# ------------------------------------------------------------------------------ sources / forget
@pytest.fixture
def two_sources(tmp_path):
    db = tmp_path / "s.duckdb"
    csv = tmp_path / "mine.csv"
    rows = "".join(f"m{i},mmlu,{0.3 + i / 20:.2f},{10 ** (21 + i / 2):.3g},mine\n" for i in range(6))
    csv.write_text("model,metric,value,train_flop,source\n" + rows)
    from pipeline import ingest

    ingest.ingest([str(csv)], db=db)
    csv.write_text("model,metric,value,train_flop,source\n" + rows.replace("0.30", "0.31"))
    ingest.ingest([str(csv)], db=db)  # a corrected copy: a second version of the same label
    return db


def test_sources_lists_versions_and_which_the_fits_use(scalegap, two_sources):
    code, out, _ = scalegap("sources", "--db", str(two_sources), "--json")
    assert code == 0
    rows = json.loads(out)["sources"]
    assert [r["source"] for r in rows] == ["mine", "mine"]
    old, new = rows
    assert new["source_version"].startswith(old["source_version"] + "@")
    assert (old["fits"], new["fits"]) == (f"superseded by {new['source_version']}", "used")
    assert old["rows"] == 6 and len(old["sha256"]) == 12 and old["retrieved_at"]
    code, out, _ = scalegap("sources", "--db", str(two_sources))
    assert code == 0 and "superseded by" in out


def test_forget_leaves_a_version_out_of_future_runs_only(scalegap, two_sources):
    con = store.connect(two_sources, read_only=True)
    try:
        [(newest,)] = con.execute("SELECT source_version FROM sources WHERE source_version LIKE '%@%'").fetchall()
        observations = store.table_digest(con, "observations")
    finally:
        con.close()
    code, out, stderr = scalegap("forget", f"mine@{newest}", "--db", str(two_sources), "--json")
    assert code == 0 and json.loads(out) == {"source": "mine", "versions": [newest], "forgotten": True}
    con = store.connect(two_sources, read_only=True)
    try:
        assert store.forgotten_sources(con) == {("mine", newest)}
        view = store.sources_view(con).set_index("source_version")["fits"].to_dict()
        frame = con.execute("SELECT * FROM observations").df()
        kept = store.drop_forgotten(con, frame)
        assert store.table_digest(con, "observations") == observations  # nothing deleted
    finally:
        con.close()
    assert view[newest] == "forgotten" and view[newest.split("@")[0]] == "used"  # the older copy again
    assert len(frame) == 12 and len(kept) == 6 and (kept["source_version"] != newest).all()
    # Back again; then the whole source at once.
    assert scalegap("forget", f"mine@{newest}", "--undo", "--db", str(two_sources))[0] == 0
    code, _, stderr = scalegap("forget", "mine", "--db", str(two_sources))
    assert code == 0 and "left out of future runs" in stderr
    con = store.connect(two_sources, read_only=True)
    try:
        assert len(store.forgotten_sources(con)) == 2
    finally:
        con.close()


def test_forget_unknown_names_say_what_exists(scalegap, two_sources):
    code, _, stderr = scalegap("forget", "mne", "--db", str(two_sources))
    assert code == 2 and stderr.startswith("error: ") and "did you mean 'mine'" in stderr
    code, _, stderr = scalegap("forget", "mine@1999", "--db", str(two_sources))
    assert code == 2 and stderr.startswith("error: ") and "mine@" in stderr
