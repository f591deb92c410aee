"""The stages of a run, each with its reads and writes: the one layer that knows both the maths modules
and the store.

    ingest -> horizons -> fit -> classify -> forecast -> gaps -> project -> report

Every stage is `run(db, run_id, config, ...) -> dict` in its own module and writes inside one
transaction (`store.open_stage`). The maths modules (curves, fitting, taxonomy, counterparts,
projection, horizons) take and return plain data and never import the store.

`STAGES[name]` is the stage's run function; its module, and the libraries it needs, are imported when it is
first asked for, so a run whose results are copied from an earlier one (`reuse`) never loads the fitting code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

ORDER = ("ingest", "horizons", "fit", "classify", "forecast", "gaps", "project", "report")


def _run_function(name: str) -> Callable:
    if name == "ingest":
        from pipeline.stages import ingest as module
    elif name == "horizons":
        from pipeline.stages import horizons as module
    elif name == "fit":
        from pipeline.stages import fit as module
    elif name == "classify":
        from pipeline.stages import classify as module
    elif name == "forecast":
        from pipeline.stages import forecast as module
    elif name == "gaps":
        from pipeline.stages import gaps as module
    elif name == "project":
        from pipeline.stages import project as module
    elif name == "report":
        from pipeline.stages import report as module
    else:
        raise KeyError(name)
    return module.run


class _Stages(Mapping):
    """stage name -> run function, imported on first use."""

    def __getitem__(self, name: str) -> Callable:
        return _run_function(name)

    def __iter__(self) -> Iterator[str]:
        return iter(ORDER)

    def __len__(self) -> int:
        return len(ORDER)


STAGES: Mapping[str, Callable] = _Stages()

__all__ = ["ORDER", "STAGES"]
