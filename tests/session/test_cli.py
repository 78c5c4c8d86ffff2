"""The session tool's entry points and its `host` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from session.cli import main


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
    import session.host as host

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
