"""The Docker Engine edge: start containers from specs, find them by label, read their logs, wait until ready.

What runs is always read back from the engine through labels (`deepracer.run`, `deepracer.role`,
`deepracer.worker`, `deepracer.prefix`), never from pid files or memory, so `status` and `stop` work from any
shell. A container without our role label was not made by us and is never removed here.

Every failure to talk to the daemon leaves as an `EngineError` whose text is one line a user can act on. The
docker SDK is imported on first use, so commands that never touch Docker start fast.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Deque,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Pattern,
    Sequence,
    Tuple,
    Union,
)

from session.core.errors import DeepracerError
from session.engine.streams import close_quietly, split_lines
from session.engine.task_log import QUIET_S as TASK_QUIET_S
from session.engine.task_log import TaskFollow, TaskLog

if TYPE_CHECKING:  # pragma: no cover
    import docker

LABEL_RUN = "deepracer.run"  # run id as a string, e.g. "0"
LABEL_ROLE = "deepracer.role"  # trainer | worker | evaluation | minio ...
LABEL_WORKER = "deepracer.worker"  # 1-based worker number, workers only
LABEL_PREFIX = "deepracer.prefix"  # the model prefix in the bucket
LABEL_MANAGED = "deepracer.managed"  # on networks we created: "true"

ROLE_SAGEMAKER = "sagemaker"  # the role given to the trainer's SageMaker-local sibling (it carries no labels)
SAGEMAKER_ROOT = "/tmp/sagemaker"  # where SageMaker-local writes one folder (and compose file) per container
STOP_COMMAND = "deepracer stop"
DEFAULT_HOST = "unix:///var/run/docker.sock"

_ACTIVE = ("running", "paused", "restarting")
_SIBLING_NAME = re.compile(r"-algo-\d+-")
_TAIL_LINES = 20
_COMPOSE_CONFIG_FILES = "com.docker.compose.project.config_files"
_COMPOSE_WORKING_DIR = "com.docker.compose.project.working_dir"
_SWARM_TASK_NAME = "com.docker.swarm.task.name"  # swarm's labels on a replica's container
_SWARM_TASK_ID = "com.docker.swarm.task.id"
# Swarm's task states after which the task's container no longer runs (swarmkit api/types.proto TaskState).
_TASK_ENDED = ("complete", "shutdown", "failed", "rejected", "orphaned", "remove")
_TASK_POLL_S = 1.0
TASK_LOG_READ_S = 60.0  # the longest a whole swarm task's log is read through the manager (task_logs)
_SWARM_SERVICE_NAME = "com.docker.swarm.service.name"
COMPOSE_NETWORK_LABEL = "com.docker.compose.network"
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"

ContainerRef = Union["ContainerInfo", str]  # a ContainerInfo, or a container's id or name


class EngineError(DeepracerError):
    """A Docker Engine failure; `str()` is one line for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def compose_network_labels(name: str) -> Dict[str, str]:
    """The labels by which Docker Compose v2 recognises `name` as the network its compose files declare."""
    return {COMPOSE_NETWORK_LABEL: name, COMPOSE_PROJECT_LABEL: name}


@dataclass(frozen=True)
class Mount:
    """A host path (or a named volume, when `source` is not absolute) seen inside the container at `target`."""

    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to start one container; rendered elsewhere from the config, run here."""

    name: str
    image: str
    command: Optional[Tuple[str, ...]]
    environment: Dict[str, str]
    labels: Dict[str, str]
    mounts: Tuple[Mount, ...]
    network: str
    working_dir: Optional[str] = None
    entrypoint: Optional[Tuple[str, ...]] = None
    init: bool = True  # a real PID 1 forwards SIGTERM and reaps the simulator's children
    user: Optional[str] = None
    gpus: bool = False  # request every GPU (docker run --gpus all)
    ports: Tuple["Port", ...] = ()
    # A helper that needs no privilege at all (the dashboard's camera relay): a read-only root, no capabilities,
    # no new privileges (setuid), few processes.
    confined: bool = False


@dataclass(frozen=True)
class Port:
    """A container port published on the host; loopback by default, so nothing is open to the network."""

    container_port: int
    host_port: int
    host_ip: str = "127.0.0.1"


@dataclass(frozen=True)
class ContainerInfo:
    """One container as the engine reports it. Times are UTC; `exit_code` is set once it has exited."""

    id: str
    name: str
    image: str
    role: Optional[str]
    run: Optional[str]
    worker: Optional[int]
    prefix: Optional[str]
    status: str  # created | running | paused | restarting | exited | dead | removing
    exit_code: Optional[int] = None
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    # A swarm service's replica (session.engine.swarm): the node it is on, its task and its service. Its
    # container may be on another node, so its logs are read through the manager, by task.
    node: Optional[str] = None
    task: Optional[str] = None
    service: Optional[str] = None

    @property
    def running(self) -> bool:
        return self.status in _ACTIVE

    @property
    def lost(self) -> bool:
        """A swarm replica whose node is down: it ran there, and nobody can tell whether it still does."""
        return self.status == "lost"

    @property
    def short_id(self) -> str:
        return self.id[:12]


@dataclass(frozen=True)
class Finished:
    """A container that ran to its end (`Engine.run`): exit code and output; `timed_out` when it was killed."""

    name: str
    exit_code: int
    output: str
    timed_out: bool = False


@dataclass(frozen=True)
class SimappException:
    """The simulator's fatal-error line: `{"simapp_exception": {"date", "function", "message", ...}}`."""

    message: str
    error_code: str = ""  # "400" user error, "500"/"503" system error
    exception_type: str = ""
    event_type: str = ""  # user_error | system_error
    function: str = ""
    date: str = ""

    def __str__(self) -> str:
        return f"{self.message} (errorCode {self.error_code})" if self.error_code else self.message


@dataclass(frozen=True)
class WatchEvent:
    """What `watch_until_ready` reports as it goes: a log `line`, a container turning `ready`, or one `exited`."""

    container: ContainerInfo
    kind: str  # line | ready | exited
    line: str = ""


@dataclass(frozen=True)
class Readiness:
    """The outcome of `watch_until_ready`.

    ready: every container printed a ready line. Otherwise either `failed` names the container that exited
    (with its exit code) and `error_lines` says why, or the wait timed out and `not_ready` names who never got
    there.
    """

    ready: bool
    failed: Optional[ContainerInfo] = None
    error_lines: Tuple[str, ...] = ()
    exception: Optional[SimappException] = None
    not_ready: Tuple[str, ...] = ()
    compose_error: Optional[str] = None  # why Docker Compose started no SageMaker container, if it said

    @property
    def summary(self) -> str:
        """One line for the user."""
        if self.ready:
            return "all containers are ready"
        if self.failed is not None:
            where = f" on node {self.failed.node}" if self.failed.node else ""
            head = f"{self.failed.name}{where} exited with code {self.failed.exit_code}"
            if self.exception is not None:
                return f"{head}: {self.exception}"
            if self.compose_error is not None:
                return f"{head}: Docker Compose did not start its SageMaker container: {self.compose_error}"
            last = self.error_lines[-1] if self.error_lines else "it printed nothing"
            return " ".join(f"{head}; last line: {last}".split())
        return f"not ready in time: {', '.join(self.not_ready)}"


def parse_simapp_exception(line: str) -> Optional[SimappException]:
    """The simapp_exception in one log line, if it holds one. ROS 2 launch tags may precede the JSON."""
    start = line.find('{"simapp_exception"')
    if start < 0:
        return None
    try:
        document, _ = json.JSONDecoder().raw_decode(line, start)
    except ValueError:
        return None
    body = document.get("simapp_exception") if isinstance(document, dict) else None
    if not isinstance(body, dict):
        return SimappException(message=str(body)) if body else None
    text = {key: "" if body.get(key) is None else str(body.get(key))
            for key in ("message", "errorCode", "exceptionType", "eventType", "function", "date")}
    return SimappException(message=text["message"], error_code=text["errorCode"],
                           exception_type=text["exceptionType"], event_type=text["eventType"],
                           function=text["function"], date=text["date"])


# What Compose v2 prints when it starts nothing (the SageMaker SDK relays it into the trainer's log): its fatal
# errors stand alone at the start of a line, unlike its `time=... level=warning` notes and the sibling's own lines.
_COMPOSE_LABEL_ERROR = re.compile(r"^network (\S+) was found but has incorrect label \S+ set to .*$")
_COMPOSE_DAEMON_ERROR = re.compile(r"^Error response from daemon: .+$")


def parse_compose_error(line: str) -> Optional[str]:
    """Compose's reason for starting no container, if `line` is one, with what to do about a network refused."""
    label = _COMPOSE_LABEL_ERROR.match(line.strip())
    if label is not None:
        return (f"{label.group(0)}; `deepracer train` re-creates network {label.group(1)} with Compose's labels "
                f"while nothing is attached to it")
    daemon = _COMPOSE_DAEMON_ERROR.match(line.strip())
    return daemon.group(0) if daemon is not None else None


def container_info(attrs: Dict[str, Any]) -> ContainerInfo:
    """A ContainerInfo from the engine's inspect document (for callers that talk to the API themselves)."""
    return _info(attrs)


def sibling_info(attrs: Dict[str, Any], image: str, image_id: Optional[str], marker: str, run: Optional[str],
                 root: str = SAGEMAKER_ROOT) -> Optional[ContainerInfo]:
    """The rule of `Engine.sagemaker_siblings` for one inspected container: its info, or None if it is not
    the SageMaker sibling of that run (see there for why each condition holds)."""
    name = attrs.get("Name", "").lstrip("/")
    match = _SIBLING_NAME.search(name)
    config = attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    if match is None or LABEL_ROLE in labels:
        return None
    if config.get("Image") != image and (image_id is None or attrs.get("Image") != image_id):
        return None
    env = _environment(attrs)
    if run is not None and env.get("RUN_ID", run) != str(run):
        return None
    word = re.compile(rf"(?<![\w.-]){re.escape(marker)}(?![\w.-])")
    if not any(word.search(f"{key}={value}") for key, value in env.items()) and not any(
            word.search(text) for text in _compose_files(name[:match.start()], labels, Path(root))):
        return None
    return _info(attrs, role=ROLE_SAGEMAKER, run=env.get("RUN_ID", run))


_CONFINED: Dict[str, Any] = {"read_only": True, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
                             "pids_limit": 64}


class Engine:
    """The Docker Engine on this host. Connects on first use: `client` as given, else `base_url`, else the
    environment (`DOCKER_HOST`, default unix:///var/run/docker.sock)."""

    def __init__(self, client: Optional["docker.DockerClient"] = None, base_url: Optional[str] = None) -> None:
        self._given_client = client
        self._base_url = base_url
        self._connected: Optional["docker.DockerClient"] = client

    # --- connection and errors -------------------------------------------------------------------------------

    @property
    def _client(self) -> "docker.DockerClient":
        if self._connected is None:
            with self._translated():
                import docker

                self._connected = (docker.DockerClient(base_url=self._base_url) if self._base_url
                                   else docker.from_env())
        return self._connected

    def _url(self) -> str:
        if self._base_url:
            return self._base_url
        from docker.utils import kwargs_from_env

        return kwargs_from_env().get("base_url") or DEFAULT_HOST

    @contextlib.contextmanager
    def _translated(self, action: str = "") -> Iterator[None]:
        """Daemon unreachable -> the docker-group hint; any other API failure -> what was being done and why."""
        import requests
        from docker.errors import APIError, DockerException

        try:
            yield
        except EngineError:
            raise
        except APIError as exc:
            explanation = exc.explanation or str(exc)
            raise EngineError(f"{action}: {explanation}" if action else str(explanation)) from exc
        except (requests.exceptions.RequestException, DockerException, OSError) as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: BaseException) -> EngineError:
        url = self._url()
        cause = _root_os_error(exc)
        if isinstance(cause, PermissionError) or "permission denied" in str(exc).lower():
            return EngineError(f"permission denied on the Docker Engine socket at {url}: add your user to the "
                               f"docker group (sudo usermod -aG docker $USER), then log out and in again")
        reason = (cause.strerror if cause is not None and cause.strerror else str(exc))[:300]
        return EngineError(f"cannot reach the Docker Engine at {url}: {reason}; is Docker running, and is your "
                           f"user in the docker group (log out and in after adding)?")

    def _inspect(self, container: ContainerRef) -> Optional[dict]:
        """The container's inspect document, or None when there is no such container."""
        from docker.errors import NotFound

        with self._translated(f"cannot inspect container {_name_of(container)}"):
            try:
                return self._client.api.inspect_container(_ref(container))
            except NotFound:
                return None

    # --- networks, images ------------------------------------------------------------------------------------

    def ensure_network(self, name: str, subnet: Optional[str] = None) -> str:
        """A user-defined bridge network called `name` that Docker Compose v2 accepts as its own, created if
        missing.

        The simulator's trainer starts its sibling through SageMaker's local mode, which writes a compose file
        naming this network (not as external) and runs Compose v2; Compose refuses an existing network without
        its `com.docker.compose.network` label (and may still exit 0, so the trainer never trains). So the
        network carries Compose's labels, as DRfC's bin/activate.sh creates it, and an unlabelled one left by an
        older version is re-created while nothing is attached to it, on its old addresses unless `subnet` says
        otherwise (whatever reaches the host on its gateway, or avoids a clash with its subnet, still does).
        """
        from docker.errors import APIError, NotFound
        from docker.types import IPAMConfig, IPAMPool

        previous: Optional[IPAMConfig] = None
        with self._translated(f"cannot create network {name}"):
            existing = [network for network in self._client.networks.list(names=[name]) if network.name == name]
            if existing:
                network = existing[0]
                network.reload()  # list() leaves out the attached containers
                if (network.attrs.get("Labels") or {}).get(COMPOSE_NETWORK_LABEL) == name:
                    return name
                attached = sorted(c.get("Name", cid[:12]) for cid, c in (network.attrs.get("Containers") or {}).items())
                if attached:
                    raise EngineError(
                        f"network {name} lacks Docker Compose's label {COMPOSE_NETWORK_LABEL}={name}, so the "
                        f"trainer's SageMaker container could not start on it; it is re-created by itself once "
                        f"nothing uses it, but {', '.join(attached)} still does: stop it ({STOP_COMMAND}, or "
                        f"docker stop {' '.join(attached)}) and try again")
                try:
                    network.remove()
                except NotFound:
                    pass
                if not subnet:
                    pools = [IPAMPool(subnet=pool["Subnet"], gateway=pool.get("Gateway"), iprange=pool.get("IPRange"))
                             for pool in (network.attrs.get("IPAM") or {}).get("Config") or [] if pool.get("Subnet")]
                    previous = IPAMConfig(pool_configs=pools) if pools else None
            ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=subnet)]) if subnet else previous
            labels = {LABEL_MANAGED: "true", **compose_network_labels(name)}
            try:
                self._client.networks.create(name, driver="bridge", ipam=ipam, labels=labels)
            except APIError as exc:
                if exc.status_code == 409:  # created meanwhile by someone else: it exists, which is all we need
                    return name
                detail = exc.explanation or str(exc)
                hint = "; choose another subnet" if subnet and "overlap" in str(detail).lower() else ""
                on = f" with subnet {subnet}" if subnet else ""
                raise EngineError(f"cannot create network {name}{on}: {detail}{hint}") from exc
        return name

    def image_present(self, image: str) -> bool:
        from docker.errors import ImageNotFound

        with self._translated(f"cannot inspect image {image}"):
            try:
                self._client.api.inspect_image(image)
                return True
            except ImageNotFound:
                return False

    # --- containers ------------------------------------------------------------------------------------------

    def start(self, spec: ContainerSpec) -> ContainerInfo:
        """Creates and starts the container detached, without a restart policy.

        A leftover of ours with the same name (stopped) is removed first; a running one, or one we did not make,
        is an error and stays as it is.
        """
        from docker.errors import APIError

        container = self._create(spec)
        with self._translated(f"cannot start container {spec.name}"):
            try:
                container.start()
            except APIError:
                # A container that never ran is only clutter, and its name would clash with the next attempt.
                with contextlib.suppress(APIError):
                    container.remove(force=True)
                raise
            container.reload()
        return _info(container.attrs)

    def for_service(self, spec: ContainerSpec) -> ContainerSpec:
        """The container a swarm service of this engine's runs for `spec` (session.engine.swarm): the spec itself.
        A test's stand-in engine adds what its stand-in image needs here, as it does in `start`."""
        return spec

    def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Creates the container without starting it (what `start` does first)."""
        return _info(self._create(spec).attrs)

    def run(self, spec: ContainerSpec, timeout_s: float) -> "Finished":
        """Starts the container, waits until it exits, returns its exit code and output, and removes it.

        After `timeout_s` the container is killed and removed, and the result says it timed out."""
        import requests
        from docker.errors import APIError, NotFound

        info = self.start(spec)
        timed_out = False
        try:
            with self._translated(f"cannot wait for container {spec.name}"):
                try:
                    code = int(self._client.api.wait(info.id, timeout=max(1, int(timeout_s)))["StatusCode"])
                except requests.exceptions.RequestException as exc:
                    if not _timed_out(exc):
                        raise
                    timed_out, code = True, -1
                    with contextlib.suppress(APIError, NotFound):
                        self._client.api.kill(info.id)
            output = self.logs(info)
        finally:
            with contextlib.suppress(APIError, NotFound):
                self._client.api.remove_container(info.id, v=True, force=True)
        return Finished(spec.name, code, output, timed_out)

    def info(self) -> Dict[str, Any]:
        """The daemon's `docker info` document (DefaultRuntime, Runtimes, DockerRootDir, ServerVersion ...)."""
        with self._translated("cannot read the Docker Engine's settings"):
            return dict(self._client.info())

    def _create(self, spec: ContainerSpec):
        from docker.errors import ImageNotFound, NotFound
        from docker.types import DeviceRequest

        existing = self._inspect(spec.name)
        if existing is not None:
            labels = existing["Config"].get("Labels") or {}
            if existing["State"]["Status"] in _ACTIVE:
                raise EngineError(f"container {spec.name} is already running; stop it first with `{STOP_COMMAND}`")
            if LABEL_ROLE not in labels:
                raise EngineError(f"a container named {spec.name} already exists and deepracer did not make it "
                                  f"(no {LABEL_ROLE} label); rename or remove it (docker rm {spec.name})")
            with self._translated(f"cannot remove the leftover container {spec.name}"):
                try:
                    self._client.api.remove_container(existing["Id"], v=True)
                except NotFound:
                    pass

        for mount in spec.mounts:
            if ":" in mount.source or ":" in mount.target:
                raise EngineError(f"container {spec.name}: mount {mount.source} -> {mount.target}: "
                                  f"paths with ':' cannot be mounted")
        with self._translated(f"cannot create container {spec.name}"):
            try:
                container = self._client.containers.create(
                    spec.image,
                    command=list(spec.command) if spec.command is not None else None,
                    name=spec.name,
                    environment=dict(spec.environment),
                    labels=dict(spec.labels),
                    # Bind syntax rather than Mount objects: like compose, the daemon creates a missing host folder.
                    volumes=[f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in spec.mounts],
                    network=spec.network,
                    working_dir=spec.working_dir,
                    entrypoint=list(spec.entrypoint) if spec.entrypoint is not None else None,
                    init=spec.init,
                    user=spec.user,
                    device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])] if spec.gpus else None,
                    ports={f"{p.container_port}/tcp": (p.host_ip, p.host_port) for p in spec.ports} or None,
                    **(_CONFINED if spec.confined else {}),
                )
            except ImageNotFound as exc:
                raise EngineError(f"image {spec.image} is not on this host; pull it with `docker pull {spec.image}`"
                                  ) from exc
            except NotFound as exc:
                detail = exc.explanation or str(exc)
                if "network" in str(detail).lower():
                    raise EngineError(f"cannot create container {spec.name}: network {spec.network} does not "
                                      f"exist") from exc
                raise
        return container

    def get(self, container: ContainerRef) -> Optional[ContainerInfo]:
        """The container by id or name, fresh from the engine; None when it does not exist."""
        attrs = self._inspect(container)
        return _info(attrs) if attrs is not None else None

    def address(self, container: ContainerRef, network: str) -> Optional[str]:
        """The container's IP address on `network`, where this host reaches its ports (a user-defined bridge is
        routed from the host); None when it is gone or not on that network."""
        attrs = self._inspect(container)
        networks = ((attrs or {}).get("NetworkSettings") or {}).get("Networks") or {}
        return (networks.get(network) or {}).get("IPAddress") or None

    def list(self, run: Optional[str] = None, role: Optional[str] = None) -> List[ContainerInfo]:
        """Our containers in every state, optionally of one run and/or role, sorted by role, then worker."""
        filters = [LABEL_ROLE]
        if run is not None:
            filters.append(f"{LABEL_RUN}={run}")
        if role is not None:
            filters.append(f"{LABEL_ROLE}={role}")
        with self._translated("cannot list containers"):
            found = self._client.containers.list(all=True, filters={"label": filters}, ignore_removed=True)
        return sorted((_info(container.attrs) for container in found), key=_order)

    def sagemaker_siblings(self, image: str, marker: str, run: Optional[str] = None,
                           root: str = SAGEMAKER_ROOT) -> List[ContainerInfo]:
        """The SageMaker-local containers the trainer of one run started itself through the Docker socket.

        They carry none of our labels, so they are found the way DRfC's `dr-find-sagemaker` finds them:
        the SageMaker SDK's local mode (2.x) names each container `<random>-algo-<n>-<random>` and writes its
        compose file to `<root>/tmpXXXX/docker-compose.yaml`, which Compose v2 records in the container's
        labels (older versions named the container after that folder). A container counts when its name has
        `-algo-<n>-`, it runs `image` (by reference or by image id), it is not one of ours, and `marker` (the
        model prefix: the SDK hands it down as TRAINING_JOB_NAME) appears as a whole word in its environment or
        in its compose file (the compose labels' files or working dir, else the folder its name points to; read
        only under `root`, and skipped when unreadable, as it is root-only on some hosts). When `run` is given
        and the container's environment has a RUN_ID, it must be that run's.
        """
        with self._translated("cannot list containers"):
            candidates = self._client.containers.list(all=True, filters={"name": "-algo-"}, ignore_removed=True)
            image_id = self._image_id(image)
        found = [info for info in (sibling_info(c.attrs, image, image_id, marker, run, root) for c in candidates)
                 if info is not None]
        return sorted(found, key=lambda info: info.name)

    def _image_id(self, image: str) -> Optional[str]:
        from docker.errors import ImageNotFound

        try:
            return self._client.api.inspect_image(image)["Id"]
        except ImageNotFound:
            return None

    def stop(self, containers: Iterable[ContainerRef], timeout: float = 30) -> List[ContainerInfo]:
        """Stops the running ones together (SIGTERM, then SIGKILL after `timeout` s) and keeps them, so their
        logs stay readable until the next start; returns the stopped ones as they are now."""

        def stop_one(container: ContainerRef) -> Optional[ContainerInfo]:
            from docker.errors import NotFound

            attrs = self._inspect(container)
            if attrs is None or attrs["State"]["Status"] not in _ACTIVE:
                return None
            with self._translated(f"cannot stop container {_name_of(container)}"):
                try:
                    self._client.api.stop(attrs["Id"], timeout=int(timeout))
                except NotFound:
                    return None
            return self.get(attrs["Id"])

        targets = [*containers]
        if not targets:
            return []
        with ThreadPoolExecutor(max_workers=min(len(targets), 16)) as pool:
            stopped = list(pool.map(stop_one, targets))
        return [info for info in stopped if info is not None]

    def remove(self, containers: Iterable[ContainerRef]) -> List[ContainerInfo]:
        """Removes stopped containers of ours (with their anonymous volumes); skips any we did not make.
        A running one is an error: stop it first."""
        from docker.errors import NotFound

        removed = []
        for container in containers:
            attrs = self._inspect(container)
            if attrs is None or LABEL_ROLE not in (attrs["Config"].get("Labels") or {}):
                continue
            info = _info(attrs)
            if info.running:
                raise EngineError(f"container {info.name} is still running; stop it first with `{STOP_COMMAND}`")
            with self._translated(f"cannot remove container {info.name}"):
                try:
                    self._client.api.remove_container(info.id, v=True)
                except NotFound:
                    continue
            removed.append(info)
        return removed

    # --- logs ------------------------------------------------------------------------------------------------

    def logs(self, container: ContainerRef, tail: Optional[int] = None,
             since: Optional[Union[datetime, int, float]] = None) -> str:
        """stdout and stderr interleaved as written; `tail` last lines only, `since` a time or a Unix timestamp."""
        from docker.errors import NotFound

        if self._elsewhere(container) and since is None:
            assert isinstance(container, ContainerInfo) and container.service and container.task
            return self.task_logs(container.service, container.task, tail)
        options: Dict[str, Any] = {"stdout": True, "stderr": True}
        if tail is not None:
            options["tail"] = tail
        if since is not None:
            options["since"] = since
        with self._translated(f"cannot read the logs of {_name_of(container)}"):
            try:
                data = self._client.api.logs(_ref(container), **options)
            except NotFound as exc:
                raise EngineError(f"no container {_name_of(container)}") from exc
        # Containers with a TTY (SageMaker's sibling has one) end lines with \r\n.
        return data.decode("utf-8", "replace").replace("\r\n", "\n")

    def _elsewhere(self, container: ContainerRef) -> bool:
        """A swarm replica whose container is not on this engine's node: its log comes through the manager."""
        return (isinstance(container, ContainerInfo) and bool(container.task and container.service)
                and self._inspect(container) is None)

    def task_logs(self, service: str, task: str, tail: Optional[int] = None,
                  timeout_s: float = TASK_LOG_READ_S) -> str:
        """One swarm task's log through the manager, which asks the node that ran it: with that node down it
        does not answer (Docker 20.10), so a caller that knows of a lost node does not ask. A log that grows
        faster than the manager relays it (the task goes on writing), or a manager that keeps its answer open,
        would never end: after `timeout_s` what was read is returned, with a last line saying so."""
        # The node sends the last `tail` lines only: a long log's end need not come through the manager whole.
        read = TaskLog(self._task_stream(service, task, follow=False, tail=tail), f"{_SWARM_TASK_ID}={task}")
        lines: List[str] = []
        # The deadline closes the stream even while no byte comes (a manager that keeps the answer open).
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            read.close()

        timer = threading.Timer(timeout_s, expire)
        timer.daemon = True
        timer.start()
        try:
            with self._translated(f"cannot read the logs of task {task[:12]} of service {service}"):
                try:
                    for line in read:
                        lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
                except Exception:
                    if not expired.is_set():
                        raise  # a real failure; a stream the deadline closed ends like a finished one
        finally:
            timer.cancel()
            read.close()
        cut = expired.is_set()
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        if cut:  # what was read is kept: the log saved at a stop is better cut than missing
            lines.append(f"[deepracer: stopped reading after {timeout_s:.0f} s: the swarm manager kept relaying (a "
                         "log that grows faster than it relays) or kept its answer open]")
        return "".join(f"{line}\n" for line in lines)

    def _task_stream(self, service: str, task: str, follow: bool = True, tail: Optional[int] = None,
                     since: Optional[str] = None, timestamps: bool = False) -> Any:
        """The manager's stream of one swarm task's log (its last `tail` lines, or all; as it arrives, with
        `follow`; from `since`, Unix seconds with nanoseconds), each line led by its details (and its time, with
        `timestamps`). Built as the SDK's service_logs builds a service's, but closable from another thread (the
        SDK hands back a bare generator): a reader that gives up must end the manager's subscription, not leave it
        open. The task's own log, not its service's: the manager subscribes to that task's node for that task
        alone."""
        from docker.types import CancellableStream

        api = self._client.api
        params: Dict[str, Any] = {"details": True, "follow": follow, "stdout": True, "stderr": True,
                                  "timestamps": timestamps, "tail": "all" if tail is None else str(tail)}
        if since is not None:
            params["since"] = since
        with self._translated(f"cannot read the logs of task {task[:12]} of service {service}"):
            response = api._get(api._url("/tasks/{0}/logs", task), params=params, stream=True)
            api._raise_for_status(response)
        # Our services have no TTY: the stream is multiplexed, as the SDK reads a container's.
        return CancellableStream(api._multiplexed_response_stream_helper(response), response)

    def _task_ended(self, task: str) -> Optional[bool]:
        """Whether a swarm task's container no longer runs (a task removed with its service has ended too); None
        when the manager does not say (busy, or unreachable)."""
        from docker.errors import NotFound

        try:
            attrs = self._client.api.inspect_task(task)
        except NotFound:
            return True
        except Exception:  # noqa: BLE001 - the caller asks again later
            return None
        return ((attrs or {}).get("Status") or {}).get("State") in _TASK_ENDED

    def follow(self, container: ContainerRef, new_only: bool = False) -> Iterator[str]:
        """The container's log lines from its start (`new_only`: from now), then as they arrive; ends when the
        container exits. Closing the iterator closes the stream, also from another thread (a follower blocked on a
        quiet log)."""
        return _Lines(self._open_stream(container, new_only))

    def _open_stream(self, container: ContainerRef, new_only: bool = False, quiet_s: float = TASK_QUIET_S) -> Any:
        """A local container's log stream, or for a swarm replica on another node its task's, through the manager,
        subscribed anew whenever it has been quiet for `quiet_s` while the task runs (session/engine/task_log.py)."""
        from docker.errors import NotFound

        if self._elsewhere(container):
            assert isinstance(container, ContainerInfo) and container.service and container.task
            service, task = container.service, container.task
            return TaskFollow(
                lambda since, first_new_only: self._task_stream(service, task, tail=0 if first_new_only else None,
                                                                since=since, timestamps=True),
                lambda: self._task_ended(task), f"{_SWARM_TASK_ID}={task}", new_only=new_only, quiet_s=quiet_s)

        with self._translated(f"cannot read the logs of {_name_of(container)}"):
            try:
                return self._client.api.logs(_ref(container), stdout=True, stderr=True, stream=True, follow=True,
                                             tail=0 if new_only else "all")
            except NotFound as exc:
                raise EngineError(f"no container {_name_of(container)}") from exc

    def watch_until_ready(self, containers: Sequence[ContainerInfo],
                          ready_patterns: Mapping[str, Sequence[Union[str, Pattern[str]]]],
                          timeout_s: float,
                          on_event: Optional[Callable[[WatchEvent], None]] = None) -> Readiness:
        """Follows every container's log (one thread each) until each printed a line matching a pattern of its
        role (`re.search`); a role without patterns is ready as soon as it runs.

        Stops early when a container exits before it is ready, or exits non-zero at all: the result names it
        with its exit code and the simulator's simapp_exception if it printed one, else Docker Compose's error if
        it relayed one (the trainer's compose started no sibling), else its last lines. After
        `timeout_s` the result names the containers that never got ready. `on_event` is called on this thread.
        """
        patterns = {role: [re.compile(p) for p in found] for role, found in ready_patterns.items()}
        by_name = {info.name: info for info in containers}
        tails: Dict[str, Deque[str]] = {name: deque(maxlen=_TAIL_LINES) for name in by_name}
        errors: Dict[str, SimappException] = {}
        compose_errors: Dict[str, str] = {}
        ready = {name for name, info in by_name.items() if not patterns.get(info.role or "")}
        events: "queue.Queue[Tuple[str, str, Any]]" = queue.Queue()
        cancelled = threading.Event()
        deadline = time.monotonic() + timeout_s
        streams = []

        def emit(event: WatchEvent) -> None:
            if on_event is not None:
                on_event(event)

        try:
            elsewhere = set()
            for name, info in by_name.items():
                stream = self._open_stream(info)
                streams.append(stream)
                threading.Thread(target=self._pump, args=(info, stream, events, cancelled, deadline),
                                 name=f"logs-{name}", daemon=True).start()
                if self._elsewhere(info):
                    # The manager's stream of a service's log outlives each replica: the task's state tells its end.
                    elsewhere.add(name)
                    threading.Thread(target=self._watch_task, args=(info, events, cancelled),
                                     name=f"task-{name}", daemon=True).start()
            for name in sorted(ready):
                emit(WatchEvent(by_name[name], "ready"))
            while len(ready) < len(by_name):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return Readiness(False, not_ready=tuple(sorted(set(by_name) - ready)))
                try:
                    name, kind, value = events.get(timeout=remaining)
                except queue.Empty:
                    continue
                info = by_name[name]
                if kind == "line":
                    tails[name].append(value)
                    error = parse_simapp_exception(value)
                    if error is not None:
                        errors[name] = error
                    compose_error = parse_compose_error(value)
                    if compose_error is not None:
                        compose_errors[name] = compose_error
                    emit(WatchEvent(info, "line", value))
                    if name not in ready and any(p.search(value) for p in patterns.get(info.role or "", ())):
                        ready.add(name)
                        emit(WatchEvent(info, "ready", value))
                    continue
                # The log stream ended: the container exited (value = its exit code), or None: it still runs
                # but its stream broke, and then only the timeout can tell.
                if value is None or (name in ready and value == 0):
                    continue
                if name in elsewhere:
                    # Its last lines may still be on their way through the manager's stream: read them whole.
                    final = _exited(info, value)
                    with contextlib.suppress(EngineError):
                        tails[name] = deque(self.logs(info, tail=_TAIL_LINES).splitlines(), maxlen=_TAIL_LINES)
                        for line in tails[name]:
                            found = parse_simapp_exception(line)
                            if found is not None:
                                errors[name] = found
                else:
                    final = self.get(info.id) or info
                emit(WatchEvent(final, "exited"))
                error, compose_error = errors.get(name), compose_errors.get(name)
                lines = ((str(error),) if error is not None else (compose_error,) if compose_error is not None
                         else tuple(tails[name]))
                return Readiness(False, failed=final, error_lines=lines, exception=error,
                                 compose_error=compose_error)
            return Readiness(True)
        finally:
            cancelled.set()
            for stream in streams:
                close_quietly(stream)

    def _watch_task(self, info: ContainerInfo, events: "queue.Queue[Tuple[str, str, Any]]",
                    cancelled: threading.Event) -> None:
        """Thread body for a replica on another node: its exit code once its task ended (swarm offers no event
        for one task, so its state is asked every second until then or until the watch ends)."""
        while not cancelled.is_set():
            try:
                attrs = self._client.api.inspect_task(info.task)
            except Exception:  # noqa: BLE001 - the manager is busy or the task went: ask again
                attrs = None
            status = (attrs or {}).get("Status") or {}
            if status.get("State") in _TASK_ENDED:
                code = (status.get("ContainerStatus") or {}).get("ExitCode")
                # A task rejected before its container ran (no image on its node) has no exit code.
                events.put((info.name, "end", int(code) if code is not None else -1))
                return
            cancelled.wait(_TASK_POLL_S)

    def _pump(self, info: ContainerInfo, stream: Any, events: "queue.Queue[Tuple[str, str, Any]]",
              cancelled: threading.Event, deadline: float) -> None:
        """Thread body: every line of one container's log, then its exit code (None if it did not exit)."""
        try:
            for line in split_lines(stream):
                events.put((info.name, "line", line))
        except Exception:  # noqa: BLE001 - a broken stream ends like a closed one; the wait below tells which
            pass
        if cancelled.is_set():
            return
        code: Optional[int] = None
        try:
            # The stream closes as the container exits; waiting makes its exit code final rather than racy.
            wait_s = max(1, int(deadline - time.monotonic()) + 1)
            code = int(self._client.api.wait(info.id, timeout=wait_s)["StatusCode"])
        except Exception:  # noqa: BLE001 - still running (the wait timed out) or gone
            code = None
        events.put((info.name, "end", code))


# --- helpers --------------------------------------------------------------------------------------------------


class _Lines:
    """A log's lines as text; `close()` from any thread closes the stream under them."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._lines = split_lines(stream)

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        try:
            return next(self._lines)
        except StopIteration:
            close_quietly(self._stream)
            raise

    def close(self) -> None:
        close_quietly(self._stream)


def _exited(info: ContainerInfo, exit_code: int) -> ContainerInfo:
    """A replica on another node as its task ended (this engine cannot inspect its container)."""
    values = {item.name: getattr(info, item.name) for item in fields(info)}
    return ContainerInfo(**{**values, "status": "exited", "exit_code": exit_code})


def _ref(container: ContainerRef) -> str:
    return container.id if isinstance(container, ContainerInfo) else container


def _name_of(container: ContainerRef) -> str:
    return container.name if isinstance(container, ContainerInfo) else container


def _order(info: ContainerInfo) -> Tuple[str, int, str]:
    return (info.role or "", info.worker or 0, info.name)


def _info(attrs: Mapping[str, Any], role: Optional[str] = None, run: Optional[str] = None) -> ContainerInfo:
    config = attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    state = attrs.get("State") or {}
    status = state.get("Status", "")
    worker = labels.get(LABEL_WORKER, "") or _swarm_slot(labels)
    return ContainerInfo(
        id=attrs["Id"],
        name=attrs.get("Name", "").lstrip("/"),
        image=config.get("Image", ""),
        role=labels.get(LABEL_ROLE, role),
        run=labels.get(LABEL_RUN, run),
        worker=int(worker) if worker.isdigit() else None,
        prefix=labels.get(LABEL_PREFIX),
        status=status,
        exit_code=state.get("ExitCode") if status in ("exited", "dead") else None,
        started_at=_timestamp(state.get("StartedAt")),
        finished_at=_timestamp(state.get("FinishedAt")),
        task=labels.get(_SWARM_TASK_ID),
        service=labels.get(_SWARM_SERVICE_NAME),
    )


def _swarm_slot(labels: Mapping[str, str]) -> str:
    """A swarm replica's slot (its worker number): its task's name is `<service>.<slot>.<task id>`."""
    name = labels.get(_SWARM_TASK_NAME, "")
    service = labels.get(_SWARM_SERVICE_NAME, "")
    return name[len(service) + 1:].split(".", 1)[0] if service and name.startswith(f"{service}.") else ""


_DOCKER_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def docker_time(value: Optional[str]) -> Optional[datetime]:
    """A time as the engine writes it (RFC 3339 with nanoseconds), in UTC; None for its zero time."""
    return _timestamp(value)


def _timestamp(value: Optional[str]) -> Optional[datetime]:
    """Docker's RFC 3339 times carry nanoseconds; its zero time means never."""
    match = _DOCKER_TIME.match(value or "")
    if match is None or match[1].startswith("0001-"):
        return None
    moment = datetime.fromisoformat(match[1])
    offset = timedelta(0) if match[3] == "Z" else (
        (1 if match[3][0] == "+" else -1) * timedelta(hours=int(match[3][1:3]), minutes=int(match[3][4:6])))
    micro = int((match[2] or "0")[:6].ljust(6, "0"))
    return (moment - offset).replace(microsecond=micro, tzinfo=timezone.utc)


def _environment(attrs: Mapping[str, Any]) -> Dict[str, str]:
    pairs = (entry.partition("=") for entry in (attrs.get("Config") or {}).get("Env") or [])
    return {key: value for key, _, value in pairs}


def _compose_files(folder: str, labels: Mapping[str, str], root: Path) -> Iterator[str]:
    """The text of each readable compose file a SageMaker-local container may come from, only under `root`."""
    candidates = [Path(p) for p in labels.get(_COMPOSE_CONFIG_FILES, "").split(",") if p]
    if labels.get(_COMPOSE_WORKING_DIR):
        candidates.append(Path(labels[_COMPOSE_WORKING_DIR]) / "docker-compose.yaml")
    if folder:
        candidates.append(root / folder / "docker-compose.yaml")
    seen = set()
    for path in candidates:
        try:
            resolved = path.resolve()
            if resolved in seen or not resolved.is_relative_to(root.resolve()):
                continue
            seen.add(resolved)
            yield resolved.read_text(errors="replace")
        except OSError:
            continue


def _timed_out(exc: BaseException) -> bool:
    """A wait that ran out of time (the SDK raises a read timeout, sometimes wrapped as a connection error)."""
    import requests

    return isinstance(exc, requests.exceptions.ReadTimeout) or "timed out" in str(exc).lower()


def _root_os_error(exc: BaseException) -> Optional[OSError]:
    """The OSError with an errno somewhere in an exception's causes and arguments (requests and urllib3 nest
    the socket's own error a few levels deep)."""
    seen = set()
    todo: List[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        todo.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None
