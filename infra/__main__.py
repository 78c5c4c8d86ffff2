"""Entry point of the Pulumi program: settings -> one environment component -> stack outputs."""

import contextlib
from pathlib import Path
from typing import Iterator, Optional

import pulumi

from infra.package import build_session_archive
from infra.settings import Getter, SettingsError, cloud_of, load_aws, load_azure

REPO_ROOT = Path(__file__).resolve().parent.parent
# The host's fallbacks (spot -> on-demand, another zone) replace it through `replacement_trigger`, which an engine
# without it ignores without a word. Engines have the option from 3.208 but tell a program so from 3.231 on
# (GetDeploymentInfo); the SDK's probe of older ones does not ask about it.
MIN_PULUMI_CLI = "3.231"


def _config_getter() -> Getter:
    configs: dict[str, pulumi.Config] = {}

    def get(full_key: str) -> Optional[str]:
        namespace, name = full_key.split(":", 1)
        config = configs.setdefault(namespace, pulumi.Config(namespace))
        return config.get(name)

    return get


def _require_replacement_triggers() -> None:
    from pulumi.runtime.proto import resource_pb2
    from pulumi.runtime.settings import monitor_supports_feature

    if not monitor_supports_feature(resource_pb2.RESOURCE_MONITOR_FEATURE_REPLACEMENT_TRIGGER):
        raise pulumi.RunError(f"this program needs the Pulumi CLI {MIN_PULUMI_CLI} or newer, whose engine replaces the "
                              "host when a fallback setting changes (replacement triggers); see `pulumi version` and "
                              "https://www.pulumi.com/docs/iac/download-install/")


def main() -> None:
    _require_replacement_triggers()
    stack = pulumi.get_stack()
    builders = {"aws": _aws, "azure": _azure}
    cloud = cloud_of(stack)
    if cloud is None:
        raise pulumi.RunError(f"stack {stack!r}: this program builds the stacks 'aws' and 'azure' (or a stack named "
                              "after one, such as acc-aws-1); run `pulumi up --stack aws` or `pulumi up --stack azure`")
    builders[cloud](stack)


@contextlib.contextmanager
def _provider_installed(cloud: str) -> Iterator[None]:
    """Each cloud's providers come with its own extra (`.[aws]`, `.[azure]`): say which one is missing."""
    try:
        yield
    except ModuleNotFoundError as missing:
        raise pulumi.RunError(f"the {cloud} stack needs {missing.name}, which this Python lacks: "
                              f".venv/bin/pip install -e '.[{cloud}]'") from None


def _settings(load, stack: str):
    try:
        return load(stack, _config_getter())
    except SettingsError as error:
        # RunError prints the one line, without a Python traceback.
        raise pulumi.RunError(str(error)) from None


def _aws(stack: str) -> None:
    settings = _settings(load_aws, stack)
    with _provider_installed("aws"):  # after validation: a bad setting should not wait for pulumi-aws
        from infra.aws import AwsEnvironment

    archive, digest = build_session_archive(REPO_ROOT, REPO_ROOT / "build")
    env = AwsEnvironment("deepracer", settings, archive)
    pulumi.export("instanceId", env.instance_id)
    pulumi.export("publicDns", env.public_dns)
    pulumi.export("publicIp", env.public_ip)
    pulumi.export("bucket", env.bucket_name)
    pulumi.export("region", settings.region)
    pulumi.export("workers", env.workers)
    pulumi.export("simapp", settings.simapp)
    pulumi.export("sessionPackageSha256", digest)
    pulumi.export("connect", env.ssm_command)
    pulumi.export("ssh", env.ssh_command)
    pulumi.export("dashboard", env.dashboard_command)
    pulumi.export("start", env.start_command)
    pulumi.export("notificationTopic", env.notification_topic)
    pulumi.export("budget", env.budget_name)
    pulumi.export("estimatedCostPerHour", env.hourly_estimate)
    if env.sim_nodes_output is not None:  # simNodes: 0 exports exactly what it always did
        pulumi.export("simNodes", env.sim_nodes_output)


def _azure(stack: str) -> None:
    settings = _settings(load_azure, stack)
    with _provider_installed("azure"):  # after validation, as above
        from infra.azure import AzureEnvironment

    archive, digest = build_session_archive(REPO_ROOT, REPO_ROOT / "build")
    env = AzureEnvironment("deepracer", settings, archive, digest)
    pulumi.export("vmId", env.vm_id)
    pulumi.export("vmName", env.vm_name)
    pulumi.export("resourceGroup", env.resource_group_name)
    pulumi.export("publicIp", env.public_ip)
    pulumi.export("storageAccount", env.storage_account)
    pulumi.export("container", env.container_name)
    pulumi.export("location", settings.location)
    pulumi.export("workers", env.workers)
    pulumi.export("simapp", settings.simapp)
    pulumi.export("sessionPackageSha256", digest)
    pulumi.export("ssh", env.ssh_command)
    pulumi.export("dashboard", env.dashboard_command)
    pulumi.export("bootstrapLog", env.log_command)
    pulumi.export("start", env.start_command)
    pulumi.export("budget", env.budget_name)
    pulumi.export("estimatedCostPerHour", env.hourly_estimate)
    if env.sim_nodes_output is not None:  # simNodes: 0 exports exactly what it always did
        pulumi.export("simNodes", env.sim_nodes_output)


main()
