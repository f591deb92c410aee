"""Against the published record: what scalegap computed in one run, beside what METR and Epoch published, with
the reason for each difference written from the numbers. Reads the store only; the estimates themselves come
from the stages (horizons, fit, gaps). Each row is a plain dict with the keys of ROW_KEYS.

Rows, where the run holds them:
- METR's TH1.1 doubling time of the 50% horizon since 2023, recomputed by the horizons stage from METR's own
  published horizons (horizon_trend under source metr_time_horizon), against the figure METR publishes;
- per model, our 50% horizon from METR's pre-release per-run data (table horizons) against METR's published
  one for the same release, paired through the model registry (model_aliases), with a summary row first;
- Chinchilla: E and the compute exponent of our saturating fit of loss against training compute on the
  compute-efficient frontier, against Hoffmann et al. (2022) and Epoch's refit (Besiroglu et al. 2024)
  reduced to the same one-variable law (`compute_optimal_law`);
- the open-weights lag on ECI (table gap_summary) against Epoch's published figure (gaps.PUBLISHED_LAGS).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from pipeline import gaps as G
from pipeline import horizons as H

ROW_KEYS = ("group", "quantity", "unit", "ours", "ours_lo", "ours_hi", "interval", "published", "published_lo",
            "published_hi", "reference", "agrees", "reason")

# The per-run data is a pre-release cut of METR's TH1.0 runs, so METR's TH1.0 results are the like-for-like
# comparison (same task suite, less SWAA); another stored version is used only when that one is absent.
PER_MODEL_VERSION = "METR-Horizon-v1"
PER_MODEL_REFERENCE = {"METR-Horizon-v1": "METR TH1.0 (Kwa et al. 2025)"}
# What the per-run versions are, where PROVENANCE says (the one bundled is a pre-publication cut of TH1.0).
RUNS_DESCRIPTION = {"2025-02-27": "METR's pre-release runs of February 2025"}
SWAA_MINUTES = 0.5   # METR's SWAA tasks take humans seconds; a file whose shortest task is longer lacks them

CHINCHILLA_SOURCE = "chinchilla_hoffmann2022"
CHINCHILLA_FAMILY = "saturating_loss"
# L(N, D) = E + A / N^alpha + B / D^beta, as published. Hoffmann et al. (2022), Approach 3 (the rounded values
# of the paper's text; no interval is given for them). Besiroglu, Erdil, Barnett & You (2024), "Chinchilla
# Scaling: A replication attempt", arXiv 2404.10102: estimates with standard errors from 4,000 bootstraps.
HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
BESIROGLU = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
BESIROGLU_SE = {"E": 0.03, "A": 124.58, "B": 1293.23, "alpha": 0.02, "beta": 0.02}
CHINCHILLA_REFERENCES = (("Hoffmann et al. 2022, Approach 3", HOFFMANN, None),
                         ("Besiroglu et al. 2024 (Epoch), ±1.96 SE", BESIROGLU, BESIROGLU_SE))
Z95 = 1.959963984540054


def compute_optimal_law(E: float, A: float, B: float, alpha: float, beta: float) -> dict:
    """The two-variable law reduced to the one-variable law our loss fit has, L*(C) = E + 10^log10_A * C^-gamma.

    With C = 6 N D, minimise A N^-alpha + B D^-beta over N at fixed C (D = C / 6N): the optimum has
    alpha A N^-alpha = beta B D^-beta, i.e. N* = G (C/6)^(beta/(alpha+beta)) with G = (alpha A / (beta B))^(1/(alpha+beta)),
    D* = (C/6) / N*. Both terms then fall as (C/6)^-gamma with gamma = alpha beta / (alpha + beta), and
    L*(C) = E + K (C/6)^-gamma, K = A G^-alpha (1 + alpha/beta). So E carries over unchanged, the compute exponent
    is gamma, and our log10_A (C in FLOP) is log10 K + gamma log10 6."""
    s = alpha + beta
    gamma = alpha * beta / s
    g = (alpha * A / (beta * B)) ** (1.0 / s)
    k = A * g ** (-alpha) * (1.0 + alpha / beta)
    return {"E": E, "gamma": gamma, "log10_A": math.log10(k) + gamma * math.log10(6.0)}


def gamma_se(alpha: float, beta: float, se_alpha: float, se_beta: float) -> float:
    """Standard error of gamma = alpha beta / (alpha + beta) by the delta method, alpha and beta taken as independent
    (d gamma / d alpha = (beta / (alpha + beta))^2, and symmetrically)."""
    s = alpha + beta
    return math.hypot((beta / s) ** 2 * se_alpha, (alpha / s) ** 2 * se_beta)


def published_rows(con, run_id: str) -> list[dict]:
    """Every comparison the run's results allow, as plain rows (keys ROW_KEYS); [] when it holds none.
    `con`: a read-only duckdb connection to the store."""
    rows: list[dict] = []
    for part in (_metr_trend, _per_model, _chinchilla, _eci_lag):
        rows.extend(part(con, run_id))
    return [{k: _plain(r.get(k)) for k in ROW_KEYS} for r in rows]


# ------------------------------------------------------------------------------- METR doubling time
def _metr_trend(con, run_id: str) -> list[dict]:
    trend = con.execute("""
        SELECT * FROM horizon_trend WHERE run_id = ? AND source = ? AND starts_with(source_version, ?)
          AND metric = 'metr_p50_minutes' AND x_axis = 'date'
        ORDER BY source_version DESC LIMIT 1""", [run_id, H.PUBLISHED_SOURCE, H.PUBLISHED_VERSIONS]).df()
    if trend.empty:
        return []
    t = trend.iloc[0]
    version = t["source_version"]
    ours, lo, hi = float(t["doubling_days"]), float(t["lo"]), float(t["hi"])
    n = int(t["n_models"])
    published = H.PUBLISHED_DOUBLING.get(version)
    row = {"group": "METR time horizons", "quantity": "50% horizon doubling time since 2023 (METR TH1.1)",
           "unit": "days", "ours": ours, "ours_lo": lo, "ours_hi": hi, "interval": "95%",
           "reference": f"METR TH1.1 results of {version.removeprefix(H.PUBLISHED_VERSIONS).strip('-')}"}
    method = f"OLS of log2 p50 on release date, the {n} record-setting models released since 2023"
    if published is None:
        return [{**row, "agrees": "no published figure",
                 "reason": f"{method}, on METR's published horizons; METR's figure for {version} is not on record here."}]
    p, p_lo, p_hi = published
    diff = ours - p
    if abs(diff) < 0.5:
        point = f"Same horizons, same method ({method}): the points agree to {abs(diff):.2g} days."
    else:
        point = (f"Same horizons ({method}), yet {abs(diff):.1f} days {'longer' if diff > 0 else 'shorter'} than "
                 "METR's: the models or dates METR fitted differ from the stored ones.")
    interval = (f"Our interval resamples the models; METR's resamples tasks and runs, which we lack: ours is "
                f"{(hi - lo) / (p_hi - p_lo):.2f}x as wide.")
    return [{**row, "published": p, "published_lo": p_lo, "published_hi": p_hi,
             "agrees": _agreement(lo, hi, p, p_lo, p_hi), "reason": f"{point} {interval}"}]


# ------------------------------------------------------------------------------- per-model horizons
def _per_model(con, run_id: str) -> list[dict]:
    ours = con.execute("""
        SELECT h.model AS alias, h.source, h.source_version, h.p50, h.p50_lo, h.p50_hi, h.p80, h.slope,
               h.extrapolated, a.model AS registry_model, a.release_key
        FROM horizons h LEFT JOIN model_aliases a ON a.source = h.source AND a.alias = h.model
        WHERE h.run_id = ? ORDER BY h.release_date, h.model""", [run_id]).df()
    if ours.empty:
        return []
    versions = [v for (v,) in con.execute("SELECT DISTINCT source_version FROM observations WHERE source = ? "
                                          "AND metric = 'metr_p50_minutes' ORDER BY source_version DESC",
                                          [H.PUBLISHED_SOURCE]).fetchall()]
    if not versions:
        return []
    version = PER_MODEL_VERSION if PER_MODEL_VERSION in versions else versions[0]
    theirs = con.execute("""
        SELECT o.model AS key, o.metric, o.value, o.value_lo, o.value_hi, a.model AS registry_model, a.release_key
        FROM observations o LEFT JOIN model_aliases a ON a.source = o.source AND a.alias = o.model
        WHERE o.source = ? AND o.source_version = ? AND o.metric IN ('metr_p50_minutes', 'metr_p80_minutes')
        ORDER BY o.model, o.metric""", [H.PUBLISHED_SOURCE, version]).df()
    wide = theirs.pivot_table(index=["key"], columns="metric", values=["value", "value_lo", "value_hi"],
                              aggfunc="first")
    wide.columns = [f"{m.removeprefix('metr_').removesuffix('_minutes')}_{v}" for v, m in wide.columns]
    keys = theirs.drop_duplicates("key").set_index("key")[["registry_model", "release_key"]]
    theirs = keys.join(wide).reset_index()
    runs_version = ours["source_version"].iloc[0]
    shortest, n_tasks = con.execute("SELECT min(human_minutes), count(DISTINCT task_id) FROM metr_runs "
                                    "WHERE source = ? AND source_version = ? AND alias <> 'human'",
                                    [ours["source"].iloc[0], runs_version]).fetchone()
    pairs = _pair_releases(ours, theirs)
    reference = PER_MODEL_REFERENCE.get(version, f"METR, {version} results file")
    usable = pairs[~pairs["extrapolated"].astype(bool) & pairs["p50_value"].notna() & (pairs["p50"] > 0)].copy()
    if usable.empty:
        return []
    # METR's slope from its own p50 and p80: log2(p80 / p50) = ln 4 / slope for P = sigmoid(a + slope log2 t)
    usable["their_slope"] = np.log(4.0) / np.log2(usable["p80_value"] / usable["p50_value"])
    usable["ratio"] = usable["p50"] / usable["p50_value"]
    usable["slope_ratio"] = usable["slope"] / usable["their_slope"]
    usable["p80_ratio"] = usable["p80"] / usable["p80_value"]
    runs = RUNS_DESCRIPTION.get(runs_version, f"the per-run data of {runs_version}")
    rows = [_per_model_summary(usable, pairs, reference, runs, shortest, n_tasks)]
    for r in usable.to_dict("records"):
        how = "same release" if r["matched_by"] == "release" else "same registry model"
        rows.append({
            "group": "METR time horizons", "quantity": f"50% horizon, {r['alias']}",
            "unit": "minutes", "ours": r["p50"], "ours_lo": r["p50_lo"], "ours_hi": r["p50_hi"], "interval": "95%",
            "published": r["p50_value"], "published_lo": r["p50_value_lo"], "published_hi": r["p50_value_hi"],
            "reference": reference.split(" (")[0],
            "agrees": _agreement(r["p50_lo"], r["p50_hi"], r["p50_value"], r["p50_value_lo"], r["p50_value_hi"]),
            "reason": (f"Ours/METR {r['ratio']:.2f}; slope {r['slope']:.2f} against METR's {r['their_slope']:.2f} "
                       f"(from its p80/p50): {r['slope_ratio']:.2f}x as steep. METR's {r['key']}, the {how}."),
        })
    return rows


def _pair_releases(ours: pd.DataFrame, theirs: pd.DataFrame) -> pd.DataFrame:
    """Our per-run aliases beside METR's published keys, through the registry: the same release (release_key)
    first; then, for what is left, the same registry model when exactly one unpaired key of that model remains
    on each side (METR's TH1.0 file calls the June 2024 Claude 3.5 Sonnet just claude_3_5_sonnet)."""
    by_release = theirs.dropna(subset=["release_key"]).drop_duplicates("release_key").set_index("release_key")
    out = []
    used: set[str] = set()
    for r in ours.to_dict("records"):
        hit = by_release.loc[r["release_key"]] if r["release_key"] in by_release.index else None
        if hit is not None:
            used.add(hit["key"])
            out.append({**r, **{k: v for k, v in hit.items() if k not in ("registry_model",)}, "matched_by": "release"})
        else:
            out.append({**r, "key": None, "matched_by": None})
    for r in out:
        if r["key"] is not None or not isinstance(r["registry_model"], str):
            continue
        same_ours = [o for o in out if o["key"] is None and o["registry_model"] == r["registry_model"]]
        same_theirs = theirs[(theirs["registry_model"] == r["registry_model"]) & ~theirs["key"].isin(used)]
        if len(same_ours) == 1 and len(same_theirs) == 1:
            hit = same_theirs.iloc[0]
            used.add(hit["key"])
            r.update({k: v for k, v in hit.items() if k not in ("registry_model", "release_key")})
            r["matched_by"] = "model"
    frame = pd.DataFrame(out)
    for column in ("p50_value", "p50_value_lo", "p50_value_hi", "p80_value"):
        if column not in frame:
            frame[column] = np.nan
    return frame[frame["key"].notna()].reset_index(drop=True)


def _per_model_summary(usable: pd.DataFrame, pairs: pd.DataFrame, reference: str, runs: str,
                       shortest: float | None, n_tasks: int | None) -> dict:
    n = len(usable)
    ratio, slope, p80 = usable["ratio"], usable["slope_ratio"], usable["p80_ratio"]
    overlap = sum(_agreement(r["p50_lo"], r["p50_hi"], r["p50_value"], r["p50_value_lo"], r["p50_value_hi"])
                  .startswith("yes") for r in usable.to_dict("records"))
    no_swaa = shortest is not None and shortest > SWAA_MINUTES
    tasks = f"{n_tasks} tasks, the shortest {shortest:.2g} min" if shortest is not None else "tasks unknown"
    if no_swaa:
        source = f"Ours come from {runs} without the short SWAA tasks ({tasks}); METR's fits include SWAA tasks of seconds."
    else:
        source = f"Ours come from {runs} ({tasks}), short tasks included."
    flatter = int((slope < 1).sum())
    halved = int(((slope >= 0.35) & (slope <= 0.65)).sum())
    spread = f"{slope.min():.2f}-{slope.max():.2f}x as steep"
    if flatter == n and no_swaa:
        why = (f"Consistent with that, every slope is flatter than METR's ({spread}, roughly halved for {halved} of "
               f"{n}): with nothing short to pin the curve it flattens, which shortens p80 for {int((p80 < 1).sum())} "
               f"of {n} ({p80.min():.2f}-{p80.max():.2f}x METR's) while p50 moves either way "
               f"({ratio.min():.2f}-{ratio.max():.2f}x).")
    elif no_swaa:
        why = (f"But the slopes do not flatten consistently ({flatter} of {n} flatter, {spread}), so the missing "
               "short tasks do not explain the differences alone.")
    else:
        why = (f"{flatter} of {n} slopes are flatter than METR's ({spread}); with short tasks present, the task suite "
               "and METR's later re-estimates are the likelier cause.")
    skipped = pairs[pairs["extrapolated"].astype(bool)]["alias"].tolist()
    tail = f" Not compared: {', '.join(skipped)} (p50 below the shortest task)." if skipped else ""
    return {"group": "METR time horizons", "quantity": f"50% horizon, ours/METR, median of {n} models",
            "unit": "ratio", "ours": float(ratio.median()), "ours_lo": float(ratio.min()),
            "ours_hi": float(ratio.max()), "interval": "range", "published": 1.0, "reference": reference,
            "agrees": f"{overlap} of {n} overlap", "reason": f"{source} {why}{tail}"}


# ------------------------------------------------------------------------------- Chinchilla
def _chinchilla(con, run_id: str) -> list[dict]:
    params = con.execute("""
        SELECT metric, param, value, lo95, hi95 FROM fit_params
        WHERE run_id = ? AND source = ? AND family = ? AND x_axis = 'compute' ORDER BY metric, param""",
                         [run_id, CHINCHILLA_SOURCE, CHINCHILLA_FAMILY]).df()
    if params.empty:
        return []
    fits = {m: g.set_index("param") for m, g in params.groupby("metric")}
    n = dict(con.execute("SELECT metric, n FROM selection WHERE run_id = ? AND source = ? AND x_axis = 'compute'",
                         [run_id, CHINCHILLA_SOURCE]).fetchall())
    main = "loss_frontier" if "loss_frontier" in fits else next(iter(fits))
    other = next((m for m in fits if m != main), None)
    ours = fits[main]
    series = (f"our fit to the compute-efficient frontier ({n.get(main, '?')} runs)" if main == "loss_frontier"
              else f"our fit to all {n.get(main, '?')} runs")
    rows = []
    for name, law, se in CHINCHILLA_REFERENCES:
        reduced = compute_optimal_law(**law)
        for param, theirs_key in (("E", "E"), ("alpha", "gamma")):
            if param not in ours.index:
                continue
            v, lo, hi = (float(ours.loc[param, c]) for c in ("value", "lo95", "hi95"))
            p = reduced[theirs_key]
            if se is None:
                p_lo = p_hi = None
            else:
                s = se["E"] if param == "E" else gamma_se(law["alpha"], law["beta"], se["alpha"], se["beta"])
                p_lo, p_hi = p - Z95 * s, p + Z95 * s
            verdict = _agreement(lo, hi, p, p_lo, p_hi)
            side = f"{abs(v - p):.3f} {'above' if v > p else 'below'} theirs"
            if param == "E":
                quantity = "Chinchilla irreducible loss E"
                first = f"E, the asymptote of both laws, from {series}: {side}."
            else:
                quantity = "Chinchilla compute exponent αβ/(α+β)"
                first = (f"On the compute-optimal frontier L(N, D) becomes E + K·C^-γ, γ = αβ/(α+β) = "
                         f"{p:.3f}, our alpha; {series}: {side}.")
            if law is HOFFMANN and not verdict.startswith("yes"):
                second = ("Besiroglu et al. show Hoffmann's rounded estimates misfit these same extracted points "
                          "(optimiser stopped early).")
            elif law is HOFFMANN:
                second = "The points are Epoch's extraction from Hoffmann's figure, a subset of the runs."
            else:
                second = "Same extracted points, but Epoch fits L(N, D) in two variables and we fit L(C)."
            if other is not None and param in fits[other].index and law is not HOFFMANN:
                o = fits[other].loc[param]
                second += (f" All {n.get(other, '?')} runs, off the frontier too: {o['value']:.3f} "
                           f"({o['lo95']:.3f}-{o['hi95']:.3f}).")
            rows.append({"group": "Chinchilla loss against compute", "quantity": quantity, "unit": "",
                         "ours": v, "ours_lo": lo, "ours_hi": hi, "interval": "95%", "published": p,
                         "published_lo": p_lo, "published_hi": p_hi, "reference": name, "agrees": verdict,
                         "reason": f"{first} {second}"})
    return rows


# ------------------------------------------------------------------------------- ECI lag
def _eci_lag(con, run_id: str) -> list[dict]:
    summary = con.execute("""
        SELECT * FROM gap_summary WHERE run_id = ? AND metric = 'eci' AND comparison = 'open_vs_closed'
        ORDER BY source_version DESC LIMIT 1""", [run_id]).df()
    if summary.empty or pd.isna(summary.iloc[0]["mean_months"]):
        return []
    s = summary.iloc[0]
    who, p, p_lo, p_hi, _what = G.PUBLISHED_LAGS[0]
    v, lo, hi = float(s["mean_months"]), float(s["mean_months_lo"]), float(s["mean_months_hi"])
    diff = v - p
    measure = (f"Epoch's measure (mean horizontal distance between the open and closed best-to-date lines) on the "
               f"ECI file of {s['source_version']}")
    rules = ("Epoch counts a catch-up within noise, we require reaching the earlier best (which lengthens ours), "
             "and ECI is refitted with every release of Epoch's data")
    if abs(diff) < 0.25:
        reason = f"{measure} gives the same lag to {abs(diff):.2f} months, though {rules}."
    else:
        reason = (f"{measure}: {abs(diff):.1f} months {'longer' if diff > 0 else 'shorter'} than Epoch's. {rules}"
                  + (", so a longer lag is expected." if diff > 0 else "; ours is shorter despite that rule."))
    return [{"group": "Epoch Capabilities Index", "quantity": "open-weights lag on ECI", "unit": "months",
             "ours": v, "ours_lo": lo, "ours_hi": hi, "interval": f"{G.BAND[1] - G.BAND[0]:g}%", "published": p,
             "published_lo": p_lo, "published_hi": p_hi, "reference": who.split(" ('")[0],
             "agrees": _agreement(lo, hi, p, p_lo, p_hi), "reason": reason}]


# ------------------------------------------------------------------------------- helpers
def _agreement(lo, hi, point, p_lo=None, p_hi=None) -> str:
    """With a published interval: do the two intervals overlap? Without one: is the published point inside ours?
    The answer names the test it used."""
    if not all(_finite(v) for v in (lo, hi, point)):
        return "cannot tell"
    if _finite(p_lo) and _finite(p_hi):
        return "yes (overlap)" if lo <= p_hi and hi >= p_lo else "no (apart)"
    return "yes (inside ours)" if lo <= point <= hi else "no (outside ours)"


def _finite(value) -> bool:
    return value is not None and isinstance(value, int | float | np.floating) and math.isfinite(value)


def _plain(value):
    """Numbers as Python floats (NaN as None), everything else as it is: rows a template or json can take."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value
