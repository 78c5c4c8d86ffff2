"""The acceptance test's errors: one root, and what each kind means for the exit code."""

from __future__ import annotations


class AcceptanceError(Exception):
    """Root of the acceptance test's own errors."""


class Refused(AcceptanceError):
    """A prerequisite or an opt-in is missing: nothing was created. One line, exit 2."""


class StepFailed(AcceptanceError):
    """A step ran and its check failed; the message is the summary's detail (one line)."""
