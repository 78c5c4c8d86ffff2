"""session.host.swarm_init: `deepracer swarm-init` against a real engine (the worker node of `two_node_swarm`, once
it has left, in a network namespace of its own), and the rotation of the worker join token once the nodes joined
(the real two-node swarm, the token published to moto's SSM as on AWS)."""

from __future__ import annotations

import json
import stat
import threading
import time
from pathlib import Path

import docker
import pytest

from session.engine.containers import Engine
from session.engine.specs import NETWORK
from session.engine.swarm import Swarm
from session.host.join_token import ssm_publisher
from session.host.swarm_init import Rotation, file_publisher, rotate_after_joined, swarm_init
from tests.conftest import TwoNodeSwarm
from tests.session.host.conftest import KEY_ALIAS, PARAMETER, REGION


def test_swarm_init_makes_a_manager_with_labels_and_overlay_and_publishes_the_join_token(
        two_node_swarm: TwoNodeSwarm, tmp_path: Path):
    engine = Engine(base_url=two_node_swarm.worker)
    Swarm(engine).leave(force=True)
    published: list[tuple[str, str]] = []
    said: list[str] = []

    made = swarm_init(engine, two_node_swarm.worker_addr, publish_join_token=lambda *a: published.append(a),
                      say=said.append)

    client = docker.DockerClient(base_url=two_node_swarm.worker)
    client.swarm.reload()
    assert published == [(client.swarm.attrs["JoinTokens"]["Worker"], f"{two_node_swarm.worker_addr}:2377")]
    assert made.manager == f"{two_node_swarm.worker_addr}:2377"
    assert client.nodes.get(made.node_id).attrs["Spec"]["Labels"] == {"Sagemaker": "true", "Robomaker": "true"}
    network = client.networks.get(NETWORK)
    assert (network.attrs["Driver"], network.attrs["Attachable"]) == ("overlay", True)
    assert network.attrs["Labels"]["com.docker.compose.network"] == NETWORK
    # again (a reboot): the same swarm, the token published again
    assert swarm_init(engine, two_node_swarm.worker_addr, publish_join_token=lambda *a: published.append(a),
                      say=said.append).node_id == made.node_id
    assert len(published) == 2 and published[0] == published[1]
    Swarm(engine).leave(force=True)


def test_the_file_publisher_writes_the_token_for_root_only(tmp_path: Path):
    target = tmp_path / "swarm" / "join.json"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o644)
    file_publisher(target)("SWMTKN-1-abc", "10.0.0.4:2377")
    assert json.loads(target.read_text()) == {"token": "SWMTKN-1-abc", "manager": "10.0.0.4:2377"}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def _published(ssm) -> str:
    return ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"]


def test_once_the_nodes_joined_the_worker_token_is_rotated_and_published_and_the_node_labelled(
        two_node_swarm: TwoNodeSwarm, ssm):
    manager, node = (docker.DockerClient(base_url=url) for url in (two_node_swarm.manager, two_node_swarm.worker))
    engine = Engine(base_url=two_node_swarm.manager)
    # The fixture's node leaves and is forgotten: it joins below as a node does at its first boot.
    node.swarm.leave(force=True)
    manager.nodes.get(two_node_swarm.worker_id).remove(force=True)
    publish = ssm_publisher(PARAMETER, REGION, KEY_ALIAS)
    swarm_init(engine, two_node_swarm.manager_addr, publish_join_token=publish, say=lambda _: None)
    first = _published(ssm)
    assert first.startswith("SWMTKN-1-")
    said: list[str] = []
    # No node yet, and no time left: nothing is rotated (the token the nodes will read still admits them).
    gave_up = rotate_after_joined(engine, 1, publish_join_token=publish, timeout_s=0, say=said.append)
    assert gave_up == Rotation((), rotated=False) and _published(ssm) == first and "NOT rotated" in said[-1]

    done: list[Rotation] = []
    waiting = threading.Thread(target=lambda: done.append(rotate_after_joined(
        engine, 1, publish_join_token=publish, timeout_s=180, poll_s=0.2, say=said.append)))
    waiting.start()
    deadline = time.monotonic() + 60
    while not any(line.startswith("0 of 1 nodes joined") for line in said):  # it waits before the node joins
        assert time.monotonic() < deadline and waiting.is_alive(), said
        time.sleep(0.05)
    node.swarm.join(remote_addrs=[f"{two_node_swarm.manager_addr}:2377"], join_token=first,
                    advertise_addr=two_node_swarm.worker_addr, listen_addr=f"{two_node_swarm.worker_addr}:2377")
    waiting.join(timeout=200)

    assert done and done[0].rotated and [n.address for n in done[0].joined] == [two_node_swarm.worker_addr]
    manager.swarm.reload()
    current = manager.swarm.attrs["JoinTokens"]["Worker"]
    assert current != first and _published(ssm) == current
    assert manager.swarm.attrs["Spec"]["Dispatcher"]["HeartbeatPeriod"] == 1_000_000_000  # its spec kept
    joined = node.info()["Swarm"]["NodeID"]
    assert manager.nodes.get(joined).attrs["Spec"]["Labels"] == {"Robomaker": "true"}
    assert not any(first in line or current in line for line in said)
    # The token the node read at its first boot admits nobody any more.
    node.swarm.leave(force=True)
    with pytest.raises(docker.errors.APIError, match="(?i)token"):
        node.swarm.join(remote_addrs=[f"{two_node_swarm.manager_addr}:2377"], join_token=first,
                        advertise_addr=two_node_swarm.worker_addr, listen_addr=f"{two_node_swarm.worker_addr}:2377")
