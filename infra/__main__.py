"""Entry point of the Pulumi program: settings -> one environment component -> stack outputs."""

from pathlib import Path

import pulumi

from infra.package import build_session_archive
from infra.settings import SettingsError, load_aws

REPO_ROOT = Path(__file__).resolve().parent.parent


def _config_getter():
    configs: dict[str, pulumi.Config] = {}

    def get(full_key: str):
        namespace, name = full_key.split(":", 1)
        config = configs.setdefault(namespace, pulumi.Config(namespace))
        return config.get(name)

    return get


def main() -> None:
    stack = pulumi.get_stack()
    if stack != "aws":
        raise pulumi.RunError(f"stack {stack!r}: this program builds the stacks 'aws' (and soon 'azure'); "
                              "run `pulumi up --stack aws`")
    try:
        settings = load_aws(stack, _config_getter())
    except SettingsError as error:
        # RunError prints the one line, without a Python traceback.
        raise pulumi.RunError(str(error)) from None

    from infra.aws import AwsEnvironment  # after validation: a bad setting should not wait for pulumi-aws

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
    pulumi.export("estimatedCostPerHour", env.hourly_estimate)


main()
