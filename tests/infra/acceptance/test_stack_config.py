"""The fresh stack: its name, its config from the cloud's stack file with overrides, and that the real program
builds a stack of that name."""

from __future__ import annotations

import asyncio
import runpy
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pulumi
import pytest
from pulumi.runtime import settings as runtime_settings

from infra.acceptance import stack_config
from infra.settings import SettingsError, cloud_of
from tests.infra.mocked_program import PROGRAM_DIR, AwsMocks, ProgramRun, stack_file_config

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 6, 10, 15, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("cloud", ["aws", "azure"])
def test_a_fresh_stack_is_named_for_its_cloud_and_the_utc_time(cloud):
    local = NOW.astimezone(timezone(timedelta(hours=-5)))
    name = stack_config.stack_name(cloud, local)
    assert name == f"acc-{cloud}-20261206-101500"
    assert cloud_of(name) == cloud
    # pulumi-aws refuses a bucket_prefix over 37 characters; the program's is deepracer-<stack>-.
    assert len(f"deepracer-{name}-") <= 37


@pytest.mark.parametrize("stack, cloud", [("aws", "aws"), ("azure", "azure"), ("acc-aws-20261206-101500", "aws"),
                                          ("team-azure", "azure"), ("prod", None), ("aws-azure", None),
                                          ("awsome", None)])
def test_the_program_tells_the_cloud_from_the_stack_name(stack, cloud):
    assert cloud_of(stack) == cloud


def test_the_config_is_the_stack_file_with_path_keys():
    config = stack_config.flatten(stack_config.read_template(REPO / "Pulumi.aws.yaml"))
    assert config["aws:region"] == "us-east-1"
    assert config["aws:defaultTags.tags.project"] == "deepracer-cloud"
    assert config["deepracer-cloud:sshAllowedCidrs"] == "[]"
    assert config["deepracer-cloud:instanceType"] == "g4dn.2xlarge"


def test_structured_and_typed_yaml_values_become_path_keys_and_strings():
    assert stack_config.flatten({"a:list": ["x", "y"], "a:flag": True, "a:n": 3, "a:map": {"k": {"j": None}}}) == {
        "a:list[0]": "x", "a:list[1]": "y", "a:flag": "true", "a:n": "3", "a:map.k.j": "null"}


def test_overrides_win_and_the_storage_is_always_kept():
    template = stack_config.read_template(REPO / "Pulumi.aws.yaml")
    overrides = stack_config.parse_overrides(["workers=1", "aws:region=eu-west-1"])
    config = stack_config.stack_config("aws", "acc-aws-1", template, overrides)
    assert config["deepracer-cloud:workers"] == "1"
    assert config["aws:region"] == "eu-west-1"
    assert config["deepracer-cloud:keepBucketOnDestroy"] == "true"
    assert config["aws:defaultTags.tags.stack"] == "acc-aws-1"


@pytest.mark.parametrize("cloud", ["aws", "azure"])
def test_the_time_limit_never_powers_the_test_host_off(cloud):
    template = {**stack_config.read_template(REPO / f"Pulumi.{cloud}.yaml"),
                "deepracer-cloud:powerOffAfterMaxMinutes": "true"}
    config = stack_config.stack_config(cloud, f"acc-{cloud}-1", template, {})
    assert config["deepracer-cloud:powerOffAfterMaxMinutes"] == "false"


@pytest.mark.parametrize("cloud, key", [("aws", "keepBucketOnDestroy"), ("azure", "keepStorageOnDestroy")])
def test_a_stack_that_would_delete_the_models_is_refused(cloud, key):
    template = stack_config.read_template(REPO / f"Pulumi.{cloud}.yaml")
    with pytest.raises(SettingsError, match=f"deepracer-cloud:{key}: the acceptance test checks that the models "
                                            "outlive `destroy`"):
        stack_config.stack_config(cloud, f"acc-{cloud}-1", template, {f"deepracer-cloud:{key}": "false"})


def test_the_kept_storage_is_written_out_even_where_the_stack_file_leaves_it_to_the_default():
    config = stack_config.stack_config("azure", "acc-azure-1", {"azure-native:location": "eastus"}, {})
    assert config["deepracer-cloud:keepStorageOnDestroy"] == "true"
    overridden = stack_config.stack_config("aws", "acc-aws-1", {}, {"deepracer-cloud:keepBucketOnDestroy": "yes"})
    assert overridden["deepracer-cloud:keepBucketOnDestroy"] == "true"


def test_an_override_without_a_value_is_refused():
    with pytest.raises(SettingsError, match=r"--config 'workers': expected KEY=VALUE"):
        stack_config.parse_overrides(["workers"])


def test_the_azure_stack_file_alone_lacks_the_ssh_key():
    config = stack_config.stack_config("azure", "acc-azure-1",
                                       stack_config.read_template(REPO / "Pulumi.azure.yaml"), {})
    with pytest.raises(SettingsError, match=r"^Pulumi\.azure\.yaml: deepracer-cloud:sshPublicKey: expected"):
        stack_config.validate("azure", config)
    config["deepracer-cloud:sshPublicKey"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey me@laptop"
    assert stack_config.validate("azure", config).admin_username == "azureuser"


def test_an_unreadable_stack_file_is_one_line(tmp_path):
    (tmp_path / "Pulumi.aws.yaml").write_text("config: [\n")
    with pytest.raises(SettingsError, match=r"Pulumi\.aws\.yaml: not valid YAML"):
        stack_config.read_template(tmp_path / "Pulumi.aws.yaml")
    with pytest.raises(SettingsError, match="cannot be read"):
        stack_config.read_template(tmp_path / "missing.yaml")


def run_program_as(stack: str) -> ProgramRun:
    """The real program, under Pulumi's mocks, as stack `stack` with the aws stack file's config."""
    run = ProgramRun()
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(AwsMocks(run), project="deepracer-cloud", stack=stack, preview=False)
    runtime_settings.SETTINGS.outputs.clear()
    pulumi.runtime.set_all_config(stack_file_config("aws"))
    runpy.run_path(str(PROGRAM_DIR), run_name="__main__")
    asyncio.get_event_loop().run_until_complete(pulumi.runtime.stack.wait_for_rpcs())
    return run


def test_the_program_builds_a_fresh_acceptance_stack():
    name = stack_config.stack_name("aws", NOW)
    run = run_program_as(name)

    assert run.one("aws:s3/bucket:Bucket").inputs["bucketPrefix"] == f"deepracer-{name}-"
    assert run.one("aws:ec2/instance:Instance").inputs["tags"]["Name"] == f"deepracer-{name}"


def test_the_program_still_refuses_a_stack_that_names_no_cloud():
    with pytest.raises(pulumi.RunError, match="stack 'prod': this program builds the stacks 'aws' and 'azure'"):
        run_program_as("prod")
