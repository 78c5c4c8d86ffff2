"""Steps from a log that is still being written: a worker's container log stream, fed as bytes arrive.

    tail = TraceTail("worker-1", worker=0)
    for data in stream:                 # e.g. the Docker Engine's log stream of a simulation worker
        new_steps = tail.feed(data)     # the steps of the lines completed by `data`, per-step columns
    tail.close()                        # the last line, if the stream ended without a newline

An unfinished last line waits for the next `feed`; bad lines are counted in `tail.problems` with their line
number in the whole stream. `iteration` comes from the log's own hyperparameters once they have been seen
(they are printed before the first step), else -1; `unique_episode` is the worker's episode number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import pyarrow as pa

from session.insight.analysis.columns import TRAINING, UNKNOWN
from session.insight.analysis.loader import _assemble, _with_place
from session.insight.analysis.parse import parse_log
from session.insight.analysis.problems import LoadProblems
from session.insight.analysis.sources import HEADER_BYTES, LOG, Member, episodes_per_iteration

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


class TraceTail:
    def __init__(self, name: str = "log", *, phase: str = TRAINING, worker: int = 0, stream: str = "") -> None:
        self.name = name
        self.problems = LoadProblems()
        self._member = Member(name, LOG, phase, stream, worker, 0 if phase != TRAINING else UNKNOWN, name, bytes)
        self._rest = b""
        self._lines = 0
        self._head = b""
        self._per_iteration: Optional[int] = None

    def feed(self, data: bytes) -> "pd.DataFrame":
        """The steps of every line that `data` completes."""
        return self._read(self._rest + bytes(data), final=False)

    def close(self) -> "pd.DataFrame":
        """The steps of an unfinished last line, read as it is."""
        return self._read(self._rest, final=True)

    def _read(self, data: bytes, *, final: bool) -> "pd.DataFrame":
        parsed = parse_log(data, final=final)
        used = data[:parsed.consumed]
        if self._per_iteration is None and self._member.phase == TRAINING and len(self._head) < HEADER_BYTES:
            self._head += used[:HEADER_BYTES - len(self._head)]
            self._per_iteration = episodes_per_iteration(self._head)
        for line, reason, detail in parsed.issues:
            self.problems.add(self.name, line + self._lines if line else 0, reason, detail)
        self._lines += used.count(b"\n")
        self._rest = data[parsed.consumed:]
        table = parsed.table
        if table is None or not table.num_rows:
            return _assemble([])
        if self._per_iteration:
            table = table.append_column("iteration", pa.array(table.column("episode").to_numpy()
                                                              // self._per_iteration))
        member = self._member
        steps = _assemble([_with_place(table, [member], [table.num_rows],
                                       {(member.source, member.phase, member.stream): 0})])
        steps["unique_episode"] = steps["episode"]
        return steps
