"""URL ingest against a local HTTP server on 127.0.0.1 serving ../shared/data (issue 2)."""

from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from pipeline import ingest, store
from pipeline.schema import InputError

CLI = [sys.executable, "-m", "pipeline.cli"]
METR_YAML = "metr_time_horizon/benchmark_results_1_0.yaml"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class FlakyHandler(QuietHandler):
    """Fails the first two requests with 503, then serves the file (a transient outage)."""

    failures_left = 2
    requests = 0

    def do_GET(self) -> None:
        type(self).requests += 1
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            self.send_error(503, "try again")
            return
        super().do_GET()


def serve(directory: Path, handler: type) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def base_url(shared_data) -> Iterator[str]:
    yield from serve(shared_data, QuietHandler)


def digests(db: Path) -> dict[str, str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: store.table_digest(con, t) for t in ("sources", "observations", "rejected", "runs")}
    finally:
        con.close()


def test_cli_ingests_url(base_url, tmp_path):
    db = tmp_path / "u.duckdb"
    done = subprocess.run([*CLI, "ingest", f"{base_url}/{METR_YAML}", "--db", str(db), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        location, version = con.execute("SELECT location, source_version FROM sources").fetchone()
        p50 = con.execute("SELECT value FROM observations WHERE model = 'claude_3_7_sonnet' "
                          "AND metric = 'metr_p50_minutes'").fetchone()[0]
    finally:
        con.close()
    assert version == "METR-Horizon-v1"
    assert p50 == pytest.approx(56.09, abs=0.01)  # benchmark_results_1_0.yaml
    assert location.endswith("benchmark_results_1_0.yaml")


def test_404_is_one_clear_line_and_store_unchanged(base_url, tmp_path, shared_data):
    db = tmp_path / "u.duckdb"
    ingest.ingest([str(shared_data / METR_YAML)], db=db)
    before = digests(db)
    done = subprocess.run([*CLI, "ingest", f"{base_url}/no/such_file.csv", "--db", str(db)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    message = done.stderr.strip()
    assert "404" in message and "no/such_file.csv" in message and "Fix:" in message
    assert len(message.splitlines()) <= 3  # one message (rich may wrap a long line)
    after = digests(db)
    # The failed attempt is recorded as a failed run; nothing else changes.
    assert {k: v for k, v in after.items() if k != "runs"} == {k: v for k, v in before.items() if k != "runs"}


def test_transient_failures_are_retried(shared_data, tmp_path):
    FlakyHandler.failures_left, FlakyHandler.requests = 2, 0
    for url in serve(shared_data, FlakyHandler):
        path = ingest.fetch_url(f"{url}/{METR_YAML}", tmp_path, retries=3, backoff_s=0.01, timeout_s=10)
    assert FlakyHandler.requests == 3
    assert path.read_bytes() == (shared_data / METR_YAML).read_bytes()


def test_gives_up_after_retries(shared_data, tmp_path):
    FlakyHandler.failures_left, FlakyHandler.requests = 5, 0
    for url in serve(shared_data, FlakyHandler):
        with pytest.raises(InputError, match="after 2 attempt"):
            ingest.fetch_url(f"{url}/{METR_YAML}", tmp_path, retries=2, backoff_s=0.01, timeout_s=10)
    assert FlakyHandler.requests == 2
    assert not (tmp_path / Path(METR_YAML).name).exists()
