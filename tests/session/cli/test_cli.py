"""The session tool's entry points and its `host` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from session.cli.main import _parser, main


def test_python_dash_m_session_prints_help():
    result = subprocess.run([sys.executable, "-m", "session", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "usage: deepracer" in result.stdout
    assert "host" in result.stdout


def test_host_reports_ready_and_system_env(tmp_path, capsys):
    env = tmp_path / "system.env"
    env.write_text("# written by cloud-init\nDR_CLOUD=aws\nDR_LOCAL_S3_BUCKET=deepracer-aws-abc\n\nDR_WORKERS=3\n")
    marker = tmp_path / "ready"
    marker.touch()
    import session.host.first_boot as host

    state = host.host_state(env, marker)
    assert state.ready is True
    assert state.system_env == {"DR_CLOUD": "aws", "DR_LOCAL_S3_BUCKET": "deepracer-aws-abc", "DR_WORKERS": "3"}
    assert host.print_host_state(as_json=True, state=state) == 0
    assert json.loads(capsys.readouterr().out)["system_env"]["DR_WORKERS"] == "3"


def test_host_not_ready_exits_1(tmp_path):
    env = dict(os.environ, DR_SYSTEM_ENV=str(tmp_path / "none.env"), DR_READY_MARKER=str(tmp_path / "ready"))
    result = subprocess.run([sys.executable, "-m", "session", "host"], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert "host: NOT ready" in result.stdout
    assert "none.env not found" in result.stdout


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_host_reads_the_system_env_that_system_env_names_before_or_after_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DR_SYSTEM_ENV", str(tmp_path / "the-default.env"))  # what must not be read
    monkeypatch.setenv("DR_READY_MARKER", str(tmp_path / "ready"))
    chosen = tmp_path / "chosen.env"
    chosen.write_text("DR_CLOUD=azure\nDR_WORKERS=2\n")
    for argv in (["--system-env", str(chosen), "host", "--json"], ["host", "--json", "--system-env", str(chosen)]):
        assert main(argv) == 1  # no ready marker
        state = json.loads(capsys.readouterr().out)
        assert state["system_env_path"] == str(chosen), argv
        assert state["system_env"] == {"DR_CLOUD": "azure", "DR_WORKERS": "2"}, argv


def test_the_ready_marker_variable_is_read_when_asked_not_at_import(tmp_path, monkeypatch):
    import session.host.first_boot as host

    marker = tmp_path / "ready"
    marker.touch()
    monkeypatch.setenv("DR_READY_MARKER", str(marker))
    assert host.host_state(tmp_path / "none.env").ready is True
    monkeypatch.setenv("DR_READY_MARKER", str(tmp_path / "not-yet"))
    assert host.host_state(tmp_path / "none.env").ready is False


# Every global option, on a command, a command with options, a nested command and one with a positional.
COMMANDS = (["host"], ["status", "--json"], ["models", "list"], ["report", "some-prefix"], ["idle-check"])
GLOBALS = ((["--run-env", "/x/run.env"], "run_env", "/x/run.env"),
           (["--system-env", "/x/system.env"], "system_env", "/x/system.env"),
           (["--debug"], "debug", True))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c))
@pytest.mark.parametrize("option, name, value", GLOBALS, ids=lambda o: o[0] if isinstance(o, list) else "")
def test_a_global_option_works_before_and_after_the_command(command, option, name, value):
    parser = _parser()
    before = vars(parser.parse_args([*option, *command]))
    after = vars(parser.parse_args([*command, *option]))
    plain = vars(parser.parse_args(command))
    assert before[name] == after[name] == value
    assert plain[name] in (None, False)  # the subcommand's absent option does not clobber the main parser's
    assert {k: v for k, v in before.items() if k != name} == {k: v for k, v in plain.items() if k != name}
    assert before == after


def test_a_nested_command_takes_the_global_options_between_its_words():
    args = _parser().parse_args(["models", "--run-env", "/x/run.env", "list", "--debug"])
    assert (args.run_env, args.debug, args.models_command) == ("/x/run.env", True, "list")


def test_run_env_after_the_command_is_the_file_the_command_uses(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DR_RUN_ENV", str(tmp_path / "default" / "run.env"))
    wanted = tmp_path / "mine" / "run.env"
    assert main(["init", "--run-env", str(wanted)]) == 0
    assert f"wrote {wanted}" in capsys.readouterr().out
    assert wanted.is_file() and not (tmp_path / "default").exists()


def test_debug_after_the_command_shows_the_traceback_of_a_user_error(tmp_path, capsys):
    from session.insight.report import ReportError

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    assert capsys.readouterr().err.startswith("deepracer: ")
    with pytest.raises(ReportError):
        main(["report", str(empty), "--debug"])


@pytest.mark.parametrize("option", ["--run-env", "--system-env"])
def test_resume_refuses_settings_files_it_would_not_read(option, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DR_RUN_STATE", str(tmp_path / "state.json"))  # nothing to resume: would exit 0
    for argv in ([option, str(tmp_path / "x.env"), "resume"], ["resume", option, str(tmp_path / "x.env")]):
        assert main(argv) == 2
        assert capsys.readouterr().err == (
            "deepracer: resume continues the interrupted run with the run.env and system.env it was started with; "
            "--run-env and --system-env do not apply (`deepracer train` starts another run)\n")
