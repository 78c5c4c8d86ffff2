"""The spot interruption watcher against A LOCAL HTTP SERVER THAT PLAYS THE METADATA ENDPOINTS: AWS IMDSv2's
`spot/instance-action` and Azure's Scheduled Events (tests/session/metadata_standin.py; no cloud is asked).

The graceful stop runs for real: a Docker Engine of the tests' own, moto's S3 API and the realistic simulator
stand-in of tests/session/standin (its trainer and workers write real checkpoints and metrics), as in
test_rehearsal_e2e.py, whose fixtures this module shares.
"""

from __future__ import annotations

import socket
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Iterator

import pytest

from session.core.config import load_system_config
from session.lifecycle.spot import AwsNotices, AzureNotices, Notice, SpotWatcher, handle_notice, stop_timeout, watch
from session.run.state import RunStateStore, Status, record_start
from session.run.training import run_containers, start_training
from tests.session import metadata_standin
from tests.session.metadata_standin import VM_NAME, MetadataStandin
from tests.session.run.test_rehearsal_e2e import (  # noqa: F401 - fixtures
    READY_S,
    Rehearsal,
    bridge_s3,
    checkpoints,
    poll,
    rehearsal,
    saved_logs,
    simapp_image,
    the_sibling,
)

CHECKPOINT_FILES = (".ckpt.index", ".ckpt.meta", ".ckpt.data-00000-of-00001")


@pytest.fixture
def metadata() -> Iterator[MetadataStandin]:
    standin, stop = metadata_standin.start()
    yield standin
    stop()


def azure_event(kind: str = "Preempt", *, seconds: float = 30, resources: tuple = (VM_NAME,),
                status: str = "Scheduled") -> dict:
    """A Scheduled Events entry as Azure writes it (NotBefore in RFC 1123, GMT)."""
    return {"EventId": str(uuid.uuid4()).upper(), "EventType": kind, "ResourceType": "VirtualMachine",
            "Resources": list(resources), "EventStatus": status,
            "NotBefore": format_datetime(datetime.now(timezone.utc) + timedelta(seconds=seconds), usegmt=True),
            "Description": "", "EventSource": "Platform", "DurationInSeconds": -1}


# --- AWS: IMDSv2 spot/instance-action -------------------------------------------------------------------------------

def test_aws_without_a_notice_nothing_is_stopped(metadata: MetadataStandin):
    handled, said = [], []
    watcher = SpotWatcher(AwsNotices(metadata.url), handled.append, say=said.append)
    assert watcher.check_once() is None
    assert watcher.check_once() is None
    assert handled == [] and said == []
    # IMDSv2: one session token, asked for with its TTL and sent with every read
    tokens = metadata.of("PUT", "/latest/api/token")
    assert len(tokens) == 1 and tokens[0].headers["x-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    reads = metadata.of("GET", "/latest/meta-data/spot/instance-action")
    assert len(reads) == 2 and all(r.headers["x-aws-ec2-metadata-token"] in metadata.aws_tokens for r in reads)


def test_an_aws_notice_is_handled_once_with_its_time(metadata: MetadataStandin):
    metadata.aws_action = {"action": "stop", "time": "2026-03-01T12:02:00Z"}
    handled: list[Notice] = []
    watcher = SpotWatcher(AwsNotices(metadata.url), handled.append, say=lambda _: None)
    notice = watcher.check_once()
    assert (notice.cloud, notice.action, notice.not_before) == (
        "aws", "stop", datetime(2026, 3, 1, 12, 2, tzinfo=timezone.utc))
    assert watcher.check_once() is None  # still announced: not handled twice
    assert handled == [notice]


def test_an_expired_aws_session_token_is_renewed(metadata: MetadataStandin):
    watcher = SpotWatcher(AwsNotices(metadata.url), lambda _: None, say=lambda _: None)
    assert watcher.check_once() is None
    metadata.expire_aws_tokens()  # e.g. after the instance was stopped and started again
    metadata.aws_action = {"action": "terminate", "time": "2026-03-01T12:02:00Z"}
    assert watcher.check_once().action == "terminate"
    assert len(metadata.of("PUT", "/latest/api/token")) == 2


# --- Azure: Scheduled Events ------------------------------------------------------------------------------------------

def test_azure_without_events_nothing_happens(metadata: MetadataStandin):
    handled = []
    assert SpotWatcher(AzureNotices(metadata.url), handled.append, say=lambda _: None).check_once() is None
    assert handled == [] and metadata.acks == []
    (read,) = metadata.of("GET", "/metadata/scheduledevents")
    assert read.headers["metadata"] == "true" and read.query["api-version"] == ["2020-07-01"]


def test_an_azure_preempt_of_this_vm_is_handled_then_acknowledged(metadata: MetadataStandin):
    order: list[str] = []
    metadata.on_ack = lambda _: order.append("acknowledged")
    event = azure_event("Preempt", seconds=30)
    metadata.azure_events = [event]
    watcher = SpotWatcher(AzureNotices(metadata.url), lambda _: order.append("handled"), say=lambda _: None)
    notice = watcher.check_once()
    assert (notice.cloud, notice.action, notice.event_id) == ("azure", "Preempt", event["EventId"])
    assert 25 < notice.seconds_left(datetime.now(timezone.utc)) <= 30
    assert order == ["handled", "acknowledged"]
    assert metadata.acks == [{"StartRequests": [{"EventId": event["EventId"]}]}]
    assert watcher.check_once() is None and len(metadata.acks) == 1


def test_azure_events_that_leave_this_vm_running_are_left_alone(metadata: MetadataStandin):
    metadata.azure_events = [azure_event("Freeze"), azure_event("Preempt", resources=("another-vm",))]
    handled = []
    assert SpotWatcher(AzureNotices(metadata.url), handled.append, say=lambda _: None).check_once() is None
    assert handled == [] and metadata.acks == []


def test_an_azure_event_already_started_is_handled_but_not_acknowledged(metadata: MetadataStandin):
    event = {**azure_event("Terminate"), "EventStatus": "Started", "NotBefore": ""}
    metadata.azure_events = [event]
    notice = SpotWatcher(AzureNotices(metadata.url), lambda _: None, say=lambda _: None).check_once()
    assert (notice.action, notice.not_before) == ("Terminate", None)
    assert metadata.acks == []  # Azure approves scheduled events only


# --- the watcher ------------------------------------------------------------------------------------------------------

def test_an_unreachable_endpoint_is_reported_once_and_watching_goes_on():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    said: list[str] = []
    watcher = SpotWatcher(AwsNotices(url, timeout=1), lambda _: None, say=said.append)
    assert watcher.check_once() is None and watcher.check_once() is None
    assert len(said) == 1 and said[0].startswith(f"spot watch: cannot reach {url}/latest/api/token")


def test_the_watcher_polls_every_5_seconds(metadata: MetadataStandin):
    sleeps: list[float] = []
    SpotWatcher(AwsNotices(metadata.url), lambda _: None, sleep=sleeps.append, say=lambda _: None).run(checks=3)
    assert sleeps == [5.0, 5.0]
    assert len(metadata.of("GET", "/latest/meta-data/spot/instance-action")) == 3


def test_stop_timeouts_fit_three_phases_and_the_logs_into_the_notice():
    assert stop_timeout(120) == 20  # AWS: two minutes
    assert stop_timeout(30) == 5  # Azure: about 30 s
    assert (stop_timeout(None), stop_timeout(6), stop_timeout(3600)) == (5, 3, 30)


def test_spot_watch_returns_at_once_where_no_cloud_sends_notices(tmp_path: Path):
    (tmp_path / "system.env").write_text("DR_CLOUD=local\nDR_SIMAPP_VERSION=6.0.4-cpu\n")
    said: list[str] = []
    assert watch(load_system_config(tmp_path / "system.env", environ={}), say=said.append) == 0
    assert said == ["spot watch: DR_CLOUD=local sends no interruption notices; nothing to watch"]


def test_a_notice_without_a_recorded_run_stops_nothing_and_is_still_acknowledged(metadata: MetadataStandin,
                                                                               tmp_path: Path):
    metadata.azure_events = [azure_event("Preempt")]
    store, said = RunStateStore(tmp_path / "state.json"), []

    def no_host(*_):
        raise AssertionError("nothing is recorded as running: no host to build")

    watcher = SpotWatcher(AzureNotices(metadata.url),
                          lambda notice: handle_notice(notice, store=store, host_factory=no_host, say=said.append),
                          say=said.append)
    assert watcher.check_once() is not None
    assert f"no training is recorded as starting, running or resuming in {store.path}: nothing to stop" in said
    assert len(metadata.acks) == 1 and store.read() is None


# --- the graceful stop, on the real Docker Engine ------------------------------------------------------------------

def test_a_preempt_notice_mid_iteration_stops_training_gracefully_and_leaves_it_resumable(
        rehearsal: Rehearsal, metadata: MetadataStandin, tmp_path: Path):
    model = f"spot-{uuid.uuid4().hex[:6]}-1"
    rehearsal.write(f"DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX={model}\n"
                    "DR_TRAIN_MIN_EVAL_TRIALS=1\n", workers=2)
    host = rehearsal.host()
    storage = host.storage
    start_training(host, say=lambda _: None, timeout_s=READY_S)
    store = RunStateStore(tmp_path / "run" / "state.json")
    store.path.parent.mkdir()
    record_start(store, host, rehearsal.run_env, rehearsal.folder / "system.env")
    # mid-iteration: the first trained checkpoint is saved and the workers play the next iteration's episodes
    poll(lambda: any(int(name.split("_")[0]) >= 1 for name in checkpoints(storage, model)), "checkpoint 1")

    order: list[str] = []
    metadata.on_ack = lambda _: order.append("acknowledged")
    metadata.azure_events = [azure_event("Preempt", seconds=30)]
    said: list[str] = []
    reports = []

    def after_stop(stopped_host, stopped) -> None:  # e.g. Azure's copy to Blob: once the stop is recorded
        recorded = store.read()
        order.append(f"after stop: {len(stopped)} containers, {recorded.status} at {recorded.checkpoint}")

    def handle(notice: Notice) -> None:
        reports.append(handle_notice(notice, store=store, host_factory=lambda *_: rehearsal.host(),
                                     after_stop=after_stop, say=said.append))
        order.append("stopped")

    assert SpotWatcher(AzureNotices(metadata.url), handle, say=said.append).check_once().action == "Preempt"
    state = store.read()
    # Azure may go ahead once training is stopped, not before
    assert order == [f"after stop: 4 containers, interrupted at {state.checkpoint}", "stopped", "acknowledged"]

    # stopped with stop_training: trainer, its SageMaker sibling and the workers; their logs beside the model
    sibling = the_sibling(host)
    assert sorted(c.id for c in reports[0].stopped) == sorted(
        c.id for c in run_containers(host.engine, host.system, host.run))
    assert sibling.id in {c.id for c in reports[0].stopped} and len(reports[0].stopped) == 4
    assert not any(c.running for c in run_containers(host.engine, host.system, host.run))
    assert saved_logs(storage, model) == ["sagemaker.log", "trainer.log", "worker-1.log", "worker-2.log"]

    # the newest checkpoint whose files are all in storage is recorded, and the run is resumable
    assert (state.status, state.prefix, state.run_id) == (Status.INTERRUPTED, model, host.run.run_id)
    assert state.reason.startswith("spot interruption (azure announces 'Preempt' in ")
    names = {info.key.rsplit("/", 1)[-1] for info in storage.list_objects(f"{model}/model/")}
    complete = [name for name in checkpoints(storage, model)
                if all(name.removesuffix(".ckpt") + suffix in names for suffix in CHECKPOINT_FILES)]
    assert state.checkpoint == complete[-1] and int(state.checkpoint.split("_")[0]) >= 1
    assert f"newest checkpoint in storage: s3://{rehearsal.bucket}/{model}/model/{state.checkpoint}" in said
    assert state.stopped is not None and state.stopped >= state.started and state.message == ""
