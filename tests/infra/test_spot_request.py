"""The host's persistent spot request is cancelled before the host goes, against moto's EC2 over HTTP.

pulumi-aws does not cancel it (infra/spot_request.py says where in the provider's source), on `pulumi destroy` nor on a
replacement: the stack's own delete-only command does, and these tests run that command's line as pulumi-command
would.
"""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest

from infra import spot_request
from tests.infra.mocked_program import HOST_INSTANCE_ID, PROGRAM_DIR, REPO_ROOT, ProgramRun, run_program

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


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


def relaunched_by_its_request(ec2, request_id: str, host: str) -> str:
    """What a persistent request does when its instance is terminated outside Pulumi (the console, a retirement):
    it launches another one, which no stack knows of and which carries none of the host's tags. Returns its id.

    moto keeps the request but launches nothing by itself, so the test has moto's request launch it, as EC2 would.
    """
    from moto.ec2.models import ec2_backends

    ec2.terminate_instances(InstanceIds=[host])
    request = ec2_backends[ACCOUNT][REGION].spot_instance_requests[request_id]
    request.instance = request.launch_instance()
    return request.instance.id


def state_of(ec2, instance_id: str) -> str:
    (reservation,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservation["Instances"][0]["State"]["Name"]


def spot_request_command(run: ProgramRun):
    (command,) = [c for c in run.of_type("command:local:Command") if c.name == "spot-request"]
    return command


def run_delete(command, endpoint: str) -> subprocess.CompletedProcess:
    """The command's `delete` line as pulumi-command runs it when the host goes (`pulumi destroy`, a fallback)."""
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, **command.inputs["environment"]}
    return subprocess.run(["/bin/sh", "-c", command.inputs["delete"]], cwd=PROGRAM_DIR / command.inputs["dir"],
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_hosts_request_is_cancelled_and_no_other(ec2):
    request, instance = persistent_spot_host(ec2)
    other_request, _ = persistent_spot_host(ec2)
    assert spot_request.clean_up(ec2, instance) == spot_request.Cleanup(cancelled=[request])
    remaining = live_requests(ec2)
    assert request not in remaining and other_request in remaining


def test_an_on_demand_host_has_no_request_and_nothing_is_cancelled(ec2):
    _, spot_instance = persistent_spot_host(ec2)
    before = live_requests(ec2)
    (on_demand,) = ec2.run_instances(ImageId=AMI, InstanceType="g4dn.2xlarge", MinCount=1,
                                     MaxCount=1)["Instances"]
    assert spot_request.clean_up(ec2, on_demand["InstanceId"]) == spot_request.Cleanup()
    assert live_requests(ec2) == before


def test_python_dash_m_cancels_with_one_line(ec2, s3_server):
    request, instance = persistent_spot_host(ec2)
    proc = subprocess.run([sys.executable, "-m", "infra.spot_request", "--instance-id", instance, "--region", REGION,
                           "--endpoint-url", s3_server], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"cancelled spot request {request} of {instance}\n"
    assert request not in live_requests(ec2)


def test_the_stack_cancels_it_when_the_host_goes_and_never_on_up(ec2, s3_server):
    """The delete line `pulumi destroy` or a fallback runs, as pulumi-command runs it; nothing runs on `up`."""
    request, host = persistent_spot_host(ec2)
    run = run_program(instance_id=host, spot_request_id=request)
    command = spot_request_command(run)
    assert "create" not in command.inputs and "update" not in command.inputs
    depends = run.opts("command:local:Command", "spot-request").depends_on
    assert [getattr(d, "_name", None) for d in depends] == ["host"]
    proc = run_delete(command, s3_server)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"cancelled spot request {request} of {host}\n"
    assert request not in live_requests(ec2)
    assert state_of(ec2, host) == "running"  # the host itself is pulumi-aws's to terminate, right after


def test_a_replaced_host_has_its_request_cancelled_first():
    """A fallback replaces the host delete-before-replace. The engine then deletes first every resource whose inputs
    depend on the host's outputs and whose provider says it must be replaced once they are unknown (pulumi/pulumi,
    pkg/resource/deploy/step_generator.go, calculateDependentReplacements): the command's `triggers` (a change
    replaces a pulumi-command Command) and its `delete` line depend on the host, so its delete runs, with the old
    host's ids, before the old host is terminated. On `pulumi destroy` the explicit dependency orders it."""
    run = run_program()
    command = ("command:local:Command", "spot-request")
    assert {"triggers", "delete"} <= {key for key, names in run.input_resources[command].items() if "host" in names}
    assert run.opts(*command).replace_on_changes == ["triggers[*]"]  # set by pulumi-command's SDK itself


def test_destroy_cancels_the_request_that_launched_an_instance_no_stack_knows_of_and_terminates_that(ec2, s3_server):
    """terraform-provider-aws#38142: the host's request outlived it and launched another instance. The stack
    recorded the request's id with the host, so its delete line finds the request by it (the host's id no longer
    leads to it), cancels it and terminates what it launched."""
    request, host = persistent_spot_host(ec2)
    other_request, other_instance = persistent_spot_host(ec2)  # someone else's: left alone
    stray = relaunched_by_its_request(ec2, request, host)
    proc = run_delete(spot_request_command(run_program(instance_id=host, spot_request_id=request)), s3_server)
    assert proc.returncode == 0, proc.stderr
    assert request not in live_requests(ec2) and other_request in live_requests(ec2)
    assert state_of(ec2, stray) == "terminated"
    assert state_of(ec2, other_instance) == "running"
    assert proc.stdout == (f"cancelled spot request {request} of {host}\n"
                           f"terminated {stray}, which spot request {request} launched after {host}\n")


def test_a_request_an_earlier_attempt_cancelled_still_has_what_it_launched_terminated(ec2):
    """A destroy that cancelled the request and then failed (network, credentials) is run again: the request is
    no longer live, but the instance it had launched besides the host still runs and must not be left."""
    from moto.ec2.models import ec2_backends

    request, host = persistent_spot_host(ec2)
    stray = relaunched_by_its_request(ec2, request, host)
    ec2_backends[ACCOUNT][REGION].spot_instance_requests[request].state = "cancelled"  # moto forgets cancelled ones
    done = spot_request.clean_up(ec2, host, request)
    assert done == spot_request.Cleanup(cancelled=[], terminated={stray: request})
    assert state_of(ec2, stray) == "terminated"


def test_an_on_demand_stack_names_no_request_and_its_delete_line_changes_nothing(ec2, s3_server):
    _, spot_instance = persistent_spot_host(ec2)
    before = live_requests(ec2)
    run = run_program({"deepracer-cloud:market": "on-demand"})
    proc = run_delete(spot_request_command(run), s3_server)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{HOST_INSTANCE_ID} has no live spot request\n"
    assert live_requests(ec2) == before and state_of(ec2, spot_instance) == "running"
