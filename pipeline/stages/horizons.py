"""Horizons stage: METR per-run data -> per-model horizons, stored as tables and as observations that later
stages fit like any other source; release dates and compute joined from the stored sources. Also METR's headline
doubling time recomputed from METR's own published horizons (horizon_trend under METR's source and version), so
the report can set it beside the figure METR publishes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import aliases, store
from pipeline import horizons as H
from pipeline.config import RunConfig
from pipeline.schema import InputError


def load_runs(con, runs_source: str | None = None) -> tuple[pd.DataFrame, str, str]:
    """Per-run data of one (source, source_version): the newest, or the one `runs_source` names."""
    versions = con.execute("SELECT source, source_version, count(*) AS n FROM metr_runs "
                           "GROUP BY ALL ORDER BY source_version DESC, source").df()
    if versions.empty:
        return pd.DataFrame(), "", ""
    if runs_source:
        versions = versions[(versions["source"] == runs_source) | (versions["source_version"] == runs_source)]
        if versions.empty:
            raise InputError("metr_runs", f"no per-run data with source or version {runs_source!r}",
                             "see `scalegap status`, or ingest the runs file with --runs")
    source, version = versions.iloc[0]["source"], versions.iloc[0]["source_version"]
    runs = con.execute("SELECT * FROM metr_runs WHERE source = ? AND source_version = ? ORDER BY run_key",
                       [source, version]).df()
    return runs, str(source), str(version)


def attach_dates_and_compute(con, horizons: pd.DataFrame, runs_source: str) -> pd.DataFrame:
    """Release date, organisation and training compute of each agent, through the model registry (the run
    aliases were matched to models at ingest). Dates, most trusted first: METR's release-date table, the date
    METR publishes for the same release (its results files), then the registry's date of that release.
    Compute and organisation are the registry model's, with where they came from."""
    names = list(horizons["model"])
    reg = aliases.lookup(con, runs_source, names).set_index("alias")
    metr_dates = con.execute("SELECT alias, release_date FROM metr_release_dates ORDER BY source_version DESC").df()
    metr_dates = metr_dates.drop_duplicates("alias").set_index("alias")["release_date"].to_dict()
    same_release = con.execute("""
        SELECT r.alias, o.release_date FROM model_aliases r JOIN model_aliases a USING (release_key)
        JOIN observations o ON o.source = a.source AND o.model = a.alias
        WHERE r.source = ? AND a.source LIKE 'metr%' AND a.source NOT IN (?, ?) AND o.release_date IS NOT NULL
        ORDER BY r.alias, a.source, o.source_version, a.alias""", [runs_source, runs_source, H.SOURCE]).df()
    metr_published = same_release.drop_duplicates("alias").set_index("alias")["release_date"].to_dict()
    out = horizons.copy()
    dates, flops, notes, orgs, models = [], [], [], [], []
    for alias in names:
        hit = reg.loc[alias] if alias in reg.index else None
        matched = hit is not None and hit["status"] == "matched"
        date = metr_dates.get(alias, metr_published.get(alias))
        if date is None and matched:
            date = hit["release_date"]
        dates.append(date if date is not None and pd.notna(date) else pd.NaT)
        flop = float(hit["train_flop"]) if matched and pd.notna(hit["train_flop"]) else np.nan
        flops.append(flop)
        notes.append(aliases.registry_note(hit["model"], hit["field_sources"], hit["confidence"])
                     if np.isfinite(flop) else None)
        orgs.append(hit["organization"] if matched and isinstance(hit["organization"], str) else None)
        models.append(hit["model"] if matched else None)
    out["release_date"] = pd.to_datetime(pd.Series(dates, index=out.index, dtype="object"))
    out["train_flop"] = pd.Series(flops, index=out.index, dtype=float)
    out["train_flop_note"] = notes
    out["organization"] = orgs
    out["registry_model"] = models
    return out


def load_published(con) -> pd.DataFrame:
    """METR's published 50% horizons of every stored TH1.1 version not forgotten: the observations
    `horizons.published_trends` recomputes METR's doubling time from."""
    obs = con.execute("SELECT source, source_version, model, release_date, metric, value FROM observations "
                      "WHERE source = ? AND starts_with(source_version, ?) AND metric = 'metr_p50_minutes' "
                      "ORDER BY source_version, model", [H.PUBLISHED_SOURCE, H.PUBLISHED_VERSIONS]).df()
    return store.drop_forgotten(con, obs)


def run(db, run_id: str, config: RunConfig | None = None, runs_source: str | None = None,
        regularization: float = H.METR_REGULARIZATION, weighting: str = H.DEFAULT_WEIGHTING,
        draws: int | None = None, seed: int | None = None) -> dict:
    """Fit every agent's horizon from the stored per-run data; store tables and observations. Also recompute
    METR's published doubling time from its published horizons (stored in horizon_trend under METR's source
    and version), with or without per-run data. Draws and seed come from the run configuration
    (`draws`/`seed` override it for `scalegap horizons`)."""
    draws = draws if draws is not None else (config.draws.horizons if config else 1000)
    seed = seed if seed is not None else (config.seed if config else 0)
    con = store.connect(db)
    try:
        runs, source, version = load_runs(con, runs_source)
        published = H.published_trends(load_published(con), draws=draws, seed=seed)
        if runs.empty:
            with store.transaction(con):
                store.replace_run_rows(con, "horizon_trend", run_id, published)
                store.record_stage(con, run_id, "horizons", "succeeded", "no per-run data in the store"
                                   + (f"; METR's published trend recomputed for {len(published)} version(s)"
                                      if len(published) else ""))
            return {"skipped": "no per-run data"}
        sha = con.execute("SELECT sha256 FROM sources WHERE source = ? AND source_version = ?",
                          [source, version]).fetchone()
    finally:
        con.close()
    result = H.compute_horizons(runs, draws=draws, seed=seed, regularization=regularization, weighting=weighting)
    with store.open_stage(db, run_id, "horizons") as con:
        horizons = attach_dates_and_compute(con, result.horizons, source)
        trend = H.trends(horizons, result.draws, seed)
        keys = {"source": source, "source_version": version}
        written = store.replace_run_rows(con, "horizons", run_id, horizons.assign(**keys))
        written += store.replace_run_rows(con, "horizon_draws", run_id, result.draws.assign(**keys))
        trends = [frame for frame in (trend.assign(**keys), published) if len(frame)]
        written += store.replace_run_rows(con, "horizon_trend", run_id,
                                          pd.concat(trends, ignore_index=True) if trends else published)
        observations = H.as_observations(horizons, version, sha[0] if sha else None)
        con.execute("DELETE FROM observations WHERE source = ? AND source_version = ?", [H.SOURCE, version])
        written += store.upsert(con, "observations", observations.assign(ingest_run_id=run_id))
        aliases.copy_spellings(con, source, H.SOURCE, list(horizons["model"]))  # its rows join the registry too
        store.upsert(con, "sources", pd.DataFrame([{
            "source": H.SOURCE, "source_version": version, "location": f"metr_runs {source} {version}",
            "sha256": sha[0] if sha else None, "retrieved_at": store.now(), "license": "derived",
            "citation": H.CITATION, "kind": "horizon", "adapter": "pipeline.horizons",
            "n_observations": len(observations), "n_rejected": 0,
            "notes": f"{weighting}, regularization {regularization}, {draws} draws, seed {seed}",
            "ingest_run_id": run_id}]))
    summary = {"run_id": run_id, "source": source, "source_version": version, "draws": draws, "seed": seed,
               "weighting": weighting, "regularization": regularization, "models": len(horizons),
               "observations": len(observations), "rows_written": written,
               "horizons": horizons[["model", "release_date", "p50", "p50_lo", "p50_hi", "p80", "p80_lo",
                                     "p80_hi", "slope", "n_runs", "n_tasks", "note"]],
               "trend": trend}
    return summary
