"""Gap projections: frontier vs meek actor under growth scenarios (meek-math §7-8). Pure: curves in,
tables out; `pipeline.stages.project` reads the fits and stores the results.

Which compute a projection advances (scenario.growth_pair): a curve fitted against raw training FLOP
advances raw FLOP, b = hardware·investment for the frontier and a = hardware for the meek actor, since
algorithmic progress is already inside a fit pooled over years; both start equal. For a curve in
log10 compute, gap(t) = F(x0 + t·log10 b) − F(x0 + t·log10 a). For a release-date trend the meek actor
follows the same trend more slowly: meek(t) = frontier(λt), λ = ln a / ln b with effective-compute
rates (App. B). A series whose compute is not the industry's (board-game agents) is projected in
compute multiples: t is decades of frontier growth, the meek actor at λ·t, with no calendar. For loss
(lower is better) the gap is meek loss minus frontier loss, so it is positive too.

Where t = 0 falls (growth.fitted_start): a fitted series starts where its data end (the latest release
date among its points), the scenario's explicit curves at growth.start; both actors are equal there. Beside
the gap, each calendar trajectory carries the ratio frontier/meek (ratio scales only) and the lag: how many
months later the meek actor reaches the frontier's value, found by inverting the meek trajectory.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.curves import FAMILIES
from pipeline.ranges import KnownRange
from pipeline.scenario import (  # noqa: F401  (re-exported: the scenario's home before it had its own module)
    DEFAULT_SCENARIO,
    EXPLICIT_FAMILIES,
    GROWTH_KEYS,
    SCENARIO_DIR,
    Growth,
    Scenario,
    _date,
    _explicit_axis,
    growth_pair,
    load_scenario,
)
from pipeline.schema import decimal_year

MONTHS = 12
MAX_EXTRAPOLATION_DECADES = 3.0
CLOSE_HORIZON_YEARS = 300.0
PEAK_SEARCH_YEARS = 100.0
LAG_SEARCH_YEARS = 300.0   # the meek trajectory is followed at most this far to find when it reaches a value
LAG_GRID = 49              # points on that trajectory, and again within the step where it reaches the value
INTERVAL_UNITS = frozenset({"elo", "index"})   # no true zero: a ratio of two Elo ratings or ECI scores means nothing


# ------------------------------------------------------------------------------ curves
@dataclass
class Curve:
    """A metric as a function of years since its start, for frontier and meek actors."""

    name: str
    family: str
    mode: str                        # compute | multiples | date | horizon_time | success_at_length
    params: np.ndarray | None = None
    draws: np.ndarray | None = None
    x0: float = math.nan             # log10 FLOP (compute) or decimal year (date) at the start
    higher_is_better: bool = True
    unit: str = ""
    metric: str | None = None
    key: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    value_range: float = math.nan
    known: KnownRange | None = None  # the metric's range by construction (fitted curves)
    x_max_data: float = math.nan     # the largest x the fit saw
    warnings: list = field(default_factory=list)
    start_year: float = math.nan     # decimal year at t = 0 (fitted series: where their data end); NaN: the scenario's start

    def origin(self, scenario: Scenario) -> float:
        """The decimal year at t = 0: the curve's own start, else the scenario's."""
        return self.start_year if math.isfinite(self.start_year) else decimal_year(scenario.start)

    def years(self, scenario: Scenario) -> float:
        """Years from the curve's start to the scenario's `until` (0 when its data end later)."""
        return max(scenario.years - (self.origin(scenario) - decimal_year(scenario.start)), 0.0)

    @property
    def axis(self) -> str:
        """What the curve's x measures: its fit's axis, else "date" for explicit time trends."""
        if "axis" in self.extra:
            return self.extra["axis"]
        return "date" if self.mode in ("date", "horizon_time", "success_at_length") else "compute"

    @property
    def industry(self) -> bool:
        return self.mode != "multiples"

    def values(self, t: np.ndarray, a: float, b: float, params: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        p = self.params if params is None else params
        lam = np.log(a) / np.log(b)
        if self.mode in ("compute", "multiples"):
            fam = FAMILIES[self.family]
            return fam.value(self.x0 + t * np.log10(b), p), fam.value(self.x0 + t * np.log10(a), p)
        if self.mode == "date":
            fam = FAMILIES[self.family]
            return fam.value(self.x0 + t, p), fam.value(self.x0 + lam * t, p)
        if self.mode == "horizon_time":
            h0, doubling = self.extra["h0"], self.extra["doubling_years"]
            return h0 * 2.0 ** (t / doubling), h0 * 2.0 ** (lam * t / doubling)
        hf, hm = self.extra["horizon"].values(t, a, b)
        beta = math.log(4.0) / math.log(self.extra["ratio_50_80"])
        length = self.extra["task_minutes"]
        return 1 / (1 + (length / hf) ** beta), 1 / (1 + (length / hm) ** beta)

    def gap(self, t, a, b, params=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        frontier, meek = self.values(t, a, b, params)
        g = frontier - meek if self.higher_is_better else meek - frontier
        return frontier, meek, g

    def limit(self, a: float, b: float) -> tuple[str, float, bool]:
        """(zero | constant | infinite, value, bounded) from the family's asymptotics (Thm 2.4/2.5)."""
        if self.mode == "success_at_length":
            return "zero", 0.0, True
        if self.mode == "horizon_time":
            return "infinite", math.inf, False
        asym = FAMILIES[self.family].asymptotics(self.params, self.higher_is_better)
        if not asym.normal:
            return "undefined", math.nan, False
        if asym.bounded or asym.g_limit == 0:
            return "zero", 0.0, asym.bounded
        if math.isinf(asym.g_limit):
            return "infinite", math.inf, False
        return "constant", float(np.log(np.log(b) / np.log(a))) * asym.g_limit, False


def _value_range(asym, higher_is_better: bool, values: np.ndarray) -> float:
    """Distance from the worst of `values` to the bound, else their spread.

    For lower-is-better curves the asymptotics describe -value (sup = -E for a loss), so the values are
    negated first: the range of a loss is L - E, not L + E.
    """
    values = np.asarray(values, dtype=float)
    if not len(values):
        return math.nan
    if asym.bounded and math.isfinite(asym.sup):
        perf = values if higher_is_better else -values
        return float(abs(asym.sup - np.min(perf)))
    return float(np.ptp(values)) if len(values) > 1 else math.nan


def explicit_curves(scenario: Scenario) -> list[Curve]:
    out: dict[str, Curve] = {}
    for spec in scenario.curves:
        family = spec.get("family")
        if "metric" in spec:
            continue
        if family == "exponential_in_time":
            doubling = float(spec["doubling_months"]) / 12
            anchor_date = _date(scenario.path, "anchor_date", spec["anchor_date"])
            t_anchor = (anchor_date - scenario.start).days / 365.25
            h0 = float(spec["anchor_value"]) * 2.0 ** (-t_anchor / doubling)
            out[spec["name"]] = Curve(spec["name"], family, "horizon_time", unit=str(spec.get("unit", "minutes")),
                                      extra={"h0": h0, "doubling_years": doubling}, value_range=math.inf)
        elif family == "success_at_length":
            out[spec["name"]] = Curve(spec["name"], family, "success_at_length", unit="fraction", value_range=1.0,
                                      extra={"horizon": out[spec["horizon"]], "task_minutes": float(spec["task_minutes"]),
                                             "ratio_50_80": float(spec.get("ratio_50_80", 5))})
        else:
            fam = FAMILIES[family]
            params = np.array([float(spec["params"][n]) for n in fam.param_names])
            hib = bool(spec.get("higher_is_better", fam.higher_is_better))
            axis = _explicit_axis(spec)
            budget = float(spec["start_budget"] if axis == "inference" else spec["start_flop"])
            # an inference curve moves along log10 of the budget (e.g. samples k) at the inference growth rate
            out[spec["name"]] = Curve(spec["name"], family, "compute", params=params, x0=math.log10(budget),
                                      higher_is_better=hib, unit=str(spec.get("unit", "")), extra={"axis": axis},
                                      key={"x_axis": axis})
            # the closing threshold is a share of the range still to go from the start (loss at start minus E)
            out[spec["name"]].value_range = _value_range(fam.asymptotics(params, hib), hib,
                                                         fam.value(np.array([math.log10(budget)]), params))
    return list(out.values())


def year_month(year: float) -> str:
    """Decimal year -> 'YYYY-MM' for display ('' for missing)."""
    if year is None or not math.isfinite(year):
        return ""
    whole = math.floor(year)
    return f"{whole}-{min(int((year - whole) * 12) + 1, 12):02d}"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The per-curve summary a researcher reads: dates as YYYY-MM, bands folded into ranges."""
    rows = []
    for _, r in table.iterrows():
        band = pd.notna(r.get("peak_year_lo"))
        lag, lag_band = r.get("lag_months_end"), pd.notna(r.get("lag_months_end_lo")) and pd.notna(r.get("lag_months_end_hi"))
        rows.append({"curve": r["curve"], "family": r["family"], "verdict": r.get("verdict") or "",
                     "from": year_month(r.get("start_year")) if pd.notna(r.get("start_year")) else "",
                     "peak gap": "" if pd.isna(r["peak_gap"]) else f"{r['peak_gap']:.4g}"
                     + (f" ({r['peak_gap_lo']:.3g}-{r['peak_gap_hi']:.3g})" if band else ""),
                     "peak date": ("" if pd.isna(r["peak_year"]) else year_month(r["peak_year"])
                                   + ("" if r.get("peak_within_window", True) in (True, None) or not r.get("bounded") else "*")
                                   + (f" ({year_month(r['peak_year_lo'])} to {year_month(r['peak_year_hi'])})" if band else "")),
                     "closes by": year_month(r["close_year"]) if pd.notna(r["close_year"]) else "",
                     "lag at end, months": "" if pd.isna(lag) else f"{lag:.0f}"
                     + (f" ({r['lag_months_end_lo']:.0f}-{r['lag_months_end_hi']:.0f})" if lag_band else ""),
                     "limit": "" if pd.isna(r.get("limit_kind")) else r["limit_kind"]
                     + (f" {r['limit_value']:.4g}" if r["limit_kind"] == "constant" else ""),
                     "note": r.get("note") or ""})
    return pd.DataFrame(rows)


def fitted_curve(name: str, fit, row: dict, points: pd.DataFrame, scenario: Scenario, family: str | None = None,
                 start_flop: float | None = None, known: KnownRange | None = None, industry: bool = True,
                 warnings: list[str] | None = None) -> Curve:
    """A stored fit as a projectable curve: its family's parameters and draws, starting where the frontier stood
    at the curve's start (the largest x among models released by then)."""
    warnings = list(warnings or [])
    start_year = _data_start(points, row["x_axis"], scenario, warnings) if industry else decimal_year(scenario.start)
    vec = fit.vector
    x_max = float(points["x"].max()) if len(points) else math.nan
    if row["x_axis"] in ("compute", "inference"):
        before = points[points["release_year"] <= start_year]
        x0 = math.log10(start_flop) if start_flop else float((before if len(before) else points)["x"].max())
        mode = "compute" if industry else "multiples"
    else:
        x0, mode = start_year, "date"
    hib = row["kind"] != "loss" and FAMILIES[fit.family].higher_is_better
    draws = fit.draws
    if draws is not None and fit.draw_ok is not None and fit.draw_ok.mean() >= 0.5:
        draws = draws[fit.draw_ok]  # a solve stopped mid-way is not a sample of the fit
    curve = Curve(name, fit.family, mode, params=vec, draws=draws, x0=x0, higher_is_better=hib,
                  unit=row["unit"], metric=row["metric"], key={k: row[k] for k in ("metric", "source", "source_version",
                                                                                  "x_axis")},
                  extra={"axis": row["x_axis"]}, known=known, x_max_data=x_max, warnings=warnings,
                  start_year=start_year if industry else math.nan)
    curve.value_range = _value_range(FAMILIES[fit.family].asymptotics(vec, hib), hib, points["y"].to_numpy())
    return curve


def _data_start(points: pd.DataFrame, x_axis: str, scenario: Scenario, warnings: list[str]) -> float:
    """The decimal year a fitted series' projection starts: where its data end (growth.fitted_start = "data": the
    latest release date among its points, on a date axis its last x), else the scenario's start. A series
    without release dates starts at the scenario's start, and says so."""
    start = decimal_year(scenario.start)
    if scenario.fitted_start != "data":
        return start
    dates = points["x"] if x_axis == "date" else points["release_year"]
    dates = pd.to_numeric(dates, errors="coerce").dropna()
    if not len(dates):
        warnings.append(f"no release dates among the data: projected from the scenario's start ({year_month(start)})")
        return start
    return float(dates.max())


# ------------------------------------------------------------------------------ projection
def _grids(years: float, horizon: float, t_max: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
    """(trajectory grid over `years`, the same grid continued monthly to `horizon` years), both cut at `t_max`.

    Point summaries, bands and peak searches all use these, so band rows sit on the trajectory's years
    and point rates give the same peak in both.
    """
    t = np.linspace(0.0, years, int(years * MONTHS) + 1)
    more = np.arange(years + 1 / MONTHS, horizon + 1e-9, 1 / MONTHS)
    long_t = np.concatenate([t, more])
    return t[t <= t_max + 1e-9], long_t[long_t <= t_max + 1e-9]


def extrapolation_limit(curve: Curve, scenario: Scenario, b: float) -> float:
    """How far (in t) an unbounded fitted curve may be followed: MAX_EXTRAPOLATION_DECADES of frontier compute
    beyond the data. Past that a fit says nothing, and a power law followed ten decades out gives numbers
    (a horizon of millions of years) no one should cite. Bounded curves stay in their range: no limit."""
    if not np.isfinite(curve.x_max_data) or curve.mode not in ("compute", "multiples", "date"):
        return math.inf
    if curve.mode == "date":   # the data end at a release date; the frontier gains log10(b) decades a year
        return curve.x_max_data - curve.origin(scenario) + MAX_EXTRAPOLATION_DECADES / math.log10(b)
    return (curve.x_max_data + MAX_EXTRAPOLATION_DECADES - curve.x0) / math.log10(b)


def _rates(curve: Curve, scenario: Scenario, overrides: dict | None = None) -> tuple[float, float]:
    return scenario.rates(overrides, axis=curve.axis, industry=curve.industry)


def summarise(curve: Curve, scenario: Scenario, a: float, b: float) -> dict:
    kind, value, bounded = curve.limit(a, b)
    # A bounded gap is followed past `until` to find its peak and closing date; an unbounded one
    # has no peak, so its largest value inside the window is reported (at the window's end, or where
    # extrapolation stops).
    years = curve.years(scenario)
    t_max = math.inf if bounded else extrapolation_limit(curve, scenario, b)
    t, long_t = _grids(years, CLOSE_HORIZON_YEARS, max(t_max, 0.0))
    long_t = long_t if bounded else t
    with np.errstate(all="ignore"):
        _, _, long_gap = curve.gap(long_t, a, b)
    start_year = curve.origin(scenario)
    i = int(np.nanargmax(long_gap)) if np.isfinite(long_gap).any() else 0
    peak_t = float(long_t[i])
    close_t = math.nan
    if bounded and np.isfinite(curve.value_range):
        threshold = scenario.close_fraction * curve.value_range
        above = np.flatnonzero(np.abs(long_gap) >= threshold)
        if len(above) == 0:
            close_t = peak_t  # never above the threshold: closed throughout, but say so no earlier than the peak
        elif above[-1] + 1 < len(long_t):
            close_t = max(float(long_t[above[-1] + 1]), peak_t)
    peak_in_window = long_t[i] < min(years, t_max) - 1e-9
    decades = math.log10(b)  # of frontier compute per unit of t
    calendar = curve.industry
    return {"peak_gap": float(long_gap[i]), "peak_year": start_year + peak_t if calendar else math.nan,
            "peak_decades": peak_t * decades if curve.mode in ("compute", "multiples") else math.nan,
            "peak_within_window": bool(peak_in_window),
            "close_year": start_year + close_t if calendar else math.nan,
            "close_decades": close_t * decades if curve.mode in ("compute", "multiples") else math.nan,
            "limit_kind": kind, "limit_value": value, "bounded": bounded, "trajectory_t": t,
            "cut_at": t_max if t_max < years else None}


def lag_years(curve: Curve, t: np.ndarray, a, b, params: np.ndarray | None = None) -> np.ndarray:
    """For each t: how many years later the meek actor reaches the frontier's value at t (a loss: gets as low).

    The meek trajectory is inverted numerically: followed until it should have matched the frontier's value (it
    moves at lambda = ln a / ln b times the frontier's pace, so by t / lambda), with a margin, at most
    LAG_SEARCH_YEARS, on a grid of LAG_GRID points; the step where its running best first reaches the value is
    searched again on as fine a grid, and the crossing interpolated linearly there. inf where the meek actor does
    not reach the value; NaN where the frontier's value is not a number, or is where the meek actor ends up (a
    curve flat in floating point at its ceiling: when it got there says nothing of t). Rates a, b as numbers: one
    pair of actors and many t (a trajectory); as arrays: one row per t, with `params` one row each too (Monte
    Carlo draws, all at once).
    """
    t = np.atleast_1d(np.asarray(t, dtype=float))
    a, b = (np.asarray(a, dtype=float)[:, None], np.asarray(b, dtype=float)[:, None]) if np.ndim(a) else (a, b)
    sign = 1.0 if curve.higher_is_better else -1.0
    unit = np.linspace(0.0, 1.0, LAG_GRID)
    with np.errstate(all="ignore"):
        lam = np.broadcast_to(np.log(a) / np.log(b), (len(t), 1))
        target = sign * np.broadcast_to(curve.values(t[:, None], a, b, params)[0], (len(t), 1))[:, 0]
        lo = np.zeros(len(t))
        hi = np.minimum(LAG_SEARCH_YEARS, 1.25 * t / lam[:, 0] + 1.0)
        floor = np.full(len(t), -np.inf)   # the best the meek actor had before the interval searched
        for coarse in (True, False):
            s = lo[:, None] + unit * (hi - lo)[:, None]
            meek = sign * curve.values(s, a, b, params)[1]
            best = np.fmax(floor[:, None], np.fmax.accumulate(np.where(np.isnan(meek), -np.inf, meek), axis=1))
            reached = best >= target[:, None]
            i = np.where(reached.any(axis=1), reached.argmax(axis=1), LAG_GRID)   # first point at or past the target
            j = np.clip(i, 1, LAG_GRID - 1)[:, None]
            if coarse:
                found, ends = i < LAG_GRID, best[:, -1]
                lo, hi = np.take_along_axis(s, j - 1, 1)[:, 0], np.take_along_axis(s, j, 1)[:, 0]
                lo, hi = np.where(i == 0, 0.0, lo), np.where(i == 0, 0.0, hi)
                floor = np.where(i == 0, -np.inf, np.take_along_axis(best, j - 1, 1)[:, 0])
        below, above = np.take_along_axis(best, j - 1, 1)[:, 0], np.take_along_axis(best, j, 1)[:, 0]
        frac = np.where(np.isfinite(below) & np.isfinite(above) & (above > below), (target - below) / (above - below), 1.0)
        s_lo, s_hi = np.take_along_axis(s, j - 1, 1)[:, 0], np.take_along_axis(s, j, 1)[:, 0]
    when = np.where(i == 0, s[:, 0], s_lo + np.clip(frac, 0.0, 1.0) * (s_hi - s_lo))
    lag = np.where(found, np.maximum(when - t, 0.0), np.inf)
    undetermined = np.isnan(target) | (target == ends) | ~(lam[:, 0] > 0)
    return np.where(t == 0, 0.0, np.where(undetermined, np.nan, lag))


def value_ratio(curve: Curve, frontier: np.ndarray, meek: np.ndarray) -> np.ndarray:
    """frontier / meek (a loss: meek / frontier), >= 1 while the frontier is ahead; NaN unless both are positive
    and the unit has a true zero (not Elo, not the ECI index)."""
    frontier, meek = np.asarray(frontier, dtype=float), np.asarray(meek, dtype=float)
    if str(curve.unit or "").lower() in INTERVAL_UNITS:
        return np.full(frontier.shape, np.nan)
    num, den = (frontier, meek) if curve.higher_is_better else (meek, frontier)
    with np.errstate(all="ignore"):
        ok = (num > 0) & (den > 0) & np.isfinite(num) & np.isfinite(den)
        return np.where(ok, num / den, np.nan)


def _finite(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, np.nan)


def monte_carlo(curve: Curve, scenario: Scenario, samples: int, rng: np.random.Generator,
                bounded: bool = False) -> dict:
    """10th/50th/90th percentiles of the gap over scenario draws x bootstrap draws of the fit, and the
    10th/90th of the lag at the trajectory's end (calendar curves).

    Bands are on the trajectory's own grid. For a bounded (meek) curve the peak is searched
    PEAK_SEARCH_YEARS ahead, since it may fall after `until`.
    """
    # the bands stop where the point trajectory (central rates) stops
    years = curve.years(scenario)
    t_max = math.inf if bounded else max(extrapolation_limit(curve, scenario, _rates(curve, scenario)[1]), 0.0)
    t_window, t = _grids(years, PEAK_SEARCH_YEARS if bounded else years, t_max)
    n_window = len(t_window)
    g = {k: v.sample(rng, samples) for k, v in scenario.growth.items()}
    a, b = growth_pair(g, curve.axis, curve.industry)
    draws, dropped = curve.draws, 0
    if draws is not None and curve.family in FAMILIES:
        # a bootstrap draw that is not increasing is not a performance metric: its "gap" means nothing
        normal = np.array([FAMILIES[curve.family].asymptotics(d, curve.higher_is_better).normal for d in draws], dtype=bool)
        draws, dropped = draws[normal], int((~normal).sum())
    pick = rng.integers(0, len(draws), samples) if draws is not None and len(draws) else None
    gaps = np.empty((samples, len(t)))
    for s in range(samples):
        params = draws[pick[s]] if pick is not None else None
        with np.errstate(all="ignore"):
            gaps[s] = curve.gap(t, a[s], b[s], params)[2]
    lag_end = (lag_years(curve, np.full(samples, t_window[-1]), a, b, None if pick is None else draws[pick])
               if curve.industry else np.full(samples, np.nan))
    with np.errstate(all="ignore"):
        peak_idx = np.argmax(np.where(np.isfinite(gaps), gaps, -np.inf), axis=1)
    peak_t = t[peak_idx]
    peak_gaps = gaps[np.arange(samples), peak_idx]
    window = gaps[:, :n_window]

    def q(arr, lvl, axis=None):
        with np.errstate(all="ignore"):
            return np.nanpercentile(np.where(np.isfinite(arr), arr, np.nan), lvl, axis=axis)

    def lag_q(lvl):
        # a draw whose meek actor never reaches the frontier's value (inf) counts as the longest lag: the quantile
        # picks a draw (no interpolation towards inf), and an inf quantile is stored as missing
        if np.isnan(lag_end).all():
            return math.nan
        return float(_finite(np.nanpercentile(lag_end, lvl, method="inverted_cdf"))) * MONTHS

    start_year = curve.origin(scenario) if curve.industry else math.nan
    return {"gap_lo": q(window, 10, 0), "gap_mid": q(window, 50, 0), "gap_hi": q(window, 90, 0),
            "peak_year_lo": float(start_year + q(peak_t, 10)), "peak_year_hi": float(start_year + q(peak_t, 90)),
            "peak_gap_lo": float(q(peak_gaps, 10)), "peak_gap_hi": float(q(peak_gaps, 90)),
            "lag_months_end_lo": lag_q(10), "lag_months_end_hi": lag_q(90),
            "dropped_draws": dropped, "fit_draws": 0 if curve.draws is None else len(curve.draws)}


def _warnings(curve: Curve, frontier: np.ndarray, t: np.ndarray, start_year: float, b: float,
              s: dict) -> list[str]:
    """Warnings that qualify a projection, in words, beside its numbers."""
    out = list(curve.warnings)
    known = curve.known
    if known is not None and len(frontier):
        inside = (frontier >= known.lo - 1e-9) & (frontier <= known.hi + 1e-9)
        if not inside.all():
            when = (year_month(start_year + float(t[np.argmax(~inside)])) if curve.industry
                    else f"{float(t[np.argmax(~inside)]) * math.log10(b):.1f} decades of compute")
            out.append(f"frontier leaves the metric's known range [{known.lo:g}, {known.hi:g}] at {when}")
    if curve.mode in ("compute", "multiples") and np.isfinite(curve.x_max_data) and len(t):
        x_end = curve.x0 + float(t[-1]) * math.log10(b)
        beyond = x_end - curve.x_max_data
        cut_here = not s.get("bounded") and abs(beyond - MAX_EXTRAPOLATION_DECADES) < 0.1  # said where it is cut
        if beyond > 1 and not cut_here:
            out.append(f"extrapolation: the frontier reaches 1e{x_end:.1f} FLOP at the projection's end, "
                       f"{beyond:.1f} decades beyond the largest compute in the data (1e{curve.x_max_data:.1f})")
    ceiling_note = next((w for w in curve.warnings if w.startswith("ceiling at the best value")), None)
    if ceiling_note and s.get("bounded"):
        out.append("the peak and closing dates are lower bounds: they assume the ceiling is the best value seen")
    if s.get("bounded") and not s.get("peak_within_window"):
        out.append("the gap peaks after the window's end")
    return out


def project(curves: list[Curve], scenario: Scenario, samples: int = 0, seed: int = 0,
            verdicts: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Point trajectories and summaries at the scenario's central rates; bands when samples > 0. Each curve
    runs from its own start (Curve.origin) to the scenario's `until`."""
    summaries, trajectories = [], []
    verdicts = verdicts or {}
    for curve in curves:
        a, b = _rates(curve, scenario)
        lam = math.log(a) / math.log(b)
        start_year = curve.origin(scenario)
        calendar = curve.industry
        s = summarise(curve, scenario, a, b)
        t = s.pop("trajectory_t")
        cut_at = s.pop("cut_at")
        frontier, meek, gap = curve.gap(t, a, b)
        ratio = value_ratio(curve, frontier, meek)
        lag = _finite(lag_years(curve, t, a, b)) * MONTHS if calendar else np.full(len(t), np.nan)
        traj = pd.DataFrame({"curve": curve.name, "step": np.arange(len(t)), "year": start_year + t if calendar else np.nan,
                             "decades": t * math.log10(b) if curve.mode in ("compute", "multiples") else np.nan,
                             "frontier": frontier, "meek": meek, "gap": gap, "ratio": ratio, "lag_months": lag})
        ends = {"start_year": start_year if calendar else math.nan,
                "end_year": start_year + float(t[-1]) if calendar else math.nan,
                "ratio_end": float(ratio[-1]), "lag_months_end": float(lag[-1])}
        bands = {}
        dropped = n_draws = 0
        if samples:
            # one stream per curve: a curve's bands do not depend on which other curves run, or their order
            rng = np.random.default_rng([seed, zlib.crc32(curve.name.encode())])
            bands = monte_carlo(curve, scenario, samples, rng, bounded=s["bounded"])
            traj = traj.assign(gap_lo=bands.pop("gap_lo"), gap_mid=bands.pop("gap_mid"), gap_hi=bands.pop("gap_hi"))
            dropped, n_draws = bands.pop("dropped_draws"), bands.pop("fit_draws")
        trajectories.append(traj)
        key = tuple(curve.key.get(k) for k in ("metric", "source", "source_version", "x_axis"))
        # The stage-level verdict (classification) wins; otherwise the family's own asymptotics decide.
        verdict = verdicts.get(key) or ("meek" if s["limit_kind"] == "zero" else
                                        "mighty" if s["limit_kind"] in ("constant", "infinite") else "indeterminate")
        notes = _warnings(curve, frontier, t, start_year, b, s)
        if calendar and curve.years(scenario) == 0:
            notes.append(f"the data end ({year_month(start_year)}) after the scenario's until ({scenario.until}): "
                         "no window to project over")
        if cut_at is not None:
            end = (year_month(start_year + cut_at) if calendar else f"{cut_at * math.log10(b):.1f} decades")
            notes.append(f"projected only to {end}: {MAX_EXTRAPOLATION_DECADES:g} decades of frontier compute beyond "
                         "the data; an unbounded fit says nothing further out")
        if samples and dropped:
            notes.append(f"{dropped} of {n_draws} bootstrap draws not increasing (not a normal metric), left out of "
                         "the bands" + ("; bands from scenario draws only" if dropped == n_draws else ""))
        summaries.append({"curve": curve.name, "family": curve.family, "verdict": verdict,
                          "note": "; ".join(notes) or None, "warnings": json.dumps(notes),
                          "curve_kind": curve.mode, "unit": curve.unit,
                          **{k: curve.key.get(k) for k in ("metric", "source", "source_version", "x_axis")},
                          **s, **ends, **bands, "x0": curve.x0, "growth_a": a, "growth_b": b, "lambda": lam,
                          "compute_advanced": _compute_advanced(curve),
                          "scenario": scenario.name, "scenario_sha256": scenario.digest, "samples": samples,
                          "band": "10th-90th percentile over scenario x fit draws" if samples else None})
    cat = pd.concat(trajectories, ignore_index=True) if trajectories else pd.DataFrame()
    return pd.DataFrame(summaries), cat


def _compute_advanced(curve: Curve) -> str:
    if curve.mode == "multiples":
        return "compute multiples of the agents' own compute (no calendar)"
    if curve.mode == "compute" and curve.axis == "compute":
        return "raw training FLOP: hardware (meek), hardware x investment (frontier)"
    if curve.axis == "inference":
        return "inference budget: hardware x algorithms, frontier x inference"
    return "effective compute: hardware x algorithms, frontier x investment (sets lambda)"


def sensitivity(curves: list[Curve], scenario: Scenario, steps: int = 5) -> pd.DataFrame:
    """Peak gap and gap at `until` as each growth factor moves over its range (x/÷1.5 for points)."""
    rows = []
    for factor in ("hardware", "algorithms", "investment"):
        g = scenario.growth[factor]
        lo, hi = g.range if g.kind != "point" else (g.a / 1.5, g.a * 1.5)
        if factor == "investment":
            lo = max(lo, 1.05)
        for value in np.geomspace(lo, hi, steps):
            for curve in curves:
                a, b = _rates(curve, scenario, {factor: float(value)})
                if a <= 1:
                    continue
                s = summarise(curve, scenario, a, b)
                t_end = np.array([min(curve.years(scenario), s["cut_at"] if s["cut_at"] is not None else math.inf)])
                rows.append({"curve": curve.name, "factor": factor, "factor_value": float(value),
                             "peak_gap": s["peak_gap"], "peak_year": s["peak_year"],
                             "gap_at_until": float(curve.gap(t_end, a, b)[2][0])})
    return pd.DataFrame(rows)


def headline_curves(fitted: list[Curve], most: int = 8) -> list[Curve]:
    """For the sensitivity chart: one compute-axis series per metric, taken in turn from each unit (accuracy,
    Elo, minutes, loss, ...) so no single kind of metric fills the chart."""
    by_unit: dict[str, list[Curve]] = {}
    seen: set[str | None] = set()
    for curve in fitted:
        if curve.mode == "compute" and curve.metric not in seen:
            seen.add(curve.metric)
            by_unit.setdefault(curve.unit, []).append(curve)
    picked: list[Curve] = []
    queues = list(by_unit.values())
    while len(picked) < most and any(queues):
        for queue in queues:
            if queue and len(picked) < most:
                picked.append(queue.pop(0))
    return picked


def scenario_record(scenario: Scenario) -> dict:
    """The scenario as stored beside its projections (JSON, not Python reprs)."""
    return {"scenario": scenario.name, "path": scenario.path, "sha256": scenario.digest,
            "description": scenario.description, "start": str(scenario.start), "until": str(scenario.until),
            "growth": json.dumps({k: f"{v.kind}:{v.a}" + (f"..{v.b}" if v.kind != "point" else "")
                                  for k, v in scenario.growth.items()}),
            "sources": json.dumps(scenario.sources)}
