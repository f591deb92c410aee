"""The content-addressed cache behind counterpart fits and report figures: a hit only on the same
content and code, never on a stale value; a broken entry is recomputed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import memo


def _mean_by_model(frame: pd.DataFrame) -> dict:
    return {"mean": float(frame["y"].mean()), "n": int(len(frame))}


def _frame(run_id: str, y: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"run_id": run_id, "model": ["a", "b", "c"], "y": y})


def test_same_content_hits_other_run_ids_too(tmp_path: Path) -> None:
    cache = memo.Memo(tmp_path, [memo.__file__])
    first = cache.call(_mean_by_model, _frame("run-1", [1.0, 2.0, 3.0]))
    second = cache.call(_mean_by_model, _frame("run-2", [1.0, 2.0, 3.0]))
    assert first == second == {"mean": 2.0, "n": 3}
    assert (cache.misses, cache.hits) == (1, 1)


def test_changed_value_or_argument_misses(tmp_path: Path) -> None:
    cache = memo.Memo(tmp_path, [memo.__file__])
    assert cache.call(_mean_by_model, _frame("r", [1.0, 2.0, 3.0]))["mean"] == 2.0
    assert cache.call(_mean_by_model, _frame("r", [1.0, 2.0, 3.5]))["mean"] == 6.5 / 3
    assert cache.call(_mean_by_model, _frame("r", [1.0, 2.0, 3.0]).iloc[:2])["n"] == 2
    assert (cache.misses, cache.hits) == (3, 0)


def test_changed_code_misses(tmp_path: Path) -> None:
    code = tmp_path / "code.py"
    code.write_text("v = 1\n")
    frame = _frame("r", [1.0, 2.0, 3.0])
    memo.Memo(tmp_path / "c", [code]).call(_mean_by_model, frame)
    code.write_text("v = 2\n")
    cache = memo.Memo(tmp_path / "c", [code])
    cache.call(_mean_by_model, frame)
    assert cache.misses == 1


def test_corrupt_entry_is_recomputed(tmp_path: Path) -> None:
    cache = memo.Memo(tmp_path, [memo.__file__])
    cache.call(_mean_by_model, _frame("r", [1.0, 2.0, 3.0]))
    for entry in tmp_path.glob("*.json"):
        entry.write_text("{not json")
    again = memo.Memo(tmp_path, [memo.__file__])
    assert again.call(_mean_by_model, _frame("r", [1.0, 2.0, 3.0]))["mean"] == 2.0
    assert again.misses == 1


def test_arrays_and_nested_arguments_are_keyed_by_content() -> None:
    import hashlib

    def key(*args) -> str:
        digest = hashlib.sha256()
        memo.feed(digest, args)
        return digest.hexdigest()

    assert key(np.array([1.0, 2.0]), {"b": 1, "a": [2, 3]}) == key(np.array([1.0, 2.0]), {"a": [2, 3], "b": 1})
    assert key(np.array([1.0, 2.0])) != key(np.array([1.0, 2.5]))
    assert key(np.array([1, 2], dtype=np.int64)) != key(np.array([1.0, 2.0]))


def test_unwritable_cache_only_costs_time(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = memo.Memo(blocker / "cache", [memo.__file__])
    assert cache.call(_mean_by_model, _frame("r", [1.0, 2.0, 3.0]))["mean"] == 2.0
    assert cache.call(_mean_by_model, _frame("r", [1.0, 2.0, 3.0]))["mean"] == 2.0
    assert cache.misses == 2
