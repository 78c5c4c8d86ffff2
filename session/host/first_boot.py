"""The training host's first-boot state, as cloud-init left it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Optional

from session.core.config import default_system_env

# cloud-init writes these (cloudinit/), this module reads them; system.env's path belongs to session.core.config.
READY_MARKER_VARIABLE = "DR_READY_MARKER"
DEFAULT_READY_MARKER = "/var/lib/deepracer/ready"
BOOTSTRAP_LOG = "/var/log/deepracer-bootstrap.log"


@dataclass(frozen=True)
class HostState:
    ready: bool
    system_env: dict[str, str]
    system_env_path: str
    log: str


def read_system_env(path: Path) -> dict[str, str]:
    """KEY=value lines with the session's own dotenv parser (no shell evaluation)."""
    from session.core.envfile import read_env_file

    return dict(read_env_file(path, environ={}).values)


def default_ready_marker(environ: Optional[Mapping[str, str]] = None) -> Path:
    """/var/lib/deepracer/ready, or the file $DR_READY_MARKER names; read when asked, not at import, so that
    a variable set after the import (a test, a wrapper) counts."""
    environ = os.environ if environ is None else environ
    return Path(environ.get(READY_MARKER_VARIABLE) or DEFAULT_READY_MARKER)


def host_state(system_env: Optional[Path] = None, marker: Optional[Path] = None) -> HostState:
    """The first-boot state: `system_env` defaults to session.core.config's (--system-env, else $DR_SYSTEM_ENV, else
    /etc/deepracer/system.env), `marker` to default_ready_marker()."""
    system_env = Path(system_env) if system_env is not None else default_system_env()
    marker = Path(marker) if marker is not None else default_ready_marker()
    values: dict[str, str] = read_system_env(system_env) if system_env.is_file() else {}
    return HostState(ready=marker.is_file(), system_env=values, system_env_path=str(system_env), log=BOOTSTRAP_LOG)


def print_host_state(as_json: bool = False, state: Optional[HostState] = None) -> int:
    """Exit 0 when the host finished its first boot, 1 while it has not (or never will: see the log)."""
    state = state or host_state()
    if as_json:
        print(json.dumps(asdict(state), indent=2))
    else:
        print(f"host: {'ready' if state.ready else 'NOT ready'} (first-boot log: {state.log})")
        if not state.system_env:
            print(f"system settings: {state.system_env_path} not found")
        for key, value in sorted(state.system_env.items()):
            print(f"  {key}={value}")
    return 0 if state.ready else 1
