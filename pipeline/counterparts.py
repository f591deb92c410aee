"""Counterpart metrics (meek-math §6): the same capability measured on a bounded and an unbounded
scale can be meek on one and mighty on the other. For each fitted series we derive its partner,
fit it with the ordinary fitting engine, and classify both sides.

accuracy p      <-> nines -ln(1-p) and logit ln(p/(1-p))   (p chance-corrected: (p - floor)/(1 - floor))
win-rate w      <-> Elo and Bradley-Terry strength S = 10^(Elo/400)
P(success at L) <-> horizon H, via p = 1/(1 + (L/H)^beta), beta = ln 4 / ln(p50/p80 ratio)
"""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline import fitting, memo
from pipeline.taxonomy import classify_family, probability_bounded, verdict_with_uncertainty

KEYS = ["metric", "source", "source_version", "x_axis"]
CLIP = 1e-4                   # keep p away from 0 and 1 before nines/logit
ELO_PER_DECADE = 400.0
DEFAULT_RATIO_50_80 = 5.0     # METR: the 80% horizon is about 1/5 of the 50% horizon
FIXED_TASK_MINUTES = 60.0     # L: P(success) on a one-hour task
# a derived probability is bounded by construction (Thm 2.4), so only bounded families describe it
BOUNDED_FAMILIES = ["logistic", "gompertz"]


def chance_corrected(p: np.ndarray, floor: float | None) -> np.ndarray:
    floor = 0.0 if floor is None or not np.isfinite(floor) else float(floor)
    return np.clip((np.asarray(p, float) - floor) / (1.0 - floor), CLIP, 1 - CLIP)


def nines(p: np.ndarray) -> np.ndarray:
    return -np.log1p(-p)


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


def fit_and_classify(points: pd.DataFrame, metric: str, source: str, version: str, x_axis: str, kind: str,
                     unit: str, families: list[str], floor: float | None = None, ceiling: float | None = None,
                     bootstrap: int = 200, seed: int = 0, threshold: float = 0.8) -> dict:
    """Fit a derived series with fitting.fit_series and classify it (best family + P(bounded))."""
    frame = points[["model", "x", "y", "value_lo", "value_hi", "release_year", "cluster"]].copy()
    frame[["value_lo", "value_hi"]] = np.nan
    series = fitting.Series(metric, source, version, x_axis, kind, unit, floor, ceiling, frame)
    result = fitting.fit_series(series, families, bootstrap_draws=bootstrap, seed=seed, backtest_draws=20)
    converged = [f for f in result.fits if f.converged and f.params]
    if not converged:
        return {"metric": metric, "verdict": "indeterminate", "best_family": None, "p_bounded": math.nan,
                "best_verdict": None, "reason": "no family converged on the derived series"}
    weights = {f.family: f.weight for f in converged}
    draws = {f.family: f.draws for f in converged if f.draws is not None}
    p_bounded = probability_bounded(weights, draws, series.higher_is_better)
    verdict, why = verdict_with_uncertainty(p_bounded, threshold)
    best = max(converged, key=lambda f: f.weight)
    from pipeline.curves import FAMILIES

    vector = [best.params[n] if n in best.params else best.fixed[n] for n in FAMILIES[best.family].param_names]
    analytic = classify_family(best.family, vector, series.higher_is_better)
    return {"metric": metric, "verdict": verdict, "best_family": best.family, "p_bounded": p_bounded,
            "best_verdict": analytic["verdict"], "reason": f"{why}; {analytic['reason']}"}


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


def _side_from_row(row: pd.Series) -> dict:
    return {"metric": row["metric"], "verdict": row["verdict"], "best_family": row["best_family"],
            "p_bounded": row["p_bounded"], "best_verdict": row["best_verdict"], "reason": row["reason"]}


def pairs_for_series(row: pd.Series, points: pd.DataFrame, threshold: float = 0.8, bootstrap: int = 200,
                     seed: int = 0, cache: memo.Memo | None = None) -> list[dict]:
    """Counterpart pairs of one classified series (a row of `classifications`); `cache` serves the derived
    fits of an unchanged series from an earlier run."""
    cache = cache or memo.Memo(None, [])

    def fit_and_classify(*args, **kwargs) -> dict:
        return cache.call(_fit_and_classify_call, args, sorted(kwargs.items()))

    metric, kind, unit = row["metric"], row.get("kind"), row.get("unit")
    args = (row["source"], row["source_version"], row["x_axis"])
    common = {"bootstrap": bootstrap, "seed": seed, "threshold": threshold}
    own = _side_from_row(row)
    pairs = []
    if kind == "benchmark" and unit == "fraction":
        p = chance_corrected(points["y"], row.get("floor"))
        for name, transform in (("nines", nines), ("logit", logit)):
            derived = points.assign(y=transform(p))
            side = fit_and_classify(derived, f"{metric}:{name}", *args, "score", "score",
                                    ["linear_log", "log_log"], **common)
            pairs.append(("bounded", own, side, name))
    elif kind == "elo":
        elo_ref = float(np.median(points["y"]))
        derived = points.assign(y=win_rate(points["y"], elo_ref))
        wr = fit_and_classify(derived, f"{metric}:win_rate", *args, "benchmark", "fraction",
                              BOUNDED_FAMILIES, floor=0.0, ceiling=1.0, **common)
        pairs.append(("unbounded", wr, own, "elo"))
        strength = points.assign(y=bt_strength(points["y"] - elo_ref))
        bt = fit_and_classify(strength, f"{metric}:bt_strength", *args, "score", "score",
                              ["power_law", "linear_log"], **common)
        pairs.append(("unbounded", wr, bt, "bt_strength"))
    elif kind == "horizon":
        derived = points.assign(y=success_at_length(points["y"]))
        ps = fit_and_classify(derived, f"{metric}:p_success_{FIXED_TASK_MINUTES:g}min", *args, "benchmark",
                              "fraction", BOUNDED_FAMILIES, floor=0.0, ceiling=1.0, **common)
        pairs.append(("unbounded", ps, own, "horizon"))
    caveat = _levels_off_caveat(row, kind, unit, points)
    out = []
    for _, bounded, unbounded, label in pairs:
        out.append({"metric": metric, "source": row["source"], "source_version": row["source_version"],
                    "x_axis": row["x_axis"], "pair": label,
                    "bounded_metric": bounded["metric"], "bounded_verdict": bounded["verdict"],
                    "bounded_best_verdict": bounded["best_verdict"], "bounded_p": bounded["p_bounded"],
                    "unbounded_metric": unbounded["metric"], "unbounded_verdict": unbounded["verdict"],
                    "unbounded_best_verdict": unbounded["best_verdict"], "unbounded_p": unbounded["p_bounded"],
                    "takeaway": takeaway(bounded["metric"], bounded, unbounded["metric"], unbounded)
                    + (caveat.get(label, "") if unbounded["verdict"] != "meek" else "")})
    return out


def _levels_off_caveat(row: pd.Series, kind: str | None, unit: str | None, points: pd.DataFrame) -> dict[str, str]:
    """The unbounded side is mighty only if the bounded side reaches its limit (accuracy -> 1, Elo unbounded).
    When the series' own best fit levels off short of that, say what the counterpart would then be bounded by."""
    sup = row.get("sup")
    if sup is None or not isinstance(sup, int | float) or not math.isfinite(sup) or row.get("best_verdict") != "meek":
        return {}
    if kind == "benchmark" and unit == "fraction":
        p_sup = float(chance_corrected(np.array([sup]), row.get("floor"))[0])
        if p_sup >= 1 - 10 * CLIP:
            return {}
        return {name: f" The accuracy's best fit levels off at {sup:.3g}: if it does, {name} is bounded too "
                      f"(at {float(fn(np.array([p_sup]))[0]):.3g}) and its gap closes."
                for name, fn in (("nines", nines), ("logit", logit))}
    if kind == "elo":
        elo_ref = float(np.median(points["y"]))
        return {"bt_strength": f" The Elo's best fit levels off at {sup:.4g}: if it does, BT strength is bounded too "
                               f"(at {float(bt_strength(np.array([sup - elo_ref]))[0]):.3g}) and its gap closes."}
    return {}


def _fit_and_classify_call(args: tuple, kwargs: list) -> dict:
    return fit_and_classify(*args, **dict(kwargs))


def fit_cache(db) -> memo.Memo:
    here = Path(__file__).parent
    return memo.Memo(memo.cache_dir(db, "counterparts"),
                     [__file__, here / "fitting.py", here / "curves.py", here / "taxonomy.py"])


def derive_pairs(con: duckdb.DuckDBPyConnection, run_id: str, classifications: pd.DataFrame,
                 threshold: float = 0.8, bootstrap: int = 200, seed: int = 0,
                 cache: memo.Memo | None = None) -> pd.DataFrame:
    if classifications is None or len(classifications) == 0:
        return pd.DataFrame()
    points = con.execute("SELECT * FROM series_points WHERE run_id = ?", [run_id]).df()
    rows: list[dict] = []
    for _, row in classifications.iterrows():
        mask = (points[KEYS] == pd.Series([row[k] for k in KEYS], index=KEYS)).all(axis=1)
        part = points[mask].sort_values(["x", "model"]).reset_index(drop=True)
        if len(part) < fitting.MIN_POINTS:
            continue
        rows.extend(pairs_for_series(row, part, threshold, bootstrap, seed, cache))
    return pd.DataFrame(rows)
