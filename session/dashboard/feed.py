"""The live view behind the page: `watch`'s own loop (session.insight.live_view.follow_session, fed by the same
log followers, container listings, storage reads and host probes) in a thread of its own, keeping its newest
snapshot and container listing for the API to hand out.

`watch` ends when the run does; a dashboard stays. When nothing of the run runs any more and every log is read,
the feed keeps the last snapshot and lists the run's containers every `idle_every_s` seconds; once something runs
again, or other containers appear (a new `train`), it follows them afresh with a new LiveState.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, List, Optional, Sequence

from session.insight.live import LiveState, Snapshot, StallRules
from session.insight.live_view import HostProbe, follow_session, probe_host

if TYPE_CHECKING:  # pragma: no cover
    from session.engine.containers import ContainerInfo
    from session.run.progress import TrainingProgress


@dataclass(frozen=True)
class Reading:
    """The feed's newest: the snapshot (None before the first), the containers listed last, an error line."""

    snapshot: Optional[Snapshot]
    containers: tuple["ContainerInfo", ...]
    error: Optional[str]


class LiveFeed:
    """follow_session in a daemon thread. `latest()` is safe from any thread: it reads one reference."""

    def __init__(self, list_containers: Callable[[], Sequence["ContainerInfo"]],
                 open_log: Callable[["ContainerInfo"], Iterator[str]], *,
                 read_progress: Optional[Callable[[], "TrainingProgress"]] = None,
                 probe: Optional[Callable[[], HostProbe]] = probe_host, rules: StallRules = StallRules(),
                 refresh_s: float = 1.0, progress_every_s: float = 30.0, idle_every_s: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._list, self._open_log, self._read_progress, self._probe = list_containers, open_log, read_progress, probe
        self._rules, self._refresh_s, self._progress_every_s = rules, refresh_s, progress_every_s
        self._idle_every_s, self._clock = idle_every_s, clock
        self._reading = Reading(None, (), None)
        self._closing = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def latest(self) -> Reading:
        return self._reading

    def start(self) -> "LiveFeed":
        self._thread = threading.Thread(target=self._run, name="dashboard-feed", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # --- the thread ---------------------------------------------------------------------------------------------

    def _listing(self) -> List["ContainerInfo"]:
        found = list(self._list())
        self._reading = Reading(self._reading.snapshot, tuple(found), None)
        return found

    def _keep(self, snapshot: Snapshot) -> None:
        self._reading = Reading(snapshot, self._reading.containers, None)

    def _failed(self, error: BaseException) -> None:
        line = " ".join(str(error).split()) or type(error).__name__
        self._reading = Reading(self._reading.snapshot, self._reading.containers, line)

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                follow_session(self._listing, self._open_log, self._keep, state=LiveState(), rules=self._rules,
                               read_progress=self._read_progress, probe=self._probe, clock=self._clock,
                               refresh_s=self._refresh_s, progress_every_s=self._progress_every_s,
                               until=lambda _: self._closing.is_set())
            except Exception as error:  # noqa: BLE001 - shown on the page; the feed tries again
                self._failed(error)
            self._wait_for_change()

    def _wait_for_change(self) -> None:
        """Until something of the run runs, or its containers change (a new run), or the feed closes."""
        seen = {c.id for c in self._reading.containers}
        while not self._closing.wait(self._idle_every_s):
            try:
                found = self._listing()
            except Exception as error:  # noqa: BLE001 - shown on the page; looked at again shortly
                self._failed(error)
                continue
            if any(c.running for c in found) or {c.id for c in found} != seen:
                return
