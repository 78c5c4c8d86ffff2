"""Issue 15, item 2: a spot notice during `train`'s or `resume`'s start-up (the minutes before the simulator
runs) stops it and leaves it resumable, as one while it runs does.

Real: the production code, a Docker Engine of the tests' own, moto's S3 API; the simulator is the realistic
stand-in of test_rehearsal_e2e.py, whose fixtures this module shares. The notice is handed to handle_notice as
the spot watcher would (AWS' two minutes ahead).
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from session.lifecycle.resume import resume
from session.lifecycle.spot import Notice, handle_notice
from session.run.state import RunState, RunStateStore, Status
from session.run.training import TrainingError, run_containers, stop_training
from tests.session.run.test_rehearsal_e2e import (  # noqa: F401 - fixtures
    READY_S,
    STOP_S,
    Rehearsal,
    bridge_s3,
    checkpoints,
    poll,
    rehearsal,
    simapp_image,
)

CHECKPOINT_FILES = (".ckpt.index", ".ckpt.meta", ".ckpt.data-00000-of-00001")


@pytest.fixture
def store(tmp_path: Path) -> RunStateStore:
    (tmp_path / "run").mkdir()
    return RunStateStore(tmp_path / "run" / "state.json")


def in_background(work: Callable[[], Any]) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def notice() -> Notice:
    return Notice("aws", "stop", datetime.now(timezone.utc) + timedelta(minutes=2))


def starting_with_a_container(store: RunStateStore, rehearsal: Rehearsal) -> RunState:
    """The moment a notice must not miss: recorded as starting, a container up, the simulator not yet ready."""
    def check():
        state = store.read_or_none()
        if state is None or state.status.value != "starting":  # by value: the old code has no such status
            return None
        host = rehearsal.host()
        return state if any(c.running for c in run_containers(host.engine, host.system, host.run)) else None

    return poll(check, "a recorded start-up with a running container", timeout_s=READY_S)  # type: ignore[return-value]


def test_a_notice_during_trains_start_up_stops_it_and_leaves_it_resumable(rehearsal: Rehearsal, store: RunStateStore):
    from session.run.training import start_recorded  # new with the fix: this module runs against the old code too

    model = f"boot-{uuid.uuid4().hex[:6]}-1"
    rehearsal.write(f"DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX={model}\n", workers=1)
    host = rehearsal.host()
    thread, outcome = in_background(lambda: start_recorded(host, store, rehearsal.run_env,
                                                           rehearsal.folder / "system.env", timeout_s=READY_S,
                                                           say=lambda _: None))
    starting = starting_with_a_container(store, rehearsal)
    assert starting.prefix == model

    said: list[str] = []
    report = handle_notice(notice(), store=store, host_factory=lambda *_: rehearsal.host(), say=said.append)
    thread.join(READY_S)

    assert report is not None and report.stopped  # stopped, not ignored
    state = store.read()
    assert (state.status, state.prefix, state.token) == (Status.INTERRUPTED, model, starting.token)
    assert state.reason.startswith("spot interruption (aws announces 'stop' in ")
    assert not any(c.running for c in run_containers(host.engine, host.system, host.run))
    # `train` says what happened; the record stays interrupted (its failed start does not end it)
    assert isinstance(outcome.get("error"), TrainingError)
    assert str(outcome["error"]).startswith(f"the start of {model} was interrupted (spot interruption")


def test_a_notice_during_resumes_start_up_stops_it_and_the_next_boot_resumes_it(rehearsal: Rehearsal,
                                                                                 store: RunStateStore):
    model = f"reboot-{uuid.uuid4().hex[:6]}-1"
    rehearsal.write(f"DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX={model}\n", workers=1)
    host = rehearsal.host()
    for suffix in CHECKPOINT_FILES:
        host.storage.put_text(f"{model}/model/4_Step-400{suffix}", "weights")
    store.write(RunState(status=Status.INTERRUPTED, run_id=host.run.run_id, prefix=model,
                         run_env=str(rehearsal.run_env), system_env=str(rehearsal.folder / "system.env"),
                         started=datetime(2026, 3, 1, 10, tzinfo=timezone.utc), checkpoint="4_Step-400.ckpt",
                         stopped=datetime(2026, 3, 1, 11, tzinfo=timezone.utc), reason="spot interruption"))

    # at boot: resume starts the next part; a notice comes during its start-up
    thread, outcome = in_background(lambda: resume(store, host_factory=lambda *_: rehearsal.host(),
                                                   say=lambda _: None, ready_timeout_s=READY_S))
    part = starting_with_a_container(store, rehearsal)
    second = model.removesuffix("-1") + "-2"
    assert (part.prefix, part.resumed_from) == (second, f"{model}@4_Step-400.ckpt")
    report = handle_notice(notice(), store=store, host_factory=lambda *_: rehearsal.host(), say=lambda _: None)
    thread.join(READY_S)

    assert report is not None and report.stopped
    assert not any(c.running for c in run_containers(host.engine, host.system, rehearsal.host().run))
    interrupted = store.read()
    assert (interrupted.status, interrupted.prefix) == (Status.INTERRUPTED, second)
    result = outcome["result"]
    assert not result.resumed and not result.failed
    assert result.message.startswith(f"the resume of {model} was interrupted (spot interruption")

    # the next boot resumes it: from the part's own checkpoint if it saved one, else from the one it started from
    again = resume(store, host_factory=lambda *_: rehearsal.host(), say=lambda _: None, ready_timeout_s=READY_S)
    assert again.resumed, again.message
    third = model.removesuffix("-1") + "-3"
    expected = f"{second}@{checkpoints(host.storage, second)[-1]}" if checkpoints(host.storage, second) else \
        f"{model}@4_Step-400.ckpt"
    state = store.read()
    assert (state.status, state.prefix, state.resumed_from) == (Status.RUNNING, third, expected)
    stop_training(rehearsal.host(), say=lambda _: None, timeout=STOP_S)


def test_a_resume_cut_short_after_it_rewrote_run_env_is_taken_up_by_the_next_one(rehearsal: Rehearsal,
                                                                                  store: RunStateStore):
    # A notice (or the host going down) while the resume held `resuming`: run.env names the new prefix already,
    # the record still the interrupted model. The next resume recognises its own rewrite and goes on.
    model = f"cut-{uuid.uuid4().hex[:6]}-1"
    second = model.removesuffix("-1") + "-2"
    rehearsal.write(f"DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX={model}\n", workers=1)
    host = rehearsal.host()
    for suffix in CHECKPOINT_FILES:
        host.storage.put_text(f"{model}/model/4_Step-400{suffix}", "weights")
    store.write(RunState(status=Status.INTERRUPTED, run_id=host.run.run_id, prefix=model,
                         run_env=str(rehearsal.run_env), system_env=str(rehearsal.folder / "system.env"),
                         started=datetime(2026, 3, 1, 10, tzinfo=timezone.utc), checkpoint="4_Step-400.ckpt",
                         stopped=datetime(2026, 3, 1, 11, tzinfo=timezone.utc), reason="spot interruption"))
    rehearsal.write(f"DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX={second}\n"
                    f"DR_LOCAL_S3_PRETRAINED=True\nDR_LOCAL_S3_PRETRAINED_PREFIX={model}-checkpoint-4\n"
                    "DR_LOCAL_S3_PRETRAINED_CHECKPOINT=last\n", workers=1)

    result = resume(store, host_factory=lambda *_: rehearsal.host(), say=lambda _: None, ready_timeout_s=READY_S)
    assert result.resumed, result.message
    state = store.read()
    assert (state.status, state.prefix, state.resumed_from) == (Status.RUNNING, second, f"{model}@4_Step-400.ckpt")
    stop_training(rehearsal.host(), say=lambda _: None, timeout=STOP_S)
