"""session.engine.task_log: a remote swarm task's follow that subscribes anew when its subscription goes quiet.

The manager's streams here are scripted: what a stuck subscription looks like (lines, then nothing, for ever) comes
from a real one (docs/testing.md); tests/session/engine/test_swarm.py follows a real task through a real manager."""

from __future__ import annotations

import queue
import threading
import time
from datetime import datetime, timezone
from typing import List, Optional, Sequence, Tuple

import pytest

from session.core.errors import DeepracerError
from session.engine.task_log import TaskFollow, TaskLog, parse_line, since_of

MARK = "com.docker.swarm.task.id=t1"
# Quiet enough to be told from a reader thread that has not run yet on a busy machine (whose lines would then come
# after a new subscription was asked for, and the scripts would not match), short enough to keep the tests quick.
QUIET_S = 0.2
DETAILS = f"com.docker.swarm.node.id=n2,com.docker.swarm.service.id=s1,{MARK}"


def line(second: int, message: str, nanos: int = 0, details: str = DETAILS) -> str:
    """A line of the manager's stream read with timestamps and details, as the engine writes it."""
    return f"2026-12-07T03:50:{second:02d}.{nanos:09d}Z {details} {message}"


def unix(second: int, nanos: int = 0) -> str:
    whole = int(datetime(2026, 12, 7, 3, 50, second, tzinfo=timezone.utc).timestamp())
    return f"{whole}.{nanos:09d}"


class Stream:
    """One subscription's stream: its scripted lines, then nothing until closed (a stuck subscription) or, with
    `ends`, the end at once (a manager that ends it). `close()` ends a blocked read, as closing the response does."""

    def __init__(self, lines: Sequence[str], ends: bool = False) -> None:
        self.chunks: "queue.Queue[Optional[bytes]]" = queue.Queue()
        for text in lines:  # cut mid-line too: the reader must join chunks
            data = f"{text}\n".encode()
            self.chunks.put(data[:7])
            self.chunks.put(data[7:])
        if ends:
            self.chunks.put(None)
        self.closed = threading.Event()

    def __iter__(self):
        while (chunk := self.chunks.get()) is not None:
            yield chunk

    def close(self) -> None:
        self.closed.set()
        self.chunks.put(None)


class Manager:
    """Hands out the scripted subscriptions in order (an empty, stuck one once the script is spent) and records
    what each was asked for: (since, new_only) and when."""

    def __init__(self, *scripts: Sequence[str], ends: bool = False) -> None:
        self.scripts = list(scripts)
        self.ends = ends
        self.asked: List[Tuple[Optional[str], bool]] = []
        self.at: List[float] = []
        self.streams: List[Stream] = []

    def __call__(self, since: Optional[str], new_only: bool) -> Stream:
        self.asked.append((since, new_only))
        self.at.append(time.monotonic())
        stream = Stream(self.scripts.pop(0) if self.scripts else (), ends=self.ends)
        self.streams.append(stream)
        return stream


def read(follow: TaskFollow, count: int) -> List[str]:
    return [next(follow).decode() for _ in range(count)]


def test_a_quiet_subscription_is_replaced_from_the_last_line_s_instant_and_its_repeats_are_dropped():
    manager = Manager(
        [line(1, "a"), line(2, "b"), line(2, "c")],  # b and c share an instant: then it goes quiet, stuck
        # the new subscription, from that instant: b and c again (Docker's since includes it), then what is new:
        # d at that same instant, which was not passed on yet, and e
        [line(2, "b"), line(2, "c"), line(2, "d"), line(3, "e")])
    follow = TaskFollow(manager, lambda: False, MARK, quiet_s=QUIET_S)
    assert read(follow, 3) == ["a\n", "b\n", "c\n"]
    assert read(follow, 2) == ["d\n", "e\n"]
    assert manager.asked == [(None, False), (unix(2), False)]
    assert manager.streams[0].closed.is_set() and not manager.streams[1].closed.is_set()
    assert (follow.subscriptions, follow.repeated) == (2, 2)
    follow.close()
    assert manager.streams[1].closed.is_set()


def test_older_lines_than_the_seam_are_dropped_and_a_message_repeated_after_it_is_not():
    manager = Manager(
        [line(1, "a"), line(2, "tick")],
        # a manager that gave more than since asks for (an older line), and the same text written again later
        [line(1, "a"), line(2, "tick"), line(4, "tick"), line(4, "tick")])
    follow = TaskFollow(manager, lambda: False, MARK, quiet_s=QUIET_S)
    assert read(follow, 2) == ["a\n", "tick\n"]
    assert read(follow, 2) == ["tick\n", "tick\n"]  # both of the later instant's: they are no repeats
    assert follow.repeated == 2


def test_lines_of_other_tasks_and_the_manager_s_own_messages_are_left_out():
    other = DETAILS.replace(MARK, "com.docker.swarm.task.id=t2")
    manager = Manager([line(1, "theirs", details=other), "Error grabbing logs: node n2 is not available",
                       line(1, "ours", nanos=5)])
    follow = TaskFollow(manager, lambda: False, MARK, quiet_s=5)
    assert read(follow, 1) == ["ours\n"]
    follow.close()


def test_a_task_that_stays_quiet_is_asked_ever_less_often():
    manager = Manager([line(1, "a")])
    asked_ended = []

    def ended() -> bool:
        asked_ended.append(time.monotonic())
        return len(asked_ended) > 4

    follow = TaskFollow(manager, ended, MARK, quiet_s=QUIET_S, max_quiet_s=4 * QUIET_S)
    assert read(follow, 1) == ["a\n"]
    with pytest.raises(StopIteration):
        next(follow)  # quiet: asks anew after 1, 2, 4 and 4 times QUIET_S; then the task has ended
    assert [since for since, _ in manager.asked] == [None] + [unix(1)] * 4
    gaps = [later - earlier for earlier, later in zip(manager.at[1:], manager.at[2:])]
    waits = (2 * QUIET_S, 4 * QUIET_S, 4 * QUIET_S)  # a timeout never fires early: lower bounds only
    assert [round(gap, 2) >= wait for gap, wait in zip(gaps, waits)] == [True, True, True], gaps
    assert all(stream.closed.is_set() for stream in manager.streams)  # the last one too, as it ended


def test_the_follow_ends_once_its_task_ended_and_its_log_is_quiet_and_asks_nothing_while_lines_flow():
    manager = Manager([line(1, "a"), line(1, "b", nanos=1), line(1, "c", nanos=2)])
    asked = []
    follow = TaskFollow(manager, lambda: asked.append(1) or True, MARK, quiet_s=QUIET_S)
    assert read(follow, 3) == ["a\n", "b\n", "c\n"]
    assert asked == []
    assert list(follow) == []
    assert asked == [1] and manager.asked == [(None, False)] and manager.streams[0].closed.is_set()


def test_a_task_whose_state_is_unknown_is_taken_to_run():
    manager = Manager([], [line(1, "late")])
    follow = TaskFollow(manager, lambda: None, MARK, quiet_s=QUIET_S)
    assert read(follow, 1) == ["late\n"]  # the first subscription brought nothing; the second one did
    follow.close()


def test_a_subscription_the_manager_ends_at_once_is_not_asked_again_at_once():
    manager = Manager(ends=True)
    asked = []
    follow = TaskFollow(manager, lambda: asked.append(1) or len(asked) > 2, MARK, quiet_s=0.05, max_quiet_s=0.1)
    assert list(follow) == []
    gaps = [later - earlier for earlier, later in zip(manager.at, manager.at[1:])]
    assert len(manager.asked) == 3 and all(round(gap, 2) >= 0.05 for gap in gaps), gaps


def test_a_new_subscription_the_manager_refuses_is_asked_for_again_after_the_next_quiet_spell():
    manager = Manager([line(1, "a")], [line(1, "a"), line(2, "b")])
    refused = []

    def subscribe(since: Optional[str], new_only: bool) -> Stream:
        if len(manager.asked) == 1 and not refused:
            refused.append(since)
            raise DeepracerError("cannot read the logs of task t1: the manager is busy")
        return manager(since, new_only)

    follow = TaskFollow(subscribe, lambda: False, MARK, quiet_s=QUIET_S)
    assert read(follow, 2) == ["a\n", "b\n"]
    assert refused == [unix(1)] and manager.asked == [(None, False), (unix(1), False)]
    follow.close()


def test_new_only_starts_at_the_end_and_a_new_subscription_before_any_line_from_when_the_follow_began():
    manager = Manager([], [line(9, "new")])
    follow = TaskFollow(manager, lambda: False, MARK, new_only=True, quiet_s=QUIET_S, clock=lambda: 1796615400.25)
    assert read(follow, 1) == ["new\n"]
    assert manager.asked == [(None, True), ("1796615400.250000000", False)]
    follow.close()


def test_close_from_another_thread_ends_a_read_blocked_on_a_quiet_log():
    manager = Manager([line(1, "a")])
    follow = TaskFollow(manager, lambda: False, MARK, quiet_s=30)
    got: "queue.Queue[str]" = queue.Queue()

    def reader() -> None:
        for text in follow:
            got.put(text.decode())
        got.put("ended")

    threading.Thread(target=reader, daemon=True).start()
    assert got.get(timeout=5) == "a\n"
    follow.close()  # the reader waits for up to 30 s of quiet: closing ends that wait at once
    assert got.get(timeout=5) == "ended"
    assert manager.streams[0].closed.is_set() and manager.asked == [(None, False)]


def test_since_of_gives_unix_seconds_and_nanoseconds_from_the_engine_s_time():
    assert since_of("2026-12-07T03:50:05.123456789Z") == "1796615405.123456789"
    assert since_of("2026-12-07T03:50:05.1Z") == "1796615405.100000000"
    assert since_of("1970-01-01T00:00:00.000000000Z") == "0.000000000"
    assert parse_line(line(5, "a b  c")) == ("2026-12-07T03:50:05.000000000Z", DETAILS, "a b  c")


def test_a_one_off_read_keeps_its_task_s_lines_only():
    other = DETAILS.replace(MARK, "com.docker.swarm.task.id=t2")
    stream = Stream([f"{DETAILS} mine", f"{other} theirs", "Error grabbing logs: node n2 is not available",
                     f"{DETAILS} mine  too"], ends=True)
    assert [text.decode() for text in TaskLog(stream, MARK)] == ["mine\n", "mine  too\n"]
