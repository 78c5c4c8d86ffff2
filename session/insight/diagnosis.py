"""The run's diagnosis at one moment, for `deepracer doctor` (terminal and JSON): the live view's rules
(session.insight.live: failures named in the logs, exceptions, exits, stalls) over the tail of each container's
log, without following it. The same rules as `watch` and the dashboard, so each says the same cause."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from session.insight.live import LiveState, Stall, StallRules

if TYPE_CHECKING:  # pragma: no cover
    from session.engine.containers import ContainerInfo

TAIL_LINES = 5000  # of each container's log: enough for an iteration of a busy worker, quick to read


@dataclass(frozen=True)
class Diagnosis:
    run: Optional[str]
    containers: int
    findings: tuple[Stall, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict:
        return {"run": self.run, "containers": self.containers, "ok": self.ok,
                "findings": [asdict(finding) for finding in self.findings]}


def diagnose(containers: Sequence["ContainerInfo"], read_log: Callable[["ContainerInfo"], str], now: float, *,
             rules: StallRules = StallRules(), run: Optional[str] = None) -> Diagnosis:
    """`containers`: the run's (any state); `read_log(container)` the tail of its log. Lines count as seen `now`
    (a tail carries no arrival times): stalls that need time to pass show in `watch`, failures named in the logs
    and exits show here."""
    live = LiveState()
    live.set_containers(containers)
    siblings = [c for c in containers if c.role == "sagemaker"]
    trainer = (siblings or [c for c in containers if c.role == "trainer"])[:1]
    for container in trainer:
        for line in read_log(container).splitlines():
            live.trainer_line(line, now)
    for container in containers:
        if container.role == "worker" and container.worker:
            for line in read_log(container).splitlines():
                live.worker_line(container.worker, line, now)
    return Diagnosis(run, len(containers), live.snapshot(now, rules).stalls)


def render(diagnosis: Diagnosis) -> list[str]:
    run = f"run {diagnosis.run}" if diagnosis.run else "run"
    if not diagnosis.containers:
        return [f"{run}: no training or evaluation containers here: nothing to diagnose"]
    if diagnosis.ok:
        return [f"{run}: {diagnosis.containers} containers, no failure in their logs"]
    lines = [f"{run}: {len(diagnosis.findings)} finding(s)"]
    for finding in diagnosis.findings:
        lines.append(f"  FAIL  {finding.subject}: {finding.message}")
        lines.append(f"        cause: {finding.cause}")
    return lines
