"""The host as a swarm's manager (`deepracer swarm-init`, run by the first boot): the swarm advertised on the
private IP, this node labelled Sagemaker and Robomaker, the overlay `sagemaker-local`, and the worker nodes' join
token handed to whoever lets them join.

The token is a secret (it admits a node to the swarm), so it goes through one injectable function,
`publish_join_token(token, manager)`. The default writes a root-only file (tests and a host without more read
it); the infra's secret channel (a parameter store, a key vault) replaces it when it is wired in.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from session.core import console
from session.core.console import Say
from session.core.paths import default_join_token_file
from session.engine.containers import Engine
from session.engine.specs import NETWORK
from session.engine.swarm import Swarm

PublishJoinToken = Callable[[str, str], None]  # (token, manager address "<ip>:2377")


@dataclass(frozen=True)
class SwarmInit:
    node_id: str
    manager: str  # "<advertise address>:2377": where the nodes join
    network: str


def file_publisher(path: Optional[Path] = None) -> PublishJoinToken:
    """A publisher that writes `{"token", "manager"}` to `path` (default: the paths module's), readable by root
    only: the token admits any machine that can reach the manager to the swarm."""

    def publish(token: str, manager: str) -> None:
        target = path or default_join_token_file()
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump({"token": token, "manager": manager}, out)
        os.chmod(target, 0o600)  # an existing file keeps its old mode through os.open

    return publish


def swarm_init(engine: Engine, advertise_addr: str, *, publish_join_token: Optional[PublishJoinToken] = None,
               say: Say = console.say) -> SwarmInit:
    """Idempotent: a manager already stays one (a reboot runs it again), its labels and overlay are made sure of,
    and the token is published again (the channel may have lost it)."""
    swarm = Swarm(engine)
    node = swarm.init(advertise_addr)
    say(f"swarm manager: node {node[:12]} advertised on {advertise_addr}, labelled Sagemaker and Robomaker")
    for joined in swarm.label_workers():
        say(f"labelled node {joined.hostname} ({joined.id[:12]}) Robomaker=true")
    swarm.ensure_overlay(NETWORK)
    say(f"network {NETWORK}: an attachable overlay with Docker Compose's labels")
    manager = swarm.manager_address()
    (publish_join_token or file_publisher())(swarm.join_token(), manager)
    say(f"published the worker nodes' join token for {manager}")
    return SwarmInit(node, manager, NETWORK)
