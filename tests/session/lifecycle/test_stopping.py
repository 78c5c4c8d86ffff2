"""Issue 15, item 4: what the graceful stop keeps (Azure: copies to Blob) when the stop itself failed, and when
only an evaluation runs. Azurite plays the blob container and moto's S3 server MinIO (test_blob_sync.py's
fixtures); the engine is a list of containers where no container needs to run."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from session.lifecycle import stopping
from session.lifecycle.spot import Notice, handle_notice
from session.lifecycle.stopping import interrupt
from session.run.state import Event, RunState, RunStateStore, Status
from session.storage.s3 import StorageError
from tests.azure_fakes import azure_cert, azurite  # noqa: F401 - fixtures
from tests.session.storage.test_blob_sync import (  # noqa: F401 - fixtures
    PREFIX,
    ListingEngine,
    blob,
    blob_etags,
    container,
    host_for,
    model,
    stopped,
    synced,
)

START = datetime(2026, 3, 1, 10, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path: Path) -> RunStateStore:
    store = RunStateStore(tmp_path / "state.json")
    store.write(RunState(status=Status.RUNNING, run_id=3, prefix="rl-3", run_env=str(tmp_path / "run.env"),
                         system_env=str(tmp_path / "system.env"), started=START))
    return store


class RecordingKeeper:
    active = True

    def __init__(self) -> None:
        self.kept: list[list[str]] = []

    def keep(self, prefixes, **_):
        self.kept.append(list(prefixes))
        return []


def test_a_stop_that_failed_half_way_still_keeps_the_runs_models(store: RunStateStore, monkeypatch):
    def failing_stop(*_, **__):
        raise StorageError("s3://models/rl-3/logs/: the endpoint did not answer")

    monkeypatch.setattr(stopping, "stop_training", failing_stop)
    keeper = RecordingKeeper()
    host = SimpleNamespace(keeper=keeper, engine=ListingEngine([]),
                           run=SimpleNamespace(local_s3_model_prefix="rl-3"))
    said: list[str] = []
    report = interrupt(store, event=Event.NOTICE, reason="spot interruption", timeout=1,
                       host_factory=lambda *_: host, say=said.append)  # type: ignore[arg-type, return-value]

    assert report is not None and report.error == "StorageError: s3://models/rl-3/logs/: the endpoint did not answer"
    assert keeper.kept == [["rl-3"]]  # what reached MinIO before the failure is copied all the same
    state = store.read()
    assert (state.status, state.message) == (Status.INTERRUPTED, report.error)


def test_a_notice_while_only_an_evaluation_runs_keeps_the_evaluated_model(tmp_path: Path, storage, blob, container,
                                                                           model, monkeypatch):
    empty = RunStateStore(tmp_path / "run-state.json")  # no training recorded
    keeper = replace(host_for(tmp_path, storage), mirror=blob).keeper
    evaluating = replace(stopped("evaluation", PREFIX), status="running", finished_at=None)
    engine = ListingEngine([evaluating])
    said: list[str] = []

    def no_host(*_):
        raise AssertionError("no training is recorded: no run's host to build")

    notice = Notice("azure", "Preempt", datetime.now(timezone.utc) + timedelta(seconds=30), event_id="E1")
    assert handle_notice(notice, store=empty, host_factory=no_host, say=said.append,
                         bystanders=lambda: (keeper, engine)) is None

    assert sorted(blob_etags(container)) == [f"{PREFIX}/{rel}" for rel in synced(model)]
    assert said[0] == f"no training is recorded as starting, running or resuming in {empty.path}: nothing to stop"
    assert said[1].startswith(f"s3://{storage.bucket}/{PREFIX}/ -> {blob.url}/{PREFIX}/: ")
