"""session.engine.containers against a real Docker Engine of the tests' own (tests/conftest.py `docker_engine`)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Callable, Iterator, List

import pytest

from session.engine.containers import (
    LABEL_MANAGED,
    LABEL_PREFIX,
    LABEL_ROLE,
    LABEL_RUN,
    LABEL_WORKER,
    ROLE_SAGEMAKER,
    ContainerSpec,
    Engine,
    EngineError,
    Mount,
    WatchEvent,
    parse_simapp_exception,
)

SIM_TRACE = "SIM_TRACE_LOG:0,1,-1.44,-1.71,178.99,4.99,2.00,[4.98 2.0],0.84,False,True,0.84,1,16.60,36.23,in_progress"
READY = {"worker": [r"SIM_TRACE_LOG:"], "trainer": [r"^trainer ready$"]}


@pytest.fixture
def client(docker_engine):
    import docker

    client = docker.DockerClient(base_url=docker_engine)
    yield client
    client.close()


@pytest.fixture
def engine(docker_engine) -> Engine:
    return Engine(base_url=docker_engine)


@pytest.fixture
def network(engine, client) -> Iterator[str]:
    name = engine.ensure_network(f"drt-{uuid.uuid4().hex[:8]}")
    yield name
    client.networks.get(name).remove()


@pytest.fixture
def unique(network, client) -> Iterator[Callable[[str], str]]:
    """Container names unique to this test; whatever carries one is force-removed afterwards (before the
    network goes, since this fixture depends on it)."""
    made: List[str] = []

    def name(stem: str) -> str:
        made.append(f"drt-{uuid.uuid4().hex[:8]}-{stem}")
        return made[-1]

    yield name
    import docker.errors

    for container_name in made:
        try:
            client.containers.get(container_name).remove(force=True, v=True)
        except docker.errors.NotFound:
            pass


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture
def spec(standin_image, network, unique, run_id) -> Callable[..., ContainerSpec]:
    """A ContainerSpec of ours: `spec("worker", "echo hi; sleep 30", worker=1)`."""

    def make(role: str, script: str, worker: int | None = None, run: str | None = None, **overrides) -> ContainerSpec:
        labels = {LABEL_RUN: run or run_id, LABEL_ROLE: role, LABEL_PREFIX: "rl-test-1"}
        if worker is not None:
            labels[LABEL_WORKER] = str(worker)
        values = dict(name=unique(f"{role}{worker or ''}"), image=standin_image, command=("sh", "-c", script),
                      environment={}, labels=labels, mounts=(), network=network)
        values.update(overrides)
        return ContainerSpec(**values)

    return make


# --- start ------------------------------------------------------------------------------------------------------


def test_start_applies_env_labels_mounts_working_dir_and_init(engine, client, spec, tmp_path, run_id, network):
    (tmp_path / "hello.txt").write_text("hello from the host\n")
    info = engine.start(spec("trainer", "cat /data/hello.txt; pwd; env; sleep 30",
                             environment={"MODEL_S3_PREFIX": "rl-test-1", "RUN_ID": run_id},
                             mounts=(Mount(str(tmp_path), "/data", read_only=True),
                                     Mount(str(tmp_path / "scratch"), "/scratch")),
                             working_dir="/tmp"))

    assert (info.role, info.run, info.worker, info.prefix, info.status) == ("trainer", run_id, None, "rl-test-1",
                                                                            "running")
    assert info.started_at is not None and info.exit_code is None
    attrs = client.api.inspect_container(info.id)
    assert "MODEL_S3_PREFIX=rl-test-1" in attrs["Config"]["Env"]
    assert attrs["Config"]["Labels"][LABEL_RUN] == run_id
    assert attrs["Config"]["WorkingDir"] == "/tmp"
    assert attrs["HostConfig"]["Init"] is True
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] in ("", "no")
    assert list(attrs["NetworkSettings"]["Networks"]) == [network]
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts["/data"]["Source"] == str(tmp_path) and mounts["/data"]["RW"] is False
    assert mounts["/scratch"]["RW"] is True and (tmp_path / "scratch").is_dir()  # created like compose does

    lines = engine.follow(info)
    assert next(lines) == "hello from the host"
    assert next(lines) == "/tmp"
    lines.close()


def test_start_refuses_a_running_container_of_the_same_name(engine, spec):
    first = engine.start(spec("worker", "sleep 30", worker=1))
    with pytest.raises(EngineError) as caught:
        engine.start(spec("worker", "sleep 30", worker=1, name=first.name))
    assert first.name in str(caught.value) and "deepracer stop" in str(caught.value)
    assert engine.get(first.name).id == first.id


def test_start_replaces_our_exited_leftover(engine, client, spec):
    leftover = engine.start(spec("worker", "echo old", worker=1))
    client.api.wait(leftover.id, timeout=10)

    fresh = engine.start(spec("worker", "echo new; sleep 30", worker=1, name=leftover.name))

    assert fresh.id != leftover.id and fresh.status == "running"
    assert engine.get(leftover.id) is None


def test_start_never_touches_a_container_it_did_not_make(engine, client, spec, standin_image, unique, network):
    name = unique("foreign")
    foreign = client.containers.create(standin_image, ["true"], name=name, network=network)
    with pytest.raises(EngineError) as caught:
        engine.start(spec("worker", "sleep 30", worker=1, name=name))
    assert name in str(caught.value) and "did not make" in str(caught.value)
    assert client.containers.get(name).id == foreign.id


def test_start_names_a_missing_image(engine, spec):
    with pytest.raises(EngineError, match=r"image no-such-image:1 is not on this host; pull it"):
        engine.start(spec("worker", "true", image="no-such-image:1"))


# --- list, networks, images -------------------------------------------------------------------------------------


def test_list_filters_by_run_and_role_and_sorts_by_role_then_worker(engine, spec, run_id, standin_image, client,
                                                                    unique, network):
    other_run = run_id + "x"
    engine.start(spec("worker", "sleep 30", worker=2))
    engine.start(spec("worker", "sleep 30", worker=1))
    engine.start(spec("trainer", "sleep 30"))
    engine.start(spec("trainer", "sleep 30", run=other_run))
    client.containers.create(standin_image, ["true"], name=unique("unlabelled"), network=network,
                             labels={LABEL_RUN: run_id})  # no role label: not ours

    ours = engine.list(run=run_id)
    assert [(c.role, c.worker) for c in ours] == [("trainer", None), ("worker", 1), ("worker", 2)]
    assert [c.worker for c in engine.list(run=run_id, role="worker")] == [1, 2]
    assert [c.run for c in engine.list(run=other_run)] == [other_run]
    assert {c.run for c in engine.list(role="trainer")} >= {run_id, other_run}


def test_ensure_network_is_idempotent_and_labels_what_it_made(engine, client):
    name = f"drt-{uuid.uuid4().hex[:8]}"
    try:
        assert engine.ensure_network(name, subnet="192.168.251.0/24") == name
        assert engine.ensure_network(name, subnet="192.168.251.0/24") == name
        [network] = client.networks.list(names=[name])
        assert network.attrs["Driver"] == "bridge"
        assert network.attrs["Labels"][LABEL_MANAGED] == "true"
        assert network.attrs["IPAM"]["Config"][0]["Subnet"] == "192.168.251.0/24"
    finally:
        for network in client.networks.list(names=[name]):
            network.remove()


def test_ensure_network_carries_compose_labels(engine, client):
    # SageMaker's local mode names this network in a compose file; Compose v2 refuses it without these labels.
    name = f"drt-{uuid.uuid4().hex[:8]}"
    try:
        engine.ensure_network(name)
        [network] = client.networks.list(names=[name])
        assert network.attrs["Labels"]["com.docker.compose.network"] == name
        assert network.attrs["Labels"]["com.docker.compose.project"] == name
    finally:
        for network in client.networks.list(names=[name]):
            network.remove()


def test_ensure_network_recreates_an_unlabelled_network_nothing_uses(engine, client):
    name = f"drt-{uuid.uuid4().hex[:8]}"
    old = client.networks.create(name, driver="bridge", labels={LABEL_MANAGED: "true"})
    try:
        engine.ensure_network(name)
        [network] = client.networks.list(names=[name])
        assert network.id != old.id
        assert network.attrs["Labels"]["com.docker.compose.network"] == name
    finally:
        for network in client.networks.list(names=[name]):
            network.remove()


def test_ensure_network_names_what_keeps_an_unlabelled_network(engine, client, standin_image):
    name = f"drt-{uuid.uuid4().hex[:8]}"
    old = client.networks.create(name, driver="bridge")
    holder = client.containers.run(standin_image, ["sleep", "60"], name=f"{name}-holder", network=name, detach=True)
    try:
        with pytest.raises(EngineError) as caught:
            engine.ensure_network(name)
        message = str(caught.value)
        assert "com.docker.compose.network" in message and f"{name}-holder" in message
        assert "deepracer stop" in message and "\n" not in message
        assert [n.id for n in client.networks.list(names=[name])] == [old.id]  # left alone while in use
    finally:
        holder.remove(force=True)
        old.remove()


def test_image_present(engine, standin_image):
    assert engine.image_present(standin_image)
    assert not engine.image_present("deepracer-standin:absent")


# --- stop, remove, logs -----------------------------------------------------------------------------------------


def test_stop_keeps_the_container_and_its_logs(engine, spec):
    info = engine.start(spec("worker", "echo hello; sleep 30", worker=1))
    assert engine.watch_until_ready([info], {"worker": ["hello"]}, timeout_s=10).ready

    started = time.monotonic()
    stopped = engine.stop([info], timeout=10)

    assert time.monotonic() - started < 5  # SIGTERM reached the shell through init; no kill after the timeout
    assert [(c.id, c.status) for c in stopped] == [(info.id, "exited")]
    assert stopped[0].exit_code is not None and stopped[0].finished_at is not None
    assert engine.get(info.id).status == "exited"
    assert engine.logs(info) == "hello\n"
    assert engine.stop([info]) == []  # nothing left to stop


def test_remove_takes_only_our_stopped_containers(engine, client, spec, standin_image, unique, network):
    ours = engine.start(spec("worker", "true", worker=1))
    client.api.wait(ours.id, timeout=10)
    foreign = client.containers.create(standin_image, ["true"], name=unique("foreign"), network=network)

    removed = engine.remove([ours, foreign.name])

    assert [c.id for c in removed] == [ours.id]
    assert engine.get(ours.id) is None
    assert engine.get(foreign.id) is not None


def test_logs_tail_and_follow_to_the_end(engine, client, spec):
    info = engine.start(spec("worker", "echo one; sleep 0.1; echo two >&2; sleep 0.2; echo three", worker=1))
    assert list(engine.follow(info)) == ["one", "two", "three"]  # ends by itself when the container exits
    assert engine.logs(info, tail=1) == "three\n"


def test_following_from_now_gives_only_the_lines_that_come_after(engine, client, spec):
    """`logs --follow --tail N`: the last N lines, then only newer ones, not the whole log again."""
    info = engine.start(spec("worker", "echo old-1; echo old-2; while [ ! -e /tmp/go ]; do sleep 0.05; done; "
                                       "echo new-1; sleep 30", worker=1))
    lines = engine.follow(info)
    assert [next(lines), next(lines)] == ["old-1", "old-2"]  # both old lines are out before following from now
    lines.close()
    fresh = engine.follow(info, new_only=True)
    done = client.containers.get(info.id).exec_run(["sh", "-c", "echo > /tmp/go"])
    assert done.exit_code == 0, done.output
    assert next(fresh) == "new-1"
    fresh.close()


# --- readiness --------------------------------------------------------------------------------------------------


def test_watch_detects_ready_lines_as_they_arrive(engine, spec):
    trainer = engine.start(spec("trainer", "echo starting; sleep 0.3; echo trainer ready; sleep 30"))
    worker = engine.start(spec("worker", f"echo starting; sleep 0.3; echo '[agent-9] {SIM_TRACE}'; sleep 30",
                               worker=1))
    events: List[WatchEvent] = []

    started = time.monotonic()
    result = engine.watch_until_ready([trainer, worker], READY, timeout_s=20, on_event=events.append)

    assert result.ready and result.failed is None and result.not_ready == ()
    assert time.monotonic() - started < 10
    assert {(e.container.name, e.kind) for e in events if e.kind == "ready"} == {(trainer.name, "ready"),
                                                                                (worker.name, "ready")}
    assert (worker.name, "line", "starting") in {(e.container.name, e.kind, e.line) for e in events}


def test_watch_surfaces_the_simapp_exception_of_a_container_that_exits(engine, spec):
    error = {"simapp_exception": {"date": "2026-05-04 10:00:00", "function": "validate_reward",
                                  "message": "Reward function raised: division by zero",
                                  "exceptionType": "simulation_worker.exceptions", "eventType": "user_error",
                                  "errorCode": "400"}}
    trainer = engine.start(spec("trainer", "echo trainer ready; sleep 30"))
    worker = engine.start(spec("worker", 'echo starting; sleep 0.2; echo "[agent-9] $ERR"; echo bye; exit 1',
                               worker=1, environment={"ERR": json.dumps(error)}))

    result = engine.watch_until_ready([trainer, worker], READY, timeout_s=20)

    assert not result.ready
    assert (result.failed.name, result.failed.exit_code, result.failed.status) == (worker.name, 1, "exited")
    assert result.exception.message == "Reward function raised: division by zero"
    assert result.exception.error_code == "400"
    assert result.error_lines == ("Reward function raised: division by zero (errorCode 400)",)
    assert worker.name in result.summary and "errorCode 400" in result.summary


def test_watch_gives_the_last_lines_when_there_is_no_simapp_exception(engine, spec):
    # All on stderr: Docker keeps the order within a stream, not between stdout and stderr.
    worker = engine.start(spec("worker", "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22; "
                                         "do echo line $i >&2; done; echo 'fatal: no track' >&2; exit 3", worker=1))

    result = engine.watch_until_ready([worker], READY, timeout_s=20)

    assert result.failed.exit_code == 3 and result.exception is None
    assert len(result.error_lines) == 20 and result.error_lines[-1] == "fatal: no track"
    assert "code 3" in result.summary and "fatal: no track" in result.summary


def test_watch_times_out_naming_who_is_not_ready(engine, spec):
    trainer = engine.start(spec("trainer", "echo trainer ready; sleep 30"))
    worker = engine.start(spec("worker", "echo still loading; sleep 30", worker=1))

    started = time.monotonic()
    result = engine.watch_until_ready([trainer, worker], READY, timeout_s=1.5)

    assert 1.4 < time.monotonic() - started < 5
    assert not result.ready and result.failed is None
    assert result.not_ready == (worker.name,)
    assert worker.name in result.summary


def test_parse_simapp_exception_ignores_other_lines():
    assert parse_simapp_exception("Training> Name=main_level/agent, Worker=0, Episode=20") is None
    assert parse_simapp_exception('{"simapp_exception": {broken') is None
    parsed = parse_simapp_exception('[robomaker] {"simapp_exception": {"message": "NaN detected", "errorCode": "503"}}')
    assert (parsed.message, parsed.error_code) == ("NaN detected", "503")


# --- the trainer's SageMaker-local sibling ----------------------------------------------------------------------


def test_sagemaker_siblings_are_found_by_name_image_and_marker(engine, client, spec, standin_image, network,
                                                               unique, tmp_path):
    stem = uuid.uuid4().hex[:6]
    names = [f"tmp{stem}a-algo-1-xyz1", f"tmp{stem}b-algo-1-xyz2", f"tmp{stem}c-algo-1-xyz3",
             f"tmp{stem}d-notalgo-1"]
    try:
        env_match = client.containers.run(standin_image, ["sleep", "30"], name=names[0], network=network,
                                          detach=True, init=True,
                                          environment={"MODEL_S3_PREFIX": "rl-test-1", "RUN_ID": "4"})
        client.containers.create(standin_image, ["true"], name=names[1], network=network,
                                 environment={"MODEL_S3_PREFIX": "rl-test-10"})  # another model
        compose_match = client.containers.create(standin_image, ["true"], name=names[2], network=network)
        (tmp_path / f"tmp{stem}c").mkdir()
        (tmp_path / f"tmp{stem}c" / "docker-compose.yaml").write_text(
            "services:\n  algo-1-xyz3:\n    environment:\n    - MODEL_S3_PREFIX=rl-test-1\n")
        client.containers.create(standin_image, ["true"], name=names[3], network=network,
                                 environment={"MODEL_S3_PREFIX": "rl-test-1"})  # not a SageMaker name
        ours = engine.start(spec("trainer", "sleep 30", name=unique("x-algo-1-y"),
                                 environment={"MODEL_S3_PREFIX": "rl-test-1"}))

        found = engine.sagemaker_siblings(standin_image, "rl-test-1", root=str(tmp_path))

        assert [c.id for c in found] == [env_match.id, compose_match.id]
        assert ours.id not in [c.id for c in found]
        assert {c.role for c in found} == {ROLE_SAGEMAKER}
        assert found[0].run == "4" and found[0].status == "running"
        assert engine.sagemaker_siblings("deepracer-standin:other", "rl-test-1", root=str(tmp_path)) == []
        assert [c.id for c in engine.sagemaker_siblings(standin_image, "rl-test-1", run="5",
                                                        root=str(tmp_path))] == [compose_match.id]
        assert [c.id for c in engine.stop(found, timeout=5)] == [env_match.id]  # siblings can be stopped
    finally:
        for name in names:
            for container in client.containers.list(all=True, filters={"name": name}):
                container.remove(force=True)


# --- errors -----------------------------------------------------------------------------------------------------


def test_an_unreachable_engine_is_one_line_with_the_docker_group_hint():
    engine = Engine(base_url="unix:///tmp/dr-no-such-engine/docker.sock")
    with pytest.raises(EngineError) as caught:
        engine.list()
    message = str(caught.value)
    assert "\n" not in message
    assert message == ("cannot reach the Docker Engine at unix:///tmp/dr-no-such-engine/docker.sock: No such file or "
                       "directory; is Docker running, and is your user in the docker group (log out and in after "
                       "adding)?")


def test_permission_denied_on_the_socket_gets_the_docker_group_hint():
    import requests
    from urllib3.exceptions import ProtocolError

    class Refusing:
        """A client whose every request meets a socket the user may not open."""

        def __getattr__(self, name):
            raise requests.exceptions.ConnectionError(
                ProtocolError("Connection aborted.", PermissionError(13, "Permission denied")))

    engine = Engine(client=Refusing(), base_url="unix:///var/run/docker.sock")
    with pytest.raises(EngineError, match=r"^permission denied on the Docker Engine socket at "
                                          r"unix:///var/run/docker.sock: add your user to the docker group"):
        engine.list()
