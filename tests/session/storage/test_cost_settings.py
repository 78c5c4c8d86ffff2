"""The stack's cost settings as the host reads them (session.storage.cost_settings): the object the Pulumi program
writes (infra/aws.py, infra/azure.py, from session.core.pricing.cost_settings_text), read from a real S3 API (moto's
server) and from Azurite."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import boto3
import pytest

from session.core.pricing import COST_SETTINGS_KEY, cost_settings_text
from session.storage.blob import BlobStore
from session.storage.cost_settings import parse_cost_settings, read_monthly_budget
from session.storage.s3 import Storage, StorageError
from tests.azure_fakes import ACCOUNT, azure_cert, azurite  # noqa: F401 - fixtures

DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="  # Azurite's own


def test_the_budget_is_what_the_stack_wrote():
    assert parse_cost_settings(cost_settings_text(75.0).encode()) == 75.0
    assert parse_cost_settings(cost_settings_text(None).encode()) is None
    assert parse_cost_settings(b'{"monthlyBudgetUsd": 60}') == 60.0


@pytest.mark.parametrize("data, says", [
    (b"not json", "bootstrap/cost.json: expected {\"monthlyBudgetUsd\": a number or null}, got b'not json'"),
    (b'{"budget": 5}', "bootstrap/cost.json: expected {\"monthlyBudgetUsd\": a number or null}, got "
                       "b'{\"budget\": 5}'"),
    (b'{"monthlyBudgetUsd": "75"}', "bootstrap/cost.json: monthlyBudgetUsd: expected a positive number, got '75'"),
    (b'{"monthlyBudgetUsd": -1}', "bootstrap/cost.json: monthlyBudgetUsd: expected a positive number, got -1"),
])
def test_anything_else_is_one_line_naming_the_object(data: bytes, says: str):
    with pytest.raises(StorageError) as raised:
        parse_cost_settings(data)
    assert str(raised.value) == says


def test_aws_reads_it_from_the_working_bucket_and_an_older_stack_has_none(s3_server: str):
    bucket = f"deepracer-cost-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    storage = Storage(bucket, endpoint_url=s3_server)
    aws = SimpleNamespace(cloud="aws")
    assert read_monthly_budget(aws, lambda: storage) is None  # no object: a stack from before the cost card
    storage.put_text(COST_SETTINGS_KEY, cost_settings_text(42.5), "application/json")
    assert read_monthly_budget(aws, lambda: storage) == 42.5


def test_a_local_machine_has_no_budget_and_reads_nothing():
    def no_storage():
        raise AssertionError("a local machine has no stack to read a budget from")

    assert read_monthly_budget(SimpleNamespace(cloud="local"), no_storage, no_storage) is None


def test_azure_reads_it_from_the_blob_container(azurite):
    container = azurite.new_container()
    try:
        store = BlobStore(azurite.url, container.container_name, {"account_name": ACCOUNT, "account_key": DEV_KEY},
                          connection_verify=str(azurite.cert), max_attempts=1)
        azure = SimpleNamespace(cloud="azure")
        assert read_monthly_budget(azure, lambda: None, lambda: store) is None
        container.upload_blob(COST_SETTINGS_KEY, cost_settings_text(60.0).encode())
        assert read_monthly_budget(azure, lambda: None, lambda: store) == 60.0
    finally:
        container.delete_container()
