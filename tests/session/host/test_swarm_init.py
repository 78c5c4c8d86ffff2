"""session.host.swarm_init: `deepracer swarm-init` against a real engine (the worker node of `two_node_swarm`, once
it has left, in a network namespace of its own)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import docker

from session.engine.containers import Engine
from session.engine.specs import NETWORK
from session.engine.swarm import Swarm
from session.host.swarm_init import file_publisher, swarm_init
from tests.conftest import TwoNodeSwarm


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
