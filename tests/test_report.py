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
    for stage in (fit_stage, classify_stage, project_stage):
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
    html, pdf = Path(paths["html"]), Path(paths["pdf"])
    assert html == out / run_id / "report.html" and pdf == out / run_id / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert (out / "latest.pdf").read_bytes() == pdf.read_bytes()
    assert (out / "latest.html").read_text() == html.read_text()
    assert not [p for p in out.rglob(".*")], "temporary files left behind"
    assert html.stat().st_mode & 0o044, "report must be readable by others"


def test_every_series_has_its_section_and_plots(real_run):
    html = Path(real_run["paths"]["html"]).read_text()
    series = _series(real_run["db"], real_run["run_id"])
    assert len(series) >= 4  # mmlu and gsm8k from Epoch's hub and from ObsScaling
    sections = re.findall(r'<section class="metric" id="(series-\d+)">(.*?)</section>', html, re.S)
    assert len(sections) == len(series)
    for anchor, body in sections:
        assert f'href="#{anchor}"' in html  # table of contents links to it
        assert body.count("<svg") >= 1, f"{anchor} has no plot"
        assert "Model selection" in body and "Parameters" in body
    for metric, source, version, _ in series:
        assert f"{metric} <span class=\"note\">[{source}@{version}]" in html
    # every metric section draws its data with curves of several families and a labelled band
    assert "95% band, mean curve" in html and "95% band, new observation" in html
    assert "training compute, log10 FLOP" in html


def test_summary_and_provenance(real_run):
    html = Path(real_run["paths"]["html"]).read_text()
    summary = html.split('id="summary"', 1)[1].split("<section", 1)[0]
    assert summary.count("<tr>") >= 1 + len(_series(real_run["db"], real_run["run_id"]))
    provenance = html.split('id="provenance"', 1)[1]
    assert real_run["run_id"] in provenance
    # licences and citations come from the snapshot's rows (Epoch is CC BY 4.0)
    assert "CC BY 4.0" in provenance and "Epoch AI" in provenance
    con = store.connect(real_run["db"], read_only=True)
    digest = con.execute("SELECT sha256 FROM sources LIMIT 1").fetchone()[0]
    stages = dict(con.execute("SELECT stage, status FROM run_stages WHERE run_id = ?", [real_run["run_id"]]).fetchall())
    con.close()
    assert digest[:16] in provenance
    assert stages.get("report") == "succeeded"


def test_classification_and_projection_rendered_when_stored(real_run):
    con = store.connect(real_run["db"], read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    n_cls = con.execute("SELECT count(*) FROM classifications WHERE run_id = ?", [real_run["run_id"]]).fetchone()[0] \
        if "classifications" in tables else 0
    n_proj = con.execute("SELECT count(*) FROM projections WHERE run_id = ? AND metric IS NOT NULL",
                         [real_run["run_id"]]).fetchone()[0] if "projections" in tables else 0
    con.close()
    html = Path(real_run["paths"]["html"]).read_text()
    if not n_cls:
        pytest.skip("classify stage not available")
    assert html.count("Not classified in this run") == 0
    assert re.search(r'class="(meek|mighty|indeterminate)"', html)
    if n_proj:
        assert "Under scenario <b>" in html
        assert html.count("gap (frontier - meek)") >= 1


def test_pdf_pages_match_sections(real_run):
    """Each series section starts a page, so the PDF has at least one page per series plus the front matter."""
    pages = real_run["paths"]["pages"]
    n = len(_series(real_run["db"], real_run["run_id"]))
    assert n + 2 <= pages <= 6 * n + 6
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", real_run["paths"]["pdf"]], capture_output=True, text=True, check=True).stdout
        assert int(re.search(r"Pages:\s+(\d+)", info).group(1)) == pages


def test_html_needs_no_network(real_run):
    html = Path(real_run["paths"]["html"]).read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html), "report must work from disk"
    assert "<script" not in html


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
    # every figure of the re-render came from the figure cache, and drew the same SVG
    assert again["figures_drawn"] == 0 and again["figures_cached"] > 0
    con = store.connect(real_run["db"], read_only=True)
    n = con.execute("SELECT count(*) FROM run_stages WHERE run_id = ? AND stage = 'report'", [real_run["run_id"]]).fetchone()[0]
    con.close()
    assert n == 1


def test_empty_stages_say_so(tmp_path):
    """A run with only ingest renders, saying plainly that later stages produced nothing."""
    from pipeline import ingest

    db = tmp_path / "s.duckdb"
    run_id = store.start_run(db, "test", {})
    ingest.ingest([str(ROOT / "data" / "raw" / "loss.csv")], db, run_id)
    html = render.render_report(render.load(db, run_id), run_id)
    assert "No fits stored for this run." in html
    assert "No counterpart pairs stored for this run." in html
    assert "No projection stage in this run." in html


def test_unknown_run_is_a_clear_error(real_run, tmp_path):
    from pipeline.schema import ScalegapError

    with pytest.raises(ScalegapError, match="not in the store"):
        render.report_stage(real_run["db"], "no-such-run", tmp_path)


def test_cli_report_prints_both_paths(real_run, tmp_path):
    out = tmp_path / "cli"
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "scalegap"), "report", "--db", str(real_run["db"]),
                             "--out", str(out), "--json"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["run_id"] == real_run["run_id"]
    assert Path(payload["html"]).is_file() and Path(payload["pdf"]).is_file()
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
