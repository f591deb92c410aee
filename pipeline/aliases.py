"""Model names differ between sources; a normalised name joins them to Epoch's compute estimates."""

from __future__ import annotations

import re

import duckdb
import pandas as pd

from pipeline import store

# Names that normalisation alone does not join (source spelling -> Epoch 'Model').
MANUAL = {
    "gpt4_0314": "GPT-4", "gpt-4-0314": "GPT-4", "gpt_4": "GPT-4", "gpt-4o": "GPT-4o", "gpt_4o": "GPT-4o",
    "claude_3_opus": "Claude 3 Opus", "claude-3-opus-20240229": "Claude 3 Opus",
    "davinci_002": "davinci-002", "gpt_3_5_turbo_instruct": "GPT-3.5 Turbo",
}


# METR run aliases -> names the same model carries in other stored sources (METR yaml keys, Epoch
# hub rows), most trusted first. Used only to find release dates and training compute.
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
    """Lower-case, drop punctuation, dates and effort suffixes: 'GPT-4o (2024-05-13)' -> 'gpt4o'."""
    s = str(name).lower()
    s = re.sub(r"_(high|medium|low|minimal)$", "", s)
    s = re.sub(r"[-_ ]?\(?20\d{2}-?\d{2}-?\d{2}\)?", "", s)
    return re.sub(r"[^a-z0-9.]", "", s)


def attach_compute(con: duckdb.DuckDBPyConnection) -> int:
    """Fill missing train_flop from the Epoch compute lookup; returns how many rows gained compute."""
    lookup = con.execute(
        "SELECT model, train_flop, confidence, source_version, release_date FROM model_compute "
        "ORDER BY source_version DESC").df()
    if lookup.empty:
        return 0
    lookup["key"] = lookup["model"].map(normalise)
    lookup = lookup.drop_duplicates("key")
    aliases = pd.DataFrame({"alias": list(MANUAL), "canonical": list(MANUAL.values()), "note": "manual"})
    aliases = pd.concat([aliases, pd.DataFrame({"alias": lookup["key"], "canonical": lookup["model"],
                                                "note": "normalised name"})]).drop_duplicates("alias")
    store.upsert(con, "model_aliases", aliases)
    # Sources that publish no compute on purpose (parameters only) stay off the compute axis.
    missing = con.execute("SELECT DISTINCT model FROM observations WHERE train_flop IS NULL AND "
                          "coalesce(train_flop_note, '') NOT LIKE 'no training compute published%'").df()
    if missing.empty:
        return 0
    by_key = lookup.set_index("key")
    rows = []
    for model in missing["model"]:
        canonical = MANUAL.get(str(model))
        key = normalise(canonical) if canonical else normalise(model)
        if key in by_key.index:
            hit = by_key.loc[key]
            rows.append({"model": model, "train_flop": hit["train_flop"],
                         "note": f"joined from Epoch {hit['source_version']} as {hit['model']!r} "
                                 f"(Confidence: {hit['confidence'] if isinstance(hit['confidence'], str) else 'Unknown'})",
                         "release_date": hit["release_date"]})
    if not rows:
        return 0
    joined = pd.DataFrame(rows)
    con.register("_joined", joined)
    try:
        con.execute("""UPDATE observations SET train_flop = j.train_flop, train_flop_note = j.note,
                       release_date = coalesce(observations.release_date, j.release_date)
                       FROM _joined j WHERE observations.model = j.model AND observations.train_flop IS NULL
                       AND coalesce(observations.train_flop_note, '') NOT LIKE 'no training compute published%'""")
    finally:
        con.unregister("_joined")
    return len(rows)
