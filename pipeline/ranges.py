"""What a metric's unit and kind say about its range before any data are fitted.

A score in [0, 1] is bounded above by construction, so Theorem 2.4 makes it meek whatever curve fits the
data best; a fit may decide where it levels off, never whether. The range is a hard constraint on the
families fitted to it and the basis of the verdict ("known-range"); metrics whose range is open above
are left to the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class KnownRange:
    lo: float            # of the value as stored (loss: the loss itself, not -loss)
    hi: float
    higher_is_better: bool
    why: str

    @property
    def bounded_performance(self) -> bool:
        """Is the performance metric (the value, or -value when lower is better) bounded above?"""
        return math.isfinite(self.hi) if self.higher_is_better else math.isfinite(self.lo)

    @property
    def performance_sup(self) -> float:
        return self.hi if self.higher_is_better else -self.lo

    def contains(self, value: float, tol: float = 1e-9) -> bool:
        return self.lo - tol <= value <= self.hi + tol


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def known_range(kind: str | None, unit: str | None, floor=None, ceiling=None) -> KnownRange:
    """The range of a metric from its unit and kind; a source's `ceiling` column overrides the open end."""
    ceiling = _finite(ceiling)
    if unit == "fraction":
        return KnownRange(0.0, 1.0 if ceiling is None else min(ceiling, 1.0), True,
                          "a fraction lies in [0, 1] by construction")
    if unit == "percent":
        return KnownRange(0.0, 100.0 if ceiling is None else min(ceiling, 100.0), True,
                          "a percentage lies in [0, 100] by construction")
    if kind == "loss":
        return KnownRange(0.0, math.inf, False, "a loss is at least 0, so -loss is at most 0")
    if ceiling is not None:
        why = ("Elo relative to perfect play is at most 0" if unit == "elo" and ceiling == 0
               else f"the source states a ceiling of {ceiling:g}")
        return KnownRange(-math.inf, ceiling, True, why)
    lo = 0.0 if unit in ("minutes", "hours", "seconds") or kind == "horizon" else -math.inf
    return KnownRange(lo, math.inf, True, f"a {unit or kind or 'metric'} has no upper limit by construction")


def industry_compute(kind: str | None, unit: str | None, ceiling=None) -> bool:
    """Does the series' compute axis measure the AI industry's training compute? Elo relative to perfect
    play exists only for solved board games, whose agents (one lab, one year) are not on the industry's
    calendar: those are projected in compute multiples, not years."""
    return not (unit == "elo" and _finite(ceiling) == 0.0)
