"""The one Host factory: what `train` and the units (resume, the time limit, the spot watcher) open."""

from __future__ import annotations

from dataclasses import replace

from session.engine.containers import Engine
from session.host.factory import Host, docker_socket_path, open_host
from session.lifecycle import resume, stopping
from session.storage.keeper import Keeper

SYSTEM_ENV = "DR_CLOUD=aws\nDR_AWS_APP_REGION=eu-west-1\nDR_LOCAL_S3_BUCKET=bucket-1\nDR_SIMAPP_VERSION=6.0.4-gpu\n"


def test_open_host_reads_both_files_and_keeps_custom_files_beside_run_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
    (tmp_path / "system.env").write_text(SYSTEM_ENV)
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "run.env").write_text("DR_LOCAL_S3_MODEL_PREFIX=rl-exp-2\nDR_NOT_A_SETTING=1\n")
    host = open_host(tmp_path / "exp" / "run.env", tmp_path / "system.env", engine=Engine(base_url="unix:///none"))
    assert (host.run.local_s3_model_prefix, host.system.local_s3_bucket) == ("rl-exp-2", "bucket-1")
    assert host.storage.bucket == "bucket-1" and host.custom_files == tmp_path / "exp" / "custom_files"
    assert host.docker_socket == "/run/user/1000/docker.sock"
    assert any("DR_NOT_A_SETTING" in str(warning) for warning in host.warnings)


def test_the_docker_socket_follows_a_unix_docker_host_only():
    assert docker_socket_path({}) == "/var/run/docker.sock"
    assert docker_socket_path({"DOCKER_HOST": "unix:///tmp/d.sock"}) == "/tmp/d.sock"
    assert docker_socket_path({"DOCKER_HOST": "tcp://10.0.0.2:2375"}) == "/var/run/docker.sock"


def test_the_keeper_belongs_to_the_hosts_own_storage(tmp_path):
    (tmp_path / "system.env").write_text(SYSTEM_ENV)
    (tmp_path / "run.env").write_text("")
    host = open_host(tmp_path / "run.env", tmp_path / "system.env", engine=Engine(base_url="unix:///none"))
    assert isinstance(host.keeper, Keeper) and host.keeper.storage is host.storage and not host.keeper.active
    other = replace(host, storage=host.storage.__class__("bucket-2"))
    assert other.keeper.storage is other.storage  # a Host made from another gets a keeper of its storage


def test_the_units_open_their_host_where_train_does():
    # resume at boot and the graceful stop (spot notices, the time limit) default to the same factory.
    assert resume.open_host is open_host and stopping.open_host is open_host
    assert Host.__module__ == "session.host.factory"
