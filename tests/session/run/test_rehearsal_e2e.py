"""Training end to end: `train`, `status`, `logs`, `stop`, `increment`, and `train` again from the old model.

Everything here is real — the production code (session.run.training, .containers, .storage, .config, .increment), a
Docker Engine of the tests' own, moto's S3 server over HTTP, and the SageMaker SDK's local mode with Docker
Compose v2 that start the trainer's SageMaker sibling — except the simulator. ONLY THE SIMULATOR IS A STAND-IN
(tests/session/standin/): an image imported from a tarball with the real image's ENTRYPOINT, WORKDIR and script
paths, whose trainer takes simapp's start.py's steps with the real SDK, and whose workers fetch their
training_params YAML from S3, play episodes and write what the real ones write (checkpoints,
deepracer_checkpoints.json, metrics JSON, simtrace CSV, SIM_TRACE_LOG lines). It runs on the host's Python,
which `StandinEngine` mounts into each container (and the image's SageMaker config into the sibling); that
mount is the one thing production does not do.

The test daemon has no default bridge and no NAT, so the containers reach the S3 server on the gateway address
of the `sagemaker-local` network: the server listens there, and system.env's DR_MINIO_URL (the containers' side)
and DR_LOCAL_S3_ENDPOINT_URL (this host's side) both name it.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import logging
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import boto3
import docker
import pytest

from session.core.config import load_config
from session.engine.containers import ContainerInfo, Engine, sibling_info
from session.engine.specs import COMMS_ROOT, NETWORK, SAGEMAKER_TMP, image_of
from session.host.factory import Host
from session.run.increment import increment
from session.run.training import TrainingError, run_containers, start_training, stop_training
from session.storage.s3 import Storage
from tests.session.standin import StandinEngine, build_image

IMAGE_SOURCE, IMAGE_TAG = "deepracer-simapp-e2e-standin", "6.0.4-cpu"  # -gpu would request GPUs
READY_S = 120  # generous for a loaded CI machine; a start takes 10-30 s here (the trainer imports the SageMaker SDK)
PROGRESS_S = 40
STOP_S = 5
SIMTRACE_COLUMNS = ["episode", "steps", "X", "Y", "yaw", "steer", "throttle", "action", "reward", "done",
                    "all_wheels_on_track", "progress", "closest_waypoint", "track_len", "tstamp", "episode_status",
                    "pause_duration", "obstacle_crash_counter", "wall_clock"]
METRICS_FIELDS = {"reward_score", "metric_time", "start_time", "elapsed_time_in_milliseconds", "episode", "trial",
                  "phase", "completion_percentage", "episode_status"}
STATUSES = {"prepare", "in_progress", "off_track", "crashed", "immobilized", "reversed", "lap_complete", "time_up",
            "pause", "park"}
ROS2_AGENT = "[download_params_and_roslaunch_agent_node-1] [agent-9] "
SIBLING_NAME = re.compile(r"[a-z0-9]{10}-algo-1-[a-z0-9]{5}")  # as the SageMaker SDK's local mode names it


@pytest.fixture(scope="module")
def simapp_image(docker_engine: str) -> str:
    return build_image(docker_engine, IMAGE_SOURCE, IMAGE_TAG)


@pytest.fixture(scope="module")
def bridge_s3(docker_engine: str, s3_server: str) -> Iterator[str]:
    """moto's S3 API on the sagemaker-local bridge's gateway: the address both the containers and this host
    reach (`s3_server` sets the dummy AWS environment; its backend is the same in-process one)."""
    from moto.server import ThreadedMotoServer

    client = docker.DockerClient(base_url=docker_engine)
    created = not client.networks.list(names=[NETWORK])
    Engine(base_url=docker_engine).ensure_network(NETWORK)
    network = client.networks.get(NETWORK)
    ipam = network.attrs["IPAM"]["Config"][0]
    gateway = (ipam.get("Gateway") or str(ipaddress.ip_network(ipam["Subnet"])[1])).split("/")[0]
    server = ThreadedMotoServer(ip_address=gateway, port=0, verbose=False)
    requests_log = logging.getLogger("werkzeug")  # one line per request would bury a failure's report
    level = requests_log.level
    requests_log.setLevel(logging.WARNING)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        requests_log.setLevel(level)
        if created:  # by name: a test may have re-made it meanwhile
            for network in client.networks.list(names=[NETWORK]):
                network.reload()
                if not network.attrs.get("Containers"):
                    network.remove()
        client.close()


@dataclass
class Rehearsal:
    """Writes system.env and run.env like a user would, builds the Host `train` builds from them, and afterwards
    removes what the runs left: containers (the SageMaker siblings too), their /tmp/sagemaker folders and the
    workers' comms folders."""

    folder: Path
    endpoint: str
    docker_host: str
    bucket: str
    run_id: int = field(default_factory=lambda: 900 + uuid.uuid4().int % 9000)
    engine: Optional[StandinEngine] = None
    storages: list[Storage] = field(default_factory=list)

    @property
    def run_env(self) -> Path:
        return self.folder / "run.env"

    def write(self, run_env: str, workers: int = 2) -> None:
        (self.folder / "system.env").write_text(
            f"DR_CLOUD=local\nDR_AWS_APP_REGION=us-east-1\nDR_LOCAL_S3_BUCKET={self.bucket}\n"
            f"DR_SIMAPP_SOURCE={IMAGE_SOURCE}\nDR_SIMAPP_VERSION={IMAGE_TAG}\nDR_WORKERS={workers}\n"
            f"DR_LOCAL_S3_ENDPOINT_URL={self.endpoint}\nDR_MINIO_URL={self.endpoint}\n"
            "DR_LOCAL_ACCESS_KEY_ID=testing\nDR_LOCAL_SECRET_ACCESS_KEY=testing\n")
        self.run_env.write_text(f"DR_RUN_ID={self.run_id}\n{run_env}")

    def host(self) -> Host:
        """The Host `train` would build from the files as they are now."""
        loaded = load_config(self.run_env, self.folder / "system.env", environ={})
        storage = Storage(self.bucket, "us-east-1", endpoint_url=self.endpoint, access_key="testing",
                          secret_key="testing")
        self.storages.append(storage)
        self.engine = self.engine or StandinEngine(base_url=self.docker_host)
        return Host(loaded.system, loaded.run, self.folder / "custom_files", self.engine, storage,
                    docker_socket=self.docker_host[len("unix://"):])

    def clean_up(self) -> None:
        client = docker.DockerClient(base_url=self.docker_host)
        ours = client.containers.list(all=True, filters={"label": f"deepracer.run={self.run_id}"})
        siblings = [c for c in client.containers.list(all=True, filters={"name": "-algo-"})
                    if f"RUN_ID={self.run_id}" in (c.attrs["Config"].get("Env") or [])]
        # The SDK's folder per job, /tmp/sagemaker/tmpXXXX, as the trainers' logs name it (compose may have
        # started nothing there).
        folders = {match for trainer in ours if trainer.labels.get("deepracer.role") == "trainer"
                   for match in re.findall(rf"-f ({re.escape(SAGEMAKER_TMP)}/tmp\w+)/docker-compose\.yaml",
                                           trainer.logs().decode("utf-8", "replace"))}
        for container in ours + siblings:
            container.remove(force=True)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(Path(COMMS_ROOT) / f"comms.{self.run_id}", ignore_errors=True)
        client.close()
        for storage in self.storages:
            storage.close()


@pytest.fixture
def rehearsal(tmp_path: Path, bridge_s3: str, docker_engine: str, simapp_image: str) -> Iterator[Rehearsal]:
    bucket = f"deepracer-e2e-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=bridge_s3, region_name="us-east-1").create_bucket(Bucket=bucket)
    shutil.copytree(Path(__file__).resolve().parents[3] / "session" / "defaults", tmp_path / "custom_files",
                    ignore=shutil.ignore_patterns("__pycache__"))
    made = Rehearsal(tmp_path, bridge_s3, docker_engine, bucket)
    yield made
    made.clean_up()


# --- helpers -------------------------------------------------------------------------------------------------------

def poll(check: Callable[[], object], what: str, timeout_s: float = PROGRESS_S) -> object:
    """`check()`'s first truthy value; storage and the engine offer nothing to wait on, so we look again shortly."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout_s:.0f} s")
        time.sleep(0.2)


def checkpoints(storage: Storage, prefix: str) -> list[str]:
    """`<n>_Step-<steps>.ckpt` names under the model's model/ folder, oldest first."""
    names = [info.key.rsplit("/", 1)[-1].removesuffix(".index") for info in storage.list_objects(f"{prefix}/model/")
             if info.key.endswith(".ckpt.index")]
    return sorted(names, key=lambda name: int(name.split("_", 1)[0]))


def the_sibling(host: Host) -> ContainerInfo:
    found = host.engine.sagemaker_siblings(image_of(host.system), host.run.local_s3_model_prefix,
                                           run=str(host.run.run_id))
    assert len(found) == 1, found
    return found[0]


def network_use(log: str) -> set[str]:
    """What the stand-in trainer's process looked up and connected to (its `standin-network:` lines)."""
    return {line.split("standin-network: ", 1)[1] for line in log.splitlines() if line.startswith("standin-network: ")}


def only_storage_reached(log: str, endpoint: str) -> bool:
    """True when the trainer (the real SageMaker SDK in it) reached nothing but the S3 endpoint: no telemetry, no
    AWS endpoint, nothing outside this machine."""
    host, port = endpoint.removeprefix("http://").rsplit(":", 1)
    used = network_use(log)
    return bool(used) and used <= {f"lookup {host}", f"connect ('{host}', {port})"}


def sim_trace_fields(log: str) -> list[list[str]]:
    """FORMATS.md §5.1: split on `SIM_TRACE_LOG:`, cut at a tab, comma-separated."""
    return [line.split("SIM_TRACE_LOG:", 1)[1].split("\t", 1)[0].split(",")
            for line in log.splitlines() if "SIM_TRACE_LOG:" in line]


def saved_logs(storage: Storage, prefix: str) -> list[str]:
    """`<prefix>/logs/<start time>-<name>.log` -> `<name>.log`."""
    return sorted(info.key.rsplit("/", 1)[-1].split("-", 1)[1] for info in storage.list_objects(f"{prefix}/logs/"))


def cli(rehearsal: Rehearsal, capsys: pytest.CaptureFixture, *args: str) -> str:
    """`deepracer --run-env ... --system-env ... <args>`: its stdout (DOCKER_HOST names the tests' engine)."""
    from session.cli.main import main

    capsys.readouterr()
    code = main(["--run-env", str(rehearsal.run_env), "--system-env", str(rehearsal.folder / "system.env"), *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


# --- the rehearsal -------------------------------------------------------------------------------------------------

def test_train_status_logs_stop_then_increment_and_train_from_the_old_model(
        rehearsal: Rehearsal, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    monkeypatch.setenv("DOCKER_HOST", rehearsal.docker_host)
    model = f"e2e-{uuid.uuid4().hex[:6]}-1"
    rehearsal.write(f"DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX={model}\n"
                    "DR_TRAIN_MIN_EVAL_TRIALS=2\n", workers=2)
    host = rehearsal.host()
    storage, engine = host.storage, host.engine
    said: list[str] = []

    # train: inputs to storage, trainer and two workers started, ready once the simulator says so
    started = start_training(host, say=said.append, timeout_s=READY_S)
    assert [(c.role, c.worker) for c in started] == [("trainer", None), ("worker", 1), ("worker", 2)]
    assert f"wrote {storage.url(f'{model}/training_params.yaml')}" in said

    # status: the run's containers by label, and the SageMaker sibling the trainer started through the socket
    sibling = the_sibling(host)
    assert SIBLING_NAME.fullmatch(sibling.name) and sibling.role == "sagemaker" and sibling.running
    # Also found by the compose file Compose v2 names in its labels, without the marker in its environment
    attrs = docker.DockerClient(base_url=rehearsal.docker_host).api.inspect_container(sibling.id)
    assert re.fullmatch(rf"{SAGEMAKER_TMP}/tmp\w+/docker-compose\.yaml",
                        attrs["Config"]["Labels"]["com.docker.compose.project.config_files"])
    env = [item for item in attrs["Config"]["Env"] if not item.startswith("TRAINING_JOB_NAME=")]
    assert not any(model in item for item in env)
    stripped = {**attrs, "Config": {**attrs["Config"], "Env": env}}
    assert sibling_info(stripped, image_of(host.system), None, model, str(host.run.run_id)) is not None
    status = run_containers(engine, host.system, host.run)
    assert sorted((c.role, c.worker or 0, c.running) for c in status) == [
        ("sagemaker", 0, True), ("trainer", 0, True), ("worker", 1, True), ("worker", 2, True)]

    # training makes progress: checkpoints appear as the workers deliver their episodes
    poll(lambda: len(checkpoints(storage, model)) >= 2, "second checkpoint")
    record = storage.get_json(f"{model}/model/deepracer_checkpoints.json")
    assert {record["best_checkpoint"]["name"], record["last_checkpoint"]["name"]} <= set(checkpoints(storage, model))

    # status: every role running, and the progress read from the bucket
    from session.insight.status import render, run_status

    now = run_status(host.system, host.run, progress="always", docker_host=rehearsal.docker_host, storage=storage,
                     cache_dir=rehearsal.run_env.parent / "cache")
    assert now.running and now.engine_error is None and now.progress_error is None
    assert sorted(c.role for c in now.containers if c.running) == ["sagemaker", "trainer", "worker", "worker"]
    assert now.progress.episodes > 0 and len(now.progress.iterations) >= 1
    assert now.progress.last_checkpoint is not None
    assert f"{now.progress.last_checkpoint.name}" in {record["last_checkpoint"]["name"],
                                                      record["last_checkpoint"]["name"].removesuffix(".ckpt")}
    assert model in render(now)
    assert storage.get_json(f"{model}/ip/hyperparameters.json") == \
        storage.get_json("custom_files/hyperparameters.json")
    assert storage.get_json(f"{model}/model/model_metadata.json") == \
        storage.get_json("custom_files/model_metadata.json")
    for name, worker_folder in (("TrainingMetrics.json", "0"), ("TrainingMetrics_1.json", "1")):
        metrics = storage.get_json(f"{model}/metrics/{name}")
        assert metrics["version"] == 2.0 and metrics["best_model_metric"] == "progress"
        assert metrics["metrics"] and all(set(entry) == METRICS_FIELDS for entry in metrics["metrics"])
        trace = storage.get_text(f"{model}/{worker_folder}/training-simtrace/0-iteration.csv")
        rows = list(csv.reader(io.StringIO(trace)))
        assert rows[0] == SIMTRACE_COLUMNS and len(rows) > 1 and all(len(row) == 19 for row in rows)

    # logs: `deepracer logs trainer` shows the SageMaker sibling, which holds the training; the rl_coach container
    # relays the same lines the way compose prints them; the workers print the simulator's trace lines
    training_log = cli(rehearsal, capsys, "logs", "trainer")
    assert training_log == engine.logs(sibling)
    training_log = training_log.replace("\r\n", "\n")  # the sibling has a TTY, as SageMaker-local gives it
    assert re.search(r"^Training> Name=main_level/agent, Worker=0, Episode=1, Total reward=-?[\d.]+, Steps=\d+, "
                     r"Training iteration=0$", training_log, re.M)
    assert re.search(r"^Policy training> Surrogate loss=.*, Entropy=[\d.]+, training epoch=0, ", training_log, re.M)
    assert "Checkpoint> Saving in path=['./checkpoint_sagemaker/agent/1_Step-" in training_log
    relayed = engine.logs(started[0])
    # Compose v2 prefixes each relayed line with the container's name
    assert re.search(rf"^{sibling.name}  \| Using the following hyper-parameters$", relayed, re.M)
    assert re.search(rf"^{sibling.name}  \| Checkpoint> Saving in path=", relayed, re.M)
    assert only_storage_reached(relayed, rehearsal.endpoint), network_use(relayed)
    for worker in (1, 2):
        worker_log = cli(rehearsal, capsys, "logs", "worker", str(worker))
        assert f"Starting as worker {worker - 1}, using world reInvent2019_track" in worker_log
        assert "World name passed in YAML: reInvent2019_track" in worker_log
        traces = sim_trace_fields(worker_log)
        assert traces and all(len(fields) == 19 for fields in traces)
        assert all(line.startswith(ROS2_AGENT) for line in worker_log.splitlines() if "SIM_TRACE_LOG:" in line)
        assert {fields[15] for fields in traces} <= STATUSES
        assert all(fields[9] in ("True", "False") and float(fields[13]) == 23.12 for fields in traces)

    # stop: trainer, sibling and workers; logs saved beside the model; checkpoints stay
    stopped = stop_training(host, say=said.append, timeout=STOP_S)
    assert sibling.id in {c.id for c in stopped}
    assert not engine.get(sibling.id).running
    assert not any(c.running for c in run_containers(engine, host.system, host.run))
    assert saved_logs(storage, model) == ["sagemaker.log", "trainer.log", "worker-1.log", "worker-2.log"]
    assert "Checkpoint> Saving in path=" in storage.get_text(
        next(info.key for info in storage.list_objects(f"{model}/logs/") if info.key.endswith("-sagemaker.log")))
    kept = checkpoints(storage, model)
    assert len(kept) >= 2

    # the same prefix again is refused, and nothing is touched
    with pytest.raises(TrainingError, match=rf"s3://{rehearsal.bucket}/{model}/ already holds a model"):
        start_training(host, say=said.append, timeout_s=READY_S)
    assert checkpoints(storage, model) == kept

    # increment, then train again: the new model starts from the old one's last checkpoint
    old_objects = {info.key: info.etag for info in storage.list_objects(f"{model}/")}
    last = storage.get_json(f"{model}/model/deepracer_checkpoints.json")["last_checkpoint"]["name"]
    new_model = increment(rehearsal.run_env, host.run, storage).new_prefix
    assert new_model == model.removesuffix("-1") + "-2"
    host = rehearsal.host()
    assert (host.run.local_s3_model_prefix, host.run.local_s3_pretrained, host.run.local_s3_pretrained_prefix) == \
        (new_model, True, model)
    started = start_training(host, say=said.append, timeout_s=READY_S)
    sibling = the_sibling(host)
    first = storage.get_json(f"{new_model}/model/{checkpoints(storage, new_model)[0]}.data-00000-of-00001")
    assert first["trained_from"] == f"s3://{rehearsal.bucket}/{model}/model/{last}"
    assert f"| Checkpoint> Restoring from path=./pretrained_checkpoint_sagemaker/agent/{last}" in \
        engine.logs(started[0])
    stopped = stop_training(host, say=said.append, timeout=STOP_S)
    assert sibling.id in {c.id for c in stopped} and not engine.get(sibling.id).running
    assert {info.key: info.etag for info in storage.list_objects(f"{model}/")} == old_objects


def test_a_worker_on_a_track_the_simulator_lacks_dies_with_its_simapp_exception_and_the_run_stops(
        rehearsal: Rehearsal, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    rehearsal.write("DR_WORLD_NAME=Mars_track\nDR_LOCAL_S3_MODEL_PREFIX=e2e-no-such-track\n", workers=2)
    host = rehearsal.host()
    with pytest.raises(TrainingError) as raised:
        start_training(host, say=lambda _: None, timeout_s=READY_S)
    message = str(raised.value)
    assert re.match(rf"training did not start: deepracer-{host.run.run_id}-worker-[12] exited with code 1: "
                    r"Failed to load the track Mars_track: \S+/routes/Mars_track\.npy does not exist "
                    r"\(errorCode 400\); stopped the run's containers", message), message
    # The worker fails once it has the trainer's hand-off, so the SageMaker sibling runs by then: stopped too.
    assert not the_sibling(host).running
    assert not any(c.running for c in run_containers(host.engine, host.system, host.run))
    # `doctor` reads the run's containers' logs and names the worker that died and why, as `watch` would.
    from session.cli.main import main

    capsys.readouterr()
    monkeypatch.setenv("DOCKER_HOST", rehearsal.docker_host)
    code = main(["--run-env", str(rehearsal.run_env), "--system-env", str(rehearsal.folder / "system.env"),
                 "doctor", "--json"])
    diagnosis = json.loads(capsys.readouterr().out)["run"]
    assert code == 1 and diagnosis["run"] == str(host.run.run_id) and not diagnosis["ok"]
    failed = [f for f in diagnosis["findings"] if f["kind"] == "exception"]
    assert failed and failed[0]["subject"].startswith("worker ")
    assert "Failed to load the track Mars_track" in failed[0]["message"]
    assert failed[0]["cause"].startswith("a user error: fix the file or value the message names")


def test_a_pretrained_checkpoint_that_is_not_in_storage_is_refused_before_the_trainer_fails_on_it(
        rehearsal: Rehearsal):
    # The stand-in trainer would die on this with the simulator's simapp_exception, as the real one does;
    # train's pre-flight check finds it first, before any container starts.
    old, record = "e2e-pretrained-1", {"name": "5_Step-500.ckpt", "time_stamp": 1.0, "avg_eval_metric": 9.0}
    rehearsal.write(f"DR_LOCAL_S3_MODEL_PREFIX=e2e-pretrained-2\nDR_LOCAL_S3_PRETRAINED=True\n"
                    f"DR_LOCAL_S3_PRETRAINED_PREFIX={old}\nDR_LOCAL_S3_PRETRAINED_CHECKPOINT=best\n", workers=1)
    host = rehearsal.host()
    host.storage.put_text(f"{old}/model/3_Step-300.ckpt.index", "checkpoint")
    host.storage.put_json(f"{old}/model/deepracer_checkpoints.json",
                          {"best_checkpoint": record, "last_checkpoint": record})
    with pytest.raises(TrainingError) as raised:
        start_training(host, say=lambda _: None, timeout_s=READY_S)
    assert str(raised.value) == (
        f"DR_LOCAL_S3_PRETRAINED_CHECKPOINT: the best checkpoint 5_Step-500 misses 5_Step-500.ckpt.index, "
        f"5_Step-500.ckpt.meta, 5_Step-500.ckpt.data-00000-of-00001 under s3://{rehearsal.bucket}/{old}/model/")
    assert run_containers(host.engine, host.system, host.run) == []
