"""Ingest stage: files, folders or URLs -> sources, observations, rejected rows (one transaction).

Unchanged files (same sha256 as already stored for that source version) are skipped, so re-running
an ingest changes nothing. A file whose content changed under the same version label becomes a new
`source_version` (`label@sha8`); versions are never merged.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline import aliases, store
from pipeline.schema import InputError, ScalegapError, validate_observations
from pipeline.sources import SourceData, adapter_for

RAW_DIR = Path("data/raw")
SOURCES_TOML = RAW_DIR / "sources.toml"
MAX_FILE_BYTES = 512 * 1024 * 1024


@dataclass
class IngestSummary:
    files: list[str] = field(default_factory=list)
    skipped_unchanged: list[str] = field(default_factory=list)
    versions: list[tuple[str, str]] = field(default_factory=list)
    observations: int = 0
    rejected: int = 0
    notes: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "files": self.files, "skipped_unchanged": self.skipped_unchanged,
            "versions": [f"{s}@{v}" for s, v in self.versions],
            "observations": self.observations, "rejected": self.rejected, "notes": self.notes,
            "digests": self.digests,
        }


def expand_targets(targets: list[str], download_dir: Path | None = None) -> list[Path]:
    """PATH (file or folder), URL, or a NAME from data/raw/sources.toml -> local files."""
    files: list[Path] = []
    for target in targets:
        if target.startswith(("http://", "https://")):
            files.append(fetch_url(target, download_dir))
            continue
        path = Path(target)
        if path.is_dir():
            # In a folder, files no adapter knows (lookup tables, notes) are passed over, not errors.
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and _is_data_file(p) and _known(p)))
        elif path.is_file():
            files.append(path)
        else:
            named = named_sources().get(target)
            if named is None:
                raise InputError(target, "no such file, folder, URL or named source",
                                 "give an existing path, an http(s) URL, or a name listed in "
                                 f"{SOURCES_TOML} ({', '.join(sorted(named_sources())) or 'none'})")
            for url in named:
                files.append(fetch_url(url, download_dir))
    return files


def _known(path: Path) -> bool:
    try:
        adapter_for(path, fallback=False)
    except InputError:
        return False
    return True


def _is_data_file(path: Path) -> bool:
    return path.suffix.lower() in {".csv", ".gz", ".json", ".jsonl", ".yaml", ".yml"} and \
        path.name not in {"sources.toml"}


def named_sources(path: Path = SOURCES_TOML) -> dict[str, list[str]]:
    """Public URLs a refresh fetches, by source name."""
    if not path.exists():
        return {}
    with open(path, "rb") as handle:
        config = tomllib.load(handle)
    out: dict[str, list[str]] = {}
    for name, entry in config.get("source", {}).items():
        urls = entry.get("urls") or ([entry["url"]] if "url" in entry else [])
        out[name] = list(urls)
    return out


def fetch_url(url: str, download_dir: Path | None = None, retries: int = 3, timeout_s: float = 30.0,
              backoff_s: float = 1.0) -> Path:
    """Download to `download_dir` keeping the URL's file name; retries with exponential backoff."""
    download_dir = download_dir or Path(tempfile.gettempdir()) / "scalegap-downloads"
    # Mirror host and path: two sources' "headline.csv" do not overwrite each other, and adapters
    # that recognise a file by its folder (logistic_fits/headline.csv) still do.
    parsed = urllib.parse.urlparse(url)
    parts = [re.sub(r"[^A-Za-z0-9._-]", "_", p) for p in [parsed.netloc, *parsed.path.split("/")] if p not in ("", ".", "..")]
    target = download_dir.joinpath(*(parts if len(parts) > 1 else [*parts, "download"]))
    target.parent.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for attempt in range(retries):
        try:
            partial = None
            with urllib.request.urlopen(url, timeout=timeout_s) as response, \
                    tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
                partial = Path(handle.name)
                shutil.copyfileobj(response, handle)
            partial.replace(target)
            # The sources table records where a file came from: the URL, not the download folder.
            target.with_name(target.name + ".url").write_text(url)
            return target
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code} {exc.reason}"
            if 400 <= exc.code < 500 and exc.code != 429:
                break
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            last_error = str(getattr(exc, "reason", exc))
            if partial is not None:  # a connection cut mid-file leaves no partial download behind
                partial.unlink(missing_ok=True)
        if attempt + 1 < retries:
            time.sleep(backoff_s * 2**attempt)
    raise InputError(url, f"could not download ({last_error}) after {retries} attempt(s)",
                     "check the URL and the network, or ingest a local copy of the file")


def _location(path: Path) -> str:
    """The URL a downloaded file came from (see fetch_url), else its path."""
    origin = path.with_name(path.name + ".url")
    return origin.read_text().strip() if origin.is_file() else str(path)


def read_file(path: Path, adapter=None) -> list[SourceData]:
    check_file(path)
    return (adapter or adapter_for(path)).read(path)


def check_file(path: Path) -> None:
    if path.stat().st_size == 0:
        raise InputError(str(path), "the file is empty", "give a file with a header row and data rows")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InputError(str(path), f"the file is larger than {MAX_FILE_BYTES >> 20} MB",
                         "split it, or filter it to the rows you need")


def ingest(targets: list[str], db: str | Path | None = None, run_id: str | None = None,
           download_dir: Path | None = None) -> IngestSummary:
    """Read every target fully first; then write everything in one transaction (or nothing)."""
    files = expand_targets(targets, download_dir)
    if not files:
        raise InputError(", ".join(targets), "no data files found", "give files or folders holding data")
    parsed: list[tuple[Path, str, str, SourceData]] = []
    summary = IngestSummary()
    for path in files:
        sha = store.file_sha256(path)
        summary.digests[str(path)] = sha
        check_file(path)
        adapter = adapter_for(path)
        for data in read_file(path, adapter):
            data.observations = validate_observations(
                data.observations.assign(source=data.source, source_version=data.source_version,
                                         source_sha256=sha),
                str(path))
            parsed.append((path, sha, adapter.name, data))
        summary.files.append(str(path))

    with store.open_stage(db, run_id, "ingest") as con:
        for path, sha, adapter_name, data in parsed:
            version = _version_for(con, data.source, data.source_version, sha)
            if version is None:
                summary.skipped_unchanged.append(f"{data.source}@{data.source_version}")
                continue
            obs = data.observations.assign(source_version=version, ingest_run_id=run_id)
            rejected = data.rejected.assign(source=data.source, source_version=version, ingest_run_id=run_id)
            rejected = rejected.drop_duplicates(["row_ref", "column_name"])
            con.execute("DELETE FROM observations WHERE source = ? AND source_version = ?",
                        [data.source, version])
            con.execute("DELETE FROM rejected WHERE source = ? AND source_version = ?", [data.source, version])
            store.upsert(con, "observations", obs)
            store.upsert(con, "rejected", rejected)
            for table, frame in data.extra.items():
                con.execute(f"DELETE FROM {table} WHERE source = ? AND source_version = ?",
                            [data.source, version])
                store.upsert(con, table, frame.assign(source=data.source, source_version=version))
            store.upsert(con, "sources", pd.DataFrame([{
                "source": data.source, "source_version": version, "location": _location(path), "sha256": sha,
                "retrieved_at": store.now(), "license": data.license, "citation": data.citation,
                "kind": data.kind, "adapter": adapter_name,
                "n_observations": len(obs), "n_rejected": len(rejected), "notes": data.notes,
                "ingest_run_id": run_id,
            }]))
            summary.versions.append((data.source, version))
            summary.observations += len(obs)
            summary.rejected += len(rejected)
            if data.notes:
                summary.notes.append(f"{data.source}@{version}: {data.notes}")
        # the model registry, rebuilt from everything stored (and the alias files), joined to the observations
        built = aliases.rebuild(con, aliases.alias_files(targets))
        summary.notes.append(f"model registry: {built['models']} models; spellings {built['status']}; "
                             f"{built['gained_compute']} observations gained compute")
        summary.notes.extend(f"model registry: {note}" for note in built["notes"])
    return summary


def _version_for(con, source: str, label: str, sha: str) -> str | None:
    """None if this exact content is stored already; else the version label to store it under."""
    rows = con.execute("SELECT source_version, sha256 FROM sources WHERE source = ? AND "
                       "(source_version = ? OR source_version LIKE ?)",
                       [source, label, f"{label}@%"]).fetchall()
    if any(stored_sha == sha for _, stored_sha in rows):
        return None
    if any(version == label for version, _ in rows):
        return f"{label}@{sha[:8]}"
    return label


def summary_table(db: str | Path | None = None) -> pd.DataFrame:
    """Observations per kind, metric and source: what `make run` prints before later stages exist."""
    con = store.connect(db, read_only=True)
    try:
        return con.execute(
            "SELECT kind, metric, source, count(*) AS n, count(train_flop) AS with_compute, "
            "count(release_date) AS with_date FROM observations GROUP BY ALL ORDER BY kind, metric, source"
        ).df()
    finally:
        con.close()


__all__ = ["ingest", "IngestSummary", "expand_targets", "fetch_url", "summary_table", "ScalegapError"]
