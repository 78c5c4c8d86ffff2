"""What the page polls (`GET /api/state`): the live view's snapshot (session.insight.live, the numbers `watch`
shows), the run's containers as `status --json` gives them, and the run's time, as plain JSON. Pure: values in,
a dict out; the server adds nothing of its own to the numbers."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional, Sequence

from session.core.text import iso
from session.insight.status import container_json, ordered

if TYPE_CHECKING:  # pragma: no cover
    from session.core.config import RunConfig, SystemConfig
    from session.engine.containers import ContainerInfo
    from session.insight.live import Snapshot
    from session.run.state import RunState


def state_json(*, system: "SystemConfig", run: "RunConfig", snapshot: Optional["Snapshot"],
               containers: Sequence["ContainerInfo"], run_state: Optional["RunState"], now: datetime,
               feed_error: Optional[str] = None) -> dict[str, Any]:
    """Everything the page shows, as of `now` (UTC)."""
    live = _snapshot_json(snapshot) if snapshot is not None else None
    return {
        "at": iso(now),
        "run": {"id": run.run_id, "model_prefix": run.local_s3_model_prefix, "bucket": system.local_s3_bucket,
                "image": system.simapp_image, "workers": system.workers},
        "running": any(c.running for c in containers),
        "containers": [_container(c, now) for c in ordered(containers)],
        "live": live,
        # The run state is the host's newest run: this run's only when the ids agree.
        "time": time_json(system, run_state if run_state is not None and run_state.run_id == run.run_id else None,
                          now),
        "feed_error": feed_error,
    }


def time_json(system: "SystemConfig", state: Optional["RunState"], now: datetime) -> dict[str, Any]:
    """The run's time as the run state records it: trained (spot resumes included), the time limit and what is
    left of it, and the idle auto-stop's setting. Spend is not known on the host (the hourly estimate is the
    stack's output), so none is made up here."""
    trained = deadline = left = None
    if state is not None:
        trained = round(state.trained_until(now), 1)
        if state.deadline is not None:
            deadline = iso(state.deadline)
            left = round((state.deadline - now).total_seconds(), 1)
    return {"status": str(state.status) if state is not None else None,
            "prefix": state.prefix if state is not None else None,
            "started": iso(state.started) if state is not None else None,
            "trained_s": trained, "max_minutes": state.max_minutes if state is not None else None,
            "deadline": deadline, "time_left_s": left, "idle_stop_minutes": system.idle_stop_minutes}


def _container(container: "ContainerInfo", now: datetime) -> dict[str, Any]:
    found = container_json(container, now)
    found["node"] = container.node
    return found


def _snapshot_json(snapshot: "Snapshot") -> dict[str, Any]:
    trainer = _clean(asdict(snapshot.trainer))
    trainer["active"] = snapshot.trainer.active
    workers = []
    for worker in snapshot.workers:
        found = _clean(asdict(worker))
        found.update(name=worker.name, active=worker.active)
        workers.append(found)
    progress = snapshot.progress.to_dict() if snapshot.progress is not None else None
    return {
        "at": iso(datetime.fromtimestamp(snapshot.at, timezone.utc)),
        "trainer": trainer,
        "workers": workers,
        "iterations": [_clean(asdict(row)) for row in snapshot.iterations],
        "best": _clean(asdict(snapshot.best)) if snapshot.best is not None else None,
        "stalls": [asdict(stall) for stall in snapshot.stalls],
        "gpus": [asdict(gpu) for gpu in snapshot.gpus] if snapshot.gpus is not None else None,
        "gpu_error": snapshot.gpu_error,
        "disks": [{**asdict(disk), "used_pct": round(disk.used_pct, 1)} for disk in snapshot.disks],
        "progress": progress,
        "progress_error": snapshot.progress_error,
        "engine_error": snapshot.engine_error,
    }


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity (a reward may be NaN when the loss blew up): those become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value
