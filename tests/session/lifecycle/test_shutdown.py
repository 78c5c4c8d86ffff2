"""Issue 15, item 3: a shutdown without a notice (a reboot, a retirement, `aws ec2 stop-instances`, an Azure portal
stop; AWS' notices are best-effort) stops training as a notice does and leaves it resumable.

deepracer-shutdown.service is checked as systemd reads it (`systemd-analyze verify` offline, and its keys); the
hook it runs (`deepracer shutdown-stop`, session.lifecycle.shutdown) runs for real against the stand-in simulator
of test_rehearsal_e2e.py on the tests' own Docker Engine, whose fixtures this module shares.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from session.lifecycle.shutdown import REASON, SHUTDOWN_BUDGET_S, on_shutdown
from session.lifecycle.watchdog import events_to_send
from session.run.state import RunState, RunStateStore, Status, record_start
from session.run.training import run_containers, start_training
from tests.session.run.test_rehearsal_e2e import (  # noqa: F401 - fixtures
    READY_S,
    Rehearsal,
    bridge_s3,
    checkpoints,
    poll,
    rehearsal,
    saved_logs,
    simapp_image,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
UNIT = REPO_ROOT / "session" / "units" / "deepracer-shutdown.service"


@pytest.fixture
def store(tmp_path: Path) -> RunStateStore:
    (tmp_path / "run").mkdir()
    return RunStateStore(tmp_path / "run" / "state.json")


def no_host(*_):
    raise AssertionError("nothing to stop: no host to build")


# --- the unit ---------------------------------------------------------------------------------------------------------

def test_the_stop_hook_is_active_from_boot_and_runs_deepracer_at_shutdown_before_docker_stops(tmp_path: Path):
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(UNIT)
    service = unit["Service"]
    # an active unit that does nothing until it is stopped: that is the shutdown
    assert (service["Type"], service["RemainAfterExit"], service["ExecStart"]) == ("oneshot", "yes", "/bin/true")
    assert service["ExecStop"] == "/opt/deepracer/venv/bin/deepracer shutdown-stop"
    # units stop in the reverse order of their start: After= Docker (and the network, the scratch disk) means the
    # hook runs while the containers and MinIO are still there
    assert {"docker.service", "network-online.target", "deepracer-scratch.service"} <= set(unit["Unit"]["After"].split())
    assert SHUTDOWN_BUDGET_S < int(service["TimeoutStopSec"]) <= 180  # bounded: a shutdown waits for it no longer
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "User" not in service  # root, like the spot watcher

    stand_in = tmp_path / "deepracer"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    (tmp_path / UNIT.name).write_text(UNIT.read_text().replace("/opt/deepracer/venv/bin/", f"{tmp_path}/"))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / UNIT.name)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr


# --- the hook ---------------------------------------------------------------------------------------------------------

def test_a_shutdown_without_a_notice_stops_training_and_leaves_it_resumable(rehearsal: Rehearsal, store: RunStateStore):
    model = f"down-{uuid.uuid4().hex[:6]}-1"
    rehearsal.write(f"DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX={model}\n"
                    "DR_TRAIN_MIN_EVAL_TRIALS=1\n", workers=1)
    host = rehearsal.host()
    start_training(host, say=lambda _: None, timeout_s=READY_S)
    record_start(store, host, rehearsal.run_env, rehearsal.folder / "system.env")
    poll(lambda: any(int(name.split("_")[0]) >= 1 for name in checkpoints(host.storage, model)), "checkpoint 1")

    said: list[str] = []
    report = on_shutdown(store, host_factory=lambda *_: rehearsal.host(), say=said.append)

    assert report is not None and len(report.stopped) == 3  # trainer, its SageMaker sibling, the worker
    assert not any(c.running for c in run_containers(host.engine, host.system, host.run))
    assert saved_logs(host.storage, model) == ["sagemaker.log", "trainer.log", "worker-1.log"]
    state = store.read()
    assert (state.status, state.reason) == (Status.INTERRUPTED, REASON)
    assert state.checkpoint in checkpoints(host.storage, model) and int(state.checkpoint.split("_")[0]) >= 1
    assert said[0] == f"{REASON}: stopping {model} (run {host.run.run_id}) ..."
    # interrupted, as a notice leaves it: the next boot's resume takes it (test_resume.py), and the watchdog has
    # no "exited by itself" to mail about it
    assert events_to_send(state, [], None, datetime.now(timezone.utc), {}) == []


@pytest.mark.parametrize("status", [Status.STOPPED, Status.TIME_LIMIT, Status.INTERRUPTED, Status.ENDED])
def test_a_shutdown_after_the_run_ended_changes_nothing(store: RunStateStore, status: Status):
    # `deepracer stop` (stopped), the time limit, a notice the spot watcher handled, an end of its own
    state = RunState(status=status, run_id=3, prefix="rl-3", run_env="/r/run.env", system_env="/s/system.env",
                     started=datetime(2026, 3, 1, 10, tzinfo=timezone.utc), reason="stopped by `deepracer stop`")
    store.write(state)
    said: list[str] = []
    assert on_shutdown(store, host_factory=no_host, say=said.append) is None
    assert store.read() == state
    assert said == [f"no training is recorded as starting, running or resuming in {store.path}: nothing to stop"]


def test_deepracer_shutdown_stop_is_the_command_the_unit_runs(tmp_path: Path, store: RunStateStore):
    store.write(RunState(status=Status.STOPPED, run_id=3, prefix="rl-3", run_env="/r/run.env",
                         system_env="/s/system.env", started=datetime(2026, 3, 1, 10, tzinfo=timezone.utc)))
    system_env = tmp_path / "system.env"
    system_env.write_text("DR_CLOUD=aws\nDR_SIMAPP_VERSION=6.0.4-gpu\nDR_LOCAL_S3_BUCKET=b\n")
    result = subprocess.run([sys.executable, "-m", "session", "shutdown-stop", "--system-env", str(system_env)],
                            capture_output=True, text=True, cwd=REPO_ROOT,
                            env={**os.environ, "DR_RUN_STATE": str(store.path)})
    assert result.returncode == 0, result.stderr
    assert "nothing to stop" in result.stdout + result.stderr
    assert store.read().status is Status.STOPPED
