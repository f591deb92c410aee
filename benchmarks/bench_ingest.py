"""Peak memory and time of `scalegap ingest` on a generated generic CSV: 3 million rows against a
baseline of 300 thousand measured in the same run, so the ratio shows whether memory grows with the file.

Each size is ingested by a fresh process into a fresh store (peak RSS is per process). The rows are
`model, metric, value, train_flop, release_date`, one model per row over 40 metrics, so the model registry
has as many spellings to match as there are rows. Two peaks: before the store's transaction (the reader:
parse, check, stage on disk) and overall (the store's insert, the registry rebuild and the commit).

A third figure is DuckDB's floor: another fresh process inserts the same number of rows, with the same keys,
into the store's `observations` table in one transaction and commits, and nothing else. DuckDB holds a primary
key's index in memory until the commit; that part grows with the rows whatever scalegap does.

Run: .venv/bin/python benchmarks/bench_ingest.py [--rows 3000000] [--baseline 300000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in the child: one ingest, then its peak RSS (ru_maxrss, KiB on Linux) when the store's transaction
# began (reading, checking and staging the file) and at the end (the store's insert and commit included).
CHILD = """
import json, resource, sys, time
from pipeline import ingest, store
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
seen = {}
open_stage = store.open_stage
def recorded(*args, **kwargs):
    seen["read_mb"] = peak()
    return open_stage(*args, **kwargs)
store.open_stage = recorded
start = time.perf_counter()
summary = ingest.ingest([sys.argv[1]], db=sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - start, "peak_mb": peak(), **seen,
                  "observations": summary.observations}))
"""

# DuckDB alone: the same keys into the store's observations table, one transaction, then its peak RSS.
FLOOR = """
import json, resource, sys
from pipeline import store
rows, db = int(sys.argv[1]), sys.argv[2]
con = store.connect(db)
con.execute("BEGIN")
con.execute("INSERT INTO observations (source, source_version, model, metric, value, train_flop) "
            "SELECT 'results_' || ?, 'user', 'model-' || i, 'metric_' || (i % 40), (i * 7919 % 1000) / 1000, "
            "1e20 * (1 + i % 997) FROM range(?) t(i)", [rows, rows])
con.execute("COMMIT")
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_csv(path: Path, rows: int) -> None:
    """Deterministic rows, written in blocks (the generator itself must not hold the file)."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("model,metric,value,train_flop,release_date\n")
        block = 100_000
        for start in range(0, rows, block):
            handle.write("".join(
                f"model-{i},metric_{i % 40},{(i * 7919 % 1000) / 1000:.3f},{1e20 * (1 + i % 997):.6g},"
                f"20{10 + i % 15}-{1 + i % 12:02d}-{1 + i % 28:02d}\n"
                for i in range(start, min(start + block, rows))))


def measure(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--baseline", type=int, default=300_000)
    parser.add_argument("--keep", type=Path, help="write the files and stores here and keep them")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="scalegap-bench-ingest-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        results = {}
        for rows in (args.baseline, args.rows):
            csv = folder / f"results_{rows}.csv"
            write_csv(csv, rows)
            results[rows] = r = measure(CHILD, str(csv), str(folder / f"store_{rows}.duckdb"))
            r["floor_mb"] = measure(FLOOR, str(rows), str(folder / f"floor_{rows}.duckdb"))["peak_mb"]
            print(f"{rows:>9,} rows ({csv.stat().st_size / 2**20:6.1f} MB): {r['seconds']:6.1f} s; peak RSS "
                  f"{r['read_mb']:5.0f} MB reading and checking, {r['peak_mb']:5.0f} MB with the store's write "
                  f"and the registry; {r['observations']:,} observations stored. DuckDB's floor (the same keys "
                  f"into observations, one transaction): {r['floor_mb']:5.0f} MB")
        small, large = results[args.baseline], results[args.rows]
        print(f"x{args.rows / args.baseline:g} rows: x{large['seconds'] / small['seconds']:.1f} time, "
              f"x{large['read_mb'] / small['read_mb']:.2f} peak memory reading and checking, "
              f"x{large['peak_mb'] / small['peak_mb']:.2f} with the store's write "
              f"(DuckDB's floor alone x{large['floor_mb'] / small['floor_mb']:.2f}); above the floor: "
              f"{small['peak_mb'] - small['floor_mb']:+.0f} MB and {large['peak_mb'] - large['floor_mb']:+.0f} MB")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
