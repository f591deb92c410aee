"""The model registry in the store: every source's spellings joined to one model (pipeline.registry), rebuilt
inside the ingest transaction, and the observations that gain compute, dates and organisations through it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline import registry, store
from pipeline.sources import Scratch, sql_text

ALIAS_FILE = "aliases.toml"
PROJECT_ALIASES = Path(__file__).resolve().parents[1] / "data" / "raw" / ALIAS_FILE
# Sources whose names are not released models: training runs of one paper, board-game agents, and a
# leaderboard of community fine-tunes whose names collide with the models they were tuned from.
UNREGISTERED = {"jones2021_": "board-game agents of one paper", "chinchilla_": "training runs of one paper",
                "chatbot_arena_history_by_org": "organisations, not models",
                "open_llm_leaderboard": "community fine-tunes (names are not model identities)"}
NO_COMPUTE = "no training compute published%"

# METR run aliases -> names the same model carries in METR's published results (the keys of
# benchmark_results*.yaml), used to compare our per-run horizons with METR's own (tests, benchmarks).
# The registry reads the same equivalences from data/raw/aliases.toml.
RUN_ALIASES: dict[str, tuple[str, ...]] = {
    "Claude 3 Opus": ("claude_3_opus", "claude-3-opus-20240229"),
    "Claude 3.5 Sonnet (Old)": ("claude_3_5_sonnet", "claude-3-5-sonnet-20240620"),
    "Claude 3.5 Sonnet (New)": ("claude_3_5_sonnet_20241022", "claude-3-5-sonnet-20241022"),
    "GPT-4 0314": ("gpt_4", "gpt-4-0314"),
    "GPT-4 Turbo": ("gpt_4_turbo", "gpt-4-turbo-2024-04-09"),
    "GPT-4o": ("gpt_4o",),
    "davinci-002": ("davinci-002 (GPT-3)", "davinci_002", "davinci-002"),
    "gpt-3.5-turbo-instruct": ("gpt_3_5_turbo_instruct", "gpt-3.5-turbo-instruct"),
    "o1": ("o1_elicited", "o1-2024-12-17_medium"),
    "o1-preview": ("o1_preview", "o1-preview-2024-09-12"),
}


def normalise(name: str) -> str:
    """The registry's key of a spelling (see pipeline.registry.key)."""
    return registry.key(name)


def alias_files(targets: list[str] | None = None) -> list[Path]:
    """Alias files for an ingest: every `aliases.toml` in a folder being ingested and $SCALEGAP_ALIASES; with
    none of those, data/raw/aliases.toml under the working directory, else the project's own."""
    found: list[Path] = []
    for target in targets or []:
        path = Path(target)
        if path.is_dir() and (path / ALIAS_FILE).is_file():
            found.append(path / ALIAS_FILE)
    for item in filter(None, os.environ.get("SCALEGAP_ALIASES", "").split(os.pathsep)):
        found.append(Path(item))
    if not found:
        local = Path("data") / "raw" / ALIAS_FILE
        found.append(local if local.is_file() else PROJECT_ALIASES)
    unique: list[Path] = []
    for path in found:
        if path.resolve() not in {p.resolve() for p in unique}:
            unique.append(path)
    return [p for p in unique if p.is_file() or p != PROJECT_ALIASES]


def load_alias_files(paths: list[Path]) -> registry.AliasFile:
    merged = registry.AliasFile()
    for path in paths:
        if not Path(path).is_file():
            from pipeline.schema import InputError

            raise InputError(str(path), "alias file not found", "fix $SCALEGAP_ALIASES or create the file")
        merged = merged.merged(registry.load_alias_file(path))
    return merged


def _unregistered_sql(column: str = "source") -> str:
    return " AND ".join(f"{column} NOT LIKE '{prefix}%'" for prefix in UNREGISTERED)


# The SQL types of registry.ROW_COLUMNS
ROW_TYPES = ("VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "TIMESTAMP", "VARCHAR",
             "INTEGER", "VARCHAR", "VARCHAR", "BOOLEAN", "BIGINT", "TIMESTAMP", "VARCHAR", "DOUBLE", "VARCHAR",
             "BOOLEAN")


def create_rows_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """The table `registry.Builder.match` pieces are inserted into (BY NAME), on any DuckDB connection."""
    columns = ", ".join(f'"{c}" {t}' for c, t in zip(registry.ROW_COLUMNS, ROW_TYPES, strict=True))
    con.execute(f"CREATE TABLE {table} ({columns})")


def finished(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows read back from DuckDB, with None (not NaN) for a missing text."""
    for column in frame.columns:
        if pd.api.types.is_string_dtype(frame[column]):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def finish_sql(table: str) -> str:
    """The rows of `table` as the registry's spellings: one row per (source, spelling), the lowest `_ordinal`;
    a spelling with no date of its own takes its release's, from the first source row (Epoch's sources first,
    then by source and spelling) that dates the release. Unordered; each step a join or a plain aggregate,
    which DuckDB spills to disk (a window or an ordered aggregate over millions of rows would not)."""
    kept = ", ".join(f'r."{c}"' for c in registry.ROW_COLUMNS if c != "release_date")
    return f"""
        WITH firsts AS (
            SELECT release_key, arg_min(_row_date, (NOT _creates, source, alias, _ordinal)) AS dated
            FROM {table} WHERE _row_date IS NOT NULL GROUP BY release_key),
        repeated AS (
            SELECT source, alias, min(_ordinal) AS _ordinal FROM {table} GROUP BY source, alias HAVING count(*) > 1)
        SELECT {kept}, CASE WHEN r._takes_date THEN coalesce(r.release_date, f.dated) ELSE r.release_date END
                       AS release_date
        FROM {table} r LEFT JOIN firsts f USING (release_key)
        WHERE NOT EXISTS (SELECT 1 FROM repeated d WHERE d.source = r.source AND d.alias = r.alias
                          AND d._ordinal < r._ordinal)"""


def build(facts: pd.DataFrame, names: pd.DataFrame, alias_file: registry.AliasFile | None = None,
          own_dates: dict[str, pd.Timestamp] | None = None) -> registry.Registry:
    """The registry from Epoch's model facts and every spelling the sources use, all in memory (`rebuild` builds
    the same in the store, a piece at a time).

    `names`: registry.NAME_COLUMNS, one row per (source, spelling) with what that source itself says of it; `creates`
    marks Epoch's own spellings."""
    names = registry.names_frame(names)
    builder = registry.Builder(facts, names[names["creates"].fillna(False).astype(bool)], alias_file, own_dates)
    con = duckdb.connect()
    try:
        create_rows_table(con, "rows")
        for frame in (builder.match(names.assign(_ordinal=np.arange(len(names)))), builder.own_rows()):
            con.register("_piece", frame)
            con.execute("INSERT INTO rows BY NAME SELECT * FROM _piece")
            con.unregister("_piece")
        aliases = finished(con.execute(f"{finish_sql('rows')} ORDER BY source, alias").df())
    finally:
        con.close()
    models = builder.models(aliases[aliases["status"] == "matched"])
    return registry.Registry(models, aliases[list(registry.ALIAS_COLUMNS)], builder.notes)


def _names_sql(sources_like: str = "%", parts: int = 1, part: int = 0) -> str:
    """Every spelling an observation or a METR run uses, one row per (source, spelling) and what that source says
    of it (`_ordinal`: an observation's row counts before a run's): of sources named like `sources_like`, and of
    the spellings whose hash falls in `part` of `parts` (each part grouped on its own, in a part of the memory)."""
    def chosen(column: str) -> str:
        return f"source LIKE '{sources_like}' AND hash({column}) % {parts} = {part}"

    return f"""
        SELECT source, model AS name, min(release_date) AS release_date, min(organization) AS organization,
               max(train_flop) FILTER (WHERE coalesce(train_flop_note, '') NOT LIKE 'joined%') AS train_flop,
               min(train_flop_note) FILTER (WHERE coalesce(train_flop_note, '') NOT LIKE 'joined%'
                                            AND train_flop IS NOT NULL) AS train_flop_note,
               count(*) AS n_observations, source LIKE 'epoch_%' AS creates, 0 AS _ordinal
        FROM observations WHERE {_unregistered_sql()} AND {chosen("model")} GROUP BY source, model
        UNION ALL
        SELECT source, alias AS name, NULL::TIMESTAMP, NULL::VARCHAR, NULL::DOUBLE, NULL::VARCHAR, count(*),
               false, 1
        FROM metr_runs WHERE {chosen("alias")} GROUP BY source, alias"""


def registry_inputs(con: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(facts, Epoch's own spellings, own dates) as stored: Epoch's model facts (and the older compute lookup),
    the spellings of Epoch's sources (which found a model when none matches), and METR's release-date tables.
    Every other spelling is read a piece at a time (`rebuild`)."""
    facts = con.execute("SELECT origin, name, version_name, display_name, organization, country, release_date, "
                        "train_flop, train_flop_lo, train_flop_hi, confidence, accessibility, params "
                        "FROM model_facts ORDER BY origin, row_ref").df()
    legacy = con.execute("SELECT source || '@' || source_version AS origin, model AS name, organization, "
                         "release_date, train_flop, confidence, params FROM model_compute c WHERE NOT EXISTS "
                         "(SELECT 1 FROM model_facts f WHERE f.origin = c.source || '@' || c.source_version) "
                         "ORDER BY origin, name").df()
    facts = pd.concat([facts, legacy], ignore_index=True) if len(legacy) else facts
    creating = con.execute(f"SELECT * FROM ({_names_sql('epoch_%')}) ORDER BY source, name").df()
    dates = con.execute("SELECT alias, release_date FROM metr_release_dates ORDER BY source_version DESC, alias").df()
    own_dates = dates.drop_duplicates("alias").set_index("alias")["release_date"].to_dict()
    return facts, creating, own_dates


PIECE_ROWS = 20_000  # spellings matched at a time
SCRATCH_MEMORY = "128MB"  # what the scratch store holds before it spills
GROUP_ROWS = 100_000  # observations grouped into spellings at a time (DuckDB's hash table of a part)


def rebuild(con: duckdb.DuckDBPyConnection, alias_paths: list[Path] | None = None) -> dict:
    """Rebuild `models` and `model_aliases` from everything stored; fill the observations' missing compute,
    release dates and organisations through it. Runs inside the caller's transaction.

    What an earlier build wrote into the observations is undone first (compute by its note, dates and
    organisations by the spellings' `filled` record), so the registry never reads its own output back as a
    source's, and a rebuild of unchanged inputs changes nothing.

    The spellings go through scratch files a piece at a time (a source may name millions of models): grouped
    and written out by the store a hash part at a time, matched, settled in a scratch store that spills to disk,
    and copied back in one INSERT; only the matched ones are held, to build the models from."""
    paths = alias_files() if alias_paths is None else alias_paths
    alias_file = load_alias_files(paths)
    _unfill(con)
    facts, creating, own_dates = registry_inputs(con)
    builder = registry.Builder(facts, creating, alias_file, own_dates)
    scratch = Scratch(memory=SCRATCH_MEMORY)
    scratch.con.execute("SET preserve_insertion_order = false")  # the rows are settled by key, not by order
    observations = con.execute("SELECT count(*) FROM observations").fetchone()[0]
    parts = max(1, -(-observations // GROUP_ROWS))
    files = [scratch.folder / f"names_{part}.parquet" for part in range(parts)]
    for part, file in enumerate(files):
        con.execute(f"COPY ({_names_sql(parts=parts, part=part)}) TO {sql_text(file)} (FORMAT parquet)")
    create_rows_table(scratch.con, "rows")
    for piece in scratch.pieces("SELECT * FROM read_parquet(?)", [[str(f) for f in files]], PIECE_ROWS):
        scratch.append("rows", builder.match(piece))
    scratch.append("rows", builder.own_rows())
    for file in files:
        file.unlink()
    scratch.con.execute(f"CREATE TABLE aliases AS {finish_sql('rows')}")
    scratch.con.execute("DROP TABLE rows")
    matched = finished(scratch.con.execute("SELECT * FROM aliases WHERE status = 'matched'").df())
    counts = dict(scratch.con.execute("SELECT status, count(*) FROM aliases WHERE source <> 'registry' "
                                      "GROUP BY status ORDER BY count(*) DESC, status").fetchall())
    models = builder.models(matched)
    filled = pd.DataFrame({"source": matched["source"], "alias": matched["alias"],
                           "filled": _what_fills(matched, models)})
    con.execute("DELETE FROM models")
    con.execute("DELETE FROM model_aliases")
    store.upsert(con, "models", models)
    columns = ", ".join(f'"{c}"' for c in registry.ALIAS_COLUMNS)
    chosen = ", ".join("f.filled" if c == "filled" else f'a."{c}"' for c in registry.ALIAS_COLUMNS)
    con.register("_filled", filled)
    try:
        with scratch.attached(con, "registry_rows") as rows:
            con.execute(f"INSERT INTO model_aliases ({columns}) SELECT {chosen} FROM {rows}.aliases a "
                        "LEFT JOIN _filled f USING (source, alias)")
    finally:
        con.unregister("_filled")
    gained = _fill_observations(con)
    return {"models": len(models), "spellings": int(sum(counts.values())), "status": counts,
            "gained_compute": gained, "alias_files": [str(p) for p in paths], "notes": builder.notes}


def attach_compute(con: duckdb.DuckDBPyConnection, alias_paths: list[Path] | None = None) -> int:
    """Rebuild the registry and join it to the observations; returns how many rows gained compute."""
    return rebuild(con, alias_paths)["gained_compute"]


REGISTRY_NOTE = "through the model registry"


def registry_note(model, field_sources, confidence) -> str:
    """How a row's compute came from the registry (the note a rebuild recognises and redoes)."""
    origin = json.loads(field_sources).get("train_flop", "unknown") if isinstance(field_sources, str) else "unknown"
    label = f"Epoch {origin}" if origin.startswith("epoch") else origin
    return f"joined from {label} {REGISTRY_NOTE} as {model!r} (Confidence: {confidence or 'Unknown'})"


def _unfill(con: duckdb.DuckDBPyConnection) -> None:
    # this registry's notes, and those of the name join it replaced ("joined from Epoch <version> as '<model>'")
    con.execute(f"UPDATE observations SET train_flop = NULL, train_flop_note = NULL "
                f"WHERE train_flop_note LIKE 'joined from % {REGISTRY_NOTE} as %' "
                f"OR regexp_matches(train_flop_note, '^joined from Epoch [^ ]+ as ')")
    for column in ("release_date", "organization"):
        con.execute(f"""UPDATE observations SET {column} = NULL FROM model_aliases a
                        WHERE observations.source = a.source AND observations.model = a.alias
                        AND list_contains(CAST(a.filled AS VARCHAR[]), '{column}')""")


def _what_fills(matched: pd.DataFrame, models: pd.DataFrame) -> list:
    """The observation fields the fill will write for each matched spelling (finished registry rows): a date or
    organisation none of its rows has. The registry's own rows fill nothing."""
    model_date = models.set_index("model")["release_date"]
    model_org = models.set_index("model")["organization"]
    out = []
    for source, model, date, org, own_date, method in zip(
            matched["source"], matched["model"], matched["_row_date"], matched["_organization"],
            matched["release_date"], matched["method"], strict=True):
        if source == "registry":
            out.append(None)
            continue
        fields = []
        lends_date = pd.notna(own_date) or (method != "same key without dates" and pd.notna(model_date.get(model)))
        if pd.isna(date) and lends_date:
            fields.append("release_date")
        if pd.isna(org) and pd.notna(model_org.get(model)):
            fields.append("organization")
        out.append(json.dumps(fields) if fields else None)
    return out


def _fill_observations(con: duckdb.DuckDBPyConnection) -> int:
    """Missing compute (never on rows that publish none on purpose), dates and organisations from the registry.
    A release date comes from the spelling's own release, or the model's first release when the spelling
    names the model itself; a spelling matched only without its date lends no date."""
    before = con.execute("SELECT count(*) FROM observations WHERE train_flop IS NOT NULL").fetchone()[0]
    # the matched spellings first, on their own: joined to the observations they are the small side, where
    # millions of unmatched spellings in model_aliases would have DuckDB hash the observations instead
    con.execute("""
        CREATE OR REPLACE TEMP TABLE registry_fill AS
        SELECT a.source, a.alias, a.method, a.release_date AS alias_release_date, m.release_date, m.organization,
               m.train_flop, m.confidence, m.model, json_extract_string(m.field_sources, '$.train_flop') AS origin
        FROM model_aliases a JOIN models m ON m.model = a.model WHERE a.status = 'matched'""")
    joined = "FROM registry_fill f WHERE observations.source = f.source AND observations.model = f.alias"
    try:
        con.execute(f"""
            UPDATE observations SET train_flop = f.train_flop,
                train_flop_note = 'joined from ' || CASE WHEN f.origin LIKE 'epoch%' THEN 'Epoch ' ELSE '' END
                    || coalesce(f.origin, 'unknown') || ' {REGISTRY_NOTE} as ' || chr(39) || f.model || chr(39)
                    || ' (Confidence: ' || coalesce(f.confidence, 'Unknown') || ')'
            {joined} AND observations.train_flop IS NULL AND f.train_flop IS NOT NULL
                AND coalesce(observations.train_flop_note, '') NOT LIKE '{NO_COMPUTE}'""")
        con.execute(f"""
            UPDATE observations SET release_date = coalesce(f.alias_release_date,
                CASE WHEN f.method <> 'same key without dates' THEN f.release_date END)
            {joined} AND observations.release_date IS NULL""")
        con.execute(f"UPDATE observations SET organization = f.organization {joined} "
                    "AND observations.organization IS NULL AND f.organization IS NOT NULL")
    finally:
        con.execute("DROP TABLE IF EXISTS registry_fill")
    after = con.execute("SELECT count(*) FROM observations WHERE train_flop IS NOT NULL").fetchone()[0]
    return int(after - before)


def copy_spellings(con: duckdb.DuckDBPyConnection, from_source: str, to_source: str, names: list[str]) -> int:
    """A derived source that keeps another's names (per-run METR horizons keep the run aliases) joins the
    registry the same way: its spellings are copied, not matched again."""
    con.execute("DELETE FROM model_aliases WHERE source = ?", [to_source])
    chosen = pd.DataFrame({"alias": sorted(set(names))})
    con.register("_chosen", chosen)
    try:
        return con.execute("INSERT INTO model_aliases SELECT * REPLACE (? AS source) FROM model_aliases "
                           "WHERE source = ? AND alias IN (SELECT alias FROM _chosen)",
                           [to_source, from_source]).fetchone()[0]
    finally:
        con.unregister("_chosen")


def lookup(con: duckdb.DuckDBPyConnection, source: str, names: list[str]) -> pd.DataFrame:
    """What the registry says of each of a source's spellings: model, release date of that release, organisation,
    compute with bounds, accessibility (NaN where the spelling is not matched)."""
    frame = con.execute("""
        SELECT a.alias, a.model, a.status, a.method, a.release_date AS alias_release_date,
               m.release_date AS model_release_date, m.organization, m.train_flop, m.train_flop_lo, m.train_flop_hi,
               m.confidence, m.accessibility, m.field_sources
        FROM model_aliases a LEFT JOIN models m ON m.model = a.model
        WHERE a.source = ? ORDER BY a.alias""", [source]).df()
    out = pd.DataFrame({"alias": names}).merge(frame, on="alias", how="left")
    out["release_date"] = out["alias_release_date"].where(
        out["alias_release_date"].notna(),
        out["model_release_date"].where(out["method"] != "same key without dates"))
    return out


def models_table(con: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(models with their spellings, spellings that found no model or several): what `scalegap models` lists."""
    models = con.execute("SELECT * FROM models ORDER BY model").df()
    spellings = con.execute("SELECT model, list(DISTINCT alias ORDER BY alias) AS aliases FROM model_aliases "
                            "WHERE status = 'matched' GROUP BY model").df()
    models = models.merge(spellings, on="model", how="left")
    problems = con.execute("SELECT source, alias, status, method, candidates, n_observations FROM model_aliases "
                           "WHERE status IN ('unmatched', 'ambiguous') ORDER BY status, source, alias").df()
    problems["candidates"] = [json.loads(c) if isinstance(c, str) else None for c in problems["candidates"]]
    return models, problems
