"""The bootstrap's Docker step as your own machine (infra/local_prepare.py) meets it, rehearsed against recorded
commands (tests/cloudinit/host_commands.py: docker, nvidia-ctk, systemctl, apt, usermod keep their state in a
file): Docker absent, present with its own daemon.json, or already on the nvidia runtime. What the step must do:
install Docker only where there is none, make nvidia the default runtime keeping everything else daemon.json says
(as nvidia-ctk does), restart Docker only when it changed something, and put the user in the docker group."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Optional

from tests.cloudinit import host_commands
from tests.cloudinit.test_gpu_driver import BOOTSTRAP, _functions

USERS_OWN = {"log-driver": "local", "data-root": "/srv/docker"}


def docker_step(tmp_path: Path, docker: Optional[dict]) -> tuple[int, str, dict]:
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    host_commands.install(fakes)
    if docker is not None:
        host_commands.install_docker(fakes)
    state = tmp_path / "host.json"
    state.write_text(json.dumps({"calls": [], "bin": str(fakes), "archive": {"docker.io": []}, "installed": [],
                                 **({"docker": docker} if docker is not None else {})}))
    script = "\n".join(["set -Eeuo pipefail", "HOST_USER=alice", _functions(BOOTSTRAP), "step_docker",
                        "echo STEP-DONE"])
    # Only the stand-ins and `date` on PATH: this machine's own docker must not answer for the rehearsed one.
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "date").symlink_to(shutil.which("date") or "/bin/date")
    env = {"PATH": f"{fakes}:{tools}", "HOST_STATE": str(state), "LANG": "C.UTF-8"}
    result = subprocess.run([shutil.which("bash") or "/bin/bash", "-c", script], capture_output=True, text=True,
                            env=env, timeout=60)
    return result.returncode, result.stdout + result.stderr, json.loads(state.read_text())


def calls(state: dict, command: str) -> list[list[str]]:
    return [call[1:] for call in state["calls"] if call[0] == command]


def test_docker_with_its_own_daemon_json_gets_nvidia_as_default_and_keeps_the_rest(tmp_path):
    code, output, state = docker_step(tmp_path, {"daemon_json": json.dumps(USERS_OWN), "default_runtime": "runc"})
    assert code == 0 and "STEP-DONE" in output, output
    config = json.loads(state["docker"]["daemon_json"])
    assert config["default-runtime"] == "nvidia" and config["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert {k: config[k] for k in USERS_OWN} == USERS_OWN  # the user's settings stay
    assert state["docker"]["default_runtime"] == "nvidia"
    assert ["restart", "docker"] in calls(state, "systemctl")
    assert calls(state, "apt-get") == [] and calls(state, "usermod") == [["-aG", "docker", "alice"]]


def test_a_machine_without_docker_gets_ubuntus_docker_io(tmp_path):
    code, output, state = docker_step(tmp_path, None)
    assert code == 0 and "STEP-DONE" in output, output
    assert any("docker.io" in call for call in calls(state, "apt-get"))
    assert state["docker"]["default_runtime"] == "nvidia"


def test_docker_already_on_the_nvidia_runtime_is_left_as_it_is(tmp_path):
    daemon = json.dumps({"default-runtime": "nvidia", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}})
    code, output, state = docker_step(tmp_path, {"daemon_json": daemon, "default_runtime": "nvidia"})
    assert code == 0 and "STEP-DONE" in output, output
    assert state["docker"]["daemon_json"] == daemon  # not rewritten
    assert calls(state, "nvidia-ctk") == [] and ["restart", "docker"] not in calls(state, "systemctl")
