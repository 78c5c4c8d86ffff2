"""A shutdown without a notice: the stop hook that does what a spot notice does.

AWS sends spot notices best-effort, and nothing announces a reboot, a retirement, `aws ec2 stop-instances`, an
Azure portal stop or a `sudo poweroff`. Without this, such a shutdown left the run recorded as running: the next
boot did not resume it, and the watchdog mailed that it "exited by itself". deepracer-shutdown.service is an
active oneshot unit (ExecStart=/bin/true, RemainAfterExit=yes) ordered After=docker.service: at shutdown units
stop in the reverse order of their start, so its ExecStop, `deepracer shutdown-stop`, runs while Docker, the
network and MinIO are still up. It interrupts a run recorded as starting, running or resuming exactly as a notice
does (session.lifecycle.stopping.interrupt: containers stopped, logs saved, the newest complete checkpoint
recorded, the run marked interrupted, Azure's copy to Blob until a deadline), so deepracer-resume.service
continues it at the next boot. A run the user's `deepracer stop` ended (stopped), the time limit ended, or a
notice interrupted already takes no notice event: then nothing happens.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable, Optional

from session.core import console
from session.core.console import Say
from session.host.factory import HostFactory
from session.lifecycle.spot import Bystanders, stop_timeout
from session.lifecycle.stopping import AfterStop, StopReport, interrupt, keep_evaluations
from session.run.state import Event, RunStateStore, utcnow

# Seconds the hook gives itself (stop, record, copy to Blob); the unit's TimeoutStopSec allows a little more.
SHUTDOWN_BUDGET_S = 90
REASON = "the host is shutting down without an interruption notice"


def on_shutdown(store: Optional[RunStateStore] = None, *, host_factory: Optional[HostFactory] = None,
                say: Say = console.say, now: Callable[[], datetime] = utcnow, budget_s: float = SHUTDOWN_BUDGET_S,
                after_stop: Optional[AfterStop] = None,
                bystanders: Optional[Bystanders] = None) -> Optional[StopReport]:
    """`deepracer shutdown-stop`: the graceful stop of a notice, within `budget_s`; None when no run was
    recorded as starting, running or resuming (then only the evaluations' models are kept, by `bystanders`)."""
    store = store or RunStateStore()
    deadline = now() + timedelta(seconds=budget_s)
    report = interrupt(store, event=Event.NOTICE, reason=REASON, timeout=stop_timeout(budget_s),
                       host_factory=host_factory, say=say, now=now, after_stop=after_stop, deadline=deadline)
    if report is None and bystanders is not None:
        try:
            keeper, engine = bystanders()
        except Exception as failure:  # noqa: BLE001 - the host is going down: say it, go on
            say(f"keeping the evaluations' models: {type(failure).__name__}: {failure}")
        else:
            keep_evaluations(keeper, engine, deadline=deadline, now=now, say=say)
    return report
