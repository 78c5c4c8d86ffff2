"""What the acceptance test sends to the host, and how it reads the answers (pure: text in, text out).

Both remote channels (AWS SSM's AWS-RunShellScript, Azure's RunShellScript run command) run a script as root,
so every `deepracer` command runs through `sudo -i -u <user>`: the host's user, in a login shell, with its home
(and so ~/deepracer/run.env) and its PATH, as README's Connect section has a person do it.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Optional

from infra.acceptance.errors import StepFailed

TRAIN_MAX_MINUTES = 15
STATUS_FILE = "/tmp/deepracer-acceptance-status.json"
CAR_PACKAGE = "/tmp/deepracer-acceptance-car.tar.gz"
CAR_PACKAGE_MEMBERS = ("model_metadata.json", "agent/model.pb")
# Azure's run command (v1) reports no exit code, only the last 4 KiB of stdout and stderr: the script prints it.
EXIT_MARKER = "deepracer-acceptance-exit="

# `status --json` holds the host's log, every container and every iteration: more than Azure's run command
# returns (4 KiB) after a few iterations. The host cuts it down to what the test checks, with the fields of
# session/insight/status.py's `as_json` and session/run/progress.py's `TrainingProgress.to_dict`.
STATUS_DIGEST = """import json, sys
status = json.load(open(sys.argv[1]))
progress = status.get("progress") or {}
last = progress.get("last_checkpoint") or {}
print(json.dumps({"running": status.get("running"), "model_prefix": status["run"]["model_prefix"],
                  "iterations": len(progress.get("iterations") or []), "episodes": progress.get("episodes") or 0,
                  "checkpoints": len(progress.get("checkpoints") or []), "last_checkpoint": last.get("name"),
                  "progress_error": status.get("progress_error")}))"""


@dataclass(frozen=True)
class RemoteResult:
    """What a script on the host did: its exit code (None when the channel could not tell), stdout, stderr."""

    exit_code: Optional[int]
    stdout: str
    stderr: str


def as_user(user: str, *args: str) -> str:
    return f"sudo -i -u {shlex.quote(user)} " + shlex.join(args)


def doctor(user: str) -> str:
    return as_user(user, "deepracer", "doctor")


def validate(user: str) -> str:
    return as_user(user, "deepracer", "validate")


def train(user: str) -> str:
    return as_user(user, "deepracer", "train", "--max-minutes", str(TRAIN_MAX_MINUTES))


def status(user: str) -> str:
    # `&&`: a failing `status` keeps its exit code (the channels' shell is dash: no pipefail).
    return (f"{as_user(user, 'deepracer', 'status', '--json', '--progress')} > {STATUS_FILE} "
            f"&& python3 -c {shlex.quote(STATUS_DIGEST)} {STATUS_FILE}")


def evaluate(user: str) -> str:
    # --clone: the copy is evaluated while training goes on (README: `evaluate --clone`), one trial is enough to
    # prove the evaluation worker drives and reports.
    return as_user(user, "deepracer", "evaluate", "--clone", "--checkpoint", "last", "--trials", "1")


def car_package(user: str, model_prefix: str) -> str:
    package = as_user(user, "deepracer", "models", "car-package", model_prefix, "--checkpoint", "last",
                      "--out", CAR_PACKAGE)
    return f"{package} && tar -tzf {CAR_PACKAGE}"


def stop(user: str) -> str:
    return as_user(user, "deepracer", "stop")


@dataclass(frozen=True)
class StatusDigest:
    running: bool
    model_prefix: str
    iterations: int
    episodes: int
    checkpoints: int
    last_checkpoint: Optional[str]
    progress_error: Optional[str]

    @property
    def trained(self) -> bool:
        """An iteration played and a checkpoint named as `last`: what evaluate and car-package need."""
        return self.iterations > 0 and bool(self.last_checkpoint)

    def describe(self) -> str:
        return (f"{self.iterations} iteration(s), {self.episodes} episode(s), {self.checkpoints} checkpoint(s), "
                f"last {self.last_checkpoint or 'none'}")


def parse_status(stdout: str) -> StatusDigest:
    """The digest line the status script prints last."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    try:
        data = json.loads(lines[-1])
        return StatusDigest(running=bool(data["running"]), model_prefix=str(data["model_prefix"]),
                            iterations=int(data["iterations"]), episodes=int(data["episodes"]),
                            checkpoints=int(data["checkpoints"]), last_checkpoint=data.get("last_checkpoint"),
                            progress_error=data.get("progress_error"))
    except (IndexError, ValueError, KeyError, TypeError):
        raise StepFailed(f"status: no digest in the host's answer: {last_line(stdout) or '(empty)'}") from None


def check_car_package(stdout: str) -> str:
    listed = {line.strip().lstrip("./") for line in stdout.splitlines()}
    missing = [name for name in CAR_PACKAGE_MEMBERS if name not in listed]
    if missing:
        raise StepFailed(f"{CAR_PACKAGE} lacks {', '.join(missing)}")
    return f"{CAR_PACKAGE}: {', '.join(CAR_PACKAGE_MEMBERS)}"


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --- Azure's run command ------------------------------------------------------------------------------------------


def with_exit_marker(script: str) -> str:
    return f'{script}\necho "{EXIT_MARKER}$?"'


def az_run_command(resource_group: str, vm_name: str, script: str) -> list[str]:
    """`az vm run-command invoke` (run command v1: synchronous, as root, up to 90 minutes)."""
    return ["az", "vm", "run-command", "invoke", "--resource-group", resource_group, "--name", vm_name,
            "--command-id", "RunShellScript", "--scripts", with_exit_marker(script), "--output", "json"]


_MESSAGE = re.compile(r"\[stdout\]\n(?P<stdout>.*?)\n?\[stderr\]\n(?P<stderr>.*)\Z", re.DOTALL)
_EXIT = re.compile(rf"^{re.escape(EXIT_MARKER)}(\d+)$", re.MULTILINE)


def parse_run_command(document: dict) -> RemoteResult:
    """The answer of `az vm run-command invoke -o json`: one status whose message holds `[stdout]` and `[stderr]`."""
    try:
        message = document["value"][0]["message"]
    except (KeyError, IndexError, TypeError):
        return RemoteResult(None, "", f"unexpected run-command answer: {json.dumps(document)[:300]}")
    match = _MESSAGE.search(message)
    if match is None:
        return RemoteResult(None, "", message)
    stdout = match["stdout"]
    codes = _EXIT.findall(stdout)
    return RemoteResult(int(codes[-1]) if codes else None, _EXIT.sub("", stdout).rstrip("\n"), match["stderr"])
