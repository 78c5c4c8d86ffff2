"""Training across a real two-node swarm (tests/conftest.py `two_node_swarm`): `train`, `status`, `logs`, `stop`,
and a node lost, with the stand-in simulator of test_rehearsal_e2e.py on both nodes.

The manager runs the trainer and its SageMaker sibling (started by the real SageMaker SDK and Compose v2 through
the manager's socket, on the overlay), and the workers are one swarm service spread over both nodes. Storage is
moto's S3 server on this host, reached by the containers as MinIO is, at http://minio:9000: a proxy container
(tests/session/standin/minio_proxy.py) on the manager joins both a local bridge (whose gateway moto listens on)
and the overlay, so the worker on the second node reaches storage across the overlay; it reaches the trainer's
stand-in Redis (the sibling's port 6379, by the address the sibling hands out in ip/ip.json) the same way.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import boto3
import docker
import pytest

from session.engine.containers import Engine, WatchEvent
from session.engine.specs import NETWORK
from session.engine.swarm import Swarm
from session.insight.live_view import follow_session
from session.insight.status import render, run_status
from session.lifecycle.swarm_watch import check
from session.run.node_loss import GRACE, lost_workers, memory_path_beside
from session.run.state import RunStateStore, Status
from session.run.training import TrainingError, run_containers, start_recorded, start_training, stop_training
from tests.conftest import TwoNodeSwarm
from tests.session.run.test_rehearsal_e2e import (
    IMAGE_SOURCE,
    IMAGE_TAG,
    READY_S,
    STOP_S,
    Rehearsal,
    checkpoints,
    poll,
    saved_logs,
    sim_trace_fields,
    the_sibling,
)
from tests.session.standin import build_image, python_mounts

PROXY = Path(__file__).resolve().parents[1] / "standin" / "minio_proxy.py"
S3_BRIDGE = "deepracer-s3-local"
REDIS = "Connected to the trainer's Redis at "


@dataclass
class SwarmRehearsal(Rehearsal):
    """The rehearsal's files and clean-up on the manager, with storage at MinIO's in-network name."""

    minio_url: str = "http://minio:9000"

    def write(self, run_env: str, workers: int = 2) -> None:
        super().write(run_env, workers)
        system = self.folder / "system.env"
        system.write_text(system.read_text().replace(f"DR_MINIO_URL={self.endpoint}", f"DR_MINIO_URL={self.minio_url}"))


@pytest.fixture
def swarm_rehearsal(tmp_path: Path, two_node_swarm: TwoNodeSwarm, s3_server: str) -> Iterator[SwarmRehearsal]:
    from moto.server import ThreadedMotoServer

    for host in (two_node_swarm.manager, two_node_swarm.worker):  # no registry: each node imports the image
        build_image(host, IMAGE_SOURCE, IMAGE_TAG)
    manager = docker.DockerClient(base_url=two_node_swarm.manager)
    Swarm(Engine(base_url=two_node_swarm.manager)).ensure_overlay(NETWORK)
    bridge = manager.networks.create(S3_BRIDGE, driver="bridge")
    ipam = bridge.attrs["IPAM"]["Config"][0]
    gateway = (ipam.get("Gateway") or str(ipaddress.ip_network(ipam["Subnet"])[1])).split("/")[0]
    server = ThreadedMotoServer(ip_address=gateway, port=0, verbose=False)
    requests_log = logging.getLogger("werkzeug")
    level = requests_log.level
    requests_log.setLevel(logging.WARNING)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        proxy = manager.containers.create(
            f"{IMAGE_SOURCE}:{IMAGE_TAG}", [f"python3 /proxy.py {gateway} {port}"], name="minio",
            network=S3_BRIDGE, labels={"deepracer.run": "host", "deepracer.role": "minio"},
            volumes=[f"{m.source}:{m.target}:ro" for m in python_mounts()] + [f"{PROXY}:/proxy.py:ro"])
        manager.networks.get(NETWORK).connect(proxy, aliases=["minio"])
        proxy.start()
        bucket = f"deepracer-swarm-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        shutil.copytree(Path(__file__).resolve().parents[3] / "session" / "defaults", tmp_path / "custom_files",
                        ignore=shutil.ignore_patterns("__pycache__"))
        made = SwarmRehearsal(tmp_path, endpoint, two_node_swarm.manager, bucket)
        try:
            yield made
        finally:
            made.clean_up()
    finally:
        server.stop()
        requests_log.setLevel(level)
        manager.close()


def containers_on(docker_host: str, run_id: int, running: bool = True) -> list[str]:
    client = docker.DockerClient(base_url=docker_host)
    try:
        # ignore_removed: a container removed between the list and its inspect is gone, not an error
        return sorted(c.name for c in client.containers.list(all=not running, ignore_removed=True,
                                                            filters={"label": f"deepracer.run={run_id}"}))
    finally:
        client.close()


def test_training_spreads_its_workers_over_both_nodes_status_and_logs_see_them_and_stop_cleans_both(
        swarm_rehearsal: SwarmRehearsal, two_node_swarm: TwoNodeSwarm):
    model = f"swarm-{uuid.uuid4().hex[:6]}-1"
    swarm_rehearsal.write(f"DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX={model}\n", workers=2)
    host = swarm_rehearsal.host()
    said: list[str] = []

    events: list[WatchEvent] = []
    started = start_training(host, say=said.append, timeout_s=READY_S, on_event=events.append)
    assert [(c.role, c.worker) for c in started] == [("trainer", None), ("worker", 1), ("worker", 2)]
    # each worker was ready by its own SIM_TRACE_LOG line, the one on the other node's through the manager
    assert sorted(e.container.worker for e in events if e.kind == "ready" and e.container.role == "worker"
                  and "SIM_TRACE_LOG:" in e.line) == [1, 2]
    assert f"started service deepracer-{host.run.run_id}-worker: 2 worker(s) on the swarm's nodes labelled " \
           "Robomaker" in said
    nodes = {n.id: n for n in Swarm(host.engine).nodes()}
    tasks = Swarm(host.engine).current_tasks(f"deepracer-{host.run.run_id}-worker")
    assert {t.node_id for t in tasks} == set(nodes) == {two_node_swarm.manager_id, two_node_swarm.worker_id}
    remote = next(t.slot for t in tasks if t.node_id == two_node_swarm.worker_id)

    # status from both nodes: the manager lists every worker with its node; each node's engine has its own one
    status = run_containers(host.engine, host.system, host.run)
    assert sorted((c.role, c.worker or 0, c.running) for c in status) == [
        ("sagemaker", 0, True), ("trainer", 0, True), ("worker", 1, True), ("worker", 2, True)]
    assert all(c.node for c in status if c.role == "worker")
    on_worker = Engine(base_url=two_node_swarm.worker).list(run=str(host.run.run_id))
    assert [(c.role, c.worker, c.running) for c in on_worker] == [("worker", remote, True)]
    # `deepracer status` on the manager lists both workers, the remote one with its node
    shown = run_status(host.system, host.run, docker_host=two_node_swarm.manager, progress="never")
    assert sorted((c.role, c.worker or 0) for c in shown.containers if c.running) == [
        ("sagemaker", 0), ("trainer", 0), ("worker", 1), ("worker", 2)]
    assert next(c for c in shown.containers if c.worker == remote).node

    # training goes on: checkpoints from both workers' episodes, delivered through storage across the overlay
    poll(lambda: len(checkpoints(host.storage, model)) >= 2, "second checkpoint", timeout_s=READY_S)
    # the worker on the second node reached the trainer's Redis and storage across the overlay; its log comes
    # through the manager (`deepracer logs worker N`)
    remote_info = next(c for c in status if c.worker == remote)
    log = host.engine.logs(remote_info)
    sibling = the_sibling(host)
    networks = docker.DockerClient(base_url=two_node_swarm.manager).api.inspect_container(sibling.id)[
        "NetworkSettings"]["Networks"]
    assert f"{REDIS}{networks[NETWORK]['IPAddress']}:6379" in log
    assert f"Starting as worker {remote - 1}, using world reInvent2019_track" in log
    assert sim_trace_fields(log)
    assert host.storage.list_objects(f"{model}/{remote - 1}/training-simtrace/") or remote == 1

    # stop: trainer, sibling and both workers; nothing runs on either node; every log saved beside the model
    stopped = stop_training(host, say=said.append, timeout=STOP_S)
    assert sorted((c.role or "sagemaker", c.worker or 0) for c in stopped) == [  # the engine names no role
        ("sagemaker", 0), ("trainer", 0), ("worker", 1), ("worker", 2)]
    assert containers_on(two_node_swarm.manager, host.run.run_id) == []
    assert containers_on(two_node_swarm.worker, host.run.run_id) == []
    assert not any(c.running for c in run_containers(host.engine, host.system, host.run))
    assert saved_logs(host.storage, model) == ["sagemaker.log", "trainer.log", "worker-1.log", "worker-2.log"]
    assert REDIS in host.storage.get_text(next(i.key for i in host.storage.list_objects(f"{model}/logs/")
                                               if i.key.endswith(f"-worker-{remote}.log")))


def test_a_lost_node_shows_its_worker_lost_and_stop_still_ends_the_run_on_the_manager(
        swarm_rehearsal: SwarmRehearsal, two_node_swarm: TwoNodeSwarm):
    model = f"swarm-lost-{uuid.uuid4().hex[:6]}-1"
    swarm_rehearsal.write(f"DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX={model}\n", workers=2)
    host = swarm_rehearsal.host()
    start_training(host, say=lambda _: None, timeout_s=READY_S)
    tasks = Swarm(host.engine).current_tasks(f"deepracer-{host.run.run_id}-worker")
    remote = next(t.slot for t in tasks if t.node_id == two_node_swarm.worker_id)

    two_node_swarm.lose_worker()  # a spot reclaim: no word from the node, ever again
    lost = poll(lambda: [c for c in run_containers(host.engine, host.system, host.run) if c.lost],
                "the lost worker")
    assert [(c.role, c.worker) for c in lost] == [("worker", remote)]
    status = run_containers(host.engine, host.system, host.run)
    assert sorted((c.role, c.worker or 0) for c in status if c.running) == [
        ("sagemaker", 0), ("trainer", 0), ("worker", 3 - remote)]

    said: list[str] = []
    stopped = stop_training(host, say=said.append, timeout=STOP_S)
    assert sorted((c.role or "sagemaker", c.worker or 0, c.lost) for c in stopped) == [
        ("sagemaker", 0, False), ("trainer", 0, False), ("worker", 1, remote == 1), ("worker", 2, remote == 2)]
    assert containers_on(two_node_swarm.manager, host.run.run_id) == []
    assert f"the log of worker {remote} is on node {lost[0].node}, which is down: not saved" in said
    assert saved_logs(host.storage, model) == sorted(["sagemaker.log", "trainer.log", f"worker-{3 - remote}.log"])


# --- a node lost: the swarm watch stops the run ------------------------------------------------------------------


def test_a_node_lost_past_the_grace_stops_the_run_records_why_and_mails_the_node(
        swarm_rehearsal: SwarmRehearsal, two_node_swarm: TwoNodeSwarm, tmp_path: Path):
    model = f"swarm-gone-{uuid.uuid4().hex[:6]}-1"
    swarm_rehearsal.write(f"DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX={model}\n", workers=2)
    host = swarm_rehearsal.host()
    store = RunStateStore(tmp_path / "run" / "state.json")
    store.path.parent.mkdir()
    started, recorded = start_recorded(host, store, swarm_rehearsal.run_env, swarm_rehearsal.folder / "system.env",
                                       say=lambda _: None, timeout_s=READY_S)
    assert recorded is not None and recorded.status is Status.RUNNING
    assert [(c.role, c.worker) for c in started] == [("trainer", None), ("worker", 1), ("worker", 2)]
    tasks = Swarm(host.engine).current_tasks(f"deepracer-{host.run.run_id}-worker")
    remote = next(t.slot for t in tasks if t.node_id == two_node_swarm.worker_id)
    poll(lambda: checkpoints(host.storage, model), "a first checkpoint", timeout_s=READY_S)
    mails: list[tuple[str, str, str]] = []

    def tick(at: datetime) -> object:
        return check(store=store, engine=host.engine, now=lambda: at, host_factory=lambda *_: host,
                     notify=lambda system, event, prefix, details, **_: mails.append((event, prefix, details)) or True,
                     say=lambda _: None)

    t0 = datetime(2026, 12, 6, 16, 0, tzinfo=timezone.utc)
    assert tick(t0) is None  # all nodes up: nothing remembered
    assert not memory_path_beside(store.path).exists()

    two_node_swarm.lose_worker()  # a spot reclaim of the node: no word from it, ever again
    poll(lambda: lost_workers(Swarm(host.engine), host.run.run_id), "the node seen down")
    assert tick(t0) is None  # first seen down: the grace starts
    assert tick(t0 + GRACE - timedelta(seconds=1)) is None and store.read().status is Status.RUNNING
    shown = render(run_status(host.system, host.run, docker_host=two_node_swarm.manager, progress="never",
                              run_state=store.path, system_env=swarm_rehearsal.folder / "system.env"))
    node = f"({two_node_swarm.worker_id[:12]}; worker {remote})"
    assert f"{node} is down since 16:00:00 UTC: the run is stopped at 16:02:00 UTC unless it returns" in shown

    report = tick(t0 + GRACE)
    assert report is not None
    state = store.read()
    assert state.status is Status.NODE_LOST and node in state.reason and "down since 16:00 UTC" in state.reason
    assert state.stopped == t0 + GRACE and state.checkpoint  # the newest complete checkpoint, to go on from
    assert containers_on(two_node_swarm.manager, host.run.run_id) == []  # trainer, sibling, local worker: gone
    assert Swarm(host.engine).service(f"deepracer-{host.run.run_id}-worker") is None
    [(event, prefix, details)] = mails
    assert (event, prefix) == ("training stopped: node lost", model)
    assert two_node_swarm.worker_id[:12] in details and f"worker(s) {remote} of this run" in details
    assert f"`deepracer increment` and then `deepracer train` continue from its last checkpoint " \
           f"({state.checkpoint})" in details
    shown = render(run_status(host.system, host.run, docker_host=two_node_swarm.manager, progress="never",
                              run_state=store.path, system_env=swarm_rehearsal.folder / "system.env"))
    assert "stopped   swarm node lost: node " in shown and node in shown, shown
    assert tick(t0 + GRACE * 2) is None and not memory_path_beside(store.path).exists()  # once only
    assert len(mails) == 1


# --- the workers on other nodes: readiness from their logs, their images ---------------------------------------


def only_the_second_node_runs_workers(two_node_swarm: TwoNodeSwarm) -> None:
    """The manager keeps the trainer only (DRfC's Robomaker=false): every replica lands on the other node."""
    Swarm(Engine(base_url=two_node_swarm.manager)).label(two_node_swarm.manager_id, {"Robomaker": "false"})


def test_a_worker_on_another_node_that_dies_at_start_up_fails_train_with_its_simapp_exception(
        swarm_rehearsal: SwarmRehearsal, two_node_swarm: TwoNodeSwarm):
    only_the_second_node_runs_workers(two_node_swarm)
    swarm_rehearsal.write("DR_WORLD_NAME=Mars_track\nDR_LOCAL_S3_MODEL_PREFIX=swarm-no-such-track\n", workers=1)
    host = swarm_rehearsal.host()
    with pytest.raises(TrainingError) as raised:
        start_training(host, say=lambda _: None, timeout_s=READY_S)
    message = str(raised.value)
    # It fails once it has the trainer's hand-off (ip.json): after the trainer was ready, on the other node.
    assert re.match(rf"training did not start: deepracer-{host.run.run_id}-worker\.1\.\w+ on node \S+ exited with "
                    r"code 1: Failed to load the track Mars_track: \S+/routes/Mars_track\.npy does not exist "
                    r"\(errorCode 400\); stopped the run's containers", message), message
    assert containers_on(two_node_swarm.manager, host.run.run_id) == []
    assert Swarm(host.engine).service(f"deepracer-{host.run.run_id}-worker") is None


def test_a_node_without_the_image_fails_train_naming_the_node_the_image_and_the_fix(
        swarm_rehearsal: SwarmRehearsal, two_node_swarm: TwoNodeSwarm):
    only_the_second_node_runs_workers(two_node_swarm)
    image = f"{IMAGE_SOURCE}:{IMAGE_TAG}"
    docker.DockerClient(base_url=two_node_swarm.worker).images.remove(image, force=True)
    swarm_rehearsal.write("DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX=swarm-no-image\n", workers=1)
    host = swarm_rehearsal.host()
    with pytest.raises(TrainingError) as raised:
        start_training(host, say=lambda _: None, timeout_s=READY_S)
    message = str(raised.value)
    assert re.fullmatch(rf"worker 1 cannot start on node \S+ \({two_node_swarm.worker_id[:12]}\): image "
                        rf"{re.escape(image)} is not there \(.+\); run `docker pull {re.escape(image)}` on that node "
                        r"\(or wait for its bootstrap to finish\), then train again", message), message
    assert "\n" not in message
    assert containers_on(two_node_swarm.manager, host.run.run_id) == []  # the trainer started first: stopped
    assert Swarm(host.engine).service(f"deepracer-{host.run.run_id}-worker") is None


def test_logs_follow_and_watch_relay_a_worker_on_the_other_node(
        swarm_rehearsal: SwarmRehearsal, two_node_swarm: TwoNodeSwarm):
    only_the_second_node_runs_workers(two_node_swarm)
    model = f"swarm-follow-{uuid.uuid4().hex[:6]}-1"
    swarm_rehearsal.write(f"DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX={model}\n", workers=2)
    host = swarm_rehearsal.host()
    start_training(host, say=lambda _: None, timeout_s=READY_S)

    # `watch`'s data layer: both workers (on the other node) counted from their lines through the manager. Its
    # follows are closed when it returns, and the `logs --follow` below needs a new subscription on the worker's
    # node. When both followed the service's log, that new one never reached the node in 4 of 10 runs: the
    # closed one was stuck there in gRPC flow control (docs/testing.md, "A remote worker's log").
    snapshot = follow_session(lambda: run_containers(host.engine, host.system, host.run), host.engine.follow,
                              lambda _: None, probe=None, refresh_s=0.5, max_refreshes=int(READY_S * 2),
                              until=lambda s: len(s.workers) == 2 and all(w.steps > 0 for w in s.workers))
    assert [(w.number, w.state) for w in snapshot.workers] == [(1, "running"), (2, "running")]
    assert all(w.steps > 0 for w in snapshot.workers), snapshot.workers

    # `deepracer logs worker 2 --follow`, the command itself, against the manager: lines newer than its start
    since = time.time()
    command = subprocess.Popen(
        [sys.executable, "-m", "session", "logs", "worker", "2", "--follow", "--run-env", str(swarm_rehearsal.run_env),
         "--system-env", str(swarm_rehearsal.folder / "system.env")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "DOCKER_HOST": two_node_swarm.manager})
    try:
        arrived = _read_until_fresh(command, since, "a new SIM_TRACE_LOG line of worker 2")
        # and it goes on: a line the worker wrote after the first one had reached us (a one-off read would end)
        _read_until_fresh(command, arrived + 1.0, "a line written after the first one arrived")
    finally:
        command.kill()
        command.wait()
    stop_training(host, say=lambda _: None, timeout=STOP_S)
    assert containers_on(two_node_swarm.worker, host.run.run_id) == []


def _read_until_fresh(command: subprocess.Popen, since: float, what: str) -> float:
    """Reads the command's lines (it prints steps many times a second, so a read never waits long) until a
    SIM_TRACE_LOG line stamped (wall_clock, its last field) after `since`; returns when that line arrived. The
    lines come through a thread and a queue, so a follow that stalls fails the test at the deadline instead of
    blocking it in readline() for ever."""
    lines = _lines_of(command)
    deadline = time.monotonic() + READY_S
    read, last = 0, ""
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if not line:
            pytest.fail(f"`deepracer logs --follow` ended before {what}: "
                        f"{command.stderr.read() if command.stderr else ''}")
        read += 1
        if "SIM_TRACE_LOG:" in line:
            last = line.rstrip()
            if float(last.rsplit(",", 1)[1]) > since:
                return time.time()
    # what arrived tells a stalled relay (none, or only old lines) from a slow worker
    pytest.fail(f"{what}: none within {READY_S} s; {read} lines read, the last step line {last[-120:]!r}, "
                f"looking for a wall clock after {since:.3f}")


_READERS: dict[int, "queue.Queue[str]"] = {}


def _lines_of(command: subprocess.Popen) -> "queue.Queue[str]":
    """The command's stdout as a queue of lines ("" at its end), filled by one daemon thread per command."""
    if command.pid not in _READERS:
        found: "queue.Queue[str]" = queue.Queue()
        assert command.stdout is not None

        def pump() -> None:
            for line in command.stdout:  # type: ignore[union-attr]
                found.put(line)
            found.put("")

        threading.Thread(target=pump, daemon=True).start()
        _READERS[command.pid] = found
    return _READERS[command.pid]
