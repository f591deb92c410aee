"""Benchmark (not a test): rendering the bundled report, cold (empty figure cache) and warm, step by step.

Usage: .venv/bin/python benchmarks/bench_report.py [--db STORE] [--run-id RUN]
       default store: data/processed/scalegap.duckdb (what `make run` writes); if it holds no run with a
       projection, `scalegap run` fills a temporary one first (about 4 minutes, not timed).
Target (issue 15): the whole report stage (report.html, report.pdf, appendix.pdf) under 15 s on 2 cores, cold.

The store is copied into a temporary folder, so the caches beside it start empty; the same copy is then rendered
again (warm: the same results reported again, so the pages' contents, figures and the appendix's PDF come from
the caches). The baseline measured in the same run is the warm render: what is left when nothing is drawn or
built again (loading, HTML, the report's own PDF layout). Both call render.report_stage as a run does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_S = 15.0


def _store(db: Path, tmp: Path) -> Path:
    import duckdb

    if db.is_file():
        con = duckdb.connect(str(db), read_only=True)
        try:
            if con.execute("SELECT count(*) FROM projections").fetchone()[0]:
                return db
        except duckdb.Error:
            pass
        finally:
            con.close()
    made = tmp / "made.duckdb"
    print(f"{db} holds no projected run: running `scalegap run` on the bundled data first (not timed)")
    subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--db", str(made), "--out", str(tmp / "made"),
                    "--quiet"], cwd=ROOT, check=True, env={**os.environ, "PREFECT_HOME": str(tmp / "prefect")})
    return made


def steps(db: Path, run_id: str, out: Path) -> dict[str, float]:
    """The report stage as a run calls it, with the time to each of its progress steps."""
    from pipeline.report import render

    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    paths = render.report_stage(db, run_id, out, progress=lambda i, n, label: marks.append((label, time.perf_counter())))
    end = time.perf_counter()
    first_pdf = next((t for label, t in marks if label == "PDF: report"), end)
    appendix = next((t for label, t in marks if label == "PDF: appendix"), end)
    return {"pages, figures and HTML": first_pdf - t0, f"report.pdf ({paths['pages']} pages)": appendix - first_pdf,
            f"appendix.pdf ({paths['appendix_pages']} pages, laid out beside it)": end - appendix,
            "figures drawn": paths["figures_drawn"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "processed" / "scalegap.duckdb")
    parser.add_argument("--run-id")
    args = parser.parse_args()
    import duckdb

    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        tmp = Path(tmp)
        source = _store(args.db, tmp)
        db = tmp / "store.duckdb"
        shutil.copy(source, db)
        con = duckdb.connect(str(db), read_only=True)
        run_id = args.run_id or con.execute("SELECT run_id FROM projections GROUP BY run_id ORDER BY max(run_id) DESC "
                                            "LIMIT 1").fetchone()[0]
        con.close()
        results = {}
        for label in ("cold", "warm"):
            out = tmp / label
            out.mkdir()
            t = time.perf_counter()
            results[label] = steps(db, run_id, out)
            results[label]["total"] = time.perf_counter() - t
    print(f"report of run {run_id} ({source if source == args.db else 'a fresh run on the bundled data'})")
    for label, times in results.items():
        parts = ", ".join(f"{k} {v:.1f} s" if isinstance(v, float) else f"{k} {v}" for k, v in times.items()
                          if k != "total")
        print(f"{label}: {times['total']:5.1f} s  ({parts})")
    cold, warm = results["cold"]["total"], results["warm"]["total"]
    print(f"cold / warm (baseline, nothing drawn): {cold / warm:.2f}")
    print(f"cold / target {TARGET_S:g} s: {cold / TARGET_S:.2f}  ({'meets' if cold <= TARGET_S else 'misses'} the target)")


if __name__ == "__main__":
    main()
