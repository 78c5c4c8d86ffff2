"""One finding of a check: which file, where in it, what is wrong, and whether it blocks training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """A user-facing finding. `str()` is the one line a user reads, e.g.
    `model_metadata.json: action_space[2].speed: expected a number between 0.1 and 4.0, got 7`.

    `where` is a key path (`action_space[2].speed`), a position (`line 3`) or empty for the whole file.
    An error means training would fail or silently do something else; a warning is worth a look.
    """

    file: str
    where: str
    message: str
    severity: Severity = "error"

    def __post_init__(self) -> None:
        if self.severity not in ("error", "warning"):
            raise ValueError(f"severity must be 'error' or 'warning', not {self.severity!r}")

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        location = f"{self.file}: {self.where}: " if self.where else f"{self.file}: "
        label = "warning: " if self.severity == "warning" else ""
        return " ".join(f"{location}{label}{self.message}".split())


def errors(problems: Iterable[Problem]) -> List[Problem]:
    """The problems that block training."""
    return [problem for problem in problems if problem.is_error]


def warnings(problems: Iterable[Problem]) -> List[Problem]:
    """The problems worth a look that do not block training."""
    return [problem for problem in problems if not problem.is_error]
