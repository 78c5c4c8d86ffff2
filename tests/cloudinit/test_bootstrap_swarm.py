"""The first boot's swarm step (docs/multi-node.md): with simulation nodes the host becomes their manager at the
address its metadata service gives, and the rotation once they joined is started, not waited for; without nodes
the step does nothing.

`step_swarm` and `host_private_ip` are cut out of cloudinit/scripts/bootstrap.sh and run by bash as they are, with
the real curl against the metadata stand-in (tests/session/metadata_standin.py: IMDSv2's token on AWS, the
`Metadata: true` header on Azure, each refused without). `deepracer` and `systemctl` are stand-ins that record their
arguments (no dockerd or systemd is changed here; `deepracer swarm-init` itself is tested against a real swarm in
tests/session/host/test_swarm_init.py).
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from infra.azure_sim_nodes import HOST_PRIVATE_IP as AZURE_HOST_IP
from infra.bootstrap import CLOUDINIT_DIR
from tests.session import metadata_standin
from tests.session.metadata_standin import MetadataStandin

BOOTSTRAP = CLOUDINIT_DIR / "scripts" / "bootstrap.sh"
SESSION_UNITS = Path(__file__).resolve().parents[2] / "session" / "units"
AWS_PRIVATE_IP = "172.31.20.7"


def _function(name: str) -> str:
    match = re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", BOOTSTRAP.read_text(), re.M | re.S)
    assert match, f"{name} not found in {BOOTSTRAP}"
    return match.group(0)


@pytest.fixture()
def imds() -> Iterator[MetadataStandin]:
    standin, stop = metadata_standin.start()
    try:
        yield standin
    finally:
        stop()


def _run(tmp_path: Path, imds_url: str, cloud: str, system_env: str) -> tuple[int, list[str], str]:
    """step_swarm as bootstrap.sh runs it (system.env sourced); returns its exit code, the recorded calls of
    `deepracer` and `systemctl`, and the log."""
    venv_bin, fakes = tmp_path / "venv" / "bin", tmp_path / "fakes"
    for folder in (venv_bin, fakes):
        folder.mkdir(parents=True, exist_ok=True)
    calls, log = tmp_path / "calls.log", tmp_path / "bootstrap.log"
    for path in (venv_bin / "deepracer", fakes / "systemctl"):
        path.write_text(f'#!/bin/sh\necho "{path.name} $*" >>{calls}\n')
        path.chmod(0o755)
    (tmp_path / "system.env").write_text(f"DR_CLOUD={cloud}\n{system_env}")
    script = "\n".join([
        "set -Eeuo pipefail",
        f"VENV={venv_bin.parent}", f"IMDS={imds_url}", f'exec >>"{log}" 2>&1',
        f". {tmp_path / 'system.env'}",
        "log() { echo \"[$(date -u +%FT%TZ)] $*\"; }",
        _function("host_private_ip"), _function("step_swarm"),
        "step_swarm",
    ])
    env = {**os.environ, "PATH": f"{fakes}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    recorded = calls.read_text().splitlines() if calls.exists() else []
    return result.returncode, recorded, log.read_text() if log.exists() else ""


NODES = "DR_SIM_NODES=2\nDR_SIM_NODE_WORKERS=4\n"
ROTATION = "systemctl start --no-block deepracer-swarm-rotate.service"


def test_aws_the_host_inits_the_swarm_at_its_private_ip_and_starts_the_rotation(tmp_path: Path, imds):
    imds.private_ip = AWS_PRIVATE_IP
    code, calls, log = _run(tmp_path, imds.url, "aws", NODES + "DR_SWARM_TOKEN_PARAMETER=/deepracer/aws/t\n")

    assert code == 0, log
    assert calls == [f"deepracer swarm-init --advertise-addr {AWS_PRIVATE_IP}", ROTATION]
    (asked,) = imds.of("GET", "/latest/meta-data/local-ipv4")
    assert asked.headers["x-aws-ec2-metadata-token"] in imds.aws_tokens  # IMDSv2: with a session token


def test_azure_the_host_inits_the_swarm_at_the_nics_fixed_address(tmp_path: Path, imds):
    imds.private_ip = AZURE_HOST_IP  # what the stack gives the host's NIC with nodes (infra/azure.py)
    code, calls, log = _run(tmp_path, imds.url, "azure", NODES + "DR_SWARM_TOKEN_SECRET_URL=https://v/secrets/t\n")

    assert code == 0, log
    assert calls == [f"deepracer swarm-init --advertise-addr {AZURE_HOST_IP}", ROTATION]
    assert imds.of("GET", "/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress")


def test_a_second_run_does_the_same_again(tmp_path: Path, imds):
    """swarm-init makes sure of each part (tested with a real swarm), and starting a running oneshot is a no-op."""
    for _ in range(2):
        code, calls, _ = _run(tmp_path, imds.url, "azure", NODES)
        assert code == 0
    assert calls == [f"deepracer swarm-init --advertise-addr {AZURE_HOST_IP}", ROTATION] * 2


@pytest.mark.parametrize("system_env", ["", "DR_SIM_NODES=0\n"], ids=["unset", "zero"])
def test_without_nodes_the_step_changes_nothing(tmp_path: Path, imds, system_env: str):
    code, calls, log = _run(tmp_path, imds.url, "aws", system_env)

    assert (code, calls, imds.requests) == (0, [], [])
    assert "no simulation nodes" in log


def test_no_address_from_the_metadata_service_fails_the_step_before_the_swarm(tmp_path: Path, imds):
    imds.private_ip = ""
    code, calls, log = _run(tmp_path, imds.url, "aws", NODES)

    assert code != 0 and calls == []
    assert "no private IPv4 address for the swarm" in log


def test_the_swarm_step_runs_after_docker_and_the_package_and_before_the_image_and_doctor():
    steps = BOOTSTRAP.read_text().split("ALL_STEPS=(", 1)[1].split(")", 1)[0].split()
    assert steps.index("session-package") < steps.index("docker") < steps.index("swarm") < \
        steps.index("simapp-image") < steps.index("doctor")


def test_the_rotation_unit_is_shipped_not_enabled_and_outlives_the_nodes_wait():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(SESSION_UNITS / "deepracer-swarm-rotate.service")
    assert unit["Service"]["Type"] == "oneshot" and not unit.has_section("Install")  # started by the step only
    assert unit["Service"]["ExecStart"].split()[1:] == ["swarm-rotate", "--timeout-minutes", "70"]
    assert int(unit["Service"]["TimeoutStartSec"].removesuffix("min")) > 70
