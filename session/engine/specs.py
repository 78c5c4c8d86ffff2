"""The training containers of one run (pure: config in, ContainerSpecs out).

DRfC's known-working set (its docker-compose-training.yml plus the aws/endpoint overlays, DRFC.md §3.4): one
trainer (`rl_coach`, which starts the SageMaker-local trainer as a sibling container through the Docker
socket) and N simulation workers (`robomaker`), all from the one simapp image, on the `sagemaker-local`
network that the sibling's own compose file expects by name. Our containers of a `-gpu` image request the
GPUs explicitly; so does the sibling, which we don't create: simapp 6.0.4's start.py picks the SageMaker SDK's
`local_gpu` for an image whose name says gpu, and the SDK's compose file then reserves every GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from session.core.config import RunConfig, SystemConfig
from session.engine.containers import LABEL_PREFIX, LABEL_ROLE, LABEL_RUN, LABEL_WORKER, ContainerSpec, Mount
from session.engine.swarm import ROBOMAKER_CONSTRAINT, SLOT_TEMPLATE, ServiceSpec

NETWORK = "sagemaker-local"
SAGEMAKER_TMP = "/tmp/sagemaker"  # shared 1:1 with the host: SageMaker-local writes compose files there
COMMS_ROOT = "/tmp/deepracer"  # per-run folder where several workers coordinate (DRfC's tmp/comms.<id>)
# The image's ENTRYPOINT is ["/bin/bash", "-c"]: a command is one string, as DRfC's compose passes it.
TRAINER_COMMAND = ("source /root/sagemaker-venv/bin/activate && python3 /opt/ml/code/rl_coach/start.py",)


@dataclass(frozen=True)
class StorageAccess:
    """How containers reach the working bucket: the instance role (AWS) or MinIO with keys."""

    endpoint_url: Optional[str] = None  # as the containers see it, e.g. http://minio:9000
    access_key: Optional[str] = None
    secret_key: Optional[str] = None

    @classmethod
    def from_system(cls, system: SystemConfig) -> "StorageAccess":
        if system.cloud == "aws":
            return cls()
        return cls(system.minio_url, system.local_access_key_id, system.local_secret_access_key)

    def environment(self) -> dict[str, str]:
        if not self.endpoint_url:
            # Containers on a bridge network reach the instance role through IMDS (hop limit 2 on the VM);
            # DRfC's aws overlay gives the metadata service more patience than boto's 1 s default.
            return {"AWS_METADATA_SERVICE_TIMEOUT": "3", "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "5"}
        env = {"S3_ENDPOINT_URL": self.endpoint_url}
        if self.access_key and self.secret_key:
            env.update(AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)
        return env


def container_name(run_id: int, role: str, worker: Optional[int] = None) -> str:
    return f"deepracer-{run_id}-{role}" + (f"-{worker}" if worker else "")


def image_of(system: SystemConfig) -> str:
    return f"{system.simapp_source}:{system.simapp_version}"


def wants_gpu(system: SystemConfig) -> bool:
    return system.simapp_version.endswith("-gpu")


def _labels(run: RunConfig, role: str, worker: Optional[int] = None) -> dict[str, str]:
    labels = {LABEL_RUN: str(run.run_id), LABEL_ROLE: role, LABEL_PREFIX: run.local_s3_model_prefix}
    if worker:
        labels[LABEL_WORKER] = str(worker)
    return labels


def _optional(env: dict[str, Optional[object]]) -> dict[str, str]:
    return {key: str(value) for key, value in env.items() if value not in (None, "")}


def worker_cuda_devices(system: SystemConfig) -> str:
    """CUDA_VISIBLE_DEVICES for a simulation worker: DR_ROBOMAKER_CUDA_DEVICES, else no device at all, so the
    TensorFlow in each worker (it runs the policy) takes no GPU memory the trainer needs. As DRfC 6.0.4's
    docker/docker-compose-training.yml and docker-compose-eval.yml:
    `CUDA_VISIBLE_DEVICES=${DR_ROBOMAKER_CUDA_DEVICES:-}`."""
    return system.robomaker_cuda_devices or ""


def trainer_spec(system: SystemConfig, run: RunConfig, storage: StorageAccess,
                 docker_socket: str = "/var/run/docker.sock") -> ContainerSpec:
    """`docker_socket`: the host path of the engine's socket (rootless Docker has its own), which the trainer
    needs to start its SageMaker sibling."""
    image = image_of(system)
    env = {
        "RUN_ID": str(run.run_id),
        "AWS_REGION": system.aws_app_region,
        "SAGEMAKER_IMAGE": image,
        "PRETRAINED": "True" if run.local_s3_pretrained else "False",
        "PRETRAINED_S3_PREFIX": run.local_s3_pretrained_prefix,
        "PRETRAINED_S3_BUCKET": system.local_s3_bucket,
        "PRETRAINED_CHECKPOINT": str(run.local_s3_pretrained_checkpoint),
        "MODEL_S3_PREFIX": run.local_s3_model_prefix,
        "MODEL_S3_BUCKET": system.local_s3_bucket,
        "HYPERPARAMETER_FILE_S3_KEY": run.local_s3_hyperparameters_key,
        "MODELMETADATA_FILE_S3_KEY": run.local_s3_model_metadata_key,
        **_optional({
            "CUDA_VISIBLE_DEVICES": system.sagemaker_cuda_devices,
            "MAX_MEMORY_STEPS": run.train_max_steps_per_iteration,
            "TELEGRAF_HOST": system.telegraf_host,
            "TELEGRAF_PORT": system.telegraf_port,
        }),
        **storage.environment(),
    }
    return ContainerSpec(
        name=container_name(run.run_id, "trainer"),
        image=image,
        command=TRAINER_COMMAND,
        environment=env,
        labels=_labels(run, "trainer"),
        mounts=(Mount(docker_socket, "/var/run/docker.sock"), Mount(SAGEMAKER_TMP, SAGEMAKER_TMP)),
        network=NETWORK,
        working_dir="/opt/ml/code",
        gpus=wants_gpu(system),
    )


def worker_specs(system: SystemConfig, run: RunConfig, storage: StorageAccess, workers: int,
                 params_files: list[str], multi_config: Optional[str] = None) -> list[ContainerSpec]:
    """`params_files`: one shared name, or one per worker (multi-config, in worker order)."""
    # One string for the image's `bash -c` entrypoint, as DRfC's compose passes ROBOMAKER_COMMAND.
    mode = "multi" if workers > 1 else "run"
    command = (f"/opt/ml/code/run.sh {mode} distributed_training.launch.py",)
    mounts: tuple[Mount, ...] = ()
    if workers > 1:
        mounts = (Mount(comms_dir(run.run_id), "/mnt/comms"),)
    specs = []
    for worker in range(1, workers + 1):
        env = {
            "WORLD_NAME": run.for_worker(worker).world_name if multi_config else run.world_name,
            "SAGEMAKER_SHARED_S3_PREFIX": run.local_s3_model_prefix,
            "SAGEMAKER_SHARED_S3_BUCKET": system.local_s3_bucket,
            "APP_REGION": system.aws_app_region,
            "S3_YAML_NAME": params_files[worker - 1] if len(params_files) > 1 else params_files[0],
            "KINESIS_VIDEO_STREAM_NAME": system.kinesis_stream_name or "",
            "ENABLE_KINESIS": "True" if system.camera_kvs_enable else "False",
            "ENABLE_GUI": "True" if system.gui_enable else "False",
            "ROS_MASTER_URI": "http://localhost:11311/",
            "ROS_IP": "127.0.0.1",
            "GAZEBO_RENDER_ENGINE": system.gazebo_render_engine,
            # Compose-scaled replicas learn their number from swarm's slot; we start each one ourselves.
            "DOCKER_REPLICA_SLOT": str(worker),
            "CUDA_VISIBLE_DEVICES": worker_cuda_devices(system),
            **_optional({
                "MULTI_CONFIG": multi_config,
                "RTF_OVERRIDE": run.train_rtf,
                "GAZEBO_ARGS": system.gazebo_args,
                "TELEGRAF_HOST": system.telegraf_host,
                "TELEGRAF_PORT": system.telegraf_port,
            }),
            **storage.environment(),
        }
        specs.append(ContainerSpec(
            name=container_name(run.run_id, "worker", worker),
            image=image_of(system),
            command=command,
            environment=env,
            labels=_labels(run, "worker", worker),
            mounts=mounts,
            network=NETWORK,
            gpus=wants_gpu(system),
        ))
    return specs


def worker_service_spec(system: SystemConfig, run: RunConfig, storage: StorageAccess, workers: int,
                        params_files: list[str], multi_config: Optional[str] = None) -> ServiceSpec:
    """The workers as one swarm service of `workers` replicas on the nodes labelled Robomaker (DRfC's
    docker-compose-training-swarm.yml): worker 1's container with swarm's slot as DOCKER_REPLICA_SLOT, from which
    run.sh (multi mode) takes the worker's number and, with multi-config, its entry in MULTI_CONFIG; no comms
    folder (the replicas are on several nodes: the slot takes its place) and no per-worker label (the slot is
    the number). No GPU is requested: swarm cannot, and workers need none (CUDA_VISIBLE_DEVICES)."""
    first = worker_specs(system, run, storage, workers, params_files, multi_config)[0]
    labels = {key: value for key, value in first.labels.items() if key != LABEL_WORKER}
    container = replace(first, name=worker_service_name(run.run_id), labels=labels, mounts=(), gpus=False,
                        environment={**first.environment, "DOCKER_REPLICA_SLOT": SLOT_TEMPLATE})
    return ServiceSpec(container, replicas=workers, constraints=(ROBOMAKER_CONSTRAINT,))


def worker_service_name(run_id: int) -> str:
    """The service's name; swarm names each replica's container `<it>.<slot>.<task id>`."""
    return container_name(run_id, "worker")


def comms_dir(run_id: int) -> str:
    return f"{COMMS_ROOT}/comms.{run_id}"
