"""The run state: what this host trains and how its last run ended, as one small JSON file and one table.

`/var/lib/deepracer/run/state.json` (`$DR_RUN_STATE` names another) records the host's current training run.
Its status changes only through `advance`, by the events of TRANSITIONS:

    (no record) / any --start-------> starting         `train` (or a resume) recorded the run before its first
                                                       container starts (after the checks and the uploads)
    starting     --started---------> running           its trainer and workers run (past start-up)
    running      --stop------------> stopped           `deepracer stop`: not resumed
    starting     --stop------------> stopped           `deepracer stop` during another command's start-up
    running      --notice----------> interrupted       a spot notice, or a shutdown without one (the stop hook):
    starting     --notice----------> interrupted         resumed at the next boot. Every status in which
    resuming     --notice----------> interrupted         containers may run (or are about to) takes it
    running      --time-up---------> time-limit        the time limit
    running      --end-------------> ended             its containers stopped without any of us (the idle check)
    running      --node-lost-------> node-lost         a swarm node with its workers was down past the grace
    starting     --node-lost-------> node-lost           (session.lifecycle.swarm_watch): stopped, not resumed
    starting     --end-------------> ended             `train`'s start failed: nothing runs
    interrupted  --resume----------> resuming          `deepracer resume` (at boot) claims it
    any          --force-resume----> resuming          `deepracer resume --force`
    resuming     --start-----------> starting          the resume records its new part before it starts it
    resuming     --resume-failed---> resume-failed     recorded, so that the next boot does not try again unasked
    starting     --resume-failed---> resume-failed     a resumed part whose start failed (same)
    resuming     --give-back-------> (the status it was claimed from): resume found nothing to do and changed nothing
    any          --note------------> (the same status): a field recorded (the checkpoint, a message, power-off)

A new start replaces the record; the record it replaces is appended to the history beside it
(`state.history.jsonl`: one JSON line per earlier part, its `stopped` filled in with the new part's start when it
had none), so that the training time of a month can be counted (the dashboard's spend estimate).

Several actors may end a run at once (a spot notice during the time limit's stop): each applies its event
under an flock (`RunStateStore.apply`); the one that finds the status no longer accepts its event leaves the
record alone. The file is replaced atomically; written by root (the watcher, the idle timer), it is given to the
owner of its folder, so the user's next `train` can replace it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Optional

from session.core.errors import DeepracerError
from session.core.paths import RUN_STATE_VARIABLE, default_run_state

if TYPE_CHECKING:  # pragma: no cover - start-up: `status` reads the run state without the storage stack
    from session.host.factory import Host

_VERSION = 1


class Status(str, Enum):
    """A recorded run's status; the values are what the state file holds."""

    STARTING = "starting"  # containers are being started (recorded before the first one)
    RUNNING = "running"
    INTERRUPTED = "interrupted"  # by a spot notice: resumed at the next boot
    TIME_LIMIT = "time-limit"
    STOPPED = "stopped"  # by the user
    ENDED = "ended"  # its containers stopped without any of us
    RESUMING = "resuming"
    RESUME_FAILED = "resume-failed"
    NODE_LOST = "node-lost"  # a swarm node running its workers was lost: stopped (the trainer would wait forever)

    def __str__(self) -> str:
        return self.value


class Event(str, Enum):
    START = "start"
    STARTED = "started"
    STOP = "stop"
    NOTICE = "notice"
    TIME_UP = "time-up"
    END = "end"
    RESUME = "resume"
    FORCE_RESUME = "force-resume"
    RESUME_FAILED = "resume-failed"
    GIVE_BACK = "give-back"
    NOTE = "note"
    NODE_LOST = "node-lost"


_ANY = tuple(Status)
# The statuses in which a run's containers may run or are about to: a notice (or a shutdown) interrupts them.
CONTAINERS_MAY_RUN = (Status.STARTING, Status.RUNNING, Status.RESUMING)
# (status, event) -> the status after it. GIVE_BACK leads back to the status a resume claimed the run from.
TRANSITIONS: dict[tuple[Optional[Status], Event], Optional[Status]] = {
    **{(status, Event.START): Status.STARTING for status in (None, *_ANY)},
    (Status.STARTING, Event.STARTED): Status.RUNNING,
    (Status.RUNNING, Event.STOP): Status.STOPPED,
    (Status.STARTING, Event.STOP): Status.STOPPED,
    **{(status, Event.NOTICE): Status.INTERRUPTED for status in CONTAINERS_MAY_RUN},
    (Status.RUNNING, Event.TIME_UP): Status.TIME_LIMIT,
    (Status.RUNNING, Event.END): Status.ENDED,
    (Status.STARTING, Event.END): Status.ENDED,
    (Status.RUNNING, Event.NODE_LOST): Status.NODE_LOST,
    (Status.STARTING, Event.NODE_LOST): Status.NODE_LOST,
    (Status.INTERRUPTED, Event.RESUME): Status.RESUMING,
    **{(status, Event.FORCE_RESUME): Status.RESUMING for status in _ANY},
    (Status.RESUMING, Event.RESUME_FAILED): Status.RESUME_FAILED,
    (Status.STARTING, Event.RESUME_FAILED): Status.RESUME_FAILED,
    (Status.RESUMING, Event.GIVE_BACK): None,
    **{(status, Event.NOTE): status for status in _ANY},
}


class RunStateError(DeepracerError):
    """The run state cannot be read or written; `str()` is one line for the user."""


class TransitionRefused(RunStateError):
    """An event the recorded status does not accept (TRANSITIONS)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RunState:
    """One training run on this host, as recorded. Times are UTC.

    `trained_s` is the training time of the run's earlier parts (before spot interruptions), so a time limit
    counts training, not wall-clock time: the deadline is `started` plus what is left of `max_minutes`."""

    status: Status
    run_id: int
    prefix: str
    run_env: str
    system_env: str
    started: datetime
    max_minutes: Optional[int] = None
    trained_s: float = 0.0
    resumed_from: Optional[str] = None  # "<old prefix>@<checkpoint>" when this part continues an interrupted one
    reason: str = ""  # why it stopped, in words
    stopped: Optional[datetime] = None
    checkpoint: Optional[str] = None  # the newest complete checkpoint in storage when it stopped
    power_off: bool = False  # the time limit wants the host off and left that to the (root) idle timer
    message: str = ""  # what went wrong while stopping or resuming
    claimed_from: Optional[Status] = None  # while resuming: the status the resume claimed the run from

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        if self.claimed_from is not None:
            object.__setattr__(self, "claimed_from", Status(self.claimed_from))

    @property
    def token(self) -> str:
        """Tells this part of the run from any other: its prefix and start time."""
        return f"{self.prefix}@{self.started.isoformat()}"

    @property
    def deadline(self) -> Optional[datetime]:
        if self.max_minutes is None:
            return None
        return self.started + timedelta(seconds=self.max_minutes * 60 - self.trained_s)

    def trained_until(self, now: datetime) -> float:
        """Seconds of training in all parts, counting this one until it stopped (or `now`)."""
        return self.trained_s + max(0.0, ((self.stopped or now) - self.started).total_seconds())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("started", "stopped"):
            data[name] = getattr(self, name).isoformat() if getattr(self, name) else None
        data["status"] = self.status.value
        data["claimed_from"] = self.claimed_from.value if self.claimed_from else None
        return {"version": _VERSION, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunState":
        names = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in names}
        values["started"] = _parse_time(values["started"])
        values["stopped"] = _parse_time(values.get("stopped"))
        return cls(**values)


def training_between(parts: Iterable[RunState], start: datetime, end: datetime) -> float:
    """Seconds the parts trained between `start` and `end`: each part from its own start to its stop (or `end`),
    not counting the earlier parts its `trained_s` carries (they are parts of their own)."""
    total = 0.0
    for part in parts:
        begins, ends = max(part.started, start), min(part.stopped or end, end)
        total += max(0.0, (ends - begins).total_seconds())
    return total


def accepts(status: Optional[Status], event: Event) -> bool:
    return (status, event) in TRANSITIONS


def advance(state: Optional[RunState], event: Event, **changes: Any) -> RunState:
    """The one way a run's status changes: `state` after `event`, with `changes` to its other fields. A START
    needs the new run's fields in `changes` (and replaces whatever was recorded). Raises TransitionRefused for an
    event the status does not accept."""
    status = state.status if state is not None else None
    if not accepts(status, event):
        raise TransitionRefused(f"a run recorded as {status or 'nothing'} cannot take the event {event.value}")
    if "status" in changes or "claimed_from" in changes:
        raise ValueError("the status is the table's to set")
    if event is Event.START:
        return RunState(status=Status.STARTING, **changes)
    assert state is not None  # only START is accepted without a record
    if event in (Event.RESUME, Event.FORCE_RESUME):
        target, claimed_from = Status.RESUMING, state.status
    elif event is Event.GIVE_BACK:
        target, claimed_from = state.claimed_from or Status.INTERRUPTED, None
    else:
        target = TRANSITIONS[(state.status, event)] or state.status
        claimed_from = state.claimed_from if target is Status.RESUMING else None
    return replace(state, status=target, claimed_from=claimed_from, **changes)


def _parse_time(text: Optional[str]) -> Optional[datetime]:
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class RunStateStore:
    """The state file: read, replaced atomically, changed under a lock, only through `advance`."""

    def __init__(self, path: Optional[os.PathLike] = None) -> None:
        self.path = Path(path) if path is not None else default_run_state()

    def read(self) -> Optional[RunState]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise RunStateError(f"{self.path}: cannot read the run state ({error.strerror or error})") from None
        try:
            return RunState.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError) as error:
            raise RunStateError(f"{self.path}: expected the run state's JSON, got something else ({error}); "
                                "delete the file to start afresh") from None

    def apply(self, event: Event, *, when: Callable[[RunState], bool] = lambda state: True,
              **changes: Any) -> Optional[RunState]:
        """Under the lock: if a run is recorded, its status accepts `event` and `when` holds for it, record it
        advanced by `event` with `changes`, and return that; else change nothing and return None."""
        with self.locked():
            state = self.read()
            if state is None or not accepts(state.status, event) or not when(state):
                return None
            new = advance(state, event, **changes)
            self.write(new)
            return new

    def start(self, *, running: bool = False, when: Callable[[Optional[RunState]], bool] = lambda state: True,
              **fields_of_the_run: Any) -> Optional[RunState]:
        """Record a new run as starting (Event.START; with `running`, then Event.STARTED too), replacing whatever
        was recorded; if `when` holds for that record (None when none is), else change nothing and return None."""
        with self.locked():
            current = self.read_or_none()
            if not when(current):
                return None
            new = advance(current, Event.START, **fields_of_the_run)
            if running:
                new = advance(new, Event.STARTED)
            if current is not None:
                self._remember(current, new.started)
            self.write(new)
            return new

    @property
    def history_path(self) -> Path:
        return self.path.with_name(f"{self.path.stem}.history.jsonl")

    def history(self) -> list[RunState]:
        """The earlier parts `start` replaced, oldest first; unreadable lines are skipped (a count, not a record
        anything depends on)."""
        try:
            lines = self.history_path.read_text().splitlines()
        except OSError:
            return []
        parts = []
        for line in lines:
            try:
                parts.append(RunState.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue
        return parts

    def _remember(self, replaced: RunState, at: datetime) -> None:
        part = replaced if replaced.stopped is not None else replace(replaced, stopped=max(at, replaced.started))
        fresh = not self.history_path.exists()
        try:
            with self.history_path.open("a") as history:
                history.write(json.dumps(part.to_dict()) + "\n")
            if fresh:
                self._give_to_folder_owner(self.history_path)
        except OSError:
            pass  # the history only feeds an estimate: a start never fails for it

    def read_or_none(self) -> Optional[RunState]:
        """The record, or None when it is missing or unreadable (a new start replaces it either way)."""
        try:
            return self.read()
        except RunStateError:
            return None

    def write(self, state: RunState) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            temporary.write_text(json.dumps(state.to_dict(), indent=2) + "\n")
            self._give_to_folder_owner(temporary)
            os.replace(temporary, self.path)
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise RunStateError(f"{self.path}: cannot record the run state ({error.strerror or error}); "
                                f"the folder must exist and be writable by you") from None

    def check_writable(self) -> None:
        """Raises RunStateError unless `write` would work (checked before training starts)."""
        folder = self.path.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise RunStateError(f"{folder}: expected a folder you can write for the run state (spot resume and "
                                f"time limits need it); set {RUN_STATE_VARIABLE} to a file elsewhere")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        lock = self.path.with_name(f"{self.path.name}.lock")
        try:
            # Read-only is enough for flock, and works on a lock file root created.
            descriptor = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError as error:
            raise RunStateError(f"{lock}: cannot lock the run state ({error.strerror or error})") from None
        try:
            self._give_to_folder_owner(lock)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def _give_to_folder_owner(self, path: Path) -> None:
        if os.geteuid() != 0:
            return
        owner = self.path.parent.stat()
        if (owner.st_uid, owner.st_gid) != (0, 0):
            os.chown(path, owner.st_uid, owner.st_gid)


def record_starting(store: RunStateStore, host: Host, run_env: Path, system_env: Path, *,
                    max_minutes: Optional[int] = None, trained_s: float = 0.0, resumed_from: Optional[str] = None,
                    now: Optional[datetime] = None, running: bool = False,
                    when: Callable[[Optional[RunState]], bool] = lambda state: True) -> Optional[RunState]:
    """What `train` (and `resume`) record before the first container starts, so that a notice or a shutdown
    during the start-up finds the run (Event.START); replaces whatever was recorded, if `when` holds for it."""
    return store.start(run_id=host.run.run_id, prefix=host.run.local_s3_model_prefix,
                       run_env=str(Path(run_env).resolve()), system_env=str(Path(system_env).resolve()),
                       started=now or utcnow(), max_minutes=max_minutes, trained_s=trained_s, resumed_from=resumed_from,
                       running=running, when=when)


def record_start(store: RunStateStore, host: Host, run_env: Path, system_env: Path, *,
                 max_minutes: Optional[int] = None, trained_s: float = 0.0, resumed_from: Optional[str] = None,
                 now: Optional[datetime] = None) -> RunState:
    """A run whose containers run already, recorded as running at once (Event.START, then Event.STARTED)."""
    state = record_starting(store, host, run_env, system_env, max_minutes=max_minutes, trained_s=trained_s,
                            resumed_from=resumed_from, now=now, running=True)
    assert state is not None  # no `when`: always recorded
    return state


def record_running(store: RunStateStore, token: str) -> Optional[RunState]:
    """The part `token` names is past its start-up (Event.STARTED); None when the record is no longer it, or no
    longer starting (a notice, a shutdown or `deepracer stop` came first)."""
    return store.apply(Event.STARTED, when=lambda state: state.token == token)


def end_start(store: RunStateStore, token: str, message: str, *, event: Event = Event.END,
              now: Optional[datetime] = None) -> Optional[RunState]:
    """The part `token` names did not start (Event.END; a resume's part: Event.RESUME_FAILED). Changes nothing
    when a notice, a shutdown or `deepracer stop` came first: their record stands."""
    return store.apply(event, when=lambda state: state.token == token and state.status is Status.STARTING,
                       message=message, reason=message, stopped=now or utcnow())


def mark_stopped(store: RunStateStore, run_id: int, *, reason: str = "stopped by `deepracer stop`",
                 event: Event = Event.STOP, token: Optional[str] = None,
                 now: Optional[datetime] = None) -> Optional[RunState]:
    """The run recorded as running (run `run_id`; the part `token` names, if given) ended without a graceful
    stop of ours (`deepracer stop`, or Event.END: its containers are gone): it is not resumed."""
    return store.apply(event, when=lambda state: state.run_id == run_id and token in (None, state.token),
                       reason=reason, stopped=now or utcnow())
