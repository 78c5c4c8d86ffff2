"""The program's local commands (readiness wait, Azure's package upload) name no path of the checkout or of its
virtualenv, so moving either reruns nothing; and the line `pulumi up` stores runs as pulumi-command runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra import local_commands
from tests.infra.mocked_program import PROGRAM_DIR, REPO_ROOT, VM_ID, resolve, run_program

AZURE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx2cGaqZmVnJz0xB0dZ0m8Tq0sTlKk2rDqRz4jJtXyz builder@laptop"
INSTANCE_ID = "i-0abc123def4567890"
BUCKET = "deepracer-aws-abc123"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def aws_run():
    return run_program()


@pytest.fixture(scope="module")
def azure_run():
    return run_program({"deepracer-cloud:sshPublicKey": AZURE_KEY}, stack="azure")


def commands(run) -> dict[str, dict]:
    return {r.name: r.inputs for r in run.of_type("command:local:Command")}


def test_the_commands_name_no_absolute_path(aws_run, azure_run):
    found = {**{f"aws {k}": v for k, v in commands(aws_run).items()},
             **{f"azure {k}": v for k, v in commands(azure_run).items()}}
    assert sorted(found) == ["aws spot-request", "aws wait-ready", "azure cost-settings", "azure session-package",
                             "azure wait-ready"]
    for name, inputs in found.items():
        stored = json.dumps({key: inputs.get(key) for key in ("create", "delete", "dir", "environment", "interpreter")})
        for path in (str(REPO_ROOT), str(VENV_BIN), sys.executable, str(Path.home())):
            assert path not in stored, (name, path, stored)
        line = inputs.get("create") or inputs["delete"]
        assert line.startswith('PATH=.venv/bin:"$PATH" python -m infra.'), name
        # The engine starts pulumi-command in the program's directory (infra/): the checkout is its parent.
        assert inputs["dir"] == "..", name
        assert (PROGRAM_DIR / inputs["dir"]).resolve() == REPO_ROOT


def test_the_package_upload_reads_the_archive_from_the_checkout(azure_run):
    upload = commands(azure_run)["session-package"]
    assert upload["create"].endswith(" --file build/session.tar.gz")
    assert (PROGRAM_DIR / upload["dir"] / "build/session.tar.gz").is_file()


def test_triggers_are_the_host_and_the_package_digest_only(aws_run, azure_run):
    assert commands(aws_run)["wait-ready"]["triggers"] == [INSTANCE_ID]
    assert commands(aws_run)["spot-request"]["triggers"] == [INSTANCE_ID]
    assert commands(azure_run)["wait-ready"]["triggers"] == [VM_ID]
    assert commands(azure_run)["session-package"]["triggers"] == [azure_run.outputs["sessionPackageSha256"]]


def test_a_moved_checkout_and_virtualenv_give_the_same_lines(tmp_path):
    """What `pulumi up` compares with the state: the same line and directory from anywhere."""
    lines = []
    for root in (tmp_path / "here" / "deepracer-cloud", tmp_path / "elsewhere" / "work" / "dr"):
        python = str(root / ".venv" / "bin" / "python")
        line = resolve(local_commands.python_module(root, "infra.wait_ready", "--key", "hosts/i-1/bootstrap.json",
                                                    "--timeout-minutes", "45", executable=python))
        lines.append((line, local_commands.checkout_dir(root, root / "infra")))
    assert lines[0] == lines[1] == (
        'PATH=.venv/bin:"$PATH" python -m infra.wait_ready --key hosts/i-1/bootstrap.json --timeout-minutes 45', "..")


def test_arguments_are_quoted_for_the_shell():
    line = resolve(local_commands.python_module(REPO_ROOT, "infra.blob_upload", "--file", "my build/it's.tar.gz"))
    assert line.endswith(""" --file 'my build/it'"'"'s.tar.gz'""")


def test_the_stored_wait_line_runs_as_pulumi_command_runs_it(aws_run, s3_server):
    """/bin/sh -c LINE in `dir` from the provider's directory, with the provider's environment plus the command's:
    no virtualenv activated, only the checkout's .venv (as Pulumi.yaml names it) finds the interpreter."""
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=s3_server)
    try:
        s3.create_bucket(Bucket=BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    s3.put_object(Bucket=BUCKET, Key=f"hosts/{INSTANCE_ID}/bootstrap.json", Body=json.dumps(
        {"state": "ready", "instance_id": INSTANCE_ID, "time": "2026-12-06T10:00:00+00:00"}).encode())
    wait = commands(aws_run)["wait-ready"]
    inherited = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    inherited["PATH"] = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                                        if p and Path(p).resolve() != VENV_BIN.resolve()) or "/usr/bin:/bin"
    env = {**inherited, "AWS_ENDPOINT_URL": s3_server, **wait["environment"]}
    proc = subprocess.run(["/bin/sh", "-c", wait["create"]], cwd=PROGRAM_DIR / wait["dir"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"host {INSTANCE_ID} is ready (2026-12-06T10:00:00+00:00)\n"
