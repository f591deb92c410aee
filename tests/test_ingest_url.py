"""URL ingest against a local HTTP server on 127.0.0.1 serving the cut public files (issue 2)."""

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
import yaml

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
    assert location == f"{base_url}/{METR_YAML}"  # the URL, not the download folder


def test_url_ingest_of_every_metr_and_elo_kind_then_noop(base_url, tmp_path, shared_data):
    """Files recognised by their folder (logistic_fits/headline.csv) or by name, fetched by URL."""
    db = tmp_path / "u.duckdb"
    names = [METR_YAML, "metr_cross_domain_horizon/data/external/logistic_fits/headline.csv",
             "metr_time_horizon/release_dates_2025-02-27.yaml", "lmarena_arena_catalog/leaderboard-text.json",
             "boardlaw_jones2021/elo_vs_train_flops_frontier_digitized.csv"]
    urls = [f"{base_url}/{n}" for n in names]
    first = ingest.ingest(urls, db=db, download_dir=tmp_path / "downloads")
    con = duckdb.connect(str(db), read_only=True)
    try:
        sources = dict(con.execute("SELECT source, location FROM sources").fetchall())
        opus = con.execute("SELECT value FROM observations WHERE source = 'metr_th1_headline_fits' "
                           "AND model = 'Claude 3 Opus' AND metric = 'metr_p50_minutes'").fetchone()[0]
        dates = con.execute("SELECT count(*) FROM metr_release_dates").fetchone()[0]
    finally:
        con.close()
    assert sources == {"metr_time_horizon": urls[0], "metr_th1_headline_fits": urls[1], "metr_release_dates": urls[2],
                       "lmarena_catalog": urls[3], "jones2021_hex_frontier": urls[4]}
    assert opus == pytest.approx(6.4228, abs=1e-4)  # headline.csv, first row
    published = yaml.safe_load((shared_data / "metr_time_horizon/release_dates_2025-02-27.yaml").read_text())
    assert dates == len(published["date"])  # every alias of the file
    # every file read: the frontier alone has a point a row
    frontier = (shared_data / "boardlaw_jones2021/elo_vs_train_flops_frontier_digitized.csv").read_text()
    assert first.observations > len(frontier.splitlines()) - 1
    before = digests(db)
    again = ingest.ingest(urls, db=db, download_dir=tmp_path / "downloads")
    assert again.observations == 0 and len(again.skipped_unchanged) == len(urls)
    assert {k: v for k, v in digests(db).items() if k != "runs"} == {k: v for k, v in before.items() if k != "runs"}


def test_same_file_name_from_two_urls_kept_apart(base_url, tmp_path, shared_data):
    bootstrap = ingest.fetch_url(f"{base_url}/metr_cross_domain_horizon/data/external/bootstrap/headline.csv",
                                 tmp_path, retries=1)
    fits = ingest.fetch_url(f"{base_url}/metr_cross_domain_horizon/data/external/logistic_fits/headline.csv",
                            tmp_path, retries=1)
    assert bootstrap != fits
    assert fits.read_bytes() == (shared_data / "metr_cross_domain_horizon/data/external/logistic_fits/headline.csv").read_bytes()
    assert bootstrap.read_bytes() == (shared_data / "metr_cross_domain_horizon/data/external/bootstrap/headline.csv").read_bytes()


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
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no partial or stale download left
