"""Migration 008: a store written before it gains the projections' start, end, ratio and lag columns."""

from __future__ import annotations

from pipeline import store

NEW_COLUMNS = {"projections": ("start_year", "end_year", "ratio_end", "lag_months_end", "lag_months_end_lo",
                               "lag_months_end_hi"),
               "projection_trajectories": ("ratio", "lag_months")}


def test_migration_008_adds_the_columns_to_an_old_store(tmp_path):
    """A store written before 008 (its projection tables without the new columns, 001-007 applied) gains them
    on open and keeps its rows; the new columns read NULL there."""
    db = tmp_path / "old.duckdb"
    con = store.connect(db)
    try:
        for table, columns in NEW_COLUMNS.items():
            for column in columns:
                con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        con.execute("INSERT INTO projections (run_id, scenario, curve, peak_gap) VALUES ('r', 's', 'c', 0.2)")
        con.execute("DELETE FROM schema_migrations WHERE version = 8")
    finally:
        con.close()
    con = store.connect(db)
    try:
        for table, columns in NEW_COLUMNS.items():
            assert set(columns) <= set(store.table_columns(con, table)), table
        assert con.execute("SELECT peak_gap, start_year, lag_months_end FROM projections").fetchall() == [(0.2, None, None)]
        assert con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == int(store.MIGRATIONS[-1].name[:3])
    finally:
        con.close()
