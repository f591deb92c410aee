"""Plots as inline SVG strings. Only draws what the store holds: nothing here fits or projects."""

from __future__ import annotations

import hashlib
import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

COLORS = {"logistic": "#1f77b4", "gompertz": "#2ca02c", "power_law": "#d62728", "linear_log": "#9467bd",
          "log_log": "#8c564b", "saturating_loss": "#17becf", "exponential_time": "#d62728", "exp_power_law": "#e377c2"}
plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "svg.fonttype": "none", "svg.hashsalt": "scalegap", "figure.dpi": 100})


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    # Many SVGs share one HTML page: ids like "patch_12" must not collide, and must be the same on a re-render.
    prefix = "s" + hashlib.sha1(text.encode()).hexdigest()[:8] + "-"
    text = re.sub(r'id="([^"]+)"', rf'id="{prefix}\1"', text)
    return re.sub(r'(url\(#|href="#)([^)"]+)', rf"\1{prefix}\2", text)


def x_label(x_axis: str) -> str:
    return "training compute, log10 FLOP" if x_axis == "compute" else "release date (year)"


def y_label(unit: str, metric: str) -> str:
    return {"fraction": f"{metric} (fraction correct)", "elo": f"{metric} (Elo)", "minutes": f"{metric} (minutes, log scale)",
            "nats": f"{metric} (nats/token)", "index": f"{metric} (index)"}.get(unit, metric)


def fit_plot(points: pd.DataFrame, bands: pd.DataFrame, fits: pd.DataFrame, best: str | None,
             x_axis: str, unit: str, metric: str) -> str:
    """Data, every family's fitted curve, and the best family's mean and prediction bands; residuals below."""
    fig, (ax, res) = plt.subplots(2, 1, figsize=(6.4, 4.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.scatter(points["x"], points["y"], s=9, color="black", alpha=0.6, label="published", zorder=3)
    for family, part in bands.sort_values("x").groupby("family", sort=False):
        weight = fits.loc[fits["family"] == family, "weight"]
        label = f"{family} (w={float(weight.iloc[0]):.2f})" if len(weight) else family
        ax.plot(part["x"], part["fit"], color=COLORS.get(family, "grey"), lw=1.8 if family == best else 0.9,
                label=label)
        if family == best:
            ax.fill_between(part["x"], part["pred_lo95"], part["pred_hi95"], color=COLORS.get(family, "grey"), alpha=0.12,
                            label="95% band, new observation")
            ax.fill_between(part["x"], part["mean_lo95"], part["mean_hi95"], color=COLORS.get(family, "grey"), alpha=0.3,
                            label="95% band, mean curve")
    if unit == "minutes":
        ax.set_yscale("log")
    elif len(points):
        # Frame the data, not the widest band: a poorly constrained family must not squash the points.
        lo, hi = float(points["y"].min()), float(points["y"].max())
        pad = 0.25 * (hi - lo or abs(hi) or 1.0)
        lo, hi = lo - pad, hi + pad
        if unit == "fraction":
            lo, hi = max(lo, -0.05), min(hi, 1.05)
        ax.set_ylim(lo, hi)
    ax.set_ylabel(y_label(unit, metric))
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if best is not None and len(bands):
        b = bands[bands["family"] == best].sort_values("x")
        fitted = np.interp(points["x"], b["x"], b["fit"])
        resid = np.log10(points["y"]) - np.log10(np.maximum(fitted, 1e-300)) if unit == "minutes" else points["y"] - fitted
        res.scatter(points["x"], resid, s=6, color=COLORS.get(best, "grey"))
        res.axhline(0, color="grey", lw=0.6)
        res.set_ylabel("residual" + (" (log10)" if unit == "minutes" else ""))
    res.set_xlabel(x_label(x_axis))
    return _svg(fig)


def gap_plot(trajectory: pd.DataFrame, title: str, unit: str) -> str:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 3.8), sharex=True, gridspec_kw={"height_ratios": [1.3, 1]})
    top.plot(trajectory["year"], trajectory["frontier"], label="frontier", color="#d62728")
    top.plot(trajectory["year"], trajectory["meek"], label="meek", color="#1f77b4")
    if unit == "minutes" or (trajectory["frontier"] > 0).all() and trajectory["frontier"].max() / max(trajectory["frontier"].min(), 1e-300) > 1e3:
        top.set_yscale("log")
    top.set_ylabel(unit or "value")
    top.legend(fontsize=7, frameon=False)
    top.set_title(title, fontsize=8)
    bottom.plot(trajectory["year"], trajectory["gap"], color="black", label="gap (frontier - meek)")
    if "gap_lo" in trajectory and trajectory["gap_lo"].notna().any():
        bottom.fill_between(trajectory["year"], trajectory["gap_lo"], trajectory["gap_hi"], color="grey", alpha=0.3,
                            label="10-90% (scenario x fit draws)")
    if (trajectory["gap"] > 0).all() and trajectory["gap"].max() / max(trajectory["gap"].min(), 1e-300) > 1e3:
        bottom.set_yscale("log")
    bottom.set_ylabel("gap")
    bottom.set_xlabel("year")
    bottom.legend(fontsize=7, frameon=False)
    return _svg(fig)


def pair_plot(bounded: pd.DataFrame, unbounded: pd.DataFrame, names: tuple[str, str], x_axis: str) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 2.4))
    for ax, frame, name in zip(axes, (bounded, unbounded), names, strict=True):
        ax.scatter(frame["x"], frame["y"], s=6, color="black")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel(x_label(x_axis))
    fig.tight_layout()
    return _svg(fig)


def sensitivity_plot(sens: pd.DataFrame) -> str:
    curves = list(dict.fromkeys(sens["curve"]))[:6]
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.6), sharey=False)
    for ax, factor in zip(axes, ("hardware", "algorithms", "investment"), strict=True):
        part = sens[sens["factor"] == factor]
        for curve in curves:
            c = part[part["curve"] == curve]
            ax.plot(c["factor_value"], c["peak_year"], marker="o", ms=2, lw=1, label=curve[:28])
        ax.set_xscale("log")
        ax.set_xlabel(f"{factor} growth (x/yr)")
        ax.set_title(f"peak year vs {factor}", fontsize=8)
    axes[0].set_ylabel("gap peak year")
    axes[-1].legend(fontsize=5.5, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return _svg(fig)
