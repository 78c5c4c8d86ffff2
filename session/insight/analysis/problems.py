"""What the loader could not read: every malformed or truncated line counted, the first ones kept with file,
line and reason, so a report can say "3 lines skipped" and show where without a log of a million lines."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from session.core.problems import Problem

KEEP = 100  # problems kept with their place; the rest are only counted


@dataclass
class LoadProblems:
    """Lines (or files) skipped while loading. `count` counts all of them; `examples` keeps the first `KEEP`
    as session.core.problems.Problem warnings (`file`, `where` = "line <n>", `message`); `reasons` counts by message
    with the values left out ("8 fields, expected 15 to 19")."""

    count: int = 0
    examples: list[Problem] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, file: str, line: int, reason: str, detail: str = "") -> None:
        """One skipped line (`line` 0: the whole file). `reason` is the kind, `detail` the offending value."""
        with self._lock:
            self.count += 1
            self.reasons[reason] += 1
            if len(self.examples) < KEEP:
                message = f"{reason}: {detail}" if detail else reason
                self.examples.append(Problem(file, f"line {line}" if line else "", message, "warning"))

    def extend(self, other: "LoadProblems") -> None:
        with self._lock:
            self.count += other.count
            self.reasons.update(other.reasons)
            self.examples.extend(other.examples[:max(0, KEEP - len(self.examples))])

    def __bool__(self) -> bool:
        return self.count > 0

    def __len__(self) -> int:
        return self.count

    def summary(self) -> str:
        """One line for people: `3 lines skipped (2 x 8 fields, expected 15 to 19; 1 x not a number)`."""
        if not self.count:
            return "no lines skipped"
        kinds = "; ".join(f"{n} x {reason}" for reason, n in self.reasons.most_common())
        return f"{self.count} line{'s' if self.count != 1 else ''} skipped ({kinds})"

    def as_json(self) -> dict:
        return {"count": self.count, "reasons": dict(self.reasons),
                "examples": [{"file": p.file, "where": p.where, "message": p.message} for p in self.examples]}
