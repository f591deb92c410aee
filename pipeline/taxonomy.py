"""Meek or mighty (Fogelson et al. 2026) for fitted curves: analytic per family, a verdict per series with
its basis and warnings, one verdict per metric. Pure: takes fit results, returns rows.

Theorem 2.4: a normal metric bounded above is meek. Theorem 2.5: for an unbounded normal metric
whose log-log slope g = f'(C)·C·ln C is eventually monotone, the gap under exponential growth tends
to ln(ln b / ln a) · lim g: zero (meek), a constant (mighty, the c·ln ln C boundary) or infinity.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.curves import FAMILIES
from pipeline.ranges import KnownRange, known_range
from pipeline.scenario import DEFAULT_SCENARIO, load_scenario

# The default scenario's effective-compute rates (meek-math §8: a = g_h·g_a, b = a·g_i), for closed forms
# in C; fitted series take theirs from the run's configuration.
DEFAULT_A, DEFAULT_B = load_scenario(DEFAULT_SCENARIO).effective_rates()
MIN_POINTS_FOR_VERDICT = 8
MIN_CLUSTERS_FOR_VERDICT = 3
CEILING_TOLERANCE = 1e-6


def gap_limit_constant(g_limit: float, a: float = DEFAULT_A, b: float = DEFAULT_B) -> float:
    """lim gap = ln(ln b / ln a) · lim g (Thm 2.5, Result 2)."""
    if g_limit == 0:
        return 0.0
    return math.log(math.log(b) / math.log(a)) * g_limit


def limit_kind(g_limit: float) -> str:
    if not np.isfinite(g_limit):
        return "infinite" if g_limit == math.inf else "unknown"
    return "zero" if g_limit == 0 else "constant"


# ------------------------------------------------------------------------------ fitted curves
def classify_family(family: str, params, higher_is_better: bool, a: float, b: float) -> dict:
    asym = FAMILIES[family].asymptotics(np.asarray(params, float), higher_is_better)
    if not asym.normal:
        return {"normal": False, "bounded": None, "sup": None, "g_limit": None, "limit_kind": None, "gap_limit": None,
                "verdict": "not-normal", "reason": "not a normal performance metric: " + asym.reason}
    g = 0.0 if asym.bounded else asym.g_limit
    verdict = "meek" if g == 0 else ("mighty-divergent" if math.isinf(g) else "mighty-constant-gap")
    return {"normal": True, "bounded": asym.bounded, "sup": asym.sup, "g_limit": g, "limit_kind": limit_kind(g),
            "gap_limit": gap_limit_constant(g, a, b), "verdict": verdict, "reason": asym.reason}


def span_can_tell(x_min: float, x_max: float, rise: float, sigma: float, n: int) -> tuple[bool, str]:
    """Can the compute span separate c·ln ln C from a straight line in ln C?

    Over x = log10 C in [x_min, x_max], ln ln C = ln(x ln 10) bends away from its chord by at most
    `bend` of its rise. A curve rising by `rise` on the series' scale therefore differs from its straight
    rival by about bend·rise; the data see that only if it is at least twice the standard error of the
    residual mean, 2·sigma/sqrt(n). If they cannot, they cannot separate meek-but-unbounded growth
    (slower than ln ln C) from mighty growth either, and an unbounded verdict is left undecided."""
    if not (np.isfinite(x_min) and np.isfinite(x_max) and x_max > x_min > 0 and np.isfinite(rise)
            and np.isfinite(sigma) and n > 0):
        return True, ""
    x = np.linspace(x_min, x_max, 200)
    u = np.log(x * math.log(10))
    chord = u[0] + (u[-1] - u[0]) * (x - x_min) / (x_max - x_min)
    bend = float(np.max(np.abs(u - chord)) / (u[-1] - u[0]))
    signal, noise = bend * abs(rise), 2 * sigma / math.sqrt(n)
    text = (f"over {x_max - x_min:.1f} decades of compute (1e{x_min:.1f} to 1e{x_max:.1f} FLOP) ln ln C bends from a "
            f"straight line in ln C by {bend:.1%} of the rise, {signal:.3g} on the series' scale, against a "
            f"standard error of {noise / 2:.3g} (twice that is needed)")
    return signal >= noise, text


def _ceiling_warnings(best, y_max: float, kr: KnownRange, unit: str) -> list[str]:
    """Words for a ceiling whose interval runs into a bound: the data do not pin where the metric levels off."""
    if best is None or "ceiling" not in best.params or "ceiling" in best.fixed:
        return []
    lo, hi = best.intervals.get("ceiling", (math.nan, math.nan))
    value = best.params["ceiling"]
    out = []
    tol = 1e-6 * max(1.0, abs(y_max))
    if abs(value - y_max) <= tol or (np.isfinite(lo) and abs(lo - y_max) <= tol):
        out.append(f"ceiling at the best value seen ({y_max:.4g} {unit}): the data do not show where the metric "
                   "levels off, only that it is at least there; peak and closing dates assume it stops there and "
                   "would come later if it does not")
    if np.isfinite(kr.hi) and np.isfinite(hi) and abs(hi - kr.hi) <= 1e-6 * max(1.0, abs(kr.hi)):
        out.append(f"the ceiling's 95% interval reaches the metric's maximum ({kr.hi:g}): the data allow it to "
                   "rise all the way")
    return out


def classify_series(sel: dict, fits: dict, y_max: float, a: float, b: float, threshold: float = 0.8,
                    industry_compute: bool = True) -> dict:
    """The verdict of one fitted series, its basis and its warnings.

    `sel` is the series' selection row (kind, unit, floor, ceiling, n, n_clusters, x range, best family,
    P(bounded) over bootstrap draws...), `fits` its FitResults by family. Basis: "known-range" when the
    metric's unit bounds it (Theorem 2.4: meek whatever fits best); "data" when P(bounded) clears the
    threshold with enough points; "undecided" otherwise (verdict indeterminate)."""
    kind, unit = sel.get("kind"), sel.get("unit")
    kr = known_range(kind, unit, sel.get("floor"), sel.get("ceiling"))
    hib = kind != "loss"
    best = fits.get(sel.get("best_family")) if isinstance(sel.get("best_family"), str) else None
    analytic = (classify_family(best.family, best.vector, hib, a, b) if best is not None and best.params
                else {"verdict": None, "reason": "no converged fit"})
    warnings: list[str] = []
    p_data = sel.get("p_bounded")
    stacked = sel.get("weighting") == "stacking" and _finite(sel.get("p_bounded_stacking"))
    if stacked:  # the weighting the backtests support (fitting.preferred_weighting)
        p_data = sel.get("p_bounded_stacking")
    p_data = float(p_data) if _finite(p_data) else math.nan
    n, clusters = int(sel.get("n") or 0), int(sel.get("n_clusters") or 0)
    small = n < MIN_POINTS_FOR_VERDICT or clusters < MIN_CLUSTERS_FOR_VERDICT
    if n < MIN_POINTS_FOR_VERDICT:
        warnings.append(f"only {n} points (fewer than {MIN_POINTS_FOR_VERDICT}): too few to judge the shape")
    if clusters < MIN_CLUSTERS_FOR_VERDICT:
        warnings.append(f"only {clusters} cluster{'s' if clusters != 1 else ''} of related models (fewer than "
                        f"{MIN_CLUSTERS_FOR_VERDICT}): the points are not independent evidence of the shape")
    for family, count in json_dict(sel.get("not_increasing")).items():
        if count:
            warnings.append(f"{count} bootstrap draws of {family} do not increase with compute: left out of "
                            "P(bounded), not counted as unbounded")
    if int(sel.get("excluded_draws") or 0):
        warnings.append(f"{int(sel['excluded_draws'])} bootstrap draws had no family converging to an increasing "
                        "curve and are left out")
    ceiling_words = _ceiling_warnings(best, y_max, kr, unit or "")
    if best is not None and "on its bound" in (best.message or ""):
        sentence = _bound_sentence(best.message, skip="ceiling" if ceiling_words else None)
        if sentence:
            warnings.append(sentence)
    warnings.extend(ceiling_words)
    if not industry_compute:
        warnings.append("compute here is one lab's agents, not the AI industry's: projected in compute multiples, "
                        "not calendar years")
    gap_limit = analytic.get("gap_limit")
    if kr.bounded_performance:
        verdict, basis, p = "meek", "known-range", 1.0
        gap_limit = 0.0
        why = (f"{kr.why}: bounded above, so meek by Theorem 2.4 whatever curve fits best; the data decide where "
               f"it levels off ({best.family if best is not None else 'no converged fit'}"
               + (f", P(bounded) from the fits alone {p_data:.2f}" if np.isfinite(p_data) else "") + ")")
    else:
        p = p_data
        span_ok, span_text = True, ""
        if sel.get("x_axis") in ("compute", "inference") and best is not None and np.isfinite(best.sigma):
            span_ok, span_text = span_can_tell(float(sel.get("x_min", math.nan)), float(sel.get("x_max", math.nan)),
                                               float(sel.get("y_rise", math.nan)), best.sigma, n)
        if small:
            verdict, basis, why = "indeterminate", "undecided", "too few points or clusters to judge the shape"
        elif not np.isfinite(p):
            verdict, basis, why = "indeterminate", "undecided", "no bootstrap draw converged to an increasing curve"
        elif p >= threshold:
            verdict, basis, why = "meek", "data", f"P(bounded) = {p:.2f} >= {threshold:.2f}: the gap closes"
        elif p <= 1 - threshold and not span_ok:
            verdict, basis, why = "indeterminate", "undecided", (
                f"P(bounded) = {p:.2f} favours unbounded growth, but {span_text}: the data cannot tell growth "
                "slower than ln ln C (meek) from faster (mighty)")
        elif p <= 1 - threshold:
            verdict, basis, why = "mighty", "data", (f"P(unbounded) = {1 - p:.2f} >= {threshold:.2f}: the gap "
                                                     "persists or grows")
        else:
            verdict, basis, why = "indeterminate", "undecided", (
                f"P(bounded) = {p:.2f} lies between {1 - threshold:.2f} and {threshold:.2f}: the data cannot tell "
                "bounded from unbounded")
        if verdict != "mighty" and gap_limit not in (None, 0.0):
            gap_limit = None  # the best family's limit is not the verdict's
    return {"best_verdict": analytic.get("verdict"), "bounded": analytic.get("bounded"), "sup": analytic.get("sup"),
            "g_limit": analytic.get("g_limit"), "limit_kind": analytic.get("limit_kind"), "gap_limit": gap_limit,
            "p_bounded": p, "p_bounded_data": p_data, "threshold": threshold, "verdict": verdict, "basis": basis,
            "known_lo": kr.lo, "known_hi": kr.hi,
            "reason": f"{why}. Best family: {analytic.get('reason')}", "warnings": warnings,
            "method": "known range" if basis == "known-range" else (
                "bootstrap model averaging, stacking weights (held-out skill)" if stacked
                else "bootstrap model averaging, Akaike weights"),
            "growth_a": a, "growth_b": b}


def _finite(value) -> bool:
    try:
        return value is not None and bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False


def _bound_sentence(message: str, skip: str | None = None) -> str:
    """'k, m on its bound: ...' from a fit's message, leaving out a parameter already worded elsewhere."""
    start = message.rfind(".", 0, message.index("on its bound")) + 1
    names = [n.strip() for n in message[start:message.index("on its bound")].split(",") if n.strip() != skip]
    if not names:
        return ""
    return f"{', '.join(names)} on its bound: the data do not pin it down, the bound does"


def json_dict(value) -> dict:
    import json

    if isinstance(value, dict):
        return value
    try:
        out = json.loads(value) if isinstance(value, str) else {}
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def reconcile_metric(rows: list[dict]) -> dict:
    """One verdict per metric from its series (sources x axes), with any contradiction named."""
    labels = [f"{r['source']} vs {r['x_axis']}: {r['verdict']}" for r in rows]
    known = [r for r in rows if r["basis"] == "known-range"]
    decided = {r["verdict"] for r in rows if r["verdict"] in ("meek", "mighty")}
    ps = [r["p_bounded"] for r in rows if r.get("p_bounded") is not None and np.isfinite(r["p_bounded"])]
    warnings = sorted({w for r in rows for w in r.get("warnings") or []})
    if known:
        verdict, basis = "meek", "known-range"
        why = known[0]["reason"].split(":")[0] + ": meek by Theorem 2.4 on every source and axis"
        p = 1.0
    elif len(decided) == 1:
        verdict, basis = decided.pop(), "data"
        undecided = [r for r in rows if r["verdict"] == "indeterminate"]
        why = f"{verdict} on every series the data decide" + (
            f" ({len(undecided)} more undecided)" if undecided else "")
        p = float(np.mean(ps)) if ps else math.nan
    elif len(decided) == 2:
        verdict, basis = "indeterminate", "undecided"
        meek = [r for r in rows if r["verdict"] == "meek"]
        mighty = [r for r in rows if r["verdict"] == "mighty"]
        axes = {r["x_axis"] for r in meek} ^ {r["x_axis"] for r in mighty}
        cause = ("a release-date trend also carries the growth of investment and algorithms, so it can keep rising "
                 "while the curve in compute levels off; the compute fit is the one the theorems speak to"
                 if axes else "the sources cover different models and compute ranges")
        why = (f"contradiction: meek on {', '.join(r['source'] + ' vs ' + r['x_axis'] for r in meek)} but mighty on "
               f"{', '.join(r['source'] + ' vs ' + r['x_axis'] for r in mighty)}; likely cause: {cause}")
        p = float(np.mean(ps)) if ps else math.nan
    else:
        verdict, basis, why = "indeterminate", "undecided", "no series of this metric is decided by its data"
        p = float(np.mean(ps)) if ps else math.nan
    first = rows[0]
    return {"metric": first["metric"], "kind": first.get("kind"), "unit": first.get("unit"), "verdict": verdict,
            "basis": basis, "p_bounded": p, "reason": why, "series": labels, "warnings": warnings,
            "growth_a": first.get("growth_a"), "growth_b": first.get("growth_b")}
