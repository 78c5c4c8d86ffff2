"""The summary a maintainer pastes into an issue: Markdown, one table row per step (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from infra.acceptance.journey import Outcome, manual_cleanup


@dataclass(frozen=True)
class RunFacts:
    """What the run was, besides its steps: where, on what, from which code."""

    started_utc: str  # 2026-12-06 10:15 UTC
    commit: str  # the checkout's commit, `+dirty` when it has changes
    host: str  # g4dn.2xlarge spot in us-east-1
    simapp: str
    repo_root: str


def render(outcome: Outcome, facts: RunFacts) -> str:
    verdict = "PASSED" if outcome.passed else "FAILED"
    lines = [
        f"### deepracer-cloud acceptance on {outcome.cloud}: {verdict}",
        "",
        f"- stack `{outcome.stack}`, commit `{facts.commit}`, started {facts.started_utc}, "
        f"{outcome.seconds / 60:.0f} min in all",
        f"- {facts.host}, image `{facts.simapp}`",
        "",
        "| step | result | seconds | detail |",
        "|---|---|---:|---|",
    ]
    for result in outcome.results:
        lines.append(f"| {result.step} | {result.result} | {_seconds(result.seconds)} | {_cell(result.detail)} |")
    if outcome.interrupted:
        lines += ["", "Interrupted with Ctrl-C."]
    if outcome.left_behind:
        cleanup = manual_cleanup(outcome.stack, facts.repo_root)
        lines += ["", f"The stack may still hold resources. Clean up by hand: `{cleanup}`"]
    return "\n".join(lines) + "\n"


def _seconds(seconds: Optional[float]) -> str:
    return "" if seconds is None else f"{seconds:.0f}"


def _cell(text: str) -> str:
    # A pipe ends a Markdown table cell; the journey already made the detail one line.
    return text.replace("|", "\\|")
