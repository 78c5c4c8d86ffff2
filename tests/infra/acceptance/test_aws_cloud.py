"""AWS's seams: SSM Run Command as botocore's Stubber checks the requests against the real SSM API model, and
the kept bucket against moto."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from infra.acceptance import aws_cloud
from infra.acceptance.aws_cloud import BucketModels, SsmChannel
from infra.acceptance.errors import Refused, StepFailed
from infra.acceptance.host_commands import RemoteResult
from infra.settings import load_aws
from tests.infra.acceptance.fakes import FakeClock

INSTANCE = "i-0abc123def4567890"
COMMAND_ID = "2b5f5c6e-1d7a-4a7e-9c4e-0123456789ab"
SCRIPT = "sudo -i -u ubuntu deepracer validate"


@pytest.fixture
def ssm():
    client = boto3.client("ssm", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect_send(stubber: Stubber, timeout: int = 900) -> None:
    stubber.add_response("send_command", {"Command": {"CommandId": COMMAND_ID}}, {
        "InstanceIds": [INSTANCE], "DocumentName": "AWS-RunShellScript", "Comment": "deepracer-cloud acceptance test",
        "Parameters": {"commands": [SCRIPT], "executionTimeout": [str(timeout)]}})


def expect_invocation(stubber: Stubber, status: str, code: int = -1, out: str = "", err: str = "",
                      details: str = "") -> None:
    stubber.add_response("get_command_invocation", {
        "CommandId": COMMAND_ID, "InstanceId": INSTANCE, "Status": status, "ResponseCode": code,
        "StandardOutputContent": out, "StandardErrorContent": err, "StatusDetails": details or status},
        {"CommandId": COMMAND_ID, "InstanceId": INSTANCE})


def test_a_command_is_sent_to_the_instance_and_awaited(ssm):
    client, stubber = ssm
    clock = FakeClock()
    expect_send(stubber)
    stubber.add_client_error("get_command_invocation", "InvocationDoesNotExist",
                             expected_params={"CommandId": COMMAND_ID, "InstanceId": INSTANCE})
    expect_invocation(stubber, "InProgress")
    expect_invocation(stubber, "Success", 0, "validate: no problems\n")

    result = SsmChannel(INSTANCE, client, clock=clock, sleep=clock.sleep).run(SCRIPT, 900)

    assert result == RemoteResult(0, "validate: no problems\n", "")
    assert clock.sleeps == [5.0, 5.0, 5.0]


def test_a_failed_command_keeps_its_exit_code(ssm):
    client, stubber = ssm
    clock = FakeClock()
    expect_send(stubber)
    expect_invocation(stubber, "Failed", 2, "", "deepracer: run.env: DR_WORLD_NAME: unknown track\n")
    result = SsmChannel(INSTANCE, client, clock=clock, sleep=clock.sleep).run(SCRIPT, 900)
    assert result == RemoteResult(2, "", "deepracer: run.env: DR_WORLD_NAME: unknown track\n")


def test_a_command_ssm_timed_out_has_no_exit_code(ssm):
    client, stubber = ssm
    clock = FakeClock()
    expect_send(stubber)
    expect_invocation(stubber, "TimedOut", -1, "half", "", "ExecutionTimedOut")
    result = SsmChannel(INSTANCE, client, clock=clock, sleep=clock.sleep).run(SCRIPT, 900)
    assert result.exit_code is None and result.stderr.endswith("SSM: TimedOut (ExecutionTimedOut)")


def test_waiting_for_a_command_ends_after_its_timeout(ssm):
    client, stubber = ssm
    clock = FakeClock()
    expect_send(stubber, timeout=10)
    for _ in range(26):  # 10 s + 120 s of grace, polled every 5 s
        expect_invocation(stubber, "InProgress")
    with pytest.raises(StepFailed, match=f"SSM command {COMMAND_ID} still InProgress after 130 s"):
        SsmChannel(INSTANCE, client, clock=clock, sleep=clock.sleep).run(SCRIPT, 10)


def agent(status: str) -> dict:
    return {"InstanceInformationList": [{"InstanceId": INSTANCE, "PingStatus": status, "AgentVersion": "3.3.1",
                                         "PlatformName": "Ubuntu", "PlatformVersion": "24.04"}]}


def test_reach_waits_for_the_agent_to_be_online(ssm):
    client, stubber = ssm
    clock = FakeClock()
    query = {"Filters": [{"Key": "InstanceIds", "Values": [INSTANCE]}]}
    stubber.add_response("describe_instance_information", {"InstanceInformationList": []}, query)
    stubber.add_response("describe_instance_information", agent("ConnectionLost"), query)
    stubber.add_response("describe_instance_information", agent("Online"), query)

    detail = SsmChannel(INSTANCE, client, clock=clock, sleep=clock.sleep).reach()

    assert detail == f"SSM agent 3.3.1 online on {INSTANCE} (Ubuntu 24.04)"
    assert clock.sleeps == [5.0, 5.0]


def test_reach_gives_up_with_the_agents_state(ssm):
    client, stubber = ssm
    clock = FakeClock()
    for _ in range(121):
        stubber.add_response("describe_instance_information", {"InstanceInformationList": []})
    with pytest.raises(StepFailed, match=f"{INSTANCE}: SSM agent not registered after 10 min"):
        SsmChannel(INSTANCE, client, clock=clock, sleep=clock.sleep).reach()


@mock_aws
def test_the_models_in_the_bucket_are_counted_and_found_kept():
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="deepracer-acc-aws-1-abc")
    for name in ("model_metadata.json", "deepracer_checkpoints.json", "1_Step-1200.ckpt.index"):
        s3.put_object(Bucket="deepracer-acc-aws-1-abc", Key=f"rl-deepracer-0/model/{name}", Body=b"{}")
    s3.put_object(Bucket="deepracer-acc-aws-1-abc", Key="rl-deepracer-0/metrics/TrainingMetrics.json", Body=b"{}")
    s3.put_object(Bucket="deepracer-acc-aws-1-abc", Key="rl-deepracer-00/model/x", Body=b"{}")

    models = BucketModels("deepracer-acc-aws-1-abc", s3)

    assert models.count("rl-deepracer-0") == 3
    assert models.kept("rl-deepracer-0") == "s3://deepracer-acc-aws-1-abc/rl-deepracer-0/model/ still holds 3 object(s)"
    with pytest.raises(StepFailed, match="rl-deepracer-1/model/ is empty after destroy"):
        models.kept("rl-deepracer-1")


def test_no_credentials_is_refused(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    settings = load_aws("aws", {"aws:region": "us-east-1"}.get)
    with pytest.raises(Refused, match="^no AWS credentials: run `aws configure`"):
        aws_cloud.preflight(settings)
    profiled = load_aws("aws", {"aws:region": "us-east-1", "aws:profile": "nobody"}.get)
    with pytest.raises(Refused, match="^aws:profile: The config profile \\(nobody\\) could not be found"):
        aws_cloud.preflight(profiled)
