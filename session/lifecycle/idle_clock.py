"""The idle stop's clock: how long until the idle check (session.lifecycle.idle) powers the host off if nothing runs
and nobody types meanwhile, from what that check keeps on the host. Files and arithmetic only, so a reader that
shows the countdown (the dashboard's cost card) loads none of the check's stop, storage or engine modules."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from session.core.paths import default_idle_state, default_keep_awake, default_ready_marker

if TYPE_CHECKING:  # pragma: no cover
    from session.core.config import SystemConfig

CHECK_EVERY_MIN = 5  # deepracer-idle.timer's OnUnitActiveSec


def idle_stop_left(*, now: datetime, last_active: Optional[datetime], since: Optional[datetime], idle_minutes: int,
                   ready: bool = True, keep_awake_until: Optional[datetime] = None) -> Optional[timedelta]:
    """How long until the idle stop is due if nothing runs and nobody types meanwhile (zero: due at the next
    check, which comes every CHECK_EVERY_MIN); None when it does not count (turned off, or the first boot has not
    finished). `decide`'s clock, without the probes: the last activity, the boot or the first boot's end, and a
    keep-awake, whichever is latest. Interactive use only postpones it."""
    if not ready or idle_minutes <= 0:
        return None
    reference = max((m for m in (last_active, since, keep_awake_until) if m is not None), default=now)
    return max(timedelta(0), reference + timedelta(minutes=idle_minutes) - now)


def boot_time(stat: Path = Path("/proc/stat")) -> Optional[datetime]:
    for line in stat.read_text().splitlines():
        if line.startswith("btime "):
            return datetime.fromtimestamp(int(line.split()[1]), timezone.utc)
    return None


def read_time(path: Path, key: str) -> Optional[datetime]:
    """A time the idle state file keeps: `last_active`, or `deallocation_failed` (the first failure in a row)."""
    try:
        text = json.loads(path.read_text())[key]
        return datetime.fromisoformat(text) if text else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def idle_stop_left_now(system: "SystemConfig", now: datetime, *, idle_state: Optional[Path] = None,
                       ready_marker: Optional[Path] = None, keep_awake_file: Optional[Path] = None,
                       booted: Optional[datetime] = None) -> Optional[timedelta]:
    """`idle_stop_left` from what the idle check keeps on this host (its state file, the ready marker, the boot
    time, a keep-awake); reads files only, changes nothing."""
    marker = ready_marker or default_ready_marker()
    ready = marker.is_file()
    since_ready = datetime.fromtimestamp(marker.stat().st_mtime, timezone.utc) if ready else None
    try:
        booted = booted or boot_time()
    except OSError:
        booted = None
    since = max((m for m in (booted, since_ready) if m is not None), default=None)
    return idle_stop_left(now=now, last_active=read_time(idle_state or default_idle_state(), "last_active"),
                          since=since, idle_minutes=system.idle_stop_minutes, ready=ready,
                          keep_awake_until=read_keep_awake(keep_awake_file))


def read_keep_awake(path: Optional[Path] = None) -> Optional[datetime]:
    """Until when `deepracer keep-awake` keeps the host up; None when it does not (or the file is unreadable)."""
    try:
        text = json.loads((path or default_keep_awake()).read_text())["until"]
        moment = datetime.fromisoformat(text)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
