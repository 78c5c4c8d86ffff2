"""Time limits: `train --max-minutes N` (or DR_TRAIN_MAX_MINUTES in run.env) stops training cleanly after N minutes.

The deadline is part of the run state (session.run.state): the run's start plus what is left of N minutes of
*training* — a run resumed after a spot interruption carries its earlier training time, so N bounds the total.
Two things enforce it, both calling `enforce`, the same graceful stop the spot watcher does (containers stopped
with `stop_training`, logs to `<prefix>/logs/`, the newest checkpoint in storage recorded), marking the run
`time-limit`, which is never resumed:

- **A timer of its own**, armed by `train` (and re-armed by `resume`), outside the unit or shell that armed it:
  on a host where systemd is PID 1, a transient systemd timer `deepracer-time-limit-<run id>.timer` (`systemd-run
  --on-active`; in the user manager of the user who trains, whose lingering the first boot turns on, or the
  system manager for root) that starts `python -m session.lifecycle.limits --state FILE --token T` at the
  deadline, in a service of its own: the end of the shell, of an SSH or Session Manager connection, of the CLI or
  of deepracer-resume.service (KillMode=control-group kills what stays in its cgroup) does not end it. Arming
  again for the same run (a resume) stops the earlier timer first: one timer per run. Where there is no systemd
  (a laptop, a container), or systemd-run fails, the same command runs as a detached process in a session of
  its own (`start_new_session`), sleeping until the deadline. Either way the process leaves, stopping nothing,
  once it sees that the run it was started for ended otherwise; its output goes to `time-limit-<run id>.log`
  beside the state file.
- **The idle timer** (deepracer-idle.timer, root, every 5 minutes) enforces a deadline passed by more than a
  minute as well: after a reboot, or when the timer was stopped.

Powering off afterwards (system.env DR_POWER_OFF_AFTER_MAX_MINUTES=True, set by the stack) needs root: the
timer process of a user records the wish in the run state and the idle timer, which runs as root, powers the
host off within 5 minutes (session.lifecycle.idle, the same power-off as for an idle host).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

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
SYSTEMD_DIR = Path("/run/systemd/system")  # exists when systemd is PID 1 (sd_booted(3))
UNIT_PREFIX = "deepracer-time-limit"
# What the timer's process needs of the caller's environment (a unit starts with the manager's, not the caller's);
# never a secret: a system unit's environment is anyone's to read (`systemctl show`).
PASSED_PREFIXES = ("DR_", "DOCKER_")
PASSED_NAMES = ("PATH", "PYTHONPATH")
SECRET_WORDS = ("KEY", "SECRET", "PASSWORD", "TOKEN")


class LimitError(DeepracerError):
    """`str()` is one line for the user."""


def max_minutes_for(run: RunConfig, requested: Optional[int] = None) -> Optional[int]:
    """`--max-minutes` when given, else run.env's DR_TRAIN_MAX_MINUTES; None: no limit."""
    if requested is not None and requested < 1:
        raise LimitError(f"--max-minutes: expected a whole number of minutes of at least 1, got {requested}")
    return requested if requested is not None else run.train_max_minutes


def timer_command(store: RunStateStore, state: RunState, python: str = sys.executable) -> list[str]:
    return [python, "-m", "session.lifecycle.limits", "--state", str(store.path), "--token", state.token]


@dataclass(frozen=True)
class TimerJob:
    """What arming starts: `command` at the deadline (`delay_s` from now), as unit `unit`, output to `log`."""

    command: list[str]
    log: Path
    unit: str
    delay_s: int


Launch = Callable[[TimerJob], str]  # starts the job; returns how, for the user


def timer_unit(state: RunState) -> str:
    """One per run: arming the same run again replaces it."""
    return f"{UNIT_PREFIX}-{state.run_id}"


def _launch_detached(command: Sequence[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as output:
        return subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, cwd="/")


def launch_detached(job: TimerJob) -> str:
    """Without systemd: the timer process sleeps until the deadline in a session of its own."""
    process = _launch_detached(job.command, job.log)
    return f"timer process {process.pid}, log {job.log}"


def systemd_booted(path: Optional[Path] = None) -> bool:
    return (path or SYSTEMD_DIR).is_dir()


class SystemdRun:
    """A transient systemd timer for the job: `systemd-run --on-active=<delay>s` in the user manager of the user
    who trains (`--user`; lingering keeps it running without a login) or, for root, the system manager. The
    timer and its service are units of their own, in the manager's cgroup, not the caller's."""

    def __init__(self, systemd_run: str, systemctl: str, *, fallback: Launch = launch_detached,
                 run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                 environ: Optional[Mapping[str, str]] = None, uid: Optional[int] = None,
                 runtime_dir: Optional[Path] = None) -> None:
        self.systemd_run, self.systemctl, self.fallback, self.run = systemd_run, systemctl, fallback, run
        self.environ = dict(os.environ if environ is None else environ)
        self.uid = os.geteuid() if uid is None else uid
        self.runtime_dir = runtime_dir or Path(f"/run/user/{self.uid}")  # the user manager's (lingering)

    def _manager(self) -> tuple[list[str], dict[str, str]]:
        if self.uid == 0:
            return [], self.environ
        environ = dict(self.environ)
        if not environ.get("XDG_RUNTIME_DIR") and self.runtime_dir.is_dir():  # runuser (the resume unit) sets none
            environ["XDG_RUNTIME_DIR"] = str(self.runtime_dir)
        return ["--user"], environ

    def command(self, job: TimerJob) -> list[str]:
        manager, _ = self._manager()
        passed = sorted(name for name in self.environ if (name.startswith(PASSED_PREFIXES) or name in PASSED_NAMES)
                        and not any(word in name for word in SECRET_WORDS))
        return [self.systemd_run, *manager, f"--unit={job.unit}", "--collect",
                "--description=DeepRacer: the time limit of a training run",
                f"--on-active={job.delay_s}s", "--timer-property=AccuracySec=1s",
                f"--property=StandardOutput=append:{job.log}", f"--property=StandardError=append:{job.log}",
                *(f"--setenv={name}={self.environ[name]}" for name in passed),
                "--", *job.command]

    def __call__(self, job: TimerJob) -> str:
        manager, environ = self._manager()
        units = [f"{job.unit}.timer", f"{job.unit}.service"]
        for verb in ("stop", "reset-failed"):  # a timer armed before for this run goes first: one per run
            self.run([self.systemctl, *manager, verb, *units], env=environ, capture_output=True, text=True,
                     check=False)
        result = self.run(self.command(job), env=environ, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            why = " ".join((result.stderr or result.stdout or f"exit code {result.returncode}").split())
            return f"systemd-run failed ({why}); {self.fallback(job)}"
        where = "the system manager" if not manager else "the user manager"
        return f"systemd timer {job.unit}.timer in {where}, log {job.log}"


def choose_launch(*, booted: Callable[[], bool] = systemd_booted,
                  which: Callable[[str], Optional[str]] = shutil.which) -> Launch:
    """A systemd timer where systemd runs the host, else a detached process."""
    systemd_run = which("systemd-run")
    if booted() and systemd_run:
        return SystemdRun(systemd_run, which("systemctl") or "systemctl")
    return launch_detached


def arm(store: RunStateStore, state: RunState, *, launch: Optional[Launch] = None,
        now: Callable[[], datetime] = utcnow) -> str:
    """Arms the time limit of the recorded run (replacing a timer armed before for it); returns a line for the
    user. `launch` defaults to `choose_launch()`."""
    if state.deadline is None:
        raise LimitError(f"{state.prefix} has no time limit to arm")
    log = store.path.with_name(f"time-limit-{state.run_id}.log")
    left_s = max(0.0, (state.deadline - now()).total_seconds())
    job = TimerJob(timer_command(store, state), log, timer_unit(state), max(1, math.ceil(left_s)))
    how = (launch or choose_launch())(job)
    return (f"time limit: training stops at {state.deadline:%Y-%m-%d %H:%M} UTC, in {left_s / 60:.0f} min "
            f"({state.max_minutes} min of training in all; {how})")


def enforce(store: RunStateStore, *, now: Callable[[], datetime] = utcnow, grace_s: float = 0.0,
            host_factory: Optional[HostFactory] = None, power_off: Optional[PowerOff] = None,
            token: Optional[str] = None, say: Say = console.say) -> Optional[StopReport]:
    """Stops the recorded run if its deadline has passed (by `grace_s`); the timer's entry point.

    With DR_POWER_OFF_AFTER_MAX_MINUTES, `power_off` powers the host off afterwards; without one (not root), or
    when it answers "failed" (Azure did not deallocate), the wish is recorded for the idle timer. Returns None
    when there was nothing to stop."""
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
        if power_off(report.host.system.cloud) != "failed":
            return report
        # Azure did not deallocate (said): the idle timer tries again
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
