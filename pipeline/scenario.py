"""Growth scenarios (TOML): the annual growth factors of hardware, algorithms, investment and
inference, the projection window, explicit curves and settings; validated once on load."""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from pipeline.curves import FAMILIES
from pipeline.errors import InputError

SCENARIO_DIR = Path(__file__).parent / "scenarios"
DEFAULT_SCENARIO = SCENARIO_DIR / "default.toml"
GROWTH_KEYS = ("hardware", "algorithms", "investment", "inference")
EXPLICIT_FAMILIES = ("exponential_in_time", "success_at_length")
FITTED_STARTS = ("data", "scenario")  # growth.fitted_start: where a fitted series' projection starts
# Stated limits: beyond them a projection overflows, or takes minutes and gigabytes on its yearly grid.
GROWTH_RANGE = (1e-3, 1e3)          # annual factor of each growth rate
MAX_WINDOW_YEARS = 200              # until - start
YEAR_RANGE = (1900, 2500)           # start, until and anchor dates
CURVE_RANGES = {                    # explicit curves: key -> (low, high), both inclusive
    "doubling_months": (0.1, 1200.0), "task_minutes": (1e-3, 1e7), "anchor_value": (1e-12, 1e12),
    "start_flop": (1.0, 1e40), "start_budget": (1e-12, 1e15), "ratio_50_80": (1.0, 1e3),
}


@dataclass
class Growth:
    kind: str                 # point | lognormal | uniform
    a: float                  # point value, p10 or low
    b: float = math.nan       # p90 or high

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n draws, each > 1: draws at or below 1 are redrawn (the distribution truncated at 1), since a
        factor <= 1 would shrink compute, or make the frontier grow no faster than the meek actor."""
        if self.kind == "point":
            return np.full(n, self.a)
        out = self._draw(rng, n)
        while (bad := out <= 1.0).any():   # the loader ensures the upper end is > 1, so this ends
            out[bad] = self._draw(rng, int(bad.sum()))
        return out

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b, n)
        z90 = 1.2815515655446004
        mu, sigma = (math.log(self.a) + math.log(self.b)) / 2, (math.log(self.b) - math.log(self.a)) / (2 * z90)
        return np.exp(rng.normal(mu, sigma, n))

    @property
    def center(self) -> float:
        if self.kind == "point":
            return self.a
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        return math.sqrt(self.a * self.b)

    @property
    def range(self) -> tuple[float, float]:
        return (self.a, self.a) if self.kind == "point" else (self.a, self.b)


@dataclass
class Scenario:
    name: str
    path: str
    digest: str
    growth: dict[str, Growth]
    start: date
    until: date
    curves: list[dict]
    sources: dict[str, str] = field(default_factory=dict)
    close_fraction: float = 0.01
    description: str = ""
    project_fitted: bool = True      # also project every fitted series of the run with its best family
    fitted_start: str = "data"       # fitted series start where their data end ("data") or at `start` ("scenario")

    @property
    def years(self) -> float:
        return (self.until - self.start).days / 365.25

    def effective_rates(self) -> tuple[float, float]:
        """(a, b) of effective compute, the paper's: a = hardware x algorithms, b = a x investment."""
        return self.rates(axis="date")

    def rates(self, overrides: dict | None = None, axis: str = "compute", industry: bool = True) -> tuple[float, float]:
        """(a, b): meek and frontier annual growth of what a fit's x measures, at the central values."""
        g = {k: v.center for k, v in self.growth.items()}
        g.update(overrides or {})
        return growth_pair(g, axis, industry)


def growth_pair(g, axis: str = "compute", industry: bool = True):
    """(a, b) from growth factors (numbers or arrays of draws): the one place the formula lives.

    Compute fits are against raw training FLOP pooled over years, so they advance raw FLOP: hardware for
    the meek actor, hardware x investment for the frontier. Algorithmic progress already moves models at
    fixed raw FLOP inside such a fit; adding it to the axis would count it twice. Date trends hold every
    kind of progress, so a and b are effective compute (hardware x algorithms, times investment for the
    frontier); they set the meek actor's slower clock lambda = ln a / ln b. Inference budgets grow at
    hardware x algorithms, the frontier out-spending at growth.inference (paper §4). A series whose x is
    not the industry's compute (board-game agents) uses the raw-compute pair, in compute multiples."""
    if axis == "compute" or not industry:
        return g["hardware"], g["hardware"] * g["investment"]
    a = g["hardware"] * g["algorithms"]
    if axis == "inference":  # a scenario without an inference rate leaves the frontier's pace unknown
        return a, a * g["inference"] if "inference" in g else math.nan
    return a, a * g["investment"]


def _growth(path: str, key: str, raw) -> Growth:
    where = f"growth.{key}"
    if isinstance(raw, bool) or not isinstance(raw, int | float | dict):
        raise InputError(path, f"{where} must be a number or a table", "e.g. 2.828 or {dist = \"lognormal\", p10 = 2, p90 = 50}", column=where)
    if not isinstance(raw, dict):
        g = Growth("point", float(raw))
    else:
        dist = raw.get("dist")
        if dist == "lognormal":
            if not {"p10", "p90"} <= set(raw):
                raise InputError(path, f"{where}: a lognormal needs p10 and p90", "add p10 = ... and p90 = ...", column=where)
            g = Growth("lognormal", float(raw["p10"]), float(raw["p90"]))
        elif dist == "uniform":
            if not {"low", "high"} <= set(raw):
                raise InputError(path, f"{where}: a uniform range needs low and high", "add low = ... and high = ...", column=where)
            g = Growth("uniform", float(raw["low"]), float(raw["high"]))
        else:
            raise InputError(path, f"{where}: unknown dist {dist!r}", "use dist = \"lognormal\" or \"uniform\"", column=where)
        if not g.a <= g.b:
            raise InputError(path, f"{where}: the lower end {g.a} is above the upper end {g.b}", "swap them", column=where)
    if not g.a > 0:
        raise InputError(path, f"{where} = {g.a} must be a positive annual factor", "give e.g. 1.414", column=where)
    low, high = GROWTH_RANGE
    for value in (g.a,) if g.kind == "point" else (g.a, g.b):
        if not low <= value <= high:  # also refuses nan and inf
            raise InputError(path, f"{where} = {value} is outside the annual factors a projection can use "
                             f"({low:g} to {high:g})", "give a yearly growth factor, e.g. 1.414 (41% a year)",
                             column=where)
    if g.kind != "point" and not g.b > 1:
        # draws are truncated to > 1 (Growth.sample), so some of the range must lie above 1
        raise InputError(path, f"{where}: the upper end {g.b} must be above 1", "give an annual factor range reaching above 1",
                         column=where)
    return g


def _date(path: str, key: str, raw) -> date:
    try:
        day = raw if isinstance(raw, date) else date.fromisoformat(str(raw))
    except ValueError:
        raise InputError(path, f"{key} = {raw!r} is not a date", "write YYYY-MM-DD", column=key) from None
    if not YEAR_RANGE[0] <= day.year <= YEAR_RANGE[1]:
        raise InputError(path, f"{key} = {day} is outside the years {YEAR_RANGE[0]}-{YEAR_RANGE[1]}",
                         "give a date in the era of the data and its projection, e.g. 2025-01-01", column=key)
    return day


CURVE_KEYS = {"name", "metric", "family", "source", "x_axis", "start_flop", "start_budget", "params", "higher_is_better", "unit",
              "doubling_months", "anchor_date", "anchor_value", "horizon", "task_minutes", "ratio_50_80"}
NUMERIC_CURVE_KEYS = ("start_flop", "start_budget", "doubling_months", "anchor_value", "task_minutes", "ratio_50_80")


def load_scenario(path: str | Path | None = None) -> Scenario:
    path = Path(path) if path else DEFAULT_SCENARIO
    if not path.is_file():
        raise InputError(str(path), "scenario file not found", f"give a TOML file, e.g. {DEFAULT_SCENARIO}")
    raw_bytes = path.read_bytes()
    try:
        config = tomllib.loads(raw_bytes.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"not valid TOML ({exc})", "fix the syntax at the position given") from None
    p = str(path)
    unknown = set(config) - {"name", "description", "growth", "curve", "sources", "settings"}
    if unknown:
        raise InputError(p, f"unknown top-level key(s) {', '.join(sorted(unknown))}",
                         "allowed: name, description, growth, curve, sources, settings", column=sorted(unknown)[0])
    growth_raw = config.get("growth")
    if not isinstance(growth_raw, dict):
        raise InputError(p, "no [growth] table", "add [growth] with hardware, algorithms, investment, start, until", column="growth")
    for key in ("hardware", "algorithms", "investment", "start", "until"):
        if key not in growth_raw:
            raise InputError(p, f"growth.{key} is missing", f"add {key} = ... under [growth]", column=f"growth.{key}")
    extra = set(growth_raw) - set(GROWTH_KEYS) - {"start", "until", "fitted_start"}
    if extra:
        raise InputError(p, f"unknown growth key(s) {', '.join(sorted(extra))}",
                         f"allowed: {', '.join(GROWTH_KEYS)}, start, until, fitted_start", column=f"growth.{sorted(extra)[0]}")
    fitted_start = growth_raw.get("fitted_start", "data")
    if fitted_start not in FITTED_STARTS:
        raise InputError(p, f"growth.fitted_start = {fitted_start!r} is not \"data\" or \"scenario\"",
                         "write fitted_start = \"data\" (each fitted series starts where its data end) or \"scenario\" "
                         "(at growth.start)", column="growth.fitted_start")
    growth = {k: _growth(p, k, growth_raw[k]) for k in GROWTH_KEYS if k in growth_raw}
    if growth["hardware"].range[0] * growth["algorithms"].range[0] <= 1:
        raise InputError(p, "hardware x algorithms must exceed 1 (the meek actor's compute must grow)",
                         "give annual factors above 1", column="growth.hardware")
    for key in ("investment", "inference"):
        if key in growth and growth[key].range[0] <= 1:
            raise InputError(p, f"growth.{key} = {growth[key].range[0]} must be above 1: the frontier must out-grow the meek actor",
                             "give an annual factor > 1 (e.g. 2.828)", column=f"growth.{key}")
    start, until = _date(p, "growth.start", growth_raw["start"]), _date(p, "growth.until", growth_raw["until"])
    if until <= start:
        raise InputError(p, f"until ({until}) is not after start ({start})", "put until after start", column="growth.until")
    if (until - start).days / 365.25 > MAX_WINDOW_YEARS:
        raise InputError(p, f"the window {start} to {until} is longer than {MAX_WINDOW_YEARS} years",
                         f"project at most {MAX_WINDOW_YEARS} years, e.g. until = {start.year + 50}-01-01",
                         column="growth.until")
    curves = config.get("curve", [])
    if not isinstance(curves, list):
        raise InputError(p, "curve must be an array of tables", "write each as [[curve]]", column="curve")
    names = set()
    for i, curve in enumerate(curves):
        where = f"curve[{i}]"
        if not isinstance(curve, dict):
            raise InputError(p, f"{where} is not a table", "write each curve as [[curve]] with key = value lines", column=where)
        unknown = set(curve) - CURVE_KEYS
        if unknown:
            raise InputError(p, f"{where}: unknown key(s) {', '.join(sorted(unknown))}",
                             f"allowed: {', '.join(sorted(CURVE_KEYS))}", column=f"{where}.{sorted(unknown)[0]}")
        for key in NUMERIC_CURVE_KEYS:
            if key in curve and (isinstance(curve[key], bool) or not isinstance(curve[key], int | float)):
                raise InputError(p, f"{where}.{key} = {curve[key]!r} is not a number", f"write {key} = 7 (no quotes)",
                                 column=f"{where}.{key}")
            low, high = CURVE_RANGES[key]
            if key in curve and not low <= curve[key] <= high:  # also refuses nan and inf
                raise InputError(p, f"{where}.{key} = {curve[key]!r} is outside {low:g} to {high:g}",
                                 f"give {key} as a positive, finite number in that range", column=f"{where}.{key}")
        params = curve.get("params", {})
        if not isinstance(params, dict) or any(isinstance(v, bool) or not isinstance(v, int | float) for v in params.values()):
            raise InputError(p, f"{where}.params must be a table of numbers", "write params = { c0 = 0.1, c = 0.05 }",
                             column=f"{where}.params")
        if not all(math.isfinite(v) for v in params.values()):
            raise InputError(p, f"{where}.params has a value that is not a finite number", "give finite numbers",
                             column=f"{where}.params")
        name = curve.get("name")
        if not name:
            raise InputError(p, f"{where} has no name", "add name = \"...\"", column=f"{where}.name")
        if name in names:
            raise InputError(p, f"curve name {name!r} appears twice", "give each curve its own name", column=f"{where}.name")
        names.add(name)
        family = curve.get("family")
        if "metric" not in curve and family is None:
            raise InputError(p, f"curve {name!r} has neither metric nor family", "give metric = \"mmlu\" or a family", column=f"{where}.family")
        if family is not None and family not in EXPLICIT_FAMILIES and family not in FAMILIES:
            raise InputError(p, f"curve {name!r}: unknown family {family!r}",
                             f"use one of {', '.join(EXPLICIT_FAMILIES + tuple(FAMILIES))}", column=f"{where}.family")
        if family == "exponential_in_time":
            for key in ("doubling_months", "anchor_date", "anchor_value"):
                if key not in curve:
                    raise InputError(p, f"curve {name!r} needs {key}", f"add {key} = ...", column=f"{where}.{key}")
            _date(p, f"{where}.anchor_date", curve["anchor_date"])
            if not float(curve["doubling_months"]) > 0 or not float(curve["anchor_value"]) > 0:
                raise InputError(p, f"curve {name!r}: doubling_months and anchor_value must be positive", "fix the values",
                                 column=f"{where}.doubling_months")
        if family == "success_at_length":
            for key in ("horizon", "task_minutes"):
                if key not in curve:
                    raise InputError(p, f"curve {name!r} needs {key}", f"add {key} = ...", column=f"{where}.{key}")
            if curve["horizon"] not in names:
                raise InputError(p, f"curve {name!r} refers to horizon {curve['horizon']!r}, not defined above it",
                                 "define the horizon curve first", column=f"{where}.horizon")
            if float(curve.get("ratio_50_80", 5)) <= 1:
                raise InputError(p, "ratio_50_80 must exceed 1", "METR's p50/p80 ratio is about 4-6", column=f"{where}.ratio_50_80")
        if family in FAMILIES and "metric" not in curve:
            axis = _explicit_axis(curve)
            if axis not in ("compute", "inference"):
                raise InputError(p, f"curve {name!r}: x_axis = {axis!r}", "use x_axis = \"compute\" (training FLOP) or "
                                 "\"inference\" (inference budget, e.g. samples k)", column=f"{where}.x_axis")
            start_key = "start_budget" if axis == "inference" else "start_flop"
            missing = [n for n in FAMILIES[family].param_names if n not in curve.get("params", {})]
            if missing or start_key not in curve:
                raise InputError(p, f"curve {name!r}: an explicit {family} curve needs params ({', '.join(FAMILIES[family].param_names)}) and {start_key}",
                                 f"add params = {{...}} and {start_key} = " + ("100" if axis == "inference" else "1e25"),
                                 column=f"{where}.params" if missing else f"{where}.{start_key}")
            if axis == "inference" and "inference" not in growth:
                raise InputError(p, f"curve {name!r} is against inference compute but [growth] has no inference rate",
                                 "add inference = 4.0 (the frontier's extra annual growth of inference budget) under [growth]",
                                 column="growth.inference")
    settings = config.get("settings", {})
    bad = set(settings) - {"close_fraction", "project_fitted"} if isinstance(settings, dict) else {"settings"}
    if bad:
        raise InputError(p, f"unknown settings key(s) {', '.join(sorted(bad))}", "allowed: close_fraction, project_fitted",
                         column=f"settings.{sorted(bad)[0]}")
    fraction = settings.get("close_fraction", 0.01)
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise InputError(p, f"settings.close_fraction = {fraction!r} must be a number in (0, 1)", "e.g. 0.01",
                         column="settings.close_fraction")
    if not isinstance(settings.get("project_fitted", True), bool):
        raise InputError(p, "settings.project_fitted must be true or false", "write project_fitted = false",
                         column="settings.project_fitted")
    return Scenario(name=str(config.get("name", path.stem)), path=p, digest=hashlib.sha256(raw_bytes).hexdigest(),
                    growth=growth, start=start, until=until, curves=curves,
                    sources={str(k): str(v) for k, v in config.get("sources", {}).items()},
                    close_fraction=float(fraction), description=str(config.get("description", "")),
                    project_fitted=bool(settings.get("project_fitted", True)), fitted_start=fitted_start)



def _explicit_axis(spec: dict) -> str:
    """x_axis of an explicit curve: as written, else the family's own (inference for pass@k families)."""
    family = FAMILIES.get(spec.get("family", ""))
    default = "inference" if family is not None and getattr(family, "x_axis", None) == "inference" else "compute"
    return str(spec.get("x_axis", default))
