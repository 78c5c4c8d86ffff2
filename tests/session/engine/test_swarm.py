"""session.engine.swarm against a real two-node swarm (tests/conftest.py `two_node_swarm`): two dockerds, the
second in a network namespace of its own, joined over a veth pair, with a VXLAN overlay between them."""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, TypeVar

import docker
import pytest

from session.engine.containers import LABEL_PREFIX, LABEL_ROLE, LABEL_RUN, ContainerSpec, Engine, EngineError, Mount
from session.engine.streams import split_lines
from session.engine.swarm import ServiceSpec, Swarm, running_address
from session.engine.swarm import _task as _task_of
from session.engine.task_log import TaskLog
from tests.busybox_image import busybox_image
from tests.conftest import TwoNodeSwarm

NETWORK = "sagemaker-local"
NC = "#!/bin/busybox ash\nexec /bin/busybox nc \"$@\"\n"
T = TypeVar("T")


def poll(check: Callable[[], T], what: str, timeout_s: float = 180) -> T:
    """The engine offers nothing to wait on for these (task states, a node's heartbeat): look again shortly.
    The limit is generous: on 2 busy cores an overlay between two daemons took more than a minute once."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout_s:.0f} s")
        time.sleep(0.2)


def run_containers(host: str, run: str) -> list[str]:
    """The names of a run's containers on a host. A container the daemon removes between its list and its
    inspect is skipped (`ignore_removed`), as session.engine does: polling while removal is under way races."""
    client = docker.DockerClient(base_url=host)
    try:
        return [c.name for c in client.containers.list(
            all=True, filters={"label": f"{LABEL_RUN}={run}"}, ignore_removed=True)]
    finally:
        client.close()


def image_on_both(swarm: TwoNodeSwarm) -> str:
    """Each node needs the image itself: there is no registry."""
    for host in (swarm.manager, swarm.worker):
        image = busybox_image(host, "swarm-standin", "test", files={"bin/nc": NC})
    return image


def listener(engine: Engine, image: str) -> ContainerSpec:
    """The trainer's Redis, played by nc on the manager: it prints what each worker sends it."""
    return ContainerSpec(name="redis-standin", image=image, command=("while true; do nc -l -p 6379; done",),
                         entrypoint=("/bin/sh", "-c"), environment={}, labels={LABEL_ROLE: "trainer"}, mounts=(),
                         network=NETWORK)


def workers(image: str, replicas: int, command: str) -> ServiceSpec:
    return ServiceSpec(ContainerSpec(
        name="deepracer-7-worker", image=image, command=(command,), entrypoint=("/bin/sh", "-c"),
        environment={"DOCKER_REPLICA_SLOT": "{{.Task.Slot}}"},
        labels={LABEL_RUN: "7", LABEL_ROLE: "worker", LABEL_PREFIX: "m-1"}, mounts=(Mount("/tmp", "/host-tmp", True),),
        network=NETWORK), replicas=replicas)


def test_init_on_the_manager_keeps_its_swarm_labels_it_and_gives_the_workers_join_token(
        two_node_swarm: TwoNodeSwarm):
    client = docker.DockerClient(base_url=two_node_swarm.manager)
    swarm = Swarm(Engine(base_url=two_node_swarm.manager))
    assert swarm.is_manager()
    assert swarm.init(two_node_swarm.manager_addr) == two_node_swarm.manager_id
    client.swarm.reload()
    assert swarm.join_token() == client.swarm.attrs["JoinTokens"]["Worker"]
    assert swarm.manager_address() == f"{two_node_swarm.manager_addr}:2377"
    nodes = swarm.nodes()
    assert [(n.id, n.manager, n.ready, n.robomaker, n.address) for n in nodes] == [
        (two_node_swarm.manager_id, True, True, True, two_node_swarm.manager_addr),
        (two_node_swarm.worker_id, False, True, True, two_node_swarm.worker_addr)]
    assert nodes[0].labels == {"Sagemaker": "true", "Robomaker": "true"}
    # the worker node is no manager: init there is refused rather than starting a second swarm
    other = Swarm(Engine(base_url=two_node_swarm.worker))
    assert other.active() and not other.is_manager()
    with pytest.raises(EngineError, match="worker node of another swarm"):
        other.init(two_node_swarm.worker_addr)


def test_nodes_that_joined_are_labelled_robomaker_unless_they_say_otherwise(two_node_swarm: TwoNodeSwarm):
    client = docker.DockerClient(base_url=two_node_swarm.manager)
    node = client.nodes.get(two_node_swarm.worker_id)
    node.update({**node.attrs["Spec"], "Labels": {}})
    swarm = Swarm(Engine(base_url=two_node_swarm.manager))
    assert [n.id for n in swarm.label_workers()] == [two_node_swarm.worker_id]
    assert client.nodes.get(two_node_swarm.worker_id).attrs["Spec"]["Labels"] == {"Robomaker": "true"}
    assert swarm.label_workers() == []
    swarm.label(two_node_swarm.worker_id, {"Robomaker": "false"})
    assert swarm.label_workers() == []
    assert not next(n for n in swarm.nodes() if n.id == two_node_swarm.worker_id).robomaker


def test_a_fresh_engine_inits_a_swarm_and_labels_itself(two_node_swarm: TwoNodeSwarm):
    # The worker node, once it has left, is an engine without a swarm (in a network namespace of its own, so its
    # overlay's VXLAN devices clash with nobody's)
    swarm = Swarm(Engine(base_url=two_node_swarm.worker))
    swarm.leave(force=True)
    assert not swarm.active()
    node = swarm.init(two_node_swarm.worker_addr)
    assert swarm.is_manager() and node != two_node_swarm.worker_id
    assert [(n.id, n.labels) for n in swarm.nodes()] == [(node, {"Sagemaker": "true", "Robomaker": "true"})]
    assert swarm.manager_address() == f"{two_node_swarm.worker_addr}:2377"
    swarm.leave(force=True)
    assert not swarm.active()


def test_workers_spread_over_both_nodes_reach_the_manager_across_the_overlay_and_removal_cleans_both(
        two_node_swarm: TwoNodeSwarm):
    engine = Engine(base_url=two_node_swarm.manager)
    swarm = Swarm(engine)
    image = image_on_both(two_node_swarm)
    assert swarm.ensure_overlay(NETWORK) == NETWORK
    network = docker.DockerClient(base_url=two_node_swarm.manager).networks.get(NETWORK)
    assert (network.attrs["Driver"], network.attrs["Attachable"], network.attrs["Scope"]) == ("overlay", True, "swarm")
    assert network.attrs["Labels"]["com.docker.compose.network"] == NETWORK
    assert network.attrs["Labels"]["com.docker.compose.project"] == NETWORK
    assert swarm.ensure_overlay(NETWORK) == NETWORK and \
        docker.DockerClient(base_url=two_node_swarm.manager).networks.get(NETWORK).id == network.id

    redis = engine.start(listener(engine, image))
    swarm.run_service(workers(image, 2, "until echo worker $DOCKER_REPLICA_SLOT | nc -w 2 redis-standin 6379; "
                                        "do sleep 0.2; done; echo sent; exec sleep 600"))
    tasks = poll(lambda: [t for t in swarm.current_tasks("deepracer-7-worker") if t.state == "running"] if all(
        t.state == "running" for t in swarm.current_tasks("deepracer-7-worker")) and len(
        swarm.current_tasks("deepracer-7-worker")) == 2 else None, "two running workers")
    assert {t.node_id for t in tasks} == {two_node_swarm.manager_id, two_node_swarm.worker_id}
    assert [t.slot for t in tasks] == [1, 2]
    # each worker, the one on the second node too, reached the manager's listener by name across the overlay
    poll(lambda: {"worker 1", "worker 2"} <= set(engine.logs(redis).splitlines()), "both workers' messages")
    remote = next(t for t in tasks if t.node_id == two_node_swarm.worker_id)
    assert poll(lambda: swarm.task_logs(remote) or None, "the remote worker's log") == "sent\n"
    # the containers carry our labels on both nodes, and the worker's number is its slot
    on_worker = Engine(base_url=two_node_swarm.worker).list(run="7")
    assert [(c.role, c.worker, c.prefix, c.task, c.running) for c in on_worker] == [
        ("worker", remote.slot, "m-1", remote.id, True)]
    nodes = {node.id: node for node in swarm.nodes()}
    shown = swarm.task_container(remote, nodes, run="7", prefix="m-1")
    assert (shown.worker, shown.running, shown.node, shown.task, shown.service) == (
        remote.slot, True, nodes[remote.node_id].hostname, remote.id, "deepracer-7-worker")
    assert engine.logs(shown) == "sent\n"  # read through the manager, though the container is on the other node

    # a second service of the same name is refused while this one runs
    with pytest.raises(EngineError, match="still running"):
        swarm.run_service(workers(image, 1, "true"))

    assert swarm.remove_service("deepracer-7-worker")
    for host in (two_node_swarm.manager, two_node_swarm.worker):
        poll(lambda host=host: not run_containers(host, "7"), f"no worker container left on {host}")
    assert not swarm.remove_service("deepracer-7-worker")


def test_a_remote_task_s_follow_subscribes_anew_when_quiet_losing_and_repeating_no_line_and_ends_with_it(
        two_node_swarm: TwoNodeSwarm):
    """A task on the other node that writes a line every 1.5 s, followed through the manager with 0.4 s of quiet
    allowed: each gap makes the follow subscribe anew from its last line's instant (the real manager's `since`, to
    the nanosecond), so every line comes once, in order, and the follow ends once the task has."""
    engine = Engine(base_url=two_node_swarm.manager)
    swarm = Swarm(engine)
    image = image_on_both(two_node_swarm)
    swarm.ensure_overlay(NETWORK)
    count = 6
    spec = workers(image, 1, f"i=0; while [ $i -lt {count} ]; do echo line $i; i=$((i+1)); sleep 1.5; done")
    swarm.run_service(ServiceSpec(spec.container, replicas=1, constraints=(f"node.id == {two_node_swarm.worker_id}",)))
    task = poll(lambda: next((t for t in swarm.current_tasks("deepracer-7-worker") if t.state == "running"), None),
                "the remote task running")
    shown = swarm.task_container(task, {node.id: node for node in swarm.nodes()}, run="7", prefix="m-1")
    assert engine._task_ended(task.id) is False
    follow = engine._open_stream(shown, quiet_s=0.4)
    got: "queue.Queue[object]" = queue.Queue()

    def reader() -> None:
        try:
            got.put(list(split_lines(follow)))
        except Exception as error:  # noqa: BLE001 - the test shows it
            got.put(error)

    threading.Thread(target=reader, daemon=True).start()
    try:
        lines = got.get(timeout=120)  # the task writes for 9 s; its end is seen within a few more
    except queue.Empty:
        follow.close()
        pytest.fail(f"the follow did not end with its task: {follow.subscriptions} subscriptions")
    assert lines == [f"line {i}" for i in range(count)]
    # each gap between lines asked anew; each new subscription repeated at most the last line's instant
    assert follow.subscriptions >= count
    assert follow.repeated <= follow.subscriptions - 1
    assert engine._task_ended(task.id) is True
    # a one-off read of its last lines asks the node for those only (the manager's tail), not the whole log
    assert list(TaskLog(engine._task_stream("deepracer-7-worker", task.id, follow=False, tail=2),
                        f"com.docker.swarm.task.id={task.id}")) == [b"line 4\n", b"line 5\n"]
    assert engine.task_logs("deepracer-7-worker", task.id, tail=2) == "line 4\nline 5\n"
    assert swarm.remove_service("deepracer-7-worker")
    # a task the manager no longer knows (removed with its service, as `stop` does) has ended too: a follow of it
    # ends rather than asking for it for ever
    assert engine._task_ended("nosuchtask0123456789abcde") is True


def test_a_worker_node_lost_shows_its_workers_lost_and_the_service_still_goes(two_node_swarm: TwoNodeSwarm):
    engine = Engine(base_url=two_node_swarm.manager)
    swarm = Swarm(engine)
    image = image_on_both(two_node_swarm)
    swarm.ensure_overlay(NETWORK)
    swarm.run_service(workers(image, 2, "echo up; exec sleep 600"))
    tasks = poll(lambda: swarm.current_tasks("deepracer-7-worker") if len(
        [t for t in swarm.current_tasks("deepracer-7-worker") if t.state == "running"]) == 2 else None,
        "two running workers")
    assert {t.node_id for t in tasks} == {two_node_swarm.manager_id, two_node_swarm.worker_id}
    on_manager = next(t for t in tasks if t.node_id == two_node_swarm.manager_id)
    poll(lambda: swarm.task_logs(on_manager) == "up\n", "the first line of the worker on the manager")

    two_node_swarm.lose_worker()  # a spot reclaim: the node vanishes without a word
    poll(lambda: not next(n for n in swarm.nodes() if n.id == two_node_swarm.worker_id).ready, "the node down")
    nodes = {node.id: node for node in swarm.nodes()}
    shown = {c.worker: c for c in (swarm.task_container(t, nodes, run="7") for t in swarm.current_tasks(
        "deepracer-7-worker"))}
    remote = next(t.slot for t in tasks if t.node_id == two_node_swarm.worker_id)
    local = next(t.slot for t in tasks if t.node_id == two_node_swarm.manager_id)
    assert shown[remote].lost and not shown[remote].running
    assert shown[local].running and not shown[local].lost
    # a task's log is read through the manager from its own node alone: the node that is down holds up no other
    # (a service's log waits for every node of the service; `stop` then saves every worker's log but the lost ones)
    started = time.monotonic()
    assert engine.task_logs("deepracer-7-worker", on_manager.id, timeout_s=20) == "up\n"
    assert time.monotonic() - started < 10
    # no replacement is scheduled (restart policy none): the manager's node keeps its one worker
    assert len([t for t in swarm.tasks("deepracer-7-worker") if t.live]) <= 2
    # removing the service works with the node gone; the manager's container goes
    assert swarm.remove_service("deepracer-7-worker")
    poll(lambda: not run_containers(two_node_swarm.manager, "7"), "no worker container left on the manager")


def _task_attrs(task_id: str, slot: int, state: str, updated: str, attachments: list) -> dict:
    """A task as the manager's API lists it (GET /tasks): the fields session.engine.swarm reads."""
    return {"ID": task_id, "Slot": slot, "NodeID": "n2", "DesiredState": "running", "UpdatedAt": updated,
            "Status": {"State": state, "ContainerStatus": {"ContainerID": f"c-{task_id}"}},
            "NetworksAttachments": attachments}


def _attachment(network: str, address: str) -> dict:
    return {"Network": {"ID": f"id-{network}", "Spec": {"Name": network, "Driver": "overlay"}},
            "Addresses": [address]}


def test_a_slots_camera_address_is_its_running_tasks_on_the_named_network():
    # Fast tier: the lookup on the API's documents, no daemon. Slot 1 was replaced (the old task shut down with
    # the old address, the new one runs with a new address); slot 2 is still starting; slot 3 runs on the ingress
    # only.
    found = [_swarm_task(attrs) for attrs in sorted((
        _task_attrs("old1", 1, "shutdown", "2026-12-06T10:00:00Z", [_attachment(NETWORK, "10.0.1.5/24")]),
        _task_attrs("new1", 1, "running", "2026-12-06T10:05:00Z",
                    [_attachment("ingress", "10.0.0.9/24"), _attachment(NETWORK, "10.0.1.12/24")]),
        _task_attrs("t2", 2, "starting", "2026-12-06T10:05:00Z", [_attachment(NETWORK, "10.0.1.13/24")]),
        _task_attrs("t3", 3, "running", "2026-12-06T10:05:00Z", [_attachment("ingress", "10.0.0.10/24")]),
    ), key=lambda attrs: attrs["UpdatedAt"], reverse=True)]
    assert found[0].addresses == {"ingress": "10.0.0.9", NETWORK: "10.0.1.12"}
    assert running_address(found, 1, NETWORK) == "10.0.1.12"
    assert running_address(found, 2, NETWORK) is None  # not running yet: no stream to ask for
    assert running_address(found, 3, NETWORK) is None
    assert running_address(found, 4, NETWORK) is None
    assert _swarm_task({"ID": "x", "Status": {}}).addresses == {}  # a task not yet allocated has no attachments


def _swarm_task(attrs: dict):
    return _task_of(attrs, "deepracer-0-robomaker")
