"""Small fakes of the acceptance test's seams: a clock, a Pulumi stack, a channel to the host, the model storage.

Each records what was asked of it, in order, in one shared `calls` list, so a test can assert the journey's order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

from infra.acceptance.errors import StepFailed
from infra.acceptance.host_commands import RemoteResult
from infra.acceptance.journey import Cloud

STACK = "acc-aws-20261206-101500"
PREFIX = "rl-deepracer-0"
OUTPUTS = {"instanceId": "i-0abc123def4567890", "bucket": "deepracer-acc-aws-20261206-101500-abc123",
           "region": "us-east-1", "connect": "aws ssm start-session --target i-0abc123def4567890"}


@dataclass
class FakeClock:
    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        # A poll that never ends would hang the test: fail it instead.
        assert len(self.sleeps) < 1000, "sleeping without end: a poll lost its deadline"
        self.sleeps.append(seconds)
        self.now += seconds


def digest(iterations: int = 2, last: Optional[str] = "2_Step-2400.ckpt", running: bool = True,
           episodes: int = 60, prefix: str = PREFIX) -> str:
    """The status script's last line, as the host prints it."""
    return json.dumps({"running": running, "model_prefix": prefix, "iterations": iterations, "episodes": episodes,
                       "checkpoints": iterations, "last_checkpoint": last, "progress_error": None})


def ok(stdout: str = "", stderr: str = "") -> RemoteResult:
    return RemoteResult(0, stdout, stderr)


Answer = Union[RemoteResult, BaseException]


class FakeStack:
    def __init__(self, calls: list[str], clock: FakeClock, *, name: str = STACK, up_error: Optional[Exception] = None,
                 destroy_error: Optional[Exception] = None, outputs: Mapping[str, Any] = OUTPUTS) -> None:
        self.name = name
        self.calls = calls
        self.clock = clock
        self.up_error = up_error
        self.destroy_error = destroy_error
        self.outputs = dict(outputs)

    def create(self) -> None:
        self.calls.append("stack.create")

    def up(self) -> Mapping[str, Any]:
        self.calls.append("stack.up")
        self.clock.advance(1200)
        if self.up_error:
            raise self.up_error
        return self.outputs

    def destroy(self) -> None:
        self.calls.append("stack.destroy")
        self.clock.advance(300)
        if self.destroy_error:
            raise self.destroy_error

    def remove(self) -> None:
        self.calls.append("stack.remove")


# The host's answer per command, found by the words after `deepracer` in the script.
def default_answers() -> dict[str, list[Answer]]:
    return {
        "--version": [ok("deepracer-cloud session 0.1.0\n")],
        "doctor": [ok("gpu: ok\nstorage: ok\ndoctor: the host can train\n")],
        "validate": [ok("run.env: ok\nvalidate: no problems\n")],
        "train": [ok("started trainer and 3 workers\nrun 1 of rl-deepracer-0 is training\n")],
        "status": [ok(digest())],
        "evaluate": [ok("trial 1: 18.204 s, 100.0 %\nevaluation of rl-deepracer-0-E done\n")],
        "models car-package": [ok("wrote /tmp/deepracer-acceptance-car.tar.gz\nmodel_metadata.json\nagent/model.pb\n")],
        "stop": [ok("stopped 5 containers of run 1\n")],
    }


class FakeChannel:
    def __init__(self, calls: list[str], clock: FakeClock, answers: dict[str, list[Answer]],
                 seconds: float = 30) -> None:
        self.calls = calls
        self.clock = clock
        self.answers = answers
        self.seconds = seconds
        self.timeouts: dict[str, int] = {}

    def reach(self) -> str:
        self.calls.append("host.reach")
        return "SSM agent online"

    def run(self, script: str, timeout_s: int) -> RemoteResult:
        self.calls.append(f"host: {script}")
        words = script.split(" deepracer ", 1)[1]
        key = next(k for k in sorted(self.answers, key=len, reverse=True) if words.startswith(k))
        self.timeouts[key] = timeout_s
        self.clock.advance(self.seconds)
        queue = self.answers[key]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer


class FakeModels:
    def __init__(self, calls: list[str], count: int = 14, kept_error: Optional[str] = None) -> None:
        self.calls = calls
        self.number = count
        self.kept_error = kept_error

    def count(self, prefix: str) -> int:
        self.calls.append(f"models.count {prefix}")
        return self.number

    def kept(self, prefix: str) -> str:
        self.calls.append(f"models.kept {prefix}")
        if self.kept_error:
            raise StepFailed(self.kept_error)
        return f"s3://bucket/{prefix}/model/ still holds {self.number} object(s)"


@dataclass
class World:
    """One fake cloud: its stack, host and storage, and the calls they saw."""

    calls: list[str] = field(default_factory=list)
    clock: FakeClock = field(default_factory=FakeClock)
    answers: dict[str, list[Answer]] = field(default_factory=default_answers)
    stack: Optional[FakeStack] = None
    channel: Optional[FakeChannel] = None
    models: Optional[FakeModels] = None
    outputs_seen: list[Mapping[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stack = self.stack or FakeStack(self.calls, self.clock)
        self.channel = self.channel or FakeChannel(self.calls, self.clock, self.answers)
        self.models = self.models or FakeModels(self.calls)

    def cloud(self, name: str = "aws", user: str = "ubuntu") -> Cloud:
        def connect(outputs: Mapping[str, Any]) -> FakeChannel:
            self.outputs_seen.append(outputs)
            return self.channel

        def models(outputs: Mapping[str, Any]) -> FakeModels:
            return self.models

        return Cloud(name, user, self.stack, connect, models)
