"""One run configuration: what every stage of a run needs to know, validated once.

The CLI, the Prefect flows and the deployments build a `RunConfig` (`RunConfig.build`) and hand the
same object to every stage, so a scenario's growth rates, the seed and each draw count reach the
stage that uses them. Defaults live here and nowhere else.

A frozen dataclass rather than pydantic: validation errors must be the project's own `InputError`
(file or flag, what is wrong, how to fix it), and the scenario is already validated by its loader.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipeline.errors import InputError
from pipeline.scenario import DEFAULT_SCENARIO, Scenario, load_scenario

X_AXES = ("compute", "date", "inference")
KINDS = ("benchmark", "elo", "horizon", "loss")
FRONTIER_KINDS = ("horizon",)   # date trends of these kinds are fitted on record-setting models (as METR does)
STAGES = ("ingest", "horizons", "fit", "classify", "forecast", "gaps", "project", "report")
DEFAULT_THRESHOLD = 0.8


@dataclass(frozen=True)
class Draws:
    """How many random draws each purpose uses (one flag per purpose on the command line)."""

    fit: int = 1000            # cluster bootstrap of every fitted family (also drives P(bounded))
    projection: int = 1000     # Monte Carlo of the gap: scenario draws x fit draws
    horizons: int = 1000       # hierarchical bootstrap of METR per-run data
    backtest: int = 200        # bootstrap inside each rolling-origin backtest fit

    def check(self) -> None:
        for name, value in self.as_dict().items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"--{name.replace('_', '-')}-draws", f"{value!r} draws",
                                 "give a whole number of draws, 0 or more")
        if self.fit < 1:
            raise InputError("--fit-draws", "0 fit draws", "P(bounded) needs bootstrap draws: give at least 1 "
                             "(200 or more for a verdict you would cite)")

    def as_dict(self) -> dict[str, int]:
        return {"fit": self.fit, "projection": self.projection, "horizons": self.horizons,
                "backtest": self.backtest}


@dataclass(frozen=True)
class RunConfig:
    scenario: Scenario
    draws: Draws = field(default_factory=Draws)
    seed: int = 0
    metrics: tuple[str, ...] | None = None
    families: tuple[str, ...] | None = None
    x_axes: tuple[str, ...] = X_AXES
    threshold: float = DEFAULT_THRESHOLD
    stages: tuple[str, ...] = STAGES          # a stage left out is off on purpose, recorded as skipped
    frontier_kinds: tuple[str, ...] = FRONTIER_KINDS   # date trends on record-setting models only

    @classmethod
    def build(cls, scenario: str | Path | Scenario | None = None, draws: Draws | None = None, seed: int = 0,
              metrics=None, families=None, x_axes=None, threshold: float = DEFAULT_THRESHOLD,
              stages=None, frontier_kinds=FRONTIER_KINDS) -> RunConfig:
        from pipeline.curves import family

        loaded = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        draws = draws or Draws()
        draws.check()
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InputError("--seed", f"{seed!r}", "give a whole number, 0 or more")
        for name in families or ():
            family(name)  # unknown names fail here, listing the valid ones
        axes = tuple(x_axes or X_AXES)
        if unknown := sorted(set(axes) - set(X_AXES)):
            raise InputError("--x-axis", f"unknown axis {unknown[0]!r}", f"use {', '.join(X_AXES)}")
        if not (isinstance(threshold, int | float) and 0.5 < threshold < 1):
            raise InputError("--threshold", f"{threshold!r}", "give a probability between 0.5 and 1, e.g. 0.8")
        run_stages = tuple(stages or STAGES)
        if unknown := sorted(set(run_stages) - set(STAGES)):
            raise InputError("stages", f"unknown stage {unknown[0]!r}", f"use {', '.join(STAGES)}")
        frontier = tuple(frontier_kinds or ())
        if unknown := sorted(set(frontier) - set(KINDS)):
            raise InputError("frontier kinds", f"unknown kind {unknown[0]!r}", f"use {', '.join(KINDS)}")
        return cls(scenario=loaded, draws=draws, seed=seed, metrics=tuple(metrics) if metrics else None,
                   families=tuple(families) if families else None, x_axes=axes, threshold=float(threshold),
                   stages=run_stages, frontier_kinds=frontier)

    def with_(self, **changes) -> RunConfig:
        return replace(self, **changes)

    def growth_rates(self, axis: str = "compute", industry_compute: bool = True) -> tuple[float, float]:
        """(a, b) for a series on `axis` (see scenario.growth_pair for which compute each axis advances)."""
        return self.scenario.rates(axis=axis, industry=industry_compute)

    def as_dict(self) -> dict:
        """JSON-able record of the run's parameters (stored with the run)."""
        s = self.scenario
        return {"scenario": {"name": s.name, "path": s.path, "sha256": s.digest,
                             "growth": {k: {"kind": v.kind, "a": v.a, "b": None if math.isnan(v.b) else v.b}
                                        for k, v in s.growth.items()},
                             "start": str(s.start), "until": str(s.until)},
                "draws": self.draws.as_dict(), "seed": self.seed,
                "metrics": list(self.metrics) if self.metrics else None,
                "families": list(self.families) if self.families else None, "x_axes": list(self.x_axes),
                "threshold": self.threshold, "stages": list(self.stages),
                "frontier_kinds": list(self.frontier_kinds)}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)


def default_config(**overrides) -> RunConfig:
    """The configuration of `scalegap run` with no flags (the shipped default scenario)."""
    return RunConfig.build(overrides.pop("scenario", DEFAULT_SCENARIO), **overrides)
