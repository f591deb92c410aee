"""Ingest stage: files, folders or URLs -> sources, observations, rejected rows (one transaction).

Unchanged files (same sha256 as already stored for that source version) are skipped, so re-running
an ingest changes nothing. A file whose content changed under the same version label becomes a new
`source_version` (`label@sha8`); versions are never merged.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from pipeline import aliases, store
from pipeline.schema import (
    InputError,
    ScalegapError,
    clean_text,
    validate_observations,
    with_warnings,
)
from pipeline.sources import (
    MAX_COLUMNS,
    MAX_DECOMPRESSED_BYTES,
    MAX_LINE_BYTES,
    SourceData,
    Staged,
    adapter_for,
    open_data,
)

RAW_DIR = Path("data/raw")
SOURCES_TOML = RAW_DIR / "sources.toml"
MAX_FILE_BYTES = 512 * 1024 * 1024
URL_SCHEMES = ("http", "https")
DOWNLOAD_DEADLINE_S = 600.0  # one fetch with its retries, however slowly the bytes arrive
URL_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # scheme: (one letter would be a Windows drive)


@dataclass
class IngestSummary:
    files: list[str] = field(default_factory=list)
    skipped_unchanged: list[str] = field(default_factory=list)
    versions: list[tuple[str, str]] = field(default_factory=list)
    observations: int = 0
    rejected: int = 0
    notes: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    alias_digests: list[str] = field(default_factory=list)   # the alias files the registry was rebuilt from

    def as_dict(self) -> dict:
        return {
            "files": self.files, "skipped_unchanged": self.skipped_unchanged,
            "versions": [f"{s}@{v}" for s, v in self.versions],
            "observations": self.observations, "rejected": self.rejected, "notes": self.notes,
            "digests": self.digests,
        }


def expand_targets(targets: list[str], download_dir: Path | None = None, retries: int = 3) -> list[Path]:
    """PATH (file or folder), URL, or a NAME from data/raw/sources.toml -> local files. `retries`: attempts per
    download (the refresh flow retries whole fetches as Prefect tasks, so it asks for one)."""
    files: list[Path] = []
    for target in targets:
        path = Path(target)
        if URL_LIKE.match(target) and not path.exists():  # fetch_url refuses schemes other than http(s)
            files.append(fetch_url(target, download_dir, retries=retries))
            continue
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
                files.append(fetch_url(url, download_dir, retries=retries))
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


def default_download_dir() -> Path:
    """The user's own cache (XDG), never a shared temp folder another user could plant links in."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scalegap" / "downloads"


def check_url(url: str) -> None:
    """Only http(s) URLs with a host are fetched: file:// would copy local files, data: is no download."""
    parsed = urllib.parse.urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme not in URL_SCHEMES:
        problem = "the URL has no scheme" if not scheme else f"{scheme}: URLs are not fetched (only http and https)"
        raise InputError(url, problem, "write the full http:// or https:// address, or give a local file as a "
                                       "plain path")
    if not parsed.hostname:
        raise InputError(url, "the URL has no host", "write it as https://host/path/file.csv")


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """A server must not redirect a download to file:// or ftp:// (urllib would follow ftp)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlparse(newurl).scheme.lower() not in URL_SCHEMES:
            raise urllib.error.HTTPError(newurl, code, f"redirect to a non-http(s) URL refused ({newurl})", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _DownloadError(Exception):
    """An attempt that failed in a way another attempt may not (retry) or will not (final) fix."""

    def __init__(self, message: str, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


class _GzipTrailer:
    """Decompresses as bytes arrive (output discarded) to see the gzip trailer: a cut .gz is not a whole file."""

    def __init__(self, limit: int) -> None:
        self.inflate, self.out, self.limit = zlib.decompressobj(wbits=47), 0, limit

    def feed(self, data: bytes) -> None:
        try:
            while data:
                if self.inflate.eof:  # the next member of a multi-member file
                    data, self.inflate = self.inflate.unused_data + data, zlib.decompressobj(wbits=47)
                self.out += len(self.inflate.decompress(data, 1 << 20))
                data = self.inflate.unconsumed_tail
                if self.out > self.limit:
                    raise _DownloadError(f"it expands beyond {self.limit >> 20} MB", final=True)
        except zlib.error as exc:
            raise _DownloadError(f"not valid gzip data ({exc})", final=True) from None

    def complete(self) -> bool:
        return self.inflate.eof and not self.inflate.unused_data


def _open_private_dir(folder: Path) -> int:
    """A descriptor of the download folder, created 0700; a symlink or a folder others can write to is refused
    (another local user could point our writes at their choice of file)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        raise InputError(str(folder), "the download folder is a symbolic link or not a folder",
                         "remove it, or give a download folder of your own") from None
    info = os.fstat(fd)
    if info.st_uid != os.geteuid() or info.st_mode & 0o022:
        os.close(fd)
        raise InputError(str(folder), "the download folder belongs to or can be written by another user",
                         f"remove it, or make it private (chmod 700 {folder})")
    return fd


def _open_subdir(parent_fd: int, name: str, where: Path) -> int:
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o700, dir_fd=parent_fd)
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
    except OSError:
        raise InputError(str(where / name), "a download subfolder is a symbolic link or not a folder",
                         "remove it") from None


def _write_new(dir_fd: int, name: str, chunks) -> None:
    """Write `name` in the folder through a fresh temp file (O_EXCL, no symlink followed), then rename it over
    `name` (a rename replaces a planted link instead of writing through it); no temp file survives a failure."""
    temp = f".{name}.{secrets.token_hex(6)}.part"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise


def _body(response, url: str, deadline: float, max_bytes: int):
    """The response body in pieces, checked end to end: the size cap while streaming, the overall deadline
    between reads (read1 returns what has arrived, so a server dripping bytes cannot hold a read open past
    it), then the length against Content-Length and, for a .gz, the gzip trailer."""
    declared = response.headers.get("Content-Length")
    declared = int(declared) if declared and declared.strip().isdigit() else None
    if declared is not None and declared > max_bytes:
        raise _DownloadError(f"the server announces {declared >> 20} MB, more than the {max_bytes >> 20} MB limit",
                             final=True)
    trailer = _GzipTrailer(MAX_DECOMPRESSED_BYTES) if urllib.parse.urlparse(url).path.endswith(".gz") else None
    received = 0
    while chunk := response.read1(1 << 16):
        received += len(chunk)
        if received > max_bytes:
            raise _DownloadError(f"the download is larger than the {max_bytes >> 20} MB limit", final=True)
        if time.monotonic() > deadline:
            raise _DownloadError("the deadline passed")
        if trailer is not None:
            trailer.feed(chunk)
        yield chunk
    if declared is not None and received != declared:
        raise _DownloadError(f"the connection closed after {received} of {declared} bytes")
    if trailer is not None and not trailer.complete():
        raise _DownloadError(f"the gzip data ends before its trailer after {received} bytes")


def fetch_url(url: str, download_dir: Path | None = None, retries: int = 3, timeout_s: float = 30.0,
              backoff_s: float = 1.0, deadline_s: float | None = None, max_bytes: int | None = None) -> Path:
    """Download to `download_dir` (default: a private folder in the user's cache) keeping the URL's file name;
    retries with exponential backoff. `timeout_s` bounds each read, `deadline_s` the whole fetch with its retries
    (default $SCALEGAP_DOWNLOAD_DEADLINE or 600 s); more than `max_bytes` (default the file limit) is refused."""
    check_url(url)
    deadline_s = float(os.environ.get("SCALEGAP_DOWNLOAD_DEADLINE", DOWNLOAD_DEADLINE_S)) if deadline_s is None \
        else deadline_s
    max_bytes = MAX_FILE_BYTES if max_bytes is None else max_bytes
    deadline = time.monotonic() + deadline_s
    download_dir = download_dir or default_download_dir()
    # Mirror host and path: two sources' "headline.csv" do not overwrite each other, and adapters
    # that recognise a file by its folder (logistic_fits/headline.csv) still do.
    parsed = urllib.parse.urlparse(url)
    parts = [re.sub(r"[^A-Za-z0-9._-]", "_", p) for p in [parsed.netloc, *parsed.path.split("/")] if p not in ("", ".", "..")]
    parts = parts if len(parts) > 1 else [*parts, "download"]
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    fds = [_open_private_dir(download_dir)]
    try:
        for part in parts[:-1]:
            fds.append(_open_subdir(fds[-1], part, download_dir))
        last_error = ""
        for attempt in range(retries):
            try:
                with opener.open(url, timeout=max(0.1, min(timeout_s, deadline - time.monotonic()))) as response:
                    _write_new(fds[-1], parts[-1], _body(response, url, deadline, max_bytes))
                # The sources table records where a file came from: the URL, not the download folder.
                _write_new(fds[-1], parts[-1] + ".url", [url.encode()])
                return download_dir.joinpath(*parts)
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code} {exc.reason}"
                if 400 <= exc.code < 500 and exc.code != 429 or exc.code in range(300, 400):
                    break
            except _DownloadError as exc:
                last_error = str(exc)
                if exc.final:
                    raise InputError(url, f"refused the download: {exc}",
                                     "ingest a local copy you have checked, or filter it to the rows you need") from None
            except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError) as exc:
                last_error = str(getattr(exc, "reason", exc)) or type(exc).__name__
            if time.monotonic() >= deadline:
                raise InputError(url, f"the download did not finish within {deadline_s:g} s",
                                 "check the server and the network, set SCALEGAP_DOWNLOAD_DEADLINE to allow longer, "
                                 "or ingest a local copy of the file")
            if attempt + 1 < retries:
                time.sleep(min(backoff_s * 2**attempt, max(0.0, deadline - time.monotonic())))
    finally:
        for fd in fds:
            os.close(fd)
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
    if path.name.lower().endswith((".csv", ".csv.gz")):  # every CSV reader, before it builds its columns
        with open_data(path) as handle:
            header = handle.readline(MAX_LINE_BYTES).decode("utf-8", errors="replace")
        if header.count(",") >= MAX_COLUMNS:
            raise InputError(str(path), f"{header.count(',') + 1} columns or more (the limit is {MAX_COLUMNS})",
                             "keep the columns the format needs", row=1)


def ingest(targets: list[str], db: str | Path | None = None, run_id: str | None = None,
           download_dir: Path | None = None) -> IngestSummary:
    """Read every target fully first; then write everything in one transaction (or nothing).

    A file too large to hold (SourceData.chunks) is parsed and checked up front into a scratch store, and its
    rows are checked once more and written piece by piece inside the same transaction."""
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
            notes = _clean_fields(data, str(path))
            if data.staged is None:
                data.observations = _checked(data.observations, data, sha, str(path), notes)
                data.rejected = _cleaned(data.rejected, str(path), notes)
            else:  # the same checks, a piece at a time, kept on disk for the transaction to copy
                for table, piece in data.staged.pieces():
                    data.staged.keep(table, _checked(piece, data, sha, str(path), notes) if table == "observations"
                                     else _cleaned(piece.assign(source=data.source), str(path), notes))
            data.extra = {table: _cleaned(frame, str(path), notes) for table, frame in data.extra.items()}
            data.notes = with_warnings(data.notes, notes)
            parsed.append((path, sha, adapter.name, data))
        summary.files.append(str(path))

    with store.open_stage(db, run_id, "ingest") as con:
        for path, sha, adapter_name, data in parsed:
            version = _version_for(con, data.source, data.source_version, sha)
            if version is None:
                summary.skipped_unchanged.append(f"{data.source}@{data.source_version}")
                continue
            con.execute("DELETE FROM observations WHERE source = ? AND source_version = ?",
                        [data.source, version])
            con.execute("DELETE FROM rejected WHERE source = ? AND source_version = ?", [data.source, version])
            if data.staged is None:
                counts = {"observations": store.upsert(con, "observations", data.observations.assign(
                              source_version=version, ingest_run_id=run_id)),
                          "rejected": store.upsert(con, "rejected", data.rejected.assign(
                              source=data.source, source_version=version, ingest_run_id=run_id)
                              .drop_duplicates(["row_ref", "column_name"]))}
            else:
                counts = _copy_staged(con, data.staged, version, run_id)
            for table, frame in data.extra.items():
                con.execute(f"DELETE FROM {table} WHERE source = ? AND source_version = ?",
                            [data.source, version])
                store.upsert(con, table, frame.assign(source=data.source, source_version=version))
            store.upsert(con, "sources", pd.DataFrame([{
                "source": data.source, "source_version": version, "location": _location(path), "sha256": sha,
                "retrieved_at": store.now(), "license": data.license, "citation": data.citation,
                "kind": data.kind, "adapter": adapter_name,
                "n_observations": counts["observations"], "n_rejected": counts["rejected"], "notes": data.notes,
                "ingest_run_id": run_id,
            }]))
            summary.versions.append((data.source, version))
            summary.observations += counts["observations"]
            summary.rejected += counts["rejected"]
            if data.notes:
                summary.notes.append(f"{data.source}@{version}: {data.notes}")
        # the model registry, rebuilt from everything stored (and the alias files), joined to the observations
        alias_paths = aliases.alias_files(targets)
        built = aliases.rebuild(con, alias_paths)
        summary.alias_digests = sorted(store.file_sha256(p) for p in alias_paths if Path(p).is_file())
        summary.notes.append(f"model registry: {built['models']} models; spellings {built['status']}; "
                             f"{built['gained_compute']} observations gained compute")
        summary.notes.extend(f"model registry: {note}" for note in built["notes"])
    return summary


def _copy_staged(con: duckdb.DuckDBPyConnection, staged: Staged, version: str, run_id: str | None) -> dict[str, int]:
    """Checked rows kept on disk, into the store in one INSERT per table (pieces inserted one by one inside a
    transaction would each hold their memory until the commit)."""
    counts = {"observations": 0, "rejected": 0}
    given = {"source_version": version, "ingest_run_id": run_id}
    with staged.attached(con) as alias:
        for table in counts:
            kept = {c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE database_name = ? "
                                              "AND table_name = ?", [alias, f"kept_{table}"]).fetchall()}
            if not kept:
                continue
            columns = [c for c in store.table_columns(con, table) if c in kept or c in given]
            # A plain INSERT (this version's rows were deleted, the kept keys are unique) holds a fraction of the
            # memory of INSERT OR REPLACE, which checks every key against the index.
            counts[table] = con.execute(
                f"INSERT INTO {table} ({', '.join(map(_quoted, columns))}) "
                f"SELECT {', '.join('?' if c in given else _quoted(c) for c in columns)} "
                f"FROM {alias}.kept_{table} WHERE _part = ?",
                [given[c] for c in columns if c in given] + [staged.part]).fetchone()[0]
    return counts


def _quoted(column: str) -> str:
    return f'"{column}"'


def _checked(frame: pd.DataFrame, data: SourceData, sha: str, path: str, notes: list[str]) -> pd.DataFrame:
    """Observations as stored: text cleaned (see schema.clean_text), then the schema's invariants checked."""
    frame = _cleaned(frame.assign(source=data.source, source_version=data.source_version, source_sha256=sha),
                     path, notes)
    return validate_observations(frame, path)


def _cleaned(frame: pd.DataFrame, path: str, notes: list[str]) -> pd.DataFrame:
    frame, found = clean_text(frame.reset_index(drop=True), path)
    notes.extend(found)
    return frame


def _clean_fields(data: SourceData, path: str) -> list[str]:
    """The source version's own labels may come from the file too (a CSV's source and citation columns)."""
    fields = ("source", "source_version", "license", "citation")
    notes: list[str] = []
    row = _cleaned(pd.DataFrame([{f: getattr(data, f) for f in fields}]), path, notes).iloc[0]
    for name in fields:
        setattr(data, name, row[name])
    return notes


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
