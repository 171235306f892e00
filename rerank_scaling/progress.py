"""Rich progress display for single runs (the grid has its own table view)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RunProgress:
    """Context manager whose ``update(event, details)`` feeds a rich progress bar."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[last]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self.task = None

    def __enter__(self):  # the bar starts with the run's first step: an error before it is one line, nothing else
        return self

    def __exit__(self, *exc):
        if self.task is not None:
            self.bar.__exit__(*exc)

    def update(self, event: str, details: dict) -> None:
        if event == "warning":  # a doubtful setting or input, before training (pipeline.prepare)
            self.console.print(f"warning: {details['message']}", markup=False, highlight=False, soft_wrap=True)
        elif event == "prepared":
            self.bar.__enter__()
            self.task = self.bar.add_task(details["run"], total=details["steps"],
                                          completed=details["resume_step"], last="")
        elif event == "step" and self.task is not None:
            self.bar.update(self.task, completed=details["step"])
        elif event == "eval" and self.task is not None:
            shown = {k: v for k, v in details["values"].items() if k.endswith("ndcg@10")}
            self.bar.update(self.task, last=" ".join(f"{k}={v:.3f}" for k, v in shown.items()))
