"""The time limit's timer outlives what armed it (issue 15, item 5).

`resume` runs in deepracer-resume.service, whose end kills every process left in its cgroup
(KillMode=control-group), so a timer that is a child process of it dies with it. On a systemd host the limit is
therefore a transient systemd timer, a unit of its own (`systemd-run`); elsewhere a detached process.

No systemd runs here: a STAND-IN `systemd-run` and `systemctl` on PATH record their arguments and keep the
loaded transient units as files, refusing a unit that is loaded already as systemd-run does ("Unit ... already
exists"). The detached fallback is a real process, and survives its parent's process group being killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from session.lifecycle import limits
from session.lifecycle.limits import arm, timer_command
from session.run.state import RunState, RunStateStore, Status, utcnow

STARTED = utcnow().replace(microsecond=0)

SYSTEMD_RUN = """#!{python}
# stand-in systemd-run: records its argv; a transient unit whose name is loaded already is refused
import json, os, sys
from pathlib import Path
units = Path(os.environ["STANDIN_UNITS"])
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps({{"argv": sys.argv, "xdg": os.environ.get("XDG_RUNTIME_DIR")}}) + "\\n")
if os.environ.get("STANDIN_NO_BUS"):
    sys.exit("Failed to connect to bus: No medium found")
unit = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--unit="))
if (units / f"{{unit}}.timer").exists():
    sys.exit(f"Failed to start transient timer unit: Unit {{unit}}.timer already exists.")
(units / f"{{unit}}.timer").write_text(json.dumps(sys.argv))
print(f"Running timer as unit: {{unit}}.timer", file=sys.stderr)
"""

SYSTEMCTL = """#!{python}
# stand-in systemctl: records its argv; `stop` unloads the transient units named
import json, os, sys
from pathlib import Path
units = Path(os.environ["STANDIN_UNITS"])
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps({{"argv": sys.argv}}) + "\\n")
args = [a for a in sys.argv[1:] if not a.startswith("--")]
if args and args[0] == "stop":
    for name in args[1:]:
        (units / name).unlink(missing_ok=True)
"""


@pytest.fixture
def systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A host where systemd is PID 1, played by stand-ins; returns (calls, loaded units)."""
    bin_dir, units, booted = tmp_path / "bin", tmp_path / "units", tmp_path / "run-systemd-system"
    for folder in (bin_dir, units, booted):
        folder.mkdir()
    for name, text in (("systemd-run", SYSTEMD_RUN), ("systemctl", SYSTEMCTL)):
        (bin_dir / name).write_text(text.format(python=sys.executable))
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.jsonl"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_UNITS", str(units))
    monkeypatch.setenv("STANDIN_LOG", str(log))
    monkeypatch.setattr(limits, "SYSTEMD_DIR", booted, raising=False)  # raising: today's code has none

    def calls() -> list[list[str]]:
        return [[Path(line["argv"][0]).name, *line["argv"][1:]]
                for line in map(json.loads, log.read_text().splitlines())]

    def loaded() -> dict[str, list[str]]:
        return {path.name: json.loads(path.read_text()) for path in units.iterdir()}

    return calls, loaded


@pytest.fixture
def store(tmp_path: Path) -> RunStateStore:
    (tmp_path / "run").mkdir()
    return RunStateStore(tmp_path / "run" / "state.json")


def running(store: RunStateStore, *, run_id: int = 3, prefix: str = "m-1", max_minutes: int = 60,
            trained_s: float = 0.0, started=STARTED) -> RunState:
    state = RunState(status=Status.RUNNING, run_id=run_id, prefix=prefix, run_env="/r/run.env",
                     system_env="/s/system.env", started=started, max_minutes=max_minutes, trained_s=trained_s)
    store.write(state)
    return state


def options(argv: list[str]) -> list[str]:
    return argv[1:argv.index("--")]


def test_on_a_systemd_host_the_limit_is_a_transient_timer_of_its_own(systemd, store: RunStateStore):
    calls, loaded = systemd
    state = running(store, started=utcnow() - timedelta(minutes=58))
    line = arm(store, state)  # what `train` and `resume` call
    unit = "deepracer-time-limit-3"
    log = store.path.with_name("time-limit-3.log")
    manager = [] if os.geteuid() == 0 else ["--user"]
    assert line == (f"time limit: training stops at {state.deadline:%Y-%m-%d %H:%M} UTC, in 2 min (60 min of "
                    f"training in all; systemd timer {unit}.timer in the "
                    f"{'system' if not manager else 'user'} manager, log {log})")
    (argv,) = loaded().values()
    assert argv[argv.index("--") + 1:] == timer_command(store, state)  # started by systemd, not by us
    assert {*manager, f"--unit={unit}", "--collect", "--on-active=120s", "--timer-property=AccuracySec=1s",
            f"--property=StandardOutput=append:{log}", f"--property=StandardError=append:{log}"} \
        <= set(options(argv))
    assert [[a for a in call if not a.startswith("-")][:2] for call in calls()] == [  # a timer armed before goes first
        ["systemctl", "stop"], ["systemctl", "reset-failed"], ["systemd-run", sys.executable]]


def test_the_user_who_trains_gets_the_timer_in_their_user_manager_without_secrets(systemd, store: RunStateStore,
                                                                                 tmp_path: Path):
    _, loaded = systemd
    runtime = tmp_path / "run-user-1000"
    runtime.mkdir()
    environ = {**os.environ, "DOCKER_HOST": "unix:///run/docker.sock", "DR_RUN_STATE": str(store.path),
               "DR_LOCAL_SECRET_ACCESS_KEY": "minio-secret", "AWS_SECRET_ACCESS_KEY": "aws-secret"}
    environ.pop("XDG_RUNTIME_DIR", None)  # as under runuser, in deepracer-resume.service
    launch = limits.SystemdRun("systemd-run", "systemctl", environ=environ, uid=1000, runtime_dir=runtime)
    arm(store, running(store, run_id=0), launch=launch)
    argv = loaded()["deepracer-time-limit-0.timer"]
    assert "--user" in options(argv)
    settings = [a for a in options(argv) if a.startswith("--setenv=")]
    assert {"--setenv=DOCKER_HOST=unix:///run/docker.sock", f"--setenv=DR_RUN_STATE={store.path}"} <= set(settings)
    assert not [a for a in settings if "secret" in a]
    (call,) = [json.loads(line) for line in Path(os.environ["STANDIN_LOG"]).read_text().splitlines()
               if json.loads(line)["argv"][0].endswith("systemd-run")]
    assert call["xdg"] == str(runtime)  # how systemd-run --user finds the user's bus without a login


def test_arming_the_same_run_again_replaces_its_timer(systemd, store: RunStateStore):
    calls, loaded = systemd
    fallback: list = []
    launch = limits.choose_launch()
    assert isinstance(launch, limits.SystemdRun)
    launch.fallback = lambda job: fallback.append(job) or "detached"
    arm(store, running(store, max_minutes=60), launch=launch, now=lambda: STARTED)
    resumed = running(store, prefix="m-2", max_minutes=60, trained_s=1800)  # `resume`: the rest of the hour
    arm(store, resumed, launch=launch, now=lambda: STARTED)
    assert fallback == []
    assert list(loaded()) == ["deepracer-time-limit-3.timer"]
    (argv,) = loaded().values()
    assert "--on-active=1800s" in argv and argv[-1] == resumed.token


def test_without_systemd_or_when_systemd_run_fails_the_timer_is_a_detached_process(
        systemd, store: RunStateStore, monkeypatch: pytest.MonkeyPatch):
    assert limits.choose_launch(booted=lambda: False) is limits.launch_detached  # a laptop, a container
    assert limits.choose_launch(booted=lambda: True, which=lambda _: None) is limits.launch_detached  # no systemd-run
    monkeypatch.setenv("STANDIN_NO_BUS", "1")  # e.g. no user manager: lingering off
    fallback: list = []
    launch = limits.choose_launch()
    assert isinstance(launch, limits.SystemdRun)
    launch.fallback = lambda job: fallback.append(job) or "timer process 42"
    line = arm(store, running(store), launch=launch, now=lambda: STARTED)
    assert [job.command for job in fallback] == [timer_command(store, store.read())]
    assert line.endswith("systemd-run failed (Failed to connect to bus: No medium found); timer process 42)")


def _killed(pid: int) -> bool:
    """Dead, a zombie, or with SIGKILL pending: what killing its process group leaves of a member at once."""
    try:
        status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ":\t" in line)
    except FileNotFoundError:
        return True
    pending = int(status["SigPnd"], 16) | int(status["ShdPnd"], 16)
    return status["State"][0] in "ZX" or bool(pending & (1 << (signal.SIGKILL - 1)))


def test_the_detached_timer_outlives_its_parents_process_group(tmp_path: Path):
    # The parent plays the resume unit (or a shell): its group is killed as a whole.
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from session.lifecycle.limits import _launch_detached\n"
         "child = _launch_detached([sys.executable, '-c', 'import time; time.sleep(600)'], Path(sys.argv[1]))\n"
         "print(child.pid, flush=True); sys.stdin.read()", str(tmp_path / "timer.log")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    child = int(parent.stdout.readline())
    try:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        assert not _killed(child)
        assert os.getsid(child) == child  # a session (and process group) of its own
    finally:
        if not _killed(child):
            os.kill(child, signal.SIGKILL)
        parent.stdout.close()
        parent.stdin.close()
