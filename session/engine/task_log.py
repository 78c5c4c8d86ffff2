"""A swarm task's log, read through the manager (the task's container is on another node's engine).

The manager relays a task's log from its node through a log subscription. It is the task's own log that is asked
for, not its service's: on the node, a subscription to a service has one reader per task, all sending on one gRPC
stream, and with Docker 20.10 a goroutine dump showed such a closed subscription stuck in flow control and the next
one never reaching the node (docs/testing.md). A followed subscription can still go quiet for good while the task
writes (moby/moby#33183), and then only a new subscription brings lines again. So `TaskFollow`, quiet for `quiet_s`
while its task runs, subscribes anew from the time of the last line it passed on, and drops the lines the new
subscription repeats (Docker's `since` includes that instant). A task with really nothing to say costs a
subscription now and then: the wait doubles each time a new one brings nothing, up to `max_quiet_s`. Once the task
has ended and its log is quiet, the follow ends, as a local container's does when it exits.
"""

from __future__ import annotations

import calendar
import queue
import threading
import time
from collections import Counter
from typing import Any, Callable, Iterator, Optional, Tuple

from session.core.errors import DeepracerError
from session.engine.streams import close_quietly, split_lines

QUIET_S = 15.0  # a worker writes several step lines a second while it drives; a policy update is quieter
MAX_QUIET_S = 120.0
_BACKLOG_LINES = 10_000  # read ahead of a slow reader: then the manager's stream waits, as it would unread

# Subscribe(since, new_only) -> the manager's stream (bytes chunks, closable) of the task's log with timestamps and
# details: "2026-12-07T03:50:05.123456789Z com.docker.swarm.node.id=…,com.docker.swarm.task.id=… message".
Subscribe = Callable[[Optional[str], bool], Any]


def parse_line(line: str) -> Tuple[str, str, str]:
    """(timestamp, details, message) of one line of a task's log read with timestamps and details."""
    stamp, _, rest = line.partition(" ")
    details, _, message = rest.partition(" ")
    return stamp, details, message


def since_of(stamp: str) -> str:
    """Docker's RFC 3339 time with nanoseconds ("2026-12-07T03:50:05.123456789Z", as the engine writes it: UTC, nine
    digits) as the `since` the logs API takes: Unix seconds and nanoseconds, "1796615405.123456789"."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return f"{seconds}.{fraction.ljust(9, '0')[:9]}"


class TaskLog:
    """One task's message lines (bytes, each ending in a newline) out of the manager's stream of its log, read with
    details; a line without the task's own `marker` among them (the manager's own error text) is left out.
    `close()` ends it from any thread: the blocked read fails and the iteration stops."""

    def __init__(self, stream: Any, marker: str) -> None:
        self._stream, self._marker = stream, marker
        self._lines = self._filtered()

    def _filtered(self) -> Iterator[bytes]:
        for line in split_lines(self._stream):
            details, _, message = line.partition(" ")
            if self._marker in details.split(","):
                yield f"{message}\n".encode()

    def __iter__(self) -> "TaskLog":
        return self

    def __next__(self) -> bytes:
        return next(self._lines)

    def close(self) -> None:
        close_quietly(self._stream)


class TaskFollow:
    """A task's log as it arrives (bytes lines, as `TaskLog`), kept flowing across stuck subscriptions (see the
    module's docstring). `ended()` answers True once the task's container no longer runs, False while it runs,
    None when that cannot be told (then it is taken to run). `close()` ends it from any thread."""

    def __init__(self, subscribe: Subscribe, ended: Callable[[], Optional[bool]], marker: str, *,
                 new_only: bool = False, quiet_s: float = QUIET_S, max_quiet_s: float = MAX_QUIET_S,
                 clock: Callable[[], float] = time.time) -> None:
        self._subscribe, self._ended, self._marker = subscribe, ended, marker
        self._quiet_s, self._max_quiet_s = quiet_s, max_quiet_s
        self._lines: "queue.Queue[Tuple[int, Optional[str]]]" = queue.Queue(maxsize=_BACKLOG_LINES)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._stream: Any = None
        self._generation = 0
        self._last_stamp: Optional[str] = None
        self._at_last_stamp: Counter = Counter()  # the messages passed on at `_last_stamp`
        self._seam: Optional[str] = None  # the new subscription's first instant, that the old one passed on already
        self._repeats: Counter = Counter()  # the messages passed on at `_seam`, which the new one brings again
        # With `new_only` and no line yet, a new subscription starts from when this one did, not from the start.
        self._start = f"{clock():.9f}" if new_only else None
        self.subscriptions = 0  # how many the manager was asked for; and the seam's repeats dropped (diagnostics)
        self.repeated = 0
        self._open(None, new_only)

    def __iter__(self) -> "TaskFollow":
        return self

    def __next__(self) -> bytes:
        wait = self._quiet_s
        while not self._closed.is_set():
            try:
                generation, line = self._lines.get(timeout=wait)
                quiet = False
            except queue.Empty:
                generation, line, quiet = self._generation, None, True
            if self._closed.is_set():
                break
            if generation != self._generation:
                continue  # a line a replaced subscription had read ahead
            if line is None:  # quiet for `wait`, or the manager ended the subscription
                if not quiet and self._closed.wait(wait):
                    break  # a subscription that ends at once is not asked again at once
                if self._ended():
                    break
                try:
                    self._resubscribe()
                except DeepracerError:
                    pass  # the manager did not answer now: asked again after the next quiet spell
                wait = min(wait * 2, self._max_quiet_s)
                continue
            message = self._new_message(line)
            if message is not None:
                return message
        self.close()
        raise StopIteration

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            stream, self._stream = self._stream, None
        if stream is not None:
            close_quietly(stream)
        try:
            self._lines.put_nowait((-1, None))  # wakes a reader waiting in __next__
        except queue.Full:
            pass  # a full queue wakes it anyway

    def _new_message(self, line: str) -> Optional[bytes]:
        stamp, details, message = parse_line(line)
        if self._marker not in details.split(","):
            return None
        if self._seam is not None:
            if stamp < self._seam:  # the fixed-width UTC form sorts as time does
                self.repeated += 1
                return None
            if stamp == self._seam and self._repeats[message] > 0:
                self._repeats[message] -= 1
                self.repeated += 1
                return None
            if stamp > self._seam:
                self._seam = None  # past the seam: every line is new
        if stamp != self._last_stamp:
            self._last_stamp = stamp
            self._at_last_stamp = Counter()
        self._at_last_stamp[message] += 1
        return f"{message}\n".encode()

    def _resubscribe(self) -> None:
        """A new subscription from the last line passed on (or the start), whose repeats of it are dropped."""
        if self._last_stamp is None:
            self._open(self._start, False)
            return
        self._open(since_of(self._last_stamp), False)
        # Set once the manager answered (the lines it brings are read on this thread, after this returns).
        self._seam, self._repeats = self._last_stamp, Counter(self._at_last_stamp)

    def _open(self, since: Optional[str], new_only: bool) -> None:
        stream = self._subscribe(since, new_only)
        with self._lock:
            if self._closed.is_set():
                close_quietly(stream)
                return
            old, self._stream = self._stream, stream
            self._generation += 1
            generation = self._generation
            self.subscriptions += 1
        if old is not None:
            close_quietly(old)
        threading.Thread(target=self._read, args=(stream, generation), name="task-log", daemon=True).start()

    def _read(self, stream: Any, generation: int) -> None:
        try:
            for line in split_lines(stream):
                if not self._put((generation, line)):
                    return
        except Exception:  # noqa: BLE001 - a broken or closed stream ends like a finished one
            pass
        self._put((generation, None))

    def _put(self, item: Tuple[int, Optional[str]]) -> bool:
        """Queues a line for `__next__`; False once this subscription was replaced or the follow closed."""
        while not self._closed.is_set() and item[0] == self._generation:
            try:
                self._lines.put(item, timeout=1.0)
                return True
            except queue.Full:
                continue
        return False
