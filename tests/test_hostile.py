"""Hostile input and faults (issue 19): each attack of the red-team report, kept so none comes back.

Through the CLI where the attack is on a command: a non-zero exit, one line on stderr with "Fix:", no
traceback, and the store's data unchanged. Large inputs (bombs, long files) are generated here, not stored.
"""

from __future__ import annotations

import gzip
import http.server
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipeline import ingest, store
from pipeline.schema import InputError

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "pipeline.cli"]
DATA_TABLES = ("sources", "observations", "rejected", "model_compute", "metr_runs", "metr_release_dates")
HEADER = "model,metric,value,train_flop\n"
GOOD = HEADER + "Model A,mmlu,0.52,3.1e23\nModel B,mmlu,0.61,8.0e23\n"
# Runs in the child: the CLI, then its peak memory (KiB) into $PEAK_FILE, whatever the exit.
MEASURED = ("import os, resource, sys\nfrom pipeline.cli import main\nsys.argv = ['scalegap', *sys.argv[1:]]\n"
            "try:\n    main()\nfinally:\n    open(os.environ['PEAK_FILE'], 'w').write(str("
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n")


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 180,
            peak: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "400", **(env or {})}  # rich must not wrap the one-line message
    command = [*CLI, *args] if peak is None else [sys.executable, "-c", MEASURED, *args]
    if peak is not None:
        env["PEAK_FILE"] = str(peak)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def one_line_failure(done: subprocess.CompletedProcess, *words: str) -> str:
    """The README's promise for bad input: non-zero exit, no traceback, one line with a fix."""
    text = done.stdout + done.stderr
    assert done.returncode != 0, text
    assert "Traceback" not in text, text
    message = done.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "Fix:" in message, message
    for word in words:
        assert word.lower() in message.lower(), message
    return message


def digests(db: Path) -> dict[str, str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: store.table_digest(con, t) for t in DATA_TABLES}
    finally:
        con.close()


def stored(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def seeded_db(tmp_path) -> Path:
    """A store holding one good file (a fresh one per test: some tests change it on purpose)."""
    good = tmp_path / "seed" / "good_results.csv"
    good.parent.mkdir()
    good.write_text(GOOD)
    db = tmp_path / "seed" / "store.duckdb"
    done = run_cli("ingest", str(good), "--db", str(db))
    assert done.returncode == 0, done.stderr
    return db


# ------------------------------------------------------------------------------ a hostile HTTP server
FULL_CSV = (HEADER + "".join(f"Model {c},mmlu,0.{50 + i},{i + 1}e23\n" for i, c in enumerate("ABCDEF"))).encode()


class HostileHandler(http.server.BaseHTTPRequestHandler):
    """Each path is one misbehaving server."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: C901 - one branch per attack
        path = self.path.split("?")[0]
        try:
            if path == "/results.csv":  # an honest server
                self._head(200, len(FULL_CSV))
                self.wfile.write(FULL_CSV)
            elif path == "/truncated.csv":  # announces every byte, sends 155 and closes
                self._head(200, len(FULL_CSV))
                self.wfile.write(FULL_CSV[:155])
            elif path == "/cut.csv.gz":  # no length given; the gzip stream stops before its trailer
                self._head(200, None)
                self.wfile.write(gzip.compress(FULL_CSV)[:-6])
            elif path == "/drip.csv":  # one byte at a time, forever within any read timeout
                self._head(200, len(FULL_CSV))
                for byte in FULL_CSV:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.5)
            elif path == "/endless.csv":  # no length, bytes until the client hangs up
                self._head(200, None)
                self.wfile.write(HEADER.encode())
                block = b"Model X,mmlu,0.5,1e23\n" * 3000
                while True:
                    self.wfile.write(block)
            elif path == "/huge.csv":  # announces a gigabyte
                self._head(200, 1 << 30)
                self.wfile.write(HEADER.encode())
            elif path == "/to-ftp":  # redirects to ftp, which urllib would follow
                self.send_response(302)
                self.send_header("Location", "ftp://127.0.0.1:1/etc/passwd")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: what the attack is meant to make it do

    def _head(self, code: int, length: int | None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/csv")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()


@pytest.fixture(scope="module")
def hostile_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HostileHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ------------------------------------------------------------------------------ 1, 4: downloads
def test_truncated_download_is_refused_not_stored(hostile_url, seeded_db, tmp_path):
    """Attack 1: Content-Length 186, 155 bytes sent: before, exit 0 with 5 of 6 rows stored."""
    before = digests(seeded_db)
    cache = tmp_path / "cache"
    done = run_cli("ingest", f"{hostile_url}/truncated.csv", "--db", str(seeded_db), env={"XDG_CACHE_HOME": str(cache)})
    one_line_failure(done, "truncated.csv", f"155 of {len(FULL_CSV)} bytes")
    assert digests(seeded_db) == before
    assert files_under(cache) == []  # no partial download left behind
    assert stored(seeded_db, "SELECT status FROM runs ORDER BY started_at DESC LIMIT 1") == [("failed",)]


def test_honest_download_lands_in_a_private_cache_folder(hostile_url, tmp_path, monkeypatch):
    """Attack 4 (folder): the download folder was a fixed path shared by every user of the machine."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = ingest.fetch_url(f"{hostile_url}/results.csv", retries=1)
    folder = tmp_path / "cache" / "scalegap" / "downloads"
    assert path.read_bytes() == FULL_CSV and path.is_relative_to(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_gzip_download_cut_before_its_trailer_is_refused(hostile_url, tmp_path):
    with pytest.raises(InputError, match="before its trailer"):
        ingest.fetch_url(f"{hostile_url}/cut.csv.gz", tmp_path / "d", retries=1)
    assert files_under(tmp_path / "d") == []


def test_planted_symlinks_are_not_followed(hostile_url, tmp_path):
    """Attack 4 (symlink): a link planted in the download folder made the tool overwrite the victim's file."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = tmp_path / "downloads"
    host = folder / hostile_url.split("//")[1].replace(":", "_")
    host.mkdir(parents=True, mode=0o700)
    folder.chmod(0o700)
    for name in ("results.csv", "results.csv.url"):
        (host / name).symlink_to(victim)
    path = ingest.fetch_url(f"{hostile_url}/results.csv", folder, retries=1)
    assert victim.read_text() == "precious"
    assert not path.is_symlink() and path.read_bytes() == FULL_CSV
    assert not (host / "results.csv.url").is_symlink()


def test_a_download_folder_others_control_is_refused(hostile_url, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    with pytest.raises(InputError, match="symbolic link"):
        ingest.fetch_url(f"{hostile_url}/results.csv", link, retries=1)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(InputError, match="another user"):
        ingest.fetch_url(f"{hostile_url}/results.csv", shared, retries=1)
    assert files_under(elsewhere) == [] and files_under(shared) == []


@pytest.mark.parametrize("url, words", [
    ("file:///etc/passwd", ("file: URLs are not fetched",)),
    ("data:text/csv,model,metric,value,train_flop%0AA,mmlu,0.5,1e23", ("data: URLs are not fetched",)),
    ("example.com/results.csv", ("no scheme",)),
])
def test_sources_toml_urls_other_than_http_are_refused(url, words, seeded_db, tmp_path):
    """Attack 4 (schemes): file:// copied /etc/passwd into the download folder; data: was accepted; a URL
    without a scheme was a ValueError traceback."""
    project = tmp_path / "project"
    (project / "data" / "raw").mkdir(parents=True)
    (project / "data" / "raw" / "sources.toml").write_text(f'[source.bad]\nurls = ["{url}"]\n')
    before = digests(seeded_db)
    cache = tmp_path / "cache"
    done = run_cli("ingest", "bad", "--db", str(seeded_db), cwd=project, env={"XDG_CACHE_HOME": str(cache)})
    one_line_failure(done, *words)
    assert digests(seeded_db) == before and files_under(cache) == []


def test_file_url_on_the_command_line_is_refused(seeded_db, tmp_path):
    done = run_cli("ingest", "file:///etc/passwd", "--db", str(seeded_db),
                   env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    one_line_failure(done, "only http and https")
    assert files_under(tmp_path / "cache") == []


def test_redirect_away_from_http_is_refused(hostile_url, tmp_path):
    with pytest.raises(InputError, match="redirect to a non-http"):
        ingest.fetch_url(f"{hostile_url}/to-ftp", tmp_path / "d", retries=1)
    assert files_under(tmp_path / "d") == []


def test_dripping_server_meets_the_overall_deadline(hostile_url, seeded_db, tmp_path):
    """Attack 4 (drip): one byte every 2 s was never timed out; the run stayed 'running' with a temp file."""
    before = digests(seeded_db)
    cache = tmp_path / "cache"
    done = run_cli("ingest", f"{hostile_url}/drip.csv", "--db", str(seeded_db),
                   env={"XDG_CACHE_HOME": str(cache), "SCALEGAP_DOWNLOAD_DEADLINE": "2"})
    one_line_failure(done, "did not finish within 2 s", "SCALEGAP_DOWNLOAD_DEADLINE")
    assert digests(seeded_db) == before and files_under(cache) == []
    assert stored(seeded_db, "SELECT status FROM runs ORDER BY started_at DESC LIMIT 1") == [("failed",)]


def test_size_cap_is_kept_while_streaming(hostile_url, tmp_path):
    """Attack 4 (size): a 1 GiB response was downloaded in full before the size check, and stayed on disk."""
    with pytest.raises(InputError, match="larger than the 1 MB limit"):
        ingest.fetch_url(f"{hostile_url}/endless.csv", tmp_path / "d", retries=1, max_bytes=1 << 20)
    with pytest.raises(InputError, match="announces 1024 MB"):
        ingest.fetch_url(f"{hostile_url}/huge.csv", tmp_path / "d", retries=1)
    assert files_under(tmp_path / "d") == []


# ------------------------------------------------------------------------------ 2: resource limits of the readers
def _gzip_members(path: Path, head: bytes, block: bytes, members: int) -> None:
    """A gzip file of `head` then `block` repeated: one member compressed once and written `members` times
    (a multi-member gzip is one stream to a reader), so a gigabyte costs a second to make."""
    member = gzip.compress(block, compresslevel=9)
    with open(path, "wb") as handle:
        handle.write(gzip.compress(head))
        for _ in range(members):
            handle.write(member)


def test_gzip_bomb_of_rows_is_refused_in_bounded_memory(seeded_db, tmp_path):
    """Attack 2: a 2 MB .csv.gz expanding to 1 GiB of rows: MemoryError at 5 GB (decompressed twice)."""
    bomb = tmp_path / "results.csv.gz"
    _gzip_members(bomb, HEADER.encode(), b"Model A,mmlu,0.5,1e23\n" * ((64 << 20) // 22), 16)
    assert bomb.stat().st_size < 4 << 20
    before = digests(seeded_db)
    done = run_cli("ingest", str(bomb), "--db", str(seeded_db), peak=tmp_path / "peak")
    one_line_failure(done, str(bomb), "expands to more than")
    assert digests(seeded_db) == before
    assert int((tmp_path / "peak").read_text()) < 1_000_000  # KiB: far below the 5 GB it took


def test_gzip_bomb_of_spaces_is_refused(seeded_db, tmp_path):
    """Attack 2: 1 MB of gzip expanding to 2.3 GB of spaces (one endless line)."""
    bomb = tmp_path / "results.csv.gz"
    _gzip_members(bomb, HEADER.encode(), b" " * (16 << 20), 150)
    before = digests(seeded_db)
    done = run_cli("ingest", str(bomb), "--db", str(seeded_db), peak=tmp_path / "peak")
    one_line_failure(done, str(bomb))
    assert digests(seeded_db) == before
    assert int((tmp_path / "peak").read_text()) < 1_000_000


def test_gzip_bomb_as_metr_runs_is_refused(seeded_db, tmp_path):
    """The same bomb under a name the METR per-run reader claims (pandas decompresses it there)."""
    bomb = tmp_path / "metr_runs_bomb.csv.gz"
    _gzip_members(bomb, b"run_key,task_id,alias,score_binarized,human_minutes\n", b"r,t,a,1,5\n" * ((32 << 20) // 10), 16)
    done = run_cli("ingest", str(bomb), "--db", str(seeded_db), peak=tmp_path / "peak")
    one_line_failure(done, "expands to more than")
    assert int((tmp_path / "peak").read_text()) < 1_000_000


LAUGHS = "\n".join([
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    *(f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
])


@pytest.mark.parametrize("name, body", [
    ("release_dates_laughs.yaml", "date:\n  model_a: 2024-01-02\n" + LAUGHS.replace("\n", "\n  ").join(["  ", ""])
     + "\n  model_b: *i\n"),
    ("release_dates_laughs2.yaml", f"{LAUGHS}\ndate:\n  model_a: *i\n"),
    ("benchmark_results_laughs.yaml", f"{LAUGHS}\nresults:\n  model_a: *i\n"),
])
def test_yaml_billion_laughs_is_refused(name, body, seeded_db, tmp_path):
    """Attack 2: a 382-byte "billion laughs" release-dates file: 3 min, 3.2 GB, then a TypeError."""
    path = tmp_path / name
    path.write_text(body)
    assert path.stat().st_size < 600
    before = digests(seeded_db)
    done = run_cli("ingest", str(path), "--db", str(seeded_db), timeout=60)
    one_line_failure(done, str(path), "more than 32 YAML aliases")
    assert digests(seeded_db) == before


def test_yaml_with_a_few_aliases_still_reads(tmp_path):
    from pipeline.sources import metr

    path = tmp_path / "release_dates_anchors.yaml"
    path.write_text("day: &day 2024-01-02\ndate:\n  model_a: *day\n  model_b: *day\n")
    assert set(metr.RELEASE_DATES.read_dates(path)) == {"model_a", "model_b"}


def test_deeply_nested_json_is_refused(seeded_db, tmp_path):
    """Attack 2: an LMArena catalog nested 100,000 deep: RecursionError traceback."""
    path = tmp_path / "leaderboard-text.json"
    path.write_text('{"full": ' + "[" * 100_000 + "]" * 100_000 + "}")
    before = digests(seeded_db)
    one_line_failure(run_cli("ingest", str(path), "--db", str(seeded_db)), str(path), "nested 100001 levels")
    assert digests(seeded_db) == before


def test_deeply_nested_jsonl_is_refused(seeded_db, tmp_path):
    """Attack 2: a METR runs line nested 100,000 deep: RecursionError traceback."""
    path = tmp_path / "all_runs_nested.jsonl"
    good = '{"run_id": "r1", "task_id": "t", "alias": "a", "score_binarized": 1, "human_minutes": 3}\n'
    path.write_text(good + '{"run_id": "r2", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    before = digests(seeded_db)
    message = one_line_failure(run_cli("ingest", str(path), "--db", str(seeded_db)), str(path), "nested")
    assert re.search(r"\brow 2\b", message)
    assert digests(seeded_db) == before


def test_json_brackets_inside_strings_do_not_count(tmp_path):
    from pipeline.sources import json_depth_error

    assert json_depth_error('{"a": "' + "[" * 500 + '"}', tmp_path / "x.json") is None


def test_long_names_are_refused(seeded_db, tmp_path):
    """Attack 2: twelve 100,000-character names: a 15-minute run at 6.5 GB, 14 minutes of it the report."""
    path = tmp_path / "long_names.csv"
    path.write_text(HEADER + "".join(f"{chr(65 + i) * 100_000},mmlu,0.5,{i + 1}e22\n" for i in range(12)))
    before = digests(seeded_db)
    message = one_line_failure(run_cli("ingest", str(path), "--db", str(seeded_db)), str(path),
                               "100,000 characters", "limit is 300")
    assert "row 2" in message and "column 'model'" in message
    assert digests(seeded_db) == before


def test_too_many_columns_and_too_long_lines_are_refused(seeded_db, tmp_path):
    wide = tmp_path / "wide.csv"
    wide.write_text(HEADER.strip() + "," + ",".join(f"c{i}" for i in range(1000)) + "\n")
    one_line_failure(run_cli("ingest", str(wide), "--db", str(seeded_db)), "1004 columns", "row 1")
    long_line = tmp_path / "long_line.csv"
    long_line.write_text(HEADER + "A,mmlu,0.5,1e23," + "x" * (2 << 20) + "\n")
    one_line_failure(run_cli("ingest", str(long_line), "--db", str(seeded_db)), "longer than 1 MB", "row 2")


# ------------------------------------------------------------------------------ 2: scenario limits
DEFAULT_SCENARIO = (ROOT / "pipeline" / "scenarios" / "default.toml").read_text()


@pytest.mark.parametrize("old, new, column, words", [
    ('until = "2040-01-01"', 'until = "9999-12-31"', "growth.until", "outside the years"),
    ('until = "2040-01-01"', 'until = "2400-01-01"', "growth.until", "longer than 200 years"),
    ('start = "2023-03-14" #', 'start = "0001-01-01" #', "growth.start", "outside the years"),
    ("investment = 2.828 ", "investment = 1e308 ", "growth.investment", "outside the annual factors"),
    ("investment = 2.828 ", "investment = inf ", "growth.investment", "outside the annual factors"),
    ("hardware = 1.414 ", "hardware = {dist = \"lognormal\", p10 = 1.2, p90 = inf} ", "growth.hardware",
     "outside the annual factors"),
    ("doubling_months = 7", "doubling_months = 1e-300", "curve[0].doubling_months", "outside 0.1 to 1200"),
    ("task_minutes = 4\n", "task_minutes = -5\n", "curve[1].task_minutes", "outside"),
    ("task_minutes = 60\n", "task_minutes = inf\n", "curve[2].task_minutes", "outside"),
])
def test_scenario_limits(old, new, column, words, tmp_path):
    """Attack 2: until = 9999-12-31 ran 15 minutes at 2.3 GB, start = 0001-01-01 3 minutes; growth 1e308,
    doubling_months = 1e-300 and task_minutes = -5 exited 0 with overflow warnings and NaN stored."""
    assert old in DEFAULT_SCENARIO
    path = tmp_path / "hostile.toml"
    path.write_text(DEFAULT_SCENARIO.replace(old, new, 1))
    db = tmp_path / "s.duckdb"
    done = run_cli("project", "--scenario", str(path), "--db", str(db), timeout=120)
    message = one_line_failure(done, str(path), words)
    assert f"column '{column}'" in message
    assert not db.exists()  # refused before the store was touched


def test_default_scenarios_are_within_the_limits():
    from pipeline.scenario import SCENARIO_DIR, load_scenario

    for path in SCENARIO_DIR.glob("*.toml"):
        assert load_scenario(path).years <= 200


# ------------------------------------------------------------------------------ 3: names the plotting library parses
MATH = r"cost $\notacommand{x}$ per unit"


def test_plot_labels_are_literal_text():
    """Attack 3: a metric named 'cost $\\notacommand{x}$ per unit' ingested fine, then failed the whole run at
    its last stage (matplotlib mathtext ParseFatalException, no report)."""
    from pipeline.report import plots

    points = pd.DataFrame({"x": [21.0, 22.0, 23.0], "y": [0.3, 0.5, 0.7]})
    bands = pd.DataFrame({"family": "logistic", "x": [21.0, 23.0], "fit": [0.3, 0.7], "pred_lo95": [0.2, 0.6],
                          "pred_hi95": [0.4, 0.8], "mean_lo95": [0.25, 0.65], "mean_hi95": [0.35, 0.75]})
    trajectory = pd.DataFrame({"year": [2025.0, 2030.0], "decades": [0.0, 3.0], "frontier": [0.5, 0.9],
                               "meek": [0.4, 0.8], "gap": [0.1, 0.1], "gap_lo": [0.05, 0.05], "gap_hi": [0.2, 0.2]})
    line = plots.Line(MATH, points, bands)
    dated = plots.Line(MATH, points.assign(x=[2022.0, 2023.0, 2024.0]), bands.assign(x=[2022.0, 2024.0]))
    args = (MATH, [line], [dated], [plots.Gap(MATH, trajectory, 2027.0)], "fraction", MATH,
            None, (f"{MATH}:nines (mighty)", trajectory[["year", "decades", "gap"]]), 2026.9)
    assert plots.group_plot(*args).png   # drawn to the end, not stopped by a mathtext error
    import matplotlib.text

    fig = plots.group_figure(*args)
    fig.canvas.draw()
    assert any("notacommand" in t.get_text() for t in fig.findobj(matplotlib.text.Text))
    sens = pd.DataFrame({"curve": MATH, "factor": "hardware", "factor_value": [1.2, 1.4, 1.6],
                         "peak_year": [2030.0, 2031.0, 2032.0], "peak_gap": [0.1, 0.2, 0.3]})
    plots.sensitivity_plot(sens, 2040.0)


# ------------------------------------------------------------------------------ 5: disks and stores
def in_small_disk(folder: Path, size: str, *command: str, read_only: bool = False,
                  copy: Path | None = None) -> subprocess.CompletedProcess:
    """Run `command` with a tmpfs of `size` at `folder` (optionally holding a copy of `copy`, optionally then
    read-only), in a private mount namespace that ends with it; stdout ends with the files left on the tmpfs."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not available")
    script = ('mount -t tmpfs -o size="$SIZE" tmpfs "$DIR" || exit 97\n'
              'if [ -n "$COPY" ]; then cp "$COPY" "$DIR"/; fi\n'
              'if [ -n "$RO" ]; then mount -o remount,ro "$DIR" || exit 97; fi\n'
              '"$@"; rc=$?\necho "@@left:"; find "$DIR" -type f\nexit $rc\n')
    env = {**os.environ, "COLUMNS": "400", "SIZE": size, "DIR": str(folder), "COPY": str(copy or ""),
           "RO": "1" if read_only else ""}
    done = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *command], capture_output=True, text=True,
                          timeout=180, env=env)
    if done.returncode == 97 or "unshare failed" in done.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    return done


def left_on_disk(done: subprocess.CompletedProcess) -> list[str]:
    return done.stdout.split("@@left:", 1)[1].split()


def test_report_on_a_full_disk_is_refused_before_the_work(seeded_db, tmp_path):
    """Attack 5: --out on a full disk passed the up-front check (an empty probe file), ran every stage, then
    failed with an OSError ENOSPC traceback and left a 1 MB temp file."""
    out = tmp_path / "out"
    out.mkdir()
    done = in_small_disk(out, "1m", *CLI, "report", "--out", str(out), "--db", str(seeded_db))
    one_line_failure(done, str(out), "MB free", "--out")
    assert left_on_disk(done) == []


def test_report_write_that_fills_the_disk_leaves_no_temp_file(tmp_path):
    """A disk that fills up while the report is written (more room than the up-front check asks for, less than
    the file): one line, and the temp file is removed."""
    out = tmp_path / "out"
    out.mkdir()
    code = ("import sys\nfrom pathlib import Path\nfrom pipeline.report.render import _atomic_write\n"
            "from pipeline.schema import ScalegapError\n"
            "try:\n    _atomic_write(Path(sys.argv[1]) / 'report.pdf', b'x' * (80 << 20))\n"
            "except ScalegapError as exc:\n    print('refused:', exc)\n")
    done = in_small_disk(out, "70m", sys.executable, "-c", code, str(out))
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "No space left" in done.stdout and "Fix:" in done.stdout
    assert left_on_disk(done) == []


def test_store_on_a_full_disk_is_refused_before_the_work(tmp_path):
    """Attack 5: --db on a full disk was a chained DuckDB TransactionException traceback, the run left running."""
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    folder = tmp_path / "full"
    folder.mkdir()
    done = in_small_disk(folder, "1m", *CLI, "ingest", str(good), "--db", str(folder / "s.duckdb"))
    one_line_failure(done, "MB free", "--db")
    assert left_on_disk(done) == []


def test_report_with_a_store_it_cannot_write_is_refused_before_rendering(seeded_db, tmp_path):
    """Attack 5: `report --db` on a read-only folder rendered a 14 MB report before refusing."""
    folder, out = tmp_path / "ro", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    done = in_small_disk(folder, "16m", *CLI, "report", "--out", str(out), "--db", str(folder / seeded_db.name),
                         copy=seeded_db, read_only=True)
    one_line_failure(done, "cannot write the database", "--db")
    assert files_under(out) == []


def _damaged(db: Path, how: str) -> None:
    data = db.read_bytes()
    if how == "truncated":
        db.write_bytes(data[: len(data) // 2])
    elif how == "random":
        db.write_bytes(os.urandom(len(data)))
    elif how == "sqlite":
        db.unlink()
        import sqlite3

        con = sqlite3.connect(db)
        con.execute("CREATE TABLE runs (run_id TEXT)")
        con.commit()
        con.close()
    elif how == "checksum":  # bytes flipped inside the block that holds the observations
        con = duckdb.connect(str(db), read_only=True)
        block_size = con.execute("PRAGMA database_size").fetchone()[2]
        block = con.execute("SELECT min(block_id) FROM pragma_storage_info('observations') WHERE block_id >= 0"
                            ).fetchone()[0]
        con.close()
        damaged = bytearray(data)
        start = 3 * 4096 + block * block_size + 512
        damaged[start:start + 4096] = bytes(b ^ 0x55 for b in damaged[start:start + 4096])
        db.write_bytes(bytes(damaged))


@pytest.mark.parametrize("how", ["truncated", "random", "sqlite", "checksum"])
def test_damaged_or_foreign_store_is_one_line(how, seeded_db):
    """Attack 5: a database truncated to half or overwritten with random bytes gave an IOException/checksum
    traceback (and a SQLite file made DuckDB fetch an extension from the network)."""
    _damaged(seeded_db, how)
    before = seeded_db.read_bytes()
    one_line_failure(run_cli("status", "--db", str(seeded_db)), "cannot read the store")
    if how != "checksum":  # a damaged block is found when read, and ingest of an unchanged file reads none
        one_line_failure(run_cli("ingest", str(seeded_db.parent / "good_results.csv"), "--db", str(seeded_db)),
                         "cannot read the store")
    assert seeded_db.read_bytes() == before


@pytest.mark.parametrize("sql, words", [
    ("ALTER TABLE runs ADD COLUMN note VARCHAR", ("table runs has a column note", "DROP COLUMN note")),
    ("ALTER TABLE run_stages ADD COLUMN note VARCHAR", ("table run_stages has a column note", "DROP COLUMN note")),
    ("ALTER TABLE observations DROP COLUMN citation", ("table observations has no column citation",
                                                       "ADD COLUMN citation VARCHAR")),
])
def test_store_with_unexpected_columns_is_refused_with_its_migration(sql, words, seeded_db, tmp_path):
    """Attack 5: an extra column in runs or run_stages broke every command (positional INSERTs); a dropped
    observations.citation silently dropped citations."""
    con = duckdb.connect(str(seeded_db))
    con.execute(sql)
    con.close()
    before = seeded_db.read_bytes()
    other = tmp_path / "other.csv"
    other.write_text(HEADER + "Model C,gsm8k,0.4,1e23\n")
    for command in (["ingest", str(other)], ["status"]):
        one_line_failure(run_cli(*command, "--db", str(seeded_db)), "cannot read the store", *words)
    assert seeded_db.read_bytes() == before


def test_run_records_name_their_columns(seeded_db):
    """start_run/finish_run write by column name, so a column order other than TABLES' does not matter."""
    con = duckdb.connect(str(seeded_db))
    con.execute("ALTER TABLE runs RENAME TO runs_before")
    con.execute("CREATE TABLE runs (pid INTEGER, host VARCHAR, data_digests JSON, code_version VARCHAR, "
                "parameters JSON, message VARCHAR, status VARCHAR, finished_at TIMESTAMP, started_at TIMESTAMP, "
                "command VARCHAR, inputs_digest VARCHAR, run_id VARCHAR PRIMARY KEY)")
    con.execute("INSERT INTO runs BY NAME SELECT * FROM runs_before")
    con.execute("DROP TABLE runs_before")
    con.close()
    run_id = store.start_run(seeded_db, "test", {"a": 1})
    store.finish_run(seeded_db, run_id, "succeeded")
    assert stored(seeded_db, f"SELECT command, status, pid FROM runs WHERE run_id = '{run_id}'") == [
        ("test", "succeeded", os.getpid())]


# ------------------------------------------------------------------------------ 7: text from user files is text
def test_nul_after_the_first_64_kib_is_stripped_with_a_warning(tmp_path):
    """Attack 7: a NUL byte after the first 64 KiB was stored, and written raw into the HTML."""
    path = tmp_path / "late_nul.csv"
    filler = "".join(f"Model {i},mmlu,0.5,{i + 1}e21\n" for i in range(4000))
    path.write_text(HEADER + filler + "Evil\x00Model,mmlu,0.6,1e24\n")
    assert path.read_bytes().index(b"\x00") > 65536
    db = tmp_path / "s.duckdb"
    done = run_cli("ingest", str(path), "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert "stripped control characters" in done.stderr and "row 4002" in done.stderr
    assert stored(db, "SELECT count(*) FROM observations WHERE contains(model, chr(0))") == [(0,)]
    assert stored(db, "SELECT model FROM observations WHERE value = 0.6") == [("EvilModel",)]
    assert "stripped control characters" in stored(db, "SELECT notes FROM sources")[0][0]


def test_terminal_escape_codes_do_not_reach_the_terminal(tmp_path):
    """Attack 7: ANSI/OSC escape codes in names reached the terminal through `status` and progress lines."""
    path = tmp_path / "escapes.csv"
    path.write_text(HEADER + "\x1b]0;pwned\x07Model A,mmlu\x1b[2J,0.5,1e23\nModel B,mmlu,0.6,2e23\n")
    db = tmp_path / "s.duckdb"
    assert run_cli("ingest", str(path), "--db", str(db)).returncode == 0
    assert stored(db, "SELECT count(*) FROM observations WHERE regexp_matches(model || metric, '[\\x00-\\x1f]')") \
        == [(0,)]
    status = run_cli("status", "--db", str(db))
    assert status.returncode == 0 and "\x1b" not in status.stdout + status.stderr


def test_look_alike_and_bidi_names_are_flagged(tmp_path):
    """Attack 7: look-alike metric names (Cyrillic "ммlu" beside "mmlu") and right-to-left overrides passed
    without a warning. The warnings are notes of the source version: `sources.notes` and the ingest summary."""
    path = tmp_path / "lookalikes.csv"
    path.write_text(HEADER + "Model A,mmlu,0.5,1e23\nModel B,\u043c\u043clu,0.6,2e23\n"
                    "Model \u202eC,gsm8k,0.4,3e23\nPanGu-\u03b1,gsm8k,0.3,4e23\n", encoding="utf-8")
    db = tmp_path / "s.duckdb"
    done = run_cli("ingest", str(path), "--db", str(db))
    assert done.returncode == 0, done.stderr
    notes = stored(db, "SELECT notes FROM sources")[0][0]
    for text in (notes, done.stderr):
        assert "row 3, column 'metric': a name that reads like the one at row 2" in text
        assert "U+043C CYRILLIC SMALL LETTER EM" in text
        assert "bidirectional override characters" in text
    assert "PanGu" not in notes and "row 5" not in notes  # Greek letters in a Latin name are common, not flagged
    assert stored(db, "SELECT count(*) FROM observations WHERE contains(model, chr(8238))") == [(0,)]


def test_rich_markup_in_names_stays_out_of_the_notes(tmp_path):
    """The warnings quote rows and code points, never the name: `[/]` in a name must not break the summary."""
    path = tmp_path / "markup.csv"
    path.write_text(HEADER + "[/] \u202e[bold],mmlu,0.5,1e23\n", encoding="utf-8")
    done = run_cli("ingest", str(path), "--db", str(tmp_path / "s.duckdb"))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


# ------------------------------------------------------------------------------ streaming ingest
def _rows_csv(path: Path, rows: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("model,metric,value,train_flop,release_date,source\n")
        for i in range(rows):
            compute = f"{1e20 * (1 + i % 97):g}" if i % 13 else ""
            date = f"20{10 + i % 15}-{1 + i % 12:02d}-01" if i % 17 else ""
            value = f"{(i * 37 % 100)}%" if i % 5 == 0 else f"{(i * 7919 % 1000) / 1000:.3f}"
            handle.write(f"model-{i},metric_{i % 7},{value},{compute},{date},{'alpha' if i % 2 else 'beta'}\n")


def _store_rows(db: Path) -> dict:
    keep = ("observations", "rejected", "sources")
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for table in keep:
            columns = [c for c in store.table_columns(con, table) if c not in ("ingest_run_id", "retrieved_at", "location")]
            quoted = ", ".join(f'"{c}"' for c in columns)
            out[table] = con.execute(f"SELECT {quoted} FROM {table} ORDER BY ALL").fetchall()
        return out
    finally:
        con.close()


def test_streamed_ingest_stores_what_the_in_memory_reader_stores(tmp_path, monkeypatch):
    """A file longer than one chunk is staged on disk and checked in SQL; the stored rows are the same."""
    from pipeline.sources import generic_csv

    path = tmp_path / "many.csv"
    _rows_csv(path, 3000)
    ingest.ingest([str(path)], db=tmp_path / "memory.duckdb")
    monkeypatch.setattr(generic_csv, "CHUNK_ROWS", 700)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    ingest.ingest([str(path)], db=tmp_path / "streamed.duckdb")
    memory, streamed = _store_rows(tmp_path / "memory.duckdb"), _store_rows(tmp_path / "streamed.duckdb")
    assert len(memory["observations"]) > 2000 and len(memory["rejected"]) > 10
    assert streamed == memory
    assert list((tmp_path / "tmp").iterdir()) == []  # the scratch store is gone


@pytest.mark.parametrize("extra, words", [
    ("model-1,metric_1,0.9,1e21,,alpha\n", ("duplicate key (model 'model-1', metric 'metric_1')", "first at row 3",
                                            "row 2002")),
    ("model-x,metric_1,75,1e21,,beta\n", ("metric 'metric_1' has no unit and mixes values", "row 2002")),
])
def test_streamed_ingest_keeps_the_whole_file_checks(extra, words, tmp_path, monkeypatch):
    """Checks that need every row (a key repeated with another value, a unit guessed per metric) still see
    rows in different chunks, and name the row."""
    from pipeline.sources import generic_csv

    path = tmp_path / "many.csv"
    _rows_csv(path, 2000)
    with open(path, "a") as handle:
        handle.write(extra)
    monkeypatch.setattr(generic_csv, "CHUNK_ROWS", 300)
    with pytest.raises(InputError) as caught:
        ingest.ingest([str(path)], db=tmp_path / "s.duckdb")
    message = str(caught.value)
    assert all(word in message for word in words), message
    assert not (tmp_path / "s.duckdb").exists()


def test_large_csv_through_the_cli(tmp_path):
    """More rows than one chunk, end to end (the benchmark does 3 million: benchmarks/bench_ingest.py)."""
    path = tmp_path / "large.csv"
    _rows_csv(path, 120_000)
    db = tmp_path / "s.duckdb"
    done = run_cli("ingest", str(path), "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    rows = stored(db, "SELECT count(*) FROM observations")[0][0]
    assert summary["observations"] == rows and rows + summary["rejected"] == 120_000
