"""`watch` (`status --follow`): a live view of the running session, drawn with rich.

`follow_session` is the loop: one thread per container follows its log (`Engine.follow`, from the container's
start, so the view knows the whole run) and hands lines to a queue; the loop feeds them to a
`session.insight.live.LiveState`, lists the run's containers every few seconds (new ones get a follower), reads the
progress from storage in the background every `progress_every_s`, probes the GPU (`nvidia-smi`) and the disks,
and passes a snapshot to `on_snapshot` at every refresh. It ends when nothing of the run runs any more and every
log has been read, when `until(snapshot)` says so, or after `max_refreshes`; Ctrl-C ends `watch_run`.

The trainer's lines come from its SageMaker sibling when it exists as the follower starts, else from the
rl_coach container, which relays the sibling's log as Compose v2 does (`<container name>  | <line>`); never both,
or every episode would count twice.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from session.engine.containers import Engine
from session.host.factory import storage_for
from session.insight.live import DiskUse, GpuUse, LiveState, Snapshot, StallRules
from session.insight.status import read_recorded, recorded_lines
from session.run.progress import read_progress as read
from session.run.training import run_containers

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console, RenderableType

    from session.core.config import RunConfig, SystemConfig
    from session.engine.containers import ContainerInfo, Engine
    from session.run.progress import TrainingProgress
    from session.storage.s3 import Storage

DISK_PATHS = ("/", "/mnt")
NVIDIA_SMI_QUERY = ("--query-gpu=utilization.gpu,memory.used,memory.total", "--format=csv,noheader,nounits")
SHOWN_ITERATIONS = 8
_QUEUE_LINES = 20000  # followers wait when the loop is this far behind (a long run's backlog)
_PUT_WAIT_S = 0.5  # a follower waiting on a full queue looks this often whether the view ended
_NVIDIA_SMI_TIMEOUT_S = 5.0

HostProbe = Tuple[Optional[Tuple[GpuUse, ...]], Optional[str], Tuple[DiskUse, ...]]


# --- the host: GPU and disks -------------------------------------------------------------------------------------


def parse_nvidia_smi(text: str) -> Tuple[GpuUse, ...]:
    """`nvidia-smi --query-gpu=utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits`: one
    `<util>, <used MiB>, <total MiB>` line per GPU. Raises ValueError on anything else ("[N/A]" included)."""
    gpus = []
    for index, line in enumerate(row for row in text.splitlines() if row.strip()):
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 3:
            raise ValueError(f"expected 3 values per GPU, got {line.strip()!r}")
        utilization, used, total = (float(part) for part in parts)
        gpus.append(GpuUse(index, utilization, used, total))
    return tuple(gpus)


def gpu_usage(run: Callable[..., Any] = subprocess.run,
              which: Callable[[str], Optional[str]] = shutil.which) -> Tuple[Optional[Tuple[GpuUse, ...]],
                                                                             Optional[str]]:
    """(GPUs, None); (None, None) when there is no nvidia-smi (no GPU); (None, why) when it fails."""
    program = which("nvidia-smi")
    if program is None:
        return None, None
    try:
        done = run([program, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=_NVIDIA_SMI_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"nvidia-smi failed: {error}"
    if done.returncode != 0:
        said = " ".join((done.stderr or done.stdout or "").split())[:200]
        return None, f"nvidia-smi exited with code {done.returncode}: {said}"
    try:
        return parse_nvidia_smi(done.stdout), None
    except ValueError as error:
        return None, f"nvidia-smi said something unexpected: {error}"


def disk_usage(paths: Sequence[str] = DISK_PATHS) -> Tuple[DiskUse, ...]:
    """Use of each path's file system; a path missing, or on a file system already listed, is left out."""
    found, devices = [], set()
    for path in paths:
        try:
            device = os.stat(path).st_dev
            usage = shutil.disk_usage(path)
        except OSError:
            continue
        if device in devices:
            continue
        devices.add(device)
        found.append(DiskUse(path, usage.total, usage.used, usage.free))
    return tuple(found)


def probe_host() -> HostProbe:
    gpus, error = gpu_usage()
    return gpus, error, disk_usage()


# --- the loop ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """Whose log a follower reads: the trainer (worker None) or worker n."""

    container_id: str
    worker: Optional[int]


def follow_session(list_containers: Callable[[], Sequence["ContainerInfo"]],
                   open_log: Callable[["ContainerInfo"], Iterator[str]],
                   on_snapshot: Callable[[Snapshot], None], *,
                   state: Optional[LiveState] = None, rules: StallRules = StallRules(),
                   read_progress: Optional[Callable[[], "TrainingProgress"]] = None,
                   probe: Optional[Callable[[], HostProbe]] = probe_host,
                   clock: Callable[[], float] = time.time, refresh_s: float = 1.0,
                   containers_every_s: float = 5.0, progress_every_s: float = 30.0, probe_every_s: float = 5.0,
                   until: Optional[Callable[[Snapshot], bool]] = None,
                   max_refreshes: Optional[int] = None) -> Snapshot:
    """Follows the run until it ends (see the module's docstring); returns the last snapshot.

    `list_containers` lists the run's containers (any state); `open_log` is `Engine.follow`; `clock` gives Unix
    seconds for the lines' arrival and the snapshots (the intervals themselves run on the monotonic clock).
    The first listing's EngineError propagates; later ones are shown and retried."""
    state = state if state is not None else LiveState()
    events: "queue.Queue[Tuple[Any, ...]]" = queue.Queue(maxsize=_QUEUE_LINES)
    cancelled = threading.Event()
    sources: Dict[str, _Source] = {}
    opened: Dict[str, Any] = {}  # each follower's log, closed when the view ends (a quiet log blocks its reader)
    ended: set = set()
    busy: set = set()  # background reads in flight: progress, probe
    containers: List["ContainerInfo"] = []
    refreshes = 0
    now = time.monotonic()
    due = {"containers": now, "progress": now, "probe": now}
    first_listing = True

    def start_followers() -> None:
        trainer_followed = any(source.worker is None for source in sources.values())
        siblings = [c for c in containers if c.role == "sagemaker"]
        trainers = siblings or [c for c in containers if c.role == "trainer"]
        for container in containers:
            if container.id in sources:
                continue
            if container.role == "worker" and container.worker:
                source = _Source(container.id, container.worker)
            elif container in trainers[:1] and not trainer_followed:
                source, trainer_followed = _Source(container.id, None), True
            else:
                continue
            sources[container.id] = source
            threading.Thread(target=_pump, args=(container, source, open_log, events, clock, cancelled, opened),
                             name=f"follow-{container.name}", daemon=True).start()

    def background(kind: str, work: Callable[[], Any]) -> None:
        busy.add(kind)

        def run() -> None:
            try:
                result: Tuple[Any, ...] = (kind, work(), None)
            except Exception as error:  # noqa: BLE001 - one line in the view; the loop goes on
                result = (kind, None, " ".join(str(error).split()) or type(error).__name__)
            events.put(result)

        threading.Thread(target=run, name=f"watch-{kind}", daemon=True).start()

    def handle(item: Tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "line":
            _, source, line, at = item
            if source.worker is None:
                state.trainer_line(line, at)
            else:
                state.worker_line(source.worker, line, at)
        elif kind == "end":
            ended.add(item[1].container_id)
            due["containers"] = 0.0  # it most likely exited: see its state now
        elif kind == "progress":
            busy.discard(kind)
            state.set_progress(item[1], item[2], clock())
        elif kind == "probe":
            busy.discard(kind)
            gpus, gpu_error, disks = item[1] if item[1] is not None else (None, item[2], ())
            state.set_host(gpus, gpu_error, disks)

    def finished() -> bool:
        return (not busy and set(sources) <= ended and events.empty()
                and not any(c.running for c in containers))

    try:
        while True:
            now = time.monotonic()
            if now >= due["containers"]:
                try:
                    containers = list(list_containers())
                    state.set_containers(containers)
                except Exception as error:
                    if first_listing:
                        raise
                    state.set_containers((), error=" ".join(str(error).split()))
                first_listing = False
                start_followers()
                due["containers"] = now + containers_every_s
            if read_progress is not None and "progress" not in busy and now >= due["progress"]:
                background("progress", read_progress)
                due["progress"] = now + progress_every_s
            if probe is not None and "probe" not in busy and now >= due["probe"]:
                background("probe", probe)
                due["probe"] = now + probe_every_s
            deadline = time.monotonic() + refresh_s
            while not finished() and due["containers"] > 0.0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    handle(events.get(timeout=remaining))
                except queue.Empty:
                    break
            snapshot = state.snapshot(clock(), rules)
            on_snapshot(snapshot)
            refreshes += 1
            if (until is not None and until(snapshot)) or finished() or (
                    max_refreshes is not None and refreshes >= max_refreshes):
                return snapshot
    finally:
        cancelled.set()
        for lines in list(opened.values()):
            close = getattr(lines, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()


def _pump(container: "ContainerInfo", source: _Source, open_log: Callable[["ContainerInfo"], Iterator[str]],
          events: "queue.Queue[Tuple[Any, ...]]", clock: Callable[[], float], cancelled: threading.Event,
          opened: Optional[Dict[str, Any]] = None) -> None:
    """Thread body: every line of one container's log, then its end. Once the view ends it stops reading and
    closes the log, also while the queue is full: a follower left blocked would hold the manager's subscription
    to a swarm service's log open, and that node's log would stop flowing to any other reader (`stop` among them)."""
    lines = open_log(container)
    if opened is not None:
        opened[source.container_id] = lines
    try:
        for line in lines:
            while True:
                try:
                    events.put(("line", source, line, clock()), timeout=_PUT_WAIT_S)
                    break
                except queue.Full:
                    if cancelled.is_set():
                        return
            if cancelled.is_set():
                return
    except Exception:  # noqa: BLE001 - a broken stream ends like a closed one; the container's state tells which
        pass
    finally:
        close = getattr(lines, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()
    events.put(("end", source))


# --- rendering ---------------------------------------------------------------------------------------------------


def render(snapshot: Snapshot, title: str = "") -> "RenderableType":
    """The snapshot for people: a header, the trainer, the workers, the newest iterations, host, stalls."""
    from rich.console import Group
    from rich.text import Text

    now = snapshot.at
    when = datetime.fromtimestamp(now, timezone.utc).strftime("%H:%M:%S UTC")
    parts: List[Any] = [Text.assemble(("deepracer watch", "bold"), f"  {title}  " if title else "  ", (when, "dim"))]
    if snapshot.engine_error:
        parts.append(Text(f"docker: {snapshot.engine_error}", style="red"))
    trainer = snapshot.trainer
    if trainer.state is None and trainer.last_line_at is None and not snapshot.workers:
        parts.append(Text("nothing of this run runs (no trainer or worker containers)", style="yellow"))
    parts.append(_trainer_lines(snapshot))
    if snapshot.workers:
        parts.append(_workers_table(snapshot))
    if snapshot.iterations:
        parts.append(_iterations_table(snapshot))
    parts.append(_host_line(snapshot))
    parts.append(_stalls(snapshot))
    return Group(*parts)


def _trainer_lines(snapshot: Snapshot) -> "RenderableType":
    from rich.table import Table

    now, trainer = snapshot.at, snapshot.trainer
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    said = [_state(trainer.state, trainer.exit_code)]
    if trainer.iteration is not None:
        said.append(f"iteration {trainer.iteration}")
    if trainer.checkpoint is not None:
        steps = f", {trainer.checkpoint_steps:,} steps" if trainer.checkpoint_steps is not None else ""
        age = f", {_ago(now, trainer.checkpoint_at)}" if trainer.checkpoint_at is not None else ""
        said.append(f"checkpoint {trainer.checkpoint}{steps}{age}")
    said.append(f"{trainer.episodes} episodes received"
                + (f" ({trainer.episodes_since_checkpoint} this iteration)" if trainer.checkpoint is not None else ""))
    if trainer.malformed:
        said.append(f"{trainer.malformed} unreadable lines")
    grid.add_row("trainer", " · ".join(said))
    policy = trainer.policy
    if policy is not None:
        text = (f"epoch {policy.epoch}: loss {policy.surrogate_loss:.4g} · KL {policy.kl_divergence:.4g} · "
                f"entropy {policy.entropy:.4g}")
        if policy.learning_rate is not None:
            text += f" · lr {policy.learning_rate:g}"
        if trainer.updating_policy:
            text += " (updating now)"
        grid.add_row("policy", text)
    best = snapshot.best
    if best is not None:
        metric = (f" ({best.metric_name or 'metric'} {best.metric:.1f})" if best.metric is not None else "")
        grid.add_row("best", f"checkpoint {best.number}{metric}, as {best.source} says")
    grid.add_row("storage", _storage_text(snapshot))
    return grid


def _storage_text(snapshot: Snapshot) -> str:
    progress = snapshot.progress
    said = []
    if progress is not None:
        if progress.started:
            newest = progress.newest_checkpoint
            said.append(f"{progress.episodes} episodes, {progress.laps} laps"
                        + (f", newest checkpoint {newest.name}" if newest is not None else ""))
        else:
            said.append(f"nothing under {progress.model_prefix}/ yet")
        if snapshot.progress_at is not None and not snapshot.progress_error:
            said.append(f"read {_ago(snapshot.at, snapshot.progress_at)}")
    if snapshot.progress_error:
        said.append(f"cannot read: {snapshot.progress_error}")
    return " · ".join(said) if said else "not read yet"


def _workers_table(snapshot: Snapshot) -> "RenderableType":
    from rich.table import Table

    table = Table(box=None, padding=(0, 1), header_style="bold")
    for name, right in (("WORKER", False), ("STATE", False), ("DOING", False), ("EPISODES", True), ("LAPS", True),
                        ("EPISODE/STEP", True), ("PROGRESS", True), ("STEPS/S", True), ("CKPT", True),
                        ("LAST STEP", True)):
        table.add_column(name, justify="right" if right else "left", no_wrap=True)
    for worker in snapshot.workers:
        doing = worker.phase
        if worker.phase == "evaluating" and worker.awaited_checkpoint is not None:
            doing = f"evaluating, awaits {worker.awaited_checkpoint}"
        table.add_row(
            str(worker.number), _state(worker.state, worker.exit_code), doing, str(worker.episodes),
            str(worker.laps), f"{worker.episode}/{worker.step}" if worker.episode is not None else "-",
            f"{worker.progress:.1f}%" if worker.progress is not None else "-",
            f"{worker.steps_per_s:.1f}" if worker.steps_per_s is not None else "-",
            str(worker.checkpoint) if worker.checkpoint is not None else "-",
            _ago(snapshot.at, worker.last_step_at) if worker.last_step_at is not None else "-")
    return table


def _iterations_table(snapshot: Snapshot) -> "RenderableType":
    from rich.table import Table

    table = Table(box=None, padding=(0, 1), header_style="bold",
                  title=f"iterations (newest {SHOWN_ITERATIONS})" if len(snapshot.iterations) > SHOWN_ITERATIONS
                  else None, title_justify="left")
    for name in ("ITER", "CKPT", "EPISODES", "REWARD", "COMPLETION", "LAPS", "EVAL", "ENTROPY", "KL", "LOSS"):
        table.add_column(name, justify="right", no_wrap=True)
    best = snapshot.best.number if snapshot.best is not None else None
    for row in snapshot.iterations[-SHOWN_ITERATIONS:]:
        policy = row.policy
        table.add_row(
            str(row.number), str(row.checkpoint) + ("*" if row.checkpoint == best else ""), str(row.episodes),
            _fixed(row.mean_reward), _percent(row.mean_completion), str(row.laps),
            _percent(row.eval_mean) if row.eval_metric in (None, "progress") else _fixed(row.eval_mean),
            f"{policy.entropy:.4f}" if policy else "-", f"{policy.kl_divergence:.4f}" if policy else "-",
            f"{policy.surrogate_loss:.4f}" if policy else "-")
    return table


def _host_line(snapshot: Snapshot) -> "RenderableType":
    from rich.text import Text

    if snapshot.gpus:
        gpu = " · ".join(f"GPU {g.index} {g.utilization_pct:.0f}%, {g.memory_used_mib / 1024:.1f}/"
                         f"{g.memory_total_mib / 1024:.1f} GiB" for g in snapshot.gpus)
    elif snapshot.gpu_error:
        gpu = f"GPU: {snapshot.gpu_error}"
    else:
        gpu = "no GPU"
    disks = " · ".join(f"disk {d.path} {d.used_pct:.0f}% used, {d.free_bytes / 2**30:.1f} GiB free"
                       for d in snapshot.disks)
    return Text.assemble(("host     ", "bold"), gpu, ("  ·  " + disks) if disks else "")


def _stalls(snapshot: Snapshot) -> "RenderableType":
    from rich.text import Text

    if not snapshot.stalls:
        return Text("no stalls", style="green")
    text = Text()
    for index, stall in enumerate(snapshot.stalls):
        if index:
            text.append("\n")
        style = "bold red" if stall.kind in ("exception", "exited") else "bold yellow"
        text.append(f"STALL {stall.subject}: {stall.message}", style=style)
        text.append(f"\n      likely cause: {stall.cause}")
    return text


def _state(state: Optional[str], exit_code: Optional[int]) -> str:
    if state is None:
        return "?"
    return f"{state} ({exit_code})" if exit_code is not None else state


def _ago(now: float, then: Optional[float]) -> str:
    if then is None:
        return "-"
    seconds = int(max(0.0, now - then))
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 5400:
        return f"{seconds // 60} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _fixed(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _titled(title: str, run: "RunConfig", snapshot: Snapshot) -> str:
    """The title, with what the run state says of a swarm node lost (the swarm watch stops the run, or did)."""
    try:
        state, nodes_down = read_recorded(run, None)
    except OSError:
        return title
    running = snapshot.trainer.state == "running" or any(w.state in ("running", "lost") for w in snapshot.workers)
    return "\n".join([title, *(" ".join(line.split()) for line in recorded_lines(state, nodes_down, running))])


# --- the command's body ------------------------------------------------------------------------------------------


def watch_run(system: "SystemConfig", run: "RunConfig", *, rules: StallRules = StallRules(),
              refresh_s: float = 1.0, progress_every_s: float = 30.0, engine: Optional["Engine"] = None,
              storage: Optional["Storage"] = None, console: Optional["Console"] = None) -> int:
    """`watch`: the live view of the configured run until it ends or Ctrl-C; 0 either way. Storage is read
    as it is (MinIO is not started for this)."""
    from rich.live import Live


    engine = engine or Engine()
    title = f"run {run.run_id} · {run.local_s3_model_prefix} · s3://{system.local_s3_bucket}"
    lazily: Dict[str, "Storage"] = {}

    def read_progress() -> "TrainingProgress":
        if "storage" not in lazily:
            lazily["storage"] = storage if storage is not None else storage_for(system)
        return read(lazily["storage"], run.local_s3_model_prefix, run.local_s3_metrics_prefix)

    with Live(console=console, auto_refresh=False, transient=False) as live:
        try:
            follow_session(lambda: run_containers(engine, system, run), engine.follow,
                           lambda snapshot: live.update(render(snapshot, _titled(title, run, snapshot)),
                                                        refresh=True),
                           rules=rules, read_progress=read_progress, refresh_s=refresh_s,
                           progress_every_s=progress_every_s)
        except KeyboardInterrupt:
            pass  # Ctrl-C ends watching, not the training
    return 0
