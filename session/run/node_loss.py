"""A swarm node lost under a run: which of the run's workers it carried, since when it has been seen down, and
whether it has been down for longer than a network blip (the grace).

Why a lost node ends the run: the simulator's rollout count is fixed when the run starts. Each worker reads
NUM_WORKERS from training_params.yaml (simapp bundle/markov/rollout_worker.py, `--num_workers` defaults to
`WorldConfig.get_param("NUM_WORKERS", 1)`), and the episodes of an iteration are dealt out by it: worker `i`
serves episode numbers `i + k * num_workers` (bundle/markov/deepracer_memory.py, `data_req_handler`). The trainer
asks for every episode of the iteration in turn, so without a worker's share it waits forever while the GPU
bills; nothing can hand that share to the workers left.

The decision (`due`) is pure: the lost workers seen now, what was remembered, the time, the grace. The memory
is a small JSON file beside the run state (`nodes-down.json`), per run part (its token): a node is remembered
from the first check that saw it down until a check sees it back (a blip re-arms the grace).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Mapping, Optional

from session.engine.specs import worker_service_name
from session.engine.swarm import Swarm

# Long enough for a network blip or a node's Docker restart, short enough that an idle GPU costs little (two
# minutes of a g4dn.2xlarge: about 3 cents). A node down for longer than a reboot has lost its worker anyway:
# the service's restart policy is none, so the replica does not come back by itself.
GRACE = timedelta(minutes=2)
MEMORY_NAME = "nodes-down.json"


@dataclass(frozen=True)
class DownNode:
    """A node that is down with some of the run's workers on it, and since when a check has seen it down."""

    node_id: str
    hostname: str
    workers: tuple[int, ...]
    since: datetime

    def describe(self) -> str:
        plural = "s" if len(self.workers) > 1 else ""
        # With its id: nodes made from one image may share a hostname.
        return f"node {self.hostname} ({self.node_id[:12]}; worker{plural} {', '.join(str(w) for w in self.workers)})"


def lost_workers(swarm: Swarm, run_id: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The run's replicas whose node is down, by node id: (the node's hostname, the workers on it). Empty when
    this host is no swarm manager or the run has no worker service."""
    name = worker_service_name(run_id)
    if not swarm.is_manager() or swarm.service(name) is None:
        return {}
    nodes = {node.id: node for node in swarm.nodes()}
    found: dict[str, tuple[str, list[int]]] = {}
    for task in swarm.current_tasks(name):
        replica = swarm.task_container(task, nodes)
        if replica.lost:
            found.setdefault(task.node_id, (replica.node or task.node_id, []))[1].append(task.slot)
    return {node_id: (hostname, tuple(sorted(slots))) for node_id, (hostname, slots) in found.items()}


def due(lost: Mapping[str, tuple[str, tuple[int, ...]]], remembered: Mapping[str, Any], token: str,
        now: datetime, grace: timedelta = GRACE) -> tuple[list[DownNode], list[DownNode], dict[str, Any]]:
    """(the nodes down for at least `grace`, those still within it, the memory to keep). `remembered` is what an
    earlier call returned as memory (another run part's is forgotten); a node no longer lost is forgotten."""
    earlier = remembered.get("nodes", {}) if remembered.get("token") == token else {}
    down: list[DownNode] = []
    for node_id, (hostname, workers) in sorted(lost.items()):
        since = _time(earlier.get(node_id, {}).get("since")) or now
        down.append(DownNode(node_id, hostname, workers, since))
    memory = {"token": token, "nodes": {node.node_id: {"since": node.since.isoformat(), "hostname": node.hostname,
                                                       "workers": list(node.workers)} for node in down}}
    past = [node for node in down if now - node.since >= grace]
    within = [node for node in down if now - node.since < grace]
    return past, within, memory


def pending(memory_path: Path, token: str) -> list[DownNode]:
    """The nodes a check has seen down under the run part `token` (what `status` shows while the grace runs)."""
    remembered = read_memory(memory_path)
    if remembered.get("token") != token:
        return []
    return [DownNode(node_id, str(node.get("hostname", node_id)), tuple(node.get("workers", ())), since)
            for node_id, node in sorted(remembered.get("nodes", {}).items())
            if (since := _time(node.get("since"))) is not None]


def memory_path_beside(run_state: Path) -> Path:
    return Path(run_state).with_name(MEMORY_NAME)


def read_memory(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_memory(path: Path, memory: Mapping[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(dict(memory)) + "\n")
    os.replace(temporary, path)


def _time(text: Optional[str]) -> Optional[datetime]:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
