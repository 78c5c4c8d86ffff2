"""What the cost card needs, gathered on the host: this machine's hourly list price (its type or size and market
from the metadata service, the price from session.core.pricing), the stack's monthly budget (the cost settings
object in storage), the run history, and the idle stop's countdown (session.lifecycle.idle's clock).

The page polls every two seconds; the metadata service is asked once (again after a failure, at most every
RETRY_S), the budget re-read every BUDGET_EVERY_S (a `pulumi up` may change it while the dashboard runs), the
history and the idle clock (small local files) at every poll.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Callable, Optional

from session.core.config import SystemConfig
from session.core.errors import DeepracerError
from session.core.metadata import Machine, this_machine
from session.core.pricing import hourly_price
from session.dashboard.api import CostFacts
from session.lifecycle.idle_clock import idle_stop_left_now
from session.run.state import RunState

RETRY_S = 300.0
BUDGET_EVERY_S = 600.0


class CostSource:
    """`facts(now)` as of `now`; safe from several threads (the page's polls run in a thread pool)."""

    def __init__(self, system: SystemConfig, *, history: Callable[[], list[RunState]],
                 budget: Callable[[], Optional[float]],
                 machine: Optional[Callable[[], Optional[Machine]]] = None,
                 idle_left: Optional[Callable[[datetime], Optional[timedelta]]] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._system, self._history, self._budget = system, history, budget
        self._machine = machine or (lambda: this_machine(system.cloud))
        self._idle_left = idle_left or (lambda now: idle_stop_left_now(system, now))
        self._clock = clock
        self._lock = threading.Lock()
        self._asked: dict[str, tuple[float, object, Optional[str]]] = {}  # what -> (when, value, error)

    def _cached(self, what: str, ask: Callable[[], object], every_s: float) -> tuple[object, Optional[str]]:
        with self._lock:
            kept = self._asked.get(what)
            if kept is not None and (self._clock() - kept[0] < (every_s if kept[2] is None else RETRY_S)):
                return kept[1], kept[2]
        try:
            value, error = ask(), None
        except (DeepracerError, OSError) as failure:  # shown on the card; asked again later
            value, error = None, " ".join(str(failure).split()) or type(failure).__name__
        with self._lock:
            self._asked[what] = (self._clock(), value, error)
        return value, error

    def facts(self, now: datetime) -> CostFacts:
        machine, machine_error = self._cached("machine", self._machine, float("inf"))
        budget, budget_error = self._cached("budget", self._budget, BUDGET_EVERY_S)
        found = machine if isinstance(machine, Machine) else None
        try:
            idle = self._idle_left(now)
        except OSError:
            idle = None
        return CostFacts(price=hourly_price(found.cloud, found.size, found.spot) if found is not None else None,
                         machine=found.size if found is not None else None, price_error=machine_error,
                         budget_usd=budget if isinstance(budget, float) else None, budget_error=budget_error,
                         history=tuple(self._history()), idle_stop_left=idle)
