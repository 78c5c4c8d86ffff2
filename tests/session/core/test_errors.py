"""One error root: every error a user can act on derives from DeepracerError, which the CLI maps once."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import session
from session.cli import commands
from session.cli import main as cli
from session.core.errors import EXIT_USER_ERROR, DeepracerError
from session.storage.s3 import StorageError


def _session_modules():
    for info in pkgutil.walk_packages(session.__path__, prefix="session."):
        if not info.name.endswith(".__main__"):  # `python -m session` runs the CLI when imported
            yield importlib.import_module(info.name)


def test_every_error_class_of_the_session_tool_derives_from_the_root():
    # A class outside the tree would reach the user as a traceback (as `validate --workers -3` once did).
    # Private ones (`_Name`) never leave their module: they are caught where they are raised.
    outside = [f"{module.__name__}.{name}" for module in _session_modules()
               for name, value in vars(module).items()
               if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__
               and not name.startswith("_") and not issubclass(value, DeepracerError)]
    assert outside == []


def test_a_user_error_is_one_line_per_mistake_and_exit_2(monkeypatch, capsys):
    def host(args):
        raise StorageError("s3://models: AccessDenied on ListBucket\n  ")

    monkeypatch.setattr(commands, "host", host)
    assert cli.main(["host"]) == EXIT_USER_ERROR == 2
    assert capsys.readouterr().err == "deepracer: s3://models: AccessDenied on ListBucket\n"


def test_a_new_error_class_needs_no_registration(monkeypatch, capsys):
    class NewAreaError(DeepracerError):  # an area added later: the CLI maps the root, not a list of names
        pass

    def host(args):
        raise NewAreaError("one line")

    monkeypatch.setattr(commands, "host", host)
    assert cli.main(["host"]) == 2
    assert capsys.readouterr().err == "deepracer: one line\n"


def test_a_bug_keeps_its_traceback(monkeypatch):
    def host(args):
        raise KeyError("a bug")

    monkeypatch.setattr(commands, "host", host)
    with pytest.raises(KeyError):
        cli.main(["host"])


def test_debug_shows_the_traceback_of_a_user_error_too(monkeypatch):
    def host(args):
        raise DeepracerError("one line")

    monkeypatch.setattr(commands, "host", host)
    with pytest.raises(DeepracerError):
        cli.main(["host", "--debug"])
