"""Where the tool's output goes: one console per command, chosen by the CLI, used by every layer.

Domain functions take a `say` callable (one line at a time) and default to this module's `say`, which writes to
the console the CLI chose for the command; a caller that wants the lines (a test, the journal) passes its own.

- `say(line)`: progress and results. stdout, flushed (the journal sees each line as it comes); nowhere under
  `--quiet`; on stderr under `--json`, so that stdout holds the JSON document alone.
- `warn(line)`: warnings and the reasons something was refused. stderr, always.
- `emit_json(value)`: the one JSON document of a `--json` command. stdout.
"""

from __future__ import annotations

import sys
from typing import Callable

Say = Callable[[str], None]


class Console:
    """A plain class, not a dataclass: every command imports this module, `--help` included."""

    def __init__(self, *, quiet: bool = False, as_json: bool = False) -> None:
        self.quiet, self.as_json = quiet, as_json

    def say(self, line: str) -> None:
        if self.quiet:
            return
        print(line, file=sys.stderr if self.as_json else sys.stdout, flush=True)

    def warn(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def emit_json(self, value: object) -> None:
        import json  # start-up: `--help` and most commands print no JSON

        print(json.dumps(value, indent=2, default=str), flush=True)


_current = Console()


def use(console: Console) -> Console:
    """Makes `console` the one `say`, `warn` and `emit_json` write to; returns the one it replaces."""
    global _current
    previous, _current = _current, console
    return previous


def current() -> Console:
    return _current


def say(line: str) -> None:
    _current.say(line)


def warn(line: str) -> None:
    _current.warn(line)


def emit_json(value: object) -> None:
    _current.emit_json(value)
