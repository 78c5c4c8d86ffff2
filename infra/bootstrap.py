"""Renders cloudinit/ into the user data of one host (pure: values in, text out)."""

from __future__ import annotations

import base64
import gzip
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import yaml

CLOUDINIT_DIR = Path(__file__).resolve().parent.parent / "cloudinit"
HOST_BIN = "/opt/deepracer/bin"
SYSTEM_ENV_PATH = "/etc/deepracer/system.env"
BOOTSTRAP_ENV_PATH = "/etc/deepracer/bootstrap.env"
UNIT_DIR = "/etc/systemd/system"
EC2_USER_DATA_LIMIT = 16 * 1024  # bytes, before base64

# Values end up in files that bash sources, so they must be single shell words.
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._:/@+=,-]*$")


@dataclass(frozen=True)
class HostConfig:
    """Everything the first boot needs to know about its environment."""

    cloud: Literal["aws", "azure"]
    region: str
    bucket: str  # the working bucket (AWS) / storage container (Azure)
    simapp_image: str  # image with tag, e.g. awsdeepracercommunity/deepracer-simapp:6.0.4-gpu
    workers: int
    # The session package built from the deployer's checkout. A fixed key (not a content hash) so that a
    # code change re-uploads the object without changing user data, which would stop or replace the VM.
    session_package_url: str  # s3://<bucket>/bootstrap/session.tar.gz
    status_url: str  # s3://<bucket>/hosts/ ; the host writes <status_url><instance-id>/bootstrap.json
    upload_bucket: Optional[str] = None
    host_user: str = "ubuntu"  # the login user that owns ~/deepracer (the AMI's default user on AWS)


def _env_file(header: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        if not _SAFE_VALUE.match(value):
            raise ValueError(f"{key}: expected letters, digits and ._:/@+=,- only, got {value!r}")
    return header + "".join(f"{key}={value}\n" for key, value in values.items())


def system_env(host: HostConfig) -> str:
    """`/etc/deepracer/system.env` with DRfC's variable names, so DRfC habits and files carry over."""
    source, _, version = host.simapp_image.rpartition(":")
    if not source or "/" in version:
        raise ValueError(f"simapp_image: expected <repository>:<tag>, got {host.simapp_image!r}")
    if host.workers < 1:
        raise ValueError(f"workers: expected at least 1, got {host.workers}")
    return _env_file(
        "# Written by cloud-init from the Pulumi stack; change the stack, not this file.\n",
        {
            "DR_CLOUD": host.cloud,
            "DR_AWS_APP_REGION": host.region,
            "DR_LOCAL_S3_BUCKET": host.bucket,
            "DR_UPLOAD_S3_BUCKET": host.upload_bucket or "not-defined",
            "DR_SIMAPP_SOURCE": source,
            "DR_SIMAPP_VERSION": version,
            "DR_WORKERS": str(host.workers),
        })


def bootstrap_env(host: HostConfig) -> str:
    """What only the bootstrap needs: where the package comes from and where the state goes."""
    return _env_file(
        "# Read by /opt/deepracer/bin/bootstrap.sh and host-storage.py.\n",
        {
            "DR_AWS_APP_REGION": host.region,
            "DR_SESSION_PACKAGE_URL": host.session_package_url,
            "DR_STATUS_URL": host.status_url,
            "DR_HOST_USER": host.host_user,
        })


def _file(path: str, content: str, permissions: str) -> dict:
    return {"path": path, "content": content, "owner": "root:root", "permissions": permissions}


def _packed_file(path: str, content: str, permissions: str) -> dict:
    """Scripts travel gzipped: EC2 takes 16 KB of user data and they are most of it. mtime=0 keeps the
    rendering deterministic, so an unchanged checkout renders byte-identical user data."""
    packed = base64.b64encode(gzip.compress(content.encode(), mtime=0)).decode()
    return {**_file(path, packed, permissions), "encoding": "gz+b64"}


def _sources(directory: Path) -> list[Path]:
    """The files to ship from a cloudinit/ folder; caches and editor files stay behind."""
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith((".", "#")))


def cloud_config(host: HostConfig, cloudinit_dir: Path = CLOUDINIT_DIR) -> dict:
    """The cloud-config as a dict: the static template plus this host's files."""
    config = yaml.safe_load((cloudinit_dir / "cloud-config.yaml").read_text())
    files = [
        _file(SYSTEM_ENV_PATH, system_env(host), "0644"),
        _file(BOOTSTRAP_ENV_PATH, bootstrap_env(host), "0644"),
    ]
    for script in _sources(cloudinit_dir / "scripts"):
        files.append(_packed_file(f"{HOST_BIN}/{script.name}", script.read_text(), "0755"))
    for unit in _sources(cloudinit_dir / "units"):
        files.append(_packed_file(f"{UNIT_DIR}/{unit.name}", unit.read_text(), "0644"))
    config["write_files"] = files
    return config


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so the user data on the host reads like the files in cloudinit/."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _represent_str)


def render_user_data(host: HostConfig) -> str:
    body = yaml.dump(cloud_config(host), Dumper=_LiteralDumper, sort_keys=False, width=120)
    user_data = "#cloud-config\n" + body
    size = len(user_data.encode())
    if host.cloud == "aws" and size > EC2_USER_DATA_LIMIT:
        raise ValueError(f"user data is {size} bytes; EC2 accepts at most {EC2_USER_DATA_LIMIT}")
    return user_data
