"""Benchmark (not a test): a cold `scalegap run` (fresh store, empty caches) and a warm one on the same,
unchanged data, in one benchmark run; prints both, their ratio, and where each run's time went.

Usage: .venv/bin/python benchmarks/bench_warm_run.py [-- RUN OPTIONS...]
       (e.g. `-- --metric mmlu` to time a smaller run; default: `scalegap run` with its defaults)
Target (issue 18): warm <= 1/4 of cold.

Both runs are the real command in a child process, with their own store, report folder and Prefect
home in a temporary folder: caches beside the store (figures, counterpart fits) and Prefect's fit
cache start empty. Prefect's own database is created before the cold run (a user's first run pays
for that once, not per cold run), so it is not counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.25


def timed_run(folder: Path, env: dict[str, str], extra: list[str]) -> tuple[float, dict]:
    command = [sys.executable, "-m", "pipeline.cli", "run", "--db", str(folder / "store.duckdb"),
               "--out", str(folder / "reports"), "--json", "--quiet", *extra]
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"`{' '.join(command)}` failed:\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout)


def breakdown(label: str, seconds: float, result: dict) -> None:
    stages = result["timings_s"]
    print(f"{label}: {seconds:6.1f} s  (" + ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
          + f"; outside the stages, i.e. start-up, imports, Prefect server, exit: {seconds - sum(stages.values()):.1f})")


def main() -> None:
    extra = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "PREFECT_HOME": str(folder / "prefect"),
               "PREFECT_LOCAL_STORAGE_PATH": str(folder / "prefect" / "storage")}
        env.pop("PREFECT_API_URL", None)  # the run's own temporary server, as a user's `scalegap run`
        prefect = Path(sys.executable).parent / "prefect"
        subprocess.run([str(prefect), "server", "database", "upgrade", "-y"], env=env, check=True,
                       capture_output=True)
        cold, cold_result = timed_run(folder, env, extra)
        warm, warm_result = timed_run(folder, env, extra)
    print(f"scalegap run {' '.join(extra) or '(defaults)'} on the bundled data, unchanged between the runs")
    breakdown("cold", cold, cold_result)
    breakdown("warm", warm, warm_result)
    ratio = warm / cold
    print(f"warm / cold = {ratio:.2f} (target <= {TARGET:.2f}): {'met' if ratio <= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
