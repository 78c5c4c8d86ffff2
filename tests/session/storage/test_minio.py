"""MinIO for azure/local clouds: its container spec, and ensure_minio on the real Docker Engine.

No MinIO image can be pulled here: a stand-in image tagged minio/minio:standin takes its place (it only
sleeps), and MinIO's health endpoint is played by the `live` callable — both say so where they are used.
The bucket creation runs against moto's S3 server over HTTP."""

from __future__ import annotations

import uuid
from pathlib import Path

import docker
import pytest

from session.core.config import load_config
from session.engine.containers import Engine, Port
from session.storage.minio import MinioError, ensure_minio, minio_spec, needs_minio
from session.storage.s3 import Storage

SYSTEM = ("DR_CLOUD={cloud}\nDR_LOCAL_S3_BUCKET=bucket\nDR_SIMAPP_VERSION=6.0.4-gpu\nDR_MINIO_IMAGE=standin\n"
          "DR_LOCAL_ACCESS_KEY_ID=minio-user\nDR_LOCAL_SECRET_ACCESS_KEY=s3cr3t-value\n")


def system_config(tmp_path: Path, cloud: str = "azure", extra: str = ""):
    (tmp_path / "system.env").write_text(SYSTEM.format(cloud=cloud) + extra)
    (tmp_path / "run.env").write_text("")
    return load_config(tmp_path / "run.env", tmp_path / "system.env", environ={}).system


def test_only_clouds_without_s3_need_minio(tmp_path: Path):
    assert needs_minio(system_config(tmp_path, "azure")) and needs_minio(system_config(tmp_path, "local"))
    assert not needs_minio(system_config(tmp_path, "aws"))
    assert not needs_minio(system_config(tmp_path, "remote", "DR_REMOTE_MINIO_URL=http://nas:9000\n"))


def test_spec_publishes_on_loopback_only_with_the_system_env_credentials(tmp_path: Path):
    spec = minio_spec(system_config(tmp_path))
    assert spec.name == "minio" and spec.image == "minio/minio:standin"
    assert spec.ports == (Port(9000, 9000, "127.0.0.1"), Port(9001, 9001, "127.0.0.1"))
    assert spec.environment == {"MINIO_ROOT_USER": "minio-user", "MINIO_ROOT_PASSWORD": "s3cr3t-value"}
    assert spec.mounts[0].target == "/data" and spec.mounts[0].source.startswith("/mnt/")
    assert spec.network == "sagemaker-local"


def test_missing_credentials_are_named(tmp_path: Path):
    (tmp_path / "system.env").write_text("DR_CLOUD=local\nDR_SIMAPP_VERSION=6.0.4-cpu\n")
    (tmp_path / "run.env").write_text("")
    system = load_config(tmp_path / "run.env", tmp_path / "system.env", environ={}).system
    with pytest.raises(MinioError, match="DR_LOCAL_ACCESS_KEY_ID and DR_LOCAL_SECRET_ACCESS_KEY: expected"):
        minio_spec(system)


@pytest.fixture()
def minio_standin(docker_engine: str, standin_image: str):
    client = docker.DockerClient(base_url=docker_engine)
    # MinIO's arguments (server /data ...) land after `sh -c 'exec sleep 3600'`, which ignores them.
    container = client.containers.create(standin_image, ["true"])
    container.commit(repository="minio/minio", tag="standin",
                     changes=['ENTRYPOINT ["/bin/sh", "-c", "exec sleep 3600", "--"]'])
    container.remove()
    yield client
    for leftover in client.containers.list(all=True, filters={"name": "^/minio$"}):
        leftover.remove(force=True)


def test_ensure_minio_starts_it_once_and_creates_the_bucket(tmp_path: Path, docker_engine: str, minio_standin,
                                                            s3_server: str):
    system = system_config(tmp_path)
    engine = Engine(base_url=docker_engine)
    bucket = f"deepracer-{uuid.uuid4().hex[:8]}"
    storage = Storage(bucket, endpoint_url=s3_server)  # moto plays MinIO's S3 API
    said: list[str] = []
    live = lambda endpoint: True  # noqa: E731 - stands in for MinIO's /minio/health/live

    assert ensure_minio(engine, system, say=said.append, live=live, data_dir=str(tmp_path / "data"),
                        storage=storage) == "http://localhost:9000"
    [container] = engine.list(run="host", role="minio")
    assert container.running and container.name == "minio"
    attrs = minio_standin.containers.get(container.id).attrs
    assert attrs["HostConfig"]["PortBindings"]["9000/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "9000"}]
    assert storage.prefix_has_objects("") is False  # the bucket exists now (listing works) and is empty
    assert f"created bucket {bucket} in MinIO" in said

    said.clear()
    ensure_minio(engine, system, say=said.append, live=live, storage=storage)
    assert len(engine.list(run="host", role="minio")) == 1 and said == []  # already running, bucket there


def test_ensure_minio_gives_up_with_the_log_command(tmp_path: Path, docker_engine: str, minio_standin):
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    with pytest.raises(MinioError, match=r"did not answer at http://localhost:9000 within 60 s; see `docker logs minio`"):
        ensure_minio(Engine(base_url=docker_engine), system_config(tmp_path), say=lambda _: None,
                     live=lambda _: False, clock=lambda: now[0], sleep=sleep, data_dir=str(tmp_path / "data"))
    assert sum(sleeps) > 60


def test_aws_needs_nothing(tmp_path: Path):
    assert ensure_minio(Engine(base_url="unix:///nonexistent.sock"), system_config(tmp_path, "aws")) is None
