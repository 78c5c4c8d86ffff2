"""The training host's first-boot state, as cloud-init left it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from session.core import console
from session.core.envfile import read_env_file
from session.core.paths import BOOTSTRAP_LOG, default_ready_marker, default_system_env


@dataclass(frozen=True)
class HostState:
    ready: bool
    system_env: dict[str, str]
    system_env_path: str
    log: str


def read_system_env(path: Path) -> dict[str, str]:
    """KEY=value lines with the session's own dotenv parser (no shell evaluation)."""
    return dict(read_env_file(path, environ={}).values)


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
        console.emit_json(asdict(state))
    else:
        console.say(f"host: {'ready' if state.ready else 'NOT ready'} (first-boot log: {state.log})")
        if not state.system_env:
            console.say(f"system settings: {state.system_env_path} not found")
        for key, value in sorted(state.system_env.items()):
            console.say(f"  {key}={value}")
    return 0 if state.ready else 1
