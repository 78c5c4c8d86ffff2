"""The first boot's last step, `doctor`: a failure reaches `pulumi up` as one line naming the check and its cause.

`step_doctor` and the error path it fails through (`on_error` -> `report` -> host-storage.py) are cut out of
cloudinit/scripts/bootstrap.sh and run by bash as they are. The doctor is the real `deepracer doctor` against
the tests' own dockerd (which lacks the image the system.env names, so the image check fails); `sudo` and the
`docker` CLI are recording stand-ins on PATH (no users to switch to, no registry to pull from). The status
object goes to moto's S3 over HTTP with the EC2 metadata stand-in of test_host_storage, and is read back by
the deployer's waiter (infra.wait_ready), whose output is what the deployer's terminal shows.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.bootstrap import CLOUDINIT_DIR
from infra.wait_ready import Outcome, S3Store, render_result, wait_for_status
from tests.cloudinit.test_host_storage import INSTANCE_ID, host, imds  # noqa: F401 - fixtures

BOOTSTRAP = CLOUDINIT_DIR / "scripts" / "bootstrap.sh"
IMAGE = "awsdeepracercommunity/deepracer-simapp:6.0.4-gpu"
KEY = f"hosts/{INSTANCE_ID}/bootstrap.json"


def _function(name: str) -> str:
    match = re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", BOOTSTRAP.read_text(), re.M | re.S)
    assert match, f"{name} not found in {BOOTSTRAP}"
    return match.group(0)


def _run_step(host: dict, docker_engine: str, cloud: str = "aws") -> tuple[subprocess.CompletedProcess, Path]:
    """Runs step_doctor as the full first boot would (its ERR trap reports the failure); returns the result and
    the folder of the recording stand-ins."""
    folder: Path = host["dir"]
    state, venv_bin, fakes = folder / "state", folder / "venv" / "bin", folder / "fakes"
    for path in (state, venv_bin, fakes):
        path.mkdir(parents=True, exist_ok=True)
    (venv_bin / "python").symlink_to(sys.executable)
    (venv_bin / "deepracer").write_text(f'#!/bin/sh\nexec {sys.executable} -m session "$@"\n')
    (fakes / "sudo").write_text(f'#!/bin/sh\necho "$*" >>{fakes}/sudo.log\nshift 3\nexec "$@"\n')  # -u USER -H
    (fakes / "docker").write_text(f'#!/bin/sh\necho "$*" >>{fakes}/docker.log\n[ "$1" != image ]\n')
    for name in ("deepracer", "sudo", "docker"):
        path = venv_bin / name if name == "deepracer" else fakes / name
        path.chmod(0o755)
    (folder / "system.env").write_text(f"DR_CLOUD={cloud}\nDR_AWS_APP_REGION=us-east-1\n"
                                       f"DR_LOCAL_S3_BUCKET={host['bucket']}\nDR_SIMAPP_VERSION=6.0.4-gpu\n"
                                       "DR_LOCAL_ACCESS_KEY_ID=minio\nDR_LOCAL_SECRET_ACCESS_KEY=minio-secret\n")
    script = "\n".join([
        "set -Eeuo pipefail",
        f"LOG={host['log']}", f"BIN={BOOTSTRAP.parent}", f"VENV={venv_bin.parent}", f"STATE_DIR={state}",
        f'READY="{state}/ready"', "HOST_USER=daemon", f"DR_CLOUD={cloud}", 'step="start"',
        'exec >>"$LOG" 2>&1',  # as bootstrap.sh does
        "log() { echo \"[$(date -u +%FT%TZ)] $*\"; }",
        *(_function(name) for name in ("report", "on_error", "retry", "step_doctor")),
        "trap 'on_error $LINENO' ERR",
        "full_run=yes",
        "step=doctor",
        "step_doctor",
        'date -u +%FT%TZ >"$READY"',
    ])
    env = {**host["env"], "PATH": f"{fakes}:{os.environ['PATH']}", "DOCKER_HOST": docker_engine,
           "DR_SYSTEM_ENV": str(folder / "system.env"), "DR_STATE_DIR": str(state)}
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=300)
    return result, fakes


def test_a_failed_doctor_reaches_the_deployers_terminal_as_its_one_line_cause(host: dict, docker_engine: str):
    result, fakes = _run_step(host, docker_engine)

    assert result.returncode != 0
    state = host["dir"] / "state"
    assert not (state / "ready").exists()
    doctor = json.loads((state / "doctor.json").read_text())
    expected = (f"image: {IMAGE} is not on this host; fix: docker pull {IMAGE} (the first boot's simapp-image step "
                f"pulls it)")
    assert doctor["ok"] is False and doctor["summary"] == expected
    assert (fakes / "sudo.log").read_text().split()[:4] == ["-u", "daemon", "-H", str(host["dir"] / "venv" / "bin" /
                                                                                        "deepracer")]
    assert not (fakes / "docker.log").exists()  # aws keeps its bucket in S3: no MinIO image to pull

    outcome = wait_for_status(host["s3"], host["bucket"], KEY, timeout_s=0, interval_s=1, sleep=pytest.fail)
    assert outcome.outcome is Outcome.FAILED and outcome.status.step == "doctor"
    assert outcome.status.cause == expected
    code, out, err = render_result(outcome, S3Store(None, host["bucket"], "us-east-1"), KEY, 60)
    assert code == 1 and err.splitlines()[0] == f"host {INSTANCE_ID} failed at step doctor: {expected}"
    assert "FAILED in step 'doctor'" in outcome.status.log_tail
    assert '"summary"' in host["log"].read_text()  # the results are in the bootstrap log too


def test_minio_clouds_get_minios_image_before_the_doctor_starts_it(host: dict, docker_engine: str):
    result, fakes = _run_step(host, docker_engine, cloud="local")

    assert result.returncode != 0  # the image check still fails
    assert (fakes / "docker.log").read_text().splitlines() == ["pull -q minio/minio:latest"]


def test_a_step_without_a_cause_file_reports_none_and_another_steps_file_is_not_borrowed(host: dict):
    state = host["dir"] / "state"
    state.mkdir()
    (state / "doctor.json").write_text(json.dumps({"ok": False, "summary": "gpu: no GPU"}))
    env = {**host["env"], "DR_STATE_DIR": str(state)}
    host["log"].write_text("tracks failed\n")
    assert subprocess.run([sys.executable, str(BOOTSTRAP.parent / "host-storage.py"), "report", "failed", "tracks"],
                          env=env, capture_output=True, timeout=60).returncode == 0

    outcome = wait_for_status(host["s3"], host["bucket"], KEY, timeout_s=0, interval_s=1, sleep=pytest.fail)
    assert outcome.status.step == "tracks" and outcome.status.cause == ""
    code, out, err = render_result(outcome, S3Store(None, host["bucket"], "us-east-1"), KEY, 60)
    assert err.splitlines()[0].startswith(f"host {INSTANCE_ID} failed at step tracks; see ")


def test_doctor_is_the_last_step_before_ready():
    text = BOOTSTRAP.read_text()
    steps = text.split("ALL_STEPS=(", 1)[1].split(")", 1)[0].split()
    assert steps[-1] == "doctor"
