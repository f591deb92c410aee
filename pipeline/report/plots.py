"""Plots as inline SVG strings. Only draws what the store holds: nothing here fits or projects."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import textwrap
from typing import NamedTuple

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

COLORS = {"logistic": "#1f77b4", "gompertz": "#2ca02c", "power_law": "#d62728", "linear_log": "#9467bd",
          "log_log": "#8c564b", "saturating_loss": "#17becf", "exponential_time": "#d62728", "exp_power_law": "#e377c2"}
PNG_DPI = 160  # sharp on paper at the PDF's plot width, a few tens of kB per figure
plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "svg.fonttype": "none", "svg.hashsalt": "scalegap", "figure.dpi": 100})


class Plot(NamedTuple):
    """One figure drawn twice: inline SVG for the HTML page, a PNG (base64) for the PDF, where weasyprint
    lays out and draws a hundred inline SVGs several times slower than it embeds pictures."""
    svg: str
    png: str


def _svg(fig) -> Plot:
    # One layout pass for the tight box, reused by both outputs (savefig's "tight" would draw twice each).
    box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches=box, metadata={"Date": None})
    picture = io.BytesIO()
    fig.savefig(picture, format="png", dpi=PNG_DPI, bbox_inches=box)
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    # Many SVGs share one HTML page: ids like "patch_12" must not collide, and must be the same on a re-render.
    prefix = "s" + hashlib.sha1(text.encode()).hexdigest()[:8] + "-"
    text = re.sub(r'id="([^"]+)"', rf'id="{prefix}\1"', text)
    text = re.sub(r'(url\(#|href="#)([^)"]+)', rf"\1{prefix}\2", text)
    return Plot(text, base64.b64encode(picture.getvalue()).decode("ascii"))


def literal(value) -> str:
    """A name from a user's file as literal text: matplotlib reads a pair of '$' as math (mathtext), and a
    metric named 'cost $\\notacommand{x}$' would fail the whole report."""
    return str(value).replace("$", r"\$")


def x_label(x_axis: str) -> str:
    return {"compute": "training compute, log10 FLOP", "inference": "inference budget, log10 samples per task"}.get(
        x_axis, "release date (year)")


def y_label(unit: str, metric: str) -> str:
    metric = literal(metric)
    return {"fraction": f"{metric} (fraction correct)", "elo": f"{metric} (Elo)", "minutes": f"{metric} (minutes, log scale)",
            "nats": f"{metric} (nats/token)", "index": f"{metric} (index)"}.get(unit, metric)


def fit_plot(points: pd.DataFrame, bands: pd.DataFrame, fits: pd.DataFrame, best: str | None,
             x_axis: str, unit: str, metric: str) -> Plot:
    """Data, every family's fitted curve, and the best family's mean and prediction bands; residuals below."""
    fig, (ax, res) = plt.subplots(2, 1, figsize=(6.4, 4.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.scatter(points["x"], points["y"], s=9, color="black", alpha=0.6, label="published", zorder=3)
    for family, part in bands.sort_values("x").groupby("family", sort=False):
        weight = fits.loc[fits["family"] == family, "weight"]
        label = literal(f"{family} (w={float(weight.iloc[0]):.2f})" if len(weight) else family)
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


TIME_LABEL = {"year": "year", "decades": "decades of frontier compute growth (no calendar: agents' own compute)"}


def _time_axis(trajectory: pd.DataFrame) -> str:
    """Calendar years, or for a projection in compute multiples the decades of frontier growth."""
    return "year" if trajectory["year"].notna().any() else "decades"


def gap_plot(trajectory: pd.DataFrame, title: str, unit: str) -> Plot:
    t_col = _time_axis(trajectory)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 3.8), sharex=True, gridspec_kw={"height_ratios": [1.3, 1]})
    top.plot(trajectory[t_col], trajectory["frontier"], label="frontier", color="#d62728")
    top.plot(trajectory[t_col], trajectory["meek"], label="meek", color="#1f77b4")
    if unit == "minutes" or (trajectory["frontier"] > 0).all() and trajectory["frontier"].max() / max(trajectory["frontier"].min(), 1e-300) > 1e3:
        top.set_yscale("log")
    top.set_ylabel(unit or "value")
    top.legend(fontsize=7, frameon=False)
    top.set_title(literal(title), fontsize=8)
    bottom.plot(trajectory[t_col], trajectory["gap"], color="black", label="gap (frontier - meek)")
    if "gap_lo" in trajectory and trajectory["gap_lo"].notna().any():
        bottom.fill_between(trajectory[t_col], trajectory["gap_lo"], trajectory["gap_hi"], color="grey", alpha=0.3,
                            label="10-90% (scenario x fit draws)")
    if (trajectory["gap"] > 0).all() and trajectory["gap"].max() / max(trajectory["gap"].min(), 1e-300) > 1e3:
        bottom.set_yscale("log")
    bottom.set_ylabel("gap")
    bottom.set_xlabel(TIME_LABEL[t_col])
    bottom.legend(fontsize=7, frameon=False)
    return _svg(fig)


def pair_plot(panels: list[tuple[str, pd.DataFrame, pd.DataFrame | None]], x_axis: str) -> Plot:
    """The same models on each scale of a capability, side by side (bounded scale first); below each, the
    projected frontier-minus-meek gap on that scale when the series was projected."""
    with_gap = any(gap is not None for _, _, gap in panels)
    fig, axes = plt.subplots(2 if with_gap else 1, len(panels), figsize=(2.3 * len(panels), 4.0 if with_gap else 2.1),
                             squeeze=False)
    for col, (title, frame, gap) in enumerate(panels):
        ax = axes[0, col]
        ax.scatter(frame["x"], frame["y"], s=5, color="black", alpha=0.6)
        ax.set_title(literal(textwrap.fill(title, 38)), fontsize=7)  # long metric names must not run into the next panel
        ax.set_xlabel(x_label(x_axis), fontsize=7)
        scale = title.split(" (")[0].rsplit(":", 1)[-1]
        ax.set_ylabel(literal(scale if len(scale) <= 24 else scale[:23] + "…"), fontsize=7)
        ax.tick_params(labelsize=6)
        if with_gap:
            below = axes[1, col]
            t_col = "year"
            if gap is not None:
                t_col = _time_axis(gap)
                below.plot(gap[t_col], gap["gap"], color="black", lw=1)
                positive = gap["gap"][gap["gap"] > 0]
                growing = len(positive) > 2 and positive.iloc[-1] >= positive.max()
                if growing and positive.max() / positive.min() > 1e3:
                    below.set_yscale("log")   # a growing horizon gap spans decades; a closing one stays linear
                else:
                    below.axhline(0, color="grey", lw=0.5)
            below.set_xlabel("year" if t_col == "year" else "decades of frontier growth", fontsize=7)
            below.set_ylabel("gap (frontier - meek)", fontsize=7)
            below.tick_params(labelsize=6)
    fig.tight_layout()
    return _svg(fig)


def horizon_plot(horizons: pd.DataFrame) -> Plot:
    """Per-model 50% time horizons (stored by the horizons stage) against release date, log minutes."""
    frame = horizons.dropna(subset=["release_date", "p50"]).sort_values("release_date")
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    for extrapolated, part in frame.groupby(frame["extrapolated"].fillna(False).astype(bool)):
        dates = pd.to_datetime(part["release_date"])
        low = (part["p50"] - part["p50_lo"]).clip(lower=0).fillna(0)
        high = (part["p50_hi"] - part["p50"]).clip(lower=0).fillna(0)
        ax.errorbar(dates, part["p50"], yerr=[low, high], fmt="o", ms=3, lw=0.8, capsize=1.5,
                    color="grey" if extrapolated else "#1f77b4",
                    label="below the shortest task (not used)" if extrapolated else "50% horizon, 95% interval")
    ax.set_yscale("log")
    ax.set_ylabel("50% time horizon (minutes)")
    ax.set_xlabel("release date")
    ax.legend(fontsize=6, frameon=False, loc="upper left")
    return _svg(fig)


def sensitivity_plot(sens: pd.DataFrame, until_year: float | None = None) -> Plot:
    """Headline gaps as each growth rate varies (values stored by the project stage): the year the gap peaks
    (curves whose gap peaks inside the window) and the peak gap relative to its value at the scenario's rates."""
    curves = list(dict.fromkeys(sens["curve"]))[:8]
    factors = ("hardware", "algorithms", "investment")
    fig, axes = plt.subplots(2, 3, figsize=(7.0, 4.6), sharey="row", sharex="col")
    end = until_year if until_year is not None else float(sens["peak_year"].max())
    for col, factor in enumerate(factors):
        part = sens[sens["factor"] == factor]
        for i, curve in enumerate(curves):
            c = part[part["curve"] == curve].sort_values("factor_value")
            if c.empty:
                continue
            colour, label = f"C{i % 10}", literal(textwrap.shorten(curve, 48, placeholder="…"))
            peaks_inside = c["peak_year"] < end - 0.05
            # a gap still growing at the window's end has no peak year to show
            axes[0, col].plot(c["factor_value"].where(peaks_inside), c["peak_year"].where(peaks_inside),
                              marker="o", ms=2, lw=1, color=colour, label=label)
            centre = c["peak_gap"].iloc[len(c) // 2]
            ratio = c["peak_gap"] / centre if np.isfinite(centre) and centre != 0 else c["peak_gap"] * np.nan
            axes[1, col].plot(c["factor_value"], ratio, marker="o", ms=2, lw=1, color=colour,
                              label=None if peaks_inside.any() else label)
        for ax in axes[:, col]:
            ax.set_xscale("log")
            # growth factors span well under a decade: plain numbers, not 3x10^0
            ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.2g"))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xticks(sorted(set(part["factor_value"].round(3)))[::2] or [1])
            ax.tick_params(labelsize=6)
        axes[1, col].set_yscale("log")
        axes[1, col].set_xlabel(f"{factor} growth (x per year)", fontsize=7)
    axes[0, 0].set_ylabel("year the gap peaks", fontsize=7)
    axes[1, 0].set_ylabel("peak gap ÷ peak gap\nat the scenario's rates", fontsize=7)
    handles, labels = [], []
    for ax in axes[:, 0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=6, frameon=False, bbox_to_anchor=(0.5, -0.01))
    fig.tight_layout(rect=(0, 0.05 + 0.025 * ((len(labels) + 1) // 2), 1, 1))
    return _svg(fig)
