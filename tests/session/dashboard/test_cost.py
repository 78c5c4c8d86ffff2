"""What the cost card is built from on the host (session.dashboard.cost.CostSource): the metadata service asked
once, failures shown and asked again later, the budget re-read now and then, history and idle clock every time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from session.core.config import SystemConfig, load_system_config
from session.core.metadata import Machine, NoticeError
from session.dashboard.cost import BUDGET_EVERY_S, RETRY_S, CostSource
from session.storage.s3 import StorageError

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def system(tmp_path: Path, cloud: str) -> SystemConfig:
    (tmp_path / "system.env").write_text(f"DR_CLOUD={cloud}\nDR_LOCAL_S3_BUCKET=models\nDR_SIMAPP_VERSION=6.0.4-gpu\n")
    return load_system_config(tmp_path / "system.env", environ={})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_machine_is_asked_once_and_its_price_looked_up(tmp_path: Path):
    asked: list[str] = []
    clock = Clock()
    source = CostSource(system(tmp_path, "aws"), history=lambda: [], budget=lambda: asked.append("budget") or 80.0,
                        machine=lambda: asked.append("machine") or Machine("aws", "g4dn.2xlarge", True),
                        idle_left=lambda now: timedelta(minutes=3), clock=clock)
    facts = source.facts(NOW)
    assert (facts.price.usd, facts.machine, facts.budget_usd, facts.idle_stop_left) == (
        0.3158, "g4dn.2xlarge", 80.0, timedelta(minutes=3))
    clock.now += BUDGET_EVERY_S - 1
    source.facts(NOW)
    assert asked == ["machine", "budget"]
    clock.now += 2
    source.facts(NOW)
    assert asked == ["machine", "budget", "budget"]  # a budget a `pulumi up` changed shows up


def test_failures_are_shown_as_one_line_and_asked_again_later(tmp_path: Path):
    answers = [NoticeError("cannot reach http://169.254.169.254/latest/api/token: timed out"),
               Machine("azure", "Standard_NC99_unknown", False)]

    def machine():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def budget():
        raise StorageError("s3://b/bootstrap/cost.json: access denied")

    clock = Clock()
    source = CostSource(system(tmp_path, "local"), history=lambda: [], budget=budget, machine=machine,
                        idle_left=lambda now: None, clock=clock)
    facts = source.facts(NOW)
    assert (facts.price, facts.price_error) == (None, "cannot reach http://169.254.169.254/latest/api/token: timed out")
    assert (facts.budget_usd, facts.budget_error) == (None, "s3://b/bootstrap/cost.json: access denied")
    clock.now += RETRY_S
    facts = source.facts(NOW)
    assert (facts.price, facts.machine, facts.price_error) == (None, "Standard_NC99_unknown", None)  # not in the tables
