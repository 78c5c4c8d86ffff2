"""One root for the errors a user can act on, and the exit codes the CLI turns them into.

Every error class of the session tool derives from `DeepracerError`; `str()` of one is a line a user can act on
(or one line per mistake, when several were found at once). The CLI maps the root once (session/cli/main.py): it
prints the lines and exits with EXIT_USER_ERROR. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # a run or a check that did not succeed (validate found problems, doctor a failed check ...)
EXIT_USER_ERROR = 2  # a mistake of the user's: a file, a setting, an argument, a state that forbids the command


class DeepracerError(Exception):
    """The root of the session tool's errors: something the user can act on, said in one line each."""
