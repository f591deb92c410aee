"""The list of adapters, most specific first (the generic CSV adapter comes last)."""

from __future__ import annotations


def all_adapters() -> list:
    from pipeline.sources import generic_csv

    return [generic_csv.ADAPTER]
