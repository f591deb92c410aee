"""Time per documented `classify --expr` form against a trivial parse of the same form, target < 1 s each.

The forms are those the README and the CLI help show (`log(log(C))`) and the meek-math §5 boundary
cases they stand for. Each is classified in a warm process (sympy and mpmath imported, one call made
first), median of --runs calls, with the default sympy timeout; the baseline is the median time of
`parse_expression` on the same form in the same run, the floor every call pays. Then each form is answered
the way a user asks, `scalegap classify --expr FORM` in a new process (interpreter start and imports
included), and that too must take under 1 s.

Run: .venv/bin/python benchmarks/bench_expr.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from pipeline.expressions import classify_expression, parse_expression

FORMS = ("log(log(C))", "log(C)", "C**0.1", "1-1/log(C)", "log(log(log(C)))", "sqrt(log(C))", "exp(-1/log(C))",
         "log(C)/(1+log(C))")
TARGET_S = 1.0


def median_time(fn, form: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(form)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="calls per form (the median is reported)")
    args = parser.parse_args()

    classify_expression(FORMS[0])  # imports and first-call set-up stay out of the timings
    print(f"{'form':<22} {'verdict':<20} {'classify s':>10} {'parse s':>9} {'ratio':>7}  target < {TARGET_S:g} s")
    failed = 0
    for form in FORMS:
        verdict = classify_expression(form).verdict
        seconds = median_time(classify_expression, form, args.runs)
        baseline = median_time(parse_expression, form, args.runs)
        ok = seconds < TARGET_S
        failed += not ok
        print(f"{form:<22} {verdict:<20} {seconds:>10.3f} {baseline:>9.4f} {seconds / baseline:>6.0f}x  "
              f"{'PASS' if ok else 'FAIL'}")

    print(f"\n{'scalegap classify --expr FORM, a new process':<46} {'seconds':>8}  target < {TARGET_S:g} s")
    for form in FORMS:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pipeline.cli", "classify", "--expr", form], check=True,
                       capture_output=True)
        seconds = time.perf_counter() - start
        ok = seconds < TARGET_S
        failed += not ok
        print(f"{form:<46} {seconds:>8.2f}  {'PASS' if ok else 'FAIL'}")
    print(f"{2 * len(FORMS) - failed}/{2 * len(FORMS)} under {TARGET_S:g} s (in process and as a command): "
          f"{'PASS' if not failed else 'FAIL'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
