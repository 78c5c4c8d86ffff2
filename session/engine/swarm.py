"""Docker Swarm: this host as the manager, the nodes that join it, and the workers as one service spread over them.

DRfC's swarm mode (bin/init.sh, docker/docker-compose-training-swarm.yml, DRFC.md §3.4-3.5): the host inits the
swarm, labels itself `Sagemaker=true` (the trainer and its SageMaker sibling run here: the sibling is started
through this host's Docker socket) and `Robomaker=true`, the network `sagemaker-local` is an attachable overlay
with Docker Compose's labels (the sibling's compose file names it), and the simulation workers are one replicated
service with `restart_policy: none`, placed on `node.labels.Robomaker == true`. Each replica learns its worker
number from swarm's task slot (`DOCKER_REPLICA_SLOT={{.Task.Slot}}`), as the simulator's run.sh expects.

Everything here talks to the manager's API only: the tasks of every node, their logs (the manager relays them)
and the removal of the service (each node then removes its containers). Without a swarm nothing here is called
and the host runs as it always did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from session.engine.containers import (
    LABEL_MANAGED,
    LABEL_ROLE,
    ContainerInfo,
    ContainerSpec,
    Engine,
    EngineError,
    compose_network_labels,
    docker_time,
)

LABEL_SAGEMAKER = "Sagemaker"  # node label, as DRfC names it: the trainer runs here (the manager)
LABEL_ROBOMAKER = "Robomaker"  # node label: simulation workers may run here
ROBOMAKER_CONSTRAINT = f"node.labels.{LABEL_ROBOMAKER} == true"
SLOT_TEMPLATE = "{{.Task.Slot}}"  # swarm fills it in per replica: 1..N
SWARM_PORT = 2377
# Task states (swarm's api/types.go) in which a task's container may still be running or is about to.
_LIVE_TASK_STATES = ("new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting",
                     "running")
_FAILED_TASK_STATES = ("failed", "rejected", "orphaned")


@dataclass(frozen=True)
class Node:
    """One node of the swarm as the manager sees it."""

    id: str
    hostname: str
    address: str
    state: str  # ready | down | unknown | disconnected
    availability: str  # active | pause | drain
    manager: bool
    labels: Dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def robomaker(self) -> bool:
        return self.labels.get(LABEL_ROBOMAKER) == "true"


@dataclass(frozen=True)
class Task:
    """One replica of a service: on which node, in which state, with which container (once it has one)."""

    id: str
    service: str
    slot: int
    node_id: str
    state: str  # swarm's current state: pending ... running, complete, failed, shutdown, rejected, orphaned
    desired_state: str
    container_id: Optional[str] = None
    exit_code: Optional[int] = None
    error: str = ""
    message: str = ""
    created_at: Optional[datetime] = None
    # Its address on each network it is attached to (name -> IP), as the manager allocated it: the task's container
    # may be on another node, whose engine alone could tell otherwise (DRfC's scripts/viewer/start.sh reads the
    # same `NetworksAttachments[].Addresses`). A task that is replaced gets a new one.
    addresses: Dict[str, str] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.state in _LIVE_TASK_STATES

    @property
    def failed(self) -> bool:
        return self.state in _FAILED_TASK_STATES or (self.exit_code is not None and self.exit_code != 0)


@dataclass(frozen=True)
class ServiceSpec:
    """A replicated service: `replicas` copies of `container`, on the nodes that satisfy `constraints`.

    `container.name` names the service; swarm names each container `<name>.<slot>.<task id>`. Its environment
    may use swarm's templates (`{{.Task.Slot}}`)."""

    container: ContainerSpec
    replicas: int
    constraints: Tuple[str, ...] = (ROBOMAKER_CONSTRAINT,)
    labels: Dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.container.name


class Swarm:
    """The swarm this host's engine belongs to (or not). Shares the Engine's connection and its errors."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # The engine's connection and error translation: this module is the engine's own, one idea per file.
    def _client(self) -> Any:
        return self.engine._client

    def _translated(self, action: str) -> Any:
        return self.engine._translated(action)

    # --- the swarm itself ------------------------------------------------------------------------------------

    def _state(self) -> Dict[str, Any]:
        return dict(self.engine.info().get("Swarm") or {})

    def active(self) -> bool:
        """This engine is a node of a swarm."""
        return self._state().get("LocalNodeState") == "active"

    def is_manager(self) -> bool:
        state = self._state()
        return state.get("LocalNodeState") == "active" and bool(state.get("ControlAvailable"))

    def node_id(self) -> str:
        return str(self._state().get("NodeID") or "")

    def init(self, advertise_addr: str) -> str:
        """Makes this engine a swarm's manager, advertised on `advertise_addr` (the private IP: the nodes join
        there; 2377/tcp, 7946/tcp+udp and 4789/udp must be open between them); a manager already is left as it
        is. Labels this node Sagemaker and Robomaker. Returns this node's id."""
        if not self.is_manager():
            if self.active():
                raise EngineError("this host is a worker node of another swarm; `docker swarm leave` first")
            with self._translated(f"cannot init a swarm advertised on {advertise_addr}"):
                self._client().swarm.init(advertise_addr=advertise_addr,
                                          listen_addr=f"{advertise_addr}:{SWARM_PORT}")
        node = self.node_id()
        self.label(node, {LABEL_SAGEMAKER: "true", LABEL_ROBOMAKER: "true"})
        return node

    def join_token(self) -> str:
        """The token a worker node joins with (`docker swarm join --token <it> <address>:2377`)."""
        with self._translated("cannot read the swarm's join token"):
            self._client().swarm.reload()
            return str(self._client().swarm.attrs["JoinTokens"]["Worker"])

    def rotate_worker_token(self) -> str:
        """A new worker join token (`docker swarm join-token --rotate worker`): the old one admits nobody any more;
        nodes that joined with it stay. Returns the new one."""
        from docker.errors import APIError

        api = self._client().api
        for _ in range(5):  # the swarm's version moves when it changes meanwhile: read it again
            with self._translated("cannot rotate the swarm's worker join token"):
                attrs = api.inspect_swarm()
                try:
                    # Its own spec back, as `docker swarm join-token --rotate` does: the SDK's swarm.update() would
                    # send a fresh spec and reset what the swarm was made with.
                    api.update_swarm(version=attrs["Version"]["Index"], swarm_spec=attrs["Spec"],
                                     rotate_worker_token=True)
                    return self.join_token()
                except APIError as exc:
                    if "update out of sequence" not in str(exc):
                        raise
        raise EngineError("cannot rotate the swarm's worker join token: the swarm kept changing meanwhile")

    def manager_address(self) -> str:
        """`<address>:2377` as the nodes join it."""
        state = self._state()
        return str((state.get("RemoteManagers") or [{}])[0].get("Addr") or f"{state.get('NodeAddr')}:{SWARM_PORT}")

    def join(self, token: str, manager: str, advertise_addr: str) -> None:
        """Joins this engine to the swarm at `manager` (`<address>:2377`) as a worker node."""
        with self._translated(f"cannot join the swarm at {manager}"):
            self._client().swarm.join(remote_addrs=[manager], join_token=token, advertise_addr=advertise_addr,
                                       listen_addr=f"{advertise_addr}:{SWARM_PORT}")

    def leave(self, force: bool = False) -> None:
        with self._translated("cannot leave the swarm"):
            self._client().swarm.leave(force=force)

    def nodes(self) -> List[Node]:
        with self._translated("cannot list the swarm's nodes"):
            found = self._client().api.nodes()
        return sorted((_node(attrs) for attrs in found), key=lambda node: (not node.manager, node.hostname))

    def label(self, node_id: str, labels: Dict[str, str]) -> None:
        """Adds `labels` to the node's own (what `docker node update --label-add` does)."""
        from docker.errors import APIError

        for _ in range(5):  # the node's version moves when swarm updates it meanwhile: read it again
            with self._translated(f"cannot label node {node_id}"):
                attrs = self._client().api.inspect_node(node_id)
                spec = dict(attrs["Spec"])
                spec["Labels"] = {**(spec.get("Labels") or {}), **labels}
                try:
                    self._client().api.update_node(node_id, attrs["Version"]["Index"], spec)
                    return
                except APIError as exc:
                    if "update out of sequence" not in str(exc):
                        raise
        raise EngineError(f"cannot label node {node_id}: it kept changing meanwhile")

    def label_workers(self) -> List[Node]:
        """Labels every node that joined (not a manager) `Robomaker=true` unless it says otherwise already
        (`Robomaker=false` keeps a node out); returns the nodes labelled now."""
        labelled = []
        for node in self.nodes():
            if not node.manager and LABEL_ROBOMAKER not in node.labels:
                self.label(node.id, {LABEL_ROBOMAKER: "true"})
                labelled.append(node)
        return labelled

    # --- the overlay network ---------------------------------------------------------------------------------

    def ensure_overlay(self, name: str) -> str:
        """An attachable overlay called `name` with Docker Compose's labels, created if missing: the trainer's
        SageMaker sibling (Compose on the manager) and the workers on every node meet on it. A bridge of the
        same name (this host before the swarm) is replaced while nothing is attached to it."""
        from docker.errors import APIError

        client = self._client()
        with self._translated(f"cannot create network {name}"):
            for network in [n for n in client.networks.list(names=[name]) if n.name == name]:
                network.reload()
                labels = network.attrs.get("Labels") or {}
                if network.attrs.get("Driver") == "overlay" and labels.get("com.docker.compose.network") == name:
                    return name
                attached = sorted(c.get("Name", cid[:12]) for cid, c in (network.attrs.get("Containers") or {}).items())
                if attached:
                    raise EngineError(f"network {name} is not the swarm's overlay, and {', '.join(attached)} still "
                                      f"uses it: stop it (deepracer stop) and try again")
                network.remove()
            try:
                client.networks.create(name, driver="overlay", attachable=True, scope="swarm",
                                       labels={LABEL_MANAGED: "true", **compose_network_labels(name)})
            except APIError as exc:
                if exc.status_code != 409:
                    raise
        return name

    def subnets(self, name: str) -> List[str]:
        """The address ranges of network `name` (its IPAM config), e.g. ["10.0.1.0/24"]; [] when it is missing."""
        from docker.errors import NotFound

        with self._translated(f"cannot inspect network {name}"):
            try:
                attrs = self._client().api.inspect_network(name)
            except NotFound:
                return []
        return [str(c["Subnet"]) for c in ((attrs.get("IPAM") or {}).get("Config") or []) if c.get("Subnet")]

    # --- services --------------------------------------------------------------------------------------------

    def run_service(self, spec: ServiceSpec) -> str:
        """Creates the service (a stopped one of the same name, ours, is removed first); returns its id.
        Bind mounts must exist on every node; no GPU is requested (a node's default runtime gives one)."""
        from docker.types import (
            ContainerSpec,
            Mount,
            NetworkAttachmentConfig,
            Placement,
            RestartPolicy,
            ServiceMode,
            TaskTemplate,
        )

        existing = self.service(spec.name)
        if existing is not None:
            if LABEL_ROLE not in (existing.get("Spec", {}).get("Labels") or {}):
                raise EngineError(f"a service named {spec.name} exists and deepracer did not make it; remove it "
                                  f"(docker service rm {spec.name})")
            if any(task.live for task in self.tasks(spec.name)):
                raise EngineError(f"service {spec.name} is still running; stop it first with `deepracer stop`")
            self.remove_service(spec.name)
        c = self.engine.for_service(spec.container)
        container = ContainerSpec(
            image=c.image,
            command=list(c.entrypoint) if c.entrypoint is not None else None,
            args=list(c.command) if c.command is not None else None,
            env=[f"{key}={value}" for key, value in c.environment.items()],
            labels=dict(c.labels),
            mounts=[Mount(m.target, m.source, type="bind" if m.source.startswith("/") else "volume",
                          read_only=m.read_only) for m in c.mounts],
            workdir=c.working_dir,
            user=c.user,
            init=c.init,
        )
        template = TaskTemplate(container_spec=container, restart_policy=RestartPolicy(condition="none"),
                                placement=Placement(constraints=list(spec.constraints)),
                                networks=[NetworkAttachmentConfig(target=c.network)])
        with self._translated(f"cannot create service {spec.name}"):
            created = self._client().api.create_service(
                template, name=spec.name, labels={**c.labels, **spec.labels},
                mode=ServiceMode("replicated", replicas=spec.replicas))
        return str(created["ID"])

    def service(self, name: str) -> Optional[Dict[str, Any]]:
        from docker.errors import NotFound

        with self._translated(f"cannot inspect service {name}"):
            try:
                return dict(self._client().api.inspect_service(name))
            except NotFound:
                return None

    def services(self, labels: Dict[str, str]) -> List[Dict[str, Any]]:
        """Our services whose labels include `labels`."""
        with self._translated("cannot list services"):
            return [dict(s) for s in self._client().api.services(
                filters={"label": [f"{key}={value}" for key, value in labels.items()]})]

    def tasks(self, service: str) -> List[Task]:
        """The service's tasks on every node, the newest of each slot first, then by slot."""
        with self._translated(f"cannot list the tasks of service {service}"):
            found = self._client().api.tasks(filters={"service": service})
        newest_first = sorted(found, key=lambda attrs: str(attrs.get("UpdatedAt", "")), reverse=True)
        return sorted((_task(attrs, service) for attrs in newest_first), key=lambda task: task.slot)  # stable

    def current_tasks(self, service: str) -> List[Task]:
        """One task per slot: the newest (restart policy none: a slot has one task unless the service changed)."""
        seen: Dict[int, Task] = {}
        for task in self.tasks(service):
            seen.setdefault(task.slot, task)
        return [seen[slot] for slot in sorted(seen)]

    def scale(self, name: str, replicas: int) -> None:
        from docker.errors import APIError

        for _ in range(5):
            attrs = self.service(name)
            if attrs is None:
                return
            spec = attrs["Spec"]
            with self._translated(f"cannot scale service {name}"):
                try:
                    self._client().api.update_service(
                        attrs["ID"], attrs["Version"]["Index"], task_template=spec["TaskTemplate"], name=name,
                        labels=spec.get("Labels"), mode={"Replicated": {"Replicas": replicas}},
                        networks=spec["TaskTemplate"].get("Networks"), fetch_current_spec=False)
                    return
                except APIError as exc:
                    if "update out of sequence" not in str(exc):
                        raise
        raise EngineError(f"cannot scale service {name}: it kept changing meanwhile")

    def remove_service(self, name: str) -> bool:
        """Removes the service; each node then removes its containers. False when there was none."""
        from docker.errors import NotFound

        with self._translated(f"cannot remove service {name}"):
            try:
                self._client().api.remove_service(name)
                return True
            except NotFound:
                return False

    def task_logs(self, task: Task, tail: Optional[int] = None) -> str:
        return self.engine.task_logs(task.service, task.id, tail)

    def task_container(self, task: Task, nodes: Dict[str, Node], run: Optional[str] = None,
                       prefix: Optional[str] = None) -> ContainerInfo:
        """A task as the ContainerInfo `status` and `stop` show: role worker, its slot, the node it is on;
        `lost` when its node is down (a spot reclaim): the manager cannot know what became of it."""
        node = nodes.get(task.node_id)
        status = ("lost" if node is not None and not node.ready and task.live
                  else "running" if task.state == "running" else "created" if task.live else "exited")
        return ContainerInfo(
            id=task.container_id or task.id, name=f"{task.service}.{task.slot}.{task.id}", image="",
            role="worker", run=run, worker=task.slot, prefix=prefix, status=status,
            exit_code=task.exit_code if status == "exited" else None, started_at=task.created_at,
            node=node.hostname if node is not None else task.node_id, task=task.id, service=task.service)


def _node(attrs: Dict[str, Any]) -> Node:
    spec, status, description = attrs.get("Spec") or {}, attrs.get("Status") or {}, attrs.get("Description") or {}
    return Node(id=attrs["ID"], hostname=str(description.get("Hostname", "")), address=str(status.get("Addr", "")),
                state=str(status.get("State", "unknown")), availability=str(spec.get("Availability", "")),
                manager=spec.get("Role") == "manager", labels=dict(spec.get("Labels") or {}))


def _task(attrs: Dict[str, Any], service: str) -> Task:
    status = attrs.get("Status") or {}
    container = status.get("ContainerStatus") or {}
    code = container.get("ExitCode")
    return Task(id=attrs["ID"], service=service, slot=int(attrs.get("Slot") or 0), node_id=str(attrs.get("NodeID", "")),
                state=str(status.get("State", "")), desired_state=str(attrs.get("DesiredState", "")),
                container_id=container.get("ContainerID") or None, exit_code=int(code) if code is not None else None,
                error=str(status.get("Err") or ""), message=str(status.get("Message") or ""),
                created_at=docker_time(attrs.get("CreatedAt")), addresses=_addresses(attrs))


def _addresses(attrs: Dict[str, Any]) -> Dict[str, str]:
    """`NetworksAttachments[]`: network name -> the first address, without its prefix length ("10.0.1.5/24")."""
    found = {}
    for attachment in attrs.get("NetworksAttachments") or []:
        name = ((attachment.get("Network") or {}).get("Spec") or {}).get("Name")
        addresses = attachment.get("Addresses") or []
        if name and addresses:
            found[str(name)] = str(addresses[0]).split("/")[0]
    return found


def running_address(tasks: List[Task], slot: int, network: str) -> Optional[str]:
    """The address on `network` of the task running in `slot` now (the newest, if swarm lists two: one replaces
    the other), or None when none runs there. `tasks` as `Swarm.tasks` gives them, the newest of a slot first."""
    for task in tasks:
        if task.slot == slot and task.state == "running" and network in task.addresses:
            return task.addresses[network]
    return None

