"""The host as a swarm's manager (`deepracer swarm-init`, run by the first boot): the swarm advertised on the
private IP, this node labelled Sagemaker and Robomaker, the overlay `sagemaker-local`, and the worker nodes' join
token handed to whoever lets them join.

The token is a secret (it admits a node to the swarm), so it goes through one injectable function,
`publish_join_token(token, manager)`: the channel system.env names (session.host.join_token: the SSM parameter,
the Key Vault secret; a root-only file without nodes).

Once the nodes joined, `rotate_after_joined` (`deepracer swarm-rotate`, the unit deepracer-swarm-rotate.service
the first boot starts) rotates the token and publishes the new one, so the token the nodes read at their first
boot admits nobody any more, and labels the nodes that joined `Robomaker=true`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

from session.core import console
from session.core.console import Say
from session.engine.containers import Engine, EngineError
from session.engine.specs import NETWORK
from session.engine.swarm import Node, Swarm
from session.host.join_token import PublishJoinToken, file_publisher

__all__ = ["PublishJoinToken", "Rotation", "SwarmInit", "file_publisher", "rotate_after_joined", "swarm_init"]

# A node waits 60 minutes for the token, then reports failed (cloudinit/node/scripts/node-bootstrap.sh); past 70
# none is coming any more.
ROTATE_TIMEOUT_S = 70 * 60.0
ROTATE_POLL_S = 15.0


@dataclass(frozen=True)
class SwarmInit:
    node_id: str
    manager: str  # "<advertise address>:2377": where the nodes join
    network: str


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


@dataclass(frozen=True)
class Rotation:
    joined: tuple[Node, ...]  # the nodes that had joined (ready, not the manager) when it ended
    rotated: bool


def rotate_after_joined(engine: Engine, expected: int, *, publish_join_token: PublishJoinToken,
                        timeout_s: float = ROTATE_TIMEOUT_S, poll_s: float = ROTATE_POLL_S,
                        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                        say: Say = console.say) -> Rotation:
    """Waits until `expected` worker nodes have joined (each labelled Robomaker=true as it comes), then rotates the
    worker join token and publishes the new one. Gives up after `timeout_s` without rotating (said, `rotated`
    False): a node that comes later can still join with the token it reads."""
    swarm = Swarm(engine)
    if not swarm.is_manager():
        raise EngineError("this host is not a swarm manager: run `deepracer swarm-init --advertise-addr <private IP>`"
                          " first")
    deadline = clock() + timeout_s
    said = -1
    while True:
        joined = tuple(node for node in swarm.nodes() if not node.manager and node.ready)
        for node in swarm.label_workers():  # after the count: every node counted is labelled
            say(f"labelled node {node.hostname} ({node.id[:12]}) Robomaker=true")
        if len(joined) >= expected:
            break
        if clock() >= deadline:
            say(f"stopped waiting after {timeout_s / 60:g} min: {len(joined)} of {expected} nodes joined; the worker "
                "join token was NOT rotated (`deepracer swarm-rotate` rotates it once they are there)")
            return Rotation(joined, rotated=False)
        if len(joined) != said:
            say(f"{len(joined)} of {expected} nodes joined; waiting for the others")
            said = len(joined)
        sleep(poll_s)
    old = swarm.join_token()
    new = swarm.rotate_worker_token()
    if new == old:
        raise EngineError("the swarm kept its worker join token through a rotation")
    publish_join_token(new, swarm.manager_address())
    say(f"{len(joined)} of {expected} nodes joined ({', '.join(node.hostname for node in joined)}); rotated the worker "
        "join token and published the new one: the one they joined with admits nobody any more")
    return Rotation(joined, rotated=True)
