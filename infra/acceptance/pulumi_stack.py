"""The real `Stack` seam: a fresh stack of this checkout's program, through Pulumi's Automation API.

The stack lives in whatever backend `pulumi login` chose (a local one needs PULUMI_CONFIG_PASSPHRASE, as README's
set-up says); the Automation API drives the Pulumi CLI on PATH and writes the stack's config to
`Pulumi.<stack>.yaml` beside the user's own stack files, which `remove` deletes again.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

from infra.acceptance.errors import Refused, StepFailed

PASSPHRASE_VARS = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")


def preflight(work_dir: Path, env: Mapping[str, str]) -> None:
    """A backend to keep the stack in, and for a local one the passphrase of its secrets: without them the stack
    could not be created, or worse, created and then not destroyed."""
    from pulumi import automation as auto

    try:
        who = auto.LocalWorkspace(work_dir=str(work_dir)).who_am_i()
    except auto.CommandError:
        raise Refused("the Pulumi CLI is not logged in: run `pulumi login --local` (or `pulumi login`)") from None
    if (who.url or "").startswith("file://") and not any(name in env for name in PASSPHRASE_VARS):
        raise Refused(f"the local Pulumi backend ({who.url}) needs PULUMI_CONFIG_PASSPHRASE (or "
                      "PULUMI_CONFIG_PASSPHRASE_FILE) for the stack's secrets: export it as for `pulumi up`")


# Lines of Pulumi's failure output that say only that something failed.
_SAYS_NOTHING = re.compile(r"(update failed|destroy failed|\d+ errors? occurred:?|an error occurred)", re.IGNORECASE)


def pulumi_failure(text: str) -> str:
    """The first line that says why, out of a CommandError's code, stdout and stderr (a resource's diagnostic or
    the program's one-line RunError), and how many more there are."""
    reasons: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("* "):
            line = line[2:]
        elif "error:" in line.lower():
            line = line[line.lower().index("error:") + len("error:"):].strip()
        else:
            continue
        if line and not _SAYS_NOTHING.fullmatch(line) and line not in reasons:
            reasons.append(line)
    if not reasons:
        # str(CommandResult) labels its parts: " stdout: ..." and " stderr: ...".
        lines = [re.sub(r"^(stdout|stderr):\s*", "", line.strip()) for line in text.splitlines()]
        lines = [line for line in lines if line]
        return lines[-1] if lines else "failed without output"
    return reasons[0] + (f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else "")


class PulumiStack:
    def __init__(self, name: str, work_dir: Path, config: Mapping[str, str], say: Callable[[str], None]) -> None:
        self.name = name
        self._work_dir = work_dir
        self._config = dict(config)
        self._say = say
        self._stack: Any = None

    def create(self) -> None:
        # Imported here: pulumi.automation costs a second or two, and only this seam needs it.
        from pulumi import automation as auto

        with _failing_as("pulumi stack init"):
            self._stack = auto.create_stack(self.name, work_dir=str(self._work_dir))
        with _failing_as("pulumi config set-all"):
            self._stack.set_all_config({key: auto.ConfigValue(value) for key, value in self._config.items()},
                                       path=True)

    def up(self) -> Mapping[str, Any]:
        # show_secrets=False: the Azure stack's MinIO keys are secrets, and this output goes to a terminal or a log.
        with _failing_as("pulumi up"):
            result = self._live().up(on_output=self._output, show_secrets=False)
        return {name: output.value for name, output in result.outputs.items()}

    def destroy(self) -> None:
        with _failing_as("pulumi destroy"):
            self._live().destroy(on_output=self._output, show_secrets=False)

    def remove(self) -> None:
        with _failing_as("pulumi stack rm"):
            self._live().workspace.remove_stack(self.name)

    def _live(self) -> Any:
        if self._stack is None:  # a journey that failed before create() never calls these
            raise RuntimeError(f"stack {self.name} was not created")
        return self._stack

    def _output(self, line: Optional[str]) -> None:
        if line:
            self._say(line.rstrip("\n"))


@contextlib.contextmanager
def _failing_as(command: str) -> Iterator[None]:
    """A CommandError (its text is the whole output of the CLI) as one line for the summary."""
    from pulumi.automation import CommandError

    try:
        yield
    except CommandError as error:
        raise StepFailed(f"{command}: {pulumi_failure(str(error))}") from None
