"""The training host's first-boot state, as cloud-init left it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

# One place for these paths: cloud-init writes them (cloudinit/), this module reads them.
SYSTEM_ENV = Path(os.environ.get("DR_SYSTEM_ENV", "/etc/deepracer/system.env"))
READY_MARKER = Path(os.environ.get("DR_READY_MARKER", "/var/lib/deepracer/ready"))
BOOTSTRAP_LOG = "/var/log/deepracer-bootstrap.log"


@dataclass(frozen=True)
class HostState:
    ready: bool
    system_env: dict[str, str]
    system_env_path: str
    log: str


def read_system_env(path: Path) -> dict[str, str]:
    """KEY=value lines with the session's own dotenv parser (no shell evaluation)."""
    from session.envfile import read_env_file

    return dict(read_env_file(path, environ={}).values)


def host_state(system_env: Path = SYSTEM_ENV, marker: Path = READY_MARKER) -> HostState:
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
