"""Report structure from a small real run: bundled benchmark data -> fit -> classify -> project -> HTML + PDF."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline import store
from pipeline.config import Draws, RunConfig
from pipeline.report import render
from pipeline.stages import classify as classify_stage
from pipeline.stages import fit as fit_stage
from pipeline.stages import forecast as forecast_stage
from pipeline.stages import project as project_stage

ROOT = Path(__file__).resolve().parents[1]
METRICS = ["mmlu", "gsm8k"]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A real run on the bundled snapshot: two metrics, every source holding them, compute axis, 200 draws."""
    from pipeline import ingest

    base = tmp_path_factory.mktemp("report")
    db = base / "scalegap.duckdb"
    config = RunConfig.build(draws=Draws(fit=200, projection=200, backtest=20), metrics=METRICS, x_axes=("compute",))
    run_id = store.start_run(db, "test report", config.as_dict())
    ingest.ingest([str(ROOT / "data" / "raw" / "benchmarks.csv")], db, run_id)
    for stage in (fit_stage, classify_stage, forecast_stage, project_stage):
        stage.run(db, run_id, config)
    store.finish_run(db, run_id, "succeeded")
    out = base / "reports"
    paths = render.report_stage(db, run_id, out)
    return {"db": db, "run_id": run_id, "out": out, "paths": paths}


def _series(db: Path, run_id: str) -> list[tuple]:
    con = store.connect(db, read_only=True)
    try:
        return con.execute("SELECT metric, source, source_version, x_axis FROM selection WHERE run_id = ?",
                           [run_id]).fetchall()
    finally:
        con.close()


def test_files_written_and_latest_copies(real_run):
    paths, out, run_id = real_run["paths"], real_run["out"], real_run["run_id"]
    html, pdf, appendix = Path(paths["html"]), Path(paths["pdf"]), Path(paths["appendix"])
    assert html == out / run_id / "report.html" and pdf == out / run_id / "report.pdf"
    assert appendix == out / run_id / "appendix.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-" and appendix.read_bytes()[:5] == b"%PDF-"
    assert (out / "latest.pdf").read_bytes() == pdf.read_bytes()
    assert (out / "latest-appendix.pdf").read_bytes() == appendix.read_bytes()
    assert (out / "latest.html").read_text() == html.read_text()
    assert not [p for p in out.rglob(".*")], "temporary files left behind"
    assert html.stat().st_mode & 0o044, "report must be readable by others"


def _answer(html: str) -> str:
    return html.split('<table class="answer">', 1)[1].split("</table>", 1)[0]


def test_page_one_answers_with_one_row_per_metric(real_run):
    """The first thing in the report is the answer: sentences, then one row per metric with its verdict, basis,
    P(bounded), today's frontier and the projected gap in percentage points; no contents list before it."""
    html = Path(real_run["paths"]["html"]).read_text()
    before = html.split("<body>", 1)[1].split('<table class="answer">', 1)[0]
    assert "<nav" not in before and "Contents" not in before
    headline = re.findall(r'<p class="headline">(.*?)</p>', before, re.S)
    assert 1 <= len(headline) <= 3 and "MMLU" in headline[0] and "GSM8K" in headline[0]
    rows = re.findall(r"<tr><td><a href=\"#group-(\w+)\">(.*?)</a>(.*?)</tr>", _answer(html), re.S)
    assert [r[0] for r in rows] == ["mmlu", "gsm8k"]   # one row per metric, though each has two sources
    for _, _, rest in rows:
        assert 'class="meek"' in rest and "(known-range)" in rest
        assert re.search(r"\d+\.\d% \(", rest), "today's frontier as a percentage with its model"
        assert re.search(r"peak \d+\.\d pp in 20\d\d-\d\d", rest), "gap in percentage points at a calendar month"
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-f", "1", "-l", "1", "-layout", real_run["paths"]["pdf"], "-"],
                              capture_output=True, text=True, check=True).stdout
        assert "MMLU" in text and "GSM8K" in text and "meek" in text


def test_one_page_per_metric_group_and_every_series_in_the_appendix(real_run):
    html = Path(real_run["paths"]["html"]).read_text()
    series = _series(real_run["db"], real_run["run_id"])
    assert len(series) >= 4  # mmlu and gsm8k from Epoch's hub and from ObsScaling
    pages = re.findall(r'<section class="page" id="group-(\w+)">(.*?)</section>', html, re.S)
    assert [g for g, _ in pages] == ["mmlu", "gsm8k"]
    for _, body in pages:
        assert body.count('class="interactive-figure"') >= 3   # each source's fit (2) and the gap
        assert body.count("<tr") == 1 + 2  # header and each source
    appendix = html.split('id="appendix"', 1)[1]
    blocks = re.findall(r'<details id="series-\d+"><summary>(.*?)</summary>(.*?)</details>', appendix, re.S)
    assert len(blocks) == len(series)
    for metric, source, _, axis in series:
        assert any(f"{metric} [{source}" in head and axis in head for head, _ in blocks)
    for _, body in blocks:
        assert "AICc" in body and "bootstrap 95% interval" in body
    assert not re.search(r"\b20\d\d\.\d+ – 20\d\d\.\d+", appendix), "dates in the appendix as decimal years"


def test_time_axes_carry_calendar_dates(real_run):
    """Ticks on a time axis are dates (2028, 2030-07), never decimal years (2022.5)."""
    html = Path(real_run["paths"]["html"]).read_text()
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert svgs
    ticks = [t for svg in svgs for t in re.findall(r">\s*(20\d\d\.\d+)\s*<", svg)]
    assert not ticks, f"decimal-year tick labels: {ticks[:5]}"


def test_summary_and_provenance(real_run):
    html = Path(real_run["paths"]["html"]).read_text()
    provenance = html.split('id="provenance"', 1)[1]
    assert real_run["run_id"] in provenance
    # licences and citations come from the snapshot's rows (Epoch is CC BY 4.0)
    assert "CC BY 4.0" in provenance and "Epoch AI" in provenance
    con = store.connect(real_run["db"], read_only=True)
    digest = con.execute("SELECT sha256 FROM sources LIMIT 1").fetchone()[0]
    stages = dict(con.execute("SELECT stage, status FROM run_stages WHERE run_id = ?", [real_run["run_id"]]).fetchall())
    con.close()
    assert digest[:12] in provenance
    assert stages.get("report") == "succeeded"


def test_main_report_is_short_and_the_appendix_holds_the_detail(real_run):
    paths = real_run["paths"]
    assert 4 <= paths["pages"] <= 20
    assert paths["appendix_pages"] >= len(_series(real_run["db"], real_run["run_id"])) // 2
    if shutil.which("pdfinfo"):
        for key, pages in (("pdf", paths["pages"]), ("appendix", paths["appendix_pages"])):
            info = subprocess.run(["pdfinfo", paths[key]], capture_output=True, text=True, check=True).stdout
            assert int(re.search(r"Pages:\s+(\d+)", info).group(1)) == pages


def test_html_needs_no_network(real_run):
    """plotly.js is embedded once; no tag loads anything from elsewhere, and every figure has its data inline."""
    html = Path(real_run["paths"]["html"]).read_text()
    # plotly.js itself names its logo's web page and map servers (unused here); the page's own markup names nothing
    markup = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)
    assert not re.search(r'(src|href)="(https?:)?//', markup), "report must work from disk"
    assert len(re.findall(r"<script[^>]*\bsrc=", html)) == 0
    head = html.split("</head>", 1)[0]
    assert head.count("<script") == 1 and "plotly" in head.lower()
    body = html.split("</head>", 1)[1]
    assert body.count("Plotly.newPlot(") >= 2 * 2   # each metric: its series' fits and its gap


def test_special_characters_in_names_are_escaped(real_run):
    data = render.load(real_run["db"], real_run["run_id"])
    evil = "<script>alert(1)</script> & \"Q\" 'x'"
    top = data["series_points"]["y"].idxmax()
    data["series_points"].loc[top, "model"] = evil
    data["sources"].loc[0, "citation"] = evil
    html = render.render_report(data, real_run["run_id"])
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;Q&#34; &#39;x&#39;" in html


def test_rerender_is_idempotent(real_run):
    first = Path(real_run["paths"]["html"]).read_text()
    again = render.report_stage(real_run["db"], real_run["run_id"], real_run["out"])
    assert Path(again["html"]).read_text() == first
    # nothing was drawn or built again: the same results, reported before, come from the cache
    assert again["figures_drawn"] == 0 and again["results_cached"]
    con = store.connect(real_run["db"], read_only=True)
    n = con.execute("SELECT count(*) FROM run_stages WHERE run_id = ? AND stage = 'report'", [real_run["run_id"]]).fetchone()[0]
    con.close()
    assert n == 1


def test_cached_results_render_the_same_report(real_run, tmp_path):
    """The results part of the context, taken from the cache, renders exactly what building it renders; any
    changed result misses the cache."""
    db, run_id = real_run["db"], real_run["run_id"]
    figures, cache = render.figure_cache(db), render.ContextCache(tmp_path)
    fresh = render.build_context(render.load(db, run_id), run_id, figures)
    render.build_context(render.load(db, run_id), run_id, figures, cache=cache)
    assert len(list(tmp_path.glob("*.pickle"))) == 1
    cached = render.build_context(render.load(db, run_id), run_id, figures, cache=cache)
    for medium, template in (("html", "report.html.j2"), ("pdf", "report.html.j2"), ("pdf", "appendix.html.j2")):
        assert render.render_html({**cached, "plotly_script": ""}, medium, template) == \
            render.render_html({**fresh, "plotly_script": ""}, medium, template)
    changed = render.load(db, run_id)
    changed["classifications"].loc[0, "p_bounded"] = 0.123
    assert cache.get(changed, fresh["today"]) is None
    assert cache.get(render.load(db, run_id), fresh["today"]) is not None


def test_empty_stages_say_so(tmp_path):
    """A run with only ingest renders, saying plainly that later stages produced nothing."""
    from pipeline import ingest

    db = tmp_path / "s.duckdb"
    run_id = store.start_run(db, "test", {})
    ingest.ingest([str(ROOT / "data" / "raw" / "loss.csv")], db, run_id)
    html = render.render_report(render.load(db, run_id), run_id)
    assert "This run holds no classified metric" in html
    assert "No projection stage in this run." in html
    assert "No backtests stored for this run." in html


def test_unknown_run_is_a_clear_error(real_run, tmp_path):
    from pipeline.schema import ScalegapError

    with pytest.raises(ScalegapError, match="not in the store"):
        render.report_stage(real_run["db"], "no-such-run", tmp_path)


def test_cli_report_prints_both_paths(real_run, tmp_path):
    db = tmp_path / "copy.duckdb"  # beside it, no cache yet: every step is done
    shutil.copy(real_run["db"], db)
    out = tmp_path / "cli"
    for cached in (False, True):
        result = subprocess.run([str(ROOT / ".venv" / "bin" / "scalegap"), "report", "--db", str(db),
                                 "--out", str(out), "--json"], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        payload = json.loads(result.stdout)
        assert payload["run_id"] == real_run["run_id"] and payload["results_cached"] == cached
        assert Path(payload["html"]).is_file() and Path(payload["pdf"]).is_file() and Path(payload["appendix"]).is_file()
        # stderr is a pipe here, as in a log file: one line per step, no bar; the pages of results reported
        # before come from the cache, so only the PDFs remain the second time
        steps = re.findall(r"^report (\d+)/(\d+): (.+)$", result.stderr, re.M)
        names = ["PDF: report", "PDF: appendix"] if cached else ["MMLU", "GSM8K", "PDF: report", "PDF: appendix"]
        assert [s[2] for s in steps] == names, result.stderr
        assert all(s[1] == "4" for s in steps) and [int(s[0]) for s in steps] == [1, 2, 3, 4][-len(names):]
    assert (out / "latest.pdf").is_file()


def test_second_scenario_on_the_same_run_is_reported_on_request(real_run, tmp_path):

    scenario = ROOT / "pipeline" / "scenarios" / "fast_software.toml"
    project_stage.run(real_run["db"], real_run["run_id"], RunConfig.build(scenario, Draws(projection=50)))
    default = render.load(real_run["db"], real_run["run_id"])
    assert set(default["projections"]["scenario"]) == {"default"}   # the run's own scenario, not a mix
    fast = render.load(real_run["db"], real_run["run_id"], "fast_software")
    assert set(fast["projections"]["scenario"]) == {"fast_software"}
    assert set(fast["projection_trajectories"]["scenario"]) == {"fast_software"}
    assert len(fast["scenarios"]) == 1
    with pytest.raises(render.ScalegapError, match="not projected in this run"):
        render.load(real_run["db"], real_run["run_id"], "no_such_scenario")
    # written beside the run's own report, never over it
    own = Path(real_run["paths"]["pdf"]).read_bytes()
    paths = render.report_stage(real_run["db"], real_run["run_id"], real_run["out"], "fast_software")
    assert Path(paths["pdf"]).name == "report.fast_software.pdf" and Path(paths["appendix"]).is_file()
    assert Path(real_run["paths"]["pdf"]).read_bytes() == own
    assert (real_run["out"] / "latest.pdf").read_bytes() == own
    assert "scenario <b>fast_software</b>" in Path(paths["html"]).read_text()


NEWCOMERS = """source,source_version,model,organization,release_date,train_flop,train_flop_note,params,metric,kind,value,value_lo,value_hi,unit,original_unit,floor,ceiling,cluster,citation,license
mmlu_newcomers,2026-11-01,Newcomer-Low,Example Lab,2026-06-01,1e26,,,mmlu,benchmark,0.31,,,fraction,fraction,0.25,1.0,Newcomer,Test rows written for this test,CC0
mmlu_newcomers,2026-11-01,Newcomer-High,Example Lab,2026-07-01,2e26,,,mmlu,benchmark,0.93,,,fraction,fraction,0.25,1.0,Newcomer,Test rows written for this test,CC0
"""


def test_what_changed_names_new_models_and_missed_forecasts(real_run, tmp_path):
    """A weekly refresh is read for this section: a second run with two new MMLU models lists them, scores the
    first run's archived forecasts against them and names the one far outside its 95% interval."""
    from pipeline import ingest

    db = tmp_path / "two.duckdb"
    shutil.copy(real_run["db"], db)
    extra = tmp_path / "newcomers.csv"
    extra.write_text(NEWCOMERS)
    config = RunConfig.build(draws=Draws(fit=100, projection=50, backtest=10), metrics=METRICS, x_axes=("compute",))
    run_id = store.start_run(db, "test second run", config.as_dict())
    ingest.ingest([str(ROOT / "data" / "raw" / "benchmarks.csv"), str(extra)], db, run_id)
    for stage in (fit_stage, classify_stage, forecast_stage, project_stage):
        stage.run(db, run_id, config)
    store.finish_run(db, run_id, "succeeded")
    paths = render.report_stage(db, run_id, tmp_path / "reports")
    section = Path(paths["html"]).read_text().split('id="changes"', 1)[1].split("</section>", 1)[0]
    assert f"Against run {real_run['run_id']}" in section
    assert re.search(r"MMLU: 2 new models \(Newcomer-High, Newcomer-Low\)", section), section[:3000]
    assert "Missed forecast: MMLU" in section and "Newcomer-Low (0.31" in section
    # a third run, on GSM8K only and the same files: nothing new, and nothing said of the metric it left out
    config = RunConfig.build(draws=Draws(fit=100, projection=50, backtest=10), metrics=["gsm8k"], x_axes=("compute",))
    third = store.start_run(db, "test third run", config.as_dict())
    ingest.ingest([str(ROOT / "data" / "raw" / "benchmarks.csv"), str(extra)], db, third)
    for stage in (fit_stage, classify_stage, forecast_stage, project_stage):
        stage.run(db, third, config)
    store.finish_run(db, third, "succeeded")
    paths = render.report_stage(db, third, tmp_path / "reports")
    section = Path(paths["html"]).read_text().split('id="changes"', 1)[1].split("</section>", 1)[0]
    head = section.split("<h3>", 1)[0]
    assert f"Against run {run_id}" in section and "MMLU" not in head, head
    assert "Nothing: the same observations" in section


def test_a_worker_that_dies_does_not_lose_the_report(real_run, tmp_path, monkeypatch):
    """Figures and the appendix are drawn in worker processes; if the pool breaks (a worker killed, no shared
    memory), the report is drawn here instead, whole."""
    import concurrent.futures
    import contextlib
    import multiprocessing
    import os

    @contextlib.contextmanager
    def broken_pool():
        pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        with contextlib.suppress(concurrent.futures.process.BrokenProcessPool):
            pool.submit(os._exit, 1).result()
        yield pool
        pool.shutdown()

    db = tmp_path / "copy.duckdb"   # a copy: its figure cache beside it starts empty, so figures are drawn
    shutil.copy(real_run["db"], db)
    monkeypatch.setattr(render, "_pool", broken_pool)
    paths = render.report_stage(db, real_run["run_id"], tmp_path / "reports")
    assert paths["figures_drawn"] >= 2 and paths["pages"] == real_run["paths"]["pages"]
    assert paths["appendix_pages"] == real_run["paths"]["appendix_pages"]
