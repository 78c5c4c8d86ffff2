"""The shell text sent to the host, run here under `sh` with stand-ins for `sudo` and `deepracer`, and how the
answers are read: the status digest against session.insight.status's real JSON, Azure's run-command message."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from infra.acceptance import host_commands as commands
from infra.acceptance.errors import StepFailed
from session.engine.containers import ContainerInfo
from session.insight.status import Status, as_json
from session.run.progress import Checkpoint, Iteration, TrainingProgress

NOW = datetime(2026, 12, 6, 10, 30, tzinfo=timezone.utc)


def status_document(iterations: int, last: str | None, running: bool = True) -> dict:
    """What `deepracer status --json --progress` prints, made by session.insight.status itself."""
    progress = TrainingProgress(
        model_prefix="rl-deepracer-0", metrics_prefix="rl-deepracer-0/metrics",
        iterations=tuple(Iteration(number=n, episodes=30, mean_reward=12.5) for n in range(iterations)),
        episodes=30 * iterations,
        checkpoints=tuple(Checkpoint.from_name(f"{n + 1}_Step-{1200 * (n + 1)}.ckpt") for n in range(iterations)),
        last_checkpoint=Checkpoint.from_name(last) if last else None, read_at=NOW)
    trainer = ContainerInfo(id="c0ffee", name="deepracer-1-trainer", image="simapp:6.0.4-gpu", role="trainer", run="1",
                            worker=None, prefix="rl-deepracer-0", status="running" if running else "exited",
                            started_at=NOW)
    status = Status(checked_at=NOW, host_ready=True, system_env="/etc/deepracer/system.env",
                    host_log="/var/log/deepracer-bootstrap.log", run_id=1, model_prefix="rl-deepracer-0",
                    metrics_prefix="rl-deepracer-0/metrics", bucket="deepracer-acc-aws-x", image="simapp:6.0.4-gpu",
                    workers=3, docker_host="unix:///var/run/docker.sock", containers=(trainer,),
                    progress=progress, progress_source="storage")
    return as_json(status)


@pytest.fixture
def host_bin(tmp_path: Path) -> Path:
    """`sudo` that checks it is asked for the host's user in a login shell, then runs the rest; `deepracer` that
    prints $FAKE_OUTPUT and exits with $FAKE_EXIT."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sudo").write_text('#!/bin/sh\n[ "$1 $2 $3" = "-i -u ubuntu" ] || { echo "sudo: $*" >&2; exit 97; }\n'
                                  'shift 3\nexec "$@"\n')
    (bin_dir / "deepracer").write_text('#!/bin/sh\necho "$*" >> "$FAKE_ARGS"\ncat "$FAKE_OUTPUT"\nexit "$FAKE_EXIT"\n')
    for name in ("sudo", "deepracer"):
        (bin_dir / name).chmod(0o755)
    return bin_dir


def on_host(script: str, host_bin: Path, output: str, exit_code: int = 0) -> subprocess.CompletedProcess:
    out = host_bin.parent / "output"
    out.write_text(output)
    env = {**os.environ, "PATH": f"{host_bin}:{os.environ['PATH']}", "FAKE_OUTPUT": str(out),
           "FAKE_EXIT": str(exit_code), "FAKE_ARGS": str(host_bin.parent / "args")}
    # The channels run scripts with /bin/sh (dash on Ubuntu); so does this.
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, timeout=60)


def test_the_status_script_digests_the_real_status_json(host_bin):
    done = on_host(commands.status("ubuntu"), host_bin, json.dumps(status_document(3, "3_Step-3600.ckpt")))

    assert done.returncode == 0, done.stderr
    assert (host_bin.parent / "args").read_text() == "status --json --progress\n"
    digest = commands.parse_status(done.stdout)
    assert digest == commands.StatusDigest(running=True, model_prefix="rl-deepracer-0", iterations=3, episodes=90,
                                           checkpoints=3, last_checkpoint="3_Step-3600.ckpt", progress_error=None)
    assert digest.trained
    assert len(done.stdout) < 400  # Azure's run command returns 4 KiB at most


def test_a_status_without_iterations_is_not_trained(host_bin):
    done = on_host(commands.status("ubuntu"), host_bin, json.dumps(status_document(0, None, running=False)))
    digest = commands.parse_status(done.stdout)
    assert (digest.iterations, digest.last_checkpoint, digest.running, digest.trained) == (0, None, False, False)


def test_an_iteration_without_a_checkpoint_to_evaluate_is_not_trained_yet(host_bin):
    done = on_host(commands.status("ubuntu"), host_bin, json.dumps(status_document(1, None)))
    digest = commands.parse_status(done.stdout)
    assert (digest.iterations, digest.checkpoints, digest.last_checkpoint, digest.trained) == (1, 1, None, False)


def test_a_failing_status_keeps_its_exit_code(host_bin):
    done = on_host(commands.status("ubuntu"), host_bin, "deepracer: /etc/deepracer/system.env not found\n", 2)
    assert done.returncode == 2
    with pytest.raises(StepFailed, match="no digest in the host's answer"):
        commands.parse_status(done.stdout)


@pytest.mark.parametrize("script, args", [
    (commands.doctor("ubuntu"), "doctor"),
    (commands.validate("ubuntu"), "validate"),
    (commands.train("ubuntu"), "train --max-minutes 15"),
    (commands.evaluate("ubuntu"), "evaluate --clone --checkpoint last --trials 1"),
    (commands.stop("ubuntu"), "stop"),
])
def test_each_command_reaches_deepracer_as_the_user_with_its_arguments(host_bin, script, args):
    done = on_host(script, host_bin, "done\n", 3)
    assert done.returncode == 3 and done.stdout == "done\n"
    assert (host_bin.parent / "args").read_text() == args + "\n"


def test_the_car_package_is_listed_only_when_it_was_written(host_bin):
    script = commands.car_package("ubuntu", "rl-deepracer-0")
    assert script == ("sudo -i -u ubuntu deepracer models car-package rl-deepracer-0 --checkpoint last --out "
                      "/tmp/deepracer-acceptance-car.tar.gz && tar -tzf /tmp/deepracer-acceptance-car.tar.gz")
    done = on_host(script, host_bin, "deepracer: no checkpoint\n", 2)
    assert done.returncode == 2 and "tar" not in done.stderr


def test_a_user_name_is_quoted():
    assert commands.as_user("odd user", "deepracer", "models", "car-package", "my model") == \
        "sudo -i -u 'odd user' deepracer models car-package 'my model'"


def test_the_car_package_listing_is_checked():
    assert commands.check_car_package("./model_metadata.json\n./agent/model.pb\n") == \
        "/tmp/deepracer-acceptance-car.tar.gz: model_metadata.json, agent/model.pb"
    with pytest.raises(StepFailed, match="lacks model_metadata.json, agent/model.pb"):
        commands.check_car_package("")


# --- Azure's run command ------------------------------------------------------------------------------------------


def test_the_az_command_line():
    assert commands.az_run_command("deepracer-host1a2b", "host1a2b", "sudo -i -u azureuser deepracer stop") == [
        "az", "vm", "run-command", "invoke", "--resource-group", "deepracer-host1a2b", "--name", "host1a2b",
        "--command-id", "RunShellScript", "--scripts",
        'sudo -i -u azureuser deepracer stop\necho "deepracer-acceptance-exit=$?"', "--output", "json"]


def run_command_answer(stdout: str, stderr: str) -> dict:
    """`az vm run-command invoke -o json` as Azure answers RunShellScript (run command v1)."""
    return {"value": [{"code": "ProvisioningState/succeeded", "displayStatus": "Provisioning succeeded",
                       "level": "Info", "message": f"Enable succeeded: \n[stdout]\n{stdout}\n[stderr]\n{stderr}",
                       "time": None}]}


@pytest.mark.parametrize("script, code", [("true", 0), ("false", 1), ("echo out; echo err >&2; sh -c 'exit 7'", 7),
                                          ("true && sh -c 'exit 3'", 3)])
def test_the_exit_marker_carries_the_exit_code_through_the_run_command(script, code):
    done = subprocess.run(["sh", "-c", commands.with_exit_marker(script)], capture_output=True, text=True)
    result = commands.parse_run_command(run_command_answer(done.stdout, done.stderr))
    assert result.exit_code == code
    assert commands.EXIT_MARKER not in result.stdout


def test_a_run_command_answer_is_read_apart():
    result = commands.parse_run_command(run_command_answer("line 1\nline 2\ndeepracer-acceptance-exit=2\n",
                                                           "deepracer: bad run.env\n"))
    assert result == commands.RemoteResult(2, "line 1\nline 2", "deepracer: bad run.env\n")


def test_a_run_command_answer_without_the_marker_has_no_exit_code():
    # Cut off: the VM agent keeps the last 4 KiB, and a killed script never prints the marker.
    result = commands.parse_run_command(run_command_answer("...the middle of a line\n", ""))
    assert result.exit_code is None and result.stdout == "...the middle of a line"


def test_an_unexpected_run_command_answer_is_kept_as_the_error():
    result = commands.parse_run_command({"error": {"code": "Conflict"}})
    assert result.exit_code is None and "Conflict" in result.stderr
