"""The training containers as specs (pure): DRfC's env names, labels, mounts, storage access per cloud."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from session.core.config import load_config
from session.engine.containers import Mount
from session.engine.specs import NETWORK, StorageAccess, trainer_spec, worker_specs

AWS_SYSTEM = ("DR_CLOUD=aws\nDR_AWS_APP_REGION=us-west-2\nDR_LOCAL_S3_BUCKET=deepracer-aws-abc\n"
              "DR_SIMAPP_SOURCE=awsdeepracercommunity/deepracer-simapp\nDR_SIMAPP_VERSION=6.0.4-gpu\nDR_WORKERS=2\n")
AZURE_SYSTEM = AWS_SYSTEM.replace("DR_CLOUD=aws", "DR_CLOUD=azure") + \
    "DR_LOCAL_ACCESS_KEY_ID=minio-key\nDR_LOCAL_SECRET_ACCESS_KEY=minio-secret\n"


def load(tmp_path: Path, system: str, run: str = "", workers: Mapping[int, str] = {}):
    (tmp_path / "system.env").write_text(system)
    (tmp_path / "run.env").write_text(run)
    for number, text in workers.items():
        (tmp_path / f"worker-{number}.env").write_text(text)
    loaded = load_config(tmp_path / "run.env", tmp_path / "system.env", environ={})
    return loaded.system, loaded.run


def test_trainer_on_aws_uses_the_instance_role_and_the_docker_socket(tmp_path: Path):
    system, run = load(tmp_path, AWS_SYSTEM, "DR_RUN_ID=3\nDR_LOCAL_S3_MODEL_PREFIX=model-a\n"
                                             "DR_LOCAL_S3_PRETRAINED=True\nDR_LOCAL_S3_PRETRAINED_PREFIX=model-0\n")
    spec = trainer_spec(system, run, StorageAccess.from_system(system), docker_socket="/run/user/1000/docker.sock")
    env = spec.environment
    assert spec.name == "deepracer-3-trainer" and spec.network == NETWORK
    assert spec.image == env["SAGEMAKER_IMAGE"] == "awsdeepracercommunity/deepracer-simapp:6.0.4-gpu"
    assert env["MODEL_S3_BUCKET"] == env["PRETRAINED_S3_BUCKET"] == "deepracer-aws-abc"
    assert env["MODEL_S3_PREFIX"] == "model-a" and env["PRETRAINED"] == "True"
    assert env["PRETRAINED_S3_PREFIX"] == "model-0" and env["PRETRAINED_CHECKPOINT"] == "last"
    assert env["HYPERPARAMETER_FILE_S3_KEY"] == "custom_files/hyperparameters.json"
    assert env["AWS_METADATA_SERVICE_NUM_ATTEMPTS"] == "5" and "AWS_ACCESS_KEY_ID" not in env
    assert "S3_ENDPOINT_URL" not in env and "CUDA_VISIBLE_DEVICES" not in env
    assert Mount("/run/user/1000/docker.sock", "/var/run/docker.sock") in spec.mounts
    assert Mount("/tmp/sagemaker", "/tmp/sagemaker") in spec.mounts
    assert spec.labels == {"deepracer.run": "3", "deepracer.role": "trainer", "deepracer.prefix": "model-a"}
    assert len(spec.command) == 1 and "rl_coach/start.py" in spec.command[0]  # the image runs `bash -c`


def test_minio_clouds_pass_the_endpoint_and_keys(tmp_path: Path):
    system, run = load(tmp_path, AZURE_SYSTEM)
    access = StorageAccess.from_system(system)
    env = trainer_spec(system, run, access).environment
    assert env["S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["AWS_ACCESS_KEY_ID"] == "minio-key" and env["AWS_SECRET_ACCESS_KEY"] == "minio-secret"
    assert "AWS_METADATA_SERVICE_TIMEOUT" not in env


def test_one_worker_runs_run_mode_without_comms(tmp_path: Path):
    system, run = load(tmp_path, AWS_SYSTEM, "DR_WORLD_NAME=Albert\n")
    [spec] = worker_specs(system, run, StorageAccess.from_system(system), 1, ["training_params.yaml"])
    assert spec.command == ("/opt/ml/code/run.sh run distributed_training.launch.py",)
    assert spec.mounts == () and spec.name == "deepracer-0-worker-1"
    env = spec.environment
    assert env["WORLD_NAME"] == "Albert" and env["S3_YAML_NAME"] == "training_params.yaml"
    assert env["APP_REGION"] == "us-west-2" and env["SAGEMAKER_SHARED_S3_PREFIX"] == run.local_s3_model_prefix
    assert "MULTI_CONFIG" not in env and env["DOCKER_REPLICA_SLOT"] == "1"
    assert spec.labels["deepracer.worker"] == "1" and spec.labels["deepracer.role"] == "worker"


def test_multi_config_workers_get_their_own_file_track_and_shared_comms(tmp_path: Path):
    system, run = load(tmp_path, AWS_SYSTEM, "DR_RUN_ID=4\nDR_TRAIN_MULTI_CONFIG=True\n",
                       workers={2: "DR_WORLD_NAME=Vegas_track\n"})
    specs = worker_specs(system, run, StorageAccess.from_system(system), 2,
                         ["training_params_1.yaml", "training_params_2.yaml"], multi_config='{"multi_config": []}')
    assert [s.environment["S3_YAML_NAME"] for s in specs] == ["training_params_1.yaml", "training_params_2.yaml"]
    assert [s.environment["WORLD_NAME"] for s in specs] == ["reinvent_base", "Vegas_track"]
    assert all(s.command == ("/opt/ml/code/run.sh multi distributed_training.launch.py",) for s in specs)
    assert all(s.mounts == (Mount("/tmp/deepracer/comms.4", "/mnt/comms"),) for s in specs)
    assert all(s.environment["MULTI_CONFIG"] == '{"multi_config": []}' for s in specs)


def test_gpu_images_request_every_gpu_and_cpu_images_none(tmp_path: Path):
    system, run = load(tmp_path, AWS_SYSTEM)
    access = StorageAccess.from_system(system)
    assert trainer_spec(system, run, access).gpus is True
    assert all(s.gpus for s in worker_specs(system, run, access, 2, ["training_params.yaml"]))
    system, run = load(tmp_path, AWS_SYSTEM.replace("6.0.4-gpu", "6.0.4-cpu"))
    assert trainer_spec(system, run, access).gpus is False


def test_the_created_containers_carry_the_gpu_device_request(tmp_path: Path, docker_engine: str, standin_image: str):
    """On the real engine: created (not started: no GPU on this machine) from the trainer's spec."""
    import dataclasses

    import docker

    from session.engine.containers import Engine

    system, run = load(tmp_path, AWS_SYSTEM, "DR_RUN_ID=77\n")
    spec = dataclasses.replace(trainer_spec(system, run, StorageAccess.from_system(system)), image=standin_image,
                               network="none", mounts=())
    engine = Engine(base_url=docker_engine)
    info = engine.create(spec)
    try:
        attrs = docker.DockerClient(base_url=docker_engine).containers.get(info.id).attrs
        requests = attrs["HostConfig"]["DeviceRequests"]
        assert len(requests) == 1
        assert requests[0]["Count"] == -1 and requests[0]["Capabilities"] == [["gpu"]]  # --gpus all
        assert attrs["Config"]["Labels"]["deepracer.role"] == "trainer" and info.status == "created"
    finally:
        engine.remove([info])


def test_workers_see_no_gpu_unless_dr_robomaker_cuda_devices_names_one(tmp_path: Path, docker_engine: str,
                                                                        standin_image: str):
    """DRfC's compose gives workers `CUDA_VISIBLE_DEVICES=${DR_ROBOMAKER_CUDA_DEVICES:-}`: set but empty, so their
    TensorFlow stays off the GPU the trainer needs. On the real engine the empty value reaches the container."""
    import dataclasses

    import docker

    from session.engine.containers import Engine

    system, run = load(tmp_path, AWS_SYSTEM, "DR_RUN_ID=78\n")
    access = StorageAccess.from_system(system)
    specs = worker_specs(system, run, access, 2, ["training_params.yaml"])
    assert [s.environment["CUDA_VISIBLE_DEVICES"] for s in specs] == ["", ""]
    assert "CUDA_VISIBLE_DEVICES" not in trainer_spec(system, run, access).environment  # its sibling takes the GPU
    engine = Engine(base_url=docker_engine)
    info = engine.create(dataclasses.replace(specs[0], image=standin_image, network="none", mounts=()))
    try:
        env = docker.DockerClient(base_url=docker_engine).containers.get(info.id).attrs["Config"]["Env"]
        assert "CUDA_VISIBLE_DEVICES=" in env
    finally:
        engine.remove([info])

    system, run = load(tmp_path, AWS_SYSTEM + "DR_ROBOMAKER_CUDA_DEVICES=1\n")
    assert [s.environment["CUDA_VISIBLE_DEVICES"] for s in worker_specs(system, run, access, 2, ["p.yaml"])] == \
        ["1", "1"]
