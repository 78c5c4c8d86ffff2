"""`status`: is the host ready, what of the configured run runs, and how far its training has got.

Answering fast when nothing runs is the point of its shape (measured: importing boto3 ~0.25 s, the docker SDK
~0.18 s, rich ~0.05-0.09 s; the whole command has 0.3 s):

- The Docker Engine is asked directly over its unix socket with plain HTTP/1.0 (a list filtered by our run
  label, then one inspect per container found), not through the docker SDK nor http.client (~0.04 s to import).
  Other DOCKER_HOST schemes (tcp, ssh) go through `session.engine.containers.Engine`, which is correct but slower.
- Progress lives in storage, which needs botocore. `progress="auto"` (the default) reads it only while something
  of the run runs; when idle it shows the progress the last read left in a small cache file
  (`$XDG_CACHE_HOME/deepracer/progress-<crc32>.json`, default `~/.cache/deepracer/`), marked as cached with
  its time; session.run.progress itself is imported only when there is progress to read or show.
  `progress="always"` (the CLI's `--progress`) reads storage regardless; `"never"` skips progress.
- Rendering is plain text; no table library is imported.

Failures to reach Docker or storage do not raise: they are part of the status (`engine_error`,
`progress_error`), so the rest of it is still shown.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import os
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence, Union
from urllib.parse import quote

from session.core.paths import default_cache_dir
from session.core.text import iso
from session.engine.containers import (
    DEFAULT_HOST,
    LABEL_ROLE,
    LABEL_RUN,
    ROLE_SAGEMAKER,
    SAGEMAKER_ROOT,
    ContainerInfo,
    Engine,
    EngineError,
    container_info,
    sibling_info,
)
from session.host import first_boot as host_module
from session.run.node_loss import GRACE, DownNode, memory_path_beside, pending
from session.run.state import RunState, RunStateStore
from session.run.state import Status as RunStatus

if TYPE_CHECKING:  # pragma: no cover
    from session.core.config import RunConfig, SystemConfig
    from session.host.factory import Host
    from session.run.progress import TrainingProgress
    from session.storage.s3 import Storage

PROGRESS_MODES = ("auto", "always", "never")
ROLE_ORDER = ("trainer", ROLE_SAGEMAKER, "worker")
SHOWN_ITERATIONS = 5  # the newest iterations in the people's view; --json has them all
_DOCKER_TIMEOUT_S = 5.0
_CACHE_VERSION = 1


@dataclass(frozen=True)
class Status:
    """Everything `status` shows, as of `checked_at` (UTC)."""

    checked_at: datetime
    host_ready: bool
    system_env: str  # the system.env that was read
    host_log: str  # cloud-init's first-boot log, where a host that is not ready says why
    run_id: int
    model_prefix: str
    metrics_prefix: str
    bucket: str
    image: str
    workers: int  # DR_WORKERS
    docker_host: str
    containers: tuple[ContainerInfo, ...] = ()  # trainer, its SageMaker sibling, workers; any state
    engine_error: Optional[str] = None  # the Docker Engine could not be asked; containers is then empty
    progress: Optional[TrainingProgress] = None
    progress_source: Optional[str] = None  # storage | cache
    progress_error: Optional[str] = None  # storage could not be read (a cached progress may still be shown)
    recorded: Optional[RunState] = None  # the run state, when it records this run
    nodes_down: tuple[DownNode, ...] = ()  # swarm nodes seen down under it, within the swarm watch's grace
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def running(self) -> bool:
        """Whether any container of the run (the sibling trainer included) is running."""
        return any(container.running for container in self.containers)


def run_status(system: "SystemConfig", run: "RunConfig", *, progress: str = "auto",
               docker_host: Optional[str] = None, storage: Optional["Storage"] = None,
               system_env: Optional[Union[str, Path]] = None, ready_marker: Optional[Union[str, Path]] = None,
               cache_dir: Optional[Union[str, Path]] = None, now: Optional[datetime] = None,
               run_state: Optional[Union[str, Path]] = None) -> Status:
    """The status of the configured run.

    `progress`: "auto" reads storage while something of the run runs and shows the cached progress otherwise;
    "always" reads storage (the CLI's --progress); "never" leaves progress out. `docker_host` defaults to
    $DOCKER_HOST, else unix:///var/run/docker.sock; `storage` to the run's working bucket (created only when
    read); `system_env`/`ready_marker` to session.host.first_boot's paths; `cache_dir` to default_cache_dir();
    `run_state` to the run state's file (session.run.state).
    """

    if progress not in PROGRESS_MODES:
        raise ValueError(f"progress must be one of {', '.join(PROGRESS_MODES)}, got {progress!r}")
    checked_at = now or datetime.now(timezone.utc)
    timings: dict[str, float] = {}
    with _timed(timings, "host"):
        state = host_module.host_state(Path(system_env) if system_env is not None else None,
                                       Path(ready_marker) if ready_marker is not None else None)
    with _timed(timings, "run state"):
        recorded, nodes_down = read_recorded(run, run_state)
    url = docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    with _timed(timings, "docker"):
        containers, engine_error = _containers(url, system, run)
    base = Status(
        checked_at=checked_at, host_ready=state.ready, system_env=state.system_env_path,
        host_log=state.log, run_id=run.run_id, model_prefix=run.local_s3_model_prefix,
        metrics_prefix=run.local_s3_metrics_prefix, bucket=system.local_s3_bucket, image=system.simapp_image,
        workers=system.workers, docker_host=url, containers=tuple(containers), engine_error=engine_error,
        recorded=recorded, nodes_down=nodes_down, timings_ms=timings)

    cache = _cache_file(Path(cache_dir) if cache_dir is not None else default_cache_dir(), system, run)
    found, source, error = None, None, None
    if progress == "always" or (progress == "auto" and base.running):
        with _timed(timings, "storage"):
            found, error = _read_storage(system, run, storage)
        if found is not None:
            source = "storage"
            _write_cache(cache, system, run, found)
    if found is None and progress != "never":
        with _timed(timings, "cache"):
            found = _read_cache(cache, system, run)
        source = "cache" if found is not None else None
    return replace(base, progress=found, progress_source=source, progress_error=error)


def host_status(host: "Host", **options: Any) -> Status:
    """run_status for a `session.run.training.Host` (its configs, storage and Docker socket)."""
    return run_status(host.system, host.run, storage=host.storage, docker_host=f"unix://{host.docker_socket}",
                      **options)


def read_recorded(run: "RunConfig",
                  path: Optional[Union[str, Path]]) -> tuple[Optional[RunState], tuple[DownNode, ...]]:
    """The run state when it records this run (by its id), and the swarm nodes the swarm watch has seen down under
    it; an unreadable state is no state here (`status` reports the containers either way)."""
    store = RunStateStore(Path(path) if path is not None else None)
    state = store.read_or_none()
    if state is None or state.run_id != run.run_id:
        return None, ()
    return state, tuple(pending(memory_path_beside(store.path), state.token))


# --- the Docker Engine, asked over its socket ------------------------------------------------------------------


class _DockerSocket:
    """GET requests to the Docker Engine API over its unix socket, JSON answers.

    HTTP/1.0, one connection per request: the engine then answers without chunking and closes the connection
    at the end of the body, which is all the parsing this needs; http.client alone would cost more to import
    than the whole exchange takes."""

    def __init__(self, path: str, timeout: float = _DOCKER_TIMEOUT_S) -> None:
        self._path, self._timeout = path, timeout

    def get(self, target: str) -> Any:
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(self._timeout)
            connection.connect(self._path)
            connection.sendall(f"GET {target} HTTP/1.0\r\nHost: docker\r\n\r\n".encode("ascii"))
            chunks = []
            while chunk := connection.recv(1 << 16):
                chunks.append(chunk)
        status, body = _parse_response(b"".join(chunks))
        if status != 200:
            try:
                message = json.loads(body).get("message", "")
            except (ValueError, AttributeError):
                message = body.decode("utf-8", "replace")[:200]
            raise _ApiError(status, f"GET {target.split('?')[0]}: {status} {message}".strip())
        return json.loads(body)

    def inspect(self, container_id: str) -> Optional[dict]:
        """A container's inspect document; None when it went away since it was listed."""
        try:
            return self.get(f"/containers/{quote(container_id, safe='')}/json")
        except _ApiError as error:
            if error.status == 404:
                return None
            raise


def _parse_response(raw: bytes) -> tuple[int, bytes]:
    head, separator, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if not separator or not version.startswith("HTTP/") or not code.isdigit():
        raise ValueError("the answer is not HTTP")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in header_lines)}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return int(code), body


def _dechunk(body: bytes) -> bytes:
    out: list[bytes] = []
    position = 0
    while True:
        end = body.index(b"\r\n", position)
        size = int(body[position:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(body[end + 2:end + 2 + size])
        position = end + 2 + size + 2


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _containers(url: str, system: "SystemConfig", run: "RunConfig") -> tuple[list[ContainerInfo], Optional[str]]:
    """The run's containers and its SageMaker sibling, or an error line when the engine cannot be asked."""
    path = url[len("unix://"):] if url.startswith("unix://") else url if url.startswith("/") else None
    if path is None:
        return _containers_through_sdk(url, system, run)
    api = _DockerSocket(path)
    try:
        listed = api.get(_list_path({"label": [LABEL_ROLE, f"{LABEL_RUN}={run.run_id}"]}))
        ours = [container_info(attrs) for attrs in (api.inspect(item["Id"]) for item in listed) if attrs is not None]
        siblings = _siblings(api, system.simapp_image, run.local_s3_model_prefix, str(run.run_id))
    except _ApiError as error:
        return [], f"the Docker Engine at {url} refused: {error}"
    except OSError as error:
        return [], _unreachable(url, error)
    except ValueError as error:  # not HTTP or not JSON: something else listens there
        return [], f"the Docker Engine at {url} gave an answer that is not the Docker API's ({error})"
    if system.sim_nodes or any(SWARM_TASK_LABEL in (item.get("Labels") or {}) for item in listed):
        # Workers run as a swarm service here: some may be on other nodes, which only the manager's swarm API
        # lists (session.run.training.run_containers, through the Docker SDK).
        return _containers_through_sdk(url, system, run)
    known = {container.id for container in ours}
    return ordered([*ours, *(s for s in siblings if s.id not in known)]), None


SWARM_TASK_LABEL = "com.docker.swarm.task.id"  # on every container a swarm service's task runs


def _siblings(api: _DockerSocket, image: str, marker: str, run: str,
              root: str = SAGEMAKER_ROOT) -> list[ContainerInfo]:
    """Engine.sagemaker_siblings over the socket: the same rule on the same inspect documents. Usually no
    container has `-algo-` in its name, and then this is one request."""
    candidates = [item for item in api.get(_list_path({"name": ["-algo-"]}))
                  if LABEL_ROLE not in (item.get("Labels") or {})]
    if not candidates:
        return []
    image_id: Optional[str] = None
    try:
        image_id = api.get(f"/images/{quote(image, safe='')}/json")["Id"]
    except _ApiError:
        pass  # not on this host: only containers naming the image by reference can match
    found = []
    for item in candidates:
        attrs = api.inspect(item["Id"])
        info = sibling_info(attrs, image, image_id, marker, run, root) if attrs is not None else None
        if info is not None:
            found.append(info)
    return found


def _containers_through_sdk(url: str, system: "SystemConfig",
                            run: "RunConfig") -> tuple[list[ContainerInfo], Optional[str]]:
    from session.run.training import run_containers  # start-up: the storage stack, only on other DOCKER_HOSTs

    try:
        return ordered(run_containers(Engine(base_url=url), system, run)), None
    except EngineError as error:
        return [], str(error)


def _list_path(filters: dict[str, list[str]]) -> str:
    return "/containers/json?all=1&filters=" + quote(json.dumps(filters, separators=(",", ":")))


def _unreachable(url: str, error: OSError) -> str:
    if isinstance(error, PermissionError):
        return (f"permission denied on the Docker Engine socket at {url}: add your user to the docker group "
                "(sudo usermod -aG docker $USER), then log out and in again")
    reason = error.strerror or str(error) or type(error).__name__
    return f"cannot reach the Docker Engine at {url}: {reason}; is Docker running?"


def ordered(containers: Sequence[ContainerInfo]) -> list[ContainerInfo]:
    """Trainer, its SageMaker sibling, then the workers by number."""
    def key(container: ContainerInfo) -> tuple[int, int, str]:
        role = container.role or ""
        return (ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER), container.worker or 0,
                container.name)

    return sorted(containers, key=key)


# --- progress: storage and the cache ---------------------------------------------------------------------------


def _read_storage(system: "SystemConfig", run: "RunConfig",
                  storage: Optional["Storage"]) -> tuple[Optional["TrainingProgress"], Optional[str]]:
    # start-up: the storage stack loads only when progress is read (a running run, or --progress)
    from session.host.factory import storage_for  # start-up
    from session.run.progress import read_progress  # start-up
    from session.storage.s3 import StorageError  # start-up

    try:
        if storage is None:
            storage = storage_for(system)
        return read_progress(storage, run.local_s3_model_prefix, run.local_s3_metrics_prefix), None
    except StorageError as error:
        return None, str(error)


def _cache_file(directory: Path, system: "SystemConfig", run: "RunConfig") -> Path:
    where = "\n".join((system.local_s3_endpoint_url or "", system.local_s3_bucket, run.local_s3_model_prefix))
    return directory / f"progress-{binascii.crc32(where.encode()):08x}.json"


def _write_cache(path: Path, system: "SystemConfig", run: "RunConfig", progress: "TrainingProgress") -> None:
    """Best effort: a status that cannot write its cache is still a status."""
    document = {"version": _CACHE_VERSION, "endpoint": system.local_s3_endpoint_url,
                "bucket": system.local_s3_bucket, "model_prefix": run.local_s3_model_prefix,
                "progress": progress.to_dict()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(document))
        os.replace(temporary, path)
    except OSError:
        pass


def _read_cache(path: Path, system: "SystemConfig", run: "RunConfig") -> Optional["TrainingProgress"]:
    try:
        document = json.loads(path.read_text())
        if (document.get("version"), document.get("endpoint"), document.get("bucket"),
                document.get("model_prefix")) != (_CACHE_VERSION, system.local_s3_endpoint_url,
                                                  system.local_s3_bucket, run.local_s3_model_prefix):
            return None

        from session.run.progress import TrainingProgress  # start-up: only when a cached digest is read

        return TrainingProgress.from_dict(document["progress"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


# --- output ----------------------------------------------------------------------------------------------------


def as_json(status: Status) -> dict[str, Any]:
    """The status for programs (`--json`): plain JSON types, times in ISO 8601 UTC, durations in seconds."""
    progress = None
    if status.progress is not None:
        progress = {**status.progress.to_dict(), "source": status.progress_source}
    return {
        "checked_at": iso(status.checked_at),
        "host": {"ready": status.host_ready, "system_env": status.system_env, "log": status.host_log},
        "run": {"id": status.run_id, "model_prefix": status.model_prefix, "metrics_prefix": status.metrics_prefix,
                "bucket": status.bucket, "image": status.image, "workers": status.workers},
        "running": status.running,
        "engine": {"host": status.docker_host, "error": status.engine_error},
        "containers": [container_json(container, status.checked_at) for container in status.containers],
        "progress": progress,
        "progress_error": status.progress_error,
        "recorded": _recorded_json(status),
        "timings_ms": {name: round(value, 1) for name, value in status.timings_ms.items()},
    }


def render(status: Status) -> str:
    """The status for people: a few lines and two small tables."""
    lines = [f"host      {'ready' if status.host_ready else 'NOT ready'}"
             + ("" if status.host_ready else f" (first-boot log: {status.host_log})")]
    lines.append(f"run {status.run_id:<5} {status.model_prefix} in s3://{status.bucket}, {status.workers} "
                 f"worker(s), image {status.image}")
    lines.extend(_render_recorded(status))
    lines.extend(_render_containers(status))
    lines.extend(_render_progress(status))
    return "\n".join(lines) + "\n"


def _render_recorded(status: Status) -> list[str]:
    return recorded_lines(status.recorded, status.nodes_down, status.running)


def recorded_lines(state: Optional[RunState], nodes_down: Sequence[DownNode], running: bool) -> list[str]:
    """Why the run stopped, or that it is being stopped, when the run state says so; a swarm node counting down
    to the swarm watch's stop (`status` and `watch` show them)."""
    if state is None:
        return []
    lines = []
    if state.status is RunStatus.NODE_LOST:
        if running:
            lines.append(f"stopping  {state.reason}: the swarm watch is stopping the run")
        else:
            when = f" at {state.stopped:%Y-%m-%d %H:%M} UTC" if state.stopped else ""
            lines.append(f"stopped   {state.reason}; the swarm watch stopped the run{when}")
            lines.append("          `deepracer increment`, then `deepracer train`, continue from its last checkpoint"
                         + (f" ({state.checkpoint})" if state.checkpoint else ""))
    elif state.status in (RunStatus.RUNNING, RunStatus.STARTING):
        for node in nodes_down:
            lines.append(f"swarm     {node.describe()} is down since {node.since:%H:%M:%S} UTC: the run is stopped "
                         f"at {node.since + GRACE:%H:%M:%S} UTC unless it returns")
    return lines


def _render_containers(status: Status) -> list[str]:
    if status.engine_error:
        return [f"docker    {status.engine_error}"]
    if not status.containers:
        return [f"          nothing of run {status.run_id} runs (no containers)"]
    running = [c for c in status.containers if c.running]
    head = (f"          {len(running)} of {len(status.containers)} container(s) running" if running
            else f"          nothing of run {status.run_id} runs")
    rows = [("ROLE", "STATE", "UPTIME", "EXIT", "NAME")]
    for container in status.containers:
        role = f"worker {container.worker}" if container.role == "worker" and container.worker else container.role
        rows.append((role or "?", _state(container, status.checked_at), _uptime(container, status.checked_at),
                     "" if container.exit_code is None else str(container.exit_code), container.name))
    return [head, *_table(rows, right={2, 3})]


def _render_progress(status: Status) -> list[str]:
    progress = status.progress
    if progress is None:
        if status.progress_error:
            return [f"progress  cannot read storage: {status.progress_error}"]
        if status.progress_source is None and not status.running:
            return ["progress  not read while nothing runs (`--progress` reads it from storage)"]
        return []
    said = []
    if status.progress_source == "cache":
        when = progress.read_at.strftime("%Y-%m-%d %H:%M UTC") if progress.read_at else "an earlier status"
        why = f"storage unreadable: {status.progress_error}" if status.progress_error else "`--progress` reads it now"
        said.append(f"as read at {when} ({why})")
    if not progress.started:
        said.append(f"nothing in s3://{status.bucket}/{progress.model_prefix}/ yet")
    else:
        newest = progress.newest_checkpoint
        summary = [f"{progress.episodes} episodes", f"{progress.laps} laps completed"]
        if progress.episodes_per_iteration:
            summary.insert(1, f"{progress.episodes_per_iteration} per worker and iteration")
        if newest is not None:
            summary.insert(0, f"iteration {newest.number} (checkpoint {newest.name}, {newest.steps} steps)")
        elif progress.iterations:
            summary.insert(0, f"iteration {progress.iterations[-1].number}")
        said.append(", ".join(summary))
        checkpoints = []
        for label, checkpoint in (("best", progress.best_checkpoint), ("last evaluated", progress.last_checkpoint)):
            if checkpoint is not None:
                metric = ("" if checkpoint.metric is None
                          else f" ({progress.best_model_metric or 'metric'} {checkpoint.metric:.1f})")
                checkpoints.append(f"{label} {checkpoint.name}{metric}")
        if progress.updated is not None:
            checkpoints.append(f"updated {_ago(progress.updated, status.checked_at)} ago")
        if checkpoints:
            said.append(", ".join(checkpoints))
    lines = [("progress  " if index == 0 else " " * 10) + text for index, text in enumerate(said)]
    if progress.iterations:
        rows = [("ITER", "EPISODES", "REWARD", "PROGRESS", "LAPS", "EVAL")]
        for iteration in progress.iterations[-SHOWN_ITERATIONS:]:
            rows.append((str(iteration.number), str(iteration.episodes), _fixed(iteration.mean_reward),
                         _percent(iteration.mean_completion), str(iteration.laps),
                         _percent(iteration.eval_completion)))
        lines.extend(_table(rows, right=set(range(6))))
    lines.extend(f"  note: {note}" for note in progress.notes)
    return lines


def _table(rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  " + "  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                             for i, cell in enumerate(row)).rstrip() for row in rows]


def _recorded_json(status: Status) -> Optional[dict[str, Any]]:
    state = status.recorded
    if state is None:
        return None
    return {"status": state.status.value, "reason": state.reason, "stopped": iso(state.stopped),
            "checkpoint": state.checkpoint,
            "nodes_down": [{"node": node.hostname, "workers": list(node.workers), "since": iso(node.since),
                            "stop_at": iso(node.since + GRACE)} for node in status.nodes_down]}


def container_json(container: ContainerInfo, now: datetime) -> dict[str, Any]:
    """One container for programs (`status --json`, the dashboard): plain JSON types, times in ISO 8601 UTC."""
    uptime = None
    if container.running and container.started_at is not None:
        uptime = round(max(0.0, (now - container.started_at).total_seconds()), 1)
    return {"role": container.role, "worker": container.worker, "name": container.name, "id": container.id,
            "image": container.image, "status": container.status, "running": container.running,
            "exit_code": container.exit_code, "started_at": iso(container.started_at),
            "finished_at": iso(container.finished_at), "uptime_s": uptime}


def _uptime(container: ContainerInfo, now: datetime) -> str:
    if container.running and container.started_at is not None:
        return _ago(container.started_at, now)
    return "-"


def _state(container: ContainerInfo, now: datetime) -> str:
    if not container.running and container.finished_at is not None:
        return f"{container.status} {_ago(container.finished_at, now)} ago"
    return container.status


def _ago(moment: datetime, now: datetime) -> str:
    seconds = int(max(0.0, (now - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 1:
        return f"{minutes}m"
    if days < 1:
        return f"{hours}h{minutes % 60:02d}m"
    return f"{days}d{hours % 24:02d}h"


def _fixed(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}%"


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Adds the block's milliseconds to timings[name]."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + (time.perf_counter() - start) * 1000
