"""Time limits: `train --max-minutes N` (or DR_TRAIN_MAX_MINUTES in run.env) stops training cleanly after N minutes.

The deadline is part of the run state (session.run.state): the run's start plus what is left of N minutes of
*training* — a run resumed after a spot interruption carries its earlier training time, so N bounds the total.
Two things enforce it, both calling `enforce`, the same graceful stop the spot watcher does (containers stopped
with `stop_training`, logs to `<prefix>/logs/`, the newest checkpoint in storage recorded), marking the run
`time-limit`, which is never resumed:

- **A detached timer process**, started by `train` (and by `resume`): `python -m session.lifecycle.limits --state FILE
  --token T`, in a session of its own (`start_new_session`), so the end of the shell, of an SSH or Session
  Manager connection, or of the CLI does not end it. It sleeps until the deadline (waking every 30 s to see
  whether the run ended otherwise, and then leaving) and stops the run on time; its output goes to
  `time-limit-<run id>.log` beside the state file. Not a `systemd-run --on-active` timer: creating system
  units needs root, and the user who trains is not root (a user manager would need lingering turned on).
- **The idle timer** (deepracer-idle.timer, root, every 5 minutes) enforces a deadline passed by more than a
  minute as well: after a reboot, or when the timer process was killed.

Powering off afterwards (system.env DR_POWER_OFF_AFTER_MAX_MINUTES=True, set by the stack) needs root: the
timer process of a user records the wish in the run state and the idle timer, which runs as root, powers the
host off within 5 minutes (session.lifecycle.idle, the same power-off as for an idle host).
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Optional, Sequence

from session.core import console
from session.core.config import RunConfig
from session.core.console import Say
from session.core.errors import DeepracerError
from session.host.factory import HostFactory
from session.lifecycle.notify import notify
from session.lifecycle.power import power_off as power_off_host
from session.lifecycle.stopping import StopReport, interrupt
from session.run.state import Event, RunState, RunStateStore, Status, utcnow

WAKE_S = 30.0  # how often a sleeping timer process looks whether its run ended otherwise
BACKSTOP_GRACE_S = 60.0  # the idle timer leaves the timer process this long to stop the run on time
STOP_TIMEOUT_S = 30.0

PowerOff = Callable[[str], object]  # the cloud (system.env DR_CLOUD) -> powers this host off


class LimitError(DeepracerError):
    """`str()` is one line for the user."""


def max_minutes_for(run: RunConfig, requested: Optional[int] = None) -> Optional[int]:
    """`--max-minutes` when given, else run.env's DR_TRAIN_MAX_MINUTES; None: no limit."""
    if requested is not None and requested < 1:
        raise LimitError(f"--max-minutes: expected a whole number of minutes of at least 1, got {requested}")
    return requested if requested is not None else run.train_max_minutes


def timer_command(store: RunStateStore, state: RunState, python: str = sys.executable) -> list[str]:
    return [python, "-m", "session.lifecycle.limits", "--state", str(store.path), "--token", state.token]


def _launch_detached(command: Sequence[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as output:
        return subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, cwd="/")


def arm(store: RunStateStore, state: RunState, *,
        launch: Callable[[Sequence[str], Path], object] = _launch_detached) -> str:
    """Starts the timer process for the recorded run; returns a line for the user."""
    if state.deadline is None:
        raise LimitError(f"{state.prefix} has no time limit to arm")
    log = store.path.with_name(f"time-limit-{state.run_id}.log")
    launch(timer_command(store, state), log)
    left = max(0.0, (state.deadline - utcnow()).total_seconds()) / 60
    return (f"time limit: training stops at {state.deadline:%Y-%m-%d %H:%M} UTC, in {left:.0f} min "
            f"({state.max_minutes} min of training in all; timer log {log})")


def enforce(store: RunStateStore, *, now: Callable[[], datetime] = utcnow, grace_s: float = 0.0,
            host_factory: Optional[HostFactory] = None, power_off: Optional[PowerOff] = None,
            token: Optional[str] = None, say: Say = console.say) -> Optional[StopReport]:
    """Stops the recorded run if its deadline has passed (by `grace_s`); the timer's entry point.

    With DR_POWER_OFF_AFTER_MAX_MINUTES, `power_off` powers the host off afterwards; without one (not root) the
    wish is recorded for the idle timer. Returns None when there was nothing to stop."""
    state = store.read()
    if state is None or state.status is not Status.RUNNING or state.deadline is None:
        return None
    if token not in (None, state.token):
        return None
    if now() < state.deadline + timedelta(seconds=grace_s):
        return None
    report = interrupt(store, event=Event.TIME_UP, reason=f"time limit of {state.max_minutes} min reached",
                       timeout=STOP_TIMEOUT_S, host_factory=host_factory, say=say, now=now, token=state.token,
                       after_stop=_tell_time_limit)
    if report is None or report.host is None or not report.host.system.power_off_after_max_minutes:
        return report
    if power_off is not None:
        say("DR_POWER_OFF_AFTER_MAX_MINUTES: powering the host off")
        power_off(report.host.system.cloud)
        return report
    store.apply(Event.NOTE, when=lambda current: current.token == state.token, power_off=True)
    say("DR_POWER_OFF_AFTER_MAX_MINUTES: the idle timer (root) powers the host off within 5 minutes")
    return report


def _tell_time_limit(host, stopped) -> None:
    """The e-mail notification, where the stack set one up (the stop kept the models already)."""
    notify(host.system, "time limit reached", host.run.local_s3_model_prefix, "training was stopped at its time limit")


def wait(store: RunStateStore, token: str, *, now: Callable[[], datetime] = utcnow,
         sleep: Callable[[float], None] = time.sleep, host_factory: Optional[HostFactory] = None,
         power_off: Optional[PowerOff] = None, say: Say = console.say) -> Optional[StopReport]:
    """The timer process: sleeps until the run's deadline, then `enforce`s it; leaves as soon as the run
    recorded is no longer the running one it was started for."""
    while True:
        state = store.read()
        if state is None or state.token != token or state.status is not Status.RUNNING or state.deadline is None:
            say(f"time limit: {token} is no longer running; nothing to do")
            return None
        left = (state.deadline - now()).total_seconds()
        if left <= 0:
            return enforce(store, now=now, host_factory=host_factory, power_off=power_off, token=token, say=say)
        sleep(min(left, WAKE_S))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m session.lifecycle.limits",
                                     description="the time limit's timer process (started by `deepracer train`)")
    parser.add_argument("--state", required=True, help="the run state file")
    parser.add_argument("--token", required=True, help="the run it was started for")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(f"{utcnow():%Y-%m-%d %H:%M:%S} {line}", flush=True)

    power_off: Optional[PowerOff] = None
    if os.geteuid() == 0:  # root trained: no need to leave the power-off to the idle timer
        power_off = functools.partial(power_off_host, say=say)
    wait(RunStateStore(args.state), args.token, power_off=power_off, say=say)
    return 0


if __name__ == "__main__":  # pragma: no cover - the detached process
    sys.exit(main())
