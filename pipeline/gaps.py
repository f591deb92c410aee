"""The observed gap on history: how far a laggard group trailed the leading group at each date, in the
metric's own terms and in months. Pure: plain tables in, plain tables out (the stage is pipeline.stages.gaps).

For one series (a metric from one source and version, every model with a release date):

* each group's *best to date* is a step function of time: the best value among the group's models released
  (or admitted to the group) by that date; history starts once each group has three models;
* the **gap** at a date is leading minus laggard in points for a bounded metric (percentage points for a
  fraction), their ratio for a positive unbounded one (minutes of task horizon), and their difference on an
  interval scale with no natural zero (an index, Elo), where a ratio means nothing;
* **months behind** at a date is how long before it the leading group first reached the laggard's best
  (negative when the laggard leads); the **mean horizontal lag** is that distance averaged over every value
  both groups reached, the measure of Epoch's "open models lag by about three months";
* bands: 90% of bootstrap draws that resample the models (with replacement) and draw each value within its
  published interval where there is one.

Comparisons: `open_vs_closed` (closed-weight models lead, open-weight models lag), `compute_tier_10x` (every
model leads; the laggard is the best model trained with at most a tenth of the largest training compute
released by that date), and `<column>=<value>` for any registry column (that group lags the rest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.ranges import KnownRange

DAYS_PER_MONTH = 365.25 / 12
BAND = (5.0, 95.0)                 # a 90% band, the width Epoch publishes for its lag
TIER = 10.0                        # compute tier: at most 1/TIER of the compute frontier
MIN_GROUP = 3                      # models a group needs before its best-to-date says anything
OPEN, CLOSED = "open weights", ("API", "hosted", "unreleased")
COMPARISONS = ("open_vs_closed", "compute_tier_10x")
SERIES_COLUMNS = ("date", "frontier", "frontier_model", "laggard", "laggard_model", "gap", "gap_lo", "gap_hi",
                  "months_behind", "months_lo", "months_hi")
# Published open-weights lags on ECI, to set beside ours: (who and when, months, 90% interval, what was measured).
PUBLISHED_LAGS = (
    ("Epoch AI, data insight of 30 Oct 2025 ('Open-weight models lag state-of-the-art by around 3 months on "
     "average')", 3.5, 1.1, 5.3, "the horizontal distance between the closed and open best-to-date ECI lines, "
     "averaged over the ECI values both reached; an open model counts as caught up when its score is within "
     "noise of the earlier best"),
    ("Epoch AI, data insight of May 2026 ('Open models lag closed models by 4 months')", 4.0, None, None,
     "the average time the best open-weight models take to match the state of the art on ECI"),
)
PREDICTION = {"meek": "the gap peaks, then narrows", "mighty": "the gap persists or grows",
              "indeterminate": "no prediction (the class is undecided)"}


@dataclass(frozen=True)
class Comparison:
    name: str
    leading: str       # who the leading group is, in words
    laggard: str


def comparison(name: str) -> Comparison:
    if name == "open_vs_closed":
        return Comparison(name, "closed-weight models (API, hosted, unreleased)", "open-weight models")
    if name == "compute_tier_10x":
        return Comparison(name, "every model", f"models trained with at most 1/{TIER:g} of the largest compute "
                                               "released by that date")
    column, sep, value = name.partition("=")
    if not sep or not column or not value:
        raise ValueError(f"a comparison is open_vs_closed, compute_tier_10x or COLUMN=VALUE, not {name!r}")
    return Comparison(name, f"models whose {column} is not {value}", f"models whose {column} is {value}")


def gap_scale(known: KnownRange, unit: str | None) -> str:
    """points (bounded above), ratio (positive and open above), difference (interval scale)."""
    if known.bounded_performance and math.isfinite(known.lo) and math.isfinite(known.hi):
        return "points"
    if known.higher_is_better and known.lo == 0.0:
        return "ratio"
    return "difference"


def _gap(f: np.ndarray, lag: np.ndarray, scale: str, unit: str | None) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        if scale == "ratio":
            return np.where(lag > 0, f / lag, np.nan)
        return (f - lag) * (100.0 if scale == "points" and unit == "fraction" else 1.0)


# ------------------------------------------------------------------------------ who is in which group
def entries(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Days (since 1970) at which each model enters the leading and the laggard group (NaN: never).

    `frame` columns: date, value, accessibility, train_flop, and any registry column a user names."""
    days = (pd.to_datetime(frame["date"]) - pd.Timestamp("1970-01-01")).dt.days.to_numpy(dtype=float)
    never = np.full(len(frame), np.nan)
    if name == "open_vs_closed":
        access = frame["accessibility"].to_numpy(dtype=object)
        lead = np.where(np.isin(access, CLOSED), days, np.nan)
        lag = np.where(access == OPEN, days, np.nan)
        return lead, lag
    if name == "compute_tier_10x":
        flop = frame["train_flop"].to_numpy(dtype=float)
        lead = days.copy()
        lag = never.copy()
        known = np.isfinite(flop) & (flop > 0)
        if known.any():
            order = np.argsort(days[known], kind="stable")
            t = days[known][order]
            frontier = np.maximum.accumulate(flop[known][order])   # the compute frontier after each release
            for i in np.flatnonzero(known):
                # admitted once a model with TIER x its compute has been released (at its own release at the earliest)
                pos = np.searchsorted(frontier, TIER * flop[i], side="left")
                if pos < len(t):
                    lag[i] = max(days[i], t[pos])
        return lead, lag
    column, _, value = name.partition("=")
    if column not in frame:
        raise ValueError(f"no registry column {column!r}")
    cells = frame[column].astype("string")
    member = (cells.str.lower() == value.lower()).fillna(False).to_numpy(dtype=bool)
    known = cells.notna().to_numpy(dtype=bool)
    return np.where(known & ~member, days, np.nan), np.where(member, days, np.nan)


# ------------------------------------------------------------------------------ step functions
def _steps(t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entries sorted by time; best value to date after each; which entry holds it."""
    ok = np.isfinite(t) & np.isfinite(v)
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort((-v[ok], t[ok]))]
    vals = v[order]
    best = np.maximum.accumulate(vals) if len(vals) else vals
    holder = order[_argmax_to_date(vals)] if len(vals) else order
    return t[order], best, holder


def _argmax_to_date(v: np.ndarray) -> np.ndarray:
    """Index of the entry holding the best value to date, after each entry (the first to reach it)."""
    if not len(v):
        return np.zeros(0, dtype=int)
    best = np.maximum.accumulate(v)
    new = np.r_[True, v[1:] > best[:-1]]
    return np.maximum.accumulate(np.where(new, np.arange(len(v)), 0))


def _at(t_sorted: np.ndarray, best: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = np.searchsorted(t_sorted, grid, side="right") - 1
    ok = pos >= 0
    return np.where(ok, best[np.clip(pos, 0, None)] if len(best) else np.nan, np.nan), pos


def _first_reach(t_sorted: np.ndarray, best: np.ndarray, level: np.ndarray) -> np.ndarray:
    """The first time the best-to-date reaches each level (NaN when it never does)."""
    pos = np.searchsorted(best, level, side="left")
    return np.where((pos < len(best)) & np.isfinite(level), t_sorted[np.clip(pos, 0, len(best) - 1)], np.nan)


def evaluate(lead_t, lead_v, lag_t, lag_v, grid: np.ndarray, scale: str, unit: str | None) -> dict:
    """Both groups' best to date on `grid` (days), the gap, months behind, and the mean horizontal lag."""
    ft, fb, fh = _steps(lead_t, lead_v)
    lt, lb, lh = _steps(lag_t, lag_v)
    if not len(fb) or not len(lb):
        nan = np.full(len(grid), np.nan)
        return {"frontier": nan, "laggard": nan, "gap": nan, "months": nan, "mean_months": np.nan,
                "frontier_idx": np.full(len(grid), -1), "laggard_idx": np.full(len(grid), -1)}
    f, fpos = _at(ft, fb, grid)
    lag, lpos = _at(lt, lb, grid)
    behind = np.where(lag <= f, grid - _first_reach(ft, fb, lag), -(grid - _first_reach(lt, lb, f)))
    behind = np.where(np.isfinite(f) & np.isfinite(lag), behind / DAYS_PER_MONTH, np.nan)
    lo, hi = max(fb[0], lb[0]), min(fb[-1], lb[-1])
    mean = np.nan
    if hi > lo:
        levels = np.linspace(lo, hi, 201)
        mean = float(np.mean(_first_reach(lt, lb, levels) - _first_reach(ft, fb, levels)) / DAYS_PER_MONTH)
    return {"frontier": f, "laggard": lag, "gap": _gap(f, lag, scale, unit), "months": behind, "mean_months": mean,
            "frontier_idx": np.where(fpos >= 0, fh[np.clip(fpos, 0, None)], -1),
            "laggard_idx": np.where(lpos >= 0, lh[np.clip(lpos, 0, None)], -1)}


# ------------------------------------------------------------------------------ one series
@dataclass
class GapResult:
    series: pd.DataFrame      # SERIES_COLUMNS, one row per date at which either group changes
    summary: dict


def observed_gap(frame: pd.DataFrame, name: str, known: KnownRange, unit: str | None, draws: int = 500,
                 seed: int = 0, verdict: str | None = None) -> GapResult | None:
    """The observed gap of one dated series under one comparison; None when a group has fewer than MIN_GROUP models.

    `frame`: model, date, value, value_lo, value_hi, accessibility, train_flop (+ registry columns)."""
    frame = frame[frame["date"].notna() & np.isfinite(frame["value"].to_numpy(dtype=float))].reset_index(drop=True)
    sign = 1.0 if known.higher_is_better else -1.0
    value = sign * frame["value"].to_numpy(dtype=float)
    lead_t, lag_t = entries(frame, name)
    if np.isfinite(lead_t).sum() < MIN_GROUP or np.isfinite(lag_t).sum() < MIN_GROUP:
        return None
    scale = gap_scale(known, unit)
    # history starts once each group has MIN_GROUP models: before that a group's "best" is one or two models
    # (METR's only open-weight model until mid 2024 is GPT-2, which would make a peak of the coverage gap)
    start = max(np.sort(lead_t[np.isfinite(lead_t)])[MIN_GROUP - 1], np.sort(lag_t[np.isfinite(lag_t)])[MIN_GROUP - 1])
    grid = np.unique(np.concatenate([lead_t[np.isfinite(lead_t)], lag_t[np.isfinite(lag_t)]]))
    grid = grid[grid >= start]
    point = evaluate(lead_t, value, lag_t, value, grid, scale, unit)
    rng = np.random.default_rng(seed)
    sd = _value_sd(frame, sign)
    gaps = np.full((draws, len(grid)), np.nan)
    months = np.full((draws, len(grid)), np.nan)
    means = np.full(draws, np.nan)
    shapes = []
    n = len(frame)
    log_sd = _log_sd(frame)
    for d in range(draws):
        pick = rng.integers(0, n, n)
        if scale == "ratio":
            v = value[pick] * np.exp(rng.standard_normal(n) * log_sd[pick])
        else:
            v = value[pick] + rng.standard_normal(n) * sd[pick]
        out = evaluate(lead_t[pick], v, lag_t[pick], v, grid, scale, unit)
        gaps[d], months[d], means[d] = out["gap"], out["months"], out["mean_months"]
        shapes.append(trajectory_shape(grid, out["gap"], scale)[0])
    g_lo, g_hi = _band(gaps)
    m_lo, m_hi = _band(months)
    models = frame["model"].to_numpy(dtype=object)
    dates = pd.Timestamp("1970-01-01") + pd.to_timedelta(grid, unit="D")
    series = pd.DataFrame({
        "date": dates, "frontier": sign * point["frontier"],
        "frontier_model": [models[i] if i >= 0 else None for i in point["frontier_idx"]],
        "laggard": sign * point["laggard"], "laggard_model": [models[i] if i >= 0 else None for i in point["laggard_idx"]],
        "gap": point["gap"], "gap_lo": g_lo, "gap_hi": g_hi,
        "months_behind": point["months"], "months_lo": m_lo, "months_hi": m_hi,
    })
    series = series[np.isfinite(series["frontier"]) & np.isfinite(series["laggard"])].reset_index(drop=True)
    shape, peak_i = trajectory_shape(grid, point["gap"], scale)
    valid = [s for s in shapes if s != "too short to tell"]
    latest = series.iloc[-1] if len(series) else None
    predicted = PREDICTION.get(verdict or "", None)
    summary = {
        "gap_scale": scale, "bounded": bool(known.bounded_performance), "verdict": verdict,
        "n_models": int(n), "n_leading": int(np.isfinite(lead_t).sum()), "n_laggard": int(np.isfinite(lag_t).sum()),
        "first_date": series["date"].iloc[0] if len(series) else None,
        "latest_date": latest["date"] if latest is not None else None,
        "latest_gap": _f(latest, "gap"), "latest_gap_lo": _f(latest, "gap_lo"), "latest_gap_hi": _f(latest, "gap_hi"),
        "latest_months": _f(latest, "months_behind"), "latest_months_lo": _f(latest, "months_lo"),
        "latest_months_hi": _f(latest, "months_hi"),
        "mean_months": float(point["mean_months"]),
        "mean_months_lo": _band(means[:, None])[0][0], "mean_months_hi": _band(means[:, None])[1][0],
        "peak_gap": float(point["gap"][peak_i]) if peak_i is not None else np.nan,
        "peak_date": dates[peak_i] if peak_i is not None else None,
        "shape": shape, "shape_p": (sum(s == shape for s in valid) / len(valid)) if valid and draws else np.nan,
        "predicted": predicted, "agrees": agreement(verdict, shape), "draws": int(draws),
    }
    return GapResult(series, summary)


def _band(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the 90% band of the draws that have a value there (NaN where none has)."""
    lo = np.full(draws.shape[1], np.nan)
    hi = np.full(draws.shape[1], np.nan)
    for j in range(draws.shape[1]):
        column = draws[:, j][np.isfinite(draws[:, j])]
        if len(column):
            lo[j], hi[j] = np.percentile(column, BAND)
    return lo, hi


def _f(row, column) -> float:
    return float(row[column]) if row is not None and pd.notna(row[column]) else np.nan


def _value_sd(frame: pd.DataFrame, sign: float) -> np.ndarray:
    lo = frame["value_lo"].to_numpy(dtype=float) if "value_lo" in frame else np.full(len(frame), np.nan)
    hi = frame["value_hi"].to_numpy(dtype=float) if "value_hi" in frame else np.full(len(frame), np.nan)
    sd = (hi - lo) / (2 * 1.96)
    return np.where(np.isfinite(sd) & (sd > 0), sd, 0.0)


def _log_sd(frame: pd.DataFrame) -> np.ndarray:
    """Published 95% intervals of positive values (task horizons) are symmetric in log: their sd in log."""
    lo = frame["value_lo"].to_numpy(dtype=float) if "value_lo" in frame else np.full(len(frame), np.nan)
    hi = frame["value_hi"].to_numpy(dtype=float) if "value_hi" in frame else np.full(len(frame), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = (np.log(hi) - np.log(lo)) / (2 * 1.96)
    return np.where(np.isfinite(sd) & (sd > 0), sd, 0.0)


# ------------------------------------------------------------------------------ theory against history
def trajectory_shape(grid: np.ndarray, gap: np.ndarray, scale: str) -> tuple[str, int | None]:
    """How the observed gap moved: 'narrowing after a peak' (now at most 3/4 of its peak, the peak not in the
    last quarter of the span, a rise to it seen), 'narrowing' (the same from a peak where history starts),
    'growing' (at or near its peak now, and rising over the second half), else 'persisting'; 'too short to
    tell' with fewer than 4 dates or under a year of history."""
    ok = np.isfinite(gap)
    if ok.sum() < 4:
        return "too short to tell", (int(np.flatnonzero(ok)[np.argmax(gap[ok])]) if ok.any() else None)
    t, g = grid[ok], gap[ok]
    size = np.log(np.maximum(g, 1e-12)) if scale == "ratio" else g
    peak = int(np.argmax(size))
    peak_i = int(np.flatnonzero(ok)[peak])
    span = t[-1] - t[0]
    if span < 365:
        return "too short to tell", peak_i
    top, now = size[peak], size[-1]
    if top > 0 and now <= 0.75 * top and t[peak] <= t[0] + 0.75 * span:
        # a rise seen before the peak, or history that starts at it (already past its peak)
        risen = t[peak] > t[0] + 0.1 * span and size[0] < 0.9 * top
        return ("narrowing after a peak" if risen else "narrowing"), peak_i
    half = t >= t[0] + span / 2
    slope = np.polyfit(t[half], size[half], 1)[0] if half.sum() >= 2 and np.ptp(t[half]) > 0 else 0.0
    if slope > 0 and now >= 0.9 * top:
        return "growing", peak_i
    return "persisting", peak_i


def published_comparison(summary: dict, series: pd.DataFrame) -> list[str]:
    """Sentences setting our ECI open-weights lag (a gap_summary row and its gap_series) beside the published
    ones, with the reasons they differ."""
    out = []
    first = PUBLISHED_LAGS[0]
    mean, lo, hi = (summary.get(k, np.nan) for k in ("mean_months", "mean_months_lo", "mean_months_hi"))
    if mean is not None and np.isfinite(mean):
        inside = first[2] <= mean <= first[3]
        overlap = np.isfinite(lo) and np.isfinite(hi) and lo <= first[3] and hi >= first[2]
        out.append(f"Measured as Epoch measures it (mean horizontal distance), the open-weights lag on the ECI file of "
                   f"{summary['source_version']} is {mean:.1f} months (90% band {lo:.1f} to {hi:.1f}): "
                   + ("inside Epoch's published interval of 1.1 to 5.3 months around 3.5." if inside else
                      "its band overlaps Epoch's published interval of 1.1 to 5.3 months." if overlap else
                      "outside Epoch's published interval of 1.1 to 5.3 months."))
    latest = summary.get("latest_months", np.nan)
    if latest is not None and np.isfinite(latest) and len(series):
        series = series.sort_values("date")
        last = series.iloc[-1]
        lag_since = series[series["laggard"] == last["laggard"]]["date"].min()
        lead_since = series[series["frontier"] == last["frontier"]]["date"].min()
        when = pd.Timestamp(last["date"]).strftime("%Y-%m-%d")
        out.append(f"At the latest date in the file ({when}) the open best ({last['laggard_model']}, since "
                   f"{pd.Timestamp(lag_since):%Y-%m-%d}) had been reached by closed models {latest:.1f} months earlier; "
                   f"the closed best was {last['frontier_model']} (since {pd.Timestamp(lead_since):%Y-%m-%d}). That is "
                   "one date, not an average over the values both groups reached: it counts the "
                   f"{(pd.Timestamp(last['date']) - pd.Timestamp(lag_since)).days / DAYS_PER_MONTH:.1f} months since "
                   "the open best last rose, so it sits above the average.")
    out.append("Why the figures can differ: (1) ECI is re-fitted with every release of Epoch's data, so the same model "
               "scores differently in the October 2025, December 2025 and May 2026 files; (2) the open-weight releases "
               "of late 2025 are missing from the December 2025 file's scores (gpt-oss-120b is listed without an ECI "
               "score; MiniMax-M2 and Kimi K2 Thinking are not listed), which Epoch also notes makes the current gap "
               "look larger than it is; (3) Epoch counts an open model as having caught up when the difference is not "
               "statistically significant, while the file carries no standard errors, so here a score must reach the "
               "earlier best, which lengthens the lag; (4) the May 2026 figure averages catch-up times over its own, "
               "later set of models and scores.")
    return out


def agreement(verdict: str | None, shape: str) -> str:
    """Does the observed shape agree with what the metric's class predicts? yes | no | cannot tell."""
    if shape == "too short to tell" or verdict not in ("meek", "mighty"):
        return "cannot tell"
    if verdict == "meek":  # persisting: the peak may still be ahead
        return {"narrowing after a peak": "yes", "narrowing": "yes", "growing": "no"}.get(shape, "cannot tell")
    return "no" if shape.startswith("narrowing") else "yes"
