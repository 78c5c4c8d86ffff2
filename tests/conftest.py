"""Fixtures shared by the test packages."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
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
                    env: Optional[Mapping[str, str]] = None, launcher: Sequence[str] = ()) -> Iterator[str]:
    """Runs a dockerd of the tests' own (../shared/docker-engine-for-tests.md) with its data under `root` until
    the block ends; yields its DOCKER_HOST. `extra_args` add to the flags every test daemon gets (a default
    runtime, say); `launcher` goes before the command (`nsenter --net=...` puts it in a network namespace);
    everything it ran is removed before it stops."""
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
        [*launcher, shutil.which("dockerd") or "dockerd", "--data-root", str(root / "data"), "--exec-root", str(sock_dir / "x"),
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


@dataclass(frozen=True)
class TwoNodeSwarm:
    """A real two-node swarm (../shared/swarm-and-compose-for-tests.md): the manager's dockerd in this network
    namespace, a worker node's in a namespace of its own, joined by a veth pair on `SWARM_SUBNET`."""

    manager: str  # DOCKER_HOST of each daemon
    worker: str
    manager_addr: str
    worker_addr: str
    manager_id: str
    worker_id: str
    link: str  # this namespace's end of the veth pair

    def lose_worker(self) -> None:
        """The worker node vanishes as a reclaimed spot VM does for the manager: no word from it, ever again
        (its link goes down; its daemon and containers stay, so the fixture can still clean them up)."""
        _ip("link", "set", self.link, "down")


SWARM_SUBNET = "192.168.77"  # only addresses in the namespace the fixture makes itself


def _ip(*args: str) -> None:
    import subprocess

    subprocess.run(["ip", *args], check=True, capture_output=True)


def _remove_stale_swarms() -> None:
    """What a killed test run left of its swarm (its namespace, its veth holding the manager's address, its
    daemons' mounts): the next swarm's worker node could not join over a second veth with that address. Only a
    swarm whose pytest is gone is removed."""
    import re
    import subprocess

    found = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    dead = {int(pid) for pid in re.findall(r"\bdrsw(\d+)a?\b", found) if not Path(f"/proc/{pid}").exists()}
    for line in Path("/proc/mounts").read_text().splitlines():
        match = re.match(r"/tmp/dr-sw[12]-(\d+)/", line.split()[1])
        if match and not Path(f"/proc/{match.group(1)}").exists():
            dead.add(int(match.group(1)))
            subprocess.run(["umount", "-l", line.split()[1]], capture_output=True)
    for pid in dead:
        subprocess.run(["ip", "netns", "del", f"drsw{pid}"], capture_output=True)
        subprocess.run(["ip", "link", "del", f"drsw{pid}a"], capture_output=True)


@pytest.fixture
def two_node_swarm(tmp_path: Path) -> Iterator[TwoNodeSwarm]:
    """A fresh two-node swarm per test (a test may lose its worker node): the manager labelled Sagemaker and
    Robomaker, the worker node Robomaker, as `deepracer swarm-init` and the infra's join leave them. Built with
    the docker SDK, not with session.engine.swarm, so that its tests have an independent oracle. The heartbeat is
    1 s, so a node whose daemon dies is down within seconds."""
    import docker

    tiers.require("docker", "a two-node swarm")
    if os.geteuid() != 0:
        pytest.fail("the swarm tests start their own dockerds in network namespaces and need root")
    _remove_stale_swarms()
    netns = veth = f"drsw{os.getpid()}"  # the pid tells a stale one (interface names: 15 characters at most)
    manager_addr, worker_addr = f"{SWARM_SUBNET}.1", f"{SWARM_SUBNET}.2"
    _ip("netns", "add", netns)
    try:
        _ip("link", "add", f"{veth}a", "type", "veth", "peer", "name", f"{veth}b")
        _ip("link", "set", f"{veth}b", "netns", netns)
        _ip("addr", "add", f"{manager_addr}/24", "dev", f"{veth}a")
        _ip("link", "set", f"{veth}a", "up")
        _ip("-n", netns, "addr", "add", f"{worker_addr}/24", "dev", f"{veth}b")
        _ip("-n", netns, "link", "set", f"{veth}b", "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        (tmp_path / "n1").mkdir()
        (tmp_path / "n2").mkdir()
        with private_dockerd(tmp_path / "n1", "sw1") as manager, \
                private_dockerd(tmp_path / "n2", "sw2", launcher=("nsenter", f"--net=/var/run/netns/{netns}")) \
                as worker:
            one, two = docker.DockerClient(base_url=manager), docker.DockerClient(base_url=worker)
            try:
                one.swarm.init(advertise_addr=manager_addr, listen_addr=f"{manager_addr}:2377",
                               dispatcher_heartbeat_period=1_000_000_000)
                token = one.swarm.attrs["JoinTokens"]["Worker"]
                two.swarm.join(remote_addrs=[f"{manager_addr}:2377"], join_token=token,
                               advertise_addr=worker_addr, listen_addr=f"{worker_addr}:2377")
                manager_id, worker_id = one.info()["Swarm"]["NodeID"], two.info()["Swarm"]["NodeID"]
                for node_id, labels in ((manager_id, {"Sagemaker": "true", "Robomaker": "true"}),
                                        (worker_id, {"Robomaker": "true"})):
                    node = one.nodes.get(node_id)
                    node.update({**node.attrs["Spec"], "Labels": labels})
                yield TwoNodeSwarm(manager, worker, manager_addr, worker_addr, manager_id, worker_id, f"{veth}a")
            finally:
                with contextlib.suppress(Exception):
                    for service in one.services.list():
                        service.remove()
                for client in (two, one):
                    with contextlib.suppress(Exception):
                        client.swarm.leave(force=True)
                    client.close()
    finally:
        import subprocess

        # A daemon that dies leaves its sandboxes' namespaces mounted under its exec root, and their VXLAN devices
        # keep the overlay's VNIs taken on this host: the next swarm could not make its ingress network.
        exec_roots = tuple(f"/tmp/dr-{name}-{os.getpid()}/" for name in ("sw1", "sw2"))
        for line in Path("/proc/mounts").read_text().splitlines():
            mountpoint = line.split()[1]
            if mountpoint.startswith(exec_roots) or mountpoint.startswith(f"{tmp_path}/"):
                subprocess.run(["umount", "-l", mountpoint], capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        subprocess.run(["ip", "link", "del", f"{veth}a"], capture_output=True)
