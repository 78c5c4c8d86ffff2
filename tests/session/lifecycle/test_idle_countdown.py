"""How long until the idle stop (session.lifecycle.idle.idle_stop_left): the countdown the dashboard shows while
nothing runs, on the idle check's own clock."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from session.core.config import load_system_config
from session.lifecycle.idle_clock import idle_stop_left, idle_stop_left_now

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def test_the_countdown_runs_from_the_latest_of_activity_boot_and_keep_awake():
    left = lambda **moments: idle_stop_left(now=NOW, idle_minutes=30, **moments)  # noqa: E731
    assert left(last_active=NOW - timedelta(minutes=10), since=NOW - timedelta(hours=2)) == timedelta(minutes=20)
    assert left(last_active=NOW - timedelta(hours=3), since=NOW - timedelta(minutes=5)) == timedelta(minutes=25)
    assert left(last_active=NOW - timedelta(minutes=10), since=None,
                keep_awake_until=NOW + timedelta(minutes=50)) == timedelta(minutes=80)
    assert left(last_active=NOW - timedelta(hours=1), since=None) == timedelta(0)  # due at the next check
    assert left(last_active=None, since=None) == timedelta(minutes=30)


def test_no_countdown_when_the_idle_stop_is_off_or_the_first_boot_is_not_done():
    assert idle_stop_left(now=NOW, last_active=None, since=None, idle_minutes=0) is None
    assert idle_stop_left(now=NOW, last_active=None, since=None, idle_minutes=30, ready=False) is None


def test_the_countdown_reads_what_the_idle_check_keeps(tmp_path: Path):
    (tmp_path / "system.env").write_text("DR_CLOUD=aws\nDR_LOCAL_S3_BUCKET=models\nDR_SIMAPP_VERSION=6.0.4-gpu\nDR_IDLE_STOP_MINUTES=45\n")
    system = load_system_config(tmp_path / "system.env", environ={})
    (tmp_path / "idle.json").write_text(json.dumps({"last_active": (NOW - timedelta(minutes=15)).isoformat()}))
    marker = tmp_path / "ready"
    marker.write_text("")
    os.utime(marker, (NOW.timestamp() - 7200, NOW.timestamp() - 7200))
    files = dict(idle_state=tmp_path / "idle.json", ready_marker=marker, keep_awake_file=tmp_path / "none.json",
                 booted=NOW - timedelta(hours=3))
    assert idle_stop_left_now(system, NOW, **files) == timedelta(minutes=30)
    marker.unlink()
    assert idle_stop_left_now(system, NOW, **files) is None
