"""Idle auto-stop: power the host off when nothing has used it for DR_IDLE_STOP_MINUTES (default 30; 0 turns it
off): no training or evaluation, nobody typing, no `deepracer` command running. Stop or deallocate only, never
terminate: disks, models and the host itself stay (but on Azure the temp disk under /mnt is wiped).

`deepracer idle-check` runs as root every 5 minutes (deepracer-idle.timer). The decision (`decide`) is a pure
function of what was seen and the last activity, kept in a small state file (/var/lib/deepracer/idle.json):
- a running trainer, worker or evaluation container (our labels, any run) is activity; MinIO is not;
- interactive use (session.lifecycle.presence): a login's or a terminal's last input, an open Session Manager
  session's, a `deepracer` command that runs (`logs --follow`, `watch`, an export) counts as activity at its
  time; a login that nobody types in does not;
- `deepracer keep-awake [MINUTES]` (default 60) keeps the host up until then, whatever else; `keep-awake 0`
  ends it (a file the user who trains writes: /var/lib/deepracer/run/keep-awake.json, or $DR_KEEP_AWAKE).
The clock starts no earlier than the boot (a host someone just started gets the full time) and not before the
first boot finished (its ready marker): a host still pulling the simulator image is never stopped. Logged-in
users are warned (`wall`) at each of the two checks before the power-off.

The same check keeps the run state honest (session.run.state): a run recorded as running whose containers are
gone is marked ended, a deadline passed by more than a minute is enforced (session.lifecycle.limits), and a time limit
that asked for a power-off gets it, unless someone used the host in the last IN_USE_MIN minutes or keeps it awake.

Powering off (`power_off`):
- **AWS**: `systemctl poweroff`. An EBS-backed instance whose instance-initiated shutdown behaviour is `stop`
  (the stack sets it) is then stopped: no compute billed, the root volume kept. A persistent spot request
  stays disabled until you start the instance again.
- **Azure**: an OS shutdown leaves the VM *allocated and billed*, so the VM deallocates itself through the
  Azure Resource Manager REST API with its managed identity: a token from IMDS's identity endpoint, then
  `POST <vm resource id>/deallocate?api-version=2024-07-01`. The identity needs
  `Microsoft.Compute/virtualMachines/deallocate/action` on the VM (the stack grants it). The calls are retried
  as Azure documents (session.lifecycle.power); when the deallocation still fails the VM is NOT powered off
  from inside (it would stay allocated and billed, with no alert): it stays up, says so in the journal, notifies,
  and the next check tries again.
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
from session.core.errors import DeepracerError
from session.core.paths import default_idle_state, default_keep_awake, default_ready_marker
from session.engine.containers import ContainerInfo, Engine, EngineError
from session.host.factory import HostFactory, storage_for
from session.lifecycle.idle_clock import (
    CHECK_EVERY_MIN,
    boot_time,
    read_keep_awake,
    read_time,
)
from session.lifecycle.limits import BACKSTOP_GRACE_S, enforce
from session.lifecycle.notify import notify
from session.lifecycle.power import power_off
from session.lifecycle.presence import Presence, present
from session.lifecycle.watchdog import check as watchdog_check
from session.run.state import Event, RunStateError, RunStateStore, Status, mark_stopped
from session.storage.keeper import Keeper

ALERT_AGAIN = timedelta(hours=24)  # a deallocation that keeps failing is mailed again after this long
# A start is recorded before its first container starts and ends within READY_TIMEOUT_S (15 min) of it: a
# `starting` record older than this whose run has no container at all was left by a process that is gone.
STARTING_FOR_AT_MOST = timedelta(minutes=30)
WARN_CHECKS = 2  # logged-in users are warned at each of the checks this many before the power-off
IN_USE_MIN = 15  # input this recent holds back a time limit's power-off
ACTIVE_ROLES = ("trainer", "worker", "evaluation")
KEEP_AWAKE_DEFAULT_MIN = 60
KEEP_AWAKE_MAX_MIN = 24 * 60


class KeepAwakeError(DeepracerError):
    """`str()` is one line for the user."""



@dataclass(frozen=True)
class IdleDecision:
    """`power_off` or not, why (one line), the last activity to remember, and whether to warn logged-in
    users that the next check powers off."""

    power_off: bool
    reason: str
    last_active: Optional[datetime]
    warn: bool = False
    minutes_left: Optional[float] = None  # until the power-off, when one is counting down


def active_containers(containers: Iterable["ContainerInfo"]) -> list["ContainerInfo"]:
    return [c for c in containers if c.running and c.role in ACTIVE_ROLES]


def decide(*, active: Sequence[str], now: datetime, last_active: Optional[datetime], since: Optional[datetime],
           idle_minutes: int, ready: bool = True, time_limit_power_off: bool = False,
           presence: Sequence[Presence] = (), keep_awake_until: Optional[datetime] = None) -> IdleDecision:
    """The rules, in order:

    1. Before the first boot finished (`ready`), never.
    2. Something active (names of running trainer/worker/evaluation containers): stay; it is the last activity.
    3. Kept awake (`deepracer keep-awake`) until later than now: stay; it is activity too.
    4. A time limit that asked for a power-off: power off, whatever DR_IDLE_STOP_MINUTES says, unless someone
       used the host in the last IN_USE_MIN minutes (`presence`).
    5. DR_IDLE_STOP_MINUTES=0: never.
    6. Idle since the latest of the last activity, the last interactive use (`presence`: input, commands) and
       `since` (boot, first boot's end) for `idle_minutes`: power off; otherwise stay, warning (`warn`) at each
       of the WARN_CHECKS checks before the power-off."""
    if not ready:
        return IdleDecision(False, "the first boot has not finished: not counting idle time yet", last_active)
    if active:
        return IdleDecision(False, f"active: {', '.join(active)}", now)
    if keep_awake_until is not None and now < keep_awake_until:
        return IdleDecision(False, f"kept awake until {keep_awake_until:%H:%M} UTC (`deepracer keep-awake`)", now)
    latest = max(presence, key=lambda found: found.last, default=None)
    if latest is not None and (last_active is None or latest.last > last_active):
        last_active = min(latest.last, now)
    if time_limit_power_off:
        if latest is not None and now - latest.last < timedelta(minutes=IN_USE_MIN):
            return IdleDecision(False, f"training reached its time limit; powering off once nobody has used the "
                                       f"host for {IN_USE_MIN} min (in use: {_used(latest, now)})", last_active)
        return IdleDecision(True, "training reached its time limit and DR_POWER_OFF_AFTER_MAX_MINUTES is True",
                            last_active)
    if idle_minutes <= 0:
        return IdleDecision(False, "idle auto-stop is off (DR_IDLE_STOP_MINUTES=0)", last_active)
    reference = max((moment for moment in (last_active, since) if moment is not None), default=now)
    idle = now - reference
    limit = timedelta(minutes=idle_minutes)
    idle_min = idle.total_seconds() / 60
    if idle >= limit:
        return IdleDecision(True, f"no training, evaluation or interactive use for {idle_min:.0f} min "
                                  f"(DR_IDLE_STOP_MINUTES={idle_minutes})", last_active)
    left = limit - idle
    used = f" (last use: {_used(latest, now)})" if latest is not None and latest.last >= reference else ""
    return IdleDecision(False, f"idle for {idle_min:.0f} min{used}; powers off after {idle_minutes} "
                               f"(DR_IDLE_STOP_MINUTES)", last_active,
                        warn=left <= timedelta(minutes=WARN_CHECKS * CHECK_EVERY_MIN),
                        minutes_left=left.total_seconds() / 60)


def _used(found: Presence, now: datetime) -> str:
    ago = max(0.0, (now - found.last).total_seconds() / 60)
    return f"{found.what}, {ago:.0f} min ago" if ago >= 1 else f"{found.what}, now"


# --- the edge ---------------------------------------------------------------------------------------------------


def _write_times(path: Path, **moments: Optional[datetime]) -> None:
    """Sets some of the file's times (None clears one), keeping the others."""
    try:
        data = json.loads(path.read_text())
        data = data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        data = {}
    data.update({key: moment.isoformat() if moment else None for key, moment in moments.items()})
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(data) + "\n")
    os.replace(temporary, path)


def keep_awake(minutes: int = KEEP_AWAKE_DEFAULT_MIN, *, path: Optional[Path] = None,
               now: Optional[datetime] = None, say: Say = console.say) -> Optional[datetime]:
    """`deepracer keep-awake [MINUTES]`: the idle stop leaves the host up for MINUTES from now (0: ends a
    keep-awake). Returns until when."""
    if not 0 <= minutes <= KEEP_AWAKE_MAX_MIN:
        raise KeepAwakeError(f"keep-awake: expected 0 to {KEEP_AWAKE_MAX_MIN} minutes (a day), got {minutes}")
    path = path or default_keep_awake()
    moment = now or datetime.now(timezone.utc)
    try:
        if minutes == 0:
            path.unlink(missing_ok=True)
            say("keep-awake ended: the idle auto-stop counts idle time again (DR_IDLE_STOP_MINUTES)")
            return None
        until = moment + timedelta(minutes=minutes)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps({"until": until.isoformat(), "set": moment.isoformat()}) + "\n")
        os.replace(temporary, path)
    except OSError as error:
        raise KeepAwakeError(f"keep-awake: cannot write {path}: {error.strerror or error} (run it as the user "
                             "who trains, or with sudo)") from None
    say(f"this host stays up until {until:%Y-%m-%d %H:%M} UTC ({minutes} min) whatever the idle auto-stop "
        "finds; `deepracer keep-awake 0` ends it sooner")
    return until


def idle_check(system: "SystemConfig", *, engine: Optional["Engine"] = None,
               store: Optional["RunStateStore"] = None, idle_state: Optional[Path] = None,
               ready_marker: Optional[Path] = None, now: Optional[datetime] = None,
               booted: Optional[datetime] = None, stop_host: Optional[Callable[[str], object]] = None,
               host_factory: Optional["HostFactory"] = None, dry_run: bool = False,
               warn: Optional[Say] = None, presence: Optional[Callable[[datetime], Sequence[Presence]]] = None,
               keep_awake_file: Optional[Path] = None, say: Say = console.say) -> IdleDecision:
    """`deepracer idle-check`: reconcile the run state, decide, remember the activity, power off if due.
    `stop_host` defaults to `power_off` (it answers "failed" when the host stays up: the next check tries
    again); `warn` to `wall` (a note to logged-in users); `presence` to session.lifecycle.presence.present."""
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
        if state is not None and state.status is Status.STARTING and moment - state.started > STARTING_FOR_AT_MOST:
            ours = [c for c in active_containers(containers) if c.run == str(state.run_id) and c.role != "evaluation"]
            if not ours:  # the process that started it is gone (killed, the host rebooted) and nothing runs
                mark_stopped(store, state.run_id, event=Event.END, token=state.token, now=moment,
                             reason="its start never finished and nothing of it runs")
                say(f"run state: {state.prefix} was recorded as starting {state.started:%H:%M} UTC and has no "
                    "running container; recorded as ended")
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
    try:
        used = list((presence or present)(moment))
    except Exception as error:  # noqa: BLE001 - a probe's failure counts nobody, it does not stop the check
        say(f"idle check: could not look for interactive use: {error}")
        used = []
    decision = decide(active=[c.name for c in active_containers(containers)], now=moment,
                      last_active=read_time(idle_state, "last_active"), since=since,
                      idle_minutes=system.idle_stop_minutes, ready=ready, time_limit_power_off=limit_power_off,
                      presence=used, keep_awake_until=read_keep_awake(keep_awake_file))
    say(f"idle check: {decision.reason}" + ("; powering off" if decision.power_off else ""))
    if dry_run:
        return decision
    if decision.last_active is not None:
        try:
            _write_times(idle_state, last_active=decision.last_active)
        except OSError as error:
            say(f"idle check: cannot remember the last activity in {idle_state}: {error.strerror or error}")
    if decision.warn:
        left = max(CHECK_EVERY_MIN, round(decision.minutes_left or 0))
        (warn or _wall)(f"deepracer: this host powers off in about {left} minutes: {decision.reason}. To keep "
                        "it: type in a terminal, run `deepracer keep-awake` (an hour; `deepracer keep-awake 120`: "
                        "two), or start training; DR_IDLE_STOP_MINUTES=0 in system.env turns the idle stop off.")
    if decision.power_off:
        token = state.token if state is not None else None
        if limit_power_off:
            # Done once: the next boot must not power off again for the same run.
            store.apply(Event.NOTE, when=lambda current: current.token == token, power_off=False)
        # A deallocation that keeps failing is retried every check, but mailed once a day, not every 5 minutes.
        failing_since = read_time(idle_state, "deallocation_failed")
        tell = failing_since is None or moment - failing_since >= ALERT_AGAIN
        if stop_host is not None:
            result = stop_host(system.cloud)
        else:
            _keep_models(system, say)
            if failing_since is None:
                notify(system, "idle stop", "host", f"{decision.reason}; the host powers off", say=say)
            result = power_off(system.cloud, say=say, alert=lambda message: tell and notify(
                system, "deallocation failed", "host", message, say=say))
        if result == "failed" and limit_power_off:  # still up: the next check tries again
            store.apply(Event.NOTE, when=lambda current: current.token == token, power_off=True)
        try:
            if result == "failed" and tell:
                _write_times(idle_state, deallocation_failed=moment)
            elif result != "failed" and failing_since is not None:
                _write_times(idle_state, deallocation_failed=None)
        except OSError as error:
            say(f"idle check: cannot remember the failed deallocation in {idle_state}: {error.strerror or error}")
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
