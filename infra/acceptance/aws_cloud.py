"""AWS's seams: the host through SSM Run Command, the models in the bucket (boto3, the deployer's credentials).

SSM, because the default host has no inbound port at all (no `sshAllowedCidrs`): its role carries
AmazonSSMManagedInstanceCore and the DLAMI runs the SSM agent, so `send-command` reaches it with nothing opened,
as `$(pulumi stack output connect)` does for a person. boto3 is a base dependency; it is imported in the
functions that talk to AWS, so the tests import this module for free.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Optional

from infra.acceptance.errors import Refused, StepFailed
from infra.acceptance.host_commands import RemoteResult
from infra.acceptance.journey import Cloud, Stack
from infra.settings import AwsSettings

HOST_USER = "ubuntu"
DOCUMENT = "AWS-RunShellScript"
REACH_TIMEOUT_S = 600.0  # the agent registers within a minute or two of boot; the host is ready long after
_POLL_S = 5.0
_RUNNING = ("Pending", "InProgress", "Delayed")
# After the command's own executionTimeout, SSM needs a moment to report it.
_REPORT_GRACE_S = 120.0


class SsmChannel:
    def __init__(self, instance_id: str, ssm: Any, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, poll_s: float = _POLL_S) -> None:
        self._instance = instance_id
        self._ssm = ssm
        self._clock = clock
        self._sleep = sleep
        self._poll_s = poll_s

    def reach(self) -> str:
        deadline = self._clock() + REACH_TIMEOUT_S
        while True:
            found = self._ssm.describe_instance_information(
                Filters=[{"Key": "InstanceIds", "Values": [self._instance]}])["InstanceInformationList"]
            if found and found[0].get("PingStatus") == "Online":
                info = found[0]
                return (f"SSM agent {info.get('AgentVersion', '?')} online on {self._instance} "
                        f"({info.get('PlatformName', '?')} {info.get('PlatformVersion', '')})")
            if self._clock() >= deadline:
                state = found[0].get("PingStatus") if found else "not registered"
                raise StepFailed(f"{self._instance}: SSM agent {state} after {REACH_TIMEOUT_S / 60:.0f} min; the "
                                 "role needs AmazonSSMManagedInstanceCore and outbound HTTPS")
            self._sleep(self._poll_s)

    def run(self, script: str, timeout_s: int) -> RemoteResult:
        sent = self._ssm.send_command(
            InstanceIds=[self._instance], DocumentName=DOCUMENT, Comment="deepracer-cloud acceptance test",
            Parameters={"commands": [script], "executionTimeout": [str(timeout_s)]})
        command_id = sent["Command"]["CommandId"]
        deadline = self._clock() + timeout_s + _REPORT_GRACE_S
        while True:
            self._sleep(self._poll_s)
            invocation = self._invocation(command_id)
            if invocation is not None and invocation["Status"] not in _RUNNING:
                return _result(invocation)
            if self._clock() >= deadline:
                raise StepFailed(f"SSM command {command_id} still {invocation['Status'] if invocation else 'unknown'} "
                                 f"after {timeout_s + _REPORT_GRACE_S:.0f} s")

    def _invocation(self, command_id: str) -> Optional[Mapping[str, Any]]:
        try:
            return self._ssm.get_command_invocation(CommandId=command_id, InstanceId=self._instance)
        except self._ssm.exceptions.InvocationDoesNotExist:  # for a moment after send_command
            return None


def _result(invocation: Mapping[str, Any]) -> RemoteResult:
    status = invocation["Status"]
    code = invocation.get("ResponseCode")
    stderr = invocation.get("StandardErrorContent") or ""
    if status not in ("Success", "Failed") or code is None or code < 0:
        # TimedOut, Cancelled, Undeliverable ...: the script's own exit code is not known.
        return RemoteResult(None, invocation.get("StandardOutputContent") or "",
                            f"{stderr}\nSSM: {status} ({invocation.get('StatusDetails', '')})")
    return RemoteResult(int(code), invocation.get("StandardOutputContent") or "", stderr)


class BucketModels:
    """The models in the stack's bucket, which `destroy` keeps (keepBucketOnDestroy)."""

    def __init__(self, bucket: str, s3: Any) -> None:
        self._bucket = bucket
        self._s3 = s3

    def count(self, prefix: str) -> int:
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=f"{prefix}/model/")
        return sum(page.get("KeyCount", 0) for page in pages)

    def kept(self, prefix: str) -> str:
        count = self.count(prefix)
        if count == 0:
            raise StepFailed(f"s3://{self._bucket}/{prefix}/model/ is empty after destroy")
        return f"s3://{self._bucket}/{prefix}/model/ still holds {count} object(s)"


def _session(settings: AwsSettings, region: Optional[str] = None) -> Any:
    import boto3

    return boto3.Session(profile_name=settings.aws_profile, region_name=region or settings.region)


def preflight(settings: AwsSettings) -> None:
    """The deployer's credentials, as Pulumi and this test will use them; one line when there are none."""
    import botocore.exceptions

    try:
        credentials = _session(settings).get_credentials()
    except botocore.exceptions.ProfileNotFound as error:
        raise Refused(f"aws:profile: {error}") from None
    if credentials is None:
        raise Refused("no AWS credentials: run `aws configure`, or set AWS_PROFILE (or aws:profile in the stack file)")


def cloud(stack: Stack, settings: AwsSettings) -> Cloud:
    def connect(outputs: Mapping[str, Any]) -> SsmChannel:
        return SsmChannel(outputs["instanceId"], _session(settings, outputs["region"]).client("ssm"))

    def models(outputs: Mapping[str, Any]) -> BucketModels:
        return BucketModels(outputs["bucket"], _session(settings, outputs["region"]).client("s3"))

    return Cloud("aws", HOST_USER, stack, connect, models)
