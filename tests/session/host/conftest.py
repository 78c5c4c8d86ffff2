"""Fixtures of the host package's tests: SSM as the stack leaves it for the swarm's join token."""

from __future__ import annotations

from typing import Iterator

import boto3
import pytest

PARAMETER = "/deepracer/aws/swarm-worker-join-token"
REGION = "eu-west-1"


@pytest.fixture()
def ssm(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """moto's SSM over HTTP (tests/conftest.py `s3_server`), the parameter holding the stack's placeholder
    (infra/aws_sim_nodes.py); boto3 finds the server through AWS_ENDPOINT_URL, as the host's code runs."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    client = boto3.client("ssm", region_name=REGION)
    client.put_parameter(Name=PARAMETER, Type="SecureString", Value="none", Overwrite=True)
    yield client
    client.delete_parameter(Name=PARAMETER)
