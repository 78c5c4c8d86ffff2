"""How an interrupted training run is resumed at boot without the user.

The run state (session.run.state) says what this host trained and how its last run ended. At boot, `deepracer
resume` (deepracer-resume.service) continues an `interrupted` run as an increment: run.env gets the next free
prefix, pretrained from the newest complete checkpoint recorded (session.run.increment), and training starts;
the new part is recorded as starting before its first container (a notice or a shutdown during its start-up
interrupts it, and the next boot resumes it again) and as running once it runs, its time limit re-armed with the
training time that is left. It continues from the newest complete checkpoint really in storage: when the
recorded one is not there (a notice ended before its copy to Blob did), from an older one, saying which and
about how much training was lost; a part that stopped before its first checkpoint continues from where it was
resumed from.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional

from session.core import console
from session.core.console import Say
from session.host.factory import Host, HostFactory, open_host
from session.lifecycle.limits import arm as arm_time_limit
from session.run.checkpoints import StoredCheckpoint, complete_checkpoints
from session.run.increment import Increment, increment
from session.run.state import Event, RunState, RunStateStore, Status, utcnow
from session.run.training import start_recorded
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
               Status.STARTING: "the host went down during its start-up without an interruption notice",
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

    run_env, system_env = Path(state.run_env), Path(state.system_env)
    host = host_factory(run_env, system_env)
    storage = host.storage
    # An earlier resume of this run rewrote run.env and was cut short before it recorded its part (a notice, the
    # host going down): run.env pretrained from this run's checkpoint is that resume's, and this one goes on.
    rewritten_by_us = host.run.local_s3_pretrained and \
        host.run.local_s3_pretrained_prefix.startswith(f"{state.prefix}-checkpoint-")
    if host.run.local_s3_model_prefix != state.prefix and not rewritten_by_us:
        return give_back(f"{state.run_env} names {host.run.local_s3_model_prefix} by now, not the interrupted "
                         f"{state.prefix}: not resuming (`deepracer increment` continues a model by hand)")

    def bring_back(prefix: str) -> None:
        if restore is None:
            host.keeper.restore(prefix, say=say)  # Azure: a deallocated VM comes back with an empty MinIO
        else:
            restore(host, prefix)

    source, checkpoint, why = resume_point(storage, state, bring_back, now())
    if checkpoint is None:
        return give_back(why)
    if why:
        say(why)
    trained = state.trained_until(now())
    if state.max_minutes is not None and trained >= state.max_minutes * 60:
        return give_back(f"{state.prefix} used up its time limit ({state.max_minutes} min of training): "
                         "not resuming")

    base = _checkpoint_as_last(storage, source, checkpoint, now())
    # From the model the checkpoint is in: its next free serial (past prefixes an earlier attempt filled).
    step = increment(run_env, replace(host.run, local_s3_model_prefix=source), storage, checkpoint="last",
                     pretrained_prefix=base)
    say(f"resuming {state.prefix} as {step.new_prefix}, from {source}'s checkpoint {checkpoint.name} "
        f"({state.run_env} rewritten" + (f"; backup {step.backup})" if step.backup else ")"))
    resumed_from = f"{source}@{checkpoint.name}"

    def still_claimed(current: Optional[RunState]) -> bool:  # a notice during the resume takes precedence
        return current is not None and current.token == state.token and current.status is Status.RESUMING

    try:
        host = host_factory(run_env, system_env)
        options: dict[str, Any] = {} if ready_timeout_s is None else {"timeout_s": ready_timeout_s}
        # Recorded as starting (the new part) before its first container: a notice during the start-up finds it.
        _, new = start_recorded(host, store, run_env, system_env, max_minutes=state.max_minutes, trained_s=trained,
                                resumed_from=resumed_from, say=say, when=still_claimed, failed=Event.RESUME_FAILED,
                                **options)
    except Exception as failure:  # noqa: BLE001 - recorded, so that the next boot does not try again unasked
        return _start_failed(store, state, step, source, checkpoint, failure, say)
    assert new is not None  # start_recorded with `when` records or raises
    if new.max_minutes is not None:
        say((arm or arm_time_limit)(store, new))
    message = f"training {step.new_prefix}, continued from {checkpoint.url}"
    say(message)
    return ResumeResult(True, message, new, step)


def resume_point(storage: Storage, state: RunState, bring_back: Callable[[str], object],
                 now: datetime) -> tuple[str, Optional[StoredCheckpoint], str]:
    """Where the run continues from: (model prefix, checkpoint, what to say). The newest complete checkpoint
    really in storage (after `bring_back`, e.g. from Blob), even when the recorded one is not (a notice can end
    before its copy did): said with what was lost. A part that stopped before its first checkpoint continues
    from where it was resumed from. Without any checkpoint, None and why."""
    bring_back(state.prefix)
    stored = complete_checkpoints(storage, state.prefix)
    model_url = storage.url(f"{state.prefix}/model/")
    if stored:
        newest = stored[-1]
        recorded = _number(state.checkpoint)
        if state.checkpoint and state.checkpoint not in {found.name for found in stored} and recorded is not None \
                and recorded > newest.number:
            part_s = ((state.stopped or now) - state.started).total_seconds()
            lost_min = part_s * (recorded - newest.number) / (recorded + 1) / 60
            return state.prefix, newest, (
                f"checkpoint {recorded} of {state.prefix} ({state.checkpoint}) was not kept; resuming from "
                f"{newest.number} ({newest.name}): about {lost_min:.0f} min of training lost")
        return state.prefix, newest, ""
    if state.resumed_from and "@" in state.resumed_from:
        source, name = state.resumed_from.rsplit("@", 1)
        bring_back(source)
        earlier = complete_checkpoints(storage, source)
        if earlier:
            chosen = next((found for found in earlier if found.name == name), earlier[-1])
            return source, chosen, (f"{state.prefix} stopped before its first checkpoint; resuming from {source}'s "
                                    f"checkpoint {chosen.name} again")
    if state.checkpoint:
        return state.prefix, None, (f"the last checkpoint of {state.prefix}, {state.checkpoint}, is not in storage, "
                                    f"nor any other complete one ({model_url}): nothing resumed")
    return state.prefix, None, f"{state.prefix} has no complete checkpoint in storage ({model_url}): nothing resumed"


def _start_failed(store: RunStateStore, state: RunState, step: Increment, source: str,
                  checkpoint: StoredCheckpoint, failure: Exception, say: Say) -> ResumeResult:
    """The new part did not start (or a notice came first). While the record is still this resume's claim,
    run.env goes back to naming the interrupted model, so that the next attempt starts where this one did."""
    current = store.read_or_none()
    ours = current is not None and current.token == state.token
    if ours and step.backup is not None:
        shutil.copyfile(step.backup, state.run_env)
    if current is not None and current.status is Status.INTERRUPTED:
        message = f"the resume of {state.prefix} was interrupted ({current.reason}): it is resumed at the next boot"
        say(message)
        return ResumeResult(False, message, current, step)
    message = (f"{step.new_prefix} did not start: {failure}; `deepracer resume --force` tries again (from "
               f"{source}'s checkpoint {checkpoint.name}, under the next free prefix)")
    if ours:
        store.apply(Event.RESUME_FAILED, when=lambda now: now.token == state.token, message=message)
    else:  # the new part was recorded, and start_recorded marked it resume-failed: its message gets the advice
        store.apply(Event.NOTE, message=message,
                    when=lambda now: now.status is Status.RESUME_FAILED and now.prefix == step.new_prefix)
    say(message)
    return ResumeResult(False, message, store.read(), step)


def _number(name: Optional[str]) -> Optional[int]:
    head = (name or "").split("_", 1)[0]
    return int(head) if head.isdigit() else None


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
