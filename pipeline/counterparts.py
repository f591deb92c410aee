"""Counterpart metrics (meek-math §6): the same capability measured on a bounded and an unbounded
scale can be meek on one and mighty on the other. A counterpart's verdict is derived from its
transform of the metric's own known range and fitted curve, never assumed from the scale's name:
nines of an accuracy that levels off at c < 1 are bounded by -log10(1 - c), so meek; BT strength of
an Elo capped at perfect play is bounded too.

accuracy p      <-> nines -ln(1-p) and logit ln(p/(1-p))   (p chance-corrected: (p - floor)/(1 - floor))
win-rate w      <-> Elo and Bradley-Terry strength S = 10^(Elo/400)
P(success at L) <-> horizon H, via p = 1/(1 + (L/H)^beta), beta = ln 4 / ln(p50/p80 ratio)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipeline.curves import FAMILIES

KEYS = ["metric", "source", "source_version", "x_axis"]
CLIP = 1e-4                   # keep p away from 0 and 1 before nines/logit
ELO_PER_DECADE = 400.0
DEFAULT_RATIO_50_80 = 5.0     # METR: the 80% horizon is about 1/5 of the 50% horizon
FIXED_TASK_MINUTES = 60.0     # L: P(success) on a one-hour task
CEILING_TOL = 1e-6            # a drawn ceiling this close to 1 is the known maximum: nines unbounded


def chance_corrected(p: np.ndarray, floor: float | None) -> np.ndarray:
    floor = 0.0 if floor is None or not np.isfinite(floor) else float(floor)
    return np.clip((np.asarray(p, float) - floor) / (1.0 - floor), CLIP, 1 - CLIP)


def nines(p: np.ndarray) -> np.ndarray:
    """-log10(1 - p): 0.9 -> 1 nine, 0.99 -> 2."""
    return -np.log10(1.0 - np.asarray(p, float))


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def win_rate(elo: np.ndarray, elo_ref: float) -> np.ndarray:
    return 1.0 / (1.0 + 10.0 ** (-(np.asarray(elo, float) - elo_ref) / ELO_PER_DECADE))


def bt_strength(elo: np.ndarray) -> np.ndarray:
    return 10.0 ** (np.asarray(elo, float) / ELO_PER_DECADE)


def metr_beta(ratio_50_80: float = DEFAULT_RATIO_50_80) -> float:
    """Slope of METR's logistic in ln(task length): p = 1/(1+(L/H50)^beta) gives p = 0.8 at H50/ratio."""
    return math.log(4.0) / math.log(ratio_50_80)


def success_at_length(horizon_minutes: np.ndarray, length_minutes: float = FIXED_TASK_MINUTES,
                      ratio_50_80: float = DEFAULT_RATIO_50_80) -> np.ndarray:
    beta = metr_beta(ratio_50_80)
    return 1.0 / (1.0 + (length_minutes / np.asarray(horizon_minutes, float)) ** beta)


def takeaway(bounded_name: str, bounded: dict, unbounded_name: str, unbounded: dict) -> str:
    def phrase(side: dict) -> str:
        best = side.get("best_verdict") or side.get("verdict")
        return {"meek": "the gap closes", "mighty-constant-gap": "the gap settles at a constant",
                "mighty-divergent": "it grows without bound", "mighty": "the gap persists or grows",
                "not-normal": "it does not rise with compute",
                }.get(side["verdict"] if side["verdict"] in ("meek", "indeterminate") and best != "not-normal"
                      else best, "the data cannot tell")
    left = phrase(bounded) if bounded["verdict"] != "indeterminate" else "the data cannot tell"
    right = phrase(unbounded)
    return f"On {bounded_name} {left}; on {unbounded_name} {right}."


def _verdict(p_bounded: float, threshold: float) -> str:
    if not np.isfinite(p_bounded):
        return "indeterminate"
    if p_bounded >= threshold:
        return "meek"
    return "mighty" if p_bounded <= 1 - threshold else "indeterminate"


def _ceiling_draws(fits: dict, best_family: str | None, higher_is_better: bool) -> np.ndarray:
    """Ceilings of the best bounded family's increasing, converged draws (its point value if no draws)."""
    fit = fits.get(best_family) if best_family else None
    if fit is None or not fit.params:
        bounded = [f for f in fits.values() if f.params and "ceiling" in f.params]
        fit = max(bounded, key=lambda f: f.weight) if bounded else None
    if fit is None:
        return np.array([])
    if fit.family == "exp_power_law":
        return np.array([1.0])  # exp(a k^b) -> 1: the known maximum
    if "ceiling" not in fit.params:
        return np.array([])
    i = FAMILIES[fit.family].param_names.index("ceiling")
    if fit.draws is None or not len(fit.draws):
        return np.array([fit.params["ceiling"]])
    ok = fit.draw_ok if fit.draw_ok is not None else np.ones(len(fit.draws), bool)
    normal = np.array([FAMILIES[fit.family].asymptotics(d, higher_is_better).normal for d in fit.draws])
    keep = ok & normal
    return fit.draws[keep, i] if keep.any() else np.array([fit.params["ceiling"]])


def _side(metric: str, verdict: str, p: float, basis: str, best_verdict: str | None, reason: str) -> dict:
    return {"metric": metric, "verdict": verdict, "p_bounded": p, "basis": basis, "best_verdict": best_verdict,
            "reason": reason}


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")) if text else ""


def pairs_for_series(row: dict, fits: dict, points: pd.DataFrame, threshold: float = 0.8) -> list[dict]:
    """Counterpart pairs of one classified series (a `classifications` row and its FitResults by family)."""
    metric, kind, unit = row["metric"], row.get("kind"), row.get("unit")
    own = _side(metric, row["verdict"], row["p_bounded"], row["basis"], row.get("best_verdict"), row["reason"])
    pairs = []
    if unit == "fraction":
        floor = row.get("floor")
        ceilings = _ceiling_draws(fits, row.get("best_family"), True)
        corrected = chance_corrected(ceilings, floor) if len(ceilings) else ceilings
        reach = (np.asarray(ceilings) >= 1 - CEILING_TOL) if len(ceilings) else np.array([])
        p = float(1 - reach.mean()) if len(reach) else math.nan
        level = float(np.median(corrected[~reach])) if len(reach) and (~reach).any() else math.nan
        for name, fn in (("nines", nines), ("logit", logit)):
            bound = float(fn(np.array([level]))[0]) if np.isfinite(level) else math.nan
            why = (f"derived from the accuracy's fitted ceiling: {p:.0%} of its bootstrap draws level off below 1"
                   + (f" (median {level:.3g} after chance correction, so {name} is bounded near {bound:.3g})"
                      if np.isfinite(bound) else "") + f"; the rest reach 1, where {name} grows like ln C")
            side = _side(f"{metric}:{name}", _verdict(p, threshold), p, "derived",
                         "meek" if p >= threshold else "mighty-divergent" if p <= 1 - threshold else None, why)
            pairs.append((own, side, name))
    elif kind == "elo":
        capped = row.get("basis") == "known-range"
        wr = _side(f"{metric}:win_rate", "meek", 1.0, "known-range", "meek",
                   "a win rate lies in [0, 1] by construction")
        pairs.append((wr, own, "elo"))
        if capped:
            bt = _side(f"{metric}:bt_strength", "meek", 1.0, "derived", "meek",
                       "Elo relative to perfect play is at most 0, so BT strength 10^(Elo/400) is at most 1")
        else:
            p = row["p_bounded"]
            bt = _side(f"{metric}:bt_strength", row["verdict"], p, "derived", row.get("best_verdict"),
                       "BT strength 10^(Elo/400) is bounded exactly when the Elo is: the Elo's verdict carries over")
        pairs.append((wr, bt, "bt_strength"))
    elif kind == "horizon":
        ps = _side(f"{metric}:p_success_{FIXED_TASK_MINUTES:g}min", "meek", 1.0, "known-range", "meek",
                   "a probability of success lies in [0, 1] by construction")
        pairs.append((ps, own, "horizon"))
    out = []
    for bounded, unbounded, label in pairs:
        out.append({"metric": metric, "source": row["source"], "source_version": row["source_version"],
                    "x_axis": row["x_axis"], "pair": label,
                    "bounded_metric": bounded["metric"], "bounded_verdict": bounded["verdict"],
                    "bounded_best_verdict": bounded["best_verdict"], "bounded_p": bounded["p_bounded"],
                    "bounded_basis": bounded["basis"],
                    "unbounded_metric": unbounded["metric"], "unbounded_verdict": unbounded["verdict"],
                    "unbounded_best_verdict": unbounded["best_verdict"], "unbounded_p": unbounded["p_bounded"],
                    "unbounded_basis": unbounded["basis"],
                    "takeaway": takeaway(bounded["metric"], bounded, unbounded["metric"], unbounded)
                    + " " + _sentence(unbounded["reason"] if unbounded["basis"] == "derived" else bounded["reason"])})
    return out
