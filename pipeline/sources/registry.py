"""The list of adapters, most specific first (the generic CSV adapter comes last)."""

from __future__ import annotations


def all_adapters() -> list:
    from pipeline.sources import (
        arena_history,
        chinchilla,
        epoch_hub,
        epoch_models,
        generic_csv,
        jones_hex,
        lmarena,
        metr,
        model_facts,
        obsscaling,
        open_llm,
    )

    return [
        obsscaling.ADAPTER, chinchilla.ADAPTER, jones_hex.ADAPTER, epoch_hub.ADAPTER, epoch_models.ADAPTER,
        model_facts.ADAPTER,
        metr.RESULTS, metr.RELEASE_DATES, metr.RUNS, metr.HEADLINE,
        lmarena.CATALOG, lmarena.CSV, arena_history.ADAPTER, arena_history.BY_ORG, open_llm.ADAPTER,
        generic_csv.ADAPTER,
    ]
