"""Benchmark (not a test): how well calibrated are the backtests' predictive intervals on the bundled data, before
and after each step of the predictive model (issue 16)?

The bundled snapshot is ingested into a temporary store, METR horizons are derived (the horizons stage), and
every series is fitted with rolling-origin backtests (cutoffs at the 60/70/80% quantiles of release date, else of
compute). Each step below adds one thing the predictive distribution of a held-out point models, cumulatively;
every row pools the held-out points of all series:

  before        each family's own bootstrap predictive, families pooled (what the code did)
  average       the families mixed by their stacking weights (held-out skill): the headline forecast
  meas. error   a held-out point's own value_lo/value_hi scale its noise (METR horizons carry them)
  bounded       noise normal on the logit of a fraction's position in [0, 1] (it shrinks near either end and
                never leaves the range); censored at a ceiling such as perfect play
  compute       each model's training compute drawn from its stated uncertainty in every bootstrap draw
                (Epoch's confidence grade or a stated interval; see fitting.COMPUTE_SPREAD_90), and a held-out
                model evaluated at its own redrawn compute
  frontier      date trends of horizons fitted on the models that set a record when released (as METR does);
                every earlier step fits them on all models
  conformal     split-conformal stretch of each central interval, pooled over series, by extrapolation distance
                (up to a quarter of the fitted span past the data, and beyond); each series judged by factors
                fitted on the other series only (leave one series out)

Columns: pooled coverage of the 50/80/95% central intervals (target 80% within 0.72-0.88, 95% within
0.88-0.98), the median over series of the 80% coverage, and CRPS divided by the standard deviation of the
series' values on its error scale (scale-free, so series in different units pool; lower is better), all from the
nine stored quantiles of each point (scoring.crps_quantiles) so every step is scored the same way.

It then shows how much compute uncertainty widens the forecasts: the model-averaged 80% interval of a new model
at the largest compute in the data and one decade past it, with and without errors in compute, for every series
whose compute carries a stated uncertainty.

Usage: .venv/bin/python benchmarks/bench_calibration.py [--fit-draws 200] [--backtest-draws 200] [--seed 0]
       [--series]   (also print each series' 80/95% coverage before and after)
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import fitting, ingest, scoring
from pipeline.config import Draws, RunConfig
from pipeline.stages import fit as fit_stage
from pipeline.stages import horizons as horizons_stage

ROOT = Path(__file__).resolve().parents[1]
KEYS = ["metric", "source", "source_version", "x_axis"]
OFF = fitting.PredictiveOptions(**{f.name: False for f in dataclasses.fields(fitting.PredictiveOptions)})
ALL = fitting.PredictiveOptions()
# (name, options, score the model average (else each family), date trends of horizons on the frontier)
STEPS = [("before: each family alone", OFF, False, False),
         ("+ model average (stacking)", dataclasses.replace(OFF, average=True), True, False),
         ("+ measurement error", dataclasses.replace(OFF, average=True, measurement_error=True), True, False),
         ("+ bounded noise", dataclasses.replace(ALL, compute_error=False), True, False),
         ("+ compute uncertainty", ALL, True, False),
         ("+ frontier horizon trends", ALL, True, True)]


def held_out_points(series: list[fitting.Series], options: fitting.PredictiveOptions, average: bool,
                    fit_draws: int, backtest_draws: int, seed: int, fits: dict | None = None) -> pd.DataFrame:
    parts = []
    for s in series:
        res = fitting.fit_series(s, None, fit_draws, seed=seed, backtest_draws=backtest_draws, options=options)
        if fits is not None:
            fits[s.label] = res
        pts = res.held_out
        if pts.empty:
            continue
        pts = pts[pts["family"] == fitting.AVERAGE] if average else pts[pts["family"] != fitting.AVERAGE]
        y = s.frame["y"].to_numpy(float)
        sd = float(np.std(np.log10(y) if s.log_response else y))
        label = f"{s.metric} [{s.source}@{s.source_version}] vs {s.x_axis}"
        parts.append(pts.assign(**s.key, label=label, sd=sd if sd > 0 else 1.0))
    return pd.concat(parts, ignore_index=True)


def summary(points: pd.DataFrame) -> dict:
    q = points[list(scoring.COLUMNS)].to_numpy().T
    crps = scoring.crps_quantiles(scoring.QUANTILE_LEVELS, q, points["y"].to_numpy())
    per_series = points.groupby("label").apply(lambda g: scoring.central_coverage(g, 0.8), include_groups=False)
    return {"cov50": scoring.central_coverage(points, 0.5), "cov80": scoring.central_coverage(points, 0.8),
            "cov95": scoring.central_coverage(points, 0.95), "median series cov80": float(per_series.median()),
            "CRPS/sd": float(np.mean(crps / points["sd"].to_numpy())), "points": len(points),
            "series": int(points["label"].nunique())}


def per_series(points: pd.DataFrame) -> pd.DataFrame:
    return points.groupby("label").apply(lambda g: pd.Series({
        "n": len(g), "cov80": scoring.central_coverage(g, 0.8), "cov95": scoring.central_coverage(g, 0.95)}),
        include_groups=False)


def widening(without: dict, with_: dict, seed: int) -> pd.DataFrame:
    """80% interval of a new model at the data's largest compute and a decade past it, without and with errors in
    compute, for the series whose compute carries a stated uncertainty."""
    rows = []
    for label, res in with_.items():
        s = res.series
        if s.x_axis != "compute" or not (s.x_sd > 0).any() or label not in without:
            continue
        x = np.array([s.frame["x"].max(), s.frame["x"].max() + 1.0])
        bounds = fitting.noise_bounds(s)
        widths = {}
        for name, fit, sd in (("exact", without[label], 0.0), ("uncertain", res, float(np.median(s.x_sd)))):
            weights, _ = fitting.mixture_weights(fit.fits)
            pred = fitting.average_predictive(fit.fits, x, weights, None, bounds, s.frame["x"].to_numpy(),
                                              np.full(2, sd), np.random.default_rng(seed))
            q = pred.quantiles(np.random.default_rng(seed + 1))
            widths[name] = q[scoring.QUANTILE_LEVELS.index(0.9)] - q[scoring.QUANTILE_LEVELS.index(0.1)]
        rows.append({"series": label, "rows with uncertain compute": int((s.x_sd > 0).sum()),
                     "median sd (decades)": float(np.median(s.x_sd[s.x_sd > 0])),
                     "80% width at edge": widths["exact"][0], "with compute error": widths["uncertain"][0],
                     "x wider at edge": widths["uncertain"][0] / widths["exact"][0],
                     "x wider +1 decade": widths["uncertain"][1] / widths["exact"][1],
                     "scale": "log10" if s.log_response else s.unit})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit-draws", type=int, default=200, help="bootstrap draws of the full-data fits (they give "
                    "P(bounded), not the backtests; the default run uses 1000)")
    ap.add_argument("--backtest-draws", type=int, default=200, help="bootstrap draws in each backtest fit (the "
                    "default run's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--series", action="store_true", help="print each series' coverage before and after")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        ingest.ingest([str(ROOT / "data" / "raw")], db=db)
        horizons_stage.run(db, "bench", RunConfig.build(draws=Draws(horizons=200), seed=args.seed))
        every_model = fit_stage.load_series(db, frontier_kinds=())
        frontier = fit_stage.load_series(db)      # the run's default: horizon date trends on the frontier
    print(f"{len(every_model)} series of the bundled snapshot; backtest draws {args.backtest_draws}, "
          f"seed {args.seed}")
    rows, kept, fits = [], {}, {}
    for name, options, average, on_frontier in STEPS:
        t0 = time.perf_counter()
        fits[name] = {}
        points = held_out_points(frontier if on_frontier else every_model, options, average, args.fit_draws,
                                 args.backtest_draws, args.seed, fits[name])
        kept[name] = points
        rows.append({"step": name, **summary(points), "seconds": time.perf_counter() - t0})
    last = kept[STEPS[-1][0]]
    groups = last[KEYS].astype(str).agg("\x1f".join, axis=1)
    _, table = scoring.conformal_calibration(last, groups, last["beyond_span"])
    recalibrated = scoring.loso_recalibrated(last, groups, last["beyond_span"])
    rows.append({"step": "+ conformal (leave one series out)", **summary(recalibrated), "seconds": 0.0})
    frame = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print("\nconformal factors (fitted on every series; what a run applies to its forecasts):")
        print(table[["beyond_span", "nominal", "factor", "n", "n_series", "coverage_model", "coverage_calibrated"]]
              .to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    final = frame.iloc[-1]
    ok80, ok95 = 0.72 <= final["cov80"] <= 0.88, 0.88 <= final["cov95"] <= 0.98
    print(f"\npooled 80% coverage {final['cov80']:.3f} ({'PASS' if ok80 else 'FAIL'}: 0.72-0.88), "
          f"95% coverage {final['cov95']:.3f} ({'PASS' if ok95 else 'FAIL'}: 0.88-0.98)")
    wider = widening(fits["+ bounded noise"], fits["+ compute uncertainty"], args.seed)
    if len(wider):
        print("\nhow much compute uncertainty widens the model-averaged 80% interval of a new model "
              "(at the largest compute in the data, and one decade past it):")
        with pd.option_context("display.width", 250, "display.max_colwidth", 70):
            print(wider.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.series:
        before, after = per_series(kept[STEPS[0][0]]), per_series(recalibrated)
        both = before.add_suffix(" before").join(after.add_suffix(" after"))
        with pd.option_context("display.width", 200):
            print(both.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
