"""Progress of a refresh: stage started / advanced / done, shown with rich on stderr by the CLI.

The flow reports to whatever reporter is installed (none by default: deployments and tests stay
silent and rely on Prefect's log). Counts are advanced from the parent process as futures finish,
so progress works the same with the Dask task runner.
"""

from __future__ import annotations

import time
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Reporter(Protocol):
    def start(self, stage: str, total: int | None = None) -> None: ...
    def advance(self, stage: str, n: int = 1, label: str | None = None) -> None: ...
    def done(self, stage: str, detail: str) -> None: ...
    def skipped(self, stage: str, why: str) -> None: ...


class Silent:
    def start(self, stage: str, total: int | None = None) -> None:
        pass

    def advance(self, stage: str, n: int = 1, label: str | None = None) -> None:
        pass

    def done(self, stage: str, detail: str) -> None:
        pass

    def skipped(self, stage: str, why: str) -> None:
        pass


class RichReporter:
    """One line per finished stage; a bar with counts while a stage with a known total runs."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self._progress: Progress | None = None
        self._task_ids: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._counts: dict[str, list[int]] = {}   # stage -> [done, total] when printing plain lines

    def start(self, stage: str, total: int | None = None) -> None:
        self._started[stage] = time.perf_counter()
        if total is not None and not self.console.is_terminal:
            self._counts[stage] = [0, total]
        if total is None or not self.console.is_terminal:
            self.console.print(f"[dim]…[/] {stage}" + (f" ({total} items)" if total else ""))
            return
        if self._progress is None:
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(),
                                      console=self.console, transient=True)
            self._progress.start()
        self._task_ids[stage] = self._progress.add_task(stage, total=total)

    def advance(self, stage: str, n: int = 1, label: str | None = None) -> None:
        if self._progress is not None and stage in self._task_ids:
            self._progress.advance(self._task_ids[stage], n)
        elif stage in self._counts and label:
            # not a terminal (a log file, CI, a pipe): no bar redrawn in place, one line per step instead
            count = self._counts[stage]
            count[0] += n
            self.console.print(f"  {stage} {count[0]}/{count[1]}: {label}", markup=False, highlight=False)

    def done(self, stage: str, detail: str) -> None:
        self._stop_bar(stage)
        self._counts.pop(stage, None)
        elapsed = time.perf_counter() - self._started.pop(stage, time.perf_counter())
        self.console.print(f"[green]✓[/] {stage}: {detail} [dim]({elapsed:.1f} s)[/]")

    def skipped(self, stage: str, why: str) -> None:
        self._stop_bar(stage)
        self._started.pop(stage, None)
        self.console.print(f"[yellow]–[/] {stage}: skipped ({why})")

    def _stop_bar(self, stage: str) -> None:
        if self._progress is not None and stage in self._task_ids:
            self._progress.remove_task(self._task_ids.pop(stage))
            if not self._task_ids:
                self._progress.stop()
                self._progress = None


_reporter: Reporter = Silent()


def set_reporter(reporter: Reporter | None) -> None:
    global _reporter
    _reporter = reporter or Silent()


def reporter() -> Reporter:
    return _reporter
