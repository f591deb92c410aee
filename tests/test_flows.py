"""The refresh flow, its cache, ad-hoc parameters, the Dask runner and a served deployment.

The stage logic is tested in each stage's own tests; here only orchestration. The flow tests run
under ONE `prefect_test_harness` (a temporary Prefect server and database for the session) on the
bundled snapshot in data/raw/ and a temporary DuckDB file.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from conftest import query_frame

import flows
from flows import deployments
from flows.refresh import (
    BUNDLED,
    content_digest,
    fit_cache_key,
    make_task_runner,
    resolve_sources,
)
from pipeline import store
from pipeline.schema import InputError, ScalegapError

ROOT = Path(__file__).resolve().parents[1]
DRAWS = 200  # small: these tests are about orchestration, not about interval accuracy
# The bundled snapshot; SCALEGAP_FLOW_TEST_DATA points the flow tests at another folder of sources.
DATA = Path(os.environ.get("SCALEGAP_FLOW_TEST_DATA") or BUNDLED)
SUBSET = ["mmlu", "gsm8k"]  # a few series from two sources keep the repeated runs short


def _has_bundled_data() -> bool:
    return DATA.is_dir() and any(p.suffix in {".csv", ".json", ".jsonl", ".yaml"}
                                 for p in DATA.rglob("*") if p.is_file())


needs_bundle = pytest.mark.skipif(not _has_bundled_data(), reason="bundled data/raw not built yet")


# ------------------------------------------------------------------------------ fast unit tests
def test_content_digest_follows_values_not_identity():
    a = pd.DataFrame({"x": [21.0, 22.5, 24.0], "value": [0.31, 0.52, 0.77]})
    b = a.copy()
    assert content_digest({"frame": a, "metric": "mmlu"}) == content_digest({"metric": "mmlu", "frame": b})
    b.loc[1, "value"] = 0.53
    assert content_digest({"frame": a, "metric": "mmlu"}) != content_digest({"frame": b, "metric": "mmlu"})
    assert content_digest({"frame": a, "metric": "mmlu"}) != content_digest({"frame": a, "metric": "gpqa"})


def test_fit_cache_key_covers_draws_seed_and_families():
    series = {"frame": pd.DataFrame({"x": [1.0, 2.0], "value": [0.1, 0.2]})}
    base = {"series": series, "families": ["logistic", "power"], "draws": 200, "backtest_draws": 20, "seed": 0}
    key = fit_cache_key(None, base)
    assert key == fit_cache_key(None, {**base, "families": ["power", "logistic"]})
    for change in ({"draws": 201}, {"backtest_draws": 21}, {"seed": 1}, {"families": ["logistic"]}):
        assert fit_cache_key(None, {**base, **change}) != key


def test_sources_resolution(tmp_path):
    assert resolve_sources(None) == ([str(BUNDLED)], [])
    local_file = tmp_path / "mine.csv"
    local_file.write_text("model,metric,value\n")
    local, network = resolve_sources([str(local_file), "https://example.org/x.csv", "epoch_hub"])
    assert local == [str(local_file)]
    assert network == ["https://example.org/x.csv", "epoch_hub"]


def test_unknown_task_runner_is_an_input_error():
    with pytest.raises(InputError, match="unknown task runner"):
        make_task_runner("spark")


def test_offline_defaults_are_set():
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["DO_NOT_TRACK"] == "1"
    assert Path(os.environ["PREFECT_HOME"]).resolve() == flows.PREFECT_HOME.resolve()


def test_prefect_yaml_deploys_the_refresh_flow():
    import yaml
    from prefect.flows import load_flow_from_entrypoint

    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in config["deployments"]}
    weekly = by_name["weekly-refresh"]
    assert weekly["parameters"]["sources"] == ["all-public"]
    assert weekly["schedules"][0]["cron"] == deployments.WEEKLY_CRON
    flow = load_flow_from_entrypoint(str(ROOT / weekly["entrypoint"]))
    assert flow.name == "refresh"
    assert set(weekly["parameters"]) <= set(flow.parameters.properties)


# ------------------------------------------------------------------------------ flow runs
@pytest.fixture(scope="session")
def harness(tmp_path_factory):
    """One temporary Prefect server for every flow test; a fresh fit cache for the session."""
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    storage = tmp_path_factory.mktemp("prefect-storage")
    with prefect_test_harness(server_startup_timeout=120), \
            temporary_settings({PREFECT_LOCAL_STORAGE_PATH: storage}):
        yield storage


def _run(db: Path, **params):
    from flows.refresh import refresh

    params.setdefault("sources", [str(DATA)])
    draws = params.pop("bootstrap", DRAWS)
    return refresh(db=str(db), fit_draws=draws, projection_draws=params.pop("projection_draws", 50),
                   horizon_draws=params.pop("horizon_draws", 50), backtest_draws=params.pop("backtest_draws", 20),
                   out_dir=str(db.parent / "reports"), **params)


def _runs(db: Path) -> pd.DataFrame:
    con = store.connect(db, read_only=True)
    try:
        return con.execute("SELECT * FROM runs ORDER BY started_at").df()
    finally:
        con.close()


@pytest.mark.slow
@needs_bundle
def test_refresh_end_to_end_records_the_run(harness, tmp_path):
    db = tmp_path / "e2e.duckdb"
    # one metric per kind keeps the rendered report (the slowest stage) small
    scenario = ROOT / "pipeline" / "scenarios" / "fast_software.toml"
    result = _run(db, seed=3, metrics=["mmlu", "loss", "metr_p50_minutes"], bootstrap=100, scenario=str(scenario))
    runs = _runs(db)
    assert list(runs["run_id"]) == [result["run_id"]]
    row = runs.iloc[0]
    assert row["status"] == "succeeded" and row["finished_at"] is not None
    parameters = json.loads(row["parameters"])
    assert parameters["draws"] == {"fit": 100, "projection": 50, "horizons": 50, "backtest": 20}
    assert parameters["seed"] == 3 and parameters["scenario"]["name"] == "fast_software"
    assert json.loads(row["data_digests"])  # every ingested file's sha256
    con = store.connect(db, read_only=True)
    try:
        n_obs = con.execute("SELECT count(*) FROM observations").fetchone()[0]
        stages = dict(con.execute("SELECT stage, status FROM run_stages WHERE run_id = ?",
                                  [result["run_id"]]).fetchall())
    finally:
        con.close()
    assert n_obs > 0
    assert stages["ingest"] == "succeeded"
    # `scalegap run --scenario S` classifies with S's growth rates, on every axis
    from pipeline.scenario import load_scenario

    loaded = load_scenario(scenario)
    con = store.connect(db, read_only=True)
    try:
        rates = con.execute("SELECT x_axis, growth_a, growth_b FROM classifications WHERE run_id = ?",
                            [result["run_id"]]).fetchall()
    finally:
        con.close()
    assert rates and all((a, b) == pytest.approx(loaded.rates(axis=axis)) for axis, a, b in rates)
    assert loaded.rates(axis="date") != pytest.approx(load_scenario(None).rates(axis="date"))
    # every stage ran and committed: a stage that did not run fails the run
    assert stages == {s: "succeeded" for s in ("ingest", "horizons", "fit", "classify", "forecast", "gaps", "project",
                                               "report")}


@pytest.mark.slow
@needs_bundle
def test_adhoc_parameters_are_stored(harness, tmp_path):
    db = tmp_path / "adhoc.duckdb"
    result = _run(db, bootstrap=50, seed=11, metrics=["mmlu"], x_axes=["compute"],
                  families=["logistic"], report=False, command="run")
    row = _runs(db).set_index("run_id").loc[result["run_id"]]
    parameters = json.loads(row["parameters"])
    assert row["command"] == "run"
    assert {k: parameters[k] for k in ("seed", "metrics", "x_axes", "families")} == {
        "seed": 11, "metrics": ["mmlu"], "x_axes": ["compute"], "families": ["logistic"]}
    assert parameters["draws"]["fit"] == 50 and "report" not in parameters["stages"]
    assert parameters["prefect_flow_run_id"]
    con = store.connect(db, read_only=True)
    try:
        stages = dict(con.execute("SELECT stage, status FROM run_stages WHERE run_id = ?",
                                  [result["run_id"]]).fetchall())
    finally:
        con.close()
    assert stages["report"] == "skipped"   # turned off on purpose: recorded, and the run still succeeds


@pytest.mark.slow
def test_failed_run_is_recorded_as_failed(harness, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    db = tmp_path / "failed.duckdb"
    with pytest.raises(InputError, match="empty"):
        _run(db, sources=[str(empty)])
    row = _runs(db).iloc[0]
    assert row["status"] == "failed"
    assert "empty" in row["message"]


@pytest.mark.slow
@needs_bundle
def test_second_run_is_served_from_the_fit_cache(harness, tmp_path):
    """A run that changes only a later stage's setting (projection draws) is not a repeat: it recomputes, but
    every fit comes from the fit cache, identical."""
    db = tmp_path / "cache.duckdb"
    t0 = time.perf_counter()
    # 1000 draws: with fewer, on four series, Prefect's per-task overhead hides the fitting cost
    first = _run(db, seed=5, metrics=SUBSET, report=False, bootstrap=1000)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = _run(db, seed=5, metrics=SUBSET, report=False, bootstrap=1000, projection_draws=60)
    t_second = time.perf_counter() - t0
    assert first["stages"]["fit"]["series"] > 0
    assert first["stages"]["fit"]["cached"] == 0
    assert second["stages"]["fit"]["cached"] == second["stages"]["fit"]["series"]
    print(f"first run {t_first:.1f} s, second run {t_second:.1f} s")
    # both runs hold their full fits, identical apart from the run id
    pd.testing.assert_frame_equal(_fits(db, first["run_id"]), _fits(db, second["run_id"]))


def test_a_repeat_run_copies_results_identical_to_recomputing_them(harness, tmp_path):
    """Same data, configuration and code as the run before: the results are copied (each stage records the run
    that computed them), and they equal what recomputing gives (--no-cache). A changed seed, a changed input
    file, or a finished run rewritten by a later command each make the next run recompute."""
    from pipeline.stages import reuse

    db = tmp_path / "repeat.duckdb"
    first = _run(db, seed=5, metrics=SUBSET, report=False)
    second = _run(db, seed=5, metrics=SUBSET, report=False)
    stages = query_frame(db, "SELECT stage, reused_from, message FROM run_stages WHERE run_id = ? ORDER BY stage",
                         [second["run_id"]])
    copied = stages[stages["stage"].isin(reuse.REUSABLE)]
    assert set(copied["stage"]) == set(reuse.REUSABLE)
    assert (copied["reused_from"] == first["run_id"]).all(), stages
    assert second["stages"]["fit"] == {"reused_from": first["run_id"], "rows": second["stages"]["fit"]["rows"]}
    recomputed = _run(db, seed=5, metrics=SUBSET, report=False, use_cache=False)
    assert query_frame(db, "SELECT count(*) AS n FROM run_stages WHERE run_id = ? AND reused_from IS NOT NULL",
                       [recomputed["run_id"]])["n"][0] == 0
    for stage, tables in reuse.WRITES.items():
        for table, column in tables:
            copy, fresh = (_rows(db, table, column, r) for r in (second["run_id"], recomputed["run_id"]))
            if table == "forecast_scores":  # the recomputed run also scores the two runs before it (nothing new)
                fresh = fresh[fresh["forecast_run_id"] != second["run_id"]].reset_index(drop=True)
                copy = copy[copy["forecast_run_id"] != first["run_id"]].reset_index(drop=True)
            pd.testing.assert_frame_equal(copy, fresh, obj=f"{stage}: {table}")
    digests = query_frame(db, "SELECT run_id, inputs_digest FROM runs ORDER BY started_at")
    assert digests["inputs_digest"].nunique() == 1 and digests["inputs_digest"].notna().all()

    # a later command rewrote the newest run's results after it finished: recompute
    from pipeline.config import RunConfig
    from pipeline.stages import classify as classify_stage

    latest = recomputed["run_id"]
    classify_stage.run(str(db), latest, RunConfig.build(None, seed=5, metrics=SUBSET))
    assert _reused(db, _run(db, seed=5, metrics=SUBSET, report=False)) is None
    # another seed: recompute; then the same again: copied from it
    other = _run(db, seed=6, metrics=SUBSET, report=False)
    assert _reused(db, other) is None
    assert _reused(db, _run(db, seed=6, metrics=SUBSET, report=False)) == other["run_id"]
    # a new input file: recompute
    extra = tmp_path / "extra.csv"
    extra.write_text("model,metric,value,train_flop,source\n" + "".join(
        f"m{i},extra_bench,{0.3 + 0.05 * i:.2f},{10 ** (21 + i):.0e},extra\n" for i in range(6)))
    assert _reused(db, _run(db, seed=6, metrics=SUBSET, report=False, sources=[str(DATA), str(extra)])) is None


def _reused(db: Path, result: dict) -> str | None:
    frame = query_frame(db, "SELECT DISTINCT reused_from FROM run_stages WHERE run_id = ? AND stage = 'fit'",
                        [result["run_id"]])
    return frame["reused_from"][0]


def _rows(db: Path, table: str, column: str, run_id: str) -> pd.DataFrame:
    frame = query_frame(db, f"SELECT * EXCLUDE ({column}) FROM {table} WHERE {column} = ? ORDER BY ALL", [run_id])
    return frame.reset_index(drop=True)


def _fits(db: Path, run_id: str, table: str = "fits") -> pd.DataFrame:
    con = store.connect(db, read_only=True)
    try:
        frame = con.execute(f"SELECT * FROM {table} WHERE run_id = ?", [run_id]).df()
    finally:
        con.close()
    drop = [c for c in frame.columns if c == "run_id" or c.endswith("_at") or "time" in c]
    frame = frame.drop(columns=drop)
    keys = [c for c in ("metric", "source", "source_version", "x_axis", "family", "param")
            if c in frame.columns]
    return frame.sort_values(keys).reset_index(drop=True)


@pytest.mark.slow
@needs_bundle
def test_dask_runner_gives_the_default_runners_fits(harness, tmp_path):
    db = tmp_path / "dask.duckdb"
    default = _run(db, seed=7, use_cache=False, metrics=SUBSET, report=False)
    dask = _run(db, seed=7, use_cache=False, metrics=SUBSET, report=False,
                task_runner="dask")
    assert dask["stages"]["fit"]["cached"] == 0  # really computed on the cluster
    for table in ("fits", "fit_params"):
        a, b = _fits(db, default["run_id"], table), _fits(db, dask["run_id"], table)
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b)


# ------------------------------------------------------------------------------ served deployment
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _deployment_names(url: str) -> set[str]:
    request = urllib.request.Request(f"{url}/deployments/filter", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return {d["name"] for d in json.load(response)}


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.slow
@needs_bundle
def test_served_deployment_registers_and_a_triggered_run_completes(tmp_path):
    home = tmp_path / "prefect-home"
    home.mkdir()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url,
           "PREFECT_LOCAL_STORAGE_PATH": str(home / "storage"), "PREFECT_CLI_PROMPT": "false"}
    server = deployments.start_server(port, log_path=tmp_path / "server.log", prefect_home=home)
    serve_log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    served = subprocess.Popen([str(Path(sys.executable).parent / "scalegap"), "serve", "--api-url", url],
                              cwd=ROOT, env=env, stdout=serve_log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        names: set[str] = set()
        while time.monotonic() < deadline and not {"weekly-refresh", "adhoc"} <= names:
            assert served.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(1)
            names = _deployment_names(url)
        assert {"weekly-refresh", "adhoc"} <= names

        db = tmp_path / "served.duckdb"
        params = {"sources": [str(DATA)], "db": str(db), "fit_draws": 50, "metrics": ["mmlu"],
                  "report": False,
                  "out_dir": str(tmp_path / "reports")}
        triggered = subprocess.run(
            [str(Path(sys.executable).parent / "prefect"), "deployment", "run", "refresh/adhoc",
             "--params", json.dumps(params), "--watch", "--watch-timeout", "240"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert triggered.returncode == 0, triggered.stdout + triggered.stderr
        row = _runs(db).iloc[-1]
        assert row["status"] == "succeeded"
        assert row["command"] == "deployment adhoc"
        assert json.loads(row["parameters"])["draws"]["fit"] == 50
    finally:
        _stop(served)
        _stop(server)
        serve_log.close()


@pytest.mark.slow
def test_network_fetch_retries_until_the_source_answers(harness, tmp_path):
    """A source that fails three times is fetched on the task's third retry (the only retry layer in a flow)."""
    import http.server
    import threading

    from flows.refresh import fetch_source

    body = b"model,metric,value,train_flop\nm1,mmlu,0.5,1e23\n"
    requests: list[str] = []

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            requests.append(self.path)
            if len(requests) <= 3:  # each task attempt fetches once: only the task's own retries reach the 4th
                self.send_error(503, "busy")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/flaky.csv"
        files = fetch_source.with_options(retry_delay_seconds=0)(url, str(tmp_path / "downloads"))
    finally:
        server.shutdown()
    assert len(requests) == 4
    assert [Path(f).read_bytes() for f in files] == [body]


@pytest.mark.slow
def test_cli_run_failure_is_one_clear_line(tmp_path):
    """A user's mistake inside the flow ends as one `error:` line and exit code 2, no traceback."""
    db = tmp_path / "cli.duckdb"
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    done = subprocess.run([str(Path(sys.executable).parent / "scalegap"), "run", "--db", str(db),
                           "--sources", str(empty), "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error:") and "empty" in done.stderr
    assert "Traceback" not in done.stderr and "leaked" not in done.stderr
    assert _runs(db).iloc[0]["status"] == "failed"


@pytest.mark.slow
@needs_bundle
def test_single_stage_flows_ingest_fit_and_project(harness, tmp_path):
    """The ingest, fit and project flows each do their one stage and record their run."""
    from flows.stages import fit_only_flow, ingest_flow, project_flow

    db = str(tmp_path / "stages.duckdb")
    ingested = ingest_flow(sources=[str(DATA)], db=db)
    assert ingested["observations"] > 0
    again = ingest_flow(sources=[str(DATA)], db=db)
    assert again["observations"] == 0 and again["skipped_unchanged"]  # unchanged files are not re-read
    fitted = fit_only_flow(metrics=["mmlu"], x_axes=["compute"], families=["logistic", "linear_log"],
                           fit_draws=50, seed=2, db=db)
    assert fitted["series"] >= 1
    scenario = ROOT / "pipeline" / "scenarios" / "fast_software.toml"
    projected = project_flow(scenario=str(scenario), projection_draws=20, db=db)
    assert projected["run_id"] == fitted["run_id"] and projected["curves"] >= 1
    runs = _runs(Path(db))
    assert list(runs["command"]) == ["flow ingest", "flow ingest", "flow fit"]
    assert set(runs["status"]) == {"succeeded"}
    con = store.connect(db, read_only=True)
    try:
        n = con.execute("SELECT count(*) FROM projections WHERE run_id = ? AND scenario = 'fast_software'",
                        [fitted["run_id"]]).fetchone()[0]
    finally:
        con.close()
    assert n == projected["curves"]


@pytest.mark.slow
def test_project_flow_without_a_fit_is_a_clear_error(harness, tmp_path):
    from flows.stages import project_flow

    db = tmp_path / "nofit.duckdb"
    store.start_run(db, "ingest", {})
    with pytest.raises(ScalegapError, match="no fitted run"):
        project_flow(db=str(db))
