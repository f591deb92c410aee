"""Issue 9: kills mid-run, two runs at once, idempotent re-runs, unwritable paths, report escaping.
Issue 18: SIGINT / SIGTERM end a run as cancelled; nothing a run started outlives it.

Real processes on a real DuckDB file: `scalegap run` is started as a subprocess and SIGKILLed while a
given stage is running (found by polling the store's runs / run_stages tables read-only).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import psutil
import pytest

from pipeline import store

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "pipeline.cli"]
RESULT_TABLES = ("fits", "fit_params", "selection", "classifications", "projections")
XSS_MODEL = "<script>alert(1)</script>"
XSS_SOURCE = "evil<img src=x onerror=alert(2)>"
ARGS = ["--bootstrap", "50", "--metric", "mmlu,xss_bench", "--x-axis", "compute", "--seed", "7"]


def env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "400", "SCALEGAP_LOCK_TIMEOUT": "60"}


def run_args(db: Path, out: Path, sources: list[str], *extra: str) -> list[str]:
    source_args = [a for s in sources for a in ("--sources", s)]
    return [*CLI, "run", *ARGS, *source_args, "--db", str(db), "--out", str(out), "--quiet", *extra]


def query(db: Path, sql: str, params: list | None = None, wait_s: float = 30.0) -> list[tuple]:
    """Read-only query; retries while a writer holds the file lock."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            con = duckdb.connect(str(db), read_only=True)
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()


def run_digest(db: Path, run_id: str) -> dict[str, str]:
    """Per-table digest of one run's results, without the run id (so two runs compare)."""
    out = {}
    con = duckdb.connect(str(db), read_only=True)
    try:
        for table in RESULT_TABLES:
            frame = con.execute(f"SELECT * EXCLUDE (run_id) FROM {table} WHERE run_id = ?", [run_id]).df()
            rows = sorted(frame.round(9).astype(str).itertuples(index=False, name=None))
            out[table] = f"{len(rows)}:{hash(repr(rows))}"
    finally:
        con.close()
    return out


def family(proc: subprocess.Popen) -> list[psutil.Process]:
    """The run and every process it started (the temporary Prefect server among them)."""
    root = psutil.Process(proc.pid)
    return [root, *root.children(recursive=True)]


def assert_none_left(processes: list[psutil.Process], timeout_s: float = 10.0) -> None:
    """Every listed process is gone (or a zombie awaiting its parent's wait)."""
    _, alive = psutil.wait_procs(processes, timeout=timeout_s)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for p in alive:  # leave nothing behind even when failing
        p.kill()
    assert not alive, [(p.pid, p.cmdline()) for p in alive]


@pytest.fixture(scope="module", autouse=True)
def nothing_left_behind():
    """After this module's runs and kills, no process started here remains."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    assert_none_left([p for p in psutil.Process().children(recursive=True) if p.pid not in before])


def write_user_csv(folder: Path) -> Path:
    """A user's benchmark with a hostile model name and source: 14 models on a logistic in log-compute."""
    flop = np.logspace(21, 25, 14)
    value = 0.25 + 0.7 / (1 + np.exp(-(np.log10(flop) - 23)))
    names = [f"user-model-{i}" for i in range(13)] + [XSS_MODEL]
    lines = ["model,metric,value,train_flop,floor,source"]
    lines += [f'"{n}",xss_bench,{v:.6f},{f:.6g},0.25,"{XSS_SOURCE}"' for n, v, f in zip(names, value, flop, strict=True)]
    path = folder / "user_results.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """One completed run on the bundled snapshot plus a hostile user CSV."""
    folder = tmp_path_factory.mktemp("reliability")
    sources = [str(ROOT / "data" / "raw"), str(write_user_csv(folder))]
    db, out = folder / "store.duckdb", folder / "reports"
    t0 = time.monotonic()
    done = subprocess.run(run_args(db, out, sources), capture_output=True, text=True, timeout=400, env=env())
    assert done.returncode == 0, done.stderr[-3000:]
    [(run_id,)] = query(db, "SELECT run_id FROM runs WHERE status = 'succeeded'")
    return {"db": db, "out": out, "sources": sources, "run_id": run_id, "seconds": time.monotonic() - t0,
            "digest": run_digest(db, run_id)}


def test_baseline_has_results(baseline):
    assert all(not d.startswith("0:") for t, d in baseline["digest"].items() if t != "projections"), baseline["digest"]


def test_report_escapes_model_and_source_names(baseline):
    html_files = list((baseline["out"] / baseline["run_id"]).glob("*.html"))
    if not html_files:
        pytest.skip("the report stage wrote no HTML in this checkout")
    html = html_files[0].read_text(encoding="utf-8")
    assert XSS_MODEL not in html and "<img src=x" not in html
    assert "onerror=alert(2)>" not in html
    assert "xss_bench" in html  # the hostile series did reach the report, escaped


def _wait_for(db: Path, run_id_before: set[str], stage: str | None, proc: subprocess.Popen,
              log: Path, timeout_s: float = 300) -> str:
    """Poll until the new run exists (stage None) or has committed `stage`; return its run id."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed: " + log.read_text()[-3000:]
        try:  # the run holds the file lock most of the time: a refused read just polls again
            runs = [r for (r,) in query(db, "SELECT run_id FROM runs WHERE status = 'running'", wait_s=0)
                    if r not in run_id_before]
            if runs and (stage is None or query(db, "SELECT 1 FROM run_stages WHERE run_id = ? AND stage = ? "
                                                    "AND status = 'succeeded'", [runs[0], stage], wait_s=0)):
                return runs[0]
        except duckdb.IOException:
            pass
        time.sleep(0.25)  # a slow poll: each read briefly holds the file lock the run needs
    raise AssertionError(f"stage {stage} not reached")


@pytest.mark.parametrize(("during", "after_stage", "delay_s"), [
    ("ingest", None, 0.0),        # the run row exists, ingest is in progress
    ("fit", "horizons", 0.3),     # horizons committed: the fit subflow is running
    ("report", "project", 1.0),   # project committed: the report (HTML, then PDF) is being written
])
def test_sigkill_mid_run_loses_nothing(baseline, during, after_stage, delay_s, tmp_path):
    db = baseline["db"]
    before_runs = {r for (r,) in query(db, "SELECT run_id FROM runs")}
    log = tmp_path / "stderr.txt"
    with open(log, "w") as handle:
        # the baseline filled the fit cache: a kill "during fit" must meet fits really being computed
        extra = ("--no-cache",) if during == "fit" else ()
        proc = subprocess.Popen(run_args(db, baseline["out"], baseline["sources"], *extra), stdout=subprocess.DEVNULL,
                                stderr=handle, env=env())
    try:
        killed = _wait_for(db, before_runs, after_stage, proc, log)
        time.sleep(delay_s)
        assert proc.poll() is None, f"run finished before the kill during {during}"
        started = family(proc)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(started) > 1, "the temporary Prefect server should have been running"
    assert_none_left(started)
    # Readers see the run as gone at once, without the write lock (status, project, report...).
    con = store.connect(db, read_only=True)
    try:
        assert store.run_status(con, killed) == store.PROCESS_GONE
    finally:
        con.close()
    status = subprocess.run([*CLI, "status", "--db", str(db), "--json"], capture_output=True, text=True,
                            timeout=120, env=env())
    assert {r["run_id"]: r["status"] for r in json.loads(status.stdout)["runs"]}[killed] == store.PROCESS_GONE
    # The file opens for writing, and the previous run's results are intact and complete.
    store.connect(db).close()
    assert run_digest(db, baseline["run_id"]) == baseline["digest"]
    stages = {s for (s,) in query(db, "SELECT stage FROM run_stages WHERE run_id = ?", [killed])}
    if during == "fit":
        assert "fit" not in stages
        assert query(db, "SELECT count(*) FROM fits WHERE run_id = ?", [killed]) == [(0,)]
    # Never half-written: a stage either committed with its stage row, or left nothing.
    for table, stage in (("fits", "fit"), ("classifications", "classify"), ("projections", "project")):
        n = query(db, f"SELECT count(*) FROM {table} WHERE run_id = ?", [killed])[0][0]
        assert (n > 0) == (stage in stages) or (n == 0 and stage in stages), (table, n, stages)
    # The next start marks the dead run failed.
    next_run = store.start_run(db, "test", {})
    store.finish_run(db, next_run, "succeeded")
    assert query(db, "SELECT status FROM runs WHERE run_id = ?", [killed]) == [("failed",)]


@pytest.mark.parametrize(("how", "status"), [("SIGINT", 130), ("SIGINT to the group", 130), ("SIGTERM", 143)])
def test_interrupt_cancels_the_run_within_seconds(baseline, how, status, tmp_path):
    """Ctrl-C (to the process, or to its whole process group as a terminal sends it) and SIGTERM:
    one line saying so, exit 128 + signal, the run recorded `cancelled`, no stage half-written."""
    db = baseline["db"]
    before_runs = {r for (r,) in query(db, "SELECT run_id FROM runs")}
    log = tmp_path / "stderr.txt"
    with open(log, "w") as handle:  # a session of its own: the group signal must not reach pytest
        proc = subprocess.Popen(run_args(db, baseline["out"], baseline["sources"], "--no-cache"),
                                stdout=subprocess.DEVNULL, stderr=handle, env=env(), start_new_session=True)
    try:
        run_id = _wait_for(db, before_runs, "horizons", proc, log)
        started = family(proc)
        t0 = time.monotonic()
        if how.endswith("group"):
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(getattr(signal, how))
        proc.wait(timeout=60)
        seconds = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert_none_left(started)
    stderr = log.read_text()
    assert proc.returncode == status, stderr[-3000:]
    assert seconds < 20, seconds
    assert "Traceback" not in stderr
    name = how.split()[0]
    assert stderr.strip().splitlines()[-1] == \
        f"error: run {run_id} interrupted ({name}); nothing half-written was kept"
    assert query(db, "SELECT status, message FROM runs WHERE run_id = ?", [run_id]) == \
        [("cancelled", f"interrupted ({name})")]
    stages = {s for (s,) in query(db, "SELECT stage FROM run_stages WHERE run_id = ?", [run_id])}
    for table, stage in (("fits", "fit"), ("classifications", "classify"), ("projections", "project")):
        n = query(db, f"SELECT count(*) FROM {table} WHERE run_id = ?", [run_id])[0][0]
        assert (n > 0) == (stage in stages) or (n == 0 and stage in stages), (table, n, stages)
    assert run_digest(db, baseline["run_id"]) == baseline["digest"]


def test_next_run_completes_and_is_idempotent(baseline):
    db = baseline["db"]
    t0 = time.monotonic()
    done = subprocess.run(run_args(db, baseline["out"], baseline["sources"], "--no-cache"), capture_output=True,
                          text=True, timeout=400, env=env())
    assert done.returncode == 0, done.stderr[-3000:]
    latest = query(db, "SELECT run_id FROM runs WHERE status = 'succeeded' AND command = 'run' "
                       "ORDER BY finished_at DESC LIMIT 1")[0][0]
    assert latest != baseline["run_id"]
    # Same input, same seed, fits recomputed (no cache): identical results.
    assert run_digest(db, latest) == baseline["digest"]
    assert query(db, "SELECT count(*) FROM runs WHERE status = 'running'") == [(0,)]
    # No duplicate observations after repeated ingests of the same files.
    assert query(db, "SELECT count(*) - count(DISTINCT (source, source_version, model, metric)) FROM observations") \
        == [(0,)]
    print(f"baseline run {baseline['seconds']:.0f} s, uncached re-run {time.monotonic() - t0:.0f} s")


def test_two_runs_at_once(baseline, tmp_path):
    db = tmp_path / "two.duckdb"
    args = [a for a in run_args(db, tmp_path / "out", [str(ROOT / "data" / "raw")]) if a]
    args = [*args[:args.index("--metric") + 1], "mmlu", *args[args.index("--metric") + 2:]]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
             for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    for code, stderr in results:
        assert "Traceback" not in stderr
        assert code == 0 or "another scalegap process" in stderr, stderr[-2000:]
    assert any(code == 0 for code, _ in results)
    succeeded = [r for (r,) in query(db, "SELECT run_id FROM runs WHERE status = 'succeeded'")]
    assert len(succeeded) == sum(code == 0 for code, _ in results)
    assert query(db, "SELECT count(*) FROM runs WHERE status = 'running'") == [(0,)]
    assert query(db, "SELECT count(*) - count(DISTINCT (source, source_version, model, metric)) FROM observations") \
        == [(0,)]
    # Each successful run holds a complete, identical set of fits (same input and seed).
    digests = [run_digest(db, r)["fits"] for r in succeeded]
    assert len(set(digests)) == 1 and not digests[0].startswith("0:")


@pytest.mark.parametrize("option", ["--out", "--db"])
def test_unwritable_paths_fail_before_any_work(tmp_path, option):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    db, out = tmp_path / "s.duckdb", tmp_path / "out"
    if option == "--out":
        out = blocker / "reports"
    else:
        db = blocker / "s.duckdb"
    done = subprocess.run(run_args(db, out, [str(ROOT / "data" / "raw")]), capture_output=True, text=True,
                          timeout=120, env=env())
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert str(blocker) in done.stderr and "Fix:" in done.stderr and option in done.stderr
    # Before any work: no run was recorded (no store created, or no run row in it).
    if db.exists():
        assert query(db, "SELECT count(*) FROM runs") == [(0,)], "work started before the path check"


def test_serve_stops_on_sigterm_without_warnings_or_leftovers(tmp_path):
    """`scalegap serve --start-server` stopped as a service manager stops it: status 143, one line,
    no "coroutine ... never awaited" warning, and its Prefect server gone with it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve_env = {**env(), "PREFECT_HOME": str(tmp_path / "prefect")}
    serve_env.pop("PREFECT_API_URL", None)
    log = tmp_path / "serve.txt"
    with open(log, "w") as handle:
        proc = subprocess.Popen([*CLI, "serve", "--start-server", "--port", str(port), "--db", str(tmp_path / "s.duckdb")],
                                stdout=handle, stderr=subprocess.STDOUT, env=serve_env, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "being served" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        started = family(proc)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text()
    assert proc.returncode == 143, text[-3000:]
    assert "never awaited" not in text and "Traceback" not in text
    assert text.strip().splitlines()[-1] == "error: interrupted (SIGTERM)"
    assert len(started) > 1
    assert_none_left(started)
