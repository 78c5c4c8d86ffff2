"""The run stopped when a swarm node carrying its workers is lost: the trainer would wait for their episodes
forever (session.run.node_loss says why), burning GPU time.

`deepracer swarm-watch` runs as root every 30 seconds (deepracer-swarm-watch.timer), a oneshot like the idle check:
only a swarm manager with a run recorded as running (or starting) asks the swarm anything; elsewhere a tick reads
the run state and ends (a second of CPU for the interpreter and its imports). A dedicated timer rather than the
idle check (every 5 minutes: too coarse while a GPU waits) or the spot watcher (a long-running loop whose job and
failure modes are the metadata service's, and which does not even run where no cloud sends notices); a oneshot
keeps no state in memory, so a crash or an update loses nothing, and the grace's start is kept in a file
(session.run.node_loss). A node down for `GRACE` (two minutes) or more stops the run through the graceful stop
the spot watcher and the time limit share (session.lifecycle.stopping.interrupt: `stop_training`, logs to
`<prefix>/logs/`, the newest checkpoint recorded, the models kept), recorded as `node-lost` with the node in the
reason; then an e-mail names the node, its workers and how to go on.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable, Optional

from session.core import console
from session.core.console import Say
from session.engine.containers import Engine, EngineError
from session.engine.swarm import Swarm
from session.host.factory import HostFactory
from session.lifecycle.notify import notify as _notify
from session.lifecycle.stopping import StopReport, interrupt
from session.run.node_loss import GRACE, DownNode, due, lost_workers, memory_path_beside, read_memory, write_memory
from session.run.state import Event, RunStateError, RunStateStore, Status, utcnow

CHECK_EVERY_S = 30  # deepracer-swarm-watch.timer's OnUnitActiveSec: a run stops within GRACE + this
STOP_TIMEOUT_S = 30.0  # per phase of the stop, as `deepracer stop`'s default: nothing hurries this one
WATCHED = (Status.RUNNING, Status.STARTING)
NODE_LOST = "training stopped: node lost"


def check(*, store: Optional[RunStateStore] = None, engine: Optional[Engine] = None,
          now: Callable[[], datetime] = utcnow, grace: timedelta = GRACE,
          host_factory: Optional[HostFactory] = None, notify: Callable[..., bool] = _notify,
          say: Say = console.say) -> Optional[StopReport]:
    """One tick: remember the nodes seen down under the recorded run, stop the run when one has been down for
    `grace`, then notify. Returns the stop's report, or None when nothing was stopped."""
    store = store or RunStateStore()
    memory_path = memory_path_beside(store.path)
    try:
        state = store.read()
    except RunStateError as error:
        say(f"swarm watch: {error}")
        return None
    if state is None or state.status not in WATCHED:
        if memory_path.exists():
            memory_path.unlink(missing_ok=True)
        return None
    moment = now()
    try:
        lost = lost_workers(Swarm(engine or Engine()), state.run_id)
    except EngineError as error:
        say(f"swarm watch: {error}")
        return None
    past, within, memory = due(lost, read_memory(memory_path), state.token, moment, grace)
    if lost:
        write_memory(memory_path, memory)
    elif memory_path.exists():
        memory_path.unlink(missing_ok=True)
    for node in within:
        say(f"swarm watch: {node.describe()} down since {node.since:%H:%M:%S} UTC; run {state.run_id} is stopped at "
            f"{node.since + grace:%H:%M:%S} UTC unless it returns")
    if not past:
        return None
    reason = lost_reason(past, grace)
    report = interrupt(store, event=Event.NODE_LOST, reason=reason, timeout=STOP_TIMEOUT_S,
                       host_factory=host_factory, say=say, now=now, token=state.token)
    if report is None:
        return None  # a stop, a notice or the run's end came first: their record stands
    memory_path.unlink(missing_ok=True)
    if report.host is not None:
        checkpoint = report.state.checkpoint
        notify(report.host.system, NODE_LOST, report.state.prefix, lost_details(past, grace, checkpoint), say=say)
    return report


def lost_reason(nodes: list[DownNode], grace: timedelta) -> str:
    """One line for the run state's reason, `status` and the journal."""
    names = "; ".join(f"{node.describe()} down since {node.since:%H:%M} UTC" for node in nodes)
    return f"swarm node lost: {names} (more than {grace.total_seconds() / 60:.0f} min)"


def lost_details(nodes: list[DownNode], grace: timedelta, checkpoint: Optional[str]) -> str:
    """The e-mail's body: which node, which workers, why the run could not go on, how to go on."""
    lines = [f"The swarm node {node.hostname} ({node.node_id[:12]}) has been down since "
             f"{node.since:%Y-%m-%d %H:%M} UTC (more than {grace.total_seconds() / 60:.0f} min) with worker(s) "
             f"{', '.join(str(w) for w in node.workers)} of this run." for node in nodes]
    lines.append("The trainer waits for every worker's episodes in each iteration, so the run could not go on "
                 "without them: it was stopped as `deepracer stop` does (logs saved under the model's logs/, models "
                 "kept).")
    where = f"its last checkpoint ({checkpoint})" if checkpoint else "its last checkpoint"
    lines.append(f"`deepracer increment` and then `deepracer train` continue from {where} under a new prefix, "
                 "on the nodes that are up; a node that comes back rejoins the swarm by itself.")
    return "\n".join(lines)
