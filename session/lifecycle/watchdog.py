"""E-mails for the two run events nobody triggers on purpose: a run that **finished** by itself (its trainer,
workers and SageMaker container exited without `deepracer stop`, a spot notice or the time limit, e.g. after
term_cond_max_episodes) and a run that **stalls** (its containers run, but no new checkpoint reached storage for
`StallRules.checkpoint_minutes`, 20 by default, the live view's threshold).

`check` runs from the idle check (root, every 5 minutes), before that check records a finished run as ended.
The decision (`events_to_send`) is pure; what was already sent is kept in a small JSON file next to the run
state (`notified.json`), per run part (its token): finished is sent once, a stall once per stall (a newer
checkpoint re-arms it). An event whose e-mail could not be sent is not remembered, so the next check retries it.
Nothing happens without a topic (DR_NOTIFY_TOPIC_ARN).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

from session.core import console
from session.core.config import SystemConfig
from session.core.console import Say
from session.engine.containers import ContainerInfo, Engine
from session.host.factory import storage_for
from session.insight.live import StallRules
from session.lifecycle.notify import notify as _notify
from session.run.progress import checkpoint_files
from session.run.state import RunState, RunStateStore, Status
from session.storage.s3 import Storage

STALL_MINUTES = StallRules().checkpoint_minutes
RUN_ROLES = ("trainer", "worker", "sagemaker")
ENDED_RECENTLY = timedelta(hours=1)  # an `ended` run (the idle check saw it finish) is still news this long
SENT_NAME = "notified.json"
FINISHED, STALL = "training finished", "training stalled"



@dataclass(frozen=True)
class Event:
    """One notification: `event` as notify() titles it, `details` for the body, and `memo`, what `remember`
    records once it was sent (finished: True; stall: the moment the missing checkpoint is counted from)."""

    event: str
    details: str
    memo: Any


def run_containers_running(state: RunState, containers: Iterable["ContainerInfo"]) -> list["ContainerInfo"]:
    return [c for c in containers if c.running and c.role in RUN_ROLES and c.run == str(state.run_id)]


def _sent_for(state: RunState, sent: Mapping[str, Any]) -> Mapping[str, Any]:
    return sent if sent.get("token") == state.token else {}


def events_to_send(state: Optional[RunState], containers: Iterable["ContainerInfo"],
                   newest_checkpoint_time: Optional[datetime], now: datetime, sent: Mapping[str, Any], *,
                   stall_minutes: float = STALL_MINUTES) -> list[Event]:
    """What to e-mail now about the recorded run; `sent` is what `remember` kept (any run's)."""
    if state is None:
        return []
    already = _sent_for(state, sent)
    running = run_containers_running(state, containers)
    events: list[Event] = []
    finished = (state.status == Status.RUNNING and not running) or (
        state.status == Status.ENDED and state.stopped is not None and now - state.stopped <= ENDED_RECENTLY)
    if finished and not already.get("finished"):
        trained = state.trained_until(now) / 60
        events.append(Event(FINISHED, f"Its trainer and workers exited by themselves (not `deepracer stop`, a spot "
                                      f"interruption or the time limit), e.g. after term_cond_max_episodes.\n"
                                      f"Started {state.started:%Y-%m-%d %H:%M} UTC; about {trained:.0f} min of "
                                      f"training. The model is under {state.prefix}/.", True))
    if state.status == Status.RUNNING and running:
        reference = max(t for t in (newest_checkpoint_time, state.started) if t is not None)
        age = now - reference
        if age >= timedelta(minutes=stall_minutes) and already.get("stall") != reference.isoformat():
            what = "its newest checkpoint" if newest_checkpoint_time and newest_checkpoint_time >= state.started \
                else "its start"
            events.append(Event(STALL, f"No new checkpoint in storage for {age.total_seconds() / 60:.0f} min (since "
                                       f"{what}, {reference:%Y-%m-%d %H:%M} UTC) while its containers run: "
                                       f"{', '.join(c.name for c in running)}.\n`deepracer watch` and `deepracer "
                                       f"logs trainer` show why; `deepracer stop` ends it.", reference.isoformat()))
    return events


def remember(state: RunState, sent: Mapping[str, Any], delivered: Iterable[Event]) -> dict[str, Any]:
    """`sent` after `delivered` went out; another run's memory is forgotten."""
    memory = {"token": state.token, **{k: v for k, v in _sent_for(state, sent).items() if k != "token"}}
    for event in delivered:
        memory["finished" if event.event == FINISHED else "stall"] = event.memo
    return memory


# --- the edge ---------------------------------------------------------------------------------------------------


def read_sent(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_sent(path: Path, sent: Mapping[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(dict(sent)) + "\n")
    os.replace(temporary, path)


def newest_checkpoint_time(storage: "Storage", prefix: str) -> Optional[datetime]:
    """When the newest checkpoint's index file (as session.run.progress finds checkpoints) reached storage."""

    folder = f"{prefix.strip('/')}/model/"
    objects = {info.key[len(folder):]: info for info in storage.list_objects(folder)}
    found = checkpoint_files(objects)
    if not found:
        return None
    stamp = objects[f"{found[-1].name}.index"].last_modified
    return stamp if stamp is None or stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def check(system: "SystemConfig", *, state: Optional[RunState] = None,
          containers: Optional[Iterable["ContainerInfo"]] = None, store: Optional["RunStateStore"] = None,
          engine: Optional["Engine"] = None, checkpoint_time: Optional[Callable[[RunState], Optional[datetime]]] = None,
          sent_path: Optional[Path] = None, now: Optional[datetime] = None,
          stall_minutes: float = STALL_MINUTES, notify: Callable[..., bool] = _notify,
          say: Say = console.say) -> list[Event]:
    """Gathers the inputs (the recorded run, its containers, the newest checkpoint's time, only while they run),
    sends what `events_to_send` says, and remembers what went out. Returns the events sent."""
    if not system.notify_topic_arn:
        return []
    store = store or RunStateStore()
    if state is None:
        state = store.read()
    if state is None or state.status not in (Status.RUNNING, Status.ENDED):
        return []
    moment = now or datetime.now(timezone.utc)
    if containers is None:
        engine = engine or Engine()
        containers = list(engine.list(run=str(state.run_id)))
    containers = list(containers)
    newest = None
    if state.status == Status.RUNNING and run_containers_running(state, containers):
        if checkpoint_time is None:
            storage = storage_for(system)
            checkpoint_time = lambda run: newest_checkpoint_time(storage, run.prefix)  # noqa: E731 - the parameter's default, inline
        newest = checkpoint_time(state)
    path = sent_path or store.path.with_name(SENT_NAME)
    sent = read_sent(path)
    events = events_to_send(state, containers, newest, moment, sent, stall_minutes=stall_minutes)
    delivered = [event for event in events if notify(system, event.event, state.prefix, event.details, say=say)]
    if delivered:
        write_sent(path, remember(state, sent, delivered))
        for event in delivered:
            say(f"watchdog: sent '{event.event}' for {state.prefix}")
    return delivered
