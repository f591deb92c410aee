"""Plots as inline SVG strings. Only draws what the store holds: nothing here fits or projects."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import textwrap
from typing import NamedTuple

import numpy as np
import pandas as pd

PNG_DPI = 150  # sharp on paper at the PDF's plot width, a few tens of kB per figure


def _matplotlib():
    """(matplotlib, pyplot), loaded and set up on the first drawing: a report whose figures all come from the
    cache draws none, and does not load it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "svg.fonttype": "none", "svg.hashsalt": "scalegap",
                         "figure.dpi": 100})
    return matplotlib, plt


class Plot(NamedTuple):
    """One figure drawn twice: inline SVG for the HTML page, a PNG (base64) for the PDF, where weasyprint
    lays out and draws a hundred inline SVGs several times slower than it embeds pictures."""
    svg: str
    png: str


def _svg(fig, svg: bool = True) -> Plot:
    """PNG for the PDF, and the SVG unless the page draws this figure itself (svg=False: the HTML has an
    interactive figure from the same rows, and the SVG would only cost time)."""
    matplotlib, plt = _matplotlib()
    # One layout pass for the tight box, reused by both outputs (savefig's "tight" would draw twice each).
    box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1)
    picture = io.BytesIO()
    fig.savefig(picture, format="png", dpi=PNG_DPI, bbox_inches=box)
    if not svg:
        plt.close(fig)
        return Plot("", base64.b64encode(picture.getvalue()).decode("ascii"))
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches=box, metadata={"Date": None})
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


DECADES_LABEL = "decades of frontier compute growth"


def _time_axis(trajectory: pd.DataFrame) -> str:
    """Calendar years, or for a projection in compute multiples the decades of frontier growth."""
    return "year" if trajectory["year"].notna().any() else "decades"


def sensitivity_plot(sens: pd.DataFrame, until_year: float | None = None) -> Plot:
    """Headline gaps as each growth rate varies (values stored by the project stage): the year the gap peaks
    (curves whose gap peaks inside the window) and the peak gap relative to its value at the scenario's rates."""
    matplotlib, plt = _matplotlib()
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
    axes[0, 0].set_ylabel("when the gap peaks", fontsize=7)
    # a decimal year read as a date: 2027-07, never 2027.5
    axes[0, 0].yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _: f"{int(v // 1)}-{min(int(v % 1 * 12) + 1, 12):02d}" if v % 1 else f"{int(v)}"))
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


# ------------------------------------------------------------------ one page per metric group (the main report)
class Line(NamedTuple):
    """A series on a group page: its points and its best family's curve with the 95% band for a new observation."""
    label: str
    points: pd.DataFrame        # x, y
    band: pd.DataFrame          # x, fit, pred_lo95, pred_hi95 (may be empty)


class Gap(NamedTuple):
    """A projected gap: the trajectory (year or decades; frontier, meek, gap and its band) and its headline row."""
    label: str
    trajectory: pd.DataFrame
    peak_year: float | None


def calendar(years) -> pd.DatetimeIndex:
    """Decimal years as dates, so time axes carry calendar dates (2027-04), never 2027.25."""
    years = np.asarray(years, dtype=float)
    whole = np.floor(years)
    stamps = pd.to_datetime(whole.astype(int).astype(str), format="%Y") + pd.to_timedelta((years - whole) * 365.25, unit="D")
    return pd.DatetimeIndex(stamps)


def _date_axis(ax) -> None:
    matplotlib, plt = _matplotlib()
    locator = matplotlib.dates.AutoDateLocator(minticks=3, maxticks=8)
    locator.intervald[matplotlib.dates.YEARLY] = [1, 2, 5, 10, 20, 25, 50, 100, 200]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(matplotlib.dates.ConciseDateFormatter(locator))


def gap_scale(unit: str) -> str:
    """How a projected gap reads: points for a fraction, a ratio for minutes, a difference on the rest."""
    return {"fraction": "points", "minutes": "ratio"}.get(unit, "difference")


def scaled_gap(trajectory: pd.DataFrame, unit: str) -> pd.DataFrame:
    """The gap as the page draws it: percentage points, frontier / meek, or the plain difference."""
    out = trajectory.copy()
    scale = gap_scale(unit)
    if scale == "points":
        for c in ("gap", "gap_lo", "gap_hi"):
            if c in out:
                out[c] = out[c] * 100.0
    elif scale == "ratio":
        if "ratio" not in out or out["ratio"].isna().all():
            with np.errstate(all="ignore"):
                out["ratio"] = out["frontier"] / out["meek"]
        with np.errstate(all="ignore"):
            for c in ("gap_lo", "gap_hi"):  # the band of frontier - meek, as a ratio about the central meek
                if c in out:
                    out[c.replace("gap", "ratio")] = (out["meek"] + out[c]) / out["meek"]
        out["gap"] = out["ratio"]
        if "ratio_lo" in out:
            out["gap_lo"], out["gap_hi"] = out["ratio_lo"], out["ratio_hi"]
    return out


GAP_LABEL = {"points": "gap (percentage points)", "ratio": "frontier ÷ meek (log scale)", "difference": "gap (frontier − meek)"}


def group_figure(title: str, compute: list[Line], date: list[Line], gaps: list[Gap], unit: str, metric_label: str,
                 observed: pd.DataFrame | None, counterpart: tuple[str, pd.DataFrame] | None, today: float,
                 implied: pd.DataFrame | None = None):
    """A metric group's page: the data against compute and against date with each source's best fit; the
    projected frontier-minus-meek gap on calendar dates beside the gap observed on history; the same gap on the
    counterpart scale (the paper's point: one closes while the other grows)."""
    matplotlib, plt = _matplotlib()
    fig, axes = plt.subplots(2, 2, figsize=(7.2, 5.0))
    ax_c, ax_d, ax_g, ax_p = axes.ravel()
    log_y = unit == "minutes"
    for ax, lines, axis in ((ax_c, compute, "compute"), (ax_d, date, "date")):
        if not lines:
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"no series against {'release date' if axis == 'date' else 'compute'}",
                    ha="center", va="center", fontsize=7, color="grey", transform=ax.transAxes)
            continue
        for i, line in enumerate(lines):
            colour = f"C{i % 10}"
            x = calendar(line.points["x"]) if axis == "date" else line.points["x"]
            ax.scatter(x, line.points["y"], s=5, color=colour, alpha=0.55, label=literal(line.label))
            if len(line.band):
                b = line.band.sort_values("x")
                bx = calendar(b["x"]) if axis == "date" else b["x"]
                ax.plot(bx, b["fit"], color=colour, lw=1.2)
                ax.fill_between(bx, b["pred_lo95"], b["pred_hi95"], color=colour, alpha=0.10)
        if log_y:
            ax.set_yscale("log")
        elif unit == "fraction":
            ax.set_ylim(-0.02, 1.02)
        if axis == "date":
            _date_axis(ax)
        ax.set_xlabel(x_label(axis), fontsize=7)
        ax.set_ylabel(y_label(unit, metric_label), fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5.5, frameon=False, loc="upper left" if unit != "nats" else "upper right")
    _gap_panel(ax_g, gaps, unit, observed, today, implied)
    if counterpart is not None and len(counterpart[1]):
        name, frame = counterpart
        t_col = _time_axis(frame)
        x = calendar(frame["year"]) if t_col == "year" else frame["decades"]
        ax_p.plot(x, frame["gap"], color="black", lw=1.1)
        positive = frame["gap"][frame["gap"] > 0]
        if len(positive) > 2 and positive.max() / max(positive.min(), 1e-300) > 1e3:
            ax_p.set_yscale("log")
        else:
            ax_p.axhline(0, color="grey", lw=0.5)
        if t_col == "year":
            _date_axis(ax_p)
        ax_p.set_title(literal(textwrap.fill(f"the same gap on the counterpart scale: {name}", 60)), fontsize=7)
        ax_p.set_xlabel("date" if t_col == "year" else DECADES_LABEL, fontsize=7)
        ax_p.set_ylabel("gap on that scale", fontsize=7)
        ax_p.tick_params(labelsize=6)
    else:
        ax_p.set_axis_off()
    fig.suptitle(literal(title), fontsize=9)
    fig.tight_layout()
    return fig


def group_plot(*args) -> Plot:
    """The group page's figure as a PNG for the PDF (the HTML draws its own, interactive, from the same rows)."""
    return _svg(group_figure(*args), svg=False)


def _gap_panel(ax, gaps: list[Gap], unit: str, observed: pd.DataFrame | None, today: float,
               implied: pd.DataFrame | None = None) -> None:
    scale = gap_scale(unit)
    if not gaps and (observed is None or observed.empty):
        ax.set_axis_off()
        return
    calendar_time = all(_time_axis(g.trajectory) == "year" for g in gaps) if gaps else True
    lag_ax = None
    for i, g in enumerate(gaps):
        frame = scaled_gap(g.trajectory, unit)
        colour = "black" if len(gaps) == 1 else f"C{i % 10}"
        t = calendar(frame["year"]) if calendar_time else frame["decades"].to_numpy(float)
        ax.plot(t, frame["gap"], color=colour, lw=1.2, label=literal(f"projected: {g.label}"))
        if "gap_lo" in frame and frame["gap_lo"].notna().any():
            ax.fill_between(t, frame["gap_lo"], frame["gap_hi"], color=colour, alpha=0.15)
        if scale != "ratio" and len(frame) and np.isfinite(frame["gap"]).any():
            i_peak = int(np.nanargmax(frame["gap"].to_numpy()))
            if 0 < i_peak < len(frame) - 1:
                past = calendar_time and frame["year"].iloc[i_peak] < today
                ax.annotate("peak (past)" if past else "peak", (t[i_peak], frame["gap"].iloc[i_peak]), fontsize=6,
                            xytext=(0, 4), textcoords="offset points", ha="center", color=colour)
        if scale == "ratio" and "lag_months" in frame and frame["lag_months"].notna().any():
            lag_ax = lag_ax or ax.twinx()
            lag_ax.plot(t, frame["lag_months"], color=colour, lw=0.9, ls="--")
            lag_ax.set_ylabel("months the meek actor trails (dashed)", fontsize=6)
            lag_ax.tick_params(labelsize=6)
    if observed is not None and len(observed) and calendar_time:
        obs = observed.sort_values("date")
        y = obs["gap"].to_numpy(float)
        lo, hi = obs["gap_lo"].to_numpy(float), obs["gap_hi"].to_numpy(float)
        ax.errorbar(pd.to_datetime(obs["date"]), y, yerr=[np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)],
                    fmt="o", ms=2.2, lw=0.6, color="#b3261e", alpha=0.7, label="observed: open vs closed weights"
                    if (obs["comparison"] == "open_vs_closed").all() else "observed (history)")
    if implied is not None and len(implied) and calendar_time:
        ax.plot(pd.to_datetime(implied["date"]), implied["gap"], color="#b3261e", lw=0.9, ls="--",
                label="fit at both groups' compute")
    if calendar_time:
        ax.axvline(calendar([today])[0], color="grey", lw=0.6, ls=":")
        _date_axis(ax)
    if scale == "ratio":
        ax.set_yscale("log")
    else:
        ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel(GAP_LABEL[scale], fontsize=7)
    ax.set_xlabel("date (dotted: this run)" if calendar_time else DECADES_LABEL, fontsize=7)
    ax.set_title("frontier − meek, projected from where the data end", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=5.5, frameon=False, loc="best")
