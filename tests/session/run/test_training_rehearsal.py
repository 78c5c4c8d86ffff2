"""`train` and `stop` end to end against a real Docker Engine and a real S3 API (moto's server over HTTP).

The simulator image cannot be pulled here (no registry, no GPU), so a stand-in plays its part at the level
our code touches: the same ENTRYPOINT (`/bin/bash -c`), the same paths (`/root/sagemaker-venv/bin/activate`,
`/opt/ml/code/rl_coach/start.py`, `/opt/ml/code/run.sh`), and the log lines the real trainer and workers
print. Its scripts are busybox shell (bash and python3 in the stand-in are busybox ash), and they read the
environment our specs give them, so a wrong env var or command shows up as a failed start. A worker on
the track `crash_track` prints the simulator's simapp_exception JSON and exits, like a broken world name.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import boto3
import docker
import pytest

from session.core.config import load_config
from session.engine.containers import Engine
from session.engine.specs import NETWORK, comms_dir
from session.host.factory import Host
from session.run.training import TrainingError, start_training, stop_training
from session.storage.s3 import Storage
from tests.busybox_image import ASH, SIMAPP_CHANGES, busybox_image

IMAGE_SOURCE, IMAGE_TAG = "deepracer-simapp-standin", "6.0.4-cpu"  # no GPU here: a -gpu tag requests one

TRAINER = r"""
[ -n "$MODEL_S3_BUCKET" ] && [ -n "$MODEL_S3_PREFIX" ] && [ -n "$SAGEMAKER_IMAGE" ] || { echo "missing env"; exit 2; }
[ -S /var/run/docker.sock ] || { echo "no docker socket"; exit 2; }
echo "Sensor list ['FRONT_FACING_CAMERA'], network DEEP_CONVOLUTIONAL_NETWORK_SHALLOW, simapp_version 6.0"
echo "Using the following hyper-parameters"
echo "Training> Name=main_level/agent, Worker=0, Episode=1, Total reward=8.69, Steps=20, Training iteration=0"
exec sleep 3600
"""
WORKER = r"""
[ "$1" = run ] || [ "$1" = multi ] || { echo "unexpected mode $1"; exit 2; }
[ -n "$SAGEMAKER_SHARED_S3_BUCKET" ] && [ -n "$S3_YAML_NAME" ] || { echo "missing env"; exit 2; }
if [ "$WORLD_NAME" = crash_track ]; then
  echo "loading world $WORLD_NAME"
  echo '{"simapp_exception": {"date": "2026-11-25 10:00:00", "function": "get_track", "message": "Track crash_track does not exist", "exceptionType": "simulation_worker.exceptions", "eventType": "user_error", "errorCode": "400"}}'
  exit 1
fi
echo "World name passed in YAML: $WORLD_NAME"
echo "SIM_TRACE_LOG:0,1,0.5000,0.1000,0.0000,0.00,0.60,2,1.0000,False,True,0.5000,1,17.71,6.211,prepare,0.00,0,1773215987.7"
exec sleep 3600
"""


@pytest.fixture(scope="module")
def simapp_standin(docker_engine: str) -> str:
    return busybox_image(docker_engine, IMAGE_SOURCE, IMAGE_TAG, {
        "usr/bin/python3": ASH,  # the stand-in's start.py is shell, run by this "python3"
        "root/sagemaker-venv/bin/activate": "# stand-in venv\n",
        "opt/ml/code/rl_coach/start.py": TRAINER,
        "opt/ml/code/run.sh": "#!/bin/busybox ash\n" + WORKER,
    }, SIMAPP_CHANGES)


@pytest.fixture()
def host_factory(tmp_path: Path, s3_server: str, docker_engine: str, simapp_standin: str):
    """Builds a Host from real system.env/run.env files; removes every container and network it made."""
    engine = Engine(base_url=docker_engine)
    bucket = f"deepracer-local-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    defaults = Path(__file__).resolve().parents[3] / "session" / "defaults"
    custom = tmp_path / "custom_files"
    shutil.copytree(defaults, custom)
    run_ids = []

    def make(run_env: str, workers: int = 2) -> Host:
        run_id = 100 + len(run_ids) + int(uuid.uuid4().int % 800)
        run_ids.append(run_id)
        (tmp_path / "system.env").write_text(
            f"DR_CLOUD=local\nDR_AWS_APP_REGION=us-east-1\nDR_LOCAL_S3_BUCKET={bucket}\n"
            f"DR_SIMAPP_SOURCE={IMAGE_SOURCE}\nDR_SIMAPP_VERSION={IMAGE_TAG}\nDR_WORKERS={workers}\n"
            f"DR_LOCAL_S3_ENDPOINT_URL={s3_server}\nDR_LOCAL_ACCESS_KEY_ID=testing\n"
            "DR_LOCAL_SECRET_ACCESS_KEY=testing\n")
        (tmp_path / "run.env").write_text(f"DR_RUN_ID={run_id}\n" + run_env)
        loaded = load_config(tmp_path / "run.env", tmp_path / "system.env", environ={})
        storage = Storage(bucket, "us-east-1", endpoint_url=s3_server, access_key="testing", secret_key="testing")
        return Host(loaded.system, loaded.run, custom, engine, storage,
                    docker_socket=docker_engine[len("unix://"):])

    yield make
    client = docker.DockerClient(base_url=docker_engine)
    for run_id in run_ids:
        for container in client.containers.list(all=True, filters={"label": f"deepracer.run={run_id}"}):
            container.remove(force=True)
        shutil.rmtree(comms_dir(run_id), ignore_errors=True)


def lines() -> tuple[list[str], callable]:
    said: list[str] = []
    return said, said.append


def test_train_starts_trainer_and_workers_then_stop_keeps_logs(host_factory):
    host = host_factory("DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX=rehearsal-1\n", workers=2)
    said, say = lines()
    started = start_training(host, say=say, timeout_s=60)

    assert [(c.role, c.worker) for c in started] == [("trainer", None), ("worker", 1), ("worker", 2)]
    running = host.engine.list(run=str(host.run.run_id))
    assert all(c.running for c in running) and len(running) == 3
    storage = host.storage
    assert storage.exists("custom_files/reward_function.py") and storage.exists("custom_files/model_metadata.json")
    assert storage.get_text("rehearsal-1/reward_function.py") == (host.custom_files / "reward_function.py").read_text()
    params = storage.get_yaml("rehearsal-1/training_params.yaml")
    assert params["WORLD_NAME"] == "reInvent2019_track" and params["NUM_WORKERS"] == "2"
    assert "uploaded custom_files/reward_function.py" in said

    stopped = stop_training(host, say=say, timeout=5)
    assert {c.name for c in stopped} == {c.name for c in started}
    assert not any(c.running for c in host.engine.list(run=str(host.run.run_id)))
    worker_log = storage.get_text(next(k.key for k in storage.list_objects("rehearsal-1/logs/") if "worker-1" in k.key))
    assert "SIM_TRACE_LOG:" in worker_log
    trainer_log = storage.get_text(next(k.key for k in storage.list_objects("rehearsal-1/logs/") if "trainer" in k.key))
    assert "Using the following hyper-parameters" in trainer_log


def test_multi_config_gives_each_worker_its_own_params_file_and_world(host_factory, tmp_path, docker_engine):
    # DRfC's multi-config: worker 2 trains on its worker-2.env's track, told so by MULTI_CONFIG.
    (tmp_path / "worker-2.env").write_text("DR_WORLD_NAME=Oval_track\n")
    host = host_factory("DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX=multi-1\n"
                        "DR_TRAIN_MULTI_CONFIG=True\n", workers=2)
    said, say = lines()
    started = start_training(host, say=say, timeout_s=60)
    try:
        worlds = {name: host.storage.get_yaml(f"multi-1/{name}")["WORLD_NAME"]
                  for name in ("training_params_1.yaml", "training_params_2.yaml")}
        assert worlds == {"training_params_1.yaml": "reInvent2019_track", "training_params_2.yaml": "Oval_track"}
        [worker_2] = [c for c in started if c.worker == 2]
        inspected = docker.DockerClient(base_url=docker_engine).api.inspect_container(worker_2.id)
        env = dict(item.split("=", 1) for item in inspected["Config"]["Env"])
        assert json.loads(env["MULTI_CONFIG"])["multi_config"] == [
            {"config_file": "training_params_1.yaml", "world_name": "reInvent2019_track"},
            {"config_file": "training_params_2.yaml", "world_name": "Oval_track"}]
    finally:
        stop_training(host, say=say, timeout=5)


def test_existing_model_prefix_is_refused_without_overwrite(host_factory):
    host = host_factory("DR_LOCAL_S3_MODEL_PREFIX=kept-model\n", workers=1)
    host.storage.put_text("kept-model/model/1_Step-100.ckpt.index", "checkpoint")
    with pytest.raises(TrainingError, match=r"kept-model/ already holds a model.*--overwrite"):
        start_training(host, say=lambda _: None, timeout_s=60)
    assert host.storage.exists("kept-model/model/1_Step-100.ckpt.index")  # untouched
    assert host.engine.list(run=str(host.run.run_id)) == []  # nothing started

    said, say = lines()
    start_training(host, overwrite=True, say=say, timeout_s=60)
    assert not host.storage.exists("kept-model/model/1_Step-100.ckpt.index")
    assert any(line.startswith("--overwrite: deleted 1 objects") for line in said)
    stop_training(host, say=say, timeout=5)


def test_a_worker_that_dies_is_reported_with_the_simulators_error_and_the_run_is_stopped(host_factory):
    host = host_factory("DR_WORLD_NAME=crash_track\nDR_LOCAL_S3_MODEL_PREFIX=crashing\n", workers=2)
    with pytest.raises(TrainingError) as raised:
        start_training(host, say=lambda _: None, timeout_s=60)
    message = str(raised.value)
    assert "Track crash_track does not exist (errorCode 400)" in message and "\n" not in message
    assert not any(c.running for c in host.engine.list(run=str(host.run.run_id)))


def test_a_second_start_of_a_running_run_is_refused(host_factory):
    host = host_factory("DR_LOCAL_S3_MODEL_PREFIX=twice\n", workers=1)
    start_training(host, say=lambda _: None, timeout_s=60)
    with pytest.raises(TrainingError, match="is already running .*deepracer stop"):
        start_training(host, say=lambda _: None, timeout_s=60, overwrite=True)
    stop_training(host, say=lambda _: None, timeout=5)


def test_missing_image_and_missing_pretrained_model_are_refused_before_anything_starts(host_factory):
    host = host_factory("DR_LOCAL_S3_MODEL_PREFIX=fresh\nDR_LOCAL_S3_PRETRAINED=True\n"
                        "DR_LOCAL_S3_PRETRAINED_PREFIX=does-not-exist\n", workers=1)
    with pytest.raises(TrainingError, match=r"DR_LOCAL_S3_PRETRAINED_PREFIX: expected a model with checkpoints"):
        start_training(host, say=lambda _: None, timeout_s=60)
    host.system = type(host.system)(**{**host.system.__dict__, "simapp_version": "9.9.9-cpu"})
    with pytest.raises(TrainingError, match=r"image deepracer-simapp-standin:9.9.9-cpu is not on this host"):
        start_training(host, say=lambda _: None, timeout_s=60)
    assert host.engine.list(run=str(host.run.run_id)) == []
    assert not host.storage.prefix_has_objects("fresh/")


def test_the_network_the_sagemaker_sibling_expects_exists(host_factory, docker_engine):
    host = host_factory("DR_LOCAL_S3_MODEL_PREFIX=net\n", workers=1)
    start_training(host, say=lambda _: None, timeout_s=60)
    networks = docker.DockerClient(base_url=docker_engine).networks.list(names=[NETWORK])
    assert [n.name for n in networks] == [NETWORK]
    trainer = host.engine.list(run=str(host.run.run_id), role="trainer")[0]
    attached = docker.DockerClient(base_url=docker_engine).containers.get(trainer.id).attrs["NetworkSettings"]["Networks"]
    assert list(attached) == [NETWORK]
    stop_training(host, say=lambda _: None, timeout=5)


def test_a_pretrained_checkpoint_named_but_missing_its_files_is_refused(host_factory):
    host = host_factory("DR_LOCAL_S3_MODEL_PREFIX=next-model\nDR_LOCAL_S3_PRETRAINED=True\n"
                        "DR_LOCAL_S3_PRETRAINED_PREFIX=old-model\nDR_LOCAL_S3_PRETRAINED_CHECKPOINT=best\n", workers=1)
    storage = host.storage
    for suffix in (".index", ".meta", ".data-00000-of-00001"):
        storage.put_text(f"old-model/model/3_Step-300.ckpt{suffix}", "x")
    storage.put_text("old-model/model/5_Step-500.ckpt.index", "x")  # the best one lost its other files
    storage.put_json("old-model/model/deepracer_checkpoints.json", {
        "best_checkpoint": {"name": "5_Step-500.ckpt", "avg_eval_metric": 80.0, "time_stamp": 1.0},
        "last_checkpoint": {"name": "3_Step-300.ckpt", "avg_eval_metric": 50.0, "time_stamp": 2.0}})
    with pytest.raises(TrainingError, match=r"the best checkpoint 5_Step-500 misses 5_Step-500.ckpt.meta, "
                                            r"5_Step-500.ckpt.data-00000-of-00001"):
        start_training(host, say=lambda _: None, timeout_s=60)
    assert host.engine.list(run=str(host.run.run_id)) == []
