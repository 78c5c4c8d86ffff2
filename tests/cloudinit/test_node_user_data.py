"""A simulation node's user data (cloudinit/node/, infra/sim_nodes.py): cloud-init's schema checker, the files it
writes, shellcheck and systemd-analyze on its scripts and units, and the token's wait in node-cloud.py."""

from __future__ import annotations

import base64
import gzip
import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.bootstrap import EC2_USER_DATA_LIMIT
from infra.sim_nodes import (
    NODE_DIR,
    REPORTER,
    TOKEN_PATTERN,
    NodeConfig,
    aws_node_user_data,
    node_env,
    render_node_user_data,
    token_parameter_name,
)
from tests.cloudinit.test_user_data import files_of, parse_env

AWS_NODE = NodeConfig(cloud="aws", simapp_image="awsdeepracercommunity/deepracer-simapp:6.0.4-gpu",
                      manager_address="10.42.1.10", workers=4, status_url="s3://deepracer-aws-0123abcd/hosts/",
                      region="eu-west-1", token_parameter=token_parameter_name("aws"))
AZURE_NODE = NodeConfig(cloud="azure", simapp_image="awsdeepracercommunity/deepracer-simapp:6.0.4-gpu",
                        manager_address="10.42.1.4", workers=4,
                        status_url="https://deepracerk3x9p2m7q4z8.blob.core.windows.net/node-status/hosts/",
                        token_secret_url="https://drswarmv7q2m9k4x1z3.vault.azure.net/secrets/swarm-worker-join-token")
SCRIPTS = sorted((NODE_DIR / "scripts").iterdir())
UNITS = sorted((NODE_DIR / "units").iterdir())
FAKE_TOKEN = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"


@pytest.mark.parametrize("node", [AWS_NODE, AZURE_NODE], ids=["aws", "azure"])
def test_cloud_init_schema_checker_accepts_the_node_user_data(node: NodeConfig, tmp_path: Path):
    path = tmp_path / "user-data"
    path.write_text(render_node_user_data(node))
    result = subprocess.run(["cloud-init", "schema", "-c", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def test_schema_checker_would_catch_a_type_error_in_it(tmp_path: Path):
    broken = yaml.safe_load(render_node_user_data(AWS_NODE))
    broken["runcmd"] = "node-bootstrap.sh"
    broken["package_upgrade"] = "sometimes"
    path = tmp_path / "user-data"
    path.write_text("#cloud-config\n" + yaml.safe_dump(broken))
    assert subprocess.run(["cloud-init", "schema", "-c", str(path)], capture_output=True).returncode != 0


def test_node_user_data_fits_ec2_and_unpacks_as_cloud_init_does():
    packed = base64.b64decode(aws_node_user_data(AWS_NODE))
    assert packed[:2] == b"\x1f\x8b" and len(packed) < EC2_USER_DATA_LIMIT * 0.85
    assert gzip.decompress(packed).decode() == render_node_user_data(AWS_NODE)


@pytest.mark.parametrize("node", [AWS_NODE, AZURE_NODE], ids=["aws", "azure"])
def test_node_gets_the_managers_address_and_the_tokens_place_never_a_token(node: NodeConfig):
    user_data = render_node_user_data(node)
    files = files_of(user_data)
    values = parse_env(files["/etc/deepracer/node.env"]["content"])
    assert values["DR_SWARM_MANAGER"] == node.manager_address
    assert values["DR_SIMAPP_IMAGE"] == "awsdeepracercommunity/deepracer-simapp:6.0.4-gpu"  # the host's image
    assert values["DR_NODE_WORKERS"] == "4"
    place = ("DR_SWARM_TOKEN_PARAMETER", "/deepracer/aws/swarm-worker-join-token") if node.cloud == "aws" else (
        "DR_SWARM_TOKEN_SECRET_URL", node.token_secret_url)
    assert values[place[0]] == place[1]
    assert not TOKEN_PATTERN.search(user_data)
    assert parse_env(files["/etc/deepracer/bootstrap.env"]["content"])["DR_STATUS_URL"] == node.status_url


def test_a_token_in_a_node_user_data_is_refused(monkeypatch):
    """The guard can fail: a token that reached the rendering (here through the image name) stops it."""
    with pytest.raises(ValueError, match="swarm join token"):
        render_node_user_data(NodeConfig(**{**AWS_NODE.__dict__, "status_url": f"s3://b/{FAKE_TOKEN}/"}))


def test_scripts_units_and_the_hosts_reporter_arrive_byte_identical():
    files = files_of(render_node_user_data(AWS_NODE))
    for script in [*SCRIPTS, REPORTER]:
        entry = files[f"/opt/deepracer/bin/{script.name}"]
        assert entry["content"] == script.read_text() and entry["permissions"] == "0755"
    for unit in UNITS:
        assert files[f"/etc/systemd/system/{unit.name}"]["content"] == unit.read_text()
    config = yaml.safe_load(render_node_user_data(AWS_NODE))
    assert ["/opt/deepracer/bin/node-bootstrap.sh"] in config["runcmd"]
    assert set(config) <= {"package_update", "package_upgrade", "runcmd", "write_files", "final_message"}


@pytest.mark.parametrize("field, value, message", [
    ("manager_address", "host.internal", "manager_address: expected an IPv4 address"),
    ("workers", 0, "workers: expected at least 1"),
    ("token_parameter", None, "DR_SWARM_TOKEN_PARAMETER"),
    ("simapp_image", "repo:tag$(reboot)", "DR_SIMAPP_IMAGE: expected letters"),
])
def test_bad_node_values_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message.replace("$", r"\$").replace("(", r"\(")):
        node_env(NodeConfig(**{**AWS_NODE.__dict__, field: value}))


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s.suffix == ".sh"], ids=lambda s: s.name)
def test_node_shell_scripts_pass_shellcheck(script: Path):
    result = subprocess.run(["shellcheck", "-x", "--severity=style", "--shell=bash", str(script)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_node_units_pass_systemd_analyze_verify(unit: Path, tmp_path: Path):
    for script in SCRIPTS:
        shutil.copy2(script, tmp_path / script.name)
    for other in UNITS:  # the timer needs its service beside it
        (tmp_path / other.name).write_text(other.read_text().replace("/opt/deepracer/bin/", f"{tmp_path}/"))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / unit.name)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_the_bootstrap_never_traces_or_echoes_the_token():
    text = (NODE_DIR / "scripts" / "node-bootstrap.sh").read_text()
    assert "set -x" not in text and "xtrace" not in text
    lines = [line for line in text.splitlines() if "$token" in line or "${token" in line]
    assert lines and all("echo" not in line and "log " not in line for line in lines), lines


# -- node-cloud.py: waits for the host's token, and never says it -------------------------------------------------

def _node_cloud():
    spec = importlib.util.spec_from_file_location("node_cloud", NODE_DIR / "scripts" / "node-cloud.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_token_waits_through_the_placeholder_and_errors(capsys):
    node_cloud = _node_cloud()
    answers = iter([RuntimeError("403"), "none", "none\n", FAKE_TOKEN + "\n"])

    def read(env):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    clock = _Clock()
    assert node_cloud.wait_token({}, 10, read=read, sleep=clock.sleep, clock=clock) == FAKE_TOKEN
    assert FAKE_TOKEN not in capsys.readouterr().err


def test_wait_token_gives_up_without_naming_the_value(capsys):
    node_cloud = _node_cloud()
    clock = _Clock()
    with pytest.raises(SystemExit) as raised:
        node_cloud.wait_token({}, 1, read=lambda env: "SWMTKN-1-not a token", sleep=clock.sleep, clock=clock)
    assert "no swarm token from the host after 1 min" in str(raised.value)
    assert "SWMTKN" not in str(raised.value) + capsys.readouterr().err


def test_python_scripts_compile():
    for script in SCRIPTS:
        if script.suffix == ".py":
            compile(script.read_text(), str(script), "exec")
