"""The watchdog's e-mails: a run that finished by itself, and a stall (no new checkpoint for 20 min while its
containers run). Pure decisions, the memory of what was sent, the idle check calling it, and one end to end
through a real SNS API over HTTP (moto's server) into an SQS queue, with the containers and the checkpoint time
injected (no Docker, no bucket)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest

from session.engine.containers import ContainerInfo
from session.lifecycle.idle import idle_check
from session.lifecycle.watchdog import FINISHED, STALL, STALL_MINUTES, check, events_to_send, remember
from session.run.state import RunState, RunStateStore, Status
from tests.session.lifecycle.test_notify import system

NOW = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
STARTED = NOW - timedelta(hours=3)
TOPIC = "arn:aws:sns:us-east-1:123456789012:deepracer-notify"


def run(status: str = Status.RUNNING, stopped=None) -> RunState:
    return RunState(status=status, run_id=4, prefix="rl-deepracer-4", run_env="/r", system_env="/s",
                    started=STARTED, stopped=stopped)


def container(role: str, run_id: str = "4", status: str = "running") -> ContainerInfo:
    return ContainerInfo(id=role, name=f"dr-{role}", image="simapp", role=role, run=run_id, worker=None,
                         prefix="rl-deepracer-4", status=status)


RUNNING_SET = [container("trainer"), container("worker")]
EXITED_SET = [container("trainer", status="exited"), container("worker", status="exited")]


def kinds(events) -> list[str]:
    return [event.event for event in events]


# --- pure decisions ----------------------------------------------------------------------------------------------


def test_a_run_whose_containers_exited_by_themselves_finished_once():
    state = run()
    [event] = events_to_send(state, EXITED_SET, None, NOW, {})
    assert event.event == FINISHED and "rl-deepracer-4/" in event.details
    sent = remember(state, {}, [event])
    assert events_to_send(state, EXITED_SET, None, NOW, sent) == []
    # Another run's memory does not silence this one.
    assert kinds(events_to_send(state, [], None, NOW, {"token": "other@x", "finished": True})) == [FINISHED]


def test_the_idle_checks_ended_run_is_still_news_for_an_hour():
    assert kinds(events_to_send(run(Status.ENDED, NOW - timedelta(minutes=10)), [], None, NOW, {})) == [FINISHED]
    assert events_to_send(run(Status.ENDED, NOW - timedelta(hours=2)), [], None, NOW, {}) == []


@pytest.mark.parametrize("status", [Status.STOPPED, Status.INTERRUPTED, Status.TIME_LIMIT])
def test_no_finished_after_a_user_stop_spot_or_time_limit(status: str):
    assert events_to_send(run(status, NOW - timedelta(minutes=1)), EXITED_SET, None, NOW, {}) == []


def test_another_runs_containers_do_not_count_as_this_ones():
    assert kinds(events_to_send(run(), [container("trainer", run_id="3")], None, NOW, {})) == [FINISHED]
    assert events_to_send(run(), [container("sagemaker")], NOW, NOW, {}) == []  # the trainer's sibling runs


def test_stall_after_n_minutes_without_a_checkpoint():
    fresh = NOW - timedelta(minutes=STALL_MINUTES - 1)
    assert events_to_send(run(), RUNNING_SET, fresh, NOW, {}) == []
    old = NOW - timedelta(minutes=STALL_MINUTES)
    [event] = events_to_send(run(), RUNNING_SET, old, NOW, {})
    assert event.event == STALL and "20 min" in event.details and "newest checkpoint" in event.details
    # No checkpoint yet: counted from the run's start (3 h ago).
    [event] = events_to_send(run(), RUNNING_SET, None, NOW, {})
    assert "its start" in event.details and "180 min" in event.details


def test_stall_once_per_stall_rearmed_by_a_newer_checkpoint():
    state = run()
    old = NOW - timedelta(minutes=30)
    sent = remember(state, {}, events_to_send(state, RUNNING_SET, old, NOW, {}))
    assert events_to_send(state, RUNNING_SET, old, NOW + timedelta(minutes=5), sent) == []
    newer = NOW - timedelta(minutes=10)
    assert events_to_send(state, RUNNING_SET, newer, NOW, sent) == []  # fresh: no stall
    later = NOW + timedelta(minutes=15)
    assert kinds(events_to_send(state, RUNNING_SET, newer, later, sent)) == [STALL]  # stalled again


# --- the edge ----------------------------------------------------------------------------------------------------


class Recorder:
    def __init__(self, ok: bool = True) -> None:
        self.calls: list[tuple] = []
        self.ok = ok

    def __call__(self, system, event, prefix, details="", *, say=print, client=None) -> bool:
        self.calls.append((event, prefix))
        return self.ok


def store_with(tmp_path: Path, state: RunState) -> RunStateStore:
    store = RunStateStore(tmp_path / "state.json")
    store.write(state)
    return store


def test_nothing_without_a_topic(tmp_path: Path):
    recorder = Recorder()

    def no_progress(state):
        raise AssertionError("storage read without a topic")

    store = store_with(tmp_path, run())
    assert check(system(tmp_path), store=store, containers=RUNNING_SET, checkpoint_time=no_progress,
                 now=NOW, notify=recorder) == []
    assert recorder.calls == [] and not (tmp_path / "notified.json").exists()


def test_checkpoint_time_is_read_only_while_containers_run(tmp_path: Path):
    reads: list[str] = []
    recorder = Recorder()
    store = store_with(tmp_path, run())
    check(system(tmp_path, TOPIC), store=store, containers=EXITED_SET, now=NOW, notify=recorder,
          checkpoint_time=lambda state: reads.append(state.prefix))
    assert reads == [] and recorder.calls == [(FINISHED, "rl-deepracer-4")]


def test_a_failed_send_is_retried_at_the_next_check(tmp_path: Path):
    store = store_with(tmp_path, run())
    failing, working = Recorder(ok=False), Recorder()
    for notify in (failing, working, working):
        check(system(tmp_path, TOPIC), store=store, containers=[], now=NOW, notify=notify, say=lambda _: None)
    assert len(failing.calls) == 1 and working.calls == [(FINISHED, "rl-deepracer-4")]
    assert json.loads((tmp_path / "notified.json").read_text())["finished"] is True


class Engine:
    def __init__(self, containers) -> None:
        self.containers = containers

    def list(self, run=None, role=None):
        return list(self.containers)


def test_the_idle_check_sends_finished_and_still_records_the_run_as_ended(tmp_path: Path, monkeypatch):
    sent: list[str] = []
    monkeypatch.setitem(check.__kwdefaults__, "notify", lambda system, event, *a, **k: sent.append(event) or True)
    store = store_with(tmp_path, run())
    marker = tmp_path / "ready"
    marker.write_text("")
    idle_check(system(tmp_path, TOPIC), engine=Engine(EXITED_SET), store=store, idle_state=tmp_path / "idle.json",
               ready_marker=marker, now=NOW, booted=NOW - timedelta(hours=4), stop_host=lambda cloud: None,
               say=lambda _: None)
    assert sent == [FINISHED] and store.read().status == Status.ENDED


def test_a_watchdog_failure_never_stops_the_idle_check(tmp_path: Path, monkeypatch):
    import session.lifecycle.idle

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(session.lifecycle.idle, "watchdog_check", broken)  # the name idle calls
    said: list[str] = []
    store = store_with(tmp_path, run())
    marker = tmp_path / "ready"
    marker.write_text("")
    idle_check(system(tmp_path, TOPIC), engine=Engine(EXITED_SET), store=store, idle_state=tmp_path / "idle.json",
               ready_marker=marker, now=NOW, booted=NOW - timedelta(hours=4), stop_host=lambda cloud: None,
               say=said.append)
    assert "watchdog: boom" in said and store.read().status == Status.ENDED


# --- end to end through SNS --------------------------------------------------------------------------------------


def test_a_stall_then_the_finish_reach_the_topic_once_each(tmp_path: Path, s3_server: str):
    sns = boto3.client("sns", endpoint_url=s3_server, region_name="us-east-1")
    topic = sns.create_topic(Name="deepracer-watchdog")["TopicArn"]
    sqs = boto3.client("sqs", endpoint_url=s3_server, region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="watchdog-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    def via_moto(system, event, prefix, details="", *, say=print, client=None) -> bool:
        from session.lifecycle.notify import notify

        return notify(system, event, prefix, details, say=say, client=sns)

    settings = system(tmp_path, topic)
    store = store_with(tmp_path, run())
    checkpoint = lambda state: NOW - timedelta(minutes=25)  # noqa: E731 - a one-line stand-in
    for minutes in (0, 5):  # the stall, then the same stall again: once
        check(settings, store=store, containers=RUNNING_SET, checkpoint_time=checkpoint,
              now=NOW + timedelta(minutes=minutes), notify=via_moto, say=lambda _: None)
    for minutes in (10, 15):  # the containers exited: finished, once
        check(settings, store=store, containers=EXITED_SET, checkpoint_time=checkpoint,
              now=NOW + timedelta(minutes=minutes), notify=via_moto, say=lambda _: None)

    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    subjects = [json.loads(message["Body"])["Subject"] for message in messages]
    assert subjects == ["DeepRacer: training stalled (rl-deepracer-4)",
                        "DeepRacer: training finished (rl-deepracer-4)"]


def test_the_newest_checkpoints_time_comes_from_storage(s3_server: str):
    import uuid

    from session.lifecycle.watchdog import newest_checkpoint_time
    from session.storage.s3 import Storage

    bucket = f"watchdog-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    storage = Storage(bucket, "us-east-1", endpoint_url=s3_server)
    assert newest_checkpoint_time(storage, "m") is None
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    for name in ("1_Step-100.ckpt.index", "2_Step-200.ckpt.meta", "model_metadata.json"):
        s3.put_object(Bucket=bucket, Key=f"m/model/{name}", Body=b"x")
    stamp = newest_checkpoint_time(storage, "m")
    assert stamp is not None and stamp >= before  # 1_Step-100: 2 has no index file yet


def test_a_docker_failure_is_no_finish(tmp_path: Path, monkeypatch):
    from session.engine.containers import EngineError

    class Broken:
        def list(self, run=None, role=None):
            raise EngineError("cannot list containers: no socket")

    sent: list[str] = []
    monkeypatch.setitem(check.__kwdefaults__, "notify", lambda system, event, *a, **k: sent.append(event) or True)
    said: list[str] = []
    marker = tmp_path / "ready"
    marker.write_text("")
    idle_check(system(tmp_path, TOPIC), engine=Broken(), store=store_with(tmp_path, run()),
               idle_state=tmp_path / "idle.json", ready_marker=marker, now=NOW, booted=NOW - timedelta(hours=4),
               stop_host=lambda cloud: None, say=said.append)
    assert sent == [] and any(line.startswith("watchdog: cannot list containers") for line in said)
