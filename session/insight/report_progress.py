"""What a long `report` is doing, on stderr: a bar while the logs load, then the step under way ("working out the
views", "drawing plots ... 3 drawn") until the folder is written. At a million steps the load takes half a second and
the plots three more, so a bar for the load alone left the terminal silent for most of the wait.

Shown on a terminal only, and only once SHOW_AFTER_S have passed (a quick report prints nothing); gone when the
report is done. Every call is a point where the display can appear, so no timer thread is needed: the load calls
once per file and the plots once each, a fraction of a second apart.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Optional

SHOW_AFTER_S = 1.0
LOADING = "reading logs"
DRAWING = "drawing plots"


class ReportProgress:
    """`progress(done, total)` follows the load (the loader's callback); `step(what)` names the next step and
    `drew(name)` counts a plot. Use as a context manager: the display goes at the end."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, terminal: Optional[bool] = None) -> None:
        self._clock = clock
        self._started = clock()
        self._terminal = sys.stderr.isatty() if terminal is None else terminal
        self._shown: Any = None  # rich's Progress, once shown
        self._task: Any = None
        self._what, self._done, self._count = LOADING, 0, ""
        self._total: Optional[int] = None

    def __call__(self, done: int, total: int) -> None:
        self._update(LOADING, done, total, f"{done}/{total}")

    def step(self, what: str) -> None:
        self._update(what, 0, None, "")

    def drew(self, name: str) -> None:
        done = self._done + 1 if self._what == DRAWING else 1
        self._update(DRAWING, done, None, f"{done} drawn, the last {name}")

    @property
    def shown(self) -> bool:
        return self._shown is not None

    def _update(self, what: str, done: int, total: Optional[int], count: str) -> None:
        self._what, self._done, self._total, self._count = what, done, total, count
        if self._shown is None:
            if not self._terminal or self._clock() - self._started < SHOW_AFTER_S:
                return
            self._show()
        if total is None and self._shown.tasks[0].total is not None:  # rich's update keeps a total it was given
            self._shown.remove_task(self._task)
            self._task = self._shown.add_task(what, total=None, completed=done, count=count)
        else:
            self._shown.update(self._task, description=what, completed=done, total=total, count=count)

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

        # a bar with a total while loading, a pulsing one for a step of unknown length
        self._shown = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                               TextColumn("{task.fields[count]}"), console=Console(stderr=True), transient=True)
        self._shown.start()
        self._task = self._shown.add_task(self._what, total=self._total, completed=self._done, count=self._count)

    def __enter__(self) -> "ReportProgress":
        return self

    def __exit__(self, *_: object) -> None:
        if self._shown is not None:
            self._shown.stop()


def quiet(*_: object) -> None:
    """The progress of a caller that shows none."""
