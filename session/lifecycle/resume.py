"""The run state file, and how a training run is interrupted and later resumed without the user.

One small JSON file, `/var/lib/deepracer/run/state.json` (`$DR_RUN_STATE` names another), says what this host
trains and how its last run ended:

- `train` records it as **running**: run id, model prefix, the run.env and system.env it was started from, the
  start time and the time limit (`record_start`).
- A spot notice (session.lifecycle.spot) marks it **interrupted**: training is stopped with `stop_training` (logs go to
  `<prefix>/logs/`), and the newest checkpoint whose three files are all in storage is recorded (`interrupt`).
- The time limit (session.lifecycle.limits) marks it **time-limit**, `deepracer stop` **stopped**, and the idle check
  **ended** when the run's containers stopped by themselves. None of these is resumed.
- At boot, `deepracer resume` (deepracer-resume.service) continues an interrupted run as an increment: run.env
  gets the next free prefix, pretrained from the recorded checkpoint (session.run.increment), and training starts;
  the new run is recorded as running, its time limit re-armed with the training time that is left. When the
  recorded checkpoint is no longer in storage it says so and changes nothing (`resume`).

Several actors may end a run at once (a spot notice during the time limit's stop): each first *claims* the
running state under an flock (`RunStateStore.transition`), then does the slow part; the one that finds the
state already claimed leaves it alone. The file is replaced atomically; written by root (the watcher, the idle
timer), it is given to the owner of its folder, so the user's next `train` can replace it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional

from session.core.errors import DeepracerError
from session.core.paths import RUN_STATE_VARIABLE, default_run_state
from session.host.factory import Host, HostFactory, open_host
from session.run.training import stop_training, stopped_prefixes
from session.storage.layout import CHECKPOINT_SUFFIXES, CHECKPOINTS_JSON, COACH_CHECKPOINT

if TYPE_CHECKING:  # pragma: no cover
    from session.engine.containers import ContainerInfo
    from session.run.increment import Increment
    from session.storage.s3 import Storage

_VERSION = 1

RUNNING = "running"
INTERRUPTED = "interrupted"  # by a spot notice: resumed at the next boot
TIME_LIMIT = "time-limit"
STOPPED = "stopped"  # by the user
ENDED = "ended"  # its containers stopped without any of us
RESUMING = "resuming"
RESUME_FAILED = "resume-failed"


Say = Callable[[str], None]
AfterStop = Callable[["Host", list["ContainerInfo"]], object]  # e.g. an e-mail, once the stop is recorded and kept
Restore = Callable[["Host", str], object]  # the interrupted prefix back in storage (default: the host's keeper)


class ResumeError(DeepracerError):
    """The run state cannot be read or written; `str()` is one line for the user."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RunState:
    """One training run on this host, as recorded. Times are UTC.

    `trained_s` is the training time of the run's earlier parts (before spot interruptions), so a time limit
    counts training, not wall-clock time: the deadline is `started` plus what is left of `max_minutes`."""

    status: str
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
        return {"version": _VERSION, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunState":
        names = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in names}
        values["started"] = _parse_time(values["started"])
        values["stopped"] = _parse_time(values.get("stopped"))
        return cls(**values)


def _parse_time(text: Optional[str]) -> Optional[datetime]:
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class RunStateStore:
    """The state file: read, replaced atomically, changed under a lock."""

    def __init__(self, path: Optional[os.PathLike] = None) -> None:
        self.path = Path(path) if path is not None else default_run_state()

    def read(self) -> Optional[RunState]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise ResumeError(f"{self.path}: cannot read the run state ({error.strerror or error})") from None
        try:
            return RunState.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError) as error:
            raise ResumeError(f"{self.path}: expected the run state's JSON, got something else ({error}); "
                              "delete the file to start afresh") from None

    def write(self, state: RunState) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            temporary.write_text(json.dumps(state.to_dict(), indent=2) + "\n")
            self._give_to_folder_owner(temporary)
            os.replace(temporary, self.path)
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise ResumeError(f"{self.path}: cannot record the run state ({error.strerror or error}); "
                              f"the folder must exist and be writable by you") from None

    def check_writable(self) -> None:
        """Raises ResumeError unless `write` would work (checked before training starts)."""
        folder = self.path.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise ResumeError(f"{folder}: expected a folder you can write for the run state (spot resume and "
                              f"time limits need it); set {RUN_STATE_VARIABLE} to a file elsewhere")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        lock = self.path.with_name(f"{self.path.name}.lock")
        try:
            # Read-only is enough for flock, and works on a lock file root created.
            descriptor = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError as error:
            raise ResumeError(f"{lock}: cannot lock the run state ({error.strerror or error})") from None
        try:
            self._give_to_folder_owner(lock)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def transition(self, when: Callable[[RunState], bool],
                   change: Callable[[RunState], RunState]) -> Optional[RunState]:
        """Under the lock: if the recorded state satisfies `when`, record `change(state)` and return it."""
        with self.locked():
            state = self.read()
            if state is None or not when(state):
                return None
            new = change(state)
            self.write(new)
            return new

    def _give_to_folder_owner(self, path: Path) -> None:
        if os.geteuid() != 0:
            return
        owner = self.path.parent.stat()
        if (owner.st_uid, owner.st_gid) != (0, 0):
            os.chown(path, owner.st_uid, owner.st_gid)


# --- recording -----------------------------------------------------------------------------------------------


def record_start(store: RunStateStore, host: "Host", run_env: Path, system_env: Path, *,
                 max_minutes: Optional[int] = None, trained_s: float = 0.0, resumed_from: Optional[str] = None,
                 now: Optional[datetime] = None) -> RunState:
    """What `train` (and `resume`) record once the containers run; replaces whatever was recorded."""
    state = RunState(status=RUNNING, run_id=host.run.run_id, prefix=host.run.local_s3_model_prefix,
                     run_env=str(Path(run_env).resolve()), system_env=str(Path(system_env).resolve()),
                     started=now or _utcnow(), max_minutes=max_minutes, trained_s=trained_s,
                     resumed_from=resumed_from)
    with store.locked():
        store.write(state)
    return state


def mark_stopped(store: RunStateStore, run_id: int, *, reason: str = "stopped by `deepracer stop`",
                 status: str = STOPPED, token: Optional[str] = None,
                 now: Optional[datetime] = None) -> Optional[RunState]:
    """The run recorded as running (run `run_id`; the part `token` names, if given) ended without a graceful
    stop of ours: it is not resumed."""
    stamp = now or _utcnow()
    return store.transition(
        lambda state: state.status == RUNNING and state.run_id == run_id and token in (None, state.token),
        lambda state: replace(state, status=status, reason=reason, stopped=stamp))


# --- checkpoints -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredCheckpoint:
    name: str  # 12_Step-3456.ckpt
    number: int
    url: str  # where its files are


def complete_checkpoints(storage: "Storage", prefix: str) -> list[StoredCheckpoint]:
    """The checkpoints under `<prefix>/model/` whose index, meta and data files are all there, oldest first
    (one the trainer was writing when it stopped has some of them only)."""
    from session.run.progress import checkpoint_files

    folder = f"{prefix}/model/"
    names = {info.key[len(folder):] for info in storage.list_objects(folder)}
    found = []
    for checkpoint in checkpoint_files(names):
        stem = checkpoint.name[:-len(".ckpt")]
        if all(f"{stem}{suffix}" in names for suffix in CHECKPOINT_SUFFIXES) and checkpoint.number is not None:
            found.append(StoredCheckpoint(checkpoint.name, checkpoint.number, storage.url(f"{folder}{stem}.ckpt")))
    return found


def newest_checkpoint(storage: "Storage", prefix: str) -> Optional[StoredCheckpoint]:
    found = complete_checkpoints(storage, prefix)
    return found[-1] if found else None


# --- interrupting ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StopReport:
    """What a graceful stop did: the state as recorded after it, the containers stopped, the checkpoint."""

    state: RunState
    stopped: tuple["ContainerInfo", ...] = ()
    checkpoint: Optional[StoredCheckpoint] = None
    host: Optional["Host"] = field(default=None, repr=False, compare=False)
    error: Optional[str] = None


def interrupt(store: RunStateStore, *, status: str, reason: str, timeout: float,
              host_factory: Optional[HostFactory] = None, say: Say = print,
              now: Callable[[], datetime] = _utcnow, token: Optional[str] = None,
              after_stop: Optional[AfterStop] = None) -> Optional[StopReport]:
    """The graceful stop the spot watcher and the time limit share: claim the running state (as `status`), stop the
    run's containers with `stop_training` (logs to `<prefix>/logs/`), record the newest complete checkpoint in
    storage, have the host's keeper keep the stopped prefixes (Azure: to Blob, which may take longer than a notice
    lasts, so it comes after the record), then run `after_stop`, if any. Returns None when no run is recorded as
    running (or not the one `token` names)."""
    claimed = store.transition(
        lambda state: state.status == RUNNING and (token is None or state.token == token),
        lambda state: replace(state, status=status, reason=reason, stopped=now()))
    if claimed is None:
        say(f"no training is recorded as running in {store.path}: nothing to stop")
        return None
    say(f"{reason}: stopping {claimed.prefix} (run {claimed.run_id}) ...")
    host, stopped, checkpoint, error = None, [], None, None
    try:
        host = (host_factory or open_host)(Path(claimed.run_env), Path(claimed.system_env))
        stopped = stop_training(host, say=say, timeout=timeout, keep=False)
        checkpoint = newest_checkpoint(host.storage, claimed.prefix)
    except Exception as failure:  # noqa: BLE001 - the host may be going down: record what we know, go on
        error = f"{type(failure).__name__}: {failure}"
        say(f"the stop did not finish cleanly: {error}")
    if checkpoint is not None:
        say(f"newest checkpoint in storage: {checkpoint.url}")
    elif error is None:
        say(f"no complete checkpoint of {claimed.prefix} is in storage yet: there is nothing to resume from")
    final = store.transition(lambda state: state.token == claimed.token,
                             lambda state: replace(state, stopped=now(), message=error or "",
                                                   checkpoint=checkpoint.name if checkpoint else None))
    if host is not None and stopped:
        try:
            host.keeper.keep(stopped_prefixes(stopped, host.run), say=say)
        except Exception as failure:  # noqa: BLE001 - the stop itself is done and recorded
            say(f"keeping the models after the stop: {type(failure).__name__}: {failure}")
    if after_stop is not None and host is not None and stopped:
        try:
            after_stop(host, list(stopped))
        except Exception as failure:  # noqa: BLE001 - the stop itself is done and recorded
            say(f"after the stop: {type(failure).__name__}: {failure}")
    return StopReport(final or claimed, tuple(stopped), checkpoint, host, error)


# --- resuming ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResumeResult:
    """`resumed`: training runs again. Neither resumed nor `failed`: there was nothing to resume (or it could
    not be, e.g. its checkpoint is gone), and nothing changed."""

    resumed: bool
    message: str
    state: Optional[RunState] = None
    increment: Optional["Increment"] = None

    @property
    def failed(self) -> bool:
        return self.state is not None and self.state.status == RESUME_FAILED


def resume(store: Optional[RunStateStore] = None, *, force: bool = False,
           host_factory: Optional[HostFactory] = None, say: Say = print, now: Callable[[], datetime] = _utcnow,
           ready_timeout_s: Optional[float] = None, restore: Optional[Restore] = None,
           arm: Optional[Callable[[RunStateStore, RunState], str]] = None) -> ResumeResult:
    """Continue an interrupted run from its recorded checkpoint under the next prefix, and start training.

    Only an `interrupted` run is resumed, unless `force` (then any recorded run, e.g. one the host lost without
    a notice). Nothing changes when the checkpoint is not in storage, when run.env names another model by now,
    or when the run's time limit is used up. `restore` (default: the host's keeper brings the prefix back from
    where it kept it) runs before the checkpoint is looked for; `arm` re-arms
    the time limit (default: session.lifecycle.limits.arm)."""
    store = store or RunStateStore()
    state = store.read()
    if state is None:
        return _nothing(say, f"no run is recorded in {store.path}: nothing to resume")
    if state.status != INTERRUPTED and not force:
        why = {RUNNING: "the host went down without an interruption notice, or the run was stopped outside "
                        "`deepracer stop`",
               RESUMING: "a resume of it started and did not finish"}.get(state.status, state.reason or state.status)
        return _nothing(say, f"{state.prefix} is recorded as {state.status} ({why}): not resuming it by itself; "
                             "`deepracer resume --force` continues it from its newest checkpoint", state)
    claimed = store.transition(lambda current: current.token == state.token and current.status == state.status,
                               lambda current: replace(current, status=RESUMING))
    if claimed is None:
        return _nothing(say, f"the run state in {store.path} changed meanwhile: not resuming", state)

    try:
        return _resume_claimed(store, state, host_factory or open_host, say, now, ready_timeout_s, restore, arm)
    except Exception as failure:  # noqa: BLE001 - recorded, so that the next boot does not try again unasked
        message = f"resuming {state.prefix} failed: {failure}"
        store.transition(lambda current: current.token == state.token and current.status == RESUMING,
                         lambda current: replace(current, status=RESUME_FAILED, message=message))
        say(message)
        return ResumeResult(False, message, store.read())


def _resume_claimed(store: RunStateStore, state: RunState, host_factory: HostFactory, say: Say,
                    now: Callable[[], datetime], ready_timeout_s: Optional[float], restore: Optional[Restore],
                    arm: Optional[Callable[[RunStateStore, RunState], str]]) -> ResumeResult:
    def give_back(message: str) -> ResumeResult:
        store.transition(lambda current: current.token == state.token, lambda _: state)
        return _nothing(say, message, state)

    host = host_factory(Path(state.run_env), Path(state.system_env))
    storage = host.storage
    if host.run.local_s3_model_prefix != state.prefix:
        return give_back(f"{state.run_env} names {host.run.local_s3_model_prefix} by now, not the interrupted "
                         f"{state.prefix}: not resuming (`deepracer increment` continues a model by hand)")
    if restore is None:
        host.keeper.restore(state.prefix, say=say)  # Azure: a deallocated VM comes back with an empty MinIO
    else:
        restore(host, state.prefix)
    model_url = storage.url(f"{state.prefix}/model/")
    stored = {checkpoint.name: checkpoint for checkpoint in complete_checkpoints(storage, state.prefix)}
    if state.checkpoint:
        checkpoint = stored.get(state.checkpoint)
        if checkpoint is None:
            return give_back(f"the last checkpoint of {state.prefix}, {state.checkpoint}, is not in storage "
                             f"({model_url}): nothing resumed")
    else:
        checkpoint = max(stored.values(), key=lambda found: found.number, default=None)
        if checkpoint is None:
            return give_back(f"{state.prefix} has no complete checkpoint in storage ({model_url}): nothing resumed")
    trained = state.trained_until(now())
    if state.max_minutes is not None and trained >= state.max_minutes * 60:
        return give_back(f"{state.prefix} used up its time limit ({state.max_minutes} min of training): "
                         "not resuming")

    from session.run.increment import increment
    from session.run.training import start_training

    base = _checkpoint_as_last(storage, state.prefix, checkpoint, now())
    step = increment(Path(state.run_env), host.run, storage, checkpoint="last", pretrained_prefix=base)
    say(f"resuming {state.prefix} as {step.new_prefix}, from checkpoint {checkpoint.name} ({state.run_env} "
        f"rewritten" + (f"; backup {step.backup})" if step.backup else ")"))
    try:
        host = host_factory(Path(state.run_env), Path(state.system_env))
        options: dict[str, Any] = {} if ready_timeout_s is None else {"timeout_s": ready_timeout_s}
        start_training(host, say=say, **options)
    except Exception as failure:  # noqa: BLE001 - recorded, so that the next boot does not try again unasked
        message = (f"{step.new_prefix} did not start: {failure}; run.env names it already, "
                   "`deepracer train` tries again")
        store.transition(lambda current: current.token == state.token,
                         lambda current: replace(current, status=RESUME_FAILED, message=message))
        say(message)
        return ResumeResult(False, message, store.read(), step)
    new = record_start(store, host, Path(state.run_env), Path(state.system_env), max_minutes=state.max_minutes,
                       trained_s=trained, resumed_from=f"{state.prefix}@{checkpoint.name}", now=now())
    if new.max_minutes is not None:
        if arm is None:
            from session.lifecycle.limits import arm as default_arm

            arm = default_arm
        say(arm(store, new))
    message = f"training {step.new_prefix}, continued from {checkpoint.url}"
    say(message)
    return ResumeResult(True, message, new, step)


def _checkpoint_as_last(storage: "Storage", prefix: str, checkpoint: StoredCheckpoint, now: datetime) -> str:
    """A pretrained base whose `last` checkpoint is `checkpoint`; returns its prefix.

    The simulator starts only from a model's best or last checkpoint as deepracer_checkpoints.json names them
    (simapp 6.0.4 bundle/markov/training_worker.py), and the interrupted model's last may be older than its
    newest complete checkpoint (rollout worker 0 names it after evaluating). So the model's checkpoints are
    copied server-side into a prefix of resume's own, `<prefix>-checkpoint-<n>` (re-written on a retry), with
    a deepracer_checkpoints.json and .coach_checkpoint naming `checkpoint`; the interrupted model is only read.
    """
    base = f"{prefix}-checkpoint-{checkpoint.number}"
    storage.copy_prefix(f"{prefix}/model", storage.bucket, f"{base}/model", overwrite=True)
    entry = {"name": checkpoint.name, "time_stamp": now.timestamp(), "avg_eval_metric": 0.0}
    storage.put_text(f"{base}/model/{COACH_CHECKPOINT}", checkpoint.name)
    storage.put_json(f"{base}/model/{CHECKPOINTS_JSON}", {"best_checkpoint": entry, "last_checkpoint": entry})
    return base


def _nothing(say: Say, message: str, state: Optional[RunState] = None) -> ResumeResult:
    say(message)
    return ResumeResult(False, message, state)
