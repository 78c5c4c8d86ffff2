"""How an interrupted training run is resumed at boot without the user.

The run state (session.run.state) says what this host trained and how its last run ended. At boot, `deepracer
resume` (deepracer-resume.service) continues an `interrupted` run as an increment: run.env gets the next free
prefix, pretrained from the newest complete checkpoint recorded (session.run.increment), and training starts;
the new part is recorded as running, its time limit re-armed with the training time that is left. When the
recorded checkpoint is no longer in storage it says so and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional

from session.core import console
from session.core.console import Say
from session.host.factory import Host, HostFactory, open_host
from session.lifecycle.limits import arm as arm_time_limit
from session.run.checkpoints import StoredCheckpoint, complete_checkpoints
from session.run.increment import Increment, increment
from session.run.state import Event, RunState, RunStateStore, Status, record_start, utcnow
from session.run.training import start_training
from session.storage.layout import CHECKPOINTS_JSON, COACH_CHECKPOINT
from session.storage.s3 import Storage

Restore = Callable[[Host, str], object]  # the interrupted prefix back in storage (default: the host's keeper)


@dataclass(frozen=True)
class ResumeResult:
    """`resumed`: training runs again. Neither resumed nor `failed`: there was nothing to resume (or it could
    not be, e.g. its checkpoint is gone), and nothing changed."""

    resumed: bool
    message: str
    state: Optional[RunState] = None
    increment: Optional[Increment] = None

    @property
    def failed(self) -> bool:
        return self.state is not None and self.state.status is Status.RESUME_FAILED


def resume(store: Optional[RunStateStore] = None, *, force: bool = False,
           host_factory: Optional[HostFactory] = None, say: Say = console.say, now: Callable[[], datetime] = utcnow,
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
    if state.status is not Status.INTERRUPTED and not force:
        why = {Status.RUNNING: "the host went down without an interruption notice, or the run was stopped "
                               "outside `deepracer stop`",
               Status.RESUMING: "a resume of it started and did not finish"}.get(state.status,
                                                                                 state.reason or state.status)
        return _nothing(say, f"{state.prefix} is recorded as {state.status} ({why}): not resuming it by itself; "
                             "`deepracer resume --force` continues it from its newest checkpoint", state)
    claimed = store.apply(Event.FORCE_RESUME if force else Event.RESUME,
                          when=lambda current: current.token == state.token and current.status == state.status)
    if claimed is None:
        return _nothing(say, f"the run state in {store.path} changed meanwhile: not resuming", state)

    try:
        return _resume_claimed(store, state, host_factory or open_host, say, now, ready_timeout_s, restore, arm)
    except Exception as failure:  # noqa: BLE001 - recorded, so that the next boot does not try again unasked
        message = f"resuming {state.prefix} failed: {failure}"
        store.apply(Event.RESUME_FAILED, when=lambda current: current.token == state.token, message=message)
        say(message)
        return ResumeResult(False, message, store.read())


def _resume_claimed(store: RunStateStore, state: RunState, host_factory: HostFactory, say: Say,
                    now: Callable[[], datetime], ready_timeout_s: Optional[float], restore: Optional[Restore],
                    arm: Optional[Callable[[RunStateStore, RunState], str]]) -> ResumeResult:
    def give_back(message: str) -> ResumeResult:
        store.apply(Event.GIVE_BACK, when=lambda current: current.token == state.token)
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
        store.apply(Event.RESUME_FAILED, when=lambda current: current.token == state.token, message=message)
        say(message)
        return ResumeResult(False, message, store.read(), step)
    new = record_start(store, host, Path(state.run_env), Path(state.system_env), max_minutes=state.max_minutes,
                       trained_s=trained, resumed_from=f"{state.prefix}@{checkpoint.name}", now=now())
    if new.max_minutes is not None:
        say((arm or arm_time_limit)(store, new))
    message = f"training {step.new_prefix}, continued from {checkpoint.url}"
    say(message)
    return ResumeResult(True, message, new, step)


def _checkpoint_as_last(storage: Storage, prefix: str, checkpoint: StoredCheckpoint, now: datetime) -> str:
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
