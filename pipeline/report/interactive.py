"""Interactive figures for the HTML report: plotly.js embedded once in the page, each figure a <div> and a
call to Plotly.newPlot. Pure functions from the stored frames to HTML fragments; nothing here fits or
projects, and nothing reaches the network.

Offline: `script()` inlines the plotly.js bundle that ships inside the Python wheel. The figures use only
SVG scatter traces, so plotly.js fetches nothing at run time (its URLs serve map and geo traces, the
"Share chart" upload and the logo's link: the figures use no maps, and CONFIG hides the button and the logo),
and MathJax is off (`typesetMath: false`), so a `$` in a model name stays text and no warning is logged.

Deterministic: the same frames give the same bytes (no random ids, floats rounded to a few significant
digits, which also keeps a figure to tens of kB).

Builders return plain figure dicts ({"data": [...], "layout": {...}}); `figure_div` renders one. Text from
users' files (models, sources, metrics) is HTML-escaped, since plotly reads labels as a small subset of HTML.
"""

from __future__ import annotations

import datetime
import functools
import html
import json
import math
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
from markupsafe import Markup

# plotly.js 4 adds a "Share chart" button that uploads the figure to Plotly's cloud; the logo links to plotly.com
CONFIG = {"displaylogo": False, "responsive": True, "typesetMath": False, "showSendToCloud": False,
          "plotlyServerURL": ""}
DIGITS = 5  # significant digits of every float in a figure's JSON
FONT = {"size": 11}
COLORS = {"logistic": "#1f77b4", "gompertz": "#2ca02c", "power_law": "#d62728", "linear_log": "#9467bd",
          "log_log": "#8c564b", "saturating_loss": "#17becf", "exponential_time": "#d62728", "exp_power_law": "#e377c2"}
OTHER_COLORS = ("#7f7f7f", "#bcbd22", "#ff7f0e", "#8c564b", "#e377c2")
FRONTIER, MEEK, GAP = "#d62728", "#1f77b4", "#000000"
COMPARISON_COLORS = ("#ff7f0e", "#9467bd", "#2ca02c", "#8c564b", "#17becf")
RATIO_UNITS = {"minutes"}  # unbounded, positive scales: the gap is the ratio frontier / meek
UNIT_LABEL = {"fraction": "% correct", "minutes": "minutes", "elo": "Elo", "nats": "nats/token", "index": "index"}
POINT_UNITS = {"fraction": "percentage points", "elo": "Elo points", "index": "index points", "nats": "nats/token"}
LOG_FLOOR = 1e-9  # where a band's lower edge is not positive on a log axis (below any framed range)
ID = re.compile(r"[A-Za-z][A-Za-z0-9_:.\-]*")


# ------------------------------------------------------------------ page fragments
@functools.cache
def _bundle() -> str:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    # inside a <script> element only "</script" (any case) would end it early; plotly.js has none today
    return re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE)


def script() -> Markup:
    """The whole plotly.js bundle (about 4.8 MB) in one <script> tag: put it once in the page's <head>."""
    return Markup(f'<script type="text/javascript">{_bundle()}</script>')


def to_json(value) -> str:
    """Compact JSON with floats to DIGITS significant digits, NaN/inf as null, safe inside <script>."""
    text = json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    # '<', '>' and '&' only occur inside JSON strings, where the escapes read back as the same characters
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def figure_div(fig: Mapping, div_id: str) -> Markup:
    """A <div> and the inline script drawing `fig` (a builder's dict) into it. The id comes from the caller's
    anchor (e.g. 'series-3-fit'), so a re-render gives the same bytes."""
    if not ID.fullmatch(div_id):
        raise ValueError(f"figure id {div_id!r}: use letters, digits, '-', '_', ':' or '.', starting with a letter")
    layout = dict(fig.get("layout", {}))
    height = int(layout.get("height") or 420)
    config = {**CONFIG, **fig.get("config", {})}
    call = f'Plotly.newPlot("{div_id}",{to_json(list(fig.get("data", [])))},{to_json(layout)},{to_json(config)});'
    return Markup(f'<div id="{div_id}" class="interactive-figure" style="height:{height}px"></div>\n'
                  f"<script>{call}</script>")


# ------------------------------------------------------------------ values and names as a reader sees them
def _plain(value):
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, pd.Series | pd.Index | np.ndarray | list | tuple):
        return [_plain(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return float(f"{value:.{DIGITS}g}") if math.isfinite(value) else None
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _text(value) -> str:
    """User text as plotly label text: its '<b>'-style markup is escaped, so it shows as typed."""
    return html.escape("" if value is None else str(value), quote=False)


def _finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def iso_date(value) -> str | None:
    """A decimal year as a calendar date, the inverse of schema.decimal_year (2023.197 -> '2023-03-14')."""
    if not _finite(value):
        return None
    value = float(value)
    year = math.floor(value)
    day = round((value - year) * 365.25)
    start = datetime.date(year, 1, 1)
    length = (datetime.date(year + 1, 1, 1) - start).days
    return (start + datetime.timedelta(days=min(day, length - 1))).isoformat()


def iso_dates(values) -> list[str | None]:
    return [iso_date(v) for v in values]


def month(value) -> str:
    """'2024-05' for a decimal year, a date or a timestamp; '' when unknown."""
    if isinstance(value, datetime.date | pd.Timestamp | np.datetime64 | str):
        stamp = pd.Timestamp(value)
        return "" if pd.isna(stamp) else f"{stamp.year}-{stamp.month:02d}"
    text = iso_date(value)
    return text[:7] if text else ""


def sci(value: float) -> str:
    """2.7e25: one decimal of mantissa, no '+' or leading zeros in the exponent."""
    mantissa, exponent = f"{float(value):.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def flop(value: float) -> str:
    return f"{sci(value)} FLOP" if _finite(value) and value > 0 else ""


def value_text(value, unit: str, lo=None, hi=None) -> str:
    """A value with its unit; accuracies as percentages; '[lo – hi]' when an interval is stored."""
    if not _finite(value):
        return ""

    def one(v: float) -> str:
        if unit == "fraction":
            return f"{100 * v:.1f}%"
        if unit == "elo":
            return f"{v:.0f}"
        return f"{v:.3g}"

    suffix = {"fraction": "", "elo": " Elo", "minutes": " min", "nats": " nats/token"}.get(unit, f" {unit}" if unit
                                                                                            and unit != "index" else "")
    text = one(float(value)) + suffix
    if _finite(lo) and _finite(hi):
        text += f" [{one(float(lo))} – {one(float(hi))}]"
    return text


HEX_AGENT = re.compile(r"b(\d+)_frontier@(-?\d+(?:\.\d+)?)")
HEX_RUN = re.compile(r"b(\d+)_run(\d+)#p(\d+)")
CHINCHILLA = re.compile(r"chinchilla_pt(\d+)_N([0-9.e+\-]+)_C([0-9.e+\-]+)")


def display_model(name) -> str:
    """Model names a person can read. The Hex boards' points (pipeline.sources.jones_hex) are named by board,
    curve and log10 training compute: 'b3_frontier@11.550' -> 'Hex 3x3 agent, 3.5e11 FLOP', a training run's
    snapshot 'b5_run07#p012' -> 'Hex 5x5 run 7, snapshot 12'; Chinchilla's digitized points
    'chinchilla_pt023_N1.14e+09_C9.24e+19' -> 'Chinchilla run 23: 1.1e9 parameters, 9.2e19 FLOP'. Others pass through."""
    text = "" if name is None else str(name)
    if m := HEX_AGENT.fullmatch(text):
        size = int(m.group(1))
        return f"Hex {size}x{size} agent, {sci(10 ** float(m.group(2)))} FLOP"
    if m := HEX_RUN.fullmatch(text):
        size = int(m.group(1))
        return f"Hex {size}x{size} run {int(m.group(2))}, snapshot {int(m.group(3))}"
    if m := CHINCHILLA.fullmatch(text):
        try:
            params, compute = float(m.group(2)), float(m.group(3))
        except ValueError:
            return text
        return f"Chinchilla run {int(m.group(1))}: {sci(params)} parameters, {sci(compute)} FLOP"
    return text


# ------------------------------------------------------------------ shared layout
def _layout(title: str, height: int, **extra) -> dict:
    return {"title": {"text": title, "font": {"size": 13}, "x": 0, "xanchor": "left"}, "height": height,
            "font": FONT, "margin": {"l": 64, "r": 16, "t": 40, "b": 48}, "hovermode": "closest", "showlegend": True,
            "legend": {"orientation": "h", "y": -0.18, "x": 0, "font": {"size": 10}}, "paper_bgcolor": "white",
            "plot_bgcolor": "white", **extra}


def _axis(title: str, **extra) -> dict:
    return {"title": {"text": title, "font": {"size": 10}}, "showline": True, "linecolor": "#444", "gridcolor": "#e5e5e5",
            "zeroline": False, "ticks": "outside", **extra}


def _panels(n: int, gap: float = 0.07, weights: list[float] | None = None) -> list[list[float]]:
    """y domains of n stacked panels sharing one x axis, top first."""
    weights = weights or [1.0] * n
    room = 1 - gap * (n - 1)
    top, domains = 1.0, []
    for w in weights:
        height = room * w / sum(weights)
        domains.append([max(round(top - height, 4), 0.0), round(top, 4)])
        top -= height + gap
    return domains


def _y_name(i: int) -> str:
    return "y" if i == 0 else f"y{i + 1}"


def _band(x, lo, hi, name: str, color: str, opacity: float, group: str, yaxis: str = "y", visible=True,
          hover: str | None = None, shape: str = "linear") -> list[dict]:
    """Two traces filling between lo and hi: one legend entry, toggled together."""
    fill = _rgba(color, opacity)
    base = {"type": "scatter", "mode": "lines", "x": x, "yaxis": yaxis, "legendgroup": group, "visible": visible,
            "line": {"width": 0, "color": fill, "shape": shape}, **({"hovertemplate": hover} if hover else {"hoverinfo": "skip"})}
    return [{**base, "y": lo, "name": name, "showlegend": False},
            {**base, "y": hi, "name": name, "fill": "tonexty", "fillcolor": fill}]


def _rgba(color: str, opacity: float) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{opacity:g})"


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index)


def _numbers(values) -> np.ndarray:
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)


# ------------------------------------------------------------------ fitted series
X_TITLE = {"compute": "training compute (FLOP)", "inference": "inference budget (samples per task)",
           "date": "release date"}
Y_TITLE = {"fraction": "{m} (% correct)", "elo": "{m} (Elo)", "minutes": "{m} (minutes, log scale)",
           "nats": "{m} (nats/token)", "index": "{m} (index)"}


def _x_values(x, x_axis: str) -> list:
    x = _numbers(x)
    if x_axis == "date":
        return iso_dates(x)
    if x_axis in ("compute", "inference"):
        return list(np.power(10.0, x))
    return list(x)


def _x_axis_layout(x_axis: str) -> dict:
    if x_axis == "date":
        return _axis(X_TITLE["date"], type="date")
    if x_axis in ("compute", "inference"):
        return _axis(X_TITLE[x_axis], type="log", exponentformat="power")
    return _axis(x_axis)


def _y_range(y: np.ndarray, unit: str, log: bool) -> list[float] | None:
    """Frame the data, not the widest band: a poorly constrained family must not squash the points."""
    y = y[np.isfinite(y) & ((y > 0) if log else True)]
    if not len(y):
        return None
    if log:
        lo, hi = math.log10(y.min()), math.log10(y.max())
        pad = 0.25 * (hi - lo or 1.0)
        return [lo - pad, hi + pad]
    lo, hi = float(y.min()), float(y.max())
    pad = 0.25 * (hi - lo or abs(hi) or 1.0)
    lo, hi = lo - pad, hi + pad
    if unit == "fraction":
        lo, hi = max(lo, -0.05), min(hi, 1.05)
    return [lo, hi]


def _positive(log: bool, values, floor: float = math.nan) -> np.ndarray:
    """On a log axis a non-positive value cannot be drawn: a line leaves it out, a band's lower edge sits at a
    floor below the framed range (a band with holes would fill the wrong area)."""
    values = _numbers(values)
    return np.where(values > 0, values, floor) if log else values


def fit_figure(points: pd.DataFrame, bands: pd.DataFrame, fits: pd.DataFrame, best_family: str | None,
               x_axis: str, unit: str, metric: str, source_label: str) -> dict:
    """The published points of one series, every family's fitted line (the best drawn, the others a click away
    in the legend) and the best family's 95% bands for the mean curve and for a new observation.

    points: series_points rows (model, x, y; optional value_lo, value_hi, release_year, release_date,
    train_flop); bands: fit_bands rows (family, x, fit, mean_lo95, mean_hi95, pred_lo95, pred_hi95);
    fits: fits rows (family, weight). x is log10 FLOP (compute), log10 samples (inference) or a decimal
    year (date)."""
    log = unit == "minutes"
    points = points.sort_values(["x", "model"]) if len(points) else points
    x = _numbers(points["x"]) if len(points) else np.array([])
    y = _numbers(points["y"]) if len(points) else np.array([])
    release = _column(points, "release_date") if "release_date" in points.columns else _column(points, "release_year")
    compute = _numbers(_column(points, "train_flop"))
    rows = []
    for i, row in enumerate(points.to_dict("records")):
        if x_axis == "compute":
            where = flop(10 ** x[i]) if _finite(x[i]) else ""
            when = month(release.iloc[i])
        elif x_axis == "date":
            where = flop(compute[i])
            when = month(x[i])
        else:
            where = f"{10 ** x[i]:.3g} samples per task" if _finite(x[i]) else ""
            when = month(release.iloc[i])
        rows.append([_text(display_model(row["model"])), where or "compute not stated",
                     f"released {when}" if when else "release date not stated",
                     _text(value_text(y[i], unit, row.get("value_lo"), row.get("value_hi")))])
    data = []
    meta = [_text(source_label), _text(metric)]
    hover = "<b>%{customdata[0]}</b><br>%{meta[0]}<br>%{customdata[1]}<br>%{customdata[2]}<br>" \
            "%{meta[1]}: %{customdata[3]}<extra></extra>"
    published = {"type": "scatter", "mode": "markers", "name": "published", "x": _x_values(x, x_axis), "y": y,
                 "customdata": rows, "meta": meta, "hovertemplate": hover,
                 "marker": {"size": 6, "color": "rgba(0,0,0,0.65)", "line": {"width": 0}}}
    lo, hi = _numbers(_column(points, "value_lo")), _numbers(_column(points, "value_hi"))
    if np.isfinite(lo).any() and np.isfinite(hi).any():
        published["error_y"] = {"type": "data", "symmetric": False, "array": np.where(np.isfinite(hi), hi - y, 0),
                                "arrayminus": np.where(np.isfinite(lo), y - lo, 0), "thickness": 1, "width": 0,
                                "color": "rgba(0,0,0,0.35)"}
    weights = dict(zip(fits["family"], fits["weight"], strict=True)) if len(fits) else {}
    families = list(dict.fromkeys([*sorted(weights, key=lambda f: -float(weights[f] or 0)),
                                   *(bands["family"] if len(bands) else [])]))
    x_hover = {"date": "%{x|%Y-%m}", "compute": "%{x:.2e} FLOP", "inference": "%{x:.3g} samples"}.get(x_axis, "%{x}")
    y_hover = "%{y:.1%}" if unit == "fraction" else "%{y:.3g}"
    lines, clip = [], functools.partial(_positive, log)
    for k, family in enumerate(families):
        part = bands[bands["family"] == family].sort_values("x") if len(bands) else bands
        if part.empty:
            continue
        color = COLORS.get(family, OTHER_COLORS[k % len(OTHER_COLORS)])
        bx = _x_values(part["x"], x_axis)
        name = _text(f"{family} (w={float(weights[family]):.2f})" if _finite(weights.get(family)) else family)
        best = family == best_family
        visible = True if best else "legendonly"

        if best:
            data += _band(bx, clip(part["pred_lo95"], LOG_FLOOR), clip(part["pred_hi95"]),
                          "95% band, new observation", color, 0.12, "pred")
            data += _band(bx, clip(part["mean_lo95"], LOG_FLOOR), clip(part["mean_hi95"]), "95% band, mean curve",
                          color, 0.3, "mean")
        lines.append({"type": "scatter", "mode": "lines", "name": name, "x": bx, "y": clip(part["fit"]),
                      "visible": visible, "line": {"color": color, "width": 2.5 if best else 1.2},
                      "hovertemplate": f"{name}<br>{x_hover}: {y_hover}<extra></extra>"})
    data += lines + [published]
    y_axis = _axis(Y_TITLE.get(unit, "{m}").format(m=_text(metric)))
    if log:
        y_axis.update(type="log", exponentformat="power")
    elif unit == "fraction":
        y_axis["tickformat"] = ".0%"
    y_range = _y_range(y, unit, log)
    if y_range:
        y_axis["range"] = y_range
    title = f"{_text(metric)} [{_text(source_label)}] vs {_text(x_axis)}"
    return {"data": data, "layout": _layout(title, 440, xaxis=_x_axis_layout(x_axis), yaxis=y_axis)}


# ------------------------------------------------------------------ projected gap
def _scale(projection_row: Mapping, trajectory: pd.DataFrame) -> str:
    """points (bounded metric or a fraction), ratio (a positive unbounded scale such as minutes) or difference."""
    unit = projection_row.get("unit") or ""
    bounded = projection_row.get("bounded")
    if unit == "fraction" or (bounded is not None and not pd.isna(bounded) and bool(bounded)):
        return "points"
    if unit in RATIO_UNITS or ("ratio" in trajectory.columns and trajectory["ratio"].notna().any()):
        return "ratio"
    return "difference"


def _decimal_today(today: datetime.date) -> float:
    return today.year + (today.timetuple().tm_yday - 1) / 365.25


def gap_figure(trajectory: pd.DataFrame, projection_row: Mapping, observed: pd.DataFrame | None = None,
               today: datetime.date | None = None, implied: pd.DataFrame | None = None) -> dict:
    """The projected frontier and meek actor, the gap between them with its 10-90% band, and (optional) the
    observed gap from history over the same years.

    trajectory: projection_trajectories rows of one curve (step, year, decades, frontier, meek, gap, gap_lo,
    gap_hi; optional ratio, ratio_lo, ratio_hi, lag_months). projection_row: the projections row (curve, unit,
    bounded, peak_year, peak_decades, peak_within_window). observed: gap_series rows of the same metric (date,
    gap, gap_lo, gap_hi, comparison; optional frontier_model, laggard_model), in the gap_series' own scale:
    points for bounded metrics, the ratio for positive unbounded ones."""
    today = today or datetime.date.today()
    trajectory = trajectory.sort_values("step") if "step" in trajectory.columns else trajectory
    unit = projection_row.get("unit") or ""
    shown = _text(unit)  # a unit of an explicit projection comes from the user's scenario file
    scale = _scale(projection_row, trajectory)
    calendar = "year" in trajectory.columns and trajectory["year"].notna().any()
    t = iso_dates(trajectory["year"]) if calendar else _numbers(_column(trajectory, "decades"))
    t_hover = "%{x|%Y-%m}" if calendar else "%{x:.2f} decades"
    frontier, meek = _numbers(trajectory["frontier"]), _numbers(trajectory["meek"])
    gap, lo, hi = (_numbers(_column(trajectory, c)) for c in ("gap", "gap_lo", "gap_hi"))
    if scale == "points":
        factor = 100.0 if unit == "fraction" else 1.0
        gap, lo, hi = gap * factor, lo * factor, hi * factor
        gap_title, gap_fmt = f"gap ({POINT_UNITS.get(unit, shown or 'points')})", "%{y:.3g}"
    elif scale == "ratio":
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = _numbers(trajectory["ratio"]) if "ratio" in trajectory.columns else frontier / meek
        lo, hi = _numbers(_column(trajectory, "ratio_lo")), _numbers(_column(trajectory, "ratio_hi"))
        gap_title, gap_fmt = "ratio frontier / meek", "%{y:.3g}×"
    else:
        gap_title, gap_fmt = f"gap, frontier − meek ({shown})" if unit else "gap, frontier − meek", "%{y:.3g}"
    lag = _numbers(_column(trajectory, "lag_months"))
    has_lag = bool(np.isfinite(lag).any())
    domains = _panels(3 if has_lag else 2, weights=[1.0, 1.2, 0.8] if has_lag else [1.0, 1.2])
    value_fmt = "%{y:.1%}" if unit == "fraction" else "%{y:.3g}"
    data = [
        {"type": "scatter", "mode": "lines", "name": "frontier", "x": t, "y": frontier, "line": {"color": FRONTIER},
         "hovertemplate": f"frontier<br>{t_hover}: {value_fmt}<extra></extra>"},
        {"type": "scatter", "mode": "lines", "name": "meek actor", "x": t, "y": meek, "line": {"color": MEEK},
         "hovertemplate": f"meek actor<br>{t_hover}: {value_fmt}<extra></extra>"},
    ]
    if np.isfinite(lo).any() and np.isfinite(hi).any():
        data += _band(t, lo, hi, "gap, 10-90% (scenario x fit draws)", "#808080", 0.3, "band", yaxis="y2",
                      hover=f"10-90%<br>{t_hover}: {gap_fmt}<extra></extra>")
    data.append({"type": "scatter", "mode": "lines", "name": "projected gap", "x": t, "y": gap, "yaxis": "y2",
                 "line": {"color": GAP, "width": 2},
                 "hovertemplate": f"projected gap<br>{t_hover}: {gap_fmt}<extra></extra>"})
    if observed is not None and len(observed) and calendar:
        data += _observed_gap_traces(observed, "y2", gap_fmt)
    if implied is not None and len(implied) and calendar:  # the fitted curve at both groups' compute, on history
        data.append({"type": "scatter", "mode": "lines", "name": "fit at both groups' compute", "yaxis": "y2",
                     "x": [pd.Timestamp(d).date().isoformat() for d in implied["date"]], "y": _numbers(implied["gap"]),
                     "line": {"color": "#b3261e", "width": 1.5, "dash": "dash"},
                     "hovertemplate": f"fit at both groups' compute<br>%{{x}}: {gap_fmt}<extra></extra>"})
    if has_lag:
        data.append({"type": "scatter", "mode": "lines", "name": "months the meek actor trails", "x": t, "y": lag,
                     "yaxis": "y3", "line": {"color": "#9467bd"},
                     "hovertemplate": f"meek actor trails by<br>{t_hover}: %{{y:.1f}} months<extra></extra>"})
    top = _axis(f"frontier, meek ({UNIT_LABEL.get(unit, shown or 'value')})", domain=domains[0])
    if unit == "minutes" or _spans_decades(frontier):
        top.update(type="log", exponentformat="power")
    elif unit == "fraction":
        top["tickformat"] = ".0%"
    middle = _axis(gap_title, domain=domains[1], anchor="x")
    if scale == "ratio":
        middle.update(type="log")
    layout = _layout(_text(projection_row.get("curve", "")), 560 if has_lag else 470,
                     xaxis=_axis("date" if calendar else "decades of frontier compute growth (no calendar: the "
                                 "agents' own compute)", type="date" if calendar else "linear"),
                     yaxis=top, yaxis2=middle)
    layout["xaxis"]["anchor"] = _y_name(len(domains) - 1)
    if has_lag:
        layout["yaxis3"] = _axis("months the meek actor trails", domain=domains[2], anchor="x", rangemode="tozero")
    shapes, notes = _peak_marks(projection_row, calendar, today)
    if calendar:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": today.isoformat(), "x1": today.isoformat(),
                       "y0": 0, "y1": 1, "line": {"color": "#999", "width": 1, "dash": "dot"}})
        notes.append({"x": today.isoformat(), "xref": "x", "y": 1, "yref": "paper", "text": "today",
                      "showarrow": False, "yanchor": "bottom", "font": {"size": 9, "color": "#777"}})
    layout["shapes"], layout["annotations"] = shapes, notes
    return {"data": data, "layout": layout}


def _spans_decades(values: np.ndarray) -> bool:
    values = values[np.isfinite(values)]
    return bool(len(values)) and bool((values > 0).all()) and values.max() / values.min() > 1e3


def _peak_marks(row: Mapping, calendar: bool, today: datetime.date) -> tuple[list, list]:
    """A dashed line at the gap's peak on the gap panel, 'peak (past)' when it lies before today. None when the
    gap is still growing at the window's end (peak_within_window false)."""
    within = row.get("peak_within_window")
    if within is not None and not pd.isna(within) and not bool(within):
        return [], []
    where = row.get("peak_year") if calendar else row.get("peak_decades")
    if not _finite(where):
        return [], []
    past = calendar and float(where) < _decimal_today(today)
    x = iso_date(where) if calendar else float(where)
    label = "peak (past)" if past else "peak"
    when = f" {month(float(where))}" if calendar else f" at {float(where):.2f} decades"
    return ([{"type": "line", "xref": "x", "yref": "y2 domain", "x0": x, "x1": x, "y0": 0, "y1": 1,
              "line": {"color": "#d62728", "width": 1, "dash": "dash"}}],
            [{"x": x, "xref": "x", "y": 1, "yref": "y2 domain", "text": label, "hovertext": f"gap peaks{when}",
              "showarrow": False, "xanchor": "left", "yanchor": "top", "font": {"size": 10, "color": "#d62728"}}])


def _model_texts(values) -> list[str]:
    return [_text(display_model(v)) if isinstance(v, str) else "" for v in values]


def _who(frame: pd.DataFrame) -> list[list[str]]:
    """Per gap_series row: its month, the leading group's best model and the laggard group's."""
    return [list(row) for row in zip([month(d) for d in frame["date"]], _model_texts(_column(frame, "frontier_model")),
                                     _model_texts(_column(frame, "laggard_model")), strict=True)]


def _observed_gap_traces(observed: pd.DataFrame, yaxis: str, gap_fmt: str) -> list[dict]:
    traces = []
    comparisons = observed["comparison"] if "comparison" in observed.columns else pd.Series("observed",
                                                                                             index=observed.index)
    for k, comparison in enumerate(sorted(comparisons.dropna().astype(str).unique())):
        part = observed[comparisons == comparison].sort_values("date")
        gap = _numbers(part["gap"])
        lo, hi = _numbers(_column(part, "gap_lo")), _numbers(_column(part, "gap_hi"))
        who = _who(part)
        trace = {"type": "scatter", "mode": "markers", "name": _text(f"observed gap, {comparison}"), "yaxis": yaxis,
                 "x": [pd.Timestamp(d).date().isoformat() if not pd.isna(d) else None for d in part["date"]],
                 "y": gap, "customdata": who,
                 "marker": {"size": 6, "symbol": "diamond", "color": COMPARISON_COLORS[k % len(COMPARISON_COLORS)]},
                 "hovertemplate": f"observed, {_text(comparison)}<br>%{{customdata[0]}}: {gap_fmt}<br>"
                                  "%{customdata[1]} vs %{customdata[2]}<extra></extra>"}
        if np.isfinite(lo).any() and np.isfinite(hi).any():
            trace["error_y"] = {"type": "data", "symmetric": False, "array": np.where(np.isfinite(hi), hi - gap, 0),
                                "arrayminus": np.where(np.isfinite(lo), gap - lo, 0), "thickness": 1, "width": 0}
        traces.append(trace)
    return traces


# ------------------------------------------------------------------ observed gap
def observed_gap_figure(gap_series: pd.DataFrame, summary_row: Mapping) -> dict:
    """The observed best-to-date values of the leading and the laggard group and the gap between them.

    gap_series: rows (date, frontier, frontier_model, laggard, laggard_model, gap, gap_lo, gap_hi; optional
    months_behind, months_lo, months_hi), filtered here to the summary row's metric, source, source_version and
    comparison when those columns are present. summary_row: the gap_summary row (metric, source, source_version,
    comparison, unit, gap_scale)."""
    frame = gap_series
    for key in ("metric", "source", "source_version", "comparison"):
        if key in frame.columns and summary_row.get(key) is not None:
            frame = frame[frame[key] == summary_row[key]]
    frame = frame.sort_values("date")
    unit = summary_row.get("unit") or ""
    scale = summary_row.get("gap_scale") or "difference"
    dates = [pd.Timestamp(d).date().isoformat() if not pd.isna(d) else None for d in frame["date"]]
    months = [month(d) for d in frame["date"]]
    value_fmt = "%{y:.1%}" if unit == "fraction" else "%{y:.3g}"
    data = []
    for name, column, color in (("leading group", "frontier", FRONTIER), ("laggard group", "laggard", MEEK)):
        models = _model_texts(_column(frame, f"{column}_model"))
        data.append({"type": "scatter", "mode": "lines+markers", "line": {"shape": "hv", "color": color, "width": 1.5},
                     "marker": {"size": 4}, "name": name, "x": dates, "y": _numbers(frame[column]),
                     "customdata": [[w, m] for w, m in zip(months, models, strict=True)],
                     "hovertemplate": f"{name}: <b>%{{customdata[1]}}</b><br>%{{customdata[0]}}: {value_fmt}"
                                      "<extra></extra>"})
    gap, lo, hi = (_numbers(_column(frame, c)) for c in ("gap", "gap_lo", "gap_hi"))
    pair = _who(frame)
    gap_title = {"points": f"gap ({POINT_UNITS.get(unit, 'points')})", "ratio": "ratio leading / laggard"}.get(
        scale, f"gap, leading − laggard ({_text(unit)})" if unit else "gap, leading − laggard")
    gap_fmt = "%{y:.3g}×" if scale == "ratio" else "%{y:.3g}"
    if np.isfinite(lo).any() and np.isfinite(hi).any():
        data += _band(dates, lo, hi, "gap, 90% bootstrap", "#808080", 0.3, "band", yaxis="y2", shape="hv",
                      hover=f"90% bootstrap<br>%{{x|%Y-%m}}: {gap_fmt}<extra></extra>")
    data.append({"type": "scatter", "mode": "lines+markers", "name": "gap", "x": dates, "y": gap, "yaxis": "y2",
                 "line": {"shape": "hv", "color": GAP, "width": 1.5}, "marker": {"size": 4}, "customdata": pair,
                 "hovertemplate": f"gap %{{customdata[0]}}: {gap_fmt}<br>%{{customdata[1]}} vs %{{customdata[2]}}"
                                  "<extra></extra>"})
    behind = _numbers(_column(frame, "months_behind"))
    has_months = bool(np.isfinite(behind).any())
    if has_months:
        m_lo, m_hi = _numbers(_column(frame, "months_lo")), _numbers(_column(frame, "months_hi"))
        if np.isfinite(m_lo).any() and np.isfinite(m_hi).any():
            data += _band(dates, m_lo, m_hi, "months behind, 90% bootstrap", "#9467bd", 0.2, "months", yaxis="y3",
                          shape="hv", hover="90% bootstrap<br>%{x|%Y-%m}: %{y:.1f} months<extra></extra>")
        data.append({"type": "scatter", "mode": "lines", "name": "months the laggard trails", "x": dates, "y": behind,
                     "yaxis": "y3", "line": {"shape": "hv", "color": "#9467bd"},
                     "hovertemplate": "laggard trails by<br>%{x|%Y-%m}: %{y:.1f} months<extra></extra>"})
    domains = _panels(3 if has_months else 2, weights=[1.0, 1.0, 0.8] if has_months else [1.0, 1.0])
    top = _axis(f"best to date ({UNIT_LABEL.get(unit, _text(unit) or 'value')})", domain=domains[0])
    if unit == "minutes":
        top.update(type="log", exponentformat="power")
    elif unit == "fraction":
        top["tickformat"] = ".0%"
    middle = _axis(gap_title, domain=domains[1], anchor="x")
    if scale == "ratio":
        middle["type"] = "log"
    title = (f"{_text(summary_row.get('metric', ''))} [{_text(summary_row.get('source', ''))}"
             f"@{_text(summary_row.get('source_version', ''))}], {_text(summary_row.get('comparison', ''))}")
    layout = _layout(title, 540 if has_months else 450, xaxis=_axis("date", type="date", anchor=_y_name(len(domains) - 1)),
                     yaxis=top, yaxis2=middle)
    if has_months:
        layout["yaxis3"] = _axis("months behind", domain=domains[2], anchor="x", rangemode="tozero")
    return {"data": data, "layout": layout}


# ------------------------------------------------------------------ METR horizons
def horizon_figure(horizons: pd.DataFrame) -> dict:
    """Per-model 50% time horizons against release date, log minutes, with their 95% intervals.

    horizons: horizons rows (model, release_date, p50, p50_lo, p50_hi; optional extrapolated, organization,
    train_flop)."""
    frame = horizons.dropna(subset=["release_date", "p50"])
    frame = frame[frame["p50"] > 0].sort_values(["release_date", "model"])  # a log axis: a zero horizon has no place
    below = _column(frame, "extrapolated").fillna(False).astype(bool)
    data = []
    for extrapolated, name, color in ((False, "50% horizon, 95% interval", "#1f77b4"),
                                      (True, "below the shortest task (not used)", "#7f7f7f")):
        part = frame[below == extrapolated]
        if part.empty:
            continue
        p50, lo, hi = _numbers(part["p50"]), _numbers(_column(part, "p50_lo")), _numbers(_column(part, "p50_hi"))
        info = [[_text(display_model(m)), _text(o) if isinstance(o, str) else "", month(d),
                 value_text(v, "minutes", a, b), flop(c) or "compute not stated"]
                for m, o, d, v, a, b, c in zip(part["model"], _column(part, "organization"), part["release_date"], p50,
                                               lo, hi, _numbers(_column(part, "train_flop")), strict=True)]
        data.append({"type": "scatter", "mode": "markers", "name": name, "marker": {"size": 7, "color": color},
                     "x": [pd.Timestamp(d).date().isoformat() for d in part["release_date"]], "y": p50,
                     "error_y": {"type": "data", "symmetric": False, "thickness": 1, "width": 2,
                                 "array": np.where(np.isfinite(hi), np.clip(hi - p50, 0, None), 0),
                                 "arrayminus": np.where(np.isfinite(lo), np.clip(p50 - lo, 0, None), 0)},
                     "customdata": info,
                     "hovertemplate": "<b>%{customdata[0]}</b> %{customdata[1]}<br>released %{customdata[2]}<br>"
                                      "50% horizon %{customdata[3]}<br>%{customdata[4]}<extra></extra>"})
    layout = _layout("METR 50% time horizons", 380, xaxis=_axis("release date", type="date"),
                     yaxis=_axis("50% time horizon (minutes, log scale)", type="log", exponentformat="power"))
    return {"data": data, "layout": layout}
