"""Gap projections: frontier vs meek actor under growth scenarios (meek-math §7-8).

Frontier effective compute grows by b = hardware·algorithms·investment per year, the meek actor's
by a = hardware·algorithms; both start equal. For a curve in log10 compute,
gap(t) = F(x0 + t·log10 b) − F(x0 + t·log10 a). For a release-date trend the meek actor follows the
same trend more slowly: meek(t) = frontier(λt), λ = ln a / ln b (App. B). For loss (lower is
better) the gap is meek loss minus frontier loss, so it is positive too.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline import store
from pipeline.curves import FAMILIES
from pipeline.scenario import (  # noqa: F401  (re-exported: the scenario's home before it had its own module)
    DEFAULT_SCENARIO,
    EXPLICIT_FAMILIES,
    GROWTH_KEYS,
    SCENARIO_DIR,
    Growth,
    Scenario,
    _date,
    _explicit_axis,
    load_scenario,
)
from pipeline.schema import InputError

MONTHS = 12
CLOSE_HORIZON_YEARS = 300.0
PEAK_SEARCH_YEARS = 100.0


# ------------------------------------------------------------------------------ curves
@dataclass
class Curve:
    """A metric as a function of years since the scenario start, for frontier and meek actors."""

    name: str
    family: str
    kind: str                        # compute | date | horizon_time | success_at_length
    params: np.ndarray | None = None
    draws: np.ndarray | None = None
    x0: float = math.nan             # log10 FLOP (compute) or decimal year (date) at the start
    higher_is_better: bool = True
    unit: str = ""
    metric: str | None = None
    key: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    value_range: float = math.nan

    def values(self, t: np.ndarray, a: float, b: float, params: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        p = self.params if params is None else params
        lam = math.log(a) / math.log(b)
        if self.kind == "compute":
            fam = FAMILIES[self.family]
            return fam.value(self.x0 + t * math.log10(b), p), fam.value(self.x0 + t * math.log10(a), p)
        if self.kind == "date":
            fam = FAMILIES[self.family]
            return fam.value(self.x0 + t, p), fam.value(self.x0 + lam * t, p)
        if self.kind == "horizon_time":
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
        if self.kind == "success_at_length":
            return "zero", 0.0, True
        if self.kind == "horizon_time":
            return "infinite", math.inf, False
        asym = FAMILIES[self.family].asymptotics(self.params, self.higher_is_better)
        if not asym.normal:
            return "undefined", math.nan, False
        if asym.bounded or asym.g_limit == 0:
            return "zero", 0.0, asym.bounded
        if math.isinf(asym.g_limit):
            return "infinite", math.inf, False
        return "constant", math.log(math.log(b) / math.log(a)) * asym.g_limit, False


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
        rows.append({"curve": r["curve"], "family": r["family"], "verdict": r.get("verdict") or "",
                     "peak gap": "" if pd.isna(r["peak_gap"]) else f"{r['peak_gap']:.4g}"
                     + (f" ({r['peak_gap_lo']:.3g}-{r['peak_gap_hi']:.3g})" if band else ""),
                     "peak date": ("" if pd.isna(r["peak_year"]) else year_month(r["peak_year"])
                                   + ("" if r.get("peak_within_window", True) in (True, None) or not r.get("bounded") else "*")
                                   + (f" ({year_month(r['peak_year_lo'])} to {year_month(r['peak_year_hi'])})" if band else "")),
                     "closes by": year_month(r["close_year"]) if pd.notna(r["close_year"]) else "",
                     "limit": "" if pd.isna(r.get("limit_kind")) else r["limit_kind"]
                     + (f" {r['limit_value']:.4g}" if r["limit_kind"] == "constant" else ""),
                     "note": r.get("note") or ""})
    return pd.DataFrame(rows)


def _year(d) -> float:
    d = pd.Timestamp(d)
    return d.year + (d.day_of_year - 1) / 365.25


def stored_curves(con, run_id: str, scenario: Scenario, requests: list[dict] | None = None) -> tuple[list[Curve], list[dict]]:
    """Best family (or the named one) of every fitted series in the run, or only the requested metrics."""
    selection = con.execute("SELECT * FROM selection WHERE run_id = ? AND best_family IS NOT NULL "
                            "ORDER BY metric, source, source_version, x_axis", [run_id]).df()
    params = con.execute("SELECT * FROM fit_params WHERE run_id = ?", [run_id]).df()
    points = con.execute("SELECT * FROM series_points WHERE run_id = ?", [run_id]).df()
    keys = ["metric", "source", "source_version", "x_axis"]
    # Several versions of one source (METR-Horizon-v1 and v1.1) would share a curve name, and the later
    # would silently overwrite the earlier in the store (key run, scenario, curve): name the version then.
    n_versions = selection.groupby(["metric", "source", "x_axis"])["source_version"].transform("nunique")
    selection = selection.assign(label=np.where(n_versions > 1, selection["source"] + "@" + selection["source_version"],
                                                selection["source"]))
    skipped = []
    wanted = []
    if requests is None:
        wanted = [(row, row["best_family"], None) for _, row in selection.iterrows()]
    else:
        for spec in requests:
            rows = selection[selection["metric"] == spec["metric"]]
            if "source" in spec:
                rows = rows[rows["source"] == spec["source"]]
            rows = rows[rows["x_axis"] == spec.get("x_axis", "compute")] if len(rows) > 1 else rows
            if rows.empty:
                skipped.append({"curve": spec["name"], "reason": f"metric {spec['metric']!r} has no fit in run {run_id}"})
                continue
            for _, row in rows.iterrows():
                # one metric from several sources: one curve per source, named apart
                named = spec if len(rows) == 1 else {**spec, "name": f"{spec['name']} [{row['label']}]"}
                wanted.append((row, spec.get("family", row["best_family"]), named))
    start_year = _year(scenario.start)
    out = []
    for row, family, spec in wanted:
        match = (params[keys] == row[keys]).all(axis=1) & (params["family"] == family)
        pp = params[match]
        if pp.empty:
            skipped.append({"curve": row["metric"], "reason": f"family {family} did not converge for {row['metric']}"})
            continue
        vec = np.array([float(pp.loc[pp["param"] == n, "value"].iloc[0]) for n in FAMILIES[family].param_names])
        draws = con.execute("SELECT params FROM fit_draws WHERE run_id = ? AND metric = ? AND source = ? AND "
                            "source_version = ? AND x_axis = ? AND family = ? ORDER BY draw",
                            [run_id, *[row[k] for k in keys], family]).df()
        draw_arr = np.stack(draws["params"].to_numpy()) if len(draws) else None
        pts = points[(points[keys] == row[keys]).all(axis=1)]
        if row["x_axis"] in ("compute", "inference"):
            if row["x_axis"] == "inference" and "inference" not in scenario.growth:
                skipped.append({"curve": row["metric"], "reason": "fitted against inference compute but the scenario has "
                                "no growth.inference; add inference = ... under [growth]"})
                continue
            before = pts[pts["release_year"] <= start_year]
            x0 = float(spec["start_flop"]) if spec and "start_flop" in spec else None
            x0 = math.log10(x0) if x0 else float((before if len(before) else pts)["x"].max())
            kind = "compute"
        else:
            x0, kind = start_year, "date"
        name = (spec or {}).get("name") or f"{row['metric']} [{row['label']}] vs {row['x_axis']}"
        hib = row["kind"] != "loss" and FAMILIES[family].higher_is_better
        curve = Curve(name, family, kind, params=vec, draws=draw_arr, x0=x0, higher_is_better=hib,
                      unit=row["unit"], metric=row["metric"], key={k: row[k] for k in keys},
                      extra={"axis": row["x_axis"]})
        y = pts["y"].to_numpy()
        curve.value_range = _value_range(FAMILIES[family].asymptotics(vec, curve.higher_is_better), curve.higher_is_better, y)
        out.append(curve)
    return out, skipped


# ------------------------------------------------------------------------------ projection
def _grids(scenario: Scenario, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """(trajectory grid, the same grid continued monthly to `horizon` years).

    Point summaries, bands and peak searches all use these, so band rows sit on the trajectory's years
    and point rates give the same peak in both.
    """
    t = np.linspace(0.0, scenario.years, int(scenario.years * MONTHS) + 1)
    more = np.arange(scenario.years + 1 / MONTHS, horizon + 1e-9, 1 / MONTHS)
    return t, np.concatenate([t, more])


def summarise(curve: Curve, scenario: Scenario, a: float, b: float) -> dict:
    kind, value, bounded = curve.limit(a, b)
    # A bounded gap is followed past `until` to find its peak and closing date; an unbounded one
    # has no peak, so its largest value inside the window is reported (at the window's end).
    t, long_t = _grids(scenario, CLOSE_HORIZON_YEARS)
    long_t = long_t if bounded else t
    with np.errstate(all="ignore"):
        _, _, long_gap = curve.gap(long_t, a, b)
    start_year = _year(scenario.start)
    i = int(np.nanargmax(long_gap)) if np.isfinite(long_gap).any() else 0
    peak_year = start_year + float(long_t[i])
    close_year = math.nan
    if bounded and np.isfinite(curve.value_range):
        threshold = scenario.close_fraction * curve.value_range
        above = np.flatnonzero(np.abs(long_gap) >= threshold)
        if len(above) == 0:
            close_year = peak_year  # never above the threshold: closed throughout, but say so no earlier than the peak
        elif above[-1] + 1 < len(long_t):
            close_year = max(start_year + float(long_t[above[-1] + 1]), peak_year)
    peak_in_window = long_t[i] < scenario.years - 1e-9
    return {"peak_gap": float(long_gap[i]), "peak_year": peak_year,
            "peak_within_window": bool(peak_in_window), "close_year": close_year, "limit_kind": kind,
            "limit_value": value, "bounded": bounded, "trajectory_t": t}


def monte_carlo(curve: Curve, scenario: Scenario, samples: int, rng: np.random.Generator,
                bounded: bool = False) -> dict:
    """10th/50th/90th percentiles of the gap over scenario draws x bootstrap draws of the fit.

    Bands are on the trajectory's own years. For a bounded (meek) curve the peak is searched
    PEAK_SEARCH_YEARS ahead, since it may fall after `until`.
    """
    t_window, t = _grids(scenario, PEAK_SEARCH_YEARS if bounded else scenario.years)
    n_window = len(t_window)
    g = {k: v.sample(rng, samples) for k, v in scenario.growth.items()}
    a = g["hardware"] * g["algorithms"]
    b = a * g["inference" if curve.extra.get("axis") == "inference" else "investment"]
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
    start_year = _year(scenario.start)
    with np.errstate(all="ignore"):
        peak_idx = np.argmax(np.where(np.isfinite(gaps), gaps, -np.inf), axis=1)
    peak_years = start_year + t[peak_idx]
    peak_gaps = gaps[np.arange(samples), peak_idx]
    window = gaps[:, :n_window]

    def q(arr, lvl, axis=None):
        with np.errstate(all="ignore"):
            return np.nanpercentile(np.where(np.isfinite(arr), arr, np.nan), lvl, axis=axis)

    return {"gap_lo": q(window, 10, 0), "gap_mid": q(window, 50, 0), "gap_hi": q(window, 90, 0),
            "peak_year_lo": float(q(peak_years, 10)), "peak_year_hi": float(q(peak_years, 90)),
            "peak_gap_lo": float(q(peak_gaps, 10)), "peak_gap_hi": float(q(peak_gaps, 90)),
            "dropped_draws": dropped, "fit_draws": 0 if curve.draws is None else len(curve.draws)}


def project(curves: list[Curve], scenario: Scenario, samples: int = 0, seed: int = 0,
            verdicts: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Point trajectories and summaries at the scenario's central rates; bands when samples > 0."""
    summaries, trajectories = [], []
    start_year = _year(scenario.start)
    verdicts = verdicts or {}
    for curve in curves:
        a, b = scenario.rates(axis=curve.extra.get("axis", "compute"))
        lam = math.log(a) / math.log(b)
        s = summarise(curve, scenario, a, b)
        t = s.pop("trajectory_t")
        frontier, meek, gap = curve.gap(t, a, b)
        traj = pd.DataFrame({"curve": curve.name, "year": start_year + t, "frontier": frontier, "meek": meek, "gap": gap})
        bands = {}
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
        notes = []
        ceiling = {"fraction": 1.0, "percent": 100.0}.get(curve.unit)
        if ceiling is not None and curve.kind in ("compute", "date") and np.nanmax(frontier) > ceiling:
            # an unbounded family fitted to a bounded score: the projection leaves the metric's range
            notes.append(f"frontier passes the metric's ceiling {ceiling:g} in "
                         f"{year_month(start_year + float(t[np.argmax(frontier > ceiling)]))}; extrapolation beyond the data")
        if samples and dropped:
            notes.append(f"{dropped} of {n_draws} bootstrap draws not increasing (not a normal metric), left out of the bands"
                         + ("; bands from scenario draws only" if dropped == n_draws else ""))
        summaries.append({"curve": curve.name, "family": curve.family, "verdict": verdict, "note": "; ".join(notes) or None, "curve_kind": curve.kind, "unit": curve.unit,
                          **{k: curve.key.get(k) for k in ("metric", "source", "source_version", "x_axis")},
                          **s, **bands, "x0": curve.x0, "growth_a": a, "growth_b": b, "lambda": lam,
                          "scenario": scenario.name, "scenario_sha256": scenario.digest, "samples": samples,
                          "band": "10th-90th percentile over scenario x fit draws" if samples else None})
    cat = pd.concat(trajectories, ignore_index=True) if trajectories else pd.DataFrame()
    return pd.DataFrame(summaries), cat


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
                a, b = scenario.rates({factor: float(value)}, axis=curve.extra.get("axis", "compute"))
                if a <= 1:
                    continue
                s = summarise(curve, scenario, a, b)
                t_end = np.array([scenario.years])
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
        if curve.kind == "compute" and curve.metric not in seen:
            seen.add(curve.metric)
            by_unit.setdefault(curve.unit, []).append(curve)
    picked: list[Curve] = []
    queues = list(by_unit.values())
    while len(picked) < most and any(queues):
        for queue in queues:
            if queue and len(picked) < most:
                picked.append(queue.pop(0))
    return picked


def project_stage(db, run_id: str, scenario_path=None, samples: int = 1000, seed: int = 0, metrics=None) -> dict:
    scenario = load_scenario(scenario_path)
    con = store.connect(db, read_only=True)
    try:
        requests = [c for c in scenario.curves if "metric" in c]
        fitted, skipped = stored_curves(con, run_id, scenario) if scenario.project_fitted else ([], [])
        if metrics:
            fitted = [c for c in fitted if c.metric in metrics]
        asked, skipped_asked = stored_curves(con, run_id, scenario, requests) if requests else ([], [])
        verdicts = {tuple(r[:4]): r[4] for r in con.execute(
            "SELECT metric, source, source_version, x_axis, verdict FROM classifications WHERE run_id = ?", [run_id]).fetchall()}
    finally:
        con.close()
    curves = explicit_curves(scenario) + asked + fitted
    names = [c.name for c in curves]
    if len(set(names)) < len(names):  # the store keys on (run, scenario, curve): a twin would overwrite silently
        twin = next(n for n in names if names.count(n) > 1)
        raise InputError(scenario.path, f"curve name {twin!r} is used twice (a scenario curve and a fitted series?)",
                         "rename the scenario's curve", column="curve.name")
    summary, trajectories = project(curves, scenario, samples, seed, verdicts)
    sens = sensitivity(explicit_curves(scenario) + asked + headline_curves(fitted), scenario)
    skipped_rows = pd.DataFrame(skipped + skipped_asked)
    if len(skipped_rows):
        summary = pd.concat([summary, skipped_rows.rename(columns={"reason": "note"}).assign(scenario=scenario.name)],
                            ignore_index=True)
    scenario_row = pd.DataFrame([{"scenario": scenario.name, "path": scenario.path, "sha256": scenario.digest,
                                  "description": scenario.description, "start": str(scenario.start),
                                  "until": str(scenario.until),
                                  "growth": {k: f"{v.kind}:{v.a}" + (f"..{v.b}" if v.kind != "point" else "")
                                             for k, v in scenario.growth.items()}.__repr__(),
                                  "sources": repr(scenario.sources)}])
    with store.open_stage(db, run_id, "project") as con:
        # Stores created before the verdict column existed get it here (CREATE IF NOT EXISTS won't add it).
        con.execute("ALTER TABLE projections ADD COLUMN IF NOT EXISTS verdict VARCHAR")
        # replaced per (run, scenario): projecting another scenario on the same fit run keeps this one's rows
        only = {"where": "AND scenario = ?", "params": [scenario.name]}
        n = store.replace_run_rows(con, "projections", run_id, summary, **only)
        store.replace_run_rows(con, "projection_trajectories", run_id, trajectories.assign(scenario=scenario.name), **only)
        store.replace_run_rows(con, "projection_sensitivity", run_id, sens.assign(scenario=scenario.name), **only)
        store.replace_run_rows(con, "scenarios", run_id, scenario_row, **only)
    return {"curves": n, "skipped": len(skipped_rows), "scenario": scenario.name}
