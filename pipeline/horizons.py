"""METR-style task horizons from per-run data: per-model logistic fits, hierarchical bootstrap, trend.

Method (Kwa et al. 2025, METR eval-analysis-public, `params.yaml` -> figs.wrangle_logistic.headline):
per agent, P(success) = sigmoid(intercept + slope * log2(human_minutes)), fitted to `score_binarized`
with `invsqrt_task_weight` sample weights (the headline weighting) by sklearn
`LogisticRegression(C=1/regularization)` with regularization = 0.1. sklearn's lbfgs objective is
C * sum(w * logloss) + slope^2 / 2 with the intercept unpenalised, i.e. sum(w * logloss) +
(regularization / 2) * slope^2; we minimise exactly that by Newton's method in numpy (later METR
reports, TH1.1 `fig_params`, moved to regularization 1e-5: pass it to compare).
The p-horizon is 2^((logit(p) - intercept) / slope) minutes.

Bootstrap as METR does it: resample task families, then tasks within each drawn family, then runs
within each (task, agent); one seeded generator for all draws. Resampled rows keep their original
weights (METR does not renormalise). Everything is vectorised over draws: a count matrix
(draws x rows) becomes a weight matrix over (agent, task, success) cells, and one batched Newton
solve fits every draw of an agent at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from pipeline.schema import InputError, conform, decimal_year, validate_observations

SOURCE = "scalegap_horizons_from_runs"
METR_REGULARIZATION = 0.1
DEFAULT_WEIGHTING = "invsqrt_task_weight"
WEIGHTINGS = ("invsqrt_task_weight", "equal_task_weight")
CITATION = ("scalegap: logistic fits to METR per-run data (method of Kwa et al. 2025, arXiv 2503.14499), "
            "hierarchical bootstrap 95%")
LOGIT = {0.5: 0.0, 0.8: float(np.log(4.0))}
RUN_COLUMNS = ("task_id", "task_family", "alias", "score_binarized", "human_minutes")



# ------------------------------------------------------------------------------- logistic fit
def fit_logistic_batch(log2_minutes: np.ndarray, success: np.ndarray, weights: np.ndarray,
                       regularization: float = METR_REGULARIZATION, max_iter: int = 100,
                       tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted L2-on-slope logistic regression for many weight vectors at once.

    `log2_minutes`, `success`: (n,); `weights`: (draws, n). Returns (intercept, slope, converged),
    each (draws,). Draws whose weighted data hold no success or no failure are NaN (METR skips them).
    """
    x = np.asarray(log2_minutes, dtype=float)
    y = np.asarray(success, dtype=float)
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    lam = float(regularization)
    total = w.sum(axis=1)
    succ = w @ y
    both = (succ > 0) & (succ < total)
    mean = np.clip(np.where(total > 0, succ / np.where(total > 0, total, 1), 0.5), 1e-6, 1 - 1e-6)
    a = np.log(mean / (1 - mean))
    b = np.zeros_like(a)
    wx, wxx = w * x, w * x * x

    def objective(a_: np.ndarray, b_: np.ndarray) -> np.ndarray:
        eta = a_[:, None] + b_[:, None] * x
        # log(1 + e^eta) - y*eta, computed stably
        loss = np.logaddexp(0.0, eta) - y * eta
        return (w * loss).sum(axis=1) + 0.5 * lam * b_ * b_

    converged = np.zeros(a.shape, dtype=bool)
    current = objective(a, b)
    active = both.copy()
    for _ in range(max_iter):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        eta = a[idx, None] + b[idx, None] * x
        p = 1.0 / (1.0 + np.exp(-eta))
        r = p - y
        v = p * (1.0 - p)
        g_a = (w[idx] * r).sum(axis=1)
        g_b = (wx[idx] * r).sum(axis=1) + lam * b[idx]
        h_aa = (w[idx] * v).sum(axis=1)
        h_ab = (wx[idx] * v).sum(axis=1)
        h_bb = (wxx[idx] * v).sum(axis=1) + lam
        det = h_aa * h_bb - h_ab * h_ab
        det = np.where(np.abs(det) > 1e-300, det, 1e-300)
        step_a = (h_bb * g_a - h_ab * g_b) / det
        step_b = (h_aa * g_b - h_ab * g_a) / det
        # Backtracking keeps Newton monotone on nearly separable draws.
        t = np.ones(len(idx))
        new_a, new_b = a[idx] - step_a, b[idx] - step_b
        new_obj = objective(new_a, new_b) if len(idx) == len(a) else _objective_rows(w[idx], x, y, lam, new_a, new_b)
        for _halving in range(30):
            worse = ~(new_obj <= current[idx] + 1e-12)
            if not worse.any():
                break
            t = np.where(worse, t / 2, t)
            new_a = np.where(worse, a[idx] - t * step_a, new_a)
            new_b = np.where(worse, b[idx] - t * step_b, new_b)
            new_obj = np.where(worse, _objective_rows(w[idx], x, y, lam, new_a, new_b), new_obj)
        decrease = current[idx] - new_obj
        a[idx], b[idx], current[idx] = new_a, new_b, new_obj
        done = (np.abs(t * step_a) + np.abs(t * step_b) < 1e-9) | (decrease < tol * (1 + np.abs(new_obj)))
        converged[idx[done]] = True
        active[idx[done]] = False
    a[~both] = np.nan
    b[~both] = np.nan
    return a, b, converged & both


def _objective_rows(w: np.ndarray, x: np.ndarray, y: np.ndarray, lam: float, a: np.ndarray,
                    b: np.ndarray) -> np.ndarray:
    eta = a[:, None] + b[:, None] * x
    return (w * (np.logaddexp(0.0, eta) - y * eta)).sum(axis=1) + 0.5 * lam * b * b


def fit_logistic(log2_minutes: np.ndarray, success: np.ndarray, weights: np.ndarray,
                 regularization: float = METR_REGULARIZATION) -> tuple[float, float]:
    """One weighted fit: (intercept, slope)."""
    a, b, _ = fit_logistic_batch(log2_minutes, success, np.asarray(weights, dtype=float)[None, :], regularization)
    return float(a[0]), float(b[0])


def horizon_minutes(intercept: np.ndarray | float, slope: np.ndarray | float, p: float = 0.5) -> np.ndarray:
    """Human-task minutes at which P(success) = p: 2^((logit p - intercept) / slope)."""
    logit = LOGIT.get(p, float(np.log(p / (1 - p))))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.exp2((logit - np.asarray(intercept, dtype=float)) / np.asarray(slope, dtype=float))


# ------------------------------------------------------------------------------- resampler
def hierarchical_counts(runs: pd.DataFrame, draws: int, rng: np.random.Generator) -> np.ndarray:
    """How often each row of `runs` is drawn, per draw: (draws, rows) int32.

    Families are drawn with replacement; each drawn family contributes as many task draws as it has
    tasks, drawn from its own tasks only (so the total over a family is family draws x its size);
    each drawn task contributes, per agent, as many run draws as that agent has runs on it. The
    family and task draws are shared by all agents, as in METR's bootstrap.
    """
    family_codes, families = pd.factorize(runs["task_family"], sort=True)
    task_codes, tasks = pd.factorize(runs["task_id"], sort=True)
    task_family = np.zeros(len(tasks), dtype=np.int64)
    task_family[task_codes] = family_codes
    n_families = len(families)
    family_counts = rng.multinomial(n_families, np.full(n_families, 1.0 / n_families), size=draws)
    task_counts = np.zeros((draws, len(tasks)), dtype=np.int64)
    for f in range(n_families):
        members = np.flatnonzero(task_family == f)
        k = len(members)
        task_counts[:, members] = rng.multinomial(family_counts[:, f] * k, np.full(k, 1.0 / k))
    counts = np.zeros((draws, len(runs)), dtype=np.int32)
    agent_codes = pd.factorize(runs["alias"], sort=True)[0]
    group = task_codes.astype(np.int64) * (agent_codes.max() + 1) + agent_codes
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.diff(group[order])) + 1
    for rows in np.split(order, bounds):
        r = len(rows)
        counts[:, rows] = rng.multinomial(task_counts[:, task_codes[rows[0]]] * r, np.full(r, 1.0 / r))
    return counts


# ------------------------------------------------------------------------------- per-model horizons
@dataclass
class HorizonResult:
    horizons: pd.DataFrame      # one row per agent
    draws: pd.DataFrame         # one row per agent and draw


def _cells(runs: pd.DataFrame, weighting: str) -> tuple[pd.DataFrame, sparse.csr_matrix]:
    """Collapse rows to (agent, task, success) cells: the likelihood depends on nothing else."""
    key = runs[["alias", "task_id", "score_binarized"]].astype(str).agg("|".join, axis=1)
    codes, uniques = pd.factorize(key, sort=True)
    weight = runs[weighting].to_numpy(dtype=float)
    indicator = sparse.csr_matrix((weight, (np.arange(len(runs)), codes)), shape=(len(runs), len(uniques)))
    first = pd.Series(np.arange(len(runs))).groupby(codes).first().to_numpy()
    cells = runs.iloc[first][["alias", "task_id", "score_binarized", "human_minutes"]].reset_index(drop=True)
    cells["weight"] = np.asarray(indicator.sum(axis=0)).ravel()
    return cells, indicator


def check_runs(runs: pd.DataFrame, where: str = "metr_runs") -> pd.DataFrame:
    """The agent runs the fit uses (humans dropped), with the columns it needs, or InputError."""
    missing = [c for c in (*RUN_COLUMNS, DEFAULT_WEIGHTING) if c not in runs.columns]
    if missing:
        raise InputError(where, f"per-run data lacks column(s) {', '.join(missing)}",
                         "give METR's runs file (all_runs.jsonl) or the metr_runs table's columns")
    runs = runs[runs["alias"].astype(str) != "human"].copy()
    if runs.empty:
        raise InputError(where, "no agent runs (only human baselines)", "give runs of at least one model")
    minutes = pd.to_numeric(runs["human_minutes"], errors="coerce")
    if not (minutes > 0).all():
        raise InputError(where, "human_minutes must be positive minutes", "fix or drop those runs",
                         column="human_minutes")
    runs["human_minutes"] = minutes
    runs["score_binarized"] = pd.to_numeric(runs["score_binarized"], errors="raise").astype(int)
    return runs.reset_index(drop=True)


def compute_horizons(runs: pd.DataFrame, draws: int = 1000, seed: int = 0,
                     regularization: float = METR_REGULARIZATION,
                     weighting: str = DEFAULT_WEIGHTING) -> HorizonResult:
    """Point fits and bootstrap intervals for every agent in `runs` (metr_runs columns)."""
    if weighting not in WEIGHTINGS:
        raise InputError("--weighting", f"unknown weighting {weighting!r}", f"use one of {', '.join(WEIGHTINGS)}")
    runs = check_runs(runs)
    cells, indicator = _cells(runs, weighting)
    rng = np.random.default_rng(seed)
    boot = None
    if draws > 0:
        counts = hierarchical_counts(runs, draws, rng)
        boot = np.asarray((sparse.csr_matrix(counts, dtype=float) @ indicator).todense())
    rows, draw_rows = [], []
    for alias, agent_cells in cells.groupby("alias", sort=True):
        cols = agent_cells.index.to_numpy()
        x = np.log2(agent_cells["human_minutes"].to_numpy())
        y = agent_cells["score_binarized"].to_numpy(dtype=float)
        a, b = fit_logistic(x, y, agent_cells["weight"].to_numpy(), regularization)
        agent_runs = runs[runs["alias"] == alias]
        w = agent_runs[weighting].to_numpy(dtype=float)
        row = {"model": alias, "intercept": a, "slope": b,
               "p50": float(horizon_minutes(a, b, 0.5)), "p80": float(horizon_minutes(a, b, 0.8)),
               "average_score": float(np.sum(w * agent_runs["score_binarized"]) / np.sum(w)),
               "n_runs": len(agent_runs), "n_tasks": int(agent_runs["task_id"].nunique()),
               "n_successes": int(agent_runs["score_binarized"].sum()),
               "weighting": weighting, "regularization": regularization, "note": None}
        shortest = float(agent_runs["human_minutes"].min())
        # Below the shortest task the fit only extrapolates (METR's SWAA tasks reach seconds).
        row["extrapolated"] = not (row["p50"] >= shortest)
        if row["n_successes"] == 0:
            row["note"] = "no successes: horizon undefined (METR reports 0)"
        elif row["extrapolated"]:
            row["note"] = (f"p50 {row['p50']:.2g} min lies below the shortest task ({shortest:.3g} min): "
                           "extrapolated; not used for the trend nor stored as an observation")
        if boot is not None:
            ba, bb, ok = fit_logistic_batch(x, y, boot[:, cols], regularization)
            p50s, p80s = horizon_minutes(ba, bb, 0.5), horizon_minutes(ba, bb, 0.8)
            row["n_draws_ok"] = int(np.isfinite(p50s).sum())
            for name, values in (("p50", p50s), ("p80", p80s), ("slope", bb)):
                finite = values[np.isfinite(values)]
                lo, hi = (np.quantile(finite, [0.025, 0.975]) if len(finite) else (np.nan, np.nan))
                row[f"{name}_lo"], row[f"{name}_hi"] = float(lo), float(hi)
            draw_rows.append(pd.DataFrame({"model": alias, "draw": np.arange(draws), "intercept": ba,
                                           "slope": bb, "p50": p50s, "p80": p80s, "converged": ok}))
        rows.append(row)
    horizons = pd.DataFrame(rows)
    draws_frame = pd.concat(draw_rows, ignore_index=True) if draw_rows else pd.DataFrame(
        columns=["model", "draw", "intercept", "slope", "p50", "p80", "converged"])
    return HorizonResult(horizons, draws_frame)


# ------------------------------------------------------------------------------- trend
def fit_trend(x: np.ndarray, log2_horizon: np.ndarray, draw_log2: np.ndarray | None = None,
              seed: int = 0) -> dict:
    """OLS of log2 horizon on x, with an interval from resampling models AND their bootstrap draws.

    `draw_log2`: (draws, models) log2 horizons per bootstrap draw (NaN where a draw failed). In draw
    d the models are resampled with replacement and each uses its own draw-d horizon.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(log2_horizon, dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    r_squared = 1.0 - residual.var() / y.var() if y.var() > 0 else np.nan
    out = {"log2_slope": float(slope), "intercept": float(intercept), "r_squared": float(r_squared),
           "n_models": len(x), "log2_slope_lo": np.nan, "log2_slope_hi": np.nan, "draws_ok": 0}
    if draw_log2 is None or len(draw_log2) == 0:
        return out
    rng = np.random.default_rng(seed)
    n_draws, n_models = draw_log2.shape
    pick = rng.integers(0, n_models, size=(n_draws, n_models))
    xs = x[pick]
    ys = np.take_along_axis(draw_log2, pick, axis=1)
    ok = np.isfinite(ys)
    count = ok.sum(axis=1)
    xm = np.where(ok, xs, 0).sum(axis=1) / np.maximum(count, 1)
    ym = np.where(ok, ys, 0).sum(axis=1) / np.maximum(count, 1)
    dx = np.where(ok, xs - xm[:, None], 0)
    dy = np.where(ok, ys - ym[:, None], 0)
    sxx = (dx * dx).sum(axis=1)
    good = (count >= 3) & (sxx > 0)
    slopes = (dx * dy).sum(axis=1)[good] / sxx[good]
    if len(slopes):
        out["log2_slope_lo"], out["log2_slope_hi"] = (float(v) for v in np.quantile(slopes, [0.025, 0.975]))
    out["draws_ok"] = int(good.sum())
    return out


def trends(horizons: pd.DataFrame, draws: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Doubling time against release date, and horizon doublings per 10x training compute."""
    rows = []
    for metric, col in (("metr_p50_minutes", "p50"), ("metr_p80_minutes", "p80")):
        usable = horizons[~horizons["extrapolated"].astype(bool) & np.isfinite(horizons[col]) & (horizons[col] > 0)]
        for x_axis, column in (("date", "release_date"), ("compute", "train_flop")):
            if column not in usable.columns:
                continue
            sel = usable[usable[column].notna()].sort_values("model")
            if len(sel) < 3:
                continue
            x = decimal_year(sel[column]) if x_axis == "date" else np.log10(sel[column].to_numpy(dtype=float))
            draw_log2 = None
            if len(draws):
                wide = draws.pivot(index="draw", columns="model", values=col)[sel["model"]]
                with np.errstate(divide="ignore", invalid="ignore"):
                    draw_log2 = np.log2(wide.where(wide > 0).to_numpy(dtype=float))
            fit = fit_trend(x, np.log2(sel[col].to_numpy(dtype=float)), draw_log2, seed)
            row = {"metric": metric, "x_axis": x_axis, **fit, "models": json.dumps(list(sel["model"]))}
            if x_axis == "date":
                row["slope_unit"] = "log2 minutes per year"
                row["doubling_days"] = _per_doubling(fit["log2_slope"], 365.25)
                row["lo"] = _per_doubling(fit["log2_slope_hi"], 365.25)
                row["hi"] = _per_doubling(fit["log2_slope_lo"], 365.25)
            else:
                row["slope_unit"] = "log2 minutes per log10 FLOP"
                # compute multiplier that doubles the horizon
                row["flop_per_doubling"] = 10 ** _per_doubling(fit["log2_slope"], 1.0)
                row["flop_per_doubling_lo"] = 10 ** _per_doubling(fit["log2_slope_hi"], 1.0)
                row["flop_per_doubling_hi"] = 10 ** _per_doubling(fit["log2_slope_lo"], 1.0)
            rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------- METR's published trend
PUBLISHED_SOURCE = "metr_time_horizon"
PUBLISHED_VERSIONS = "METR-Horizon-v1.1"      # prefix of the versions whose headline trend we recompute
PUBLISHED_SINCE = pd.Timestamp("2023-01-01")
DAYS_PER_YEAR = 365.25
# What METR publishes beside each TH1.1 results file (benchmark_results_1_1.yaml, doubling_time_in_days.from_2023_on):
# version -> (days per doubling of the 50% horizon, 95% CI low, high).
PUBLISHED_DOUBLING = {
    "METR-Horizon-v1.1-2026-01-30": (130.801, 107.334, 161.422),
    "METR-Horizon-v1.1-2026-02-19": (128.12, 104.601, 155.654),
    "METR-Horizon-v1.1-2026-03-03": (128.744, 105.26, 157.336),
}


def published_trends(observations: pd.DataFrame, draws: int = 1000, seed: int = 0) -> pd.DataFrame:
    """METR's headline doubling time recomputed from its own published 50% horizons, one row per v1.1 version.

    As METR computes it (the file's `from_2023_on`, reproduced to 0.001 day on METR-Horizon-v1.1-2026-03-03):
    OLS of log2 p50 on release date in days, over the models that set a record when released (`is_sota` in
    METR's file; `fitting.frontier_mask` of the published p50s marks the same models) released from 2023 on.
    The 95% interval resamples those models with replacement (a pairs bootstrap). METR's own interval comes
    from its task-level bootstrap, which we cannot redo without its runs; adding draws from each model's
    published interval on top of resampling the models would count the measurement error twice, since the
    scatter about the line already holds it. `observations`: store columns (source_version, model,
    release_date, metric, value)."""
    from pipeline.fitting import frontier_mask

    rows = []
    obs = observations[(observations["metric"] == "metr_p50_minutes")
                       & observations["source_version"].astype(str).str.startswith(PUBLISHED_VERSIONS)]
    for version, part in obs.groupby("source_version", sort=True):
        part = part[part["release_date"].notna() & (part["value"] > 0)].reset_index(drop=True)
        if part.empty:
            continue
        dates = pd.to_datetime(part["release_date"])
        record = frontier_mask(dates, part["value"])
        sel = part[record & (dates >= PUBLISHED_SINCE).to_numpy()].sort_values("model")
        if len(sel) < 3:
            continue
        days = (pd.to_datetime(sel["release_date"]) - pd.Timestamp("1970-01-01")).dt.days.to_numpy(dtype=float)
        x = days / DAYS_PER_YEAR
        y = np.log2(sel["value"].to_numpy(dtype=float))
        fit = fit_trend(x, y, np.tile(y, (draws, 1)) if draws > 0 else None, seed)
        rows.append({"metric": "metr_p50_minutes", "x_axis": "date", **fit,
                     "slope_unit": f"log2 minutes per {DAYS_PER_YEAR:g} days",
                     "doubling_days": _per_doubling(fit["log2_slope"], DAYS_PER_YEAR),
                     "lo": _per_doubling(fit["log2_slope_hi"], DAYS_PER_YEAR),
                     "hi": _per_doubling(fit["log2_slope_lo"], DAYS_PER_YEAR),
                     "flop_per_doubling": np.nan, "flop_per_doubling_lo": np.nan, "flop_per_doubling_hi": np.nan,
                     "models": json.dumps(list(sel["model"])),
                     "source": PUBLISHED_SOURCE, "source_version": version})
    return pd.DataFrame(rows)


def _per_doubling(log2_slope: float, scale: float) -> float:
    # a non-positive slope means no doubling at all: the interval end is unbounded
    return scale / log2_slope if np.isfinite(log2_slope) and log2_slope > 0 else np.inf


def as_observations(horizons: pd.DataFrame, source_version: str, sha256: str | None) -> pd.DataFrame:
    """Per-model horizons as ordinary observations so every later stage can use them."""
    rows = []
    usable = horizons[~horizons["extrapolated"].astype(bool)]
    for _, h in usable.iterrows():
        for metric, col in (("metr_p50_minutes", "p50"), ("metr_p80_minutes", "p80")):
            org = h.get("organization")
            org = org if isinstance(org, str) and org else _organization(h["model"])
            note = h.get("train_flop_note")
            rows.append({"source": SOURCE, "source_version": source_version, "source_sha256": sha256,
                         "model": h["model"], "organization": org,
                         "release_date": h.get("release_date"), "train_flop": h.get("train_flop"),
                         "train_flop_note": (note if isinstance(note, str) else "joined by model name")
                         if pd.notna(h.get("train_flop")) else None,
                         "metric": metric, "kind": "horizon", "value": h[col],
                         "value_lo": h.get(f"{col}_lo"), "value_hi": h.get(f"{col}_hi"), "unit": "minutes",
                         "original_unit": "minutes (logistic fit to per-run data; bootstrap 95%)",
                         "floor": 0.0, "cluster": org,
                         "row_ref": f"alias {h['model']}", "citation": CITATION})
    if not rows:
        return conform(pd.DataFrame(rows))
    return validate_observations(pd.DataFrame(rows), SOURCE)


ORGANIZATIONS = (("claude", "Anthropic"), ("gpt", "OpenAI"), ("o1", "OpenAI"), ("o3", "OpenAI"), ("o4", "OpenAI"),
                 ("davinci", "OpenAI"), ("text-davinci", "OpenAI"), ("gemini", "Google"), ("llama", "Meta"),
                 ("deepseek", "DeepSeek"), ("qwen", "Alibaba"), ("mistral", "Mistral"), ("grok", "xAI"))


def _organization(alias: str) -> str:
    """The developer of a METR agent, from its name; an unknown name is its own organisation (and so its own
    bootstrap cluster), never folded into another lab's."""
    name = str(alias).lower()
    return next((org for prefix, org in ORGANIZATIONS if name.startswith(prefix)), f"unknown ({alias})")
