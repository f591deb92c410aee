"""The stages of a run, each with its reads and writes: the one layer that knows both the maths modules
and the store.

    ingest -> horizons -> fit -> classify -> forecast -> gaps -> project -> report

Every stage is `run(db, run_id, config, ...) -> dict` in its own module and writes inside one
transaction (`store.open_stage`). The maths modules (curves, fitting, taxonomy, counterparts,
projection, horizons) take and return plain data and never import the store.
"""

from __future__ import annotations

from pipeline.stages import classify, fit, forecast, gaps, horizons, ingest, project, report

ORDER = ("ingest", "horizons", "fit", "classify", "forecast", "gaps", "project", "report")
STAGES = {"ingest": ingest.run, "horizons": horizons.run, "fit": fit.run, "classify": classify.run,
          "forecast": forecast.run, "gaps": gaps.run, "project": project.run, "report": report.run}

__all__ = ["ORDER", "STAGES", "classify", "fit", "forecast", "gaps", "horizons", "ingest", "project", "report"]
