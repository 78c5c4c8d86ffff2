"""Notifications through a real SNS API over HTTP (moto's server): subject rules, off without a topic, and a
failure that is said but never raised."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from session.core.config import load_config
from session.lifecycle.notify import notify, subject_line


def system(tmp_path: Path, topic: str = ""):
    (tmp_path / "system.env").write_text("DR_CLOUD=aws\nDR_SIMAPP_VERSION=6.0.4-gpu\n"
                                         + (f"DR_NOTIFY_TOPIC_ARN={topic}\n" if topic else ""))
    (tmp_path / "run.env").write_text("")
    return load_config(tmp_path / "run.env", tmp_path / "system.env", environ={}).system


@pytest.fixture()
def sns(s3_server: str):
    return boto3.client("sns", endpoint_url=s3_server, region_name="us-east-1")


def test_a_notification_reaches_the_topic(tmp_path: Path, sns):
    topic = sns.create_topic(Name="deepracer-notify")["TopicArn"]
    queue = boto3.client("sqs", endpoint_url=sns.meta.endpoint_url, region_name="us-east-1")
    queue_url = queue.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = queue.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    assert notify(system(tmp_path, topic), "training started", "rl-deepracer-3", "3 workers", client=sns)
    [message] = queue.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    body = json.loads(message["Body"])
    assert body["Subject"] == "DeepRacer: training started (rl-deepracer-3)"
    assert body["Message"] == "training started: rl-deepracer-3\n\n3 workers\n"


def test_no_topic_no_notification(tmp_path: Path, sns):
    assert notify(system(tmp_path), "training started", "m", client=sns) is False


def test_a_failure_is_said_not_raised(tmp_path: Path, sns):
    said: list[str] = []
    missing = "arn:aws:sns:us-east-1:123456789012:no-such-topic"
    assert notify(system(tmp_path, missing), "training finished", "m", say=said.append, client=sns) is False
    assert len(said) == 1 and said[0].startswith("warning: could not send the 'training finished' notification")


@pytest.mark.parametrize("text, expected", [
    ("DeepRacer: done (m)", "DeepRacer: done (m)"),
    ("a\nb\tc", "a b c"),
    ("café", "caf?"),
    ("x" * 150, "x" * 97 + "..."),
])
def test_subjects_are_what_sns_accepts(text: str, expected: str):
    assert subject_line(text) == expected
