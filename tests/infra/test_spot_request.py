"""The host's persistent spot request is cancelled before the host goes, against moto's EC2 over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest

from infra import spot_request
from tests.infra.mocked_program import PROGRAM_DIR, REPO_ROOT, run_program

REGION = "us-east-1"


@pytest.fixture
def ec2(s3_server):
    return boto3.client("ec2", region_name=REGION, endpoint_url=s3_server)


AMI = "ami-0123456789abcdef0"  # moto launches from an image it does not know, as the mocked program's AMI


def persistent_spot_host(ec2) -> tuple[str, str]:
    """(request id, instance id) of a persistent spot request and the instance it launched."""
    (request,) = ec2.request_spot_instances(
        Type="persistent", InstanceInterruptionBehavior="stop",
        LaunchSpecification={"ImageId": AMI, "InstanceType": "g4dn.2xlarge"})["SpotInstanceRequests"]
    described = ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[request["SpotInstanceRequestId"]])
    return request["SpotInstanceRequestId"], described["SpotInstanceRequests"][0]["InstanceId"]


def live_requests(ec2) -> set[str]:
    return {r["SpotInstanceRequestId"] for r in ec2.describe_spot_instance_requests()["SpotInstanceRequests"]
            if r["State"] in ("open", "active", "disabled")}


def test_the_hosts_request_is_cancelled_and_no_other(ec2):
    request, instance = persistent_spot_host(ec2)
    other_request, _ = persistent_spot_host(ec2)
    assert spot_request.cancel_for_instance(ec2, instance) == [request]
    remaining = live_requests(ec2)
    assert request not in remaining and other_request in remaining


def test_an_on_demand_host_has_no_request_and_nothing_is_cancelled(ec2):
    _, spot_instance = persistent_spot_host(ec2)
    before = live_requests(ec2)
    (on_demand,) = ec2.run_instances(ImageId=AMI, InstanceType="g4dn.2xlarge", MinCount=1,
                                     MaxCount=1)["Instances"]
    assert spot_request.cancel_for_instance(ec2, on_demand["InstanceId"]) == []
    assert live_requests(ec2) == before


def test_python_dash_m_cancels_with_one_line(ec2, s3_server):
    request, instance = persistent_spot_host(ec2)
    proc = subprocess.run([sys.executable, "-m", "infra.spot_request", "--instance-id", instance, "--region", REGION,
                           "--endpoint-url", s3_server], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"cancelled spot request {request} of {instance}\n"
    assert request not in live_requests(ec2)


def test_the_stack_cancels_it_when_the_host_goes_and_never_on_up(s3_server):
    """The delete line `pulumi destroy` or a fallback runs, as pulumi-command runs it; nothing runs on `up`."""
    run = run_program()
    (command,) = [c for c in run.of_type("command:local:Command") if c.name == "spot-request"]
    assert "create" not in command.inputs and "update" not in command.inputs
    depends = run.opts("command:local:Command", "spot-request").depends_on
    assert [getattr(d, "_name", None) for d in depends] == ["host"]
    env = {**os.environ, "AWS_ENDPOINT_URL": s3_server, **command.inputs["environment"]}
    proc = subprocess.run(["/bin/sh", "-c", command.inputs["delete"]], cwd=PROGRAM_DIR / command.inputs["dir"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "i-0abc123def4567890 has no live spot request\n"
