"""Time per 1000 bootstrap draws: the vectorised horizon bootstrap against a per-draw loop.

Both paths fit the same resampled weights (the same hierarchical count matrix), every agent, with
the same objective. The baseline is what a straightforward port of METR's code does: per draw and
per agent, sklearn `LogisticRegression(C=1/regularization).fit(..., sample_weight=...)` on the
resampled rows (scikit-learn from the [test] extra; without it, scipy.optimize.minimize per draw).
The loop runs a subset of draws and is scaled to 1000.

Run: .venv/bin/python benchmarks/bench_horizon.py [--runs data/raw/metr_runs.csv.gz] [--loop-draws 50]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from pipeline import horizons as H
from pipeline.sources.metr import RUNS

ROOT = Path(__file__).resolve().parents[1]


def _baseline_fitter():
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        LogisticRegression = None

    def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, reg: float) -> tuple[float, float]:
        if LogisticRegression is not None:
            model = LogisticRegression(C=1 / reg).fit(x[:, None], y, sample_weight=w)
            return float(model.intercept_[0]), float(model.coef_[0, 0])

        def objective(theta: np.ndarray) -> float:
            eta = theta[0] + theta[1] * x
            return float(np.sum(w * (np.logaddexp(0, eta) - y * eta)) + 0.5 * reg * theta[1] ** 2)
        a, b = minimize(objective, np.zeros(2), method="BFGS").x
        return float(a), float(b)

    return fit, ("sklearn LogisticRegression" if LogisticRegression is not None else "scipy.optimize.minimize (BFGS)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "data" / "raw" / "metr_runs.csv.gz")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--loop-draws", type=int, default=50, help="draws the per-draw loop runs (scaled to --draws)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    runs = H.check_runs(RUNS.read(args.runs)[0].extra["metr_runs"])
    agents = sorted(runs["alias"].unique())
    print(f"{len(runs)} agent runs, {len(agents)} agents, {runs['task_id'].nunique()} tasks")

    start = time.perf_counter()
    result = H.compute_horizons(runs, draws=args.draws, seed=args.seed)
    vectorised = time.perf_counter() - start
    per_1000_vec = vectorised * 1000 / args.draws

    fit, name = _baseline_fitter()
    counts = H.hierarchical_counts(runs, args.loop_draws, np.random.default_rng(args.seed))
    x_all = np.log2(runs["human_minutes"].to_numpy())
    y_all = runs["score_binarized"].to_numpy()
    w_all = runs[H.DEFAULT_WEIGHTING].to_numpy()
    alias = runs["alias"].to_numpy()
    start = time.perf_counter()
    loop_rows = []
    for d in range(args.loop_draws):
        for agent in agents:
            rows = np.flatnonzero((alias == agent) & (counts[d] > 0))
            rows = np.repeat(rows, counts[d, rows])      # the resampled rows, as a data frame holds them
            y = y_all[rows]
            if y.min() == y.max():
                continue
            a, b = fit(x_all[rows], y, w_all[rows], H.METR_REGULARIZATION)
            loop_rows.append((d, agent, a, b))
    loop = time.perf_counter() - start
    per_1000_loop = loop * 1000 / args.loop_draws

    # Same numbers from both paths on the draws the loop ran (same counts: same seed, same generator order).
    check = pd.DataFrame(loop_rows, columns=["draw", "model", "intercept", "slope"])
    check_vec = H.compute_horizons(runs, draws=args.loop_draws, seed=args.seed).draws
    merged = check.merge(check_vec, on=["draw", "model"], suffixes=("_loop", ""))
    max_diff = float(np.max(np.abs(merged["slope_loop"] - merged["slope"])))

    print(f"vectorised (batched Newton, all agents): {per_1000_vec:8.2f} s per 1000 draws "
          f"({args.draws} draws in {vectorised:.2f} s)")
    print(f"per-draw loop ({name}): {per_1000_loop:8.2f} s per 1000 draws "
          f"({args.loop_draws} draws in {loop:.2f} s, scaled)")
    print(f"speed-up: {per_1000_loop / per_1000_vec:.1f}x; max |slope difference| on shared draws: {max_diff:.2e}")
    print(f"models with finite p50 draws: {int((result.horizons['n_draws_ok'] > 0).sum())}")


if __name__ == "__main__":
    main()
