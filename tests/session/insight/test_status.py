"""session.insight.status against the tests' own dockerd (labelled containers from the stand-in image) and moto's S3."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import pytest

from session.core.config import load_config
from session.engine.containers import LABEL_PREFIX, LABEL_ROLE, LABEL_RUN, LABEL_WORKER, ContainerInfo, Engine
from session.host.factory import Host
from session.insight.status import as_json, host_status, render, run_status
from session.run.training import run_containers
from session.storage.s3 import Storage
from tests.shared_data import LOGS

REPO_ROOT = Path(__file__).resolve().parents[3]

DROA_METRICS = LOGS / "droa-2026-continuous-ppo-training" / "training-metrics.json"
UNREACHABLE_S3 = "http://127.0.0.1:9"


@pytest.fixture
def client(docker_engine):
    import docker

    client = docker.DockerClient(base_url=docker_engine)
    yield client
    client.close()


@pytest.fixture
def run_id() -> int:
    return 1000 + uuid.uuid4().int % 8000


@pytest.fixture
def configure(tmp_path: Path, run_id: int, standin_image: str) -> Callable[..., object]:
    """Writes system.env/run.env for run `run_id` with the stand-in as the simulator image; returns the
    LoadedConfig. The model prefix is unique to the test."""
    source, tag = standin_image.split(":")
    prefix = f"status-{uuid.uuid4().hex[:8]}"

    def make(bucket: str = "status-bucket", endpoint: str = UNREACHABLE_S3, workers: int = 2,
             model_prefix: str = prefix):
        (tmp_path / "system.env").write_text(
            f"DR_CLOUD=local\nDR_LOCAL_S3_BUCKET={bucket}\nDR_SIMAPP_SOURCE={source}\nDR_SIMAPP_VERSION={tag}\n"
            f"DR_WORKERS={workers}\nDR_LOCAL_S3_ENDPOINT_URL={endpoint}\nDR_LOCAL_ACCESS_KEY_ID=testing\n"
            "DR_LOCAL_SECRET_ACCESS_KEY=testing\n")
        (tmp_path / "run.env").write_text(f"DR_RUN_ID={run_id}\nDR_LOCAL_S3_MODEL_PREFIX={model_prefix}\n")
        return load_config(tmp_path / "run.env", tmp_path / "system.env", environ={})

    return make


@pytest.fixture
def containers(client, standin_image: str) -> Iterator[Callable[..., object]]:
    """`containers(name, command, labels=..., environment=..., wait=True)` runs one container of the stand-in
    image (no network); every container made is removed afterwards. wait=True waits until it has exited."""
    made = []

    def run(name: str, command: list[str], labels: dict | None = None, environment: dict | None = None,
            wait: bool = False):
        container = client.containers.run(standin_image, command, name=f"{name}", labels=labels or {},
                                          environment=environment or {}, network_mode="none", detach=True)
        made.append(container)
        if wait:
            client.api.wait(container.id, timeout=30)
        return container

    yield run
    for container in made:
        container.remove(force=True)


def labels(run_id: int, role: str, prefix: str, worker: int | None = None) -> dict[str, str]:
    found = {LABEL_RUN: str(run_id), LABEL_ROLE: role, LABEL_PREFIX: prefix}
    if worker is not None:
        found[LABEL_WORKER] = str(worker)
    return found


@pytest.fixture
def a_run(configure, containers, run_id):
    """Run `run_id` mid-way: the trainer, its SageMaker sibling and worker 1 running, worker 2 exited with 3;
    beside it another run's worker and -algo- containers of another model and of another run: not ours."""
    loaded = configure()
    prefix, tag = loaded.run.local_s3_model_prefix, uuid.uuid4().hex[:6]
    containers(f"deepracer-{run_id}-trainer-{tag}", ["sleep", "300"], labels(run_id, "trainer", prefix))
    containers(f"tmp{tag}xyz-algo-1-{tag[:5]}", ["sleep", "300"],
               environment={"MODEL_S3_PREFIX": prefix, "RUN_ID": str(run_id)})
    containers(f"deepracer-{run_id}-worker-1-{tag}", ["sleep", "300"], labels(run_id, "worker", prefix, 1))
    containers(f"deepracer-{run_id}-worker-2-{tag}", ["sh", "-c", "exit 3"], labels(run_id, "worker", prefix, 2),
               wait=True)
    containers(f"deepracer-{run_id + 1}-worker-1-{tag}", ["sleep", "300"], labels(run_id + 1, "worker", prefix, 1))
    containers(f"tmp{tag}abc-algo-1-{tag[:5]}", ["sleep", "300"],
               environment={"MODEL_S3_PREFIX": "another-model", "RUN_ID": str(run_id)})
    containers(f"tmp{tag}def-algo-1-{tag[:5]}", ["sleep", "300"],
               environment={"MODEL_S3_PREFIX": prefix, "RUN_ID": str(run_id + 1)})
    return loaded


# --- containers -------------------------------------------------------------------------------------------------


def test_containers_show_per_role_with_state_uptime_and_exit_code(a_run, docker_engine, tmp_path):
    status = run_status(a_run.system, a_run.run, docker_host=docker_engine, progress="never",
                        cache_dir=tmp_path / "cache", ready_marker=tmp_path / "no-marker")

    assert status.engine_error is None and status.running
    shown = [(c.role, c.worker, c.status, c.exit_code) for c in status.containers]
    assert shown == [("trainer", None, "running", None), ("sagemaker", None, "running", None),
                     ("worker", 1, "running", None), ("worker", 2, "exited", 3)]
    sdk = run_containers(Engine(base_url=docker_engine), a_run.system, a_run.run)
    assert sorted((c.id, c.role, c.status, c.exit_code) for c in sdk) == sorted(
        (c.id, c.role, c.status, c.exit_code) for c in status.containers)

    containers = as_json(status)["containers"]
    assert all(0 <= c["uptime_s"] < 300 and c["started_at"].endswith("Z") for c in containers[:3])
    assert containers[3]["uptime_s"] is None and containers[3]["finished_at"].endswith("Z")
    assert containers[3]["exit_code"] == 3 and containers[3]["running"] is False

    text = render(status)
    assert "3 of 4 container(s) running" in text
    worker_2 = next(line for line in text.splitlines() if line.strip().startswith("worker 2"))
    assert "exited" in worker_2 and " 3 " in worker_2 and worker_2.rstrip().endswith(containers[3]["name"])
    assert next(line for line in text.splitlines() if line.strip().startswith("sagemaker")).split()[1] == "running"


def test_a_training_host_gives_its_socket_and_storage(a_run, docker_engine, tmp_path):
    storage = Storage("status-bucket", endpoint_url=UNREACHABLE_S3, access_key="testing", secret_key="testing")
    host = Host(a_run.system, a_run.run, tmp_path, Engine(base_url=docker_engine), storage,
                docker_socket=docker_engine[len("unix://"):])
    status = host_status(host, progress="never", cache_dir=tmp_path)
    assert status.docker_host == docker_engine and len(status.containers) == 4


def test_a_run_with_nothing_running_is_idle_and_does_not_read_storage(configure, containers, run_id, docker_engine,
                                                                       tmp_path):
    loaded = configure()  # its storage endpoint answers nothing: a read would be an error in the status
    containers(f"deepracer-{run_id}-trainer-{uuid.uuid4().hex[:6]}", ["sh", "-c", "exit 137"],
               labels(run_id, "trainer", loaded.run.local_s3_model_prefix), wait=True)

    status = run_status(loaded.system, loaded.run, docker_host=docker_engine, cache_dir=tmp_path / "cache")

    assert not status.running and [(c.role, c.exit_code) for c in status.containers] == [("trainer", 137)]
    assert status.progress is None and status.progress_source is None and status.progress_error is None
    assert "storage" not in status.timings_ms
    text = render(status)
    assert f"nothing of run {run_id} runs" in text and "`--progress` reads it from storage" in text


def test_an_unreachable_engine_is_part_of_the_status(configure, tmp_path):
    loaded = configure()
    missing = run_status(loaded.system, loaded.run, docker_host=f"unix://{tmp_path}/docker.sock",
                         cache_dir=tmp_path)
    assert missing.containers == () and not missing.running
    assert missing.engine_error == (f"cannot reach the Docker Engine at unix://{tmp_path}/docker.sock: "
                                    "No such file or directory; is Docker running?")
    assert f"docker    {missing.engine_error}" in render(missing)

    through_sdk = run_status(loaded.system, loaded.run, docker_host="tcp://127.0.0.1:9", cache_dir=tmp_path)
    assert through_sdk.engine_error.startswith("cannot reach the Docker Engine at tcp://127.0.0.1:9")


def serve_once_per_connection(path: Path, answer: bytes) -> threading.Thread:
    """A unix socket at `path` that answers every request with `answer` and closes."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def loop() -> None:
        with server:
            while True:
                try:
                    connection, _ = server.accept()
                except OSError:
                    return
                with connection:
                    connection.recv(65536)
                    connection.sendall(answer)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    thread.server = server  # type: ignore[attr-defined]
    return thread


def test_chunked_answers_are_read_and_other_servers_are_named(configure, tmp_path):
    loaded = configure()
    chunked = serve_once_per_connection(tmp_path / "chunked.sock", b"HTTP/1.1 200 OK\r\nContent-Type: application/json"
                                        b"\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n1\r\n]\r\n0\r\n\r\n")
    garbage = serve_once_per_connection(tmp_path / "garbage.sock", b"SSH-2.0-OpenSSH_9.6\r\n")
    try:
        empty = run_status(loaded.system, loaded.run, docker_host=f"unix://{tmp_path}/chunked.sock",
                           cache_dir=tmp_path)
        assert empty.engine_error is None and empty.containers == ()
        assert f"nothing of run {loaded.run.run_id} runs (no containers)" in render(empty)
        other = run_status(loaded.system, loaded.run, docker_host=f"unix://{tmp_path}/garbage.sock",
                           cache_dir=tmp_path)
        assert other.engine_error.startswith(f"the Docker Engine at unix://{tmp_path}/garbage.sock gave an answer")
    finally:
        chunked.server.close()
        garbage.server.close()


# --- progress ---------------------------------------------------------------------------------------------------


def test_progress_is_read_while_running_then_shown_from_the_cache_when_idle(configure, containers, run_id, s3_client,
                                                                            make_bucket, s3_server, docker_engine,
                                                                            tmp_path):
    bucket = make_bucket("status")
    loaded = configure(bucket=bucket, endpoint=s3_server)
    prefix, metrics = loaded.run.local_s3_model_prefix, loaded.run.local_s3_metrics_prefix
    s3_client.put_object(Bucket=bucket, Key=f"{metrics}/TrainingMetrics.json", Body=DROA_METRICS.read_bytes())
    s3_client.put_object(Bucket=bucket, Key=f"{prefix}/model/15_Step-10693.ckpt.index", Body=b"tf")
    expected = sum(e["phase"] == "training" for e in json.loads(DROA_METRICS.read_text())["metrics"])
    trainer = containers(f"deepracer-{run_id}-trainer-{uuid.uuid4().hex[:6]}", ["sleep", "300"],
                         labels(run_id, "trainer", prefix))
    cache = tmp_path / "cache"

    running = run_status(loaded.system, loaded.run, docker_host=docker_engine, cache_dir=cache)
    assert running.progress_source == "storage" and running.progress_error is None
    assert running.progress.episodes == expected and running.progress.newest_checkpoint.number == 15
    assert len(list(cache.glob("progress-*.json"))) == 1
    assert "progress  iteration 15 (checkpoint 15_Step-10693.ckpt, 10693 steps)" in render(running)

    trainer.kill()
    s3_client.delete_object(Bucket=bucket, Key=f"{metrics}/TrainingMetrics.json")
    idle = run_status(loaded.system, loaded.run, docker_host=docker_engine, cache_dir=cache)
    assert not idle.running and idle.progress_source == "cache"
    assert idle.progress == running.progress  # storage now holds less: this came from the cache
    assert "progress  as read at " in render(idle)

    fresh = run_status(loaded.system, loaded.run, docker_host=docker_engine, cache_dir=cache, progress="always")
    assert fresh.progress_source == "storage" and fresh.progress.episodes == 0
    assert run_status(loaded.system, loaded.run, docker_host=docker_engine, cache_dir=cache,
                      progress="never").progress is None
    other_model = configure(bucket=bucket, endpoint=s3_server, model_prefix=f"{prefix}-2")  # not what was cached
    assert run_status(other_model.system, other_model.run, docker_host=docker_engine,
                      cache_dir=cache).progress is None


def test_a_storage_failure_is_part_of_the_status(configure, s3_server, docker_engine, tmp_path):
    loaded = configure(bucket="no-such-bucket-for-status", endpoint=s3_server)
    status = run_status(loaded.system, loaded.run, docker_host=docker_engine, cache_dir=tmp_path, progress="always")
    assert status.progress is None and "no-such-bucket-for-status does not exist" in status.progress_error
    assert "progress  cannot read storage: bucket no-such-bucket-for-status does not exist" in render(status)


# --- host, JSON, the fast path -------------------------------------------------------------------------------


def test_host_readiness_comes_from_the_first_boot_marker(configure, docker_engine, tmp_path):
    loaded = configure()
    marker = tmp_path / "ready"
    options = dict(docker_host=docker_engine, cache_dir=tmp_path, system_env=tmp_path / "system.env",
                   ready_marker=marker)
    not_ready = run_status(loaded.system, loaded.run, **options)
    assert not not_ready.host_ready and render(not_ready).startswith(
        "host      NOT ready (first-boot log: /var/log/deepracer-bootstrap.log)\n")
    marker.write_text("")
    ready = run_status(loaded.system, loaded.run, **options)
    assert ready.host_ready and render(ready).startswith("host      ready\n")
    assert as_json(ready)["host"] == {"ready": True, "system_env": str(tmp_path / "system.env"),
                                      "log": "/var/log/deepracer-bootstrap.log"}


def test_json_output_keys(a_run, docker_engine, tmp_path):
    from session.run.progress import TrainingProgress

    status = run_status(a_run.system, a_run.run, docker_host=docker_engine, cache_dir=tmp_path, progress="never")
    document = json.loads(json.dumps(as_json(status)))
    assert set(document) == {"checked_at", "host", "run", "running", "engine", "containers", "progress",
                             "progress_error", "recorded", "timings_ms"}
    assert document["run"] == {"id": a_run.run.run_id, "model_prefix": a_run.run.local_s3_model_prefix,
                               "metrics_prefix": a_run.run.local_s3_metrics_prefix, "bucket": "status-bucket",
                               "image": a_run.system.simapp_image, "workers": 2}
    assert document["engine"] == {"host": docker_engine, "error": None} and document["running"] is True
    assert set(document["containers"][0]) == {"role", "worker", "name", "id", "image", "status", "running",
                                              "exit_code", "started_at", "finished_at", "uptime_s"}
    assert set(document["timings_ms"]) == {"host", "run state", "docker"}

    with_progress = as_json(type(status)(**{**status.__dict__, "progress": TrainingProgress("m", "m/metrics"),
                                            "progress_source": "cache"}))
    assert set(with_progress["progress"]) == {
        "model_prefix", "metrics_prefix", "iterations", "episodes", "eval_episodes", "laps",
        "episodes_per_iteration", "best_model_metric", "checkpoints", "last_checkpoint", "best_checkpoint",
        "metrics_files", "notes", "updated", "read_at", "newest_checkpoint", "source"}


FAST_PATH = textwrap.dedent("""
    import json, sys
    from session.core.config import load_config
    from session.insight.status import as_json, render, run_status
    run_env, system_env, progress, docker_host, cache = sys.argv[1:6]
    loaded = load_config(run_env, system_env, environ={})
    status = run_status(loaded.system, loaded.run, progress=progress, docker_host=docker_host,
                        system_env=system_env, cache_dir=cache)
    render(status), json.dumps(as_json(status))
    heavy = sorted(m for m in ("boto3", "botocore", "docker", "requests", "rich", "http.client") if m in sys.modules)
    print(json.dumps({"heavy": heavy, "containers": len(status.containers), "source": status.progress_source,
                      "error": status.progress_error or status.engine_error}))
""")


def test_the_idle_path_imports_neither_boto3_nor_docker(configure, containers, run_id, make_bucket, s3_server,
                                                        s3_client, docker_engine, tmp_path):
    loaded = configure(bucket=make_bucket("status"), endpoint=s3_server)
    containers(f"deepracer-{run_id}-worker-1-{uuid.uuid4().hex[:6]}", ["sh", "-c", "exit 0"],
               labels(run_id, "worker", loaded.run.local_s3_model_prefix, 1), wait=True)
    cache = tmp_path / "cache"

    def status_in_a_new_process(progress: str) -> dict:
        done = subprocess.run([sys.executable, "-c", FAST_PATH, str(tmp_path / "run.env"),
                               str(tmp_path / "system.env"), progress, docker_engine, str(cache)],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, env=dict(os.environ))
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    idle = status_in_a_new_process("auto")
    assert idle == {"heavy": [], "containers": 1, "source": None, "error": None}

    read = status_in_a_new_process("always")  # what --progress does: storage, so botocore (Storage's client)
    assert read["source"] == "storage" and read["error"] is None and "botocore" in read["heavy"]

    cached = status_in_a_new_process("auto")  # the progress the read above cached, still without boto3
    assert cached == {"heavy": [], "containers": 1, "source": "cache", "error": None}


def test_progress_mode_is_checked(configure):
    loaded = configure()
    with pytest.raises(ValueError, match="progress must be one of auto, always, never"):
        run_status(loaded.system, loaded.run, progress="sometimes")


def test_a_run_the_swarm_watch_stops_or_stopped_for_a_lost_node_says_so():
    from session.insight.status import Status
    from session.run.node_loss import GRACE, DownNode
    from session.run.state import RunState
    from session.run.state import Status as RunStatus

    at = datetime(2026, 12, 6, 16, 0, tzinfo=timezone.utc)
    running = RunState(status=RunStatus.RUNNING, run_id=7, prefix="m-1", run_env="/r", system_env="/s", started=at)
    base = Status(checked_at=at + GRACE, host_ready=True, system_env="/s", host_log="/l", run_id=7, model_prefix="m-1",
                  metrics_prefix="m-1/metrics", bucket="b", image="i", workers=2, docker_host="unix:///d")
    down = DownNode("abcdef1234567890", "ip-10-0-1-7", (2,), at)
    counting = render(replace(base, recorded=running, nodes_down=(down,)))
    assert ("swarm     node ip-10-0-1-7 (abcdef123456; worker 2) is down since 16:00:00 UTC: the run is stopped at "
            "16:02:00 UTC unless it returns") in counting
    lost = RunState(status=RunStatus.NODE_LOST, run_id=7, prefix="m-1", run_env="/r", system_env="/s", started=at,
                    reason="swarm node lost: node ip-10-0-1-7 (abcdef123456; worker 2) down since 16:00 UTC",
                    stopped=at + GRACE, checkpoint="3_Step-300.ckpt")
    stopped = render(replace(base, recorded=lost))
    assert ("stopped   swarm node lost: node ip-10-0-1-7 (abcdef123456; worker 2) down since 16:00 UTC; the swarm "
            "watch stopped the run at 2026-12-06 16:02 UTC") in stopped
    assert "`deepracer increment`, then `deepracer train`, continue from its last checkpoint (3_Step-300.ckpt)" in stopped
    worker = ContainerInfo("c1", "w", "i", "worker", "7", 1, "m-1", "running")
    stopping = render(replace(base, recorded=lost, containers=(worker,)))
    assert "stopping  swarm node lost: node ip-10-0-1-7" in stopping and "the swarm watch is stopping the run" in stopping
    assert as_json(replace(base, recorded=lost))["recorded"]["status"] == "node-lost"
