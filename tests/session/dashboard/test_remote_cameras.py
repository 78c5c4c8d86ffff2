"""A worker's camera on the second node of a real two-node swarm (tests/conftest.py `two_node_swarm`), through the
dashboard's `/video/{worker}` route: the dashboard on the manager's host, the worker a swarm replica on the other
node running the stand-in web_video_server (tests/session/standin/web_video_server.py) on the overlay, and the
camera relay (session.dashboard.cameras) started by the first request, on the overlay, reached by its unix socket.
A replaced task (new task, new address) is followed without restarting anything; the relay goes with the server."""

from __future__ import annotations

import urllib.error
import urllib.request
from io import BytesIO
from pathlib import Path
from typing import Iterator, Optional

import docker
import pytest
from PIL import Image

from session.core.config import load_config
from session.dashboard.access import COOKIE, Keys
from session.dashboard.app import create_app
from session.dashboard.cameras import RELAY_NAME, Cameras
from session.dashboard.feed import LiveFeed
from session.dashboard.video import CameraRoute
from session.engine.containers import LABEL_ROLE, LABEL_RUN, ContainerSpec
from session.engine.specs import NETWORK
from session.engine.swarm import ServiceSpec, Swarm, running_address
from tests.conftest import TwoNodeSwarm
from tests.session.dashboard.serving import serving
from tests.session.engine.test_swarm import poll
from tests.session.run.test_rehearsal_e2e import IMAGE_SOURCE, IMAGE_TAG
from tests.session.standin import StandinEngine, build_image

KEYS = Keys("c" * 43)
SERVICE = "deepracer-7-robomaker"


def frames(base: str, worker: int) -> Optional[tuple[str, bytes]]:
    """The stream's content type and its first whole JPEG, or None when the route answers anything but a stream."""
    request = urllib.request.Request(f"{base}/video/{worker}?width=160&height=120",
                                     headers={"Cookie": f"{COOKIE}={KEYS.session}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            body = b""
            while body.count(b"\xff\xd9") < 2:  # a whole first frame, and the next one's end
                chunk = answer.read1(65536)
                if not chunk:
                    return None
                body += chunk
            start = body.index(b"\xff\xd8")
            return answer.headers["Content-Type"], body[start:body.index(b"\xff\xd9", start) + 2]
    except urllib.error.HTTPError as error:
        error.close()
        return None


@pytest.fixture
def remote_worker(two_node_swarm: TwoNodeSwarm, tmp_path: Path) -> Iterator[tuple[StandinEngine, str]]:
    """One worker, slot 1, pinned to the second node, running the stand-in web_video_server on 8080."""
    for host in (two_node_swarm.manager, two_node_swarm.worker):  # no registry: each node imports the image
        image = build_image(host, IMAGE_SOURCE, IMAGE_TAG)
    engine = StandinEngine(base_url=two_node_swarm.manager)
    swarm = Swarm(engine)
    swarm.ensure_overlay(NETWORK)
    swarm.run_service(ServiceSpec(
        ContainerSpec(name=SERVICE, image=image, command=("exec python3 /opt/ml/code/standin/web_video_server.py 8080",),
                      environment={}, labels={LABEL_ROLE: "worker", LABEL_RUN: "7"}, mounts=(), network=NETWORK),
        replicas=1, constraints=(f"node.id == {two_node_swarm.worker_id}",)))
    yield engine, image


def test_a_worker_on_another_node_streams_through_the_relay_which_follows_a_new_task(
        two_node_swarm: TwoNodeSwarm, remote_worker: tuple[StandinEngine, str], tmp_path: Path):
    engine, image = remote_worker
    swarm = Swarm(engine)
    first = poll(lambda: next((t for t in swarm.current_tasks(SERVICE) if t.state == "running"), None),
                 "running worker")
    assert first.node_id == two_node_swarm.worker_id
    address = running_address(swarm.tasks(SERVICE), 1, NETWORK)
    assert address is not None

    def workers():
        nodes = {node.id: node for node in swarm.nodes()}
        return [swarm.task_container(task, nodes, run="7") for task in swarm.current_tasks(SERVICE)]

    (tmp_path / "system.env").write_text("DR_CLOUD=local\nDR_SIMAPP_VERSION=6.0.4-cpu\nDR_LOCAL_S3_BUCKET=models\n")
    (tmp_path / "run.env").write_text("DR_RUN_ID=7\nDR_LOCAL_S3_MODEL_PREFIX=remote-1\n")
    loaded = load_config(tmp_path / "run.env", tmp_path / "system.env", environ={})
    cameras = Cameras(engine, image=image, network=NETWORK, relay_dir=tmp_path / "relay")
    feed = LiveFeed(workers, lambda container: iter(()), probe=None, refresh_s=0.5, idle_every_s=0.2)
    app = create_app(keys=KEYS, feed=feed, system=loaded.system, run=loaded.run, stop=lambda: [],
                     car_package=lambda: ("p.tar.gz", b""), address=cameras.route, read_run_state=lambda: None,
                     on_close=cameras.close)
    with serving(app) as base:
        content_type, jpeg = poll(lambda: frames(base, 1), "stream from the worker on the second node")
        assert content_type == "multipart/x-mixed-replace;boundary=boundarydonotcross"
        assert Image.open(BytesIO(jpeg)).size == (160, 120)
        # The relay: on the overlay only, nothing published, confined, as the dashboard's user.
        relay = docker.DockerClient(base_url=two_node_swarm.manager).containers.get(RELAY_NAME)
        host_config = relay.attrs["HostConfig"]
        assert list(relay.attrs["NetworkSettings"]["Networks"]) == [NETWORK]
        assert not host_config.get("PortBindings") and not relay.attrs["NetworkSettings"]["Ports"]
        assert (host_config["ReadonlyRootfs"], host_config["CapDrop"], host_config["SecurityOpt"]) == (
            True, ["ALL"], ["no-new-privileges"])
        assert relay.attrs["Config"]["User"] == "0:0"  # this test's uid:gid (root: it runs dockerd)
        assert (tmp_path / "relay" / "camera.sock").is_socket()

        # The task is replaced (as a new worker in the same slot would be): a new task with a new address.
        docker.DockerClient(base_url=two_node_swarm.manager).services.get(SERVICE).force_update()
        second = poll(lambda: next((t for t in swarm.current_tasks(SERVICE)
                                    if t.state == "running" and t.id != first.id), None), "replaced worker")
        moved = running_address(swarm.tasks(SERVICE), 1, NETWORK)
        assert moved is not None and moved != address, (address, moved)
        assert second.node_id == two_node_swarm.worker_id
        _, jpeg = poll(lambda: frames(base, 1), "stream from the replaced worker")
        assert Image.open(BytesIO(jpeg)).size == (160, 120)
        assert docker.DockerClient(base_url=two_node_swarm.manager).containers.get(RELAY_NAME).id == relay.id
    # The relay goes with the dashboard.
    manager = docker.DockerClient(base_url=two_node_swarm.manager)
    assert not manager.containers.list(all=True, filters={"name": RELAY_NAME})

    # A dashboard killed outright leaves its relay; the next one uses it as it is, and removes it when it ends.
    worker = workers()[-1]
    killed = Cameras(engine, image=image, network=NETWORK, relay_dir=tmp_path / "relay")
    assert killed.route(worker) == CameraRoute(moved, relay=str(tmp_path / "relay" / "camera.sock"))
    left = manager.containers.get(RELAY_NAME).id
    following = Cameras(engine, image=image, network=NETWORK, relay_dir=tmp_path / "relay")
    assert following.route(worker) == CameraRoute(moved, relay=str(tmp_path / "relay" / "camera.sock"))
    assert manager.containers.get(RELAY_NAME).id == left
    following.close()
    assert not manager.containers.list(all=True, filters={"name": RELAY_NAME})
