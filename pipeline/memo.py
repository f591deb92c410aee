"""A content-addressed cache for pure computations inside a stage (counterpart fits, report figures), and `Blobs`,
the same for bytes (the report's cached context and appendix PDF).

The key is the content of the inputs plus the source of the code that computes them, so a changed
row, parameter or line of code is a miss; the run id and timestamps are never part of it. Values are
JSON files beside the store (`<db folder>/cache/<kind>/`). A missing or unreadable entry is recomputed;
a cache that cannot be written only costs time. Whole stages stay on Prefect's task cache (flows/).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import store


def cache_dir(db: str | Path | None, kind: str) -> Path:
    return store.resolve_db(db).parent / "cache" / kind


def feed(digest, obj: Any) -> None:
    """Hash a value's content: frames by their rows (without run ids and timestamps), arrays by bytes."""
    if isinstance(obj, pd.DataFrame):
        obj = obj.drop(columns=[c for c in obj.columns if c == "run_id" or str(c).endswith("_at")])
        digest.update(repr((list(obj.columns), obj.shape)).encode())
        if len(obj):
            digest.update(pd.util.hash_pandas_object(obj, index=False).to_numpy().tobytes())
    elif isinstance(obj, pd.Series):
        feed(digest, obj.to_frame())
    elif isinstance(obj, np.ndarray):
        digest.update(repr((obj.dtype.str, obj.shape)).encode() + np.ascontiguousarray(obj).tobytes())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        digest.update(type(obj).__qualname__.encode())
        feed(digest, [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)])
    elif isinstance(obj, (list, tuple)):
        digest.update(f"[{len(obj)}".encode())
        for item in obj:
            feed(digest, item)
    elif isinstance(obj, dict):
        feed(digest, sorted(obj.items(), key=lambda kv: repr(kv[0])))
    else:
        digest.update(repr(obj).encode())


def content_digest(obj: Any) -> str:
    """sha256 of a value's content (the one hasher: memo keys and the fit task cache use it)."""
    digest = hashlib.sha256()
    feed(digest, obj)
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


class Memo:
    """`memo.call(fn, *args)`: fn(*args), or the stored result of the same call on the same content."""

    def __init__(self, folder: Path | None, code: list[str | Path],
                 dump: Callable[[Any], Any] = lambda v: v, load: Callable[[Any], Any] = lambda v: v):
        self.folder = folder
        self.code = b"".join(Path(p).read_bytes() for p in code)
        self.dump, self.load = dump, load
        self.hits = self.misses = 0

    def call(self, fn: Callable, *args: Any) -> Any:
        return self.map(fn, [args])[0]

    def map(self, fn: Callable, calls: list[tuple], executor: Any = None) -> list:
        """[fn(*args) for args in calls], each from the store when the same call was made on the same content;
        the rest computed, on `executor` (a concurrent.futures pool) when given."""
        if self.folder is None:
            paths = [None] * len(calls)
        else:
            paths = []
            for args in calls:
                digest = hashlib.sha256(self.code + fn.__name__.encode())
                feed(digest, args)
                paths.append(self.folder / f"{digest.hexdigest()[:32]}.json")
        out: list[Any] = [None] * len(calls)
        todo = []
        for i, path in enumerate(paths):
            try:
                if path is None:
                    raise OSError
                out[i] = self.load(json.loads(path.read_text()))
                self.hits += 1
            except (OSError, ValueError, TypeError, KeyError):
                todo.append(i)
        results = {}
        if executor is not None and len(todo) > 1:
            from concurrent.futures.process import BrokenProcessPool

            try:
                futures = {i: executor.submit(fn, *calls[i]) for i in todo}
                results = {i: f.result() for i, f in futures.items()}
            except (BrokenProcessPool, RuntimeError):  # a worker died (no shared memory, killed), or none started: here
                results = {}
        results = results or {i: fn(*calls[i]) for i in todo}
        for i, value in results.items():
            out[i] = value
            if paths[i] is not None:
                self.misses += 1
                self._save(paths[i], value)
        return out

    def _save(self, path: Path, value: Any) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.folder, delete=False, suffix=".tmp") as tmp:
                json.dump(self.dump(value), tmp, default=_plain)
            os.replace(tmp.name, path)
        except (OSError, TypeError, ValueError):
            pass


class Blobs:
    """Bytes kept under a content digest (`content_digest` of whatever decides them) in `folder`, or nowhere when
    `folder` is None. Unreadable entries are misses; a cache that cannot be written only costs time."""

    def __init__(self, folder: Path | None, suffix: str) -> None:
        self.folder, self.suffix = folder, suffix

    def get(self, digest: str) -> bytes | None:
        if self.folder is None:
            return None
        try:
            return (self.folder / f"{digest[:32]}{self.suffix}").read_bytes()
        except OSError:
            return None

    def put(self, digest: str, payload: bytes) -> None:
        if self.folder is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("wb", dir=self.folder, delete=False, suffix=".tmp") as tmp:
                tmp.write(payload)
            os.replace(tmp.name, self.folder / f"{digest[:32]}{self.suffix}")
        except OSError:
            with contextlib.suppress(OSError, NameError):
                os.unlink(tmp.name)
