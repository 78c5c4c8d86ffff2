"""The bootstrap's wiring of the session package's units (spot watcher, resume at boot, idle auto-stop).

`install_units` is cut out of cloudinit/scripts/bootstrap.sh and run by bash as it is, against the real
session/units/, with its target folders pointed into tmp_path and stand-in `systemctl` and `loginctl` on PATH that
record their arguments (no systemd runs here). The units themselves are checked with `systemd-analyze verify` by the
session package's tests.
"""

from __future__ import annotations

import configparser
import os
import pwd
import re
import stat
import subprocess
from pathlib import Path

import pytest

from infra.bootstrap import CLOUDINIT_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]
SESSION_UNITS = REPO_ROOT / "session" / "units"
BOOTSTRAP = CLOUDINIT_DIR / "scripts" / "bootstrap.sh"


def _function(name: str) -> str:
    text = BOOTSTRAP.read_text()
    match = re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", text, re.M | re.S)
    assert match, f"{name} not found in {BOOTSTRAP}"
    return match.group(0)


def install_units(tmp_path: Path, dashboard: bool = False):
    """Runs install_units as bootstrap.sh would; returns (unit dir, state dir, systemctl and loginctl calls)."""
    units, state, bin_dir = tmp_path / "systemd", tmp_path / "state", tmp_path / "bin"
    for folder in (units, state, bin_dir):
        folder.mkdir()
    calls = tmp_path / "calls.log"
    for name in ("systemctl", "loginctl"):
        fake = bin_dir / name
        fake.write_text(f'#!/bin/sh\necho "{name} $*" >>{calls}\n')
        fake.chmod(0o755)
    script = "\n".join([
        "set -Eeuo pipefail",
        f"SESSION_UNITS={SESSION_UNITS}", f"UNIT_DIR={units}", f"STATE_DIR={state}", "HOST_USER=daemon",
        *(["DR_DASHBOARD_AT_BOOT=True"] if dashboard else []),
        _function("install_units"),
        "install_units",
    ])
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return units, state, calls.read_text().splitlines()


@pytest.fixture()
def rehearsal(tmp_path: Path):
    return install_units(tmp_path)


def test_the_dashboard_is_enabled_only_when_the_stack_asks(tmp_path: Path, rehearsal):
    (tmp_path / "with").mkdir()
    _, _, calls = install_units(tmp_path / "with", dashboard=True)
    assert "systemctl enable --now deepracer-dashboard.service" in calls
    assert not any("deepracer-dashboard" in call for call in rehearsal[2])


def test_every_unit_of_the_package_is_installed_byte_identical(rehearsal):
    units, _, _ = rehearsal
    shipped = sorted(p.name for p in SESSION_UNITS.glob("deepracer-*"))
    assert {"deepracer-spot-watch.service", "deepracer-resume.service", "deepracer-idle.service",
            "deepracer-idle.timer", "deepracer-shutdown.service"} <= set(shipped)
    assert sorted(p.name for p in units.iterdir()) == shipped
    for name in shipped:
        installed = units / name
        assert installed.read_bytes() == (SESSION_UNITS / name).read_bytes()
        assert stat.S_IMODE(installed.stat().st_mode) == 0o644


def test_watcher_stop_hook_and_timers_start_now_resume_only_at_boot_and_a_running_watcher_gets_new_code(rehearsal):
    # The stop hook is started (`--now` starts an inactive unit only) and never restarted: stopping it is what
    # interrupts training.
    _, _, calls = rehearsal
    timers = sorted(p.name for p in SESSION_UNITS.glob("deepracer-*.timer"))
    assert "deepracer-idle.timer" in timers
    assert [call for call in calls if call.startswith("systemctl ")] == [
        "systemctl daemon-reload",
        " ".join(["systemctl", "enable", "--now", "deepracer-spot-watch.service", "deepracer-shutdown.service",
                  *timers]),
        "systemctl enable deepracer-resume.service",
        "systemctl try-restart deepracer-spot-watch.service",
    ]


def test_the_user_who_trains_lingers_so_the_time_limits_timer_has_a_manager_from_boot(rehearsal):
    _, _, calls = rehearsal
    assert [call for call in calls if call.startswith("loginctl ")] == ["loginctl enable-linger daemon"]


def test_run_state_folder_belongs_to_the_user_who_trains(rehearsal):
    _, state, _ = rehearsal
    run = (state / "run").stat()
    daemon = pwd.getpwnam("daemon")
    assert (run.st_uid, run.st_gid, stat.S_IMODE(run.st_mode)) == (daemon.pw_uid, daemon.pw_gid, 0o755)


def test_the_units_enabled_by_name_exist_and_can_be_enabled():
    for name in ("deepracer-spot-watch.service", "deepracer-resume.service", "deepracer-idle.timer",
                 "deepracer-shutdown.service"):
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.read(SESSION_UNITS / name)
        assert unit.has_section("Install") and unit["Install"].get("WantedBy"), name


def test_units_are_installed_by_the_step_that_deepracer_update_reruns():
    """`sudo deepracer-update` runs the session-package step: new unit files arrive with new code."""
    step = _function("step_session_package")
    assert step.rstrip().splitlines()[-2].strip() == "install_units"
    assert step.index("pip\" install") < step.index("install_units")
