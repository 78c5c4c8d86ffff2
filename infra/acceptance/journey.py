"""The journey: each step timed and checked, in order; `destroy` attempted whenever the stack was created.

The cloud is reached through three seams (a Pulumi stack, a channel to the host's shell, the lasting model
storage), real in `pulumi_stack`, `aws_cloud` and `azure_cloud`, fakes in the tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Protocol, TypeVar

from infra.acceptance import host_commands as commands
from infra.acceptance.errors import StepFailed
from infra.acceptance.host_commands import RemoteResult

OK, FAILED, SKIPPED, KEPT = "ok", "FAILED", "skipped", "kept"
STEPS = ("up", "reach host", "doctor", "validate", "train", "status", "evaluate", "car-package", "stop",
         "models in storage", "destroy", "models kept")
# Seconds a host command may take (the channels stop waiting then). `train` returns once trainer and workers run.
HOST_TIMEOUTS_S = {"doctor": 900, "validate": 900, "train": 1800, "status": 300, "evaluate": 2700,
                   "car-package": 900, "stop": 900}
STATUS_POLL_S = 60.0
# From `train` returning to an iteration with a checkpoint; the 15-minute time limit ends training before it.
TRAINED_DEADLINE_S = 20 * 60.0
_DETAIL_CHARS = 240
HOST_LINES = 40  # of each host command's output, in the progress log

T = TypeVar("T")


class Stack(Protocol):
    """A fresh stack of this checkout's program (pulumi.automation in `pulumi_stack`)."""

    name: str

    def create(self) -> None: ...

    def up(self) -> Mapping[str, Any]: ...  # the stack outputs, plain values

    def destroy(self) -> None: ...

    def remove(self) -> None: ...  # the stack and its Pulumi.<stack>.yaml, after a successful destroy


class HostChannel(Protocol):
    """A shell on the host as root, with no inbound port: SSM send-command on AWS, run command on Azure."""

    def reach(self) -> str: ...  # waits until the host takes commands; says how it was reached

    def run(self, script: str, timeout_s: int) -> RemoteResult: ...


class ModelStore(Protocol):
    """The storage that outlives the host: the bucket (AWS), the blob container (Azure)."""

    def count(self, prefix: str) -> int: ...  # objects under <prefix>/model/

    def kept(self, prefix: str) -> str: ...  # after destroy: what shows the models are still there (StepFailed if not)


@dataclass
class Cloud:
    """What the journey needs of one cloud; `connect` and `models` take the stack's outputs."""

    name: str  # aws | azure
    user: str  # the host's user: ubuntu (AWS), the admin user (Azure)
    stack: Stack
    connect: Callable[[Mapping[str, Any]], HostChannel]
    models: Callable[[Mapping[str, Any]], ModelStore]


@dataclass(frozen=True)
class StepResult:
    step: str
    result: str  # ok | FAILED | skipped | kept
    seconds: Optional[float]
    detail: str


@dataclass
class Outcome:
    cloud: str
    stack: str
    results: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def passed(self) -> bool:
        # Steps are skipped only after a failure, or (models kept) under --keep.
        return not any(r.result == FAILED for r in self.results) and not self.interrupted

    def result_of(self, step: str) -> Optional[StepResult]:
        return next((r for r in self.results if r.step == step), None)

    @property
    def left_behind(self) -> bool:
        """The stack may still hold resources: destroy failed, was interrupted, or --keep."""
        destroy = self.result_of("destroy")
        return destroy is not None and destroy.result in (FAILED, KEPT)


def manual_cleanup(stack: str, repo_root: str) -> str:
    return (f"cd {repo_root} && pulumi destroy --stack {stack} --yes && pulumi stack rm {stack} --yes "
            f"(its resources carry the tag stack={stack})")


class Journey:
    def __init__(self, cloud: Cloud, *, keep: bool = False, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, say: Callable[[str], None] = print,
                 poll_every_s: float = STATUS_POLL_S, trained_deadline_s: float = TRAINED_DEADLINE_S) -> None:
        self._cloud = cloud
        self._keep = keep
        self._clock = clock
        self._sleep = sleep
        self._say = say
        self._poll_every_s = poll_every_s
        self._trained_deadline_s = trained_deadline_s
        self._outcome = Outcome(cloud.name, cloud.stack.name)
        self._created = False
        self._failed = False
        self._channel: Optional[HostChannel] = None
        self._store: Optional[ModelStore] = None
        self._prefix: Optional[str] = None

    def run(self) -> Outcome:
        started = self._clock()
        user = self._cloud.user
        self._step("up", self._up)
        self._step("reach host", self._reach)
        self._step("doctor", lambda: self._host("doctor", commands.doctor(user)))
        self._step("validate", lambda: self._host("validate", commands.validate(user)))
        self._step("train", lambda: self._host("train", commands.train(user)))
        self._step("status", self._until_trained)
        self._step("evaluate", lambda: self._host("evaluate", commands.evaluate(user)))
        self._step("car-package", self._car_package)
        self._step("stop", lambda: self._host("stop", commands.stop(user)))
        self._step("models in storage", self._models_in_storage)
        self._destroy()
        self._step("models kept", self._models_kept, skip=self._why_not_destroyed())
        self._outcome.seconds = self._clock() - started
        return self._outcome

    # -- the runner --------------------------------------------------------------------------------------------

    def _step(self, name: str, body: Callable[[], str], always: bool = False, skip: Optional[str] = None) -> None:
        if skip is None and self._failed and not always:
            skip = "an earlier step failed"
        if skip is not None:
            self._record(StepResult(name, SKIPPED, None, skip))
            return
        self._say(f"--- {name}")
        started = self._clock()
        try:
            detail = body()
            result = OK
        except StepFailed as error:
            detail, result = str(error), FAILED
        except KeyboardInterrupt:
            detail, result = "interrupted (Ctrl-C)", FAILED
            self._outcome.interrupted = True
        except Exception as error:  # noqa: BLE001 - a cloud SDK's or the CLI's error: recorded, and destroy still runs
            detail, result = f"{type(error).__name__}: {error}", FAILED
        if result == FAILED:
            self._failed = True
        self._record(StepResult(name, result, self._clock() - started, detail))

    def _record(self, result: StepResult) -> None:
        detail = " ".join(result.detail.split())
        if len(detail) > _DETAIL_CHARS:
            detail = detail[:_DETAIL_CHARS - 1] + "…"
        result = StepResult(result.step, result.result, result.seconds, detail)
        self._outcome.results.append(result)
        took = "" if result.seconds is None else f" in {result.seconds:.0f} s"
        self._say(f"--- {result.step}: {result.result}{took}: {result.detail}")

    # -- the steps ---------------------------------------------------------------------------------------------

    def _up(self) -> str:
        self._created = True  # from here on, destroy runs: a failed create or up may have left resources
        self._cloud.stack.create()
        outputs = self._cloud.stack.up()
        self._channel = self._cloud.connect(outputs)
        self._store = self._cloud.models(outputs)
        shown = [f"{key} {outputs[key]}" for key in ("instanceId", "vmName", "bucket", "storageAccount")
                 if outputs.get(key)]
        return "host ready; " + ", ".join(shown)

    def _reach(self) -> str:
        assert self._channel is not None
        return self._channel.reach()

    def _host(self, step: str, script: str) -> str:
        return commands.last_line(self._run(step, script).stdout)

    def _run(self, step: str, script: str) -> RemoteResult:
        assert self._channel is not None
        self._say(f"    $ {script.splitlines()[0]}")
        result = self._channel.run(script, HOST_TIMEOUTS_S[step])
        # The host's own words, for whoever reads the log after a failure (the summary keeps one line).
        for line in (result.stdout.rstrip("\n").splitlines() + result.stderr.rstrip("\n").splitlines())[-HOST_LINES:]:
            self._say(f"    {line}")
        if result.exit_code != 0:
            why = commands.last_line(result.stderr) or commands.last_line(result.stdout) or "no output"
            code = "no exit code reported" if result.exit_code is None else f"exit {result.exit_code}"
            raise StepFailed(f"{code}: {why}")
        return result

    def _until_trained(self) -> str:
        deadline = self._clock() + self._trained_deadline_s
        polls = 0
        while True:
            digest = commands.parse_status(self._run("status", commands.status(self._cloud.user)).stdout)
            polls += 1
            if digest.trained:
                self._prefix = digest.model_prefix
                return f"{digest.model_prefix}: {digest.describe()} (poll {polls})"
            if not digest.running:
                raise StepFailed(f"training is not running: {digest.describe()}"
                                 + (f"; {digest.progress_error}" if digest.progress_error else "")
                                 + "; see `deepracer logs trainer` on the host")
            if self._clock() >= deadline:
                raise StepFailed(f"no iteration with a checkpoint within {self._trained_deadline_s / 60:.0f} min: "
                                 f"{digest.describe()}")
            self._sleep(self._poll_every_s)

    def _car_package(self) -> str:
        assert self._prefix is not None
        return commands.check_car_package(self._run("car-package",
                                                    commands.car_package(self._cloud.user, self._prefix)).stdout)

    def _models_in_storage(self) -> str:
        assert self._store is not None and self._prefix is not None
        count = self._store.count(self._prefix)
        if count == 0:
            raise StepFailed(f"nothing under {self._prefix}/model/ in the lasting storage")
        return f"{count} object(s) under {self._prefix}/model/"

    def _destroy(self) -> None:
        stack = self._cloud.stack
        if not self._created:
            self._record(StepResult("destroy", SKIPPED, None, "no stack was created"))
            return
        if self._keep:
            self._record(StepResult("destroy", KEPT, None, f"--keep: stack {stack.name} left up"))
            return

        def destroy() -> str:
            stack.destroy()
            stack.remove()
            return f"stack {stack.name} destroyed and removed"

        self._step("destroy", destroy, always=True)

    def _why_not_destroyed(self) -> Optional[str]:
        destroy = self._outcome.result_of("destroy")
        if destroy is None or destroy.result == OK:
            return None
        return "--keep: nothing was destroyed" if destroy.result == KEPT else "destroy did not succeed"

    def _models_kept(self) -> str:
        # Runs only when every step before passed: "models in storage" found them before destroy.
        assert self._store is not None and self._prefix is not None
        return self._store.kept(self._prefix)
