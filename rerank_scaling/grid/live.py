"""Rich live view of a running grid: cells done / running / failed, ETA.

The view polls the cell folders (status.json, train_log.jsonl), so it shows
the same truth whichever engine runs the cells, and needs no messages from
worker processes.
"""

from __future__ import annotations

import threading
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from rerank_scaling.config import RunConfig
from rerank_scaling.rundir import StudyFolder


class GridProgress:
    def __init__(self, study: Path, cells: list[RunConfig], console: Console, interval: float = 1.0):
        self.study, self.cells, self.interval = StudyFolder(study), cells, interval
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=console,
        )
        total = sum(c.steps for c in cells)
        self.task = self.progress.add_task("grid", total=total, counts="")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self):
        self.progress.__enter__()
        self.refresh()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.refresh()
        self.progress.__exit__(*exc)

    def cell_finished(self, run_id: str, status: dict) -> None:
        self.refresh()

    def refresh(self) -> None:
        counts = {"done": 0, "running": 0, "failed": 0, "pending": 0}
        steps = 0
        for config in self.cells:
            cell = self.study.cell(config.run_id)
            state = cell.state() if cell.exists() else None
            name = state.state if state else "pending"
            name = "pending" if name == "damaged" else name  # the grid repairs and reruns it
            counts[name] = counts.get(name, 0) + 1
            steps += config.steps if name in ("done", "failed") else (state.step if state else 0)
        text = (f"[green]{counts['done']} done[/] [yellow]{counts['running']} running[/] "
                f"[red]{counts['failed']} failed[/] {counts['pending']} pending")
        self.progress.update(self.task, completed=steps, counts=text)

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()
