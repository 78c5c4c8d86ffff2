"""Simulation nodes (docs/multi-node.md), the part both clouds share (pure: values in, values out).

A node is a CPU machine in the host's network that joins the host's Docker Swarm as a worker and runs only
simulation workers. The contract with the host:

- The host (the swarm's manager) runs `docker swarm init --advertise-addr <its private address>` and writes the
  worker join token to the stack's one token secret: an SSM SecureString parameter on AWS
  (`token_parameter_name`), a Key Vault secret on Azure (`TOKEN_SECRET_NAME`). The stack creates that secret
  holding `TOKEN_PLACEHOLDER`, never a token, and never reads it back; the host may write it, the nodes may read
  it, nobody else is granted anything on it.
- A node learns the manager's address from its user data (an address is not a secret), waits until the secret
  holds a token, joins, and reports ready in the status store as the host does (`hosts/<id>/bootstrap.json`).
- Once every node has joined, the host rotates the worker token (`docker swarm join-token --rotate worker`) and
  writes the new one to the secret: the token a node read at first boot then admits nobody.
"""

from __future__ import annotations

import base64
import gzip
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import yaml

from infra.bootstrap import (
    AZURE_CUSTOM_DATA_LIMIT,
    BOOTSTRAP_ENV_PATH,
    CLOUDINIT_DIR,
    EC2_USER_DATA_LIMIT,
    HOST_BIN,
    UNIT_DIR,
    _env_file,
    _file,
    _LiteralDumper,
    _packed_file,
)

NODE_DIR = CLOUDINIT_DIR / "node"
NODE_ENV_PATH = "/etc/deepracer/node.env"
# The host's reporter, shipped unchanged: a node reports ready/failed exactly as the host does.
REPORTER = CLOUDINIT_DIR / "scripts" / "host-storage.py"

# Docker Swarm: cluster management, node gossip (both protocols), the overlay network's VXLAN.
SWARM_PORTS: tuple[tuple[int, str], ...] = ((2377, "tcp"), (7946, "tcp"), (7946, "udp"), (4789, "udp"))
# What the stack writes into the token secret: not a token (node-cloud.py waits while it sees this).
TOKEN_PLACEHOLDER = "none"
TOKEN_SECRET_NAME = "swarm-worker-join-token"
# A swarm join token: what must never appear in user data, outputs or the stack's state.
TOKEN_PATTERN = re.compile(r"SWMTKN-1-[0-9A-Za-z]+-[0-9A-Za-z]+")
# How long a node's first boot waits for the host to publish the token: the host's own first boot comes first.
TOKEN_WAIT_MINUTES = 60
# A node stops itself after its manager's swarm port has not answered for this many minutes in a row.
STOP_AFTER_MINUTES = 10
NODE_USER = "ubuntu"


def token_key_alias(stack: str) -> str:
    """AWS: the alias of the customer-managed KMS key that encrypts the token parameter (the host names it when it
    writes: a SecureString overwritten without a key id goes back to the account's aws/ssm key)."""
    return f"alias/deepracer-{stack}-swarm-token"


def token_parameter_name(stack: str) -> str:
    """AWS: the SSM parameter that carries the worker join token."""
    return f"/deepracer/{stack}/{TOKEN_SECRET_NAME}"


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node's first boot needs; the token is deliberately not one of them."""

    cloud: Literal["aws", "azure"]
    simapp_image: str  # the host's image and tag
    manager_address: str  # the host's private IPv4 address
    workers: int  # simulation workers this node carries (an engine label the manager reads)
    status_url: str  # s3://<bucket>/hosts/ or https://<account>.blob.core.windows.net/<container>/hosts/
    region: str = ""  # AWS
    token_parameter: Optional[str] = None  # AWS: the SSM parameter's name
    token_secret_url: Optional[str] = None  # Azure: https://<vault>.vault.azure.net/secrets/<name>


def node_env(node: NodeConfig) -> str:
    if not re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", node.manager_address):
        raise ValueError(f"manager_address: expected an IPv4 address, got {node.manager_address!r}")
    if node.workers < 1:
        raise ValueError(f"workers: expected at least 1, got {node.workers}")
    values = {"DR_CLOUD": node.cloud, "DR_SIMAPP_IMAGE": node.simapp_image, "DR_SWARM_MANAGER": node.manager_address,
              "DR_NODE_WORKERS": str(node.workers), "DR_TOKEN_WAIT_MINUTES": str(TOKEN_WAIT_MINUTES),
              "DR_NODE_STOP_AFTER_MINUTES": str(STOP_AFTER_MINUTES)}
    if node.cloud == "aws":
        if not node.token_parameter:
            raise ValueError("DR_SWARM_TOKEN_PARAMETER: expected the SSM parameter's name for an AWS node")
        values.update(DR_AWS_APP_REGION=node.region, DR_SWARM_TOKEN_PARAMETER=node.token_parameter)
    else:
        if not node.token_secret_url:
            raise ValueError("DR_SWARM_TOKEN_SECRET_URL: expected the Key Vault secret's URL for an Azure node")
        values["DR_SWARM_TOKEN_SECRET_URL"] = node.token_secret_url
    return _env_file("# Written by cloud-init from the Pulumi stack (docs/multi-node.md).\n", values)


def _bootstrap_env(node: NodeConfig) -> str:
    values = {"DR_AWS_APP_REGION": node.region} if node.cloud == "aws" else {}
    values.update(DR_STATUS_URL=node.status_url, DR_HOST_USER=NODE_USER)
    return _env_file("# Read by host-storage.py, which reports this node's first boot.\n", values)


def _sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "#")))


def node_cloud_config(node: NodeConfig) -> dict:
    config = yaml.safe_load((NODE_DIR / "cloud-config.yaml").read_text())
    files = [_file(NODE_ENV_PATH, node_env(node), "0644"), _file(BOOTSTRAP_ENV_PATH, _bootstrap_env(node), "0644")]
    for script in [*_sources(NODE_DIR / "scripts"), REPORTER]:
        files.append(_packed_file(f"{HOST_BIN}/{script.name}", script.read_text(), "0755"))
    for unit in _sources(NODE_DIR / "units"):
        files.append(_packed_file(f"{UNIT_DIR}/{unit.name}", unit.read_text(), "0644"))
    config["write_files"] = files
    return config


def render_node_user_data(node: NodeConfig) -> str:
    user_data = "#cloud-config\n" + yaml.dump(node_cloud_config(node), Dumper=_LiteralDumper, sort_keys=False,
                                              width=120)
    if TOKEN_PATTERN.search(user_data):  # the join token travels through the secret only
        raise ValueError("a swarm join token in a node's user data")
    return user_data


def aws_node_user_data(node: NodeConfig) -> str:
    """Gzipped and base64-encoded, as the host's (EC2 takes 16 KB before base64)."""
    packed = gzip.compress(render_node_user_data(node).encode(), mtime=0)
    if len(packed) > EC2_USER_DATA_LIMIT:
        raise ValueError(f"node user data is {len(packed)} bytes gzipped; EC2 accepts at most {EC2_USER_DATA_LIMIT}")
    return base64.b64encode(packed).decode()


def azure_node_custom_data(node: NodeConfig) -> str:
    user_data = render_node_user_data(node)
    if len(user_data.encode()) > AZURE_CUSTOM_DATA_LIMIT:
        raise ValueError(f"node custom data is {len(user_data.encode())} bytes; Azure accepts at most "
                         f"{AZURE_CUSTOM_DATA_LIMIT}")
    return base64.b64encode(user_data.encode()).decode()
