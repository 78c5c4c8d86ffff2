"""The swarm watch's units (session/units/deepracer-swarm-watch.*): every 30 s, as root, a oneshot. Its behaviour
on a real two-node swarm is in tests/session/run/test_swarm_training.py; `systemd-analyze verify` checks the units
with the others (test_limits_idle.py)."""

from __future__ import annotations

import configparser

from session.core.paths import UNITS_DIR
from session.lifecycle.swarm_watch import CHECK_EVERY_S


def unit(name: str) -> configparser.ConfigParser:
    parsed = configparser.ConfigParser(strict=False, interpolation=None)
    parsed.read(UNITS_DIR / name)
    return parsed


def test_the_swarm_watch_runs_every_30_seconds_as_root_after_the_first_boot():
    timer = unit("deepracer-swarm-watch.timer")
    assert timer["Timer"]["OnUnitActiveSec"] == f"{CHECK_EVERY_S}s" and timer["Install"]["WantedBy"] == "timers.target"
    service = unit("deepracer-swarm-watch.service")
    assert service["Service"]["Type"] == "oneshot" and "User" not in service["Service"]
    assert service["Service"]["ExecStart"] == "/opt/deepracer/venv/bin/deepracer swarm-watch"
    assert service["Unit"]["ConditionPathExists"] == "/var/lib/deepracer/ready"
