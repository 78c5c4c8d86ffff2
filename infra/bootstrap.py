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
# Azure decodes customData (base64) to a binary array of at most 65535 bytes: the limit is on our text.
AZURE_CUSTOM_DATA_LIMIT = 65535

# Values end up in files that bash sources, so they must be single shell words.
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._:/@+=,-]*$")


@dataclass(frozen=True)
class HostConfig:
    """Everything the first boot needs to know about its environment."""

    cloud: Literal["aws", "azure", "local"]  # local: your own machine (infra/local_prepare.py), MinIO as on Azure
    region: str
    bucket: str  # the working bucket (AWS) / MinIO's bucket, named like the blob container (Azure)
    simapp_image: str  # image with tag, e.g. awsdeepracercommunity/deepracer-simapp:6.0.4-gpu
    workers: int
    # The session package built from the deployer's checkout. A fixed key (not a content hash) so that a
    # code change re-uploads the object without changing user data, which would stop or replace the VM.
    # s3://<bucket>/bootstrap/session.tar.gz, or https://<account>.blob.core.windows.net/<container>/bootstrap/...
    session_package_url: str
    # s3://<bucket>/hosts/ or https://.../<container>/hosts/; the host writes <status_url><instance-id>/bootstrap.json
    status_url: str
    upload_bucket: Optional[str] = None
    host_user: str = "ubuntu"  # the login user that owns ~/deepracer (the AMI's default user on AWS)
    # Azure: the simulator speaks S3, so the host runs MinIO with these credentials (a Pulumi secret), and the
    # models are synced to this storage account's blob container with the VM's managed identity.
    minio_access_key: Optional[str] = None
    minio_secret_key: Optional[str] = None
    azure_storage_account: Optional[str] = None
    azure_blob_container: Optional[str] = None
    # Local: an optional copy of the models beyond the machine (session.storage.keeper): s3://<bucket> or
    # https://<account>.blob.core.windows.net/<container>, and the AWS profile that reaches a bucket.
    model_copy_url: Optional[str] = None
    model_copy_profile: Optional[str] = None
    # Cost controls the host enforces itself (session/lifecycle/idle.py, session/lifecycle/limits.py): minutes
    # without training before it powers off (0: never), and whether a training time limit powers it off too.
    idle_stop_minutes: int = 30
    power_off_after_max_minutes: bool = False
    dashboard: bool = False  # the first boot enables deepracer-dashboard.service (stack setting `dashboard`)
    # AWS: the SNS topic the host publishes its notifications to (sns:Publish on this topic only); None: none.
    notify_topic_arn: Optional[str] = None
    # Simulation nodes that join this host's swarm (docs/multi-node.md); 0: none, and system.env says nothing.
    sim_nodes: int = 0
    sim_node_workers: int = 0  # workers each node carries
    swarm_token_parameter: Optional[str] = None  # AWS: the SSM parameter the host writes the worker token to
    swarm_token_key: Optional[str] = None  # AWS: the KMS key (its alias) the host encrypts the token with
    swarm_token_secret_url: Optional[str] = None  # Azure: the Key Vault secret the host writes it to


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
    if host.idle_stop_minutes < 0:
        raise ValueError(f"idle_stop_minutes: expected 0 or more, got {host.idle_stop_minutes}")
    values = {
        "DR_CLOUD": host.cloud,
        "DR_AWS_APP_REGION": host.region,
        "DR_LOCAL_S3_BUCKET": host.bucket,
        "DR_UPLOAD_S3_BUCKET": host.upload_bucket or "not-defined",
        "DR_SIMAPP_SOURCE": source,
        "DR_SIMAPP_VERSION": version,
        "DR_WORKERS": str(host.workers),
        # Not DRfC's: this project's cost controls, in the spelling session/core/config.py reads.
        "DR_IDLE_STOP_MINUTES": str(host.idle_stop_minutes),
        "DR_POWER_OFF_AFTER_MAX_MINUTES": str(host.power_off_after_max_minutes),
    }
    if host.notify_topic_arn:
        values["DR_NOTIFY_TOPIC_ARN"] = host.notify_topic_arn
    if host.dashboard:
        values["DR_DASHBOARD_AT_BOOT"] = "True"
    if host.sim_nodes:
        values.update(_swarm_values(host))
    if host.cloud == "local":
        local = {"DR_LOCAL_ACCESS_KEY_ID": host.minio_access_key, "DR_LOCAL_SECRET_ACCESS_KEY": host.minio_secret_key}
        for key, value in local.items():
            if not value:
                raise ValueError(f"{key}: expected a value for a local host (MinIO's key), got none")
        values.update(local)  # type: ignore[arg-type]
        if host.model_copy_url:
            values["DR_MODEL_COPY_URL"] = host.model_copy_url
        if host.model_copy_profile:
            values["DR_MODEL_COPY_PROFILE"] = host.model_copy_profile
    if host.cloud == "azure":
        azure = {
            # MinIO on the host (session/storage/minio.py starts it with these; DRfC's names).
            "DR_LOCAL_ACCESS_KEY_ID": host.minio_access_key,
            "DR_LOCAL_SECRET_ACCESS_KEY": host.minio_secret_key,
            # Where MinIO's models are kept across VMs (the session's sync; the managed identity may write there).
            "DR_AZURE_STORAGE_ACCOUNT": host.azure_storage_account,
            "DR_AZURE_BLOB_CONTAINER": host.azure_blob_container,
        }
        for key, value in azure.items():
            if not value:
                raise ValueError(f"{key}: expected a value for an Azure host, got none")
        values.update(azure)  # type: ignore[arg-type]
    header = ("# Written by infra/local_prepare.py on this machine; run it again (or edit this) to change it.\n"
              if host.cloud == "local" else
              "# Written by cloud-init from the Pulumi stack; change the stack, not this file.\n")
    return _env_file(header, values)


def _swarm_values(host: HostConfig) -> dict[str, str]:
    """The host's side of the swarm contract (docs/multi-node.md): how many nodes to expect, and where to write the
    worker join token (its place, never a token)."""
    if host.sim_node_workers < 1:
        raise ValueError(f"sim_node_workers: expected at least 1 with sim_nodes, got {host.sim_node_workers}")
    place = ({"DR_SWARM_TOKEN_PARAMETER": host.swarm_token_parameter, "DR_SWARM_TOKEN_KEY_ID": host.swarm_token_key}
             if host.cloud == "aws" else {"DR_SWARM_TOKEN_SECRET_URL": host.swarm_token_secret_url})
    for key, value in place.items():
        if not value:
            raise ValueError(f"{key}: expected the token secret's place with sim_nodes, got none")
    return {"DR_SIM_NODES": str(host.sim_nodes), "DR_SIM_NODE_WORKERS": str(host.sim_node_workers),
            **place}  # type: ignore[dict-item]


def bootstrap_env(host: HostConfig) -> str:
    """What only the bootstrap needs: where the package comes from and where the state goes."""
    values = {"DR_AWS_APP_REGION": host.region} if host.cloud == "aws" else {}
    values.update({
        "DR_SESSION_PACKAGE_URL": host.session_package_url,
        "DR_STATUS_URL": host.status_url,
        "DR_HOST_USER": host.host_user,
    })
    return _env_file("# Read by /opt/deepracer/bin/bootstrap.sh, host-storage.py and the scratch unit.\n", values)


def _file(path: str, content: str, permissions: str) -> dict:
    return {"path": path, "content": content, "owner": "root:root", "permissions": permissions}


def _system_env_file(host: HostConfig) -> dict:
    if host.cloud == "aws":
        return _file(SYSTEM_ENV_PATH, system_env(host), "0644")  # no secret in it: the bucket goes by the role
    if host.cloud == "local":  # the user exists already: no deferring
        return {**_file(SYSTEM_ENV_PATH, system_env(host), "0640"), "owner": f"root:{host.host_user}"}
    # MinIO's secret is in it: root and the session's user only. The login user is created by cloud-init's
    # users module, after write_files, so the file is written in the final stage (defer), before runcmd.
    return {**_file(SYSTEM_ENV_PATH, system_env(host), "0640"), "owner": f"root:{host.host_user}", "defer": True}


def _packed_file(path: str, content: str, permissions: str) -> dict:
    """Scripts travel gzipped: EC2 takes 16 KB of user data and they are most of it. mtime=0 keeps the
    rendering deterministic, so an unchanged checkout renders byte-identical user data."""
    packed = base64.b64encode(gzip.compress(content.encode(), mtime=0)).decode()
    return {**_file(path, packed, permissions), "encoding": "gz+b64"}


# Your own machine is plain Ubuntu, as Azure's image is: it takes Azure's scripts (the NVIDIA driver installer),
# not its units (Azure's boot unit re-runs the bootstrap after a deallocation; a machine of yours is not deallocated).
_SCRIPT_FOLDERS = {"aws": "aws", "azure": "azure", "local": "azure"}


def _sources(directory: Path, folder: str) -> list[Path]:
    """The files to ship from a cloudinit/ folder and its subfolder `folder` (what only that cloud needs, such as
    Azure's driver installer: EC2's 16 KB of user data has no room for it); caches and editor files stay
    behind."""
    folders = [directory, directory / folder]
    return sorted((p for folder in folders if folder.is_dir() for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith((".", "#"))), key=lambda p: p.name)


def cloud_config(host: HostConfig, cloudinit_dir: Path = CLOUDINIT_DIR) -> dict:
    """The cloud-config as a dict: the static template plus this host's files."""
    config = yaml.safe_load((cloudinit_dir / "cloud-config.yaml").read_text())
    files = [_system_env_file(host), _file(BOOTSTRAP_ENV_PATH, bootstrap_env(host), "0644")]
    for script in _sources(cloudinit_dir / "scripts", _SCRIPT_FOLDERS[host.cloud]):
        files.append(_packed_file(f"{HOST_BIN}/{script.name}", script.read_text(), "0755"))
    for unit in _sources(cloudinit_dir / "units", host.cloud):
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
    if host.cloud == "azure" and size > AZURE_CUSTOM_DATA_LIMIT:
        raise ValueError(f"custom data is {size} bytes; Azure accepts at most {AZURE_CUSTOM_DATA_LIMIT}")
    return user_data


def aws_user_data(host: HostConfig) -> str:
    """The instance's user data, gzipped and base64-encoded (pulumi-aws' `user_data_base64`). EC2 takes 16 KB
    before base64 and the plain cloud-config has outgrown it; cloud-init recognises gzip and unpacks it itself.
    mtime=0 keeps it byte-identical for an unchanged checkout."""
    packed = gzip.compress(render_user_data(host).encode(), mtime=0)
    if len(packed) > EC2_USER_DATA_LIMIT:
        raise ValueError(f"user data is {len(packed)} bytes gzipped; EC2 accepts at most {EC2_USER_DATA_LIMIT}")
    return base64.b64encode(packed).decode()


def azure_custom_data(host: HostConfig) -> str:
    """The VM's customData: the rendered cloud-config, base64-encoded as the Azure API takes it."""
    return base64.b64encode(render_user_data(host).encode()).decode()
