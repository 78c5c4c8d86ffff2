"""What the page polls (`GET /api/state`): the live view's snapshot (session.insight.live, the numbers `watch`
shows), the run's containers as `status --json` gives them, the run's time and its estimated cost, as plain JSON.
Pure: values in, a dict out; the server adds nothing of its own to the numbers."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Optional, Sequence

from session.core.text import iso
from session.insight.status import container_json, ordered
from session.run.state import training_between

if TYPE_CHECKING:  # pragma: no cover
    from session.core.config import RunConfig, SystemConfig
    from session.core.pricing import HourlyPrice
    from session.engine.containers import ContainerInfo
    from session.insight.live import Snapshot
    from session.run.state import RunState


COUNTED = ("training time on this host (every run part recorded this month), at this machine's list price; idle "
           "time, disks, public IP, storage and simulation nodes are not counted")


@dataclass(frozen=True)
class CostFacts:
    """What the host knows about its cost, as the server gathered it: the hourly list price of this machine
    (None locally or for a machine the tables do not know; `price_error` when the metadata service could not
    say), the stack's monthly budget (`budget_error` when it could not be read), the earlier run parts of the
    history, and how long until the idle stop (None when it does not count)."""

    price: Optional["HourlyPrice"] = None
    machine: Optional[str] = None  # the instance type or VM size the metadata service named
    price_error: Optional[str] = None
    budget_usd: Optional[float] = None
    budget_error: Optional[str] = None
    history: tuple["RunState", ...] = ()
    idle_stop_left: Optional[timedelta] = None


def state_json(*, system: "SystemConfig", run: "RunConfig", snapshot: Optional["Snapshot"],
               containers: Sequence["ContainerInfo"], run_state: Optional["RunState"], now: datetime,
               feed_error: Optional[str] = None, cost: Optional[CostFacts] = None) -> dict[str, Any]:
    """Everything the page shows, as of `now` (UTC)."""
    live = _snapshot_json(snapshot) if snapshot is not None else None
    ours = run_state if run_state is not None and run_state.run_id == run.run_id else None
    running = any(c.running for c in containers)
    return {
        "at": iso(now),
        "run": {"id": run.run_id, "model_prefix": run.local_s3_model_prefix, "bucket": system.local_s3_bucket,
                "image": system.simapp_image, "workers": system.workers},
        "running": running,
        "containers": [_container(c, now) for c in ordered(containers)],
        "live": live,
        # The run state is the host's newest run: this run's only when the ids agree.
        "time": time_json(system, ours, now),
        "cost": cost_json(system, cost or CostFacts(), this_run=ours, newest=run_state, running=running, now=now),
        "feed_error": feed_error,
    }


def time_json(system: "SystemConfig", state: Optional["RunState"], now: datetime) -> dict[str, Any]:
    """The run's time as the run state records it: trained (spot resumes included), the time limit and what is
    left of it, and the idle auto-stop's setting. What it cost is `cost_json`'s."""
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


def month_start(now: datetime) -> datetime:
    """The first moment of `now`'s calendar month, UTC (the clouds bill by UTC months)."""
    return now.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def cost_json(system: "SystemConfig", facts: CostFacts, *, this_run: Optional["RunState"],
              newest: Optional["RunState"], running: bool, now: datetime) -> dict[str, Any]:
    """The cost card: this machine's hourly list price, this run's spend (its training time, spot resumes
    included, times the price), the month's (every run part recorded on this host since the first of the month,
    the newest record and the history), the stack's monthly budget and how much of it the month's estimate uses,
    and, while nothing runs, how long until the idle stop. No price, no spend: nothing is made up."""
    price = facts.price
    hourly = price.usd if price is not None else None
    run_s = this_run.trained_until(now) if this_run is not None else None
    parts = [*facts.history, *([newest] if newest is not None else [])]
    month_s = training_between(parts, month_start(now), now)
    month_usd = _usd(month_s, hourly)
    used = (round(100 * month_usd / facts.budget_usd, 1)
            if month_usd is not None and facts.budget_usd is not None else None)
    idle = facts.idle_stop_left if not running and facts.idle_stop_left is not None else None
    return {
        "cloud": system.cloud,
        "machine": price.machine if price is not None else facts.machine,
        "spot": price.spot if price is not None else None,
        "hourly_usd": hourly,
        "basis": price.basis if price is not None else None,
        "price_note": _price_note(system.cloud, facts),
        "run_training_s": round(run_s, 1) if run_s is not None else None,
        "run_usd": _usd(run_s, hourly),
        "month": f"{now:%Y-%m}",
        "month_training_s": round(month_s, 1),
        "month_usd": month_usd,
        "budget_usd": facts.budget_usd,
        "budget_used_pct": used,
        "budget_error": facts.budget_error,
        "counted": COUNTED,
        "idle_stop_in_s": round(idle.total_seconds(), 1) if idle is not None else None,
    }


def _usd(seconds: Optional[float], hourly: Optional[float]) -> Optional[float]:
    return None if seconds is None or hourly is None else round(seconds / 3600 * hourly, 2)


def _price_note(cloud: str, facts: CostFacts) -> Optional[str]:
    if facts.price is not None:
        return None
    if facts.price_error:
        return f"no price: {facts.price_error}"
    if cloud not in ("aws", "azure"):
        return f"no price on DR_CLOUD={cloud}: a machine of your own"
    return f"no list price known for {facts.machine or 'this machine'} (session/core/pricing.py)"


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
