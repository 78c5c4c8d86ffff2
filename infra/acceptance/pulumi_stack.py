"""The real `Stack` seam: a fresh stack of this checkout's program, through Pulumi's Automation API.

The stack lives in whatever backend `pulumi login` chose (a local one needs PULUMI_CONFIG_PASSPHRASE, as README's
set-up says); the Automation API drives the Pulumi CLI on PATH and writes the stack's config to
`Pulumi.<stack>.yaml` beside the user's own stack files, which `remove` deletes again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from infra.acceptance.errors import Refused

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

        self._stack = auto.create_stack(self.name, work_dir=str(self._work_dir))
        self._stack.set_all_config({key: auto.ConfigValue(value) for key, value in self._config.items()},
                                   path=True)

    def up(self) -> Mapping[str, Any]:
        # show_secrets=False: the Azure stack's MinIO keys are secrets, and this output goes to a terminal or a log.
        result = self._live().up(on_output=self._output, show_secrets=False)
        return {name: output.value for name, output in result.outputs.items()}

    def destroy(self) -> None:
        self._live().destroy(on_output=self._output, show_secrets=False)

    def remove(self) -> None:
        self._live().workspace.remove_stack(self.name)

    def _live(self) -> Any:
        if self._stack is None:  # a journey that failed before create() never calls these
            raise RuntimeError(f"stack {self.name} was not created")
        return self._stack

    def _output(self, line: Optional[str]) -> None:
        if line:
            self._say(line.rstrip("\n"))
