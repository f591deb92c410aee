"""End to end: the rendered PDF as PNG pages (pdftoppm) and the HTML as a headless-Chromium screenshot.

The PNGs are kept under tests/.visual/ (git-ignored by its own .gitignore) so a person can look at them."""

from __future__ import annotations

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
VISUAL = ROOT / "tests" / ".visual"


def _need(binary: str) -> str:
    path = shutil.which(binary)
    if not path:
        pytest.skip(f"{binary} not installed (Debian: apt-get install -y "
                    f"{'poppler-utils' if binary == 'pdftoppm' else 'chromium'}); .ci/run installs it")
    return path


LONG_METRIC = "a_user_benchmark_with_a_long_name_and_no_spaces"


def _long_named_results(folder: Path) -> Path:
    """Identifiers without spaces are what pushed wide tables past the A4 edge."""
    import numpy as np

    flop = np.logspace(21, 25, 12)
    value = 0.25 + 0.7 / (1 + np.exp(-(np.log10(flop) - 23)))
    lines = ["model,metric,value,train_flop,floor,source"]
    lines += [f"model_{i}_with_a_long_name,{LONG_METRIC},{v:.6f},{f:.6g},0.25,my_lab_results_with_a_long_source_name"
              for i, (v, f) in enumerate(zip(value, flop, strict=True))]
    path = folder / "long_names.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    from pipeline import ingest

    base = tmp_path_factory.mktemp("visual")
    db = base / "scalegap.duckdb"
    run_id = store.start_run(db, "test visual", {})
    ingest.ingest([str(ROOT / "data" / "raw" / "benchmarks.csv"), str(_long_named_results(base))], db, run_id)
    metrics = ["mmlu", LONG_METRIC]
    config = RunConfig.build(draws=Draws(fit=200, projection=200, backtest=20), metrics=metrics, x_axes=("compute",))
    for stage in (fit_stage, classify_stage, project_stage):
        stage.run(db, run_id, config)
    store.finish_run(db, run_id, "succeeded")
    paths = render.report_stage(db, run_id, base / "reports")
    VISUAL.mkdir(exist_ok=True)
    (VISUAL / ".gitignore").write_text("*\n")
    return paths


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _ink_fraction(path: Path) -> float:
    """Share of non-white pixels: a blank or broken page has next to none."""
    from PIL import Image

    image = Image.open(path).convert("L")
    histogram = image.histogram()
    return 1 - sum(histogram[245:]) / sum(histogram)


def _right_margin_ink(path: Path) -> int:
    """Dark pixels in the right page margin (12 mm; the outer 11 mm checked, above the 14 mm footer band)."""
    from PIL import Image

    image = Image.open(path).convert("L")
    width, height = image.size
    strip = image.crop((int(width * (210 - 11) / 210), 0, width, int(height * (297 - 15) / 297)))
    return sum(strip.histogram()[:200])


def test_pdf_pages_render_to_png(rendered):
    pdftoppm = _need("pdftoppm")
    for old in VISUAL.glob("page-*.png"):
        old.unlink()
    subprocess.run([pdftoppm, "-r", "70", "-png", rendered["pdf"], str(VISUAL / "page")], check=True, timeout=300)
    pages = sorted(VISUAL.glob("page-*.png"))
    assert len(pages) == rendered["pages"]
    for page in pages:
        width, height = _png_size(page)
        assert abs(height / width - 297 / 210) < 0.01  # A4 portrait
        assert _ink_fraction(page) > 0.005, f"{page.name} is blank"
        assert _right_margin_ink(page) == 0, f"{page.name}: something runs past the right margin (a table too wide?)"


def test_html_screenshot_in_headless_chromium(rendered, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or _need("chromium")
    shot = VISUAL / "html.png"
    shot.unlink(missing_ok=True)
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path}",
                    f"--screenshot={shot}", "--window-size=1280,2000", Path(rendered["html"]).as_uri()],
                   check=True, timeout=180, capture_output=True)
    assert _png_size(shot) == (1280, 2000)
    assert _ink_fraction(shot) > 0.02


def test_report_scripts_draw_every_figure_and_log_no_errors(rendered, tmp_path):
    """The report's own HTML, offline: plotly.js (embedded once) draws every figure, and nothing is logged."""
    import re

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or _need("chromium")
    html = Path(rendered["html"]).read_text()
    ids = re.findall(r'<div id="([^"]+)" class="interactive-figure"', html)
    assert len(ids) >= 3
    run = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path}", "--enable-logging=stderr", "--v=0", "--dump-dom",
                          Path(rendered["html"]).as_uri()], capture_output=True, text=True, timeout=300, check=True)
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    dom = run.stdout
    for div in ids:
        start = dom.index(f'id="{div}"')
        end = dom.find('class="interactive-figure"', start + 1)
        drawn = dom[start:end if end > 0 else len(dom)]
        assert "plot-container" in drawn and 'class="main-svg"' in drawn, f"{div} was not drawn"
    # hovering a point names its model: the hover rows carry the model names of the user's own file
    hover = re.findall(r'"customdata":\s*\[\[\s*"([^"]+)"', html)
    assert any(name.startswith("model_") and name.endswith("_with_a_long_name") for name in hover), hover[:5]
