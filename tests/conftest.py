"""Fixtures shared by the test packages."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence

import pytest

from tests import tiers

# Dummy credentials for the S3 server; the deployer's real ones (a profile, an endpoint override) must not leak
# into tests, nor a request from a test reach AWS with them.
_TEST_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_CLEARED_AWS_ENV = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fast", action="store_true", help=f"only the fast tier: -m '{tiers.FAST}'")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("fast"):
        given = config.option.markexpr
        config.option.markexpr = f"({given}) and {tiers.FAST}" if given else tiers.FAST


@pytest.hookimpl(tryfirst=True)  # before the -m deselection reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tiers.mark(items)  # docker, azurite, shared_data: see tests/tiers.py


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    tiers.running(item)  # the test whose fixtures are being set up, for tiers.require


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    tiers.running(None)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 API over HTTP (moto's server, in this process) for the whole session: yields its endpoint URL.

    Tests create their own uniquely named buckets, so they share the server without sharing state.
    """
    from moto.server import ThreadedMotoServer

    saved = {name: os.environ.get(name) for name in (*_TEST_AWS_ENV, *_CLEARED_AWS_ENV)}
    os.environ.update(_TEST_AWS_ENV)
    for name in _CLEARED_AWS_ENV:
        os.environ.pop(name, None)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def private_dockerd(root: Path, name: str, extra_args: Sequence[str] = (),
                    env: Optional[Mapping[str, str]] = None) -> Iterator[str]:
    """Runs a dockerd of the tests' own (../shared/docker-engine-for-tests.md) with its data under `root` until
    the block ends; yields its DOCKER_HOST. `extra_args` add to the flags every test daemon gets (a default
    runtime, say); everything it ran is removed before it stops."""
    import shutil
    import subprocess
    import time

    import docker

    tiers.require("docker", "a dockerd")
    if os.geteuid() != 0:
        pytest.fail("the Docker Engine tests start their own dockerd and need root (CI runs as root)")
    # A unix socket path must stay under ~100 bytes; pytest's tmp paths can be longer.
    sock_dir = Path(f"/tmp/dr-{name}-{os.getpid()}")
    sock_dir.mkdir(exist_ok=True)
    host = f"unix://{sock_dir / 'docker.sock'}"
    log = open(root / "dockerd.log", "wb")
    daemon = subprocess.Popen(
        [shutil.which("dockerd") or "dockerd", "--data-root", str(root / "data"), "--exec-root", str(sock_dir / "x"),
         "-H", host, "--pidfile", str(root / "docker.pid"), "--storage-driver=vfs",
         "--iptables=false", "--ip6tables=false", "--bridge=none", *extra_args],
        stdout=log, stderr=subprocess.STDOUT, env=dict(env) if env is not None else None)
    deadline = time.monotonic() + 30
    while True:  # the daemon's API answering is the readiness signal; there is no event to wait on
        try:
            docker.DockerClient(base_url=host).ping()
            break
        except Exception:  # noqa: BLE001 - not answering yet, whatever the error: try again until the deadline
            if daemon.poll() is not None or time.monotonic() > deadline:
                log.close()
                pytest.fail(f"dockerd did not start: {(root / 'dockerd.log').read_text()[-2000:]}")
            time.sleep(0.1)
    try:
        yield host
    finally:
        _remove_everything(host)
        daemon.terminate()
        daemon.wait(timeout=30)
        log.close()
        shutil.rmtree(sock_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory) -> Iterator[str]:
    """A real Docker Engine of the tests' own: yields its DOCKER_HOST. No registry, no GPU and no default bridge
    here; the tests create their own images (`standin_image`) and networks. scripts/test installs docker.io and
    busybox-static."""
    with private_dockerd(tmp_path_factory.mktemp("dockerd"), "dockerd") as host:
        yield host


def _remove_everything(host: str) -> None:
    """Containers and networks go before the daemon: a killed daemon leaves its networks' bridges on the host,
    and enough of them exhaust Docker's address pools for the next run."""
    import docker

    try:
        client = docker.DockerClient(base_url=host)
        for container in client.containers.list(all=True):
            container.remove(force=True)
        for network in client.networks.list():
            if network.name not in ("bridge", "host", "none"):
                network.remove()
    except Exception:  # noqa: BLE001 - best effort: the daemon stops next either way
        pass


@pytest.fixture(scope="session")
def standin_image(docker_engine: str) -> str:
    """`deepracer-standin:test`: an image with no registry behind it, made with `docker import` from a static
    busybox plus the host's Python (bind-mounted read-only when a container runs: see `python_mounts`)."""
    import io
    import shutil
    import tarfile

    import docker

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(shutil.which("busybox") or "/bin/busybox", arcname="bin/busybox")
        for applet in ("sh", "echo", "sleep", "cat", "ls", "env", "true"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        for directory in ("tmp", "usr", "lib", "lib64", "etc", "root", "opt"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
    client = docker.DockerClient(base_url=docker_engine)
    client.api.import_image_from_data(buffer.getvalue(), repository="deepracer-standin", tag="test")
    return "deepracer-standin:test"
