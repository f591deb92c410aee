"""Ingest stage: files, folders, URLs and named public sources into the store (pipeline.ingest)."""

from __future__ import annotations

from pipeline import ingest as ingest_files


def run(db, run_id: str, targets: list[str]) -> ingest_files.IngestSummary:
    """Read every target in one transaction; unchanged files (same sha256) are skipped."""
    return ingest_files.ingest(targets, db=db, run_id=run_id)
