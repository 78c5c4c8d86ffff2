"""Stack settings: the stack file's defaults load, and every bad value fails with one line naming it."""

from __future__ import annotations

import pytest

from infra.settings import SettingsError, load_aws, workers_for_vcpus
from tests.infra.mocked_program import stack_file_config


def load(overrides=None):
    config = stack_file_config()
    config.update(overrides or {})
    return load_aws("aws", config.get)


def test_stack_file_defaults():
    s = load()
    assert (s.region, s.instance_type, s.market, s.root_volume_gb) == ("us-east-1", "g4dn.2xlarge", "on-demand", 150)
    assert s.simapp == "awsdeepracercommunity/deepracer-simapp:6.0.4-gpu"
    assert s.workers is None and s.ssh_public_key is None and s.ssh_allowed_cidrs == ()
    assert s.keep_bucket_on_destroy is True and s.upload_bucket is None and s.spot_max_price is None
    assert s.ready_timeout_minutes == 45


def test_missing_keys_take_the_same_defaults_as_the_stack_file():
    assert load_aws("aws", {"aws:region": "us-east-1"}.get) == load()


@pytest.mark.parametrize("key, value, expected", [
    ("deepracer-cloud:market", "reserved", "expected one of on-demand, spot, got 'reserved'"),
    ("deepracer-cloud:rootVolumeGb", "40", "expected a whole number from 100 to 16384, got '40'"),
    ("deepracer-cloud:rootVolumeGb", "big", "expected a whole number from 100 to 16384, got 'big'"),
    ("deepracer-cloud:workers", "0", "expected a whole number from 1 to 8, got '0'"),
    ("deepracer-cloud:workers", "12", "expected a whole number from 1 to 8, got '12'"),
    ("deepracer-cloud:instanceType", "G4DN 2XL", "expected an EC2 instance type such as g4dn.2xlarge"),
    ("deepracer-cloud:ubuntuVersion", "20.04", "expected one of 22.04, 24.04, got '20.04'"),
    ("deepracer-cloud:keepBucketOnDestroy", "maybe", "expected true or false, got 'maybe'"),
    ("deepracer-cloud:sshAllowedCidrs", "203.0.113.7/32", "expected a list of strings"),
    ("deepracer-cloud:sshAllowedCidrs", '["0.0.0.0/0"]', "not the whole internet"),
    ("deepracer-cloud:sshAllowedCidrs", '["::/0"]', "not the whole internet"),
    ("deepracer-cloud:sshAllowedCidrs", '["my-laptop"]', "expected CIDRs such as 203.0.113.7/32"),
    ("deepracer-cloud:sshPublicKey", "hunter2", "expected an OpenSSH public key"),
    ("deepracer-cloud:uploadBucket", "Not_A_Bucket", "expected an S3 bucket name"),
    ("deepracer-cloud:spotMaxPrice", "0.4", "expected no value unless market is spot"),
    ("deepracer-cloud:simappVersion", "6.0.4 gpu", "expected an image tag such as 6.0.4-gpu"),
    ("deepracer-cloud:readyTimeoutMinutes", "1", "expected a whole number from 5 to 180"),
    ("aws:region", "Frankfurt", "expected an AWS region such as us-east-1"),
])
def test_bad_values_name_file_key_and_expectation(key, value, expected):
    with pytest.raises(SettingsError) as raised:
        load({key: value})
    message = str(raised.value)
    assert message.startswith(f"Pulumi.aws.yaml: {key}: ")
    assert expected in message
    assert "\n" not in message


def test_missing_region_is_named():
    with pytest.raises(SettingsError, match=r"^Pulumi.aws.yaml: aws:region: expected an AWS region"):
        load_aws("aws", {}.get)


def test_ssh_networks_need_a_key():
    with pytest.raises(SettingsError, match="deepracer-cloud:sshPublicKey: expected an OpenSSH public key when"):
        load({"deepracer-cloud:sshAllowedCidrs": '["203.0.113.7/32"]'})


def test_spot_with_a_price_cap():
    s = load({"deepracer-cloud:market": "spot", "deepracer-cloud:spotMaxPrice": "0.35"})
    assert (s.market, s.spot_max_price) == ("spot", "0.35")


@pytest.mark.parametrize("vcpus, workers", [(4, 1), (8, 3), (16, 7), (32, 8), (2, 1)])
def test_workers_from_vcpus(vcpus, workers):
    assert workers_for_vcpus(vcpus) == workers
