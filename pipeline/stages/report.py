"""Report stage: the run's HTML and PDF report (pipeline.report.render)."""

from __future__ import annotations

from pipeline import store
from pipeline.config import RunConfig
from pipeline.report import render


def run(db, run_id: str, config: RunConfig | None = None, out_dir="reports", progress=None) -> dict:
    """Render the run's report (its configuration's scenario) and record the stage."""
    started = store.now()
    scenario = config.scenario.name if config is not None else None
    paths = render.report_stage(db, run_id, out_dir, scenario, progress=progress)
    con = store.connect(db)
    try:
        with store.transaction(con):
            store.record_stage(con, run_id, "report", "succeeded", str(paths.get("pdf", "")), started=started)
    finally:
        con.close()
    return paths


def load_libraries() -> None:
    """Import the layout engine and the interactive plots' script now (about half a second), e.g. while the
    orchestrator's server starts, rather than when the report is due."""
    import weasyprint  # noqa: F401

    from pipeline.report import interactive

    interactive.script()
