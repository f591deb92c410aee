"""Interactive report figures (pipeline.report.interactive) from rows copied out of a finished run's store:
hover text, readable names, calendar axes, the gap's scale, same bytes for the same input, no network; and
in headless Chromium, every figure drawn with no console message and no request leaving the page."""

from __future__ import annotations

import datetime
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest

from pipeline.report import interactive as I
from pipeline.schema import decimal_year

TODAY = datetime.date(2026, 12, 2)


def _csv(text: str, **parse) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text.strip()), **parse)


# --- rows of run 20261202T160546Z-53a04b (every 9th/25th/40th trajectory step, the first rows of each table)
MMLU_POINTS = _csv("""
model,x,y,release_year
GPT-J-6B,2021.5914,0.257,2021.5914
Gopher (280B),2021.9336,0.6,2021.9336
InstructGPT 175B,2022.0712,0.439,2022.0712
Chinchilla,2022.2382,0.675,2022.2382
PaLM (540B),2022.2546,0.693,2022.2546
GPT-NeoX 20B,2022.2628,0.336,2022.2628
""")
MMLU_BANDS = _csv("""
family,x,fit,mean_lo95,mean_hi95,pred_lo95,pred_hi95
logistic,2021.5914,0.3326,0.2739,0.4199,0.014,0.6489
logistic,2021.8932,0.3542,0.2854,0.4418,0.0538,0.6685
logistic,2022.1196,0.3734,0.2978,0.4594,0.0822,0.6712
logistic,2022.346,0.3954,0.313,0.479,0.0932,0.6933
gompertz,2021.5914,0.3401,0.2701,0.4202,0.02,0.66
gompertz,2022.346,0.3902,0.3101,0.4702,0.09,0.69
""")
MMLU_FITS = _csv("""
family,weight
gompertz,0.196015
logistic,0.803985
""")
HEX_POINTS = _csv("""
model,x,y
b3_frontier@9.003,9.00287,-259.49
b3_frontier@9.033,9.032844,-252.88
b3_frontier@11.550,11.549871,-31.2
""")
HEX_BANDS = _csv("""
family,x,fit,mean_lo95,mean_hi95,pred_lo95,pred_hi95
logistic,9.0,-261.0,-270.0,-250.0,-300.0,-220.0
logistic,11.55,-30.0,-35.0,-25.0,-60.0,0.0
""")
METR_POINTS = _csv("""
model,x,y,value_lo,value_hi,release_year
gpt-4-0314,2023.197125,5.364045,2.1,12.0,2023.197125
claude-3-5-sonnet-20240620,2024.468172,18.21683,9.0,33.0,2024.468172
gpt-5-2025-08-07_medium,2025.596851,137.318539,70.0,260.0,2025.596851
""")
METR_BANDS = _csv("""
family,x,fit,mean_lo95,mean_hi95,pred_lo95,pred_hi95
exponential_time,2023.2,5.1,3.9,6.7,-1.0,40.0
exponential_time,2025.6,130.0,100.0,170.0,20.0,900.0
""")
METR_TRAJECTORY = _csv("""
step,year,decades,frontier,meek,gap,gap_lo,gap_hi
0,2023.1971,,4.565,4.565,0.0,0.0,0.0
9,2023.9495,,12.0081,7.9332,4.0748,3.5615,4.411
18,2024.7018,,31.5869,13.7868,17.8002,15.9508,19.5599
27,2025.4541,,83.0888,23.9594,59.1294,52.1895,70.6153
36,2026.2065,,218.5633,41.6378,176.9255,152.016,233.3673
45,2026.9588,,574.9261,72.3602,502.5658,419.4179,740.4895
54,2027.7111,,1512.3309,125.7513,1386.5796,1130.4487,2309.1849
""")
METR_PROJECTION = {"curve": "metr_p50_minutes [epoch_hub_metr] vs date", "unit": "minutes", "bounded": False,
                   "peak_year": 2028.37989, "peak_within_window": True, "peak_decades": float("nan")}
METR_OBSERVED = _csv("""
date,comparison,frontier,frontier_model,laggard,laggard_model,gap,gap_lo,gap_hi
2024-11-20,compute_tier_10x,28.9835,claude-3-5-sonnet-20241022,2.2443,qwen2-72b-instruct,12.9142,4.3727,497.4187
2024-12-26,compute_tier_10x,39.2066,o1-2024-12-17_medium,18.4725,DeepSeek-V3,2.1224,1.0,224.1567
2025-02-24,compute_tier_10x,54.2263,claude-3-7-sonnet-20250219_32K,18.4725,DeepSeek-V3,2.9355,1.3258,317.8402
""", parse_dates=["date"])
MMLU_TRAJECTORY = _csv("""
step,year,decades,frontier,meek,gap,gap_lo,gap_hi
0,2023.1971,,0.5028,0.5028,0.0,0.0,0.0
25,2025.2869,,0.8214,0.6944,0.127,0.0978,0.1571
50,2027.3768,,0.9645,0.8546,0.1098,0.0847,0.1194
75,2029.4666,,0.9941,0.9418,0.0523,0.0249,0.0799
100,2031.5564,,0.9991,0.9786,0.0205,0.0063,0.0437
""")
MMLU_PROJECTION = {"curve": "mmlu [epoch_hub_mmlu] vs date", "unit": "fraction", "bounded": True,
                   "peak_year": 2025.955694, "peak_within_window": True, "peak_decades": float("nan")}
MMLU_OBSERVED = _csv("""
date,comparison,frontier,frontier_model,laggard,laggard_model,gap,gap_lo,gap_hi,months_behind,months_lo,months_hi
2022-05-11,compute_tier_10x,0.693,PaLM (540B),0.336,GPT-NeoX 20B,35.7,18.2,44.2,5.0595,1.4127,9.1663
2022-11-28,compute_tier_10x,0.7,GPT-3.5,0.336,GPT-NeoX 20B,36.4,33.9,44.3,11.6632,8.0164,15.77
2023-02-24,compute_tier_10x,0.7,GPT-3.5,0.477,LLaMA-13B,22.3,19.8,36.4,14.5544,10.6908,14.5544
2023-03-14,compute_tier_10x,0.864,GPT-4,0.675,Chinchilla,18.9,1.8,26.4,11.499,3.4825,15.1458
""", parse_dates=["date"]).assign(metric="mmlu", source="epoch_hub_mmlu", source_version="2025-12-05")
MMLU_SUMMARY = {"metric": "mmlu", "source": "epoch_hub_mmlu", "source_version": "2025-12-05",
                "comparison": "compute_tier_10x", "unit": "fraction", "gap_scale": "points"}
HEX_TRAJECTORY = _csv("""
step,year,decades,frontier,meek,gap,gap_lo,gap_hi
0,,0.0,-9.4452,-9.4452,0.0,0.0,0.0
40,,2.0127,-0.0587,-2.6988,2.6402,1.985,3.3529
80,,4.0254,-0.0004,-0.7566,0.7562,0.524,1.0307
120,,6.038,-0.0,-0.2109,0.2109,0.136,0.3082
""")
HEX_PROJECTION = {"curve": "hex3_elo_vs_perfect [jones2021_hex_frontier] vs compute", "unit": "elo", "bounded": True,
                  "peak_year": float("nan"), "peak_decades": 0.754755, "peak_within_window": True}
HORIZONS = _csv("""
model,release_date,train_flop,p50,p50_lo,p50_hi,extrapolated,organization
davinci-002,2020-05-28,3.14e+23,,,,True,OpenAI
gpt-3.5-turbo-instruct,2022-03-15,,0.0,0.0,0.0323,True,OpenAI
GPT-4 0314,2023-03-14,2.1e+25,3.6571,0.3733,14.1255,False,OpenAI
Claude 3 Opus,2024-03-04,1.6400009999999998e+25,4.0471,0.3899,16.2509,False,Anthropic
""", parse_dates=["release_date"])


def _figures() -> dict[str, dict]:
    return {
        "fit-mmlu-date": I.fit_figure(MMLU_POINTS, MMLU_BANDS, MMLU_FITS, "logistic", "date", "fraction", "mmlu",
                                      "epoch_hub_mmlu"),
        "fit-hex": I.fit_figure(HEX_POINTS, HEX_BANDS, pd.DataFrame({"family": ["logistic"], "weight": [1.0]}),
                                "logistic", "compute", "elo", "hex3_elo_vs_perfect", "jones2021_hex_frontier"),
        "fit-metr": I.fit_figure(METR_POINTS, METR_BANDS, pd.DataFrame({"family": ["exponential_time"], "weight": [1.0]}),
                                 "exponential_time", "date", "minutes", "metr_p50_minutes", "epoch_hub_metr"),
        "gap-metr": I.gap_figure(METR_TRAJECTORY, METR_PROJECTION, METR_OBSERVED, today=TODAY),
        "gap-mmlu": I.gap_figure(MMLU_TRAJECTORY, MMLU_PROJECTION, MMLU_OBSERVED, today=TODAY),
        "gap-hex": I.gap_figure(HEX_TRAJECTORY, HEX_PROJECTION, today=TODAY),
        "observed-mmlu": I.observed_gap_figure(MMLU_OBSERVED, MMLU_SUMMARY),
        "horizons": I.horizon_figure(HORIZONS),
    }


def _hover(fig: dict) -> str:
    """Everything a reader can hover over: the templates filled with their custom data."""
    return json.dumps([[t.get("hovertemplate", ""), t.get("customdata", []), t.get("name", ""), t.get("meta", [])]
                       for t in fig["data"]], ensure_ascii=False)


def test_figures_are_valid_plotly_and_reference_no_network():
    for name, fig in _figures().items():
        go.Figure(fig)  # raises on any property plotly does not know
        div = str(I.figure_div(fig, name))
        assert not re.search(r"https?://", div), name
        for setting in ('"displaylogo":false', '"responsive":true', '"typesetMath":false', '"showSendToCloud":false'):
            assert setting in div, (name, setting)
        assert div.count("<script>") == 1 and div.count("</script>") == 1
    bundle = str(I.script())
    assert bundle.startswith("<script") and "Plotly" in bundle and len(bundle) > 1_000_000
    assert len(re.findall(r"</script", bundle, re.IGNORECASE)) == 1


def test_hover_names_the_models_sources_compute_and_values():
    figures = _figures()
    fit = _hover(figures["fit-mmlu-date"])
    for model in MMLU_POINTS["model"]:
        assert model in fit
    assert "epoch_hub_mmlu" in fit and "released 2022-03" in fit and "69.3%" in fit  # PaLM, accuracy in percent
    hexes = _hover(figures["fit-hex"])
    assert "1.0e9 FLOP" in hexes and "-259 Elo" in hexes
    metr = _hover(figures["fit-metr"])
    assert "137 min [70 – 260]" in metr
    observed = _hover(figures["observed-mmlu"])
    assert "PaLM (540B)" in observed and "GPT-NeoX 20B" in observed and "LLaMA-13B" in observed
    gap = _hover(figures["gap-metr"])
    assert "o1-2024-12-17_medium" in gap and "DeepSeek-V3" in gap
    horizons = _hover(figures["horizons"])
    assert "Claude 3 Opus" in horizons and "Anthropic" in horizons and "1.6e25 FLOP" in horizons
    assert "davinci-002" not in horizons  # no horizon: nothing to draw on a log axis


def test_hex_board_points_read_as_boards_and_compute():
    assert I.display_model("b3_frontier@11.550") == "Hex 3x3 agent, 3.5e11 FLOP"
    assert I.display_model("b9_frontier@17.000") == "Hex 9x9 agent, 1.0e17 FLOP"
    assert I.display_model("b5_run07#p012") == "Hex 5x5 run 7, snapshot 12"
    assert I.display_model("chinchilla_pt023_N1.14e+09_C9.24e+19") == "Chinchilla run 23: 1.1e9 parameters, 9.2e19 FLOP"
    assert I.display_model("GPT-4 0314") == "GPT-4 0314"
    hover = _hover(_figures()["fit-hex"])
    assert "Hex 3x3 agent, 3.5e11 FLOP" in hover and "b3_frontier@" not in hover


def test_date_axes_carry_calendar_dates_not_decimal_years():
    figures = _figures()
    for name in ("fit-mmlu-date", "fit-metr", "gap-metr", "gap-mmlu", "observed-mmlu", "horizons"):
        fig = figures[name]
        assert fig["layout"]["xaxis"]["type"] == "date", name
        for trace in fig["data"]:
            assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", x) for x in trace["x"]), (name, trace["name"])
        assert not re.search(r"\b20\d\d\.\d", I.to_json(fig)), name
    assert figures["fit-mmlu-date"]["data"][-1]["x"][0] == "2021-08-05"  # 2021.5914
    assert I.iso_date(2023.197125) == "2023-03-14" and I.month(2024.4) == "2024-05"
    for value in (2020.0, 2020.999, 2023.1971, 2024.5, 2024.9986, 2039.9157):  # the inverse of the store's dates
        assert decimal_year(I.iso_date(value)) == pytest.approx(value, abs=0.6 / 365)
    hexes = figures["gap-hex"]
    assert "decades" in hexes["layout"]["xaxis"]["title"]["text"] and hexes["layout"]["xaxis"]["type"] == "linear"
    assert list(hexes["data"][0]["x"][:2]) == [0.0, 2.0127]


def test_gap_in_points_for_fractions_and_as_a_ratio_for_minutes():
    figures = _figures()
    mmlu = figures["gap-mmlu"]
    assert "percentage points" in mmlu["layout"]["yaxis2"]["title"]["text"]
    projected = next(t for t in mmlu["data"] if t["name"] == "projected gap")
    assert list(projected["y"][:2]) == pytest.approx([0.0, 12.7])  # 0.127 of a fraction
    observed = next(t for t in mmlu["data"] if t["name"].startswith("observed gap"))
    assert list(observed["y"][:1]) == [35.7] and observed["yaxis"] == "y2"
    metr = figures["gap-metr"]
    assert metr["layout"]["yaxis2"]["type"] == "log" and "ratio" in metr["layout"]["yaxis2"]["title"]["text"]
    ratio = next(t for t in metr["data"] if t["name"] == "projected gap")["y"]
    assert ratio[-1] == pytest.approx(1512.3309 / 125.7513)
    assert metr["layout"]["yaxis"]["type"] == "log" and "yaxis3" not in metr["layout"]
    # the columns another stage adds: used as given, the lag on a third panel
    extended = METR_TRAJECTORY.assign(ratio=[1.0, 1.5, 2.3, 3.5, 5.2, 7.9, 12.0], lag_months=[0, 4, 8, 12, 16, 20, 24],
                                      ratio_lo=1.0, ratio_hi=20.0)
    fig = I.gap_figure(extended, METR_PROJECTION, today=TODAY)
    assert next(t for t in fig["data"] if t["name"] == "projected gap")["y"][1] == 1.5
    assert fig["layout"]["yaxis3"]["title"]["text"] == "months the meek actor trails"
    assert any(t.get("yaxis") == "y3" for t in fig["data"])
    go.Figure(fig)


def test_a_peak_before_today_is_marked_past():
    def labels(fig):
        return [a["text"] for a in fig["layout"]["annotations"]]

    mmlu = I.gap_figure(MMLU_TRAJECTORY, MMLU_PROJECTION, today=TODAY)  # peaks 2025-12
    assert "peak (past)" in labels(mmlu) and "today" in labels(mmlu)
    assert labels(I.gap_figure(MMLU_TRAJECTORY, MMLU_PROJECTION, today=datetime.date(2025, 1, 1)))[0] == "peak"
    still_growing = I.gap_figure(MMLU_TRAJECTORY, {**MMLU_PROJECTION, "peak_within_window": False}, today=TODAY)
    assert not [t for t in labels(still_growing) if t.startswith("peak")]
    assert labels(_figures()["gap-hex"]) == ["peak"]  # no calendar: neither past nor future


def test_same_input_same_bytes_and_small():
    first = {name: str(I.figure_div(fig, name)) for name, fig in _figures().items()}
    second = {name: str(I.figure_div(fig, name)) for name, fig in _figures().items()}
    assert first == second
    for name, div in first.items():
        assert not re.search(r"\d\.\d{6,}", div), name  # floats rounded
        assert len(div.encode()) < 20_000, name
    with pytest.raises(ValueError):
        I.figure_div(_figures()["horizons"], 'x" onload="alert(1)')


def test_user_text_cannot_break_out_of_the_script_or_the_label():
    hostile = MMLU_POINTS.assign(model=["</script><script>alert(1)</script>", "<b>bold</b>", "a & b", "$x$", "c", "d"])
    div = str(I.figure_div(I.fit_figure(hostile, MMLU_BANDS, MMLU_FITS, "logistic", "date", "fraction",
                                        "m</script>", "s"), "series-0-fit"))
    assert div.count("</script>") == 1 and "<script>alert" not in div
    data = json.loads(div[div.index("newPlot(") + len('newPlot("series-0-fit",'):div.rindex("],{") + 1])
    names = [row[0] for row in data[-1]["customdata"]]
    assert "&lt;b&gt;bold&lt;/b&gt;" in names and "a &amp; b" in names and "$x$" in names


def _page(path: Path, figures: dict[str, dict]) -> None:
    body = "\n".join(f"<h2>{name}</h2>\n{I.figure_div(fig, name)}" for name, fig in figures.items())
    path.write_text(f'<!doctype html>\n<html><head><meta charset="utf-8"><title>figures</title>{I.script()}</head>\n'
                    f"<body>\n{body}\n</body></html>\n", encoding="utf-8")


@pytest.mark.slow
def test_every_figure_draws_in_headless_chromium_offline(tmp_path):
    from test_report_visual import _need

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or _need("chromium")
    figures = _figures()
    page = tmp_path / "figures.html"
    _page(page, figures)
    net_log = tmp_path / "net.json"
    run = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
                          f"--log-net-log={net_log}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=180, check=True)
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    dom = run.stdout
    for name in figures:
        start = dom.index(f'id="{name}"')
        end = dom.find('class="interactive-figure"', start + 1)
        drawn = dom[start:end if end > 0 else len(dom)]
        assert "plot-container" in drawn and 'class="main-svg"' in drawn, f"{name} was not drawn"
        assert 'data-title="Zoom"' in drawn and "Share chart" not in drawn and "plotly.com" not in drawn, name
    # requests the page made (the browser's own background requests are keyed to other sites)
    events = json.loads(net_log.read_text())["events"]
    from_page = [e["params"]["url"] for e in events if "url" in e.get("params", {})
                 and str(e["params"].get("network_isolation_key", "")).startswith("file://")]
    assert not [url for url in from_page if not url.startswith("file:")], from_page
