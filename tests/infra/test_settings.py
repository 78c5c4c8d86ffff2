"""Stack settings: the stack file's defaults load, and every bad value fails with one line naming it."""

from __future__ import annotations

import json

import pytest

from infra.settings import CostControls, SettingsError, load_aws, workers_for_vcpus
from tests.infra.mocked_program import stack_file_config


def load(overrides=None):
    config = stack_file_config()
    config.update(overrides or {})
    return load_aws("aws", config.get)


def test_stack_file_defaults():
    s = load()
    assert (s.region, s.instance_type, s.market, s.root_volume_gb) == ("us-east-1", "g4dn.2xlarge", "spot", 150)
    assert s.simapp == "awsdeepracercommunity/deepracer-simapp:6.0.4-gpu"
    assert s.workers is None and s.ssh_public_key is None and s.ssh_allowed_cidrs == ()
    assert s.keep_bucket_on_destroy is True and s.upload_bucket is None and s.spot_max_price is None
    assert s.ready_timeout_minutes == 45
    assert s.availability_zone is None
    assert s.cost == DEFAULT_COST


DEFAULT_COST = CostControls(idle_stop_minutes=30, power_off_after_max_minutes=False, monthly_budget_usd=None,
                            alert_emails=(), notifications=False)


def test_missing_keys_take_the_same_defaults_as_the_stack_file():
    assert load_aws("aws", {"aws:region": "us-east-1"}.get) == load()


@pytest.mark.parametrize("key, value, expected", [
    ("deepracer-cloud:market", "reserved", "expected one of spot, on-demand, got 'reserved'"),
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
    ("deepracer-cloud:availabilityZone", "eu-west-1a", "expected an availability zone of us-east-1 such as "
                                                       "us-east-1a, or no value, got 'eu-west-1a'"),
    ("deepracer-cloud:availabilityZone", "us-east-1-az4", "expected an availability zone of us-east-1"),
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


ECDSA_KEY = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY= me@laptop"


def test_an_ecdsa_key_is_refused_because_ec2_imports_only_rsa_and_ed25519():
    with pytest.raises(SettingsError) as raised:
        load({"deepracer-cloud:sshPublicKey": ECDSA_KEY})
    assert str(raised.value) == (
        "Pulumi.aws.yaml: deepracer-cloud:sshPublicKey: expected an OpenSSH public key, RSA or Ed25519 "
        f"(ssh-ed25519 AAAA...; EC2 imports no other kind), got {ECDSA_KEY!r}")


@pytest.mark.parametrize("key", [
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 me@laptop",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx2cGaqZmVnJz0xB0dZ0m8Tq0sTlKk2rDqRz4jJtXyz",
])
def test_rsa_and_ed25519_keys_are_taken(key):
    assert load({"deepracer-cloud:sshPublicKey": key}).ssh_public_key == key


@pytest.mark.parametrize("cidr", ["2001:db8::/32", "2001:db8::7/128"])
def test_an_ipv6_network_is_refused_because_security_groups_take_ipv4_cidr_blocks(cidr):
    with pytest.raises(SettingsError) as raised:
        load({"deepracer-cloud:sshPublicKey": ECDSA_KEY.replace("ecdsa-sha2-nistp256", "ssh-ed25519"),
              "deepracer-cloud:sshAllowedCidrs": json.dumps(["203.0.113.7/32", cidr])})
    assert str(raised.value) == (
        "Pulumi.aws.yaml: deepracer-cloud:sshAllowedCidrs: expected IPv4 CIDRs such as 203.0.113.7/32 "
        f"(a security group's cidr_blocks take IPv4 only), got {cidr!r}")


def test_missing_region_is_named():
    with pytest.raises(SettingsError, match=r"^Pulumi.aws.yaml: aws:region: expected an AWS region"):
        load_aws("aws", {}.get)


def test_ssh_networks_need_a_key():
    with pytest.raises(SettingsError, match="deepracer-cloud:sshPublicKey: expected an OpenSSH public key when"):
        load({"deepracer-cloud:sshAllowedCidrs": '["203.0.113.7/32"]'})


def test_spot_with_a_price_cap():
    s = load({"deepracer-cloud:market": "spot", "deepracer-cloud:spotMaxPrice": "0.35"})
    assert (s.market, s.spot_max_price) == ("spot", "0.35")


def test_on_demand_is_the_fallback_and_takes_no_spot_price():
    assert load({"deepracer-cloud:market": "on-demand"}).market == "on-demand"
    with pytest.raises(SettingsError) as raised:
        load({"deepracer-cloud:market": "on-demand", "deepracer-cloud:spotMaxPrice": "0.4"})
    assert str(raised.value) == ("Pulumi.aws.yaml: deepracer-cloud:spotMaxPrice: expected no value unless market is "
                                 "spot, got '0.4'")


def test_another_zone_is_a_setting():
    assert load({"deepracer-cloud:availabilityZone": "us-east-1d"}).availability_zone == "us-east-1d"


# -- cost controls: the same keys and rules on both stacks ----------------------------------------------------

def test_budget_notifications_and_auto_stop_settings():
    s = load({"deepracer-cloud:monthlyBudget": "50", "deepracer-cloud:notifications": "true",
              "deepracer-cloud:alertEmails": '["me@example.com", "team+dr@example.co.uk"]',
              "deepracer-cloud:idleStopMinutes": "0", "deepracer-cloud:powerOffAfterMaxMinutes": "true"})
    assert s.cost == CostControls(idle_stop_minutes=0, power_off_after_max_minutes=True, monthly_budget_usd=50.0,
                                  alert_emails=("me@example.com", "team+dr@example.co.uk"), notifications=True)


def test_a_budget_alone_or_notifications_alone_are_enough_with_an_address():
    budget = load({"deepracer-cloud:monthlyBudget": "12.50", "deepracer-cloud:alertEmails": '["me@example.com"]'})
    assert (budget.cost.monthly_budget_usd, budget.cost.notifications) == (12.5, False)
    notify = load({"deepracer-cloud:notifications": "true", "deepracer-cloud:alertEmails": '["me@example.com"]'})
    assert (notify.cost.monthly_budget_usd, notify.cost.notifications) == (None, True)


COST_ERRORS = [
    ({"deepracer-cloud:monthlyBudget": "50"}, "deepracer-cloud:alertEmails",
     "expected at least one e-mail address when monthlyBudget or notifications is set, got []"),
    ({"deepracer-cloud:notifications": "true"}, "deepracer-cloud:alertEmails",
     "expected at least one e-mail address when monthlyBudget or notifications is set, got []"),
    ({"deepracer-cloud:alertEmails": '["me@example.com"]'}, "deepracer-cloud:alertEmails",
     "expected no addresses unless monthlyBudget or notifications is set, got ['me@example.com']"),
    ({"deepracer-cloud:monthlyBudget": "50", "deepracer-cloud:alertEmails": '["me at example.com"]'},
     "deepracer-cloud:alertEmails", "expected e-mail addresses such as me@example.com, got 'me at example.com'"),
    ({"deepracer-cloud:monthlyBudget": "50", "deepracer-cloud:alertEmails": "me@example.com"},
     "deepracer-cloud:alertEmails", "expected a list of strings, got 'me@example.com'"),
    ({"deepracer-cloud:monthlyBudget": "50", "deepracer-cloud:alertEmails": json.dumps(
        [f"me{n}@example.com" for n in range(11)])}, "deepracer-cloud:alertEmails",
     "expected at most 10 addresses (AWS Budgets' limit)"),
    ({"deepracer-cloud:monthlyBudget": "0"}, "deepracer-cloud:monthlyBudget",
     "expected an amount in USD above 0 and at most 1,000,000, such as 50, or no value, got '0'"),
    ({"deepracer-cloud:monthlyBudget": "$50"}, "deepracer-cloud:monthlyBudget",
     "expected an amount in USD above 0 and at most 1,000,000, such as 50, or no value, got '$50'"),
    ({"deepracer-cloud:monthlyBudget": "12.345"}, "deepracer-cloud:monthlyBudget", "got '12.345'"),
    ({"deepracer-cloud:idleStopMinutes": "-1"}, "deepracer-cloud:idleStopMinutes",
     "expected a whole number from 0 to 1440, got '-1'"),
    ({"deepracer-cloud:idleStopMinutes": "half an hour"}, "deepracer-cloud:idleStopMinutes",
     "expected a whole number from 0 to 1440"),
    ({"deepracer-cloud:powerOffAfterMaxMinutes": "sometimes"}, "deepracer-cloud:powerOffAfterMaxMinutes",
     "expected true or false, got 'sometimes'"),
    ({"deepracer-cloud:notifications": "on"}, "deepracer-cloud:notifications", "expected true or false, got 'on'"),
]


@pytest.mark.parametrize("overrides, key, expected", COST_ERRORS)
def test_bad_cost_settings_name_file_key_and_expectation(overrides, key, expected):
    with pytest.raises(SettingsError) as raised:
        load(overrides)
    message = str(raised.value)
    assert message.startswith(f"Pulumi.aws.yaml: {key}: ")
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize("vcpus, workers", [(4, 1), (8, 3), (16, 7), (32, 8), (2, 1)])
def test_workers_from_vcpus(vcpus, workers):
    assert workers_for_vcpus(vcpus) == workers


# -- Azure ------------------------------------------------------------------------------------------------------

from infra.settings import load_azure  # noqa: E402 - with the Azure tests that use it

AZURE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx2cGaqZmVnJz0xB0dZ0m8Tq0sTlKk2rDqRz4jJtXyz builder@laptop"


def load_az(overrides=None):
    config = stack_file_config("azure")
    config.update({"deepracer-cloud:sshPublicKey": AZURE_KEY, **(overrides or {})})
    return load_azure("azure", config.get)


def test_azure_stack_file_defaults():
    s = load_az()
    assert (s.location, s.vm_size, s.priority, s.os_disk_gb) == ("eastus", "Standard_NC8as_T4_v3", "spot", 150)
    assert s.simapp == "awsdeepracercommunity/deepracer-simapp:6.0.4-gpu" and s.ubuntu_version == "24.04"
    assert (s.admin_username, s.ssh_public_key, s.ssh_allowed_cidrs) == ("azureuser", AZURE_KEY, ())
    assert s.keep_storage_on_destroy is True and s.spot_max_price is None and s.workers is None
    assert s.ready_timeout_minutes == 45
    assert s.cost == DEFAULT_COST


def test_azure_missing_keys_take_the_same_defaults_as_the_stack_file():
    assert load_azure("azure", {"deepracer-cloud:sshPublicKey": AZURE_KEY}.get) == load_az()


@pytest.mark.parametrize("key, value, expected", [
    ("deepracer-cloud:sshPublicKey", "", "expected an OpenSSH RSA or Ed25519 public key (required on Azure"),
    ("deepracer-cloud:sshPublicKey", "ecdsa-sha2-nistp256 AAAAE2VjZHNh me", "expected an OpenSSH RSA or Ed25519"),
    ("deepracer-cloud:priority", "low", "expected one of spot, regular, got 'low'"),
    ("deepracer-cloud:vmSize", "NC8as_T4_v3", "expected an Azure VM size such as Standard_NC8as_T4_v3"),
    ("deepracer-cloud:osDiskGb", "30", "expected a whole number from 100 to 4095, got '30'"),
    ("deepracer-cloud:adminUsername", "admin", "expected a user name Azure allows"),
    ("deepracer-cloud:adminUsername", "Racer", "expected a Linux user name such as azureuser"),
    ("deepracer-cloud:sshAllowedCidrs", '["0.0.0.0/0"]', "not the whole internet"),
    ("deepracer-cloud:keepStorageOnDestroy", "perhaps", "expected true or false, got 'perhaps'"),
    ("deepracer-cloud:ubuntuVersion", "20.04", "expected one of 22.04, 24.04, got '20.04'"),
    ("deepracer-cloud:workers", "9", "expected a whole number from 1 to 8, got '9'"),
    ("azure-native:location", "East US", "expected an Azure location such as eastus"),
])
def test_azure_bad_values_name_file_key_and_expectation(key, value, expected):
    with pytest.raises(SettingsError) as raised:
        load_az({key: value})
    message = str(raised.value)
    assert message.startswith(f"Pulumi.azure.yaml: {key}: ")
    assert expected in message
    assert "\n" not in message


def test_azure_refuses_an_ipv6_network_the_vm_cannot_be_reached_from():
    with pytest.raises(SettingsError) as raised:
        load_az({"deepracer-cloud:sshAllowedCidrs": '["2001:db8::/32"]'})
    assert str(raised.value) == (
        "Pulumi.azure.yaml: deepracer-cloud:sshAllowedCidrs: expected IPv4 CIDRs such as 203.0.113.7/32 "
        "(the VM has an IPv4 address only), got '2001:db8::/32'")


def test_a_vm_size_outside_the_table_needs_workers_and_says_so():
    with pytest.raises(SettingsError) as raised:
        load_az({"deepracer-cloud:vmSize": "Standard_ND96asr_v4"})
    assert str(raised.value) == (
        "Pulumi.azure.yaml: deepracer-cloud:workers: expected a number of workers from 1 to 8 for vmSize "
        "Standard_ND96asr_v4, whose vCPUs this project does not know, got None")


def test_azure_spot_with_a_price_cap_and_a_size_outside_the_table_with_workers():
    s = load_az({"deepracer-cloud:priority": "spot", "deepracer-cloud:spotMaxPrice": "0.25",
                 "deepracer-cloud:vmSize": "Standard_ND96asr_v4", "deepracer-cloud:workers": "6"})
    assert (s.priority, s.spot_max_price, s.vm_size, s.workers) == ("spot", "0.25", "Standard_ND96asr_v4", 6)


def test_azure_regular_is_the_fallback_and_takes_no_spot_price():
    assert load_az({"deepracer-cloud:priority": "regular"}).priority == "regular"
    with pytest.raises(SettingsError, match="spotMaxPrice: expected no value unless priority is spot, got '0.3'"):
        load_az({"deepracer-cloud:priority": "regular", "deepracer-cloud:spotMaxPrice": "0.3"})


@pytest.mark.parametrize("overrides, key, expected", COST_ERRORS)
def test_azure_bad_cost_settings_fail_as_on_aws(overrides, key, expected):
    with pytest.raises(SettingsError) as raised:
        load_az(overrides)
    assert str(raised.value).startswith(f"Pulumi.azure.yaml: {key}: ") and expected in str(raised.value)


def test_azure_budget_and_notifications():
    s = load_az({"deepracer-cloud:monthlyBudget": "80", "deepracer-cloud:notifications": "true",
                 "deepracer-cloud:alertEmails": '["me@example.com"]', "deepracer-cloud:idleStopMinutes": "45"})
    assert s.cost == CostControls(idle_stop_minutes=45, power_off_after_max_minutes=False, monthly_budget_usd=80.0,
                                  alert_emails=("me@example.com",), notifications=True)


def test_the_dashboard_at_first_boot_is_off_unless_the_stack_asks_on_both_clouds():
    assert (load().dashboard, load_az().dashboard) == (False, False)
    assert load({"deepracer-cloud:dashboard": "true"}).dashboard is True
    assert load_az({"deepracer-cloud:dashboard": "true"}).dashboard is True
    with pytest.raises(SettingsError, match="deepracer-cloud:dashboard"):
        load({"deepracer-cloud:dashboard": "sometimes"})
