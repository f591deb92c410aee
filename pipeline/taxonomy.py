"""Meek or mighty (Fogelson et al. 2026): analytic per fitted family, symbolic + numeric for any
closed-form metric, and with uncertainty from Akaike weights and bootstrap draws.

Theorem 2.4: a normal metric bounded above is meek. Theorem 2.5: for an unbounded normal metric
whose log-log slope g = f'(C)·C·ln C is eventually monotone, the gap under exponential growth tends
to ln(ln b / ln a) · lim g: zero (meek), a constant (mighty, the c·ln ln C boundary) or infinity.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipeline import store
from pipeline.curves import FAMILIES
from pipeline.schema import ScalegapError

DEFAULT_A, DEFAULT_B = 4.0, 4.0 * 2.828  # meek-math §8: a = g_h·g_a, b = a·g_i


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
def classify_family(family: str, params, higher_is_better: bool = True, a: float = DEFAULT_A, b: float = DEFAULT_B) -> dict:
    asym = FAMILIES[family].asymptotics(np.asarray(params, float), higher_is_better)
    if not asym.normal:
        return {"normal": False, "bounded": None, "sup": None, "g_limit": None, "limit_kind": None, "gap_limit": None,
                "verdict": "not-normal", "reason": "not a normal performance metric: " + asym.reason}
    g = 0.0 if asym.bounded else asym.g_limit
    verdict = "meek" if g == 0 else ("mighty-divergent" if math.isinf(g) else "mighty-constant-gap")
    return {"normal": True, "bounded": asym.bounded, "sup": asym.sup, "g_limit": g, "limit_kind": limit_kind(g),
            "gap_limit": gap_limit_constant(g, a, b), "verdict": verdict, "reason": asym.reason}


def probability_bounded(weights: dict[str, float], draws: dict[str, np.ndarray], higher_is_better: bool = True) -> float:
    """Σ_f w_f · (share of family f's bootstrap draws that are normal and bounded) / Σ w_f."""
    total, mass = 0.0, 0.0
    for family, w in weights.items():
        if w <= 0:
            continue
        sample = draws.get(family)
        if sample is None or len(sample) == 0:
            continue
        flags = []
        for p in sample:
            asym = FAMILIES[family].asymptotics(p, higher_is_better)
            flags.append(asym.normal and asym.bounded)
        total += w
        mass += w * float(np.mean(flags))
    return mass / total if total > 0 else math.nan


def verdict_with_uncertainty(p_bounded: float, threshold: float = 0.8) -> tuple[str, str]:
    if not np.isfinite(p_bounded):
        return "indeterminate", "no converged fit to judge from"
    if p_bounded >= threshold:
        return "meek", f"P(bounded) = {p_bounded:.2f} >= {threshold:.2f}: the gap closes"
    if 1 - p_bounded >= threshold:
        return "mighty", f"P(unbounded) = {1 - p_bounded:.2f} >= {threshold:.2f}: the gap persists or grows"
    return "indeterminate", (f"P(bounded) = {p_bounded:.2f}: neither side reaches {threshold:.2f}; the data cannot "
                             "distinguish bounded from unbounded")


def classify_stage(db, run_id: str, metrics=None, threshold: float = 0.8, a: float = DEFAULT_A, b: float = DEFAULT_B) -> dict:
    con = store.connect(db, read_only=True)
    try:
        selection = con.execute("SELECT * FROM selection WHERE run_id = ?", [run_id]).df()
        fits = con.execute("SELECT * FROM fits WHERE run_id = ?", [run_id]).df()
        params = con.execute("SELECT * FROM fit_params WHERE run_id = ?", [run_id]).df()
        draws = con.execute("SELECT metric, source, source_version, x_axis, family, params FROM fit_draws "
                            "WHERE run_id = ?", [run_id]).df()
        floors = con.execute("SELECT metric, source, source_version, max(floor) AS floor FROM observations "
                             "GROUP BY ALL").df()
    finally:
        con.close()
    if metrics:
        selection = selection[selection["metric"].isin(metrics)]
    keys = ["metric", "source", "source_version", "x_axis"]
    rows = []
    for _, sel in selection.iterrows():
        key = tuple(sel[k] for k in keys)
        hib = sel["kind"] != "loss"
        f = fits[(fits[keys] == pd.Series(key, index=keys)).all(axis=1) & fits["converged"]]
        weights = dict(zip(f["family"], f["weight"].astype(float), strict=True))
        d = draws[(draws[keys] == pd.Series(key, index=keys)).all(axis=1)]
        draw_map = {fam: np.stack(part["params"].to_numpy()) for fam, part in d.groupby("family")}
        p_bounded = probability_bounded(weights, draw_map, hib)
        verdict, why = verdict_with_uncertainty(p_bounded, threshold)
        best = sel["best_family"]
        analytic = {"verdict": None, "reason": "no converged fit"}
        if isinstance(best, str):
            pp = params[(params[keys] == pd.Series(key, index=keys)).all(axis=1) & (params["family"] == best)]
            vec = [float(pp.loc[pp["param"] == n, "value"].iloc[0]) for n in FAMILIES[best].param_names]
            analytic = classify_family(best, vec, hib, a, b)
        fl = floors[(floors["metric"] == key[0]) & (floors["source"] == key[1]) & (floors["source_version"] == key[2])]
        floor = float(fl["floor"].iloc[0]) if len(fl) and pd.notna(fl["floor"].iloc[0]) else None
        rows.append({**dict(zip(keys, key, strict=True)), "kind": sel["kind"], "unit": sel["unit"], "floor": floor,
                     "best_family": best,
                     "best_verdict": analytic.get("verdict"), "bounded": analytic.get("bounded"),
                     "sup": analytic.get("sup"), "g_limit": analytic.get("g_limit"),
                     "limit_kind": analytic.get("limit_kind"), "gap_limit": analytic.get("gap_limit"),
                     "p_bounded": p_bounded, "threshold": threshold, "verdict": verdict,
                     "reason": f"{why}. Best family: {analytic.get('reason')}", "method": "analytic+bootstrap",
                     "growth_a": a, "growth_b": b})
    frame = pd.DataFrame(rows)
    from pipeline import counterparts

    con = store.connect(db, read_only=True)
    try:  # the counterpart fits run before the write lock is taken, not while holding it
        pairs = counterparts.derive_pairs(con, run_id, frame, threshold, cache=counterparts.fit_cache(db))
    finally:
        con.close()
    with store.open_stage(db, run_id, "classify") as con:
        n = store.replace_run_rows(con, "classifications", run_id, frame)
        store.replace_run_rows(con, "counterparts", run_id, pairs)
    return {"classified": n, "counterparts": len(pairs),
            "verdicts": frame["verdict"].value_counts().to_dict() if len(frame) else {}}
