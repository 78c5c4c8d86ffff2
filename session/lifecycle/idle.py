"""Idle auto-stop: power the host off when no training or evaluation has run for DR_IDLE_STOP_MINUTES (default
30; 0 turns it off). Stop or deallocate only, never terminate: disks, models and the host itself stay.

`deepracer idle-check` runs as root every 5 minutes (deepracer-idle.timer). The decision (`decide`) is a pure
function of the containers seen running and the last activity, kept in a small state file
(/var/lib/deepracer/idle.json): a running trainer, worker or evaluation container (our labels, any run) is
activity; MinIO is not, nor a logged-in user. The clock starts no earlier than the boot (a host someone just
started gets the full time) and not before the first boot finished (its ready marker): a host still pulling the
simulator image is never stopped.

The same check keeps the run state honest (session.run.state): a run recorded as running whose containers are
gone is marked ended, a deadline passed by more than a minute is enforced (session.lifecycle.limits), and a time limit
that asked for a power-off gets it.

Powering off (`power_off`):
- **AWS**: `systemctl poweroff`. An EBS-backed instance whose instance-initiated shutdown behaviour is `stop`
  (the stack sets it) is then stopped: no compute billed, the root volume kept. A persistent spot request
  stays disabled until you start the instance again.
- **Azure**: an OS shutdown leaves the VM *allocated and billed*, so the VM deallocates itself through the
  Azure Resource Manager REST API with its managed identity: a token from IMDS's identity endpoint, then
  `POST <vm resource id>/deallocate?api-version=2024-07-01`. The identity needs
  `Microsoft.Compute/virtualMachines/deallocate/action` on the VM (the stack grants it). Without it, the host
  powers off from inside after a loud warning: it stops computing, but Azure keeps billing it.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from session.core import console
from session.core.config import SystemConfig
from session.core.console import Say
from session.core.paths import default_idle_state, default_ready_marker
from session.engine.containers import ContainerInfo, Engine, EngineError
from session.host.factory import HostFactory, storage_for
from session.lifecycle.limits import BACKSTOP_GRACE_S, enforce
from session.lifecycle.notify import notify
from session.lifecycle.power import power_off
from session.lifecycle.watchdog import check as watchdog_check
from session.run.state import Event, RunStateError, RunStateStore, Status, mark_stopped
from session.storage.blob import Keeper

CHECK_EVERY_MIN = 5  # deepracer-idle.timer's OnUnitActiveSec
ACTIVE_ROLES = ("trainer", "worker", "evaluation")



@dataclass(frozen=True)
class IdleDecision:
    """`power_off` or not, why (one line), the last activity to remember, and whether to warn logged-in
    users that the next check powers off."""

    power_off: bool
    reason: str
    last_active: Optional[datetime]
    warn: bool = False


def active_containers(containers: Iterable["ContainerInfo"]) -> list["ContainerInfo"]:
    return [c for c in containers if c.running and c.role in ACTIVE_ROLES]


def decide(*, active: Sequence[str], now: datetime, last_active: Optional[datetime], since: Optional[datetime],
           idle_minutes: int, ready: bool = True, time_limit_power_off: bool = False) -> IdleDecision:
    """The rules, in order:

    1. Before the first boot finished (`ready`), never.
    2. Something active (names of running trainer/worker/evaluation containers): stay; it is the last activity.
    3. A time limit that asked for a power-off: power off, whatever DR_IDLE_STOP_MINUTES says.
    4. DR_IDLE_STOP_MINUTES=0: never.
    5. Idle since the later of the last activity and `since` (boot, first boot's end) for `idle_minutes`:
       power off; otherwise stay, warning when the next check would power off."""
    if not ready:
        return IdleDecision(False, "the first boot has not finished: not counting idle time yet", last_active)
    if active:
        return IdleDecision(False, f"active: {', '.join(active)}", now)
    if time_limit_power_off:
        return IdleDecision(True, "training reached its time limit and DR_POWER_OFF_AFTER_MAX_MINUTES is True",
                            last_active)
    if idle_minutes <= 0:
        return IdleDecision(False, "idle auto-stop is off (DR_IDLE_STOP_MINUTES=0)", last_active)
    reference = max((moment for moment in (last_active, since) if moment is not None), default=now)
    idle = now - reference
    limit = timedelta(minutes=idle_minutes)
    idle_min = idle.total_seconds() / 60
    if idle >= limit:
        return IdleDecision(True, f"no training or evaluation for {idle_min:.0f} min "
                                  f"(DR_IDLE_STOP_MINUTES={idle_minutes})", last_active)
    left = limit - idle
    return IdleDecision(False, f"idle for {idle_min:.0f} min; powers off after {idle_minutes} "
                               f"(DR_IDLE_STOP_MINUTES)", last_active,
                        warn=left <= timedelta(minutes=CHECK_EVERY_MIN))


# --- the edge ---------------------------------------------------------------------------------------------------


def boot_time(stat: Path = Path("/proc/stat")) -> Optional[datetime]:
    for line in stat.read_text().splitlines():
        if line.startswith("btime "):
            return datetime.fromtimestamp(int(line.split()[1]), timezone.utc)
    return None


def _read_last_active(path: Path) -> Optional[datetime]:
    try:
        text = json.loads(path.read_text())["last_active"]
        return datetime.fromisoformat(text) if text else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_last_active(path: Path, moment: Optional[datetime]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps({"last_active": moment.isoformat() if moment else None}) + "\n")
    os.replace(temporary, path)


def idle_check(system: "SystemConfig", *, engine: Optional["Engine"] = None,
               store: Optional["RunStateStore"] = None, idle_state: Optional[Path] = None,
               ready_marker: Optional[Path] = None, now: Optional[datetime] = None,
               booted: Optional[datetime] = None, stop_host: Optional[Callable[[str], object]] = None,
               host_factory: Optional["HostFactory"] = None, dry_run: bool = False,
               warn: Optional[Say] = None, say: Say = console.say) -> IdleDecision:
    """`deepracer idle-check`: reconcile the run state, decide, remember the activity, power off if due.
    `stop_host` defaults to `power_off`; `warn` to `wall` (a note to logged-in users)."""
    idle_state = idle_state if idle_state is not None else default_idle_state()
    engine = engine or Engine()
    store = store or RunStateStore()
    marker = ready_marker or default_ready_marker()
    moment = now or datetime.now(timezone.utc)
    try:
        state = store.read()  # before the containers: a run `train` records meanwhile has its containers listed
    except RunStateError as error:
        say(f"run state: {error}")
        state = None
    try:
        containers = engine.list()
    except EngineError as error:
        # Nothing trains without Docker; the last activity a working check saw still counts.
        say(f"idle check: {error}; counting no container as active")
        containers = []
    try:  # e-mails a run that finished by itself or stalls (session.lifecycle.watchdog), before it is recorded as ended
        # The watchdog lists the containers itself: a Docker failure is no finish.
        dry_run or watchdog_check(system, state=state, engine=engine, store=store, now=moment, say=say)
    except Exception as error:  # noqa: BLE001 - a notification never stops the idle check
        say(f"watchdog: {error}")

    try:
        if state is not None and state.status is Status.RUNNING:
            ours = [c for c in active_containers(containers) if c.run == str(state.run_id) and c.role != "evaluation"]
            if not ours:
                mark_stopped(store, state.run_id, event=Event.END, token=state.token, now=moment,
                             reason="its containers stopped without `deepracer stop`")
                say(f"run state: {state.prefix} is not running any more; recorded as ended")
            elif not dry_run and enforce(store, now=lambda: moment, grace_s=BACKSTOP_GRACE_S,
                                         host_factory=host_factory, say=say) is not None:
                containers = engine.list()
        state = store.read()
    except RunStateError as error:
        say(f"run state: {error}")
        state = None
    limit_power_off = state is not None and state.status is Status.TIME_LIMIT and state.power_off

    ready = marker.is_file()
    since_ready = datetime.fromtimestamp(marker.stat().st_mtime, timezone.utc) if ready else None
    booted = booted or boot_time()
    since = max((m for m in (booted, since_ready) if m is not None), default=None)
    decision = decide(active=[c.name for c in active_containers(containers)], now=moment,
                      last_active=_read_last_active(idle_state), since=since,
                      idle_minutes=system.idle_stop_minutes, ready=ready, time_limit_power_off=limit_power_off)
    say(f"idle check: {decision.reason}" + ("; powering off" if decision.power_off else ""))
    if dry_run:
        return decision
    if decision.last_active is not None:
        try:
            _write_last_active(idle_state, decision.last_active)
        except OSError as error:
            say(f"idle check: cannot remember the last activity in {idle_state}: {error.strerror or error}")
    if decision.warn:
        (warn or _wall)(f"deepracer: this host powers off within {CHECK_EVERY_MIN} minutes: {decision.reason}. "
                        "Start training or evaluation to keep it, or set DR_IDLE_STOP_MINUTES=0 in system.env.")
    if decision.power_off:
        if limit_power_off:
            # Done once: the next boot must not power off again for the same run.
            token = state.token if state is not None else None
            store.apply(Event.NOTE, when=lambda current: current.token == token, power_off=False)
        if stop_host is not None:
            stop_host(system.cloud)
        else:
            _keep_models(system, say)
            notify(system, "idle stop", "host", f"{decision.reason}; the host powers off", say=say)
            power_off(system.cloud, say=say)
    return decision


def _keep_models(system: "SystemConfig", say: Say) -> None:
    """Azure: deallocation empties the temp disk under MinIO; every prefix goes to Blob first. A failed copy is
    said loudly but does not keep an idle VM running (and billing) forever."""
    keeper = Keeper(system, storage_for(system))
    if not keeper.active:
        return
    try:
        keeper.keep_everything(say=say)
    except Exception as error:  # noqa: BLE001 - any failure: power off anyway, with the reason in the journal
        say(f"WARNING: idle check: could not copy the models to Blob before powering off: {error}")


def _wall(message: str) -> None:
    try:
        subprocess.run(["wall", message], check=False, timeout=10, capture_output=True)
    except (OSError, subprocess.SubprocessError):
        pass
