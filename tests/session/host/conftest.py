"""Fixtures of the host package's tests: SSM as the stack leaves it for the swarm's join token."""

from __future__ import annotations

from typing import Iterator

import boto3
import pytest

PARAMETER = "/deepracer/aws/swarm-worker-join-token"
KEY_ALIAS = "alias/deepracer-aws-swarm-token"
REGION = "eu-west-1"


@pytest.fixture()
def ssm(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """moto's SSM and KMS over HTTP (tests/conftest.py `s3_server`) as the stack leaves them (infra/aws_sim_nodes.py):
    the parameter holds the placeholder, encrypted with the stack's own key (its alias: KEY_ALIAS); boto3 finds the
    server through AWS_ENDPOINT_URL, as the host's code runs."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    kms = boto3.client("kms", region_name=REGION)
    key = kms.create_key(Description="the swarm token's key")["KeyMetadata"]
    kms.create_alias(AliasName=KEY_ALIAS, TargetKeyId=key["KeyId"])
    client = boto3.client("ssm", region_name=REGION)
    client.put_parameter(Name=PARAMETER, Type="SecureString", Value="none", KeyId=key["Arn"], Overwrite=True)
    yield client
    client.delete_parameter(Name=PARAMETER)
    kms.delete_alias(AliasName=KEY_ALIAS)
