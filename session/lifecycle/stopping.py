"""The graceful stop the spot watcher, the shutdown hook and the time limit share: the run stopped, its newest
complete checkpoint recorded in the run state, its models kept (Azure: copied to Blob, the checkpoint first,
until the notice's deadline), then whoever asked is told."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Optional

from session.core import console
from session.core.console import Say
from session.engine.containers import ContainerInfo, Engine
from session.host.factory import Host, HostFactory, open_host
from session.lifecycle.notify import notify
from session.run.checkpoints import StoredCheckpoint, newest_checkpoint
from session.run.state import Event, RunState, RunStateError, RunStateStore, mark_stopped, utcnow
from session.run.training import stop_training, stopped_prefixes
from session.storage.keeper import Keeper, prefixes_to_sync
from session.storage.mirror_sync import SyncReport

AfterStop = Callable[[Host, list[ContainerInfo]], object]  # e.g. an e-mail, once the stop is recorded and kept


@dataclass(frozen=True)
class StopReport:
    """What a graceful stop did: the state as recorded after it, the containers stopped, the checkpoint."""

    state: RunState
    stopped: tuple[ContainerInfo, ...] = ()
    checkpoint: Optional[StoredCheckpoint] = None
    host: Optional[Host] = field(default=None, repr=False, compare=False)
    error: Optional[str] = None


def stop_by_user(host: Host, *, timeout: float = 30, say: Say = console.say, warn: Say = console.warn,
                 store: Optional[RunStateStore] = None, how: str = "with `deepracer stop`") -> list[ContainerInfo]:
    """`deepracer stop` and the dashboard's stop button, one path: the run's containers stopped (logs to
    `<prefix>/logs/`, Azure: the prefix kept in Blob), the user told by e-mail when something stopped, and the
    run recorded as stopped by the user, so that the next boot does not resume it."""
    stopped = stop_training(host, say=say, timeout=timeout)
    if stopped:
        notify(host.system, "training stopped", host.run.local_s3_model_prefix, f"stopped {how}", say=warn)
    try:
        mark_stopped(store if store is not None else RunStateStore(), host.run.run_id)
    except RunStateError as error:
        warn(f"warning: {error}")
    return stopped


def interrupt(store: RunStateStore, *, event: Event, reason: str, timeout: float,
              host_factory: Optional[HostFactory] = None, say: Say = console.say,
              now: Callable[[], datetime] = utcnow, token: Optional[str] = None,
              after_stop: Optional[AfterStop] = None, deadline: Optional[datetime] = None) -> Optional[StopReport]:
    """The graceful stop the spot watcher, the shutdown hook and the time limit share: claim the recorded run
    (`event`: a notice takes a starting, running or resuming run, the time limit a running one), stop its
    containers with `stop_training` (logs to `<prefix>/logs/`), record the newest complete checkpoint in storage,
    have the host's keeper keep the run's prefixes (Azure: to Blob, the checkpoint first, until `deadline`, a
    notice's NotBefore: the copy may take longer than a notice lasts, so it comes after the record), even when the
    stop failed half-way; then the evaluations' prefixes; then run `after_stop`, if any. Returns None when no run
    is recorded in a status that takes `event` (or not the one `token` names)."""
    claimed = store.apply(event, when=lambda state: token is None or state.token == token,
                          reason=reason, stopped=now())
    if claimed is None:
        say(f"no training is recorded as starting, running or resuming in {store.path}: nothing to stop")
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
    # A resume claimed before its start has the checkpoint it resumes from recorded: kept when none is found.
    final = store.apply(Event.NOTE, when=lambda state: state.token == claimed.token, stopped=now(),
                        message=error or "", checkpoint=checkpoint.name if checkpoint else claimed.checkpoint)
    if host is not None:
        # Kept even when the stop failed half-way: what reached storage is worth keeping all the same.
        prefixes = [claimed.prefix, *stopped_prefixes(stopped, host.run)] if stopped else [claimed.prefix]
        try:
            host.keeper.keep(prefixes, deadline=deadline, now=now, say=say)
        except Exception as failure:  # noqa: BLE001 - the stop itself is done and recorded
            say(f"keeping the models after the stop: {type(failure).__name__}: {failure}")
        keep_evaluations(host.keeper, host.engine, deadline=deadline, now=now, say=say, besides=prefixes)
    if after_stop is not None and host is not None and stopped:
        try:
            after_stop(host, list(stopped))
        except Exception as failure:  # noqa: BLE001 - the stop itself is done and recorded
            say(f"after the stop: {type(failure).__name__}: {failure}")
    return StopReport(final or claimed, tuple(stopped), checkpoint, host, error)


def keep_evaluations(keeper: Keeper, engine: Engine, *, deadline: Optional[datetime] = None,
                     now: Callable[[], datetime] = utcnow, say: Say = console.say,
                     besides: Iterable[str] = ()) -> list[SyncReport]:
    """Azure: the prefixes of this host's evaluations (running, or ended within the hour) to Blob, but those in
    `besides` (kept already). An evaluation has no run record: without this a notice would keep nothing of it.
    Errors are said, not raised: the host is going down."""
    if not keeper.active:
        return []
    try:
        prefixes = [prefix for prefix in prefixes_to_sync(engine.list(role="evaluation"), now())
                    if prefix not in set(besides)]
        return keeper.keep(prefixes, deadline=deadline, now=now, say=say) if prefixes else []
    except Exception as failure:  # noqa: BLE001 - the host is going down: say it, go on
        say(f"keeping the evaluations' models: {type(failure).__name__}: {failure}")
        return []
