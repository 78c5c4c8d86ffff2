"""Renders cloudinit/ into the user data of one host (pure: values in, text out)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional


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


def render_user_data(host: HostConfig) -> str:
    raise NotImplementedError
