"""Spot interruption and resume end to end: train -> checkpoints -> an interruption notice mid-iteration ->
the checkpoint kept -> `resume` (what deepracer-resume.service runs at boot) continues under the next prefix
from that checkpoint, and training really starts again.

Real: the production code, a Docker Engine of the tests' own, moto's S3 API. Stand-ins: the simulator
(tests/session/standin, the realistic one of test_rehearsal_e2e.py, whose fixtures this module shares) and A
LOCAL HTTP SERVER PLAYING AWS' METADATA ENDPOINT (IMDSv2 spot/instance-action; tests/session/metadata_standin.py).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from session.lifecycle.resume import resume
from session.lifecycle.spot import AwsNotices, SpotWatcher, handle_notice
from session.run.state import RunState, RunStateError, RunStateStore, Status, record_start
from session.run.training import run_containers, start_training, stop_training
from tests.session import metadata_standin
from tests.session.metadata_standin import MetadataStandin
from tests.session.run.test_rehearsal_e2e import (  # noqa: F401 - fixtures
    IMAGE_SOURCE,
    READY_S,
    STOP_S,
    Rehearsal,
    bridge_s3,
    checkpoints,
    poll,
    rehearsal,
    simapp_image,
    the_sibling,
)


@pytest.fixture
def metadata() -> Iterator[MetadataStandin]:
    standin, stop = metadata_standin.start()
    yield standin
    stop()


@pytest.fixture
def store(tmp_path: Path) -> RunStateStore:
    (tmp_path / "run").mkdir()
    return RunStateStore(tmp_path / "run" / "state.json")


def no_host(*_):
    raise AssertionError("resume must not get as far as building a host")


def test_interrupted_mid_iteration_then_resumed_from_the_kept_checkpoint_under_the_next_prefix(
        rehearsal: Rehearsal, metadata: MetadataStandin, store: RunStateStore):
    model = f"resume-{uuid.uuid4().hex[:6]}-1"
    rehearsal.write(f"DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX={model}\n"
                    "DR_TRAIN_MIN_EVAL_TRIALS=1\n", workers=2)
    host = rehearsal.host()
    storage = host.storage
    system_env = rehearsal.folder / "system.env"

    # train, recorded as `train` records it (with a time limit, which the resumed run carries on)
    start_training(host, say=lambda _: None, timeout_s=READY_S)
    first = record_start(store, host, rehearsal.run_env, system_env, max_minutes=600)
    poll(lambda: any(int(name.split("_")[0]) >= 1 for name in checkpoints(storage, model)), "checkpoint 1")

    # the interruption notice, mid-iteration: graceful stop, checkpoint recorded
    metadata.aws_action = {"action": "stop",
                           "time": (datetime.now(timezone.utc) + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    said: list[str] = []
    watcher = SpotWatcher(AwsNotices(metadata.url), lambda notice: handle_notice(
        notice, store=store, host_factory=lambda *_: rehearsal.host(), say=said.append), say=said.append)
    assert watcher.check_once().action == "stop"
    interrupted = store.read()
    assert (interrupted.status, interrupted.prefix) == (Status.INTERRUPTED, model)
    kept = interrupted.checkpoint
    number = int(kept.split("_")[0])
    assert number >= 1 and kept in checkpoints(storage, model)
    assert not any(c.running for c in run_containers(host.engine, host.system, host.run))
    old_objects = {info.key: info.etag for info in storage.list_objects(f"{model}/")}

    # the host is back: resume, without the user
    armed: list[RunState] = []
    result = resume(store, host_factory=lambda *_: rehearsal.host(), say=said.append, ready_timeout_s=READY_S,
                    arm=lambda _, state: armed.append(state) or "armed")
    new_model = model.removesuffix("-1") + "-2"
    assert result.resumed, result.message
    assert result.message == f"training {new_model}, continued from s3://{rehearsal.bucket}/{model}/model/{kept}"

    # run.env: the next prefix, pretrained from the interrupted model's recorded checkpoint, exported on its own
    # as that package's last (simapp 6.0.4 starts only from best or last, issue 10)
    base = f"{model}-checkpoint-{number}"
    host = rehearsal.host()
    run = host.run
    assert (run.local_s3_model_prefix, run.local_s3_pretrained, run.local_s3_pretrained_prefix,
            run.local_s3_pretrained_checkpoint) == (new_model, True, base, "last")
    assert storage.get_json(f"{base}/model/deepracer_checkpoints.json")["last_checkpoint"]["name"] == kept
    assert result.increment.backup is not None and result.increment.backup.is_file()

    # and it really trains again: the trainer restored that checkpoint and saves the new model's own
    started = [c for c in run_containers(host.engine, host.system, host.run) if c.running]
    assert {c.role for c in started} >= {"trainer", "worker"}
    sibling = the_sibling(host)
    poll(lambda: checkpoints(storage, new_model), "the resumed model's first checkpoint")
    weights = storage.get_json(f"{new_model}/model/{checkpoints(storage, new_model)[0]}.data-00000-of-00001")
    assert weights["trained_from"] == f"s3://{rehearsal.bucket}/{base}/model/{kept}"
    assert f"Checkpoint> Restoring from path=./pretrained_checkpoint_sagemaker/agent/{kept}" in \
        host.engine.logs(sibling)

    # recorded as running, with the time limit carried on (what was trained before counts) and re-armed
    state = store.read()
    assert (state.status, state.prefix, state.resumed_from, state.max_minutes) == (
        Status.RUNNING, new_model, f"{model}@{kept}", 600)
    assert state.trained_s == (interrupted.stopped - first.started).total_seconds() > 0
    assert state.deadline == state.started + timedelta(minutes=600, seconds=-state.trained_s) and armed == [state]

    # the interrupted model is untouched; a second resume finds nothing interrupted
    assert {info.key: info.etag for info in storage.list_objects(f"{model}/")} == old_objects
    again = resume(store, host_factory=no_host, say=said.append)
    assert not again.resumed and again.message.startswith(f"{new_model} is recorded as running")
    stop_training(host, say=lambda _: None, timeout=STOP_S)


@pytest.mark.parametrize("force", [False, True], ids=["at boot", "forced"])
def test_resume_with_the_recorded_checkpoint_not_kept_continues_from_the_newest_one_in_storage_and_says_what_was_lost(
        rehearsal: Rehearsal, store: RunStateStore, force: bool):
    # Azure: the notice recorded checkpoint 5, then its 30 s ended before the copy to Blob did; the deallocation
    # emptied MinIO, and the restore from Blob brings back checkpoint 3 complete and 5 in part.
    model = f"gone-{uuid.uuid4().hex[:6]}-1"
    rehearsal.write(f"DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX={model}\n", workers=1)
    host = rehearsal.host()
    for suffix in (".ckpt.index", ".ckpt.meta", ".ckpt.data-00000-of-00001"):
        host.storage.put_text(f"{model}/model/3_Step-300{suffix}", "weights")
    host.storage.put_text(f"{model}/model/5_Step-500.ckpt.index", "the rest never arrived")
    interrupted = RunState(status=Status.INTERRUPTED, run_id=host.run.run_id, prefix=model, run_env=str(rehearsal.run_env),
                           system_env=str(rehearsal.folder / "system.env"),
                           started=datetime(2026, 3, 1, 10, tzinfo=timezone.utc), checkpoint="5_Step-500.ckpt",
                           stopped=datetime(2026, 3, 1, 11, tzinfo=timezone.utc), reason="spot interruption")
    store.write(interrupted)
    said: list[str] = []

    restored: list[str] = []  # e.g. Azure: the prefix back from Blob before its checkpoint is looked for
    result = resume(store, force=force, host_factory=lambda *_: rehearsal.host(), say=said.append,
                    ready_timeout_s=READY_S, restore=lambda _, prefix: restored.append(prefix))

    assert restored == [model]
    assert result.resumed, result.message
    # one hour for checkpoints 0..5: the two after 3 are about 20 minutes
    assert (f"checkpoint 5 of {model} (5_Step-500.ckpt) was not kept; resuming from 3 (3_Step-300.ckpt): about 20 "
            "min of training lost") in said
    new_model = model.removesuffix("-1") + "-2"
    state = store.read()
    assert (state.status, state.prefix, state.resumed_from) == (Status.RUNNING, new_model, f"{model}@3_Step-300.ckpt")
    base = f"{model}-checkpoint-3"
    assert rehearsal.host().run.local_s3_pretrained_prefix == base
    assert host.storage.get_json(f"{base}/model/deepracer_checkpoints.json")["last_checkpoint"]["name"] == \
        "3_Step-300.ckpt"
    stop_training(rehearsal.host(), say=lambda _: None, timeout=STOP_S)


def test_resume_with_no_complete_checkpoint_left_says_so_and_does_nothing(rehearsal: Rehearsal, store: RunStateStore):
    model = f"none-{uuid.uuid4().hex[:6]}-1"
    rehearsal.write(f"DR_LOCAL_S3_MODEL_PREFIX={model}\n", workers=1)
    host = rehearsal.host()
    host.storage.put_text(f"{model}/model/5_Step-500.ckpt.index", "the rest never arrived")
    interrupted = RunState(status=Status.INTERRUPTED, run_id=host.run.run_id, prefix=model, run_env=str(rehearsal.run_env),
                           system_env=str(rehearsal.folder / "system.env"),
                           started=datetime(2026, 3, 1, 10, tzinfo=timezone.utc), checkpoint="5_Step-500.ckpt")
    store.write(interrupted)
    run_env_text = rehearsal.run_env.read_text()
    result = resume(store, host_factory=lambda *_: rehearsal.host(), say=lambda _: None, restore=lambda *_: None)
    assert (result.resumed, result.message) == (False, (
        f"the last checkpoint of {model}, 5_Step-500.ckpt, is not in storage, nor any other complete one "
        f"(s3://{rehearsal.bucket}/{model}/model/): nothing resumed"))
    assert rehearsal.run_env.read_text() == run_env_text and store.read() == interrupted
    assert run_containers(host.engine, host.system, host.run) == []


def test_an_interruption_before_the_first_checkpoint_leaves_nothing_to_resume(
        rehearsal: Rehearsal, store: RunStateStore):
    model = f"early-{uuid.uuid4().hex[:6]}-1"
    rehearsal.write(f"DR_LOCAL_S3_MODEL_PREFIX={model}\n", workers=1)
    host = rehearsal.host()
    store.write(RunState(status=Status.INTERRUPTED, run_id=host.run.run_id, prefix=model, run_env=str(rehearsal.run_env),
                         system_env=str(rehearsal.folder / "system.env"),
                         started=datetime(2026, 3, 1, 10, tzinfo=timezone.utc)))
    result = resume(store, host_factory=lambda *_: rehearsal.host(), say=lambda _: None)
    assert result.message == (f"{model} has no complete checkpoint in storage "
                              f"(s3://{rehearsal.bucket}/{model}/model/): nothing resumed")
    assert store.read().status == Status.INTERRUPTED


@pytest.mark.parametrize("status, why", [
    (Status.RUNNING, "the host went down without an interruption notice, or the run was stopped outside `deepracer stop`"),
    (Status.TIME_LIMIT, "time limit of 60 min reached"),
    (Status.RESUMING, "a resume of it started and did not finish"),
])
def test_only_an_interrupted_run_resumes_by_itself(store: RunStateStore, status: str, why: str):
    state = RunState(status=status, run_id=3, prefix="model-4", run_env="/home/u/deepracer/run.env",
                     system_env="/etc/deepracer/system.env", started=datetime(2026, 3, 1, tzinfo=timezone.utc),
                     reason="time limit of 60 min reached" if status == Status.TIME_LIMIT else "")
    store.write(state)
    result = resume(store, host_factory=no_host, say=lambda _: None)
    assert not result.resumed
    assert result.message == (f"model-4 is recorded as {status} ({why}): not resuming it by itself; "
                              "`deepracer resume --force` continues it from its newest checkpoint")
    assert store.read() == state


def test_a_used_up_time_limit_is_not_resumed_even_when_forced(rehearsal: Rehearsal, store: RunStateStore):
    model = f"limit-{uuid.uuid4().hex[:6]}-1"
    rehearsal.write(f"DR_LOCAL_S3_MODEL_PREFIX={model}\n", workers=1)
    host = rehearsal.host()
    for suffix in (".ckpt.index", ".ckpt.meta", ".ckpt.data-00000-of-00001"):
        host.storage.put_text(f"{model}/model/2_Step-200{suffix}", "weights")
    started = datetime(2026, 3, 1, 10, tzinfo=timezone.utc)
    state = RunState(status=Status.TIME_LIMIT, run_id=host.run.run_id, prefix=model, run_env=str(rehearsal.run_env),
                     system_env=str(rehearsal.folder / "system.env"), started=started, max_minutes=60,
                     trained_s=1800, stopped=started + timedelta(minutes=30), checkpoint="2_Step-200.ckpt")
    store.write(state)
    result = resume(store, force=True, host_factory=lambda *_: rehearsal.host(), say=lambda _: None)
    assert result.message == f"{model} used up its time limit (60 min of training): not resuming"
    assert store.read() == state


def test_nothing_recorded_nothing_resumed(store: RunStateStore):
    result = resume(store, host_factory=no_host, say=lambda _: None)
    assert result.message == f"no run is recorded in {store.path}: nothing to resume"


def test_the_state_file_round_trips_and_a_broken_one_is_one_line(store: RunStateStore):
    state = RunState(status=Status.INTERRUPTED, run_id=1, prefix="m-1", run_env="/r/run.env", system_env="/s/system.env",
                     started=datetime(2026, 3, 1, 10, 0, 5, tzinfo=timezone.utc), max_minutes=90, trained_s=120.5,
                     checkpoint="7_Step-700.ckpt", stopped=datetime(2026, 3, 1, 11, tzinfo=timezone.utc))
    store.write(state)
    assert store.read() == state
    assert json.loads(store.path.read_text())["version"] == 1
    assert state.deadline == datetime(2026, 3, 1, 11, 28, 4, 500000, tzinfo=timezone.utc)  # 90 min less 120.5 s
    assert replace(state, max_minutes=None).deadline is None
    store.path.write_text("{not json")
    with pytest.raises(RunStateError, match=rf"^{store.path}: expected the run state's JSON, got something else"):
        store.read()


def test_an_unwritable_state_folder_is_refused_before_training(tmp_path: Path):
    with pytest.raises(RunStateError, match=r"missing: expected a folder you can write for the run state"):
        RunStateStore(tmp_path / "missing" / "state.json").check_writable()


def test_a_resume_that_cannot_start_is_recorded_as_failed_and_not_tried_again_by_itself(
        rehearsal: Rehearsal, store: RunStateStore):
    model = f"nostart-{uuid.uuid4().hex[:6]}-1"
    rehearsal.write(f"DR_LOCAL_S3_MODEL_PREFIX={model}\n", workers=1)
    system_env = rehearsal.folder / "system.env"
    system_env.write_text(system_env.read_text().replace("DR_SIMAPP_VERSION=6.0.4-cpu", "DR_SIMAPP_VERSION=0.0.0-cpu"))
    host = rehearsal.host()
    for suffix in (".ckpt.index", ".ckpt.meta", ".ckpt.data-00000-of-00001"):
        host.storage.put_text(f"{model}/model/4_Step-400{suffix}", "weights")
    store.write(RunState(status=Status.INTERRUPTED, run_id=host.run.run_id, prefix=model, run_env=str(rehearsal.run_env),
                         system_env=str(system_env), started=datetime(2026, 3, 1, 10, tzinfo=timezone.utc),
                         stopped=datetime(2026, 3, 1, 11, tzinfo=timezone.utc), checkpoint="4_Step-400.ckpt"))

    result = resume(store, host_factory=lambda *_: rehearsal.host(), say=lambda _: None)

    new_model = model.removesuffix("-1") + "-2"
    assert (result.resumed, result.failed) == (False, True)
    assert result.message == (f"{new_model} did not start: image {IMAGE_SOURCE}:0.0.0-cpu is not on this host; pull "
                              f"it with `docker pull {IMAGE_SOURCE}:0.0.0-cpu`; `deepracer resume --force` tries "
                              f"again (from {model}'s checkpoint 4_Step-400.ckpt, under the next free prefix)")
    assert store.read().status == Status.RESUME_FAILED and store.read().message == result.message
    assert not resume(store, host_factory=no_host, say=lambda _: None).resumed  # not by itself at the next boot

    # the advice holds: once the image is there, `resume --force` continues from the same checkpoint
    system_env.write_text(system_env.read_text().replace("DR_SIMAPP_VERSION=0.0.0-cpu", "DR_SIMAPP_VERSION=6.0.4-cpu"))
    again = resume(store, force=True, host_factory=lambda *_: rehearsal.host(), say=lambda _: None,
                   ready_timeout_s=READY_S)
    assert again.resumed, again.message
    state = store.read()
    assert (state.status, state.resumed_from) == (Status.RUNNING, f"{model}@4_Step-400.ckpt")
    assert state.prefix == rehearsal.host().run.local_s3_model_prefix
    stop_training(rehearsal.host(), say=lambda _: None, timeout=STOP_S)


def test_a_resume_whose_start_fails_after_the_uploads_is_tried_again_under_the_next_free_prefix(
        rehearsal: Rehearsal, store: RunStateStore):
    # The inputs are under the new prefix already (a start that failed in the simulator, not before it): `train`
    # would refuse that prefix; `resume --force` goes on from the same checkpoint under the one after it.
    model = f"retry-{uuid.uuid4().hex[:6]}-1"
    rehearsal.write(f"DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX={model}\n", workers=1)
    host = rehearsal.host()
    for suffix in (".ckpt.index", ".ckpt.meta", ".ckpt.data-00000-of-00001"):
        host.storage.put_text(f"{model}/model/4_Step-400{suffix}", "weights")
    store.write(RunState(status=Status.INTERRUPTED, run_id=host.run.run_id, prefix=model, run_env=str(rehearsal.run_env),
                         system_env=str(rehearsal.folder / "system.env"),
                         started=datetime(2026, 3, 1, 10, tzinfo=timezone.utc),
                         stopped=datetime(2026, 3, 1, 11, tzinfo=timezone.utc), checkpoint="4_Step-400.ckpt"))
    failed = resume(store, host_factory=lambda *_: rehearsal.host(), say=lambda _: None, ready_timeout_s=0.5)
    second = model.removesuffix("-1") + "-2"
    assert failed.failed and failed.message.startswith(f"{second} did not start: ")
    assert failed.message.endswith(f"`deepracer resume --force` tries again (from {model}'s checkpoint "
                                   "4_Step-400.ckpt, under the next free prefix)")
    assert host.storage.prefix_has_objects(f"{second}/")  # its inputs were uploaded

    again = resume(store, force=True, host_factory=lambda *_: rehearsal.host(), say=lambda _: None,
                   ready_timeout_s=READY_S)
    third = model.removesuffix("-1") + "-3"
    assert again.resumed, again.message
    state = store.read()
    assert (state.status, state.prefix, state.resumed_from) == (Status.RUNNING, third, f"{model}@4_Step-400.ckpt")
    stop_training(rehearsal.host(), say=lambda _: None, timeout=STOP_S)
