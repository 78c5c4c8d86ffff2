"""The console every layer says its lines through, and the CLI's --quiet and --json that choose it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from session.cli.main import main
from session.core import console
from session.core.console import Console
from session.core.text import human_size, iso

AWS_SYSTEM_ENV = "DR_CLOUD=aws\nDR_AWS_APP_REGION=us-east-1\nDR_LOCAL_S3_BUCKET=bucket-1\nDR_SIMAPP_VERSION=6.0.4-gpu\n"
NOTHING_TO_SYNC = "DR_CLOUD=aws: the models are in the working bucket already; nothing to sync\n"


@pytest.fixture(autouse=True)
def default_console():
    previous = console.use(Console())
    yield
    console.use(previous)


def test_say_goes_to_stdout_warn_to_stderr(capsys):
    console.say("progress")
    console.warn("careful")
    assert capsys.readouterr() == ("progress\n", "careful\n")


def test_quiet_drops_progress_but_never_a_warning_or_the_json(capsys):
    console.use(Console(quiet=True))
    console.say("progress")
    console.warn("careful")
    console.emit_json({"a": 1})
    out, err = capsys.readouterr()
    assert (json.loads(out), err) == ({"a": 1}, "careful\n")


def test_under_json_progress_moves_to_stderr_so_stdout_holds_the_document_alone(capsys):
    console.use(Console(as_json=True))
    console.say("progress")
    console.emit_json([1, 2])
    out, err = capsys.readouterr()
    assert (json.loads(out), err) == ([1, 2], "progress\n")


def test_a_domain_functions_default_say_follows_the_console_the_cli_chose(tmp_path, capsys):
    # sync-models --running says through storage.mirror_sync's default `say`, several layers below the CLI.
    (tmp_path / "system.env").write_text(AWS_SYSTEM_ENV)
    assert main(["--system-env", str(tmp_path / "system.env"), "sync-models", "--running"]) == 0
    assert capsys.readouterr() == (NOTHING_TO_SYNC, "")
    assert main(["sync-models", "--running", "--quiet", "--system-env", str(tmp_path / "system.env")]) == 0
    assert capsys.readouterr() == ("", "")
    assert console.current().quiet is False  # the command's console ends with the command


def test_a_users_mistake_reaches_stderr_even_when_quiet(tmp_path, capsys):
    (tmp_path / "system.env").write_text(AWS_SYSTEM_ENV.replace("bucket-1", "b"))
    assert main(["-q", "--system-env", str(tmp_path / "system.env"), "sync-models", "--running"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"deepracer: {tmp_path / 'system.env'}:3: DR_LOCAL_S3_BUCKET: expected")


def test_times_and_sizes_print_one_way():
    moment = datetime(2026, 12, 6, 13, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    assert iso(moment) == "2026-12-06T12:00:05Z" and iso(None) is None
    assert [human_size(n) for n in (0, 1023, 1536, 5 * 2**20, 3 * 2**30)] == [
        "0 B", "1023 B", "1.5 KiB", "5.0 MiB", "3.0 GiB"]
