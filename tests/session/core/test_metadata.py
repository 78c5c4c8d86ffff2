"""`this_machine`: what the metadata service says this machine is, asked of the clouds' stand-in
(tests/session/metadata_standin.py; no cloud is asked)."""

from __future__ import annotations

from typing import Iterator

import pytest

from session.core.metadata import Machine, NoticeError, this_machine
from tests.session import metadata_standin
from tests.session.metadata_standin import MetadataStandin


@pytest.fixture()
def metadata() -> Iterator[MetadataStandin]:
    standin, stop = metadata_standin.start()
    try:
        yield standin
    finally:
        stop()


def test_aws_names_its_instance_type_and_life_cycle_with_an_imdsv2_token(metadata: MetadataStandin):
    assert this_machine("aws", imds=metadata.url) == Machine("aws", "g4dn.2xlarge", True)
    metadata.aws_instance_type, metadata.aws_life_cycle = "g5.xlarge", "on-demand"
    assert this_machine("aws", imds=metadata.url) == Machine("aws", "g5.xlarge", False)
    assert all("x-aws-ec2-metadata-token" in r.headers for r in metadata.of("GET", "/latest/meta-data/instance-type"))


def test_azure_names_its_vm_size_and_priority(metadata: MetadataStandin):
    assert this_machine("azure", imds=metadata.url) == Machine("azure", "Standard_NC8as_T4_v3", True)
    metadata.azure_priority = "Regular"
    assert this_machine("azure", imds=metadata.url) == Machine("azure", "Standard_NC8as_T4_v3", False)


def test_a_local_machine_asks_nobody(metadata: MetadataStandin):
    assert this_machine("local", imds=metadata.url) is None
    assert metadata.requests == []


def test_an_unreachable_service_is_one_line():
    with pytest.raises(NoticeError, match=r"^cannot reach http://127\.0\.0\.1:9/latest/api/token: "):
        this_machine("aws", imds="http://127.0.0.1:9", timeout=0.5)
