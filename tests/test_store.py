"""The store's promises: one transaction per stage, upserts, a busy second writer, run records."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from pipeline import store
from pipeline.schema import InputError, conform, validate_observations


def _obs(values: list[float], models: list[str] | None = None) -> pd.DataFrame:
    models = models or [f"m{i}" for i in range(len(values))]
    return conform(pd.DataFrame({
        "source": "test", "source_version": "v1", "source_sha256": "0" * 64, "model": models,
        "metric": "mmlu", "kind": "benchmark", "unit": "fraction", "value": values,
        "train_flop": [1e21 * (i + 1) for i in range(len(values))], "row_ref": [str(i + 2) for i in range(len(values))],
    })).assign(ingest_run_id="r0")


def test_upsert_refuses_unknown_and_missing_columns(tmp_db):
    con = store.connect(tmp_db)
    try:
        with pytest.raises(store.SchemaMismatch, match="no column.*valu"):
            store.upsert(con, "observations", _obs([0.3]).rename(columns={"value": "valu"}))
        with pytest.raises(store.SchemaMismatch, match="lack column.*ingest_run_id"):
            store.upsert(con, "observations", _obs([0.3]).drop(columns=["ingest_run_id"]))
        assert store.upsert(con, "observations", _obs([0.3]).drop(columns=["ingest_run_id"]), partial=True) == 1
        assert con.execute("SELECT count(*) FROM observations").fetchone()[0] == 1
    finally:
        con.close()


OLD_PROJECTION_TRAJECTORIES = """CREATE TABLE projection_trajectories (run_id VARCHAR, scenario VARCHAR,
    curve VARCHAR, year DOUBLE, frontier DOUBLE, meek DOUBLE, gap DOUBLE, gap_lo DOUBLE, gap_mid DOUBLE,
    gap_hi DOUBLE, PRIMARY KEY (run_id, scenario, curve, year))"""


def test_migrations_bring_an_old_store_up_to_date_in_order(tmp_path):
    """A store from before the migrations (old trajectories keyed by year, no verdict columns) gains every
    column and keeps its rows; the migrations are numbered, applied once, in order."""
    import duckdb

    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, command VARCHAR, started_at TIMESTAMP, "
                "finished_at TIMESTAMP, status VARCHAR, message VARCHAR, parameters JSON, code_version VARCHAR, "
                "data_digests JSON, host VARCHAR, pid INTEGER)")
    con.execute(OLD_PROJECTION_TRAJECTORIES)
    con.execute("INSERT INTO projection_trajectories VALUES ('r', 's', 'c', 2024.0, 1, 0.5, 0.5, NULL, NULL, NULL), "
                "('r', 's', 'c', 2023.0, 0.8, 0.5, 0.3, NULL, NULL, NULL)")
    con.close()
    versions = [int(p.name[:3]) for p in store.MIGRATIONS]
    assert versions == sorted(versions) == list(range(1, len(versions) + 1))
    con = store.connect(db)
    try:
        applied = [r[0] for r in con.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()]
        assert applied == versions
        assert {"step", "decades"} <= set(store.table_columns(con, "projection_trajectories"))
        rows = con.execute("SELECT step, year FROM projection_trajectories ORDER BY step").fetchall()
        assert rows == [(0, 2023.0), (1, 2024.0)]
        for table in store.TABLES:   # every table of the current schema exists with every column
            declared = [line.split()[0].strip('"') for line in store.TABLES[table].split("(", 1)[1].splitlines()
                        if line.strip() and not line.strip().startswith(("PRIMARY", ")"))]
            assert set(declared) <= set(store.table_columns(con, table)), table
    finally:
        con.close()
    con = store.connect(db)   # opening again applies nothing twice
    try:
        assert con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(versions)
    finally:
        con.close()


def test_migration_010_drops_the_registry_key_and_keeps_its_rows(tmp_path):
    """A store from before 010 holds model_aliases with a primary key (an index DuckDB keeps in memory until an
    ingest commits); the migration copies its rows into the keyless table."""
    db = tmp_path / "store.duckdb"
    con = store.connect(db)
    con.execute("DROP TABLE model_aliases")
    con.execute(OLD_MODEL_ALIASES)
    con.execute("INSERT INTO model_aliases (source, alias, model, status) VALUES ('arena', 'gpt-4', 'GPT-4', 'matched')")
    con.execute("DELETE FROM schema_migrations WHERE version = 10")
    con.close()

    def keys(con):
        return con.execute("SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'model_aliases' "
                           "AND constraint_type = 'PRIMARY KEY'").fetchone()[0]

    con = store.connect(db)
    try:
        assert keys(con) == 0
        assert con.execute("SELECT source, alias, model, status FROM model_aliases").fetchall() == [
            ("arena", "gpt-4", "GPT-4", "matched")]
        assert con.execute("SELECT count(*) FROM schema_migrations WHERE version = 10").fetchone()[0] == 1
    finally:
        con.close()


OLD_MODEL_ALIASES = """CREATE TABLE model_aliases (source VARCHAR, alias VARCHAR, model VARCHAR, status VARCHAR,
    method VARCHAR, "key" VARCHAR, release_key VARCHAR, release_date TIMESTAMP, candidates JSON, n_observations INTEGER,
    filled JSON, note VARCHAR, PRIMARY KEY (source, alias))"""


def test_upsert_replaces_on_natural_key(tmp_db):
    con = store.connect(tmp_db)
    with store.transaction(con):
        store.upsert(con, "observations", _obs([0.3, 0.4]))
    with store.transaction(con):
        store.upsert(con, "observations", _obs([0.35, 0.4]))
    rows = con.execute("SELECT model, value FROM observations ORDER BY model").fetchall()
    con.close()
    assert rows == [("m0", 0.35), ("m1", 0.4)]


def test_failed_stage_leaves_previous_state(tmp_db):
    con = store.connect(tmp_db)
    with store.transaction(con):
        store.upsert(con, "observations", _obs([0.3, 0.4]))
    before = store.table_digest(con, "observations")
    con.close()
    with pytest.raises(RuntimeError):
        with store.open_stage(tmp_db, "r1", "ingest") as con:
            con.execute("DELETE FROM observations")
            store.upsert(con, "observations", _obs([0.9]))
            raise RuntimeError("crash mid-stage")
    con = store.connect(tmp_db, read_only=True)
    assert store.table_digest(con, "observations") == before
    assert con.execute("SELECT count(*) FROM run_stages").fetchone()[0] == 0
    con.close()


def test_second_writer_waits_then_fails_clearly(tmp_db):
    store.connect(tmp_db).close()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, time, sys
        con = duckdb.connect({str(tmp_db)!r})
        print("locked", flush=True)
        time.sleep(6)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(store.StoreBusy) as info:
            store.connect(tmp_db, timeout_s=1.0)
        assert time.monotonic() - started >= 0.9  # it waited with backoff before giving up
        assert "another scalegap process" in str(info.value) and "Fix:" in str(info.value)
        holder.wait(timeout=20)
        store.connect(tmp_db, timeout_s=5).close()  # free again once the holder exits
    finally:
        holder.kill()


def test_run_records_and_dead_runs(tmp_db):
    run_id = store.start_run(tmp_db, "test", {"bootstrap": 10})
    con = store.connect(tmp_db)
    con.execute("UPDATE runs SET pid = 999999999 WHERE run_id = ?", [run_id])  # a process that is gone
    con.close()
    other = store.start_run(tmp_db, "test", {})
    store.finish_run(tmp_db, other, "succeeded", data_digests={"f.csv": "abc"})
    con = store.connect(tmp_db, read_only=True)
    status = dict(con.execute("SELECT run_id, status FROM runs").fetchall())
    assert status == {run_id: "failed", other: "succeeded"}
    assert store.latest_run(con) == other
    row = con.execute("SELECT parameters, code_version, data_digests FROM runs WHERE run_id = ?", [run_id]).fetchone()
    con.close()
    assert '"bootstrap": 10' in row[0] and row[1].startswith("0.1.0+") and row[2] is None


def test_validation_names_row_and_column():
    frame = _obs([0.3, 1.7])
    with pytest.raises(InputError) as info:
        validate_observations(frame, "scores.csv")
    message = str(info.value)
    assert "scores.csv" in message and "row 3" in message and "'value'" in message and "Fix:" in message


def test_validation_rejects_conflicting_duplicates_and_drops_exact_ones():
    exact = validate_observations(_obs([0.3, 0.3], ["a", "a"]).assign(row_ref=["2", "3"]), "f.csv")
    assert len(exact) == 1
    with pytest.raises(InputError, match="duplicate key"):
        validate_observations(_obs([0.3, 0.4], ["a", "a"]), "f.csv")


@pytest.mark.parametrize("target", ["/sys/scalegap/x.duckdb", "FILE/x.duckdb", "DIR"])
def test_unwritable_database_path_is_refused_before_work(tmp_path, target):
    a_file = tmp_path / "plain.txt"
    a_file.write_text("not a folder")
    path = {"FILE/x.duckdb": a_file / "x.duckdb", "DIR": tmp_path}.get(target, target)
    with pytest.raises(store.StoreUnavailable, match="Fix:"):
        store.connect(path)
    assert not (tmp_path / "x.duckdb").exists()


def test_observation_columns_are_the_tables():
    """The reader's column spec (schema.OBSERVATION_SPEC) and the table in ddl/tables.sql describe one thing:
    every spec column is a table column of a matching type, and the table adds only the ingest run id."""
    from pipeline.schema import OBSERVATION_SPEC

    sql_type = {"string": "VARCHAR", "float64": "DOUBLE", "datetime64[ns]": "TIMESTAMP"}
    import duckdb

    mem = duckdb.connect()
    mem.execute(store.TABLES["observations"])
    described = {row[0]: row[1] for row in mem.execute("DESCRIBE observations").fetchall()}
    mem.close()
    assert [c for c in described if c != "ingest_run_id"] == [name for name, _, _ in OBSERVATION_SPEC]
    for name, dtype, _ in OBSERVATION_SPEC:
        assert described[name] == sql_type[dtype], name
