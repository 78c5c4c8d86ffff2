"""`deepracer swarm-init` and `deepracer swarm-rotate` at the command line: the channel comes from system.env, and a
mistake there is one line and exit 2 before anything is changed. (Both against a real swarm:
tests/session/host/test_swarm_init.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from session.cli.main import main


def _system_env(tmp_path: Path, text: str) -> str:
    path = tmp_path / "system.env"
    path.write_text("DR_SIMAPP_VERSION=6.0.4-gpu\n" + text)
    return str(path)


@pytest.fixture(autouse=True)
def no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """No dockerd here: a command that reached the engine would fail on this socket, not pass."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")


def test_swarm_init_with_nodes_but_no_place_for_the_token_is_one_line_naming_the_key(tmp_path: Path, capsys):
    system_env = _system_env(tmp_path, "DR_CLOUD=azure\nDR_SIM_NODES=2\nDR_SIM_NODE_WORKERS=4\n")

    code = main(["--system-env", system_env, "swarm-init", "--advertise-addr", "10.42.1.4"])

    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "DR_SWARM_TOKEN_SECRET_URL" in err and "system.env" in err


def test_swarm_rotate_without_nodes_has_nothing_to_do(tmp_path: Path, capsys):
    code = main(["--system-env", _system_env(tmp_path, "DR_CLOUD=aws\n"), "swarm-rotate"])

    assert code == 0 and "nothing to rotate" in capsys.readouterr().out


def test_swarm_rotate_with_a_bad_node_count_is_one_line_naming_the_key(tmp_path: Path, capsys):
    code = main(["--system-env", _system_env(tmp_path, "DR_CLOUD=aws\nDR_SIM_NODES=two\n"), "swarm-rotate"])

    err = capsys.readouterr().err
    assert code == 2 and "DR_SIM_NODES" in err and "Traceback" not in err
