"""Every file and folder the session tool reads or writes outside the run's folder, with its override.

Each path is read when asked, not at import, so a variable set after the import (a wrapper, a test) counts. The
first boot (cloudinit/) creates the host's folders; session.host.first_boot reads what it left.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional

Environ = Optional[Mapping[str, str]]

PACKAGE_DIR = Path(__file__).resolve().parents[1]
DEFAULTS_DIR = PACKAGE_DIR / "defaults"  # what `init` copies into custom_files/
UNITS_DIR = PACKAGE_DIR / "units"  # the session's systemd units, installed by the first boot

SYSTEM_ENV_VARIABLE, DEFAULT_SYSTEM_ENV = "DR_SYSTEM_ENV", "/etc/deepracer/system.env"  # written by the stack
RUN_ENV_VARIABLE, DEFAULT_RUN_ENV = "DR_RUN_ENV", "~/deepracer/run.env"  # the user's, as DRfC's run.env
READY_MARKER_VARIABLE, DEFAULT_READY_MARKER = "DR_READY_MARKER", "/var/lib/deepracer/ready"  # the first boot's end
RUN_STATE_VARIABLE, DEFAULT_RUN_STATE = "DR_RUN_STATE", "/var/lib/deepracer/run/state.json"
IDLE_STATE_VARIABLE, DEFAULT_IDLE_STATE = "DR_IDLE_STATE", "/var/lib/deepracer/idle.json"
# `deepracer keep-awake`: written by the user who trains (the run folder is theirs), read by the idle check (root)
KEEP_AWAKE_VARIABLE, DEFAULT_KEEP_AWAKE = "DR_KEEP_AWAKE", "/var/lib/deepracer/run/keep-awake.json"
# `deepracer swarm-init` on a host without simulation nodes: where the worker join token goes (root only)
JOIN_TOKEN_VARIABLE, DEFAULT_JOIN_TOKEN = "DR_SWARM_JOIN_TOKEN_FILE", "/var/lib/deepracer/swarm/join.json"
# `deepracer dashboard`: its access token, made at its first start, readable by the user who trains only (0600)
DASHBOARD_TOKEN_VARIABLE, DEFAULT_DASHBOARD_TOKEN = "DR_DASHBOARD_TOKEN_FILE", "/var/lib/deepracer/run/dashboard-token"
TRACKS_VARIABLE, HOST_TRACKS_DIR = "DR_TRACKS_DIR", "/var/lib/deepracer/tracks"  # the image's tracks, cached
BOOTSTRAP_LOG = "/var/log/deepracer-bootstrap.log"
MINIO_DATA_DIR = "/mnt/deepracer/minio"  # azure/local: MinIO's objects on the scratch disk


def _environ(environ: Environ) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def default_system_env(environ: Environ = None) -> Path:
    """/etc/deepracer/system.env, or the file $DR_SYSTEM_ENV names."""
    return Path(_environ(environ).get(SYSTEM_ENV_VARIABLE) or DEFAULT_SYSTEM_ENV).expanduser()


def default_run_env(environ: Environ = None, experiment: Optional[str] = None) -> Path:
    """$DR_RUN_ENV, else ~/deepracer/run.env, or ~/deepracer/experiments/<experiment>/run.env (DRfC's -e)."""
    environ = _environ(environ)
    if environ.get(RUN_ENV_VARIABLE):
        return Path(environ[RUN_ENV_VARIABLE]).expanduser()
    default = Path(DEFAULT_RUN_ENV).expanduser()
    return default.parent / "experiments" / experiment / default.name if experiment else default


def custom_files_dir(run_env: Path) -> Path:
    """custom_files/ beside run.env, as DRfC keeps them beside its run.env."""
    return Path(run_env).parent / "custom_files"


def default_ready_marker(environ: Environ = None) -> Path:
    """/var/lib/deepracer/ready, or the file $DR_READY_MARKER names."""
    return Path(_environ(environ).get(READY_MARKER_VARIABLE) or DEFAULT_READY_MARKER)


def default_run_state(environ: Environ = None) -> Path:
    """/var/lib/deepracer/run/state.json, or the file $DR_RUN_STATE names."""
    return Path(_environ(environ).get(RUN_STATE_VARIABLE) or DEFAULT_RUN_STATE)


def default_idle_state(environ: Environ = None) -> Path:
    """/var/lib/deepracer/idle.json, or the file $DR_IDLE_STATE names."""
    return Path(_environ(environ).get(IDLE_STATE_VARIABLE) or DEFAULT_IDLE_STATE)


def default_keep_awake(environ: Environ = None) -> Path:
    """/var/lib/deepracer/run/keep-awake.json, or the file $DR_KEEP_AWAKE names."""
    return Path(_environ(environ).get(KEEP_AWAKE_VARIABLE) or DEFAULT_KEEP_AWAKE)


def tracks_dir_candidates(explicit: Optional[str] = None, environ: Environ = None) -> list[str]:
    """Where track .npy files are looked for, in order: --tracks, $DR_TRACKS_DIR, the host's cache."""
    return [c for c in (explicit, _environ(environ).get(TRACKS_VARIABLE), HOST_TRACKS_DIR) if c]


def default_cache_dir(environ: Environ = None) -> Path:
    """$XDG_CACHE_HOME/deepracer, else ~/.cache/deepracer (the status digest's cache)."""
    environ = _environ(environ)
    return Path(environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")) / "deepracer"


def default_join_token_file(environ: Environ = None) -> Path:
    """/var/lib/deepracer/swarm/join.json, or the file $DR_SWARM_JOIN_TOKEN_FILE names."""
    return Path(_environ(environ).get(JOIN_TOKEN_VARIABLE) or DEFAULT_JOIN_TOKEN)


def default_dashboard_token(environ: Environ = None) -> Path:
    """/var/lib/deepracer/run/dashboard-token, or the file $DR_DASHBOARD_TOKEN_FILE names."""
    return Path(_environ(environ).get(DASHBOARD_TOKEN_VARIABLE) or DEFAULT_DASHBOARD_TOKEN)
