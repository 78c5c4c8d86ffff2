"""Idle auto-stop rules (pure), the idle check's edge, powering off (AWS poweroff; Azure deallocate through a
LOCAL HTTP SERVER PLAYING AZURE'S IMDS AND RESOURCE MANAGER, tests/session/metadata_standin.py), the time limit
on the real Docker Engine with the realistic simulator stand-in (fixtures shared with test_rehearsal_e2e.py),
and the units, through `systemd-analyze verify` offline.

Nothing here powers anything off: every power-off goes to a recorder.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from session.core.config import load_system_config
from session.engine.containers import ContainerInfo, Engine
from session.lifecycle import power
from session.lifecycle.idle import CHECK_EVERY_MIN, decide, idle_check
from session.lifecycle.limits import _launch_detached, arm, enforce, timer_command
from session.lifecycle.power import AzureVm, power_off
from session.lifecycle.resume import resume
from session.run.state import RunState, RunStateStore, Status, record_start
from session.run.training import run_containers, start_training
from tests.session import metadata_standin
from tests.session.metadata_standin import VM_ID, MetadataStandin
from tests.session.run.test_rehearsal_e2e import READY_S, Rehearsal, bridge_s3, rehearsal, saved_logs, simapp_image  # noqa: F401 - fixtures

UNITS_DIR = Path(__file__).resolve().parents[3] / "session" / "units"
NOW = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
BOOT = NOW - timedelta(hours=2)


@pytest.fixture
def metadata() -> Iterator[MetadataStandin]:
    standin, stop = metadata_standin.start()
    yield standin
    stop()


@pytest.fixture
def store(tmp_path: Path) -> RunStateStore:
    (tmp_path / "run").mkdir()
    return RunStateStore(tmp_path / "run" / "state.json")


# --- the idle rules --------------------------------------------------------------------------------------------------

def rule(**given):
    return decide(**{"active": [], "now": NOW, "last_active": None, "since": BOOT, "idle_minutes": 30, **given})


def test_a_host_idle_for_the_configured_time_powers_off():
    decision = rule(last_active=NOW - timedelta(minutes=31))
    assert (decision.power_off, decision.reason) == (True, "no training, evaluation or interactive use for 31 min "
                                                           "(DR_IDLE_STOP_MINUTES=30)")
    assert rule(last_active=None, since=NOW - timedelta(minutes=30)).power_off  # never active since boot


def test_activity_keeps_the_host_and_is_remembered():
    decision = rule(active=["deepracer-0-trainer", "deepracer-0-worker-1"], last_active=NOW - timedelta(hours=5))
    assert (decision.power_off, decision.last_active) == (False, NOW)
    assert decision.reason == "active: deepracer-0-trainer, deepracer-0-worker-1"


def test_idle_time_counts_from_the_latest_of_activity_and_boot():
    assert not rule(last_active=NOW - timedelta(hours=5), since=NOW - timedelta(minutes=10)).power_off
    assert not rule(last_active=NOW - timedelta(minutes=20), since=BOOT).power_off


def test_the_two_checks_before_the_power_off_warn():
    assert not rule(last_active=NOW - timedelta(minutes=30 - 3 * CHECK_EVERY_MIN)).warn
    for checks_before in (2, 1):
        late = rule(last_active=NOW - timedelta(minutes=30 - checks_before * CHECK_EVERY_MIN))
        assert (late.power_off, late.warn, late.minutes_left) == (False, True, checks_before * CHECK_EVERY_MIN)


def test_no_idle_stop_before_the_first_boot_finished_nor_when_turned_off():
    assert rule(ready=False, last_active=None, since=NOW - timedelta(hours=9)).reason == \
        "the first boot has not finished: not counting idle time yet"
    off = rule(idle_minutes=0, last_active=NOW - timedelta(days=3))
    assert (off.power_off, off.reason) == (False, "idle auto-stop is off (DR_IDLE_STOP_MINUTES=0)")


def test_a_time_limit_that_asks_for_a_power_off_gets_it_unless_something_runs():
    assert rule(idle_minutes=0, time_limit_power_off=True, last_active=NOW).power_off
    assert not rule(time_limit_power_off=True, active=["deepracer-0-evaluation"]).power_off


# --- the idle check's edge ------------------------------------------------------------------------------------------

class ListedEngine:
    """Containers as Engine.list returns them (the only engine call the idle check makes without a stop)."""

    def __init__(self, *containers: ContainerInfo) -> None:
        self.containers = list(containers)

    def list(self, run=None, role=None) -> list[ContainerInfo]:
        return list(self.containers)


def container(role: str, run: str = "0", status: str = "running") -> ContainerInfo:
    name = f"deepracer-{run}-{role}"
    return ContainerInfo(id=name, name=name, image="simapp", role=role, run=run, worker=None, prefix="m",
                         status=status)


@pytest.fixture
def host_files(tmp_path: Path):
    (tmp_path / "system.env").write_text("DR_CLOUD=aws\nDR_SIMAPP_VERSION=6.0.4-gpu\n")
    ready = tmp_path / "ready"
    ready.write_text("")
    os.utime(ready, (BOOT.timestamp() + 600, BOOT.timestamp() + 600))
    return tmp_path


def check(host_files: Path, engine, now: datetime, store: RunStateStore, **options):
    powered, warned, said = [], [], []
    options.setdefault("presence", lambda _: [])  # nobody at work (this machine's own logins do not count)
    options.setdefault("keep_awake_file", host_files / "keep-awake.json")
    options.setdefault("stop_host", powered.append)
    decision = idle_check(load_system_config(host_files / "system.env", environ={}), engine=engine, store=store,
                          idle_state=host_files / "idle.json", ready_marker=host_files / "ready", now=now,
                          booted=BOOT, warn=warned.append, say=said.append, **options)
    return decision, powered, warned, said


def test_the_idle_check_remembers_activity_warns_then_stops_the_aws_host(host_files: Path, store: RunStateStore):
    decision, powered, _, _ = check(host_files, ListedEngine(container("trainer"), container("minio", "host")),
                                    NOW, store)
    assert not decision.power_off and powered == []
    idle = ListedEngine(container("minio", "host"), container("trainer", status="exited"))
    assert check(host_files, idle, NOW + timedelta(minutes=15), store)[1:3] == ([], [])
    for minutes, left in ((20, 10), (26, 5)):  # the two checks before the power-off warn
        _, powered, warned, _ = check(host_files, idle, NOW + timedelta(minutes=minutes), store)
        assert powered == [] and warned == [
            f"deepracer: this host powers off in about {left} minutes: idle for {minutes} min; powers off after 30 "
            "(DR_IDLE_STOP_MINUTES). To keep it: type in a terminal, run `deepracer keep-awake` (an hour; "
            "`deepracer keep-awake 120`: two), or start training; DR_IDLE_STOP_MINUTES=0 in system.env turns the "
            "idle stop off."]
    decision, powered, _, said = check(host_files, idle, NOW + timedelta(minutes=30), store)
    assert powered == ["aws"] and said == [
        "idle check: no training, evaluation or interactive use for 30 min (DR_IDLE_STOP_MINUTES=30); powering off"]


def test_a_dry_run_or_an_unfinished_first_boot_powers_nothing_off(host_files: Path, store: RunStateStore):
    decision, powered, _, _ = check(host_files, ListedEngine(), NOW, store, dry_run=True)
    assert decision.power_off and powered == [] and not (host_files / "idle.json").exists()
    (host_files / "ready").unlink()
    decision, powered, _, _ = check(host_files, ListedEngine(), NOW, store)
    assert not decision.power_off and powered == []


def test_a_run_recorded_as_running_without_its_containers_is_recorded_as_ended(host_files: Path,
                                                                             store: RunStateStore):
    store.write(RunState(status=Status.RUNNING, run_id=4, prefix="m-2", run_env="/r/run.env", system_env="/s/system.env",
                         started=NOW - timedelta(hours=1)))
    _, _, _, said = check(host_files, ListedEngine(container("trainer", run="5")), NOW, store)
    state = store.read()
    assert (state.status, state.reason, state.stopped) == (Status.ENDED, "its containers stopped without `deepracer stop`",
                                                          NOW)
    assert said[0] == "run state: m-2 is not running any more; recorded as ended"


def test_a_time_limit_power_off_happens_once(host_files: Path, store: RunStateStore):
    (host_files / "system.env").write_text("DR_CLOUD=azure\nDR_SIMAPP_VERSION=6.0.4-gpu\nDR_IDLE_STOP_MINUTES=0\n")
    store.write(RunState(status=Status.TIME_LIMIT, run_id=4, prefix="m-2", run_env="/r/run.env",
                         system_env="/s/system.env", started=NOW - timedelta(hours=1), max_minutes=60,
                         power_off=True))
    assert check(host_files, ListedEngine(), NOW, store)[1] == ["azure"]
    assert store.read().power_off is False
    assert check(host_files, ListedEngine(), NOW + timedelta(minutes=5), store)[1] == []  # e.g. the next boot


# --- powering off -----------------------------------------------------------------------------------------------------

def test_aws_powers_off_from_inside():
    commands, said = [], []
    assert power_off("aws", run=commands.append, say=said.append) == "poweroff"
    assert commands == [["systemctl", "poweroff"]] and said == []


def test_azure_deallocates_itself_with_its_managed_identity(metadata: MetadataStandin):
    commands, said = [], []
    azure = AzureVm(imds=metadata.url, arm=metadata.url)
    assert power_off("azure", azure=azure, run=commands.append, say=said.append) == "deallocate"
    assert metadata.deallocations == ["2024-07-01"] and commands == []
    (token,) = metadata.of("GET", "/metadata/identity/oauth2/token")
    assert token.headers["metadata"] == "true" and token.query["resource"] == ["https://management.azure.com/"]
    (call,) = metadata.of("POST", f"{VM_ID}/deallocate")
    assert call.headers["authorization"] == f"Bearer {metadata_standin.IDENTITY_TOKEN}"


def azure_vm(metadata: MetadataStandin, waits: list) -> AzureVm:
    return AzureVm(imds=metadata.url, arm=metadata.url, sleep=waits.append)  # the backoff recorded, not slept


def test_azure_without_the_role_stays_up_says_so_and_alerts(metadata: MetadataStandin):
    metadata.arm_allows_deallocate = False
    commands, said, alerts, waits = [], [], [], []
    result = power_off("azure", azure=azure_vm(metadata, waits), run=commands.append, say=said.append,
                       alert=alerts.append)
    assert result == "failed" and commands == [] and metadata.deallocations == [] and waits == []  # 403: no retry
    message = ("Azure did not deallocate this VM (deallocate answered HTTP 403: {\"error\": {\"code\": "
               "\"AuthorizationFailed\", \"message\": \"The client does not have authorization to perform action "
               "'Microsoft.Compute/virtualMachines/deallocate/action'\"}}; the VM's managed identity needs "
               "Microsoft.Compute/virtualMachines/deallocate/action on the VM). It stays up, and billed, rather than "
               "powering off from inside, where it would stay allocated and billed at its full hourly price; the "
               "next idle check (in 5 minutes) tries again. `az vm deallocate` or the portal's Stop stops it now.")
    assert said == [f"WARNING: {message}"] and alerts == [message]


def test_azure_retries_the_identity_token_as_azure_documents(metadata: MetadataStandin):
    # 404: the identity is not ready yet; 410: IMDS updates; 429: throttled; 500: transient
    metadata.identity_failures = [404, 410, 429, 500]
    commands, said, waits = [], [], []
    assert power_off("azure", azure=azure_vm(metadata, waits), run=commands.append, say=said.append) == "deallocate"
    assert waits == list(power.BACKOFF_S[:4]) and metadata.deallocations == ["2024-07-01"] and commands == []
    assert len(metadata.of("GET", "/metadata/identity/oauth2/token")) == 5


def test_azure_retries_resource_manager_throttling_and_server_errors(metadata: MetadataStandin):
    metadata.arm_failures, metadata.arm_retry_after = [429, 503], 17
    waits: list[float] = []
    assert power_off("azure", azure=azure_vm(metadata, waits), run=[].append, say=[].append) == "deallocate"
    assert waits == [17.0, power.BACKOFF_S[1]]  # Retry-After when longer than the backoff
    assert len(metadata.of("POST", f"{VM_ID}/deallocate")) == 3 and metadata.deallocations == ["2024-07-01"]


def test_a_deallocation_that_keeps_failing_tries_for_70_seconds_then_leaves_the_vm_up(metadata: MetadataStandin):
    metadata.identity_failures = [410] * 10  # IMDS updating for longer than the retries last
    commands, said, waits = [], [], []
    assert power_off("azure", azure=azure_vm(metadata, waits), run=commands.append, say=said.append) == "failed"
    assert sum(waits) >= 70 and waits == sorted(waits) and commands == []  # never `systemctl poweroff`
    assert said[0].startswith("WARNING: Azure did not deallocate this VM (IMDS /metadata/identity/oauth2/token "
                              "answered HTTP 410: ")
    assert len(metadata.of("GET", "/metadata/identity/oauth2/token")) == len(power.BACKOFF_S) + 1


def test_a_failed_time_limit_power_off_is_tried_again_at_the_next_check(host_files: Path, store: RunStateStore):
    (host_files / "system.env").write_text("DR_CLOUD=azure\nDR_SIMAPP_VERSION=6.0.4-gpu\nDR_IDLE_STOP_MINUTES=0\n")
    store.write(RunState(status=Status.TIME_LIMIT, run_id=4, prefix="m-2", run_env="/r/run.env",
                         system_env="/s/system.env", started=NOW - timedelta(hours=1), max_minutes=60,
                         power_off=True))
    answers = iter(["failed", "deallocate"])
    tries: list[str] = []

    def stop_host(cloud: str) -> str:
        tries.append(cloud)
        return next(answers)

    assert check(host_files, ListedEngine(), NOW, store, stop_host=stop_host)[0].power_off
    assert store.read().power_off is True  # still wanted
    assert check(host_files, ListedEngine(), NOW + timedelta(minutes=5), store, stop_host=stop_host)[0].power_off
    assert tries == ["azure", "azure"] and store.read().power_off is False


# --- the time limit, on the real Docker Engine ---------------------------------------------------------------------

def train(rehearsal: Rehearsal, stem: str, system_extra: str = "") -> tuple:
    model = f"{stem}-{uuid.uuid4().hex[:6]}-1"
    rehearsal.write(f"DR_LOCAL_S3_MODEL_PREFIX={model}\n", workers=1)
    if system_extra:
        system_env = rehearsal.folder / "system.env"
        system_env.write_text(system_env.read_text() + system_extra)
    host = rehearsal.host()
    start_training(host, say=lambda _: None, timeout_s=READY_S)
    return host, model


def running(host) -> list[str]:
    return sorted(c.role or "sagemaker" for c in run_containers(host.engine, host.system, host.run) if c.running)


@pytest.mark.parametrize("powering", ["poweroff", "failed"])
def test_the_time_limit_stops_training_cleanly_and_powers_off_when_the_stack_says_so(
        rehearsal: Rehearsal, store: RunStateStore, powering: str):
    host, model = train(rehearsal, "limit", "DR_POWER_OFF_AFTER_MAX_MINUTES=True\n")
    started = datetime.now(timezone.utc)
    record_start(store, host, rehearsal.run_env, rehearsal.folder / "system.env", max_minutes=1, now=started)
    powered, said = [], []

    def power_off(cloud: str) -> str:  # root's timer; "failed": Azure did not deallocate, the VM is still up
        powered.append(cloud)
        return powering

    def at(seconds: float):
        return enforce(store, now=lambda: started + timedelta(seconds=seconds),
                       host_factory=lambda *_: rehearsal.host(), power_off=power_off, say=said.append)

    assert at(59) is None and running(host) == ["sagemaker", "trainer", "worker"]
    report = at(61)  # what the timer process calls at the deadline
    assert report is not None and running(host) == []
    assert saved_logs(host.storage, model) == ["sagemaker.log", "trainer.log", "worker-1.log"]
    state = store.read()
    assert (state.status, state.reason) == (Status.TIME_LIMIT, "time limit of 1 min reached")
    assert said[0] == f"time limit of 1 min reached: stopping {model} (run {host.run.run_id}) ..."
    assert powered == ["local"]
    assert state.power_off is (powering == "failed")  # a failed power-off is left to the idle timer to retry
    # the user asked for the end: a reboot does not resume it
    assert not resume(store, host_factory=lambda *_: rehearsal.host(), say=lambda _: None).resumed


def test_the_idle_timer_enforces_a_missed_deadline_and_then_powers_off(rehearsal: Rehearsal, store: RunStateStore,
                                                                      host_files: Path):
    host, model = train(rehearsal, "backstop", "DR_POWER_OFF_AFTER_MAX_MINUTES=True\n")
    started = datetime.now(timezone.utc)
    record_start(store, host, rehearsal.run_env, rehearsal.folder / "system.env", max_minutes=1, now=started)
    engine = Engine(base_url=rehearsal.docker_host)
    host_files.joinpath("system.env").write_text((rehearsal.folder / "system.env").read_text())

    def idle_at(seconds: float):
        return check(host_files, engine, started + timedelta(seconds=seconds), store,
                     host_factory=lambda *_: rehearsal.host())

    # within the minute's grace the timer process has its turn; then the idle timer stops the run
    decision, powered, _, _ = idle_at(60 + 30)
    assert not decision.power_off and powered == [] and store.read().status == Status.RUNNING
    decision, powered, _, said = idle_at(60 + 61)
    assert running(host) == [] and store.read().status == Status.TIME_LIMIT
    assert saved_logs(host.storage, model) == ["sagemaker.log", "trainer.log", "worker-1.log"]
    assert decision.power_off and powered == ["local"] and store.read().power_off is False
    assert said[-1] == ("idle check: training reached its time limit and DR_POWER_OFF_AFTER_MAX_MINUTES is True; "
                        "powering off")


def test_the_timer_process_train_starts_stops_training_at_the_deadline(
        rehearsal: Rehearsal, store: RunStateStore, monkeypatch: pytest.MonkeyPatch):
    # The detached process builds its host as `deepracer` does: Engine() from DOCKER_HOST, storage from system.env
    # (DR_CLOUD=remote: the S3 server is the tests' own, no MinIO to start). No power-off asked for.
    host, model = train(rehearsal, "timer")
    system_env = rehearsal.folder / "system.env"
    system_env.write_text(system_env.read_text().replace(
        "DR_CLOUD=local", f"DR_CLOUD=remote\nDR_REMOTE_MINIO_URL={rehearsal.endpoint}"))
    assert "DR_POWER_OFF_AFTER_MAX_MINUTES" not in system_env.read_text()
    monkeypatch.setenv("DOCKER_HOST", rehearsal.docker_host)
    # one minute allowed, 58 s of it used before an interruption: the deadline is 2 s away
    state = record_start(store, host, rehearsal.run_env, system_env, max_minutes=1, trained_s=58)

    launched = []
    assert arm(store, state, launch=lambda job: launched.append(job) or "launched").startswith(
        f"time limit: training stops at {state.deadline:%Y-%m-%d %H:%M} UTC")
    command, log = launched[0].command, launched[0].log
    assert command == timer_command(store, state) and log == store.path.with_name(f"time-limit-{host.run.run_id}.log")

    process = _launch_detached(command, log)
    assert os.getsid(process.pid) == process.pid  # a session of its own: the shell's end does not end it
    assert process.wait(timeout=60) == 0
    assert running(host) == []
    final = store.read()
    assert final.status == Status.TIME_LIMIT and final.stopped >= state.deadline
    assert saved_logs(host.storage, model) == ["sagemaker.log", "trainer.log", "worker-1.log"]
    assert f"time limit of 1 min reached: stopping {model}" in log.read_text()


# --- the units ------------------------------------------------------------------------------------------------------

UNITS = sorted(UNITS_DIR.iterdir())


def unit(name: str) -> configparser.ConfigParser:
    parsed = configparser.ConfigParser(strict=False, interpolation=None)
    parsed.read(UNITS_DIR / name)
    return parsed


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_units_pass_systemd_analyze_verify(path: Path, tmp_path: Path):
    """systemd's own checker, offline. It wants ExecStart's program to exist, so the unit points at a stand-in
    `deepracer` in tmp_path (runuser is the system's); a typo'd key is printed (exit 0), so stderr must be empty."""
    stand_in = tmp_path / "deepracer"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    for other in UNITS:  # the timer's service must be beside it
        (tmp_path / other.name).write_text(other.read_text().replace("/opt/deepracer/venv/bin/", f"{tmp_path}/"))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / path.name)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_systemd_analyze_verify_is_really_checking(tmp_path: Path):
    broken = tmp_path / "broken.service"
    broken.write_text("[Service]\nExecStart=/opt/deepracer/venv/bin/deepracer idle-check\nRestartt=always\n")
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(broken)], capture_output=True, text=True)
    assert result.returncode != 0 or result.stderr


def test_the_idle_timer_checks_every_5_minutes_as_root():
    timer = unit("deepracer-idle.timer")
    assert timer["Timer"]["OnUnitActiveSec"] == f"{CHECK_EVERY_MIN}min" and timer["Install"]["WantedBy"] == \
        "timers.target"
    service = unit("deepracer-idle.service")
    assert service["Service"]["Type"] == "oneshot" and "User" not in service["Service"]
    assert service["Service"]["ExecStart"] == "/opt/deepracer/venv/bin/deepracer idle-check"


def test_the_resume_unit_runs_at_boot_as_the_user_who_trains_once_docker_and_the_network_are_up():
    resume_unit = unit("deepracer-resume.service")
    after = resume_unit["Unit"]["After"].split()
    assert {"docker.service", "network-online.target"} <= set(after)
    assert "network-online.target" in resume_unit["Unit"]["Wants"]
    assert resume_unit["Unit"]["ConditionPathExists"] == "/var/lib/deepracer/ready"
    assert resume_unit["Service"]["ExecStart"] == \
        "/usr/sbin/runuser -u ${DR_HOST_USER} -- /opt/deepracer/venv/bin/deepracer resume"
    assert resume_unit["Service"]["EnvironmentFile"] == "/etc/deepracer/bootstrap.env"
    assert resume_unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_spot_watcher_always_runs_and_outlives_a_stop_in_progress():
    watch = unit("deepracer-spot-watch.service")
    assert watch["Service"]["ExecStart"] == "/opt/deepracer/venv/bin/deepracer spot-watch"
    assert watch["Service"]["Restart"] == "always" and int(watch["Service"]["TimeoutStopSec"]) >= 90
    assert "docker.service" in watch["Unit"]["After"]  # stopped before Docker at shutdown


def test_the_idle_state_file_is_read_from_the_environment_when_asked(monkeypatch, tmp_path):
    # Set after the module was imported (a systemd drop-in, a test): it must still count, as DR_READY_MARKER does.
    from session.lifecycle.idle import default_idle_state

    monkeypatch.setenv("DR_IDLE_STATE", str(tmp_path / "idle.json"))
    assert default_idle_state() == tmp_path / "idle.json"
    monkeypatch.delenv("DR_IDLE_STATE")
    assert default_idle_state() == Path("/var/lib/deepracer/idle.json")


def test_a_deallocation_that_keeps_failing_is_mailed_once_a_day_not_at_every_check(host_files: Path,
                                                                                   store: RunStateStore,
                                                                                   monkeypatch):
    import session.lifecycle.idle as idle

    mailed: list[str] = []
    answers = iter(["failed", "failed", "failed", "deallocate", "failed"])

    def power_off(cloud, *, say, alert):
        answer = next(answers)
        if answer == "failed":
            alert("Azure did not deallocate this VM")
        return answer

    monkeypatch.setattr(idle, "notify", lambda system, subject, *args, **kwargs: mailed.append(subject))
    monkeypatch.setattr(idle, "power_off", power_off)
    for minutes in (0, 5):  # idle from the start; the second check retries without mailing again
        assert check(host_files, ListedEngine(), NOW + timedelta(minutes=minutes), store, stop_host=None)[0].power_off
    assert mailed == ["idle stop", "deallocation failed"]
    check(host_files, ListedEngine(), NOW + timedelta(hours=25), store, stop_host=None)  # a day on: once more
    assert mailed == ["idle stop", "deallocation failed", "deallocation failed"]
    check(host_files, ListedEngine(), NOW + timedelta(hours=25, minutes=5), store, stop_host=None)  # it worked
    check(host_files, ListedEngine(), NOW + timedelta(hours=30), store, stop_host=None)  # a new power-off fails
    assert mailed == ["idle stop", "deallocation failed", "deallocation failed", "idle stop", "deallocation failed"]


def test_a_start_left_behind_by_a_process_that_is_gone_is_recorded_as_ended(host_files: Path, store: RunStateStore):
    store.start(run_id=4, prefix="m-2", run_env="/r/run.env", system_env="/s/system.env", started=NOW)
    # within the longest start, or with a container of the run up, it is a start in progress
    check(host_files, ListedEngine(), NOW + timedelta(minutes=20), store)
    check(host_files, ListedEngine(container("trainer", run="4")), NOW + timedelta(hours=2), store)
    assert store.read().status is Status.STARTING
    _, _, _, said = check(host_files, ListedEngine(container("trainer", run="4", status="exited")),
                          NOW + timedelta(hours=2), store)
    state = store.read()
    assert (state.status, state.reason) == (Status.ENDED, "its start never finished and nothing of it runs")
    assert said[0] == "run state: m-2 was recorded as starting 12:00 UTC and has no running container; recorded as ended"
