"""Where each worker's camera is reached, looked up per request (a worker that restarts has a new address).

- A worker container of this engine on the run's bridge: its address there; this host routes to it (video.py).
- A worker that is a swarm replica (DR_DOCKER_STYLE=swarm; on this node or another): its address on the overlay,
  as the manager allocated it to the slot's running task (`NetworksAttachments`, what DRfC's scripts/viewer/start.sh
  reads). The host is not on the overlay, so the stream goes through the camera relay (camera_relay.py): a
  container of the simulator image on the overlay, on this node, that listens on a unix socket in a folder of the
  dashboard's user and nowhere else, and passes on only camera topics of addresses on the overlay. It runs as the
  dashboard's user, read-only, with no capabilities; it is started at the first remote stream and removed when the
  dashboard ends (and replaced when it stopped or does not answer).

DRfC's viewer instead publishes nginx on port 8100 of every interface through the swarm's ingress
(docker/docker-compose-webviewer-swarm.yml), with the addresses fixed at its start (`dr-update-viewer`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from session.core.errors import DeepracerError
from session.dashboard.video import TOPICS, CameraRoute
from session.engine.containers import LABEL_ROLE, LABEL_RUN, ContainerInfo, ContainerSpec, Engine, Mount
from session.engine.swarm import Swarm, running_address

RELAY_NAME = "deepracer-camera-relay"
RELAY_ROLE = "camera-relay"  # not a role the idle check, `stop` or `status` of a run counts
RELAY_RUN = "host"  # as MinIO's: the relay serves whichever run the dashboard shows
RELAY_SCRIPT = Path(__file__).resolve().parent / "camera_relay.py"
SOCKET_NAME = "camera.sock"
_IN_CONTAINER = "/relay"  # the socket's folder; the script beside it, read-only
READY_S = 30.0  # the relay's Python starting, on a busy host


class CameraRelayError(DeepracerError):
    """The camera relay could not be started or does not answer."""


def relay_spec(image: str, network: str, subnets: list[str], relay_dir: Path, user: str) -> ContainerSpec:
    """The relay's container: the image's python3 running camera_relay.py, on `network`, listening on
    `relay_dir`/camera.sock, for the network's `subnets` and the cameras' topics only."""
    arguments = [f"{_IN_CONTAINER}/{SOCKET_NAME}"]
    for subnet in subnets:
        arguments += ["--network", subnet]
    for topic in TOPICS.values():
        arguments += ["--topic", topic]
    return ContainerSpec(
        name=RELAY_NAME, image=image, entrypoint=("python3", "-u", "/opt/camera_relay.py"), command=tuple(arguments),
        environment={}, labels={LABEL_ROLE: RELAY_ROLE, LABEL_RUN: RELAY_RUN},
        mounts=(Mount(str(RELAY_SCRIPT), "/opt/camera_relay.py", read_only=True),
                Mount(str(relay_dir), _IN_CONTAINER)),
        network=network, user=user, confined=True)


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
            return True
        except OSError:
            return False


class Cameras:
    """`route(worker)` for the app's video route; `close()` when the dashboard ends."""

    def __init__(self, engine: Engine, *, image: str, network: str, relay_dir: Path,
                 user: Optional[str] = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.swarm = engine, Swarm(engine)
        self.image, self.network, self.relay_dir = image, network, relay_dir
        self.user = user or f"{os.getuid()}:{os.getgid()}"
        self._clock = clock
        self._lock = threading.Lock()
        self._started = False

    def route(self, worker: ContainerInfo) -> Optional[CameraRoute]:
        """Where `worker`'s web_video_server is now; None when it has no address (not running, or gone)."""
        if worker.service is None:
            address = self.engine.address(worker.id, self.network)
            return CameraRoute(address) if address is not None else None
        if worker.worker is None:
            return None
        address = running_address(self.swarm.tasks(worker.service), worker.worker, self.network)
        if address is None:
            return None
        return CameraRoute(address, relay=str(self._relay()))

    def _relay(self) -> Path:
        """The relay's socket, the relay started (or replaced) first unless it runs and answers."""
        path = self.relay_dir / SOCKET_NAME
        with self._lock:
            found = self.engine.get(RELAY_NAME)
            if found is not None and found.running and _answers(path):
                self._started = True  # one a dashboard killed outright left: this one removes it when it ends
                return path
            if found is not None and found.running:
                self.engine.stop([found.id], timeout=5)
            self.relay_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            subnets = self.swarm.subnets(self.network)
            if not subnets:
                raise CameraRelayError(f"network {self.network} has no address range: is the run's overlay there?")
            started = self.engine.start(relay_spec(self.image, self.network, subnets, self.relay_dir, self.user))
            self._started = True
            deadline = self._clock() + READY_S
            while not _answers(path):  # its Python starting: nothing to wait on but the socket
                current = self.engine.get(started.id)
                if current is None or not current.running or self._clock() > deadline:
                    log = self.engine.logs(started.id, tail=5) if current is not None else ""
                    raise CameraRelayError(f"the camera relay did not start: {' '.join(log.split())[-300:]}")
                time.sleep(0.1)
            return path

    def close(self) -> None:
        """Removes the relay, if this dashboard started or used one."""
        with self._lock:
            if self._started:
                self.engine.stop([RELAY_NAME], timeout=5)
                self.engine.remove([RELAY_NAME])
                self._started = False
