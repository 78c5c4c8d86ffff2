"""What a report is, apart from how it is built or drawn: the Report with its track and the trainer's metrics, the
phase names, the per-iteration rows the terminal table and the page share, and the ReportError of all its modules.

session.insight.report builds a Report and writes it; session.insight.report_plots and session.insight.report_html
draw one. Both read only this module, so the dependencies point one way: report -> plots, html -> model.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from session.core.errors import DeepracerError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from session.checks.tracks import Track
    from session.insight.analysis import Trace
    from session.run.progress import Iteration

TOP_LAPS = 1  # fastest laps drawn on the track
GENERATOR = "deepracer-cloud report"  # in every index.html we write: a folder holding one is ours to rewrite
TRAINING, EVALUATION = "training", "evaluation"
# `archive.tar.gz:` before a member's name; file names keep their own colons (DRoA's start times: 08:23:21.847Z).
_ARCHIVE_MEMBER = re.compile(r"^.*?\.(?:tar\.gz|tgz|tar\.bz2|tar\.xz|tar):", re.IGNORECASE)


class ReportError(DeepracerError):
    """A report that cannot be made: no trace data in the sources, an unknown --track, an --out folder that
    holds someone else's files."""


@dataclass(frozen=True)
class TrackChoice:
    """The track the run drove: `name` as the run (or --track) named it, `origin` where that came from, `track`
    the route file drawn (None: the path is drawn without borders), `note` one line on anything less than sure."""

    name: Optional[str] = None
    origin: str = ""
    track: Optional["Track"] = None
    note: str = ""

    def describe(self) -> str:
        """Where the name came from, for people: `--track`, `guessed ...`, `from <file name>`."""
        if not self.origin or self.origin == "--track" or self.origin.startswith("guessed"):
            return self.origin
        return "from " + _ARCHIVE_MEMBER.sub("", self.origin).rsplit("/", 1)[-1]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "origin": self.origin or None, "drawn": self.track.name if self.track else None,
                "note": self.note or None}


@dataclass(frozen=True)
class MetricsRun:
    """One run's training metrics JSON: `entries` by 1-based worker, grouped into the trainer's iterations
    (session.run.progress), which carry its evaluation of every checkpoint."""

    source: str
    files: tuple[str, ...]
    entries: dict[int, list[dict[str, Any]]]
    iterations: tuple["Iteration", ...]
    best_model_metric: Optional[str] = None


@dataclass
class Report:
    """Everything a report shows. `table`: one row per episode (session.insight.analysis.episodes), `phase`: the phase
    the headline numbers are about, `numbers`: summary() of its episodes (or of the metrics JSON)."""

    title: str
    sources: list[str]
    trace: "Trace"
    table: "pd.DataFrame"
    phase: str
    numbers: dict[str, Any]
    numbers_from: str  # "trace" or "metrics"
    metrics: Optional[MetricsRun] = None
    track: TrackChoice = field(default_factory=TrackChoice)
    notes: list[str] = field(default_factory=list)
    views: Any = None  # session.insight.report_views.Views (exits, along the track, step timing); build() sets it
    rescore: Any = None  # session.insight.rescore.Rescore, with --reward
    actions: Optional[list[dict[str, Any]]] = None  # the discrete action space of model_metadata.json, if found

    @property
    def steps(self) -> "pd.DataFrame":
        return self.trace.steps

    @property
    def episodes(self) -> "pd.DataFrame":
        """The headline phase's episodes."""
        return self.table[self.table["phase"] == self.phase] if len(self.table) else self.table

    def best_laps(self, n: int = TOP_LAPS) -> "pd.DataFrame":
        """The n fastest completed laps of the headline phase (ties: the earlier episode), fastest first; when
        none completed, the episode that got furthest."""
        table = self.episodes
        if not len(table):
            return table
        laps = table[table["complete"]].sort_values(["lap_time", "unique_episode"], kind="stable")
        if len(laps):
            return laps.head(max(1, n))
        return table.sort_values(["progress", "unique_episode"], ascending=[False, True], kind="stable").head(1)


def iteration_rows(report: Report) -> list[dict[str, Any]]:
    """Per iteration: summary()'s numbers plus the trainer's evaluation of that checkpoint (None when unknown)."""
    trainer = {it.number: it for it in report.metrics.iterations} if report.metrics else {}
    rows = []
    for row in report.numbers["iterations"]:
        it = trainer.get(row["iteration"]) if report.phase == TRAINING else None
        rows.append({**row, "trainer_eval_progress": rounded(it.eval_completion) if it else None,
                     "trainer_eval_laps": it.eval_laps if it and it.eval_episodes else None})
    return rows


def rounded(value: Optional[float]) -> Optional[float]:
    """A number as the report gives it: six decimals (stable JSON and text), None when absent or not finite."""
    return None if value is None or not math.isfinite(value) else round(float(value), 6)
